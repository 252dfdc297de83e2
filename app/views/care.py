"""纪念日关怀 pages: templates and settings (admins), the outbox (everyone within scope)."""
from __future__ import annotations

from flask import flash, redirect
from flask_appbuilder.actions import action
from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _, ngettext
from flask_babel.speaklater import LazyString
from sqlalchemy.orm import joinedload
from wtforms import BooleanField, SelectField, TextAreaField

from app.models import CareMessage, CareSettings, CareTemplate, Customer
from app.models.care import CARE_CHANNELS, CARE_OCCASIONS
from app.security import (METHOD_PERMISSIONS, RES_CARE_MESSAGE, RES_CARE_SETTINGS,
                          RES_CARE_TEMPLATE, scope_filters)
from app.services import care
from app.services.errors import GuishuError
from app.paging import KeysetInterface
from app.views.base import ScopedModelView, minutes, readable_formatters
from app.views.org import SettingsRowView, ValidatedModelView

# Built when a form is shown, in that user's language.
_PLACEHOLDER_HELP = LazyString(
    lambda: "; ".join("{" + k + "} " + str(v) for k, v in care.PLACEHOLDERS.items()))


def _holiday_choices():
    return [("", _("— (every greeted holiday)"))] + [(n, n) for n in care.known_holidays()]


class CareTemplateView(ValidatedModelView):
    datamodel = SQLAInterface(CareTemplate)
    class_permission_name = RES_CARE_TEMPLATE
    route_base = "/care/templates"
    audit_type = "care_template"
    list_title = show_title = _("Care templates")
    add_title = _("Add care template")
    edit_title = _("Edit care template")
    list_columns = ["name", "occasion_label", "holiday", "channel_label", "active", "updated_at"]
    show_columns = ["name", "occasion_label", "holiday", "channel_label", "subject", "body",
                    "active", "updated_at"]
    add_columns = edit_columns = ["name", "occasion", "holiday", "channel", "subject", "body",
                                  "active"]
    label_columns = {"name": _("Name"), "occasion": _("Occasion"),
                     "occasion_label": _("Occasion"), "holiday": _("Holiday"),
                     "channel": _("Delivery channel"), "channel_label": _("Delivery channel"),
                     "subject": _("Subject"), "body": _("Text"), "active": _("Active"),
                     "updated_at": _("Updated at")}
    formatters_columns = readable_formatters("holiday", "subject")
    add_form_extra_fields = edit_form_extra_fields = {
        "occasion": SelectField(_("Occasion"), choices=list(CARE_OCCASIONS.items())),
        "holiday": SelectField(_("Holiday"), choices=_holiday_choices,
                               description=_("Only for holiday templates: one holiday, or "
                                             "empty for every greeted holiday")),
        "channel": SelectField(_("Delivery channel"), choices=list(CARE_CHANNELS.items())),
        "body": TextAreaField(_("Text"), widget=BS3TextAreaFieldWidget(),
                              description=_("Placeholders: %(p)s", p=_PLACEHOLDER_HELP)),
        "active": BooleanField(_("Active")),
    }

    def validate_item(self, item):
        care.validate_template(item)


class CareSettingsView(ValidatedModelView, SettingsRowView):
    """Days ahead, the hour of sending, the greeted holidays, delivery attempts."""

    datamodel = SQLAInterface(CareSettings)
    class_permission_name = RES_CARE_SETTINGS
    route_base = "/care/settings"
    audit_type = "care_settings"
    list_title = show_title = edit_title = _("Care settings")
    list_columns = show_columns = ["days_ahead", "send_hour", "holidays", "max_attempts",
                                   "updated_at"]
    edit_columns = ["days_ahead", "send_hour", "holidays", "max_attempts"]
    label_columns = {"days_ahead": _("Days ahead"), "holidays": _("Greeted holidays"),
                     "max_attempts": _("Delivery attempts"), "send_hour": _("Send from (hour)"),
                     "updated_at": _("Updated at")}
    description_columns = {
        "days_ahead": _("Owners get the in-app task this many days before; e-mail and SMS go "
                        "out on the day"),
        "holidays": _("Comma-separated, e.g. 元旦,春节,国庆节"),
        "send_hour": _("E-mail and SMS of the day go out from this hour (GUISHU_TIMEZONE)"),
        "max_attempts": _("A failed e-mail or SMS is retried with backoff (5, 20, 80 … "
                          "minutes) up to this many attempts"),
    }
    formatters_columns = {"updated_at": minutes}

    def validate_item(self, item):
        care.validate_settings(item)


