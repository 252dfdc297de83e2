"""业绩目标 pages: the targets list (own, department tree, or all), set / change / delete
through app.services.targets, and the attainment page (month or quarter) that the manager's
team view shares."""
from __future__ import annotations

from flask import abort, flash, request
from flask_appbuilder import expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget, Select2Widget
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _
from sqlalchemy.orm import joinedload
from wtforms import SelectField, StringField

from app.extensions import db
from app.models import Department, SalesTarget, User
from app.models.org import EMPLOYMENT_ACTIVE
from app.models.target import PERIOD_KINDS
from app.paging import KeysetInterface
from app.security import METHOD_PERMISSIONS, RES_TARGET, current_user
from app.services import targets
from app.services.errors import GuishuError
from app.views.base import ScopedModelView, readable_formatters
from app.views.pickers import UserPickerField


class TargetScopeFilter(BaseFilter):
    """FAB base filter: the targets the signed-in user reads (app.services.targets.reach)."""

    name = "target scope"
    arg_name = None

    def apply(self, query, value):
        return query.filter(targets.scope_clause(current_user()))


def settable_users():
    """The user choices: active users whose targets the signed-in user may set."""
    q = db.session.query(User).filter(User.active.is_(True),
                                      User.employment_status == EMPLOYMENT_ACTIVE)
    users = targets.reach(current_user(), write=True).users
    if users is not None:
        q = q.filter(User.id.in_(sorted(users)))
    return q.order_by(User.username)


def settable_departments():
    q = db.session.query(Department)
    departments = targets.reach(current_user(), write=True).departments
    if departments is not None:
        q = q.filter(Department.id.in_(sorted(departments)))
    return q.order_by(Department.path)


def money(value) -> str:
    return "" if value is None else f"{value:,.2f}"


def rate(value) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def period_args(prefix: str = "") -> tuple[str, object]:
    """The page's period from ?period=month|quarter&start=… (a bad value: 404, never 500)."""
    try:
        return targets.read_period(request.args.get(f"{prefix}period"),
                                   request.args.get(f"{prefix}start"))
    except GuishuError:
        abort(404)


class SalesTargetView(ScopedModelView):
    datamodel = KeysetInterface(SalesTarget, load=[joinedload(SalesTarget.user),
                                                   joinedload(SalesTarget.department),
                                                   joinedload(SalesTarget.set_by)])
    order_columns = ["period_start"]
    class_permission_name = RES_TARGET
    route_base = "/targets"
    base_filters = [["id", TargetScopeFilter, lambda: None]]
    base_permissions = ["can_read", "can_write"]
    method_permission_name = dict(METHOD_PERMISSIONS, delete="write", attainment="read")
    base_order = ("period_start", "desc")
    list_title = show_title = _("Sales targets")
    add_title = _("Set a sales target")
    edit_title = _("Change sales target")
    list_columns = ["period_label", "holder_label", "won_amount", "new_customers", "set_by"]
    show_columns = ["period_label", "holder_label", "won_amount", "new_customers", "set_by",
                    "created_at", "updated_at"]
    add_columns = ["user", "department", "period_kind", "period_start", "won_amount",
                   "new_customers"]
    edit_columns = ["won_amount", "new_customers"]
    search_columns = ["period_kind", "period_start", "user", "department"]
    label_columns = {"period_label": _("Period"), "period_kind": _("Period"),
                     "period_start": _("Period starts"), "holder_label": _("Target holder"),
                     "user": _("User"), "department": _("Department"),
                     "won_amount": _("Target won amount"),
                     "new_customers": _("Target new customers"), "set_by": _("Set by"),
                     "created_at": _("Created at"), "updated_at": _("Updated at")}
    formatters_columns = dict(readable_formatters("set_by"), won_amount=money)
    _measures = {
        "won_amount": StringField(_("Target won amount"), widget=BS3TextFieldWidget(),
                                  description=_("Yuan; empty: no amount target")),
        "new_customers": StringField(_("Target new customers"), widget=BS3TextFieldWidget(),
                                     description=_("Empty: no new-customer target")),
    }
    add_form_extra_fields = dict(
        _measures,
        user=UserPickerField(_("User"), query_func=settable_users,
                             description=_("A user, or a department below")),
        department=QuerySelectField(_("Department"), query_func=settable_departments,
                                    get_pk_func=lambda d: d.id,
                                    allow_blank=True, widget=Select2Widget()),
        period_kind=SelectField(_("Period"), choices=[(k, v) for k, v in PERIOD_KINDS.items()],
                                default="month"),
        period_start=StringField(_("Period starts"), widget=BS3TextFieldWidget(),
                                 description=_("2026-10 for a month, 2026-Q4 for a quarter, "
                                               "or the period's first day")))
    edit_form_extra_fields = _measures

    def _add(self):
        form = self.add_form.refresh()
        if request.method == "GET" and not form.period_start.data:
            form.period_start.data = targets.period_containing("month").strftime("%Y-%m")
        if request.method == "POST" and form.validate():
            user, department = form.user.data, form.department.data
            values = {"user_id": user.id if user is not None else None,
                      "department_id": department.id if department is not None else None,
                      "period_kind": form.period_kind.data,
                      "period_start": form.period_start.data,
                      "won_amount": form.won_amount.data,
                      "new_customers": form.new_customers.data}
            try:
                targets.create_target(self.actor(), values)
            except GuishuError as exc:
                fields = getattr(exc, "fields", None) or {}
                for field, name in (("user_id", "user"), ("department_id", "department")):
                    if field in fields:
                        fields[name] = fields.pop(field)
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(self.add_row_message, "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        item = self._scoped_get(pk)
        try:
            targets.get_target(self.actor(), item.id, write=True)
        except GuishuError:
            abort(404)  # readable (a rep, an auditor, a manager's own), not theirs to change
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            if form.validate():
                try:
                    targets.update_target(self.actor(), item.id, {
                        "won_amount": form.won_amount.data,
                        "new_customers": form.new_customers.data})
                except GuishuError as exc:
                    self.show_error(form, exc)
                    return self.edit_widgets(form, item)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
            form.won_amount.data = "" if item.won_amount is None else f"{item.won_amount:.2f}"
            form.new_customers.data = "" if item.new_customers is None \
                else str(item.new_customers)
        return self.edit_widgets(form, item)

    def _delete(self, pk):
        item = self._scoped_get(pk)
        try:
            targets.delete_target(self.actor(), item.id)
        except GuishuError:
            abort(404)
        flash(self.delete_row_message, "success")
        self.update_redirect()

    @expose("/attainment")
    @has_access
    def attainment(self):
        """达成率 of everyone the user reads (a rep: himself), month or quarter."""
        kind, start = period_args()
        report = targets.team_attainment(current_user(), kind, start)
        return self.render_template("guishu/target_attainment.html", report=report,
                                    kinds=PERIOD_KINDS, money=money, rate=rate,
                                    here="SalesTargetView.attainment")
