"""Follow-ups (跟进记录) and won deals (成交): listed within the customer scope, added through
app.services.followups / deals, never edited or deleted (they are the customer's history)."""
from __future__ import annotations

from flask import flash, request
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget, Select2Widget
from flask_babel import lazy_gettext as _
from sqlalchemy.orm import joinedload
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import Optional as OptionalValidator

from app.extensions import db
from app.models import Contact, Customer, Deal, FollowUp
from app.models.activity import FOLLOWUP_CHANNELS
from app.models.customer import utcnow
from app.security import RES_DEAL, RES_FOLLOWUP, customer_scope_clause, current_user, \
    scope_filters
from app.services import deals, followups
from app.services.errors import GuishuError
from app.services.ids import parse_pk
from app.services.times import local_text
from app.paging import KeysetInterface
from app.views.base import ScopedModelView, minutes, readable_formatters


def writable_customers():
    """The add forms' customer choices: customers in the user's scope, without read shares."""
    user = current_user()
    q = db.session.query(Customer)
    if user is None:
        return q.filter(Customer.id.is_(None))
    return q.filter(customer_scope_clause(user, include_shared=False)).order_by(Customer.name)


def contacts_in_scope():
    """The contact choices: those of the customers the user may write; only the preselected
    customer's when the form was opened for one (?_flt_0_customer=<id>, the customer page's
    记录跟进). The service refuses a contact of another customer either way."""
    user = current_user()
    q = db.session.query(Contact)
    if user is None:
        return q.filter(Contact.id.is_(None))
    q = q.filter(Contact.customer_id.in_(
        db.session.query(Customer.id).filter(customer_scope_clause(user, include_shared=False))))
    if "_flt_0_customer" in request.args:
        q = q.filter(Contact.customer_id == (request.args.get("_flt_0_customer",
                                                               type=parse_pk) or 0))
    return q.order_by(Contact.name)


def _customer_field():
    return QuerySelectField(_("Customer"), query_func=writable_customers,
                            get_pk_func=lambda c: c.id, widget=Select2Widget())


class _HistoryView(ScopedModelView):
    """Add and read only; the service decides and the form shows its field errors."""

    base_permissions = ["can_read", "can_write"]
    # Edit and delete map to permissions outside base_permissions: refused for every role,
    # Admin included, and their buttons never show.
    method_permission_name = dict(ScopedModelView.method_permission_name, edit="amend",
                                  delete="amend")
    base_order = ("id", "desc")

    def _save(self, form) -> None:
        """Call the service with the form's values (each subclass its own service)."""
        raise NotImplementedError

    def prefill(self, form) -> None:
        """Defaults of a fresh add form."""

    def _add(self):
        form = self.add_form.refresh()
        # A related-list "add" link pre-selects the customer (?_flt_0_customer=<id>).
        if request.method == "GET" and form.customer.data is None:
            wanted = request.args.get("_flt_0_customer", type=parse_pk)
            form.customer.data = writable_customers().filter(Customer.id == wanted).first() \
                if wanted else None
        if request.method == "GET":
            self.prefill(form)
        if request.method == "POST" and form.validate():
            try:
                self._save(form)
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(self.add_row_message, "success")
            return None
        return self._get_add_widget(form=form)


class FollowUpView(_HistoryView):
    datamodel = KeysetInterface(FollowUp, load=[
        joinedload(FollowUp.customer), joinedload(FollowUp.contact), joinedload(FollowUp.user)])
    order_columns = ["happened_at"]
    class_permission_name = RES_FOLLOWUP
    route_base = "/followups"
    base_filters = scope_filters("customer_id")
    list_title = show_title = _("Follow-ups")
    add_title = _("Log a follow-up")
    list_columns = ["happened_at", "customer", "contact", "channel_label", "content",
                    "next_contact_on", "user"]
    show_columns = list_columns + ["created_at"]
    add_columns = ["customer", "contact", "channel", "content", "happened_at",
                   "next_contact_on"]
    search_columns = ["customer", "channel", "happened_at", "next_contact_on", "user"]
    label_columns = {"happened_at": _("Time"), "customer": _("Customer"),
                     "contact": _("Contact"), "channel": _("Channel"),
                     "channel_label": _("Channel"), "content": _("Content"),
                     "next_contact_on": _("Next contact"), "user": _("By"),
                     "created_at": _("Logged at")}
    formatters_columns = dict(readable_formatters("contact", "next_contact_on", "user"),
                              happened_at=minutes)
    add_form_extra_fields = {
        "customer": _customer_field(),
        "contact": QuerySelectField(_("Contact"), query_func=contacts_in_scope,
                                    get_pk_func=lambda c: c.id, allow_blank=True,
                                    blank_text="—", widget=Select2Widget()),
        "channel": SelectField(_("Channel"), choices=list(FOLLOWUP_CHANNELS.items())),
        "content": TextAreaField(_("Content")),
        "happened_at": StringField(_("Time"), validators=[OptionalValidator()],
                                   widget=BS3TextFieldWidget(),
                                   description=_("YYYY-MM-DD HH:MM, local time; empty: now")),
        "next_contact_on": StringField(_("Next contact"), validators=[OptionalValidator()],
                                       widget=BS3TextFieldWidget(),
                                       description=_("YYYY-MM-DD, optional")),
    }

    def prefill(self, form):
        # Typed and shown in business time; the service reads it so (followups.clean_followup).
        if not form.happened_at.data:
            form.happened_at.data = local_text(utcnow())

    def _save(self, form):
        contact = form.contact.data
        customer = form.customer.data
        followups.log_followup(
            self.actor(), customer.id if customer else 0,
            {k: form[k].data for k in ("channel", "content", "happened_at", "next_contact_on")},
            contact_id=contact.id if contact else None)


class DealView(_HistoryView):
    datamodel = KeysetInterface(Deal, load=[joinedload(Deal.customer), joinedload(Deal.user)])
    order_columns = ["won_on"]
    class_permission_name = RES_DEAL
    route_base = "/deals"
    base_filters = scope_filters("customer_id")
    list_title = show_title = _("Won deals")
    add_title = _("Record a won deal")
    list_columns = ["won_on", "customer", "amount", "product_line", "user"]
    show_columns = list_columns + ["notes", "created_at"]
    add_columns = ["customer", "amount", "won_on", "product_line", "notes"]
    search_columns = ["customer", "won_on", "product_line", "user"]
    label_columns = {"won_on": _("Won on"), "customer": _("Customer"), "amount": _("Amount"),
                     "product_line": _("Product line"), "user": _("Won by"),
                     "notes": _("Notes"), "created_at": _("Logged at")}
    formatters_columns = readable_formatters("product_line", "user", "notes")
    add_form_extra_fields = {
        "customer": _customer_field(),
        "amount": StringField(_("Amount"), widget=BS3TextFieldWidget(),
                              description=_("In yuan, e.g. 12800.00")),
        "won_on": StringField(_("Won on"), validators=[OptionalValidator()],
                              widget=BS3TextFieldWidget(),
                              description=_("YYYY-MM-DD; empty: today")),
    }

    def _save(self, form):
        customer = form.customer.data
        deals.record_deal(self.actor(), customer.id if customer else 0,
                          {k: form[k].data for k in ("amount", "won_on", "product_line",
                                                     "notes")})
