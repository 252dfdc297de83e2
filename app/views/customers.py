"""Customer and contact pages. Saves go through app.services.customers; scope on every route."""
from __future__ import annotations

import io

from flask import Response, abort, flash, redirect, request, url_for
from flask_appbuilder import action, expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _, ngettext
from sqlalchemy.orm import joinedload
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import Optional as OptionalValidator

from app.extensions import db
from app.models import Contact, Customer, Ownership, OwnershipEvent, User
from app.models.customer import CUSTOMER_TYPES
from app.models.org import EMPLOYMENT_ACTIVE
from app.queue import enqueue
from app.search_filters import SEARCH_ARG, quick_search_filters, quick_search_refusal
from app.security import (RES_CONTACT, RES_CUSTOMER, RES_OPPORTUNITY, RES_OWNERSHIP_EVENT,
                          RES_TASK,
                          current_user, customer_scope_clause, scope_filters)
from app.services import customers as customer_service
from app.services import tasks as task_service
from app.services import assignment, customer_page, exports, timeline
from app.services import opportunities as opportunity_service
from app.services.customers import CONTACT_FIELDS, CUSTOMER_FIELDS
from app.services.errors import GuishuError
from app.services.event_labels import event_kind_label, rule_label
from app.services.ids import parse_pk
from app.views.activity import DealView, FollowUpView
from app.paging import KeysetInterface
from app.views.base import ScopedModelView, local_path, minutes, readable_formatters
from app.views.ownership import redirect_to
from app.views.pickers import UserPickerField
from app.tag_filters import tag_filter

CUSTOMER_LABELS = {
    "name": _("Name"), "customer_type": _("Type"), "type_label": _("Type"),
    "industry": _("Industry"), "province": _("Province"), "city": _("City"),
    "address": _("Address"), "phone": _("Phone"), "mobile": _("Mobile"), "email": _("Email"),
    "source": _("Source"), "product_line": _("Product line"), "birthday": _("Birthday"),
    "birthday_display": _("Birthday"), "birthday_lunar": _("Lunar birthday"),
    "notes": _("Notes"), "owner": _("Owner"), "owner_label": _("Owner / pool"),
    "created_by": _("Created by"), "created_at": _("Created at"), "updated_at": _("Updated at"),
    "phone_e164": _("Phone (E.164)"), "mobile_e164": _("Mobile (E.164)"),
    "email_norm": _("Email (normalised)"),
    # The contact details as the reader may see them (app.services.masking).
    "mobile_shown": _("Mobile"), "phone_shown": _("Phone"), "email_shown": _("Email"),
}


# The owner / pool label of a customer row, loaded with it (one statement per page).
CUSTOMER_LIST_LOAD = [joinedload(Customer.ownership).joinedload(Ownership.owner),
                      joinedload(Customer.ownership).joinedload(Ownership.pool)]


def _shown(value) -> str:
    """A details value as text: empty for none, times to the minute."""
    if value is None:
        return ""
    if hasattr(value, "strftime") and hasattr(value, "hour"):
        return minutes(value)
    return str(value)


def customer_service_tab(actor, customer_id: int, has_access) -> dict:
    """The 服务 tab (app.views.tickets builds it: tickets, satisfaction, dedicated agent)."""
    from app.views.tickets import customer_service_tab as build

    return build(actor, customer_id, has_access)


