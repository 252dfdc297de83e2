"""Leads (线索) and the lead pools (线索公海): scoped keyset lists, the lead page with its
follow-ups and events, and forms whose every write goes through app.services.leads."""
from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import action, expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _, ngettext
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from wtforms import BooleanField, SelectField
from wtforms.validators import Optional as OptionalValidator

from app.extensions import db
from app.models import Lead, LeadEvent, LeadFollowUp, LeadOwnership, User
from app.models.activity import FOLLOWUP_CHANNELS
from app.models.lead import LEAD_SOURCES
from app.models.org import EMPLOYMENT_ACTIVE
from app.security import RES_LEAD, RES_LEAD_POOL, current_user
from app.services import leads as lead_service
from app.services.errors import GuishuError, NotInPool
from app.services.ids import parse_pk
from app.paging import KeysetInterface
from app.views.base import ScopedModelView, local_path, readable_formatters
from app.views.ownership import flash_error, ids_arg, selected_ids
from app.views.org import ServiceModelView
from app.views.pickers import UserPickerField
from app.tag_filters import tag_filter
from app.views.marketing import tag_action_redirect, tag_context


class LeadScopeFilter(BaseFilter):
    """Only leads in the user's scope (app.services.leads.lead_scope_clause)."""

    name = "lead scope"
    arg_name = None

    def apply(self, query, value):
        return query.filter(lead_service.lead_scope_clause(current_user()))


class LeadPoolFilter(BaseFilter):
    """Only open leads sitting in a lead pool the user may browse."""

    name = "lead pool scope"
    arg_name = None

    def apply(self, query, value):
        user = current_user()
        pools = lead_service.browsable_lead_pool_ids(user) if user is not None else set()
        return query.filter(Lead.id.in_(select(LeadOwnership.lead_id).where(
            LeadOwnership.pool_id.in_(sorted(pools) or [0]), LeadOwnership.is_open.is_(True))))


LEAD_LOAD = [joinedload(Lead.ownership).joinedload(LeadOwnership.owner),
             joinedload(Lead.ownership).joinedload(LeadOwnership.pool)]
LEAD_LABELS = {
    "name": _("Name"), "person_name": _("Contact person"), "company_name": _("Company"),
    "mobile": _("Mobile"), "phone": _("Phone"), "email": _("E-mail"),
    "mobile_shown": _("Mobile"), "phone_shown": _("Phone"), "email_shown": _("E-mail"),
    "province": _("Province"), "city": _("City"), "industry": _("Industry"),
    "source": _("Source channel"), "source_label": _("Source channel"),
    "campaign": _("Campaign"), "notes": _("Notes"), "status": _("Status"),
    "status_label": _("Status"), "owner_label": _("Owner / lead pool"),
    "invalid_reason": _("Invalid reason"), "created_at": _("Created at"),
    "created_by": _("Created by"), "updated_at": _("Updated at"),
    "converted_customer": _("Converted to customer"), "converted_at": _("Converted at"),
    "converted_by": _("Converted by"), "owner": _("Owner"), "pool_id": _("Lead pool"),
    "confirm_duplicates": _("Save anyway"), "priority_score": _("Priority"),
}
FORM_FIELDS = ("person_name", "company_name", "mobile", "phone", "email", "province", "city",
               "industry", "source", "campaign", "notes")


def lead_owner_choices():
    """Active users the current user may name as a lead's owner (the customers' rule)."""
    from app.services import customers as customer_service

    user = current_user()
    q = db.session.query(User).filter(User.active.is_(True),
                                      User.employment_status == EMPLOYMENT_ACTIVE)
    if user is None:
        return q.filter(User.id.is_(None))
    return q.filter(User.id.in_(customer_service.assignable_owner_ids(user))).order_by(
        User.username)


def _source_choices():
    return [("", "—")] + [(k, v) for k, v in LEAD_SOURCES.items()]


