"""待办 pages: the task list (own, or in scope), add and edit through app.services.tasks, and
done / cancel / reopen as list actions, re-checked against the scope for every row."""
from __future__ import annotations

import datetime as dt

from flask import abort, flash, redirect, request
from flask_appbuilder.actions import action
from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, BS3TextFieldWidget
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _, ngettext
from markupsafe import Markup
from sqlalchemy.orm import joinedload
from wtforms import StringField, TextAreaField
from wtforms.validators import Optional as OptionalValidator

from app.extensions import db
from app.models import Task, User
from app.models.org import EMPLOYMENT_ACTIVE
from app.paging import KeysetInterface
from app.security import METHOD_PERMISSIONS, RES_TASK, current_user
from app.services import tasks
from app.services.errors import GuishuError
from app.services.ids import parse_pk
from app.services.times import local_text, local_today
from app.views.base import ScopedModelView, minutes, readable_formatters
from app.views.pickers import UserPickerField


class TaskScopeFilter(BaseFilter):
    """FAB base filter: the tasks the signed-in user may read (app.services.tasks.reach)."""

    name = "task scope"
    arg_name = None

    def apply(self, query, value):
        return query.filter(tasks.scope_clause(current_user()))


def assignable_users():
    """The owner choices: active users whose tasks the signed-in user may act on."""
    q = db.session.query(User).filter(User.active.is_(True),
                                      User.employment_status == EMPLOYMENT_ACTIVE)
    owners = tasks.reach(current_user())
    if owners is not None:
        q = q.filter(User.id.in_(sorted(owners)))
    return q.order_by(User.username)


def customer_cell(customer) -> Markup:
    """The linked customer as a link to its page."""
    if customer is None:
        return Markup("")
    return Markup('<a href="/customers/show/{}">{}</a>').format(customer.id, customer.name)


class TaskView(ScopedModelView):
    datamodel = KeysetInterface(Task, load=[joinedload(Task.owner), joinedload(Task.customer)])
    order_columns = ["due_at"]
    class_permission_name = RES_TASK
    route_base = "/tasks"
    base_filters = [["owner_id", TaskScopeFilter, lambda: None]]
    base_permissions = ["can_read", "can_write"]
    # Tasks are closed (done / cancelled), never deleted: delete maps to a permission nobody
    # has; the verbs are writes.
    method_permission_name = dict(METHOD_PERMISSIONS, delete="amend", done="write",
                                  cancel="write", reopen="write")
    base_order = ("due_at", "asc")
    list_title = show_title = _("Tasks")
    add_title = _("Add a task")
    edit_title = _("Edit task")
    list_columns = ["due_at", "subject", "customer", "owner", "status_label", "source_label"]
    show_columns = list_columns + ["notes", "created_by", "created_at", "done_at",
                                   "reminded_at"]
    add_columns = ["subject", "due_at", "owner", "customer_id", "notes"]
    edit_columns = ["subject", "due_at", "owner", "notes"]
    search_columns = ["status", "source", "subject", "due_at", "owner"]
    label_columns = {"due_at": _("Due"), "subject": _("Subject"), "customer": _("Customer"),
                     "customer_id": _("Customer ID"), "owner": _("Owner"),
                     "status": _("Status"), "status_label": _("Status"),
                     "source": _("Source"), "source_label": _("Source"), "notes": _("Notes"),
                     "created_by": _("Created by"), "created_at": _("Created at"),
                     "done_at": _("Done at"), "reminded_at": _("Reminded at")}
    formatters_columns = dict(readable_formatters("notes", "created_by"), due_at=minutes,
                              done_at=minutes, reminded_at=minutes, customer=customer_cell)
    _fields = {
        "subject": StringField(_("Subject"), widget=BS3TextFieldWidget()),
        "due_at": StringField(_("Due"), widget=BS3TextFieldWidget(),
                              description=_("YYYY-MM-DD HH:MM, local time (a date alone: "
                                            "09:00 that day)")),
        "owner": UserPickerField(_("Owner"), query_func=assignable_users,
                                 description=_("Empty: yourself")),
        "notes": TextAreaField(_("Notes"), widget=BS3TextAreaFieldWidget()),
    }
    add_form_extra_fields = dict(_fields, customer_id=StringField(
        _("Customer ID"), validators=[OptionalValidator()], widget=BS3TextFieldWidget(),
        description=_("Optional: the customer this task is about")))
    edit_form_extra_fields = _fields

    @staticmethod
    def _values(form, *fields) -> dict:
        owner = form.owner.data
        out = {f: form[f].data for f in fields}
        out["owner_id"] = owner.id if owner is not None else None
        return out

    def _add(self):
        form = self.add_form.refresh()
        if request.method == "GET":
            # The customer page's "add task" names its customer (?customer_id=<id>).
            wanted = request.args.get("customer_id", type=parse_pk)
            form.customer_id.data = str(wanted) if wanted else ""
            # Tomorrow at 09:00 unless typed otherwise.
            form.due_at.data = form.due_at.data or local_text(
                tasks.day_due(local_today() + dt.timedelta(days=1)))
        if request.method == "POST" and form.validate():
            values = self._values(form, "subject", "due_at", "notes")
            customer = (form.customer_id.data or "").strip()
            if customer:
                values.update(record_type="customer", record_id=customer)
            try:
                tasks.create(self.actor(), values)
            except GuishuError as exc:
                if getattr(exc, "fields", None) and "record_id" in exc.fields:
                    exc.fields["customer_id"] = exc.fields.pop("record_id")
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(self.add_row_message, "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        item = self._scoped_get(pk)
        try:
            tasks.get_task(self.actor(), item.id, write=True)
        except GuishuError:
            abort(404)  # readable (an auditor), not theirs to change
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            if form.validate():
                try:
                    tasks.update_task(self.actor(), item.id,
                                      self._values(form, "subject", "due_at", "notes"))
                except GuishuError as exc:
                    self.show_error(form, exc)
                    return self.edit_widgets(form, item)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
            form.due_at.data = local_text(item.due_at)
        return self.edit_widgets(form, item)

    def _delete(self, pk):
        abort(404)

    @action("done", _("Mark done"), _("Mark the selected tasks done?"), "fa-check",
            single=True)
    def done(self, items):
        return self._verb("done", items, lambda n: ngettext(
            "%(n)s task marked done.", "%(n)s tasks marked done.", n, n=n))

    @action("cancel", _("Cancel task"), _("Cancel the selected tasks?"), "fa-ban", single=True)
    def cancel(self, items):
        return self._verb("cancel", items, lambda n: ngettext(
            "Cancelled %(n)s task.", "Cancelled %(n)s tasks.", n, n=n))

    @action("reopen", _("Reopen"), _("Reopen the selected tasks?"), "fa-undo", single=True)
    def reopen(self, items):
        return self._verb("reopen", items, lambda n: ngettext(
            "Reopened %(n)s task.", "Reopened %(n)s tasks.", n, n=n))

    def _verb(self, verb: str, items, done):
        items = items if isinstance(items, list) else [items]
        try:
            n = tasks.change_many(self.actor(), [t.id for t in items], verb)
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            skipped = len(items) - n
            note = _("(%(n)s not in a state for this, left alone)", n=skipped) if skipped else ""
            flash(str(done(n)) + str(note), "success" if n else "warning")
        return redirect(self.get_redirect())