def render_customer_page(view, customer: Customer, here: str):
    """The customer page (guishu/customer_show.html): header, actions, timeline (?page=N),
    contacts and details; `here` is the page's own path, where its actions come back to.
    Shared by the customer list's show page and the pool's."""
    actor = view.actor()
    try:
        page = timeline.page_of(actor, customer.id,
                                request.args.get("page", type=parse_pk) or 1)
    except GuishuError:
        abort(404)
    sm = view.appbuilder.sm
    from app.views.marketing import tag_context

    contacts = sorted(customer.contacts, key=lambda x: (not x.is_primary, x.id))
    details = [(group, [(CUSTOMER_LABELS[f], _shown(getattr(customer, f)), f)
                        for f in spec["fields"]])
               for group, spec in CustomerView.show_fieldsets]
    from app.services import cti_dial

    # 📞 beside the numbers (pool customers' masked ones too, for the pool's members).
    dial = cti_dial.offers_calls(actor, sm.has_access) and cti_dial.customer_dialable(
        actor, customer.id, customer.ownership.pool_id if customer.ownership else None)
    return view.render_template(
        "guishu/customer_show.html", title=customer.name, c=customer, details=details,
        head=customer_page.header(customer),
        can=customer_page.actions(actor, customer, sm.has_access),
        timeline=page, here=here, when=minutes,
        tasks=task_service.for_record(actor, "customer", customer.id),
        can_add_task=sm.has_access("can_write", RES_TASK),
        opportunities=opportunity_service.for_customer(actor, customer.id)
        if sm.has_access("can_read", RES_OPPORTUNITY) else [],
        can_read_opportunities=sm.has_access("can_read", RES_OPPORTUNITY),
        can_add_opportunity=sm.has_access("can_write", RES_OPPORTUNITY)
        and customer.ownership is not None and customer.ownership.owner_id is not None,
        contacts=contacts,
        tagging=tag_context(actor, sm.has_access, "customer", [customer.id]),
        contact_tagging=tag_context(actor, sm.has_access, "contact", [p.id for p in contacts]),
        service=customer_service_tab(actor, customer.id, sm.has_access), dial=dial)


def refuse_bad_search(view):
    """A search text that cannot be searched (too short, too long, a NUL byte): the list
    again without it, saying why."""
    refusal = quick_search_refusal()
    if refusal is None:
        return None
    flash(refusal, "warning")
    args = {k: v for k, v in request.args.items() if k != SEARCH_ARG}
    return redirect(url_for(f"{view.endpoint}.list", **args))


def assignable_owners():
    """Active users the current user may name as owner of a new customer (the form's choices)."""
    user = current_user()
    q = db.session.query(User).filter(User.active.is_(True),
                                      User.employment_status == EMPLOYMENT_ACTIVE)
    if user is None:
        return q.filter(User.id.is_(None))
    return q.filter(User.id.in_(customer_service.assignable_owner_ids(user))).order_by(
        User.username)