class LeadView(ServiceModelView):
    datamodel = KeysetInterface(Lead, load=LEAD_LOAD)
    class_permission_name = RES_LEAD
    route_base = "/leads"
    base_filters = [["id", LeadScopeFilter, lambda: None]] + tag_filter("lead")
    base_order = ("id", "desc")
    order_columns = ["created_at", "priority_score"]
    base_permissions = ["can_read", "can_write", "can_release", "can_assign", "can_convert",
                        "can_tag"]
    method_permission_name = dict(
        ScopedModelView.method_permission_name, followup="write", invalid="write",
        release="release", release_one="release", assign="assign", assign_one="assign",
        convert="convert", bulk="read", tag="tag")
    list_title = _("Leads")
    show_title = _("Lead")
    add_title = _("Add lead")
    edit_title = _("Edit lead")
    list_columns = ["company_name", "person_name", "status_label", "source_label",
                    "owner_label", "mobile_shown", "city", "priority_score", "created_at"]
    search_columns = ["company_name", "person_name", "status", "source", "mobile", "phone",
                      "email", "city", "industry", "campaign", "created_at"]
    add_columns = ["company_name", "person_name", "mobile", "phone", "email", "province",
                   "city", "industry", "source", "campaign", "notes", "owner", "pool_id",
                   "confirm_duplicates"]
    edit_columns = [c for c in add_columns if c not in ("owner", "pool_id")]
    show_template = "guishu/lead_show.html"
    label_columns = LEAD_LABELS
    formatters_columns = readable_formatters("company_name", "person_name", "mobile_shown",
                                             "city")
    _form_fields = {
        "source": SelectField(_("Source channel"), choices=_source_choices,
                              validators=[OptionalValidator()]),
        "confirm_duplicates": BooleanField(
            _("Save anyway"), description=_("Tick after a duplicate warning once you have "
                                            "checked it is not the same lead")),
    }
    add_form_extra_fields = dict(
        _form_fields,
        owner=UserPickerField(_("Owner"), query_func=lead_owner_choices, allow_blank=True,
                              description=_("Empty: reps and managers own what they create; "
                                            "admins and staff put it in a lead pool")),
        pool_id=SelectField(_("Lead pool"), choices=[], validate_choice=False,
                            validators=[OptionalValidator()]))
    edit_form_extra_fields = _form_fields

    @staticmethod
    def _form_data(form) -> dict:
        return {f: form[f].data for f in FORM_FIELDS if f in form}

    def _pool_choices(self, form) -> None:
        if "pool_id" in form:
            form.pool_id.choices = [("", "—")] + [
                (str(p.id), p.name) for p in lead_service.lead_pools(self.actor())]

    def _add(self):
        form = self.add_form.refresh()
        self._pool_choices(form)
        if request.method == "GET":
            # From a screen pop's 新建线索: the caller's number; saving runs the dedupe check.
            for name in ("mobile", "phone"):
                value = request.args.get(name, "")
                if value and len(value) <= 40 and "\x00" not in value and name in form:
                    form[name].data = value
        if request.method == "POST" and form.validate():
            owner = form.owner.data
            try:
                lead = lead_service.create_lead(
                    self.actor(), self._form_data(form), owner_id=owner.id if owner else None,
                    pool_id=form.pool_id.data or None,
                    confirm_duplicates=bool(form.confirm_duplicates.data))
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(str(_("%(message)s: %(name)s (%(holder)s)", message=self.add_row_message,
                        name=lead.name, holder=lead.owner_label)), "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        item = self._scoped_get(pk)
        try:
            lead_service.get_lead(self.actor(), item.id, write=True)
        except GuishuError:
            abort(404)  # visible (a pool lead, the auditor), not editable
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            if form.validate():
                try:
                    lead_service.update_lead(
                        self.actor(), item.id, self._form_data(form),
                        confirm_duplicates=bool(form.confirm_duplicates.data))
                except GuishuError as exc:
                    self.show_error(form, exc)
                    return self.edit_widgets(form, item)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
        return self.edit_widgets(form, item)

    def _delete(self, pk):
        abort(404)  # leads are never deleted: invalid keeps them, with the reason

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        item = self._scoped_get(pk)
        self.update_redirect()
        return render_lead_page(self, item)

    # -- actions on one lead (the lead page's forms) ---------------------------------------
    def _one(self, pk):
        return self._scoped_get(pk)

    def _back(self, lead_id: int):
        return redirect(local_path(request.form.get("next"))
                        or url_for("LeadView.show", pk=lead_id))

    @expose("/followup/<pk>", methods=["POST"])
    @has_access
    def followup(self, pk):
        item = self._one(pk)
        try:
            lead_service.log_lead_followup(self.actor(), item.id, {
                "channel": request.form.get("channel", ""),
                "content": request.form.get("content", "")})
        except GuishuError as exc:
            flash_error(exc)
        else:
            flash(_("Follow-up logged."), "success")
        return self._back(item.id)

    @expose("/invalid/<pk>", methods=["POST"])
    @has_access
    def invalid(self, pk):
        item = self._one(pk)
        try:
            lead_service.mark_invalid(self.actor(), item.id, request.form.get("reason", ""))
        except GuishuError as exc:
            flash_error(exc)
        else:
            flash(_("The lead is marked invalid."), "success")
        return self._back(item.id)

    @expose("/release/<pk>", methods=["POST"])
    @has_access
    def release_one(self, pk):
        item = self._one(pk)
        try:
            lead_service.release_leads(self.actor(), [item.id], request.form.get("reason", ""),
                                       request.form.get("pool_id") or None)
        except GuishuError as exc:
            flash_error(exc)
            return self._back(item.id)
        flash(ngettext("Released %(n)s lead to the lead pool.",
                       "Released %(n)s leads to the lead pool.", 1, n=1), "success")
        return redirect(url_for("LeadView.list"))

    @expose("/assign/<pk>", methods=["POST"])
    @has_access
    def assign_one(self, pk):
        item = self._one(pk)
        try:
            lead_service.assign_leads(self.actor(), [item.id],
                                      request.form.get("owner_id", type=parse_pk),
                                      request.form.get("reason", ""))
        except GuishuError as exc:
            flash_error(exc)
        else:
            flash(ngettext("Assigned %(n)s lead.", "Assigned %(n)s leads.", 1, n=1), "success")
        return self._back(item.id)

    @expose("/convert/<pk>", methods=["POST"])
    @has_access
    def convert(self, pk):
        item = self._one(pk)
        try:
            result = lead_service.convert_lead(
                self.actor(), item.id, into_pool=bool(request.form.get("into_pool")),
                confirm_duplicates=bool(request.form.get("confirm_duplicates")),
                opportunity={"title": request.form.get("opportunity_title"),
                             "amount": request.form.get("opportunity_amount")}
                if (request.form.get("opportunity_title") or "").strip() else None)
        except GuishuError as exc:
            flash_error(exc)
            return self._back(item.id)
        flash(CONVERTED[result["outcome"]], "success")
        if result.get("opportunity_note"):
            flash(result["opportunity_note"], "warning")
        return self._back(item.id)

    # -- bulk actions (FAB re-checks the scope in ScopedModelView; the service again) -------
    @action("release", _("Release to lead pool"), None, "fa-undo", single=False)
    def release(self, items):
        return redirect(url_for("LeadView.bulk", verb="release", ids=_ids(items)))

    @action("assign", _("Assign"), None, "fa-share-alt", single=False)
    def assign(self, items):
        return redirect(url_for("LeadView.bulk", verb="assign", ids=_ids(items)))

    @action("tag", _("Tag"), None, "fa-tags", single=False)
    def tag(self, items):
        return tag_action_redirect("lead", items)

    @expose("/bulk/<verb>", methods=["GET", "POST"])
    @has_access
    def bulk(self, verb):
        if verb not in ("release", "assign"):
            abort(404)
        permission = "can_release" if verb == "release" else "can_assign"
        if not self.appbuilder.sm.has_access(permission, self.class_permission_name):
            abort(403)
        actor = self.actor()
        ids = selected_ids()
        rows = db.session.execute(select(Lead).where(
            Lead.id.in_(ids), lead_service.lead_scope_clause(actor))).scalars().all()
        if len(rows) != len(ids):
            abort(404)
        if request.method == "POST":
            try:
                if verb == "release":
                    lead_service.release_leads(actor, ids, request.form.get("reason", ""),
                                               request.form.get("pool_id") or None)
                else:
                    lead_service.assign_leads(actor, ids,
                                              request.form.get("owner_id", type=parse_pk),
                                              request.form.get("reason", ""))
            except GuishuError as exc:
                flash_error(exc)
            else:
                flash(ngettext("Released %(n)s lead to the lead pool.",
                               "Released %(n)s leads to the lead pool.", len(ids), n=len(ids))
                      if verb == "release" else
                      ngettext("Assigned %(n)s lead.", "Assigned %(n)s leads.", len(ids),
                               n=len(ids)), "success")
                return redirect(url_for("LeadView.list"))
        return self.render_template(
            "guishu/lead_bulk.html", verb=verb, leads=rows, ids=ids_arg(ids),
            pools=lead_service.lead_pools(actor), owners=lead_owner_choices().all(),
            reason=request.form.get("reason", ""))


LEAD_EVENT_LABELS = {
    "created": _("Lead created"), "claimed": _("Claimed"), "released": _("Released to lead pool"),
    "assigned": _("Assigned"), "reclaimed": _("Reclaimed"), "converted": _("Converted"),
    "invalidated": _("Marked invalid"),
}
CONVERTED = {
    "created": _("Converted: a new customer owned by the lead's owner."),
    "created_in_pool": _("Converted: a new customer in the public pool."),
    "claimed": _("Converted: the matching pool customer was claimed."),
    "linked": _("Converted: linked to the matching customer you hold."),
    "linked_other": _("Converted: linked to the matching customer of another rep, who was "
                      "told; nothing changed hands."),
}


def _ids(items) -> str:
    items = items if isinstance(items, list) else [items]
    return ids_arg([i.id for i in items])


def render_lead_page(view, item):
    """The lead page: details, follow-ups, events and the actions the user may take."""
    actor = view.actor()
    followups = db.session.execute(select(LeadFollowUp).where(
        LeadFollowUp.lead_id == item.id).order_by(LeadFollowUp.id.desc()).limit(100)).scalars()
    events = db.session.execute(select(LeadEvent).where(
        LeadEvent.lead_id == item.id).order_by(LeadEvent.id.desc()).limit(100)).scalars()
    try:
        lead_service.get_lead(actor, item.id, write=True)
        writable = True
    except GuishuError:
        writable = False
    sm = view.appbuilder.sm
    o = item.ownership
    from app.services import cti_dial

    dial = cti_dial.offers_calls(actor, sm.has_access) and cti_dial.lead_dialable(actor, item.id)
    return view.render_template(
        "guishu/lead_show.html", lead=item, followups=list(followups), events=list(events),
        tagging=tag_context(actor, sm.has_access, "lead", [item.id]),
        writable=writable and item.status in lead_service.OPEN_STATUSES,
        owned=o is not None and o.owner_id is not None,
        in_pool=o is not None and o.pool_id is not None,
        may_release=sm.has_access("can_release", RES_LEAD),
        may_assign=sm.has_access("can_assign", RES_LEAD),
        may_convert=sm.has_access("can_convert", RES_LEAD),
        may_claim=sm.has_access("can_claim", RES_LEAD_POOL),
        channels=FOLLOWUP_CHANNELS, pools=lead_service.lead_pools(actor),
        owners=lead_owner_choices().all() if sm.has_access("can_assign", RES_LEAD) else [],
        event_labels=LEAD_EVENT_LABELS, title=item.name, dial=dial)


class LeadPoolView(ScopedModelView):
    """线索公海: leads of the lead pools the user may browse, contacts masked but for pool
    admins, with claim (members) and assign (managers, admins)."""

    datamodel = KeysetInterface(Lead, load=LEAD_LOAD)
    class_permission_name = RES_LEAD_POOL
    route_base = "/lead-pool"
    base_filters = [["id", LeadPoolFilter, lambda: None]]
    base_order = ("id", "desc")
    order_columns = ["created_at", "priority_score"]
    base_permissions = ["can_read", "can_claim", "can_assign"]
    method_permission_name = dict(ScopedModelView.method_permission_name, claim="claim",
                                  assign="assign")
    list_title = show_title = _("Lead pool")
    list_columns = ["company_name", "person_name", "source_label", "owner_label",
                    "mobile_shown", "city", "priority_score", "created_at"]
    search_columns = ["company_name", "person_name", "source", "mobile", "phone", "city",
                      "industry", "campaign", "created_at"]
    label_columns = dict(LEAD_LABELS, owner_label=_("Lead pool"))
    formatters_columns = readable_formatters("company_name", "person_name", "mobile_shown",
                                             "city")

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        item = self._scoped_get(pk)
        self.update_redirect()
        return render_lead_page(self, item)

    @action("claim", _("Claim"), _("Claim the selected leads?"), "fa-hand-paper-o",
            single=False)
    def claim(self, items):
        items = items if isinstance(items, list) else [items]
        try:
            ids = lead_service.claim_leads(self.actor(), [i.id for i in items])
        except GuishuError as exc:
            flash(exc.message, "danger")
            if isinstance(exc, NotInPool):
                return redirect(url_for("LeadPoolView.list"))
        else:
            flash(ngettext("Claimed %(n)s lead.", "Claimed %(n)s leads.", len(ids),
                           n=len(ids)), "success")
        return redirect(local_path(request.form.get("next")) or self.get_redirect())

    @action("assign", _("Assign"), None, "fa-share-alt", single=False)
    def assign(self, items):
        return redirect(url_for("LeadView.bulk", verb="assign", ids=_ids(items)))

    def rows_out_of_scope(self, name, missing, asked):
        """A claim race lost: say so and go back to the pool (nothing was claimed)."""
        if name != "claim":
            return super().rows_out_of_scope(name, missing, asked)
        flash(ngettext("%(n)s of the selected leads is no longer in the lead pool: nothing "
                       "was claimed.",
                       "%(n)s of the selected leads are no longer in the lead pool: nothing "
                       "was claimed.", missing, n=missing), "warning")
        return redirect(url_for("LeadPoolView.list"))
