"""通话记录 (the call log, keyset paged, scoped by app.services.cti_calls) and 通话统计 (the
per-rep table for managers and admins). Numbers and recordings as the reader may see them."""
from __future__ import annotations

from flask import abort, flash, request
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _
from markupsafe import Markup, escape
from sqlalchemy.orm import joinedload

from app.models import Customer, Lead
from app.models.cti import CALL_RESULTS, CALL_STATES, DIRECTIONS, CtiCall
from app.paging import KeysetInterface
from app.security import RES_CTI_CALL, RES_CTI_STATS, current_user
from app.services import cti_calls
from app.services.errors import PermissionDenied, ValidationFailed
from app.views.base import ScopedModelView, minutes, readable_formatters, signed_in_user


class CallScopeFilter(BaseFilter):
    """FAB base filter: the calls the signed-in user may read (cti_calls.scope_clause)."""

    name = "call scope"
    arg_name = None

    def apply(self, query, value):
        return query.filter(cti_calls.scope_clause(current_user()))


def _recording_cell(url) -> Markup:
    if not url:
        return Markup("")
    return Markup('<a href="%s" target="_blank" rel="noopener noreferrer" '
                  'class="cti-recording">%s</a>') % (escape(url), escape(_("Listen")))


class CallInterface(KeysetInterface):
    """The call list's rows with the number masked and the recording link dropped as the
    reader's rules say (one pass over the page)."""

    def capped_count(self, query, estimate: bool = False, defer_from=None):
        # Counted exactly up to the cap, never estimated: the scope's OR of several id lists
        # is where PostgreSQL's estimate is least reliable, and the statement it saves
        # keeps the page within its budget (the masking rules read the pools).
        return super().capped_count(query, estimate=False)

    @staticmethod
    def _shown(items):
        return cti_calls.page_of_calls(current_user(), items)

    def get_values(self, lst, list_columns):
        rows = list(super().get_values(lst, list_columns))
        numbers, links, hidden = self._shown(lst)
        for item, row in zip(lst, rows):
            if "number_e164" in row:
                row["number_e164"] = numbers[item.id] or ""
            if "recording_url" in row:
                row["recording_url"] = links[item.id]
            for name in hidden[item.id] & set(row):
                row[name] = cti_calls.OUTSIDE_SCOPE
        return rows

    def get_values_item(self, item, show_columns):
        values = list(super().get_values_item(item, show_columns))
        numbers, links, hidden = self._shown([item])
        out = []
        for name, value in zip(show_columns, values):
            if name == "number_e164":
                value = numbers[item.id] or ""
            elif name == "recording_url":
                value = links[item.id]
            elif name in hidden[item.id]:
                value = cti_calls.OUTSIDE_SCOPE
            out.append(value)
        return out


class CallLogView(ScopedModelView):
    # The customer and lead with their holders: the numbers' masking reads them (no
    # statement per row, nor per page).
    datamodel = CallInterface(CtiCall, load=[
        joinedload(CtiCall.customer).joinedload(Customer.ownership),
        joinedload(CtiCall.lead).joinedload(Lead.ownership), joinedload(CtiCall.agent)])
    class_permission_name = RES_CTI_CALL
    route_base = "/calls"
    base_permissions = ["can_read"]
    base_filters = [["id", CallScopeFilter, lambda: None]]
    base_order = ("started_at", "desc")
    order_columns = ["started_at"]
    list_title = show_title = _("Call log")
    list_columns = ["started_at", "direction", "number_e164", "customer", "lead", "agent",
                    "result", "talk_seconds", "recording_url"]
    show_columns = ["started_at", "direction", "state", "number_e164", "customer", "lead",
                    "agent_no", "agent", "dialed_by", "queue", "result", "answered_at",
                    "ended_at", "talk_seconds", "recording_url", "recording_expires_at"]
    search_columns = ["started_at", "customer", "agent", "result", "direction"]
    label_columns = {"started_at": _("Time"), "direction": _("Direction"),
                     "number_e164": _("Number"), "customer": _("Customer"), "lead": _("Lead"),
                     "agent": _("Agent"), "agent_no": _("Agent number"),
                     "dialed_by": _("Dialled by"), "queue": _("Queue"), "state": _("State"),
                     "result": _("Result"), "answered_at": _("Answered at"),
                     "ended_at": _("Ended at"), "talk_seconds": _("Talk time"),
                     "recording_url": _("Recording"),
                     "recording_expires_at": _("Recording expires")}
    formatters_columns = dict(
        readable_formatters("customer", "lead", "agent", "dialed_by", "queue", "agent_no",
                            times=("answered_at", "ended_at", "recording_expires_at")),
        started_at=minutes, talk_seconds=cti_calls.talk_text, recording_url=_recording_cell,
        direction=lambda v: str(DIRECTIONS.get(v, v or "")),
        result=lambda v: str(CALL_RESULTS.get(v, v or "")),
        state=lambda v: str(CALL_STATES.get(v, v or "")))


class CallStatsView(BaseView):
    """通话统计: per rep and per day over a period (cti_calls.rep_stats)."""

    route_base = "/call-stats"
    class_permission_name = RES_CTI_STATS
    method_permission_name = {"index": "read"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        actor = signed_in_user()
        try:
            stats = cti_calls.rep_stats(actor, request.args.get("start"),
                                        request.args.get("end"))
        except PermissionDenied:
            abort(403)
        except ValidationFailed as exc:
            for message in exc.fields.values():
                flash(message, "danger")
            stats = cti_calls.rep_stats(actor)
        return self.render_template("guishu/call_stats.html", stats=stats,
                                    talk_text=cti_calls.talk_text)