class ContactView(ScopedModelView):
    # The customer and its holder come with the row: the contact details rule needs them.
    datamodel = KeysetInterface(Contact, load=[
        joinedload(Contact.customer).joinedload(Customer.ownership)])
    base_order = ("id", "desc")
    order_columns = ["name"]
    class_permission_name = RES_CONTACT
    route_base = "/contacts"
    base_filters = scope_filters("customer_id")
    list_title = show_title = _("Contacts")
    add_title = _("Add contact")
    edit_title = _("Edit contact")
    list_columns = ["name", "customer", "title", "mobile_shown", "phone_shown", "email_shown",
                    "is_primary"]
    search_columns = ["name", "customer", "title", "mobile", "phone", "email"]
    add_columns = ["customer", "name", "title", "mobile", "phone", "email", "is_primary",
                   "birthday", "birthday_lunar", "notes"]
    edit_columns = ["name", "title", "mobile", "phone", "email", "is_primary", "birthday",
                    "birthday_lunar", "notes"]
    show_columns = ["name", "customer", "title", "mobile_shown", "phone_shown", "email_shown",
                    "is_primary", "birthday_display", "notes", "created_at"]
    label_columns = dict(CUSTOMER_LABELS, customer=_("Customer"), title=_("Title"),
                         is_primary=_("Primary contact"))
    # Only customers in the user's scope can be picked as the contact's company.
    add_form_query_rel_fields = {"customer": [["id", scope_filters()[0][1], lambda: None]]}
    formatters_columns = readable_formatters("title", "mobile_shown", "phone_shown",
                                             "email_shown", "notes")
    # FAB would make a non-nullable Boolean "required": an unticked box could never be saved.
    add_form_extra_fields = edit_form_extra_fields = {
        "is_primary": BooleanField(_("Primary contact")),
        "birthday": StringField(_("Birthday"), validators=[OptionalValidator()],
                                widget=BS3TextFieldWidget(),
                                description=_("YYYY-MM-DD or MM-DD; tick 'Lunar' for a lunar date")),
        "birthday_lunar": BooleanField(_("Lunar birthday"))}

    def _add(self):
        form = self.add_form.refresh()
        # The customer page's "add contact" link pre-selects its customer.
        if request.method == "GET" and form.customer.data is None:
            wanted = request.args.get("_flt_0_customer", type=parse_pk)
            form.customer.data = db.session.query(Customer).filter(
                Customer.id == wanted, customer_scope_clause(
                    current_user(), include_shared=False)).first() if wanted else None
        if request.method == "POST" and form.validate():
            data = {f: form[f].data for f in CONTACT_FIELDS if f in form}
            customer = form.customer.data
            try:
                customer_service.add_contact(self.actor(), customer.id if customer else 0, data)
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(self.add_row_message, "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        item = self._scoped_get(pk)
        try:
            customer_service.get_customer_for_write(self.actor(), item.customer_id)
        except GuishuError:
            abort(404)  # visible through a read-only share, not editable
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            if form.validate():
                data = {f: form[f].data for f in CONTACT_FIELDS if f in form}
                try:
                    customer_service.update_contact(self.actor(), item.id, data)
                except GuishuError as exc:
                    self.show_error(form, exc)
                    return self._get_edit_widget(form=form)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
            form.birthday.data = item.birthday_display.replace("农历 ", "")
        return self._get_edit_widget(form=form)

    def _delete(self, pk):
        item = self._scoped_get(pk)
        try:
            customer_service.delete_contact(self.actor(), item.id)
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            flash(self.delete_row_message, "success")
        self.update_redirect()


class HistoryScopeFilter(BaseFilter):
    """The data scope of ownership events: merged customers' events stay under their own
    ids, and are in scope with the survivor (app.services.merge.history_scope_clause)."""

    name = "data scope"
    arg_name = None

    def apply(self, query, value):
        from app.extensions import db
        from app.services.merge import history_scope_clause, history_scope_joined

        column = getattr(self.datamodel.obj, self.column_name)
        if db.session.get_bind().dialect.name == "sqlite":
            return history_scope_joined(query, current_user(), column)
        return query.filter(history_scope_clause(current_user(), column))


class HistoryOfFilter(BaseFilter):
    """A customer page's ownership history: its events and those of the customers merged
    into it (app.services.merge.history_clause)."""

    name = "history of"
    arg_name = None

    def apply(self, query, value):
        from app.services.merge import history_clause

        return query.filter(history_clause(getattr(self.datamodel.obj, self.column_name), value))


class CustomerEventView(ScopedModelView):
    """Ownership history (read-only): who held the customer, when, why, by which rule."""

    datamodel = KeysetInterface(OwnershipEvent, load=[
        joinedload(OwnershipEvent.from_owner), joinedload(OwnershipEvent.to_owner),
        joinedload(OwnershipEvent.from_pool), joinedload(OwnershipEvent.to_pool),
        joinedload(OwnershipEvent.actor)])
    order_columns: list[str] = []  # newest first (id); far back through the time filter
    class_permission_name = RES_OWNERSHIP_EVENT
    route_base = "/ownership-events"
    base_filters = [["customer_id", HistoryScopeFilter, lambda: None]]
    base_permissions = ["can_read"]
    base_order = ("id", "desc")
    list_title = show_title = _("Ownership history")
    list_columns = ["created_at", "customer_id", "kind", "from_label", "to_label", "reason",
                    "rule", "actor"]
    show_columns = list_columns
    search_columns = ["customer_id", "kind", "created_at", "actor"]
    formatters_columns = dict(readable_formatters("reason", "actor"), kind=event_kind_label,
                              rule=rule_label)
    label_columns = {"created_at": _("Time"), "customer_id": _("Customer ID"), "kind": _("Kind"),
                     "from_label": _("From"), "to_label": _("To"), "reason": _("Reason"),
                     "rule": _("Rule"), "actor": _("By")}


class CustomerView(ScopedModelView):
    datamodel = KeysetInterface(Customer, load=CUSTOMER_LIST_LOAD)
    order_columns = ["name", "created_at"]
    class_permission_name = RES_CUSTOMER
    route_base = "/customers"
    base_filters = scope_filters("id") + quick_search_filters("id") + tag_filter("customer")
    list_template = "guishu/customer_list.html"
    base_order = ("id", "desc")
    base_permissions = ["can_read", "can_write", "can_delete", "can_export", "can_release",
                        "can_transfer", "can_lock", "can_unlock", "can_refresh_keys",
                        "can_grade", "can_tag"]
    method_permission_name = dict(ScopedModelView.method_permission_name, release="release",
                                  request_transfer="transfer", lock="lock", unlock="unlock",
                                  set_grade="grade", tag="tag")
    list_title = _("Customers")
    show_title = _("Customer")
    add_title = _("Add customer")
    edit_title = _("Edit customer")
    list_columns = ["name", "type_label", "industry", "province", "city", "owner_label",
                    "created_at"]
    search_columns = ["name", "customer_type", "industry", "province", "city", "source",
                      "product_line", "phone", "mobile", "email", "created_at"]
    add_columns = ["name", "customer_type", "owner", "industry", "province", "city", "address",
                   "mobile", "phone", "email", "source", "product_line", "birthday",
                   "birthday_lunar", "notes", "confirm_duplicates"]
    edit_columns = [c for c in add_columns if c != "owner"]
    # The customer page's details tab (render_customer_page); no internal key (*_e164,
    # email_norm, name_core…) belongs here.
    show_fieldsets = [
        (_("Customer"), {"fields": ["name", "type_label", "owner_label", "industry", "source",
                                   "product_line", "notes"]}),
        (_("Contact details"), {"fields": ["province", "city", "address", "mobile_shown",
                                          "phone_shown", "email_shown", "birthday_display"]}),
        (_("Record"), {"fields": ["created_by", "created_at", "updated_at"]}),
    ]
    label_columns = CUSTOMER_LABELS
    formatters_columns = readable_formatters(
        "industry", "province", "city", "address", "mobile_shown", "phone_shown", "email_shown",
        "source", "product_line", "notes", "created_by")
    related_views = [ContactView, FollowUpView, DealView, CustomerEventView]
    # The forms check for duplicates while the user types (static/guishu/dedupe_check.js).
    add_template = "guishu/customer_add.html"
    edit_template = "guishu/customer_edit.html"
    _form_fields = {
        "customer_type": SelectField(_("Type"), choices=list(CUSTOMER_TYPES.items()),
                                     default="company"),
        "birthday": StringField(_("Birthday"), validators=[OptionalValidator()],
                                widget=BS3TextFieldWidget(),
                                description=_("YYYY-MM-DD or MM-DD; tick 'Lunar' for a lunar date")),
        "birthday_lunar": BooleanField(_("Lunar birthday")),
        "confirm_duplicates": BooleanField(
            _("Save anyway"), description=_("Tick after a duplicate warning once you have "
                                            "checked it is not the same customer")),
    }
    add_form_extra_fields = dict(_form_fields, owner=UserPickerField(
        _("Owner"), query_func=assignable_owners,
        description=_("Empty: reps and managers own what they create; admins and staff put it "
                      "in the default pool")))
    edit_form_extra_fields = _form_fields

    def _deserialize_pk_if_composite(self, pk):
        value = super()._deserialize_pk_if_composite(pk)
        self._follow_merge(value)
        return value

    @expose("/list/")
    @has_access
    def list(self):
        return refuse_bad_search(self) or super().list()

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        """The customer page, the hub a rep works from (render_customer_page)."""
        item = self._scoped_get(pk)
        self.update_redirect()
        return render_customer_page(self, item, url_for("CustomerView.show", pk=item.id))

    def _get_related_view_widget(self, item, related_view, order_column="", order_direction="",
                                 page=None, page_size=None):
        if not isinstance(related_view, CustomerEventView):
            return super()._get_related_view_widget(item, related_view, order_column,
                                                    order_direction, page, page_size)
        # FAB would match the events' customer relationship (this id only): the history
        # includes the customers merged into this one.
        filters = related_view.datamodel.get_filters().add_filter_related_view(
            "customer_id", HistoryOfFilter, item.id)
        return related_view._get_view_widget(filters=filters, order_column=order_column,
                                             order_direction=order_direction, page=page,
                                             page_size=page_size)

    def _follow_merge(self, pk: int) -> None:
        """Opening a merged customer's old page (show or edit) leads to the survivor, for
        users who may see it; anything else about a missing id stays a 404."""
        from app.services.merge import visible_survivor

        page = (request.endpoint or "").rsplit(".", 1)[-1]
        if request.method != "GET" or page not in ("show", "edit"):
            return
        survivor = visible_survivor(current_user(), pk)
        if survivor is not None:
            flash(str(_("Customer #%(old)s was merged into #%(new)s.", old=pk, new=survivor)),
                  "info")
            abort(redirect(url_for(f"{self.endpoint}.{page}", pk=survivor)))

    @staticmethod
    def _form_data(form) -> dict:
        return {f: form[f].data for f in CUSTOMER_FIELDS if f in form}

    def _add(self):
        form = self.add_form.refresh()
        if request.method == "POST" and form.validate():
            owner = form.owner.data
            try:
                customer = customer_service.create_customer(
                    self.actor(), self._form_data(form), owner_id=owner.id if owner else None,
                    confirm_duplicates=bool(form.confirm_duplicates.data))
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(str(_("%(message)s: %(name)s (%(holder)s)", message=self.add_row_message,
                        name=customer.name, holder=customer.owner_label)), "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        item = self._scoped_get(pk)
        try:
            customer_service.get_customer_for_write(self.actor(), item.id)
        except GuishuError:
            abort(404)  # visible through a read-only share, not editable
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            if form.validate():
                try:
                    customer_service.update_customer(
                        self.actor(), item.id, self._form_data(form),
                        confirm_duplicates=bool(form.confirm_duplicates.data))
                except GuishuError as exc:
                    self.show_error(form, exc)
                    return self.edit_widgets(form, item)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
            form.birthday.data = item.birthday_display.replace("农历 ", "")
        return self.edit_widgets(form, item)

    def _delete(self, pk):
        item = self._scoped_get(pk)
        try:
            customer_service.delete_customer(self.actor(), item.id)
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            flash(self.delete_row_message, "success")
        self.update_redirect()

    @expose("/export.csv")
    @has_access
    def export(self):
        """CSV of exactly the customers in the user's scope."""
        buf = io.StringIO()
        buf.write("\ufeff")  # Excel in China opens UTF-8 CSV correctly only with a BOM
        exports.write_csv(self.actor(), buf)
        return Response(buf.getvalue(), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition": "attachment; filename=customers.csv"})

    @expose("/export.xlsx")
    @has_access
    def export_xlsx(self):
        """The same rows as an Excel workbook."""
        data, _n = exports.xlsx_bytes(self.actor())
        return Response(data, mimetype="application/vnd.openxmlformats-officedocument."
                                       "spreadsheetml.sheet",
                        headers={"Content-Disposition": "attachment; filename=customers.xlsx"})

    # -- ownership verbs on the selection (the service re-checks scope and rules) ---------------
    @action("release", _("Release to pool"), None, "fa-undo", single=False)
    def release(self, items):
        return redirect_to("OwnershipView.release", items)

    @action("request_transfer", _("Request transfer"), None, "fa-exchange", single=False)
    def request_transfer(self, items):
        return redirect_to("TransferView.new", items)

    @action("set_grade", _("Set grade"), None, "fa-star", single=False)
    def set_grade(self, items):
        return redirect_to("OwnershipView.grade", items)

    @action("tag", _("Tag"), None, "fa-tags", single=False)
    def tag(self, items):
        from app.views.marketing import tag_action_redirect

        return tag_action_redirect("customer", items)

    @action("lock", _("Lock"), _("Lock the selected customers (exempt from reclaim)?"),
            "fa-lock", single=False)
    def lock(self, items):
        return self._ownership_verb(assignment.lock, items, lambda n: ngettext(
            "Locked %(n)s customer.", "Locked %(n)s customers.", n, n=n))

    @action("unlock", _("Unlock"), _("Unlock the selected customers?"), "fa-unlock",
            single=False)
    def unlock(self, items):
        return self._ownership_verb(assignment.unlock, items, lambda n: ngettext(
            "Unlocked %(n)s customer.", "Unlocked %(n)s customers.", n, n=n))

    def _ownership_verb(self, fn, items, done):
        items = items if isinstance(items, list) else [items]
        try:
            changed = fn(self.actor(), [c.id for c in items])
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            flash(done(len(changed)), "success")
        # From the customer page: back to it.
        return redirect(local_path(request.form.get("next")) or self.get_redirect())

    @action("refresh_keys", _("Re-normalise phone/email"),
            _("Recompute normalised phone, mobile and email keys in the background?"),
            "fa-refresh", single=False)
    def refresh_keys(self, items):
        items = items if isinstance(items, list) else [items]
        job = enqueue("jobs.customers.refresh_normalised_keys", [c.id for c in items])
        if job is None:
            flash(_("Background jobs are paused (Redis unreachable): nothing was queued."),
                  "warning")
        else:
            flash(ngettext("Queued: %(n)s customer will be re-normalised.",
                           "Queued: %(n)s customers will be re-normalised.", len(items),
                           n=len(items)), "info")
        self.update_redirect()
        return redirect(self.get_redirect())