class CareMessageView(ScopedModelView):
    """The outbox (关怀发送记录): read within the data scope; retry failed, cancel pending."""

    datamodel = KeysetInterface(CareMessage, load=[
        joinedload(CareMessage.customer).joinedload(Customer.ownership),
        joinedload(CareMessage.contact), joinedload(CareMessage.owner)])
    order_columns = ["occasion_date"]
    class_permission_name = RES_CARE_MESSAGE
    route_base = "/care/outbox"
    base_filters = scope_filters("customer_id")
    base_permissions = ["can_read", "can_write"]
    # Rows are written by the planner only: add, edit and delete map to a permission nobody has.
    method_permission_name = dict(METHOD_PERMISSIONS, retry="write", cancel="write",
                                  add="amend", edit="amend", delete="amend")
    base_order = ("id", "desc")
    list_title = show_title = _("Care outbox")
    list_columns = ["occasion_date", "occasion_name", "customer", "contact", "channel_label",
                    "address_shown", "owner", "status_label", "attempts", "send_on", "sent_at",
                    "last_error"]
    show_columns = list_columns + ["subject", "body", "template", "next_attempt_at",
                                   "occasion_key", "created_at"]
    search_columns = ["status", "channel", "occasion_name", "occasion_key", "occasion_date",
                      "customer", "owner", "send_on"]
    label_columns = {"occasion_date": _("Date"), "occasion_name": _("Occasion"),
                     "occasion_key": _("Cycle"), "customer": _("Customer"),
                     "contact": _("Contact"), "channel": _("Delivery channel"),
                     "channel_label": _("Delivery channel"), "address": _("Recipient"),
                     "address_shown": _("Recipient"), "owner": _("Owner"),
                     "status": _("Status"), "status_label": _("Status"),
                     "attempts": _("Attempts"), "send_on": _("Send on"),
                     "sent_at": _("Sent at"), "last_error": _("Last error"),
                     "subject": _("Subject"), "body": _("Text"), "template": _("Template"),
                     "next_attempt_at": _("Next attempt"), "created_at": _("Planned at")}
    formatters_columns = dict(readable_formatters("contact", "address_shown", "owner",
                                                  "last_error", "subject", "body", "template"),
                              sent_at=minutes, next_attempt_at=minutes)

    @action("retry", _("Retry"), _("Send the selected failed messages again?"), "fa-repeat",
            single=False)
    def retry(self, items):
        return self._outbox_verb(care.retry, items, lambda n: ngettext(
            "%(n)s message will be sent again.", "%(n)s messages will be sent again.", n, n=n))

    @action("cancel", _("Cancel"), _("Cancel the selected pending messages?"), "fa-ban",
            single=False)
    def cancel(self, items):
        return self._outbox_verb(care.cancel, items, lambda n: ngettext(
            "Cancelled %(n)s message.", "Cancelled %(n)s messages.", n, n=n))

    def _outbox_verb(self, fn, items, done):
        items = items if isinstance(items, list) else [items]
        try:
            n = fn(self.actor(), [m.id for m in items])
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            skipped = len(items) - n
            note = _("(%(n)s not in a state for this, left alone)", n=skipped) if skipped else ""
            flash(str(done(n)) + str(note), "success" if n else "warning")
        return redirect(self.get_redirect())

