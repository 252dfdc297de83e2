"""客户服务 pages of the SLA side: SLA policies (CRUD), the work calendar (the days that depart
from Monday-Friday, by year, and seeding a year from `holidays`) and the global working
hours. Every write goes through app.services.sla_policies / work_calendar, which also say
who may write (admins and service managers)."""
from __future__ import annotations

import datetime as dt

from flask import abort, flash, make_response, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import lazy_gettext as _
from wtforms import BooleanField, SelectField

from app.extensions import db
from app.models.service_desk import SLA_CLOCKS, TICKET_PRIORITIES, SlaPolicy
from app.paging import KeysetInterface
from app.security import RES_SLA_POLICY, RES_WORK_CALENDAR
from app.services import sla_policies, work_calendar
from app.services.errors import GuishuError, NotFound, ValidationFailed
from app.services.ids import parse_pk
from app.services.times import local_today
from app.views.base import signed_in_user
from app.views.org import ServiceModelView


def _choice_label(choices):
    return lambda value: str(choices.get(value, value)) if value else str(_("Any"))


class SlaPolicyView(ServiceModelView):
    """SLA 策略: the most specific active policy matching a ticket's priority and its
    customer's grade applies (app.services.sla.choose_policy)."""

    datamodel = KeysetInterface(SlaPolicy)
    order_columns: list[str] = []
    class_permission_name = RES_SLA_POLICY
    route_base = "/sla-policies"
    base_permissions = ["can_read", "can_write", "can_delete"]
    base_order = ("id", "asc")
    list_title = show_title = _("SLA policies")
    add_title, edit_title = _("Add SLA policy"), _("Edit SLA policy")
    list_columns = ["name", "active", "priority", "grade", "first_response_minutes",
                    "resolution_minutes", "clock", "warn_before_minutes",
                    "escalate_after_minutes", "position"]
    show_columns = list_columns + ["updated_at"]
    add_columns = edit_columns = list_columns
    label_columns = {
        "name": _("Name"), "active": _("Active"), "priority": _("Priority"),
        "grade": _("Customer grade"), "first_response_minutes": _("First response (minutes)"),
        "resolution_minutes": _("Resolution (minutes)"), "clock": _("Clock"),
        "warn_before_minutes": _("Warn before (minutes)"),
        "escalate_after_minutes": _("Escalate to the manager after (minutes)"),
        "position": _("Order"), "updated_at": _("Updated at")}
    description_columns = {
        "priority": _("Empty: any priority. A policy naming both the priority and the grade "
                      "beats one naming one of them, which beats one naming neither; then "
                      "the lowest order"),
        "clock": _("Business hours count only the working periods of working days (the work "
                   "calendar); around the clock counts every minute"),
        "warn_before_minutes": _("The agent is warned this long before a target falls due"),
        "escalate_after_minutes": _("On a breach the team lead is told at once, the team's "
                                    "manager this long after"),
    }
    formatters_columns = {"priority": _choice_label(TICKET_PRIORITIES),
                          "grade": lambda v: v or str(_("Any")),
                          "clock": _choice_label(SLA_CLOCKS)}
    add_form_extra_fields = edit_form_extra_fields = {
        "priority": SelectField(_("Priority"), choices=[("", _("Any"))] + [
            (k, v) for k, v in TICKET_PRIORITIES.items()]),
        "grade": SelectField(_("Customer grade"), choices=[("", _("Any")), ("A", "A"),
                                                           ("B", "B"), ("C", "C")]),
        "clock": SelectField(_("Clock"), choices=list(SLA_CLOCKS.items())),
        "active": BooleanField(_("Active"), default=True),
    }

    def create_item(self, values: dict) -> None:
        sla_policies.create(self.actor(), values)

    def update_item(self, pk: int, values: dict) -> None:
        sla_policies.update(self.actor(), pk, values)

    def delete_item(self, pk: int) -> None:
        sla_policies.delete(self.actor(), pk)


def _year_arg() -> int:
    value = parse_pk(request.args.get("year"))
    return value if value is not None and 1990 <= value <= 2100 else local_today().year


class WorkCalendarView(BaseView):
    """工作日历: one year's departures from Monday-Friday (a year has a few dozen, so the page
    shows the whole year: bounded, no paging), a form to set how a day counts, delete, and
    seeding the year from `holidays` (admins' days are kept)."""

    route_base = "/work-calendar"
    class_permission_name = RES_WORK_CALENDAR
    method_permission_name = {"index": "read", "put": "write", "delete": "delete",
                              "seed": "write"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self, errors=None, values=None, status=200):
        year = _year_arg()
        rows = work_calendar.days_between(dt.date(year, 1, 1), dt.date(year, 12, 31))
        edit = None
        day_id = parse_pk(request.args.get("edit"))
        if day_id is not None and values is None:
            found = [r for r in rows if r.id == day_id]
            edit = found[0] if found else None
            if edit is not None:
                values = {"day": edit.day.isoformat(), "is_workday": edit.is_workday,
                          "name": edit.name or ""}
        return make_response(self.render_template(
            "guishu/work_calendar.html", year=year, rows=rows, errors=errors or {},
            values=values or {}, weekday=lambda d: d.isoweekday(),
            periods=work_calendar.global_periods_text()), status)

    @expose("/put", methods=["POST"])
    @has_access
    def put(self):
        values = {"day": request.form.get("day", ""),
                  "is_workday": request.form.get("is_workday") == "1",
                  "name": request.form.get("name", "")}
        try:
            row = work_calendar.put_day(signed_in_user(), values)
        except ValidationFailed as exc:
            db.session.rollback()
            return self.index(errors=exc.fields, values=values, status=400)
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            return redirect(url_for("WorkCalendarView.index"))
        flash(_("Saved: %(day)s", day=row.day.isoformat()), "success")
        return redirect(url_for("WorkCalendarView.index", year=row.day.year))

    @expose("/<day_id>/delete", methods=["POST"])
    @has_access
    def delete(self, day_id):
        pk = parse_pk(day_id)
        if pk is None:
            abort(404)
        try:
            row = work_calendar.get_day(pk)
            year = row.day.year
            work_calendar.delete_day(signed_in_user(), row.day)
        except NotFound:
            abort(404)
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            return redirect(url_for("WorkCalendarView.index"))
        flash(_("The day counts by the weekly pattern again."), "success")
        return redirect(url_for("WorkCalendarView.index", year=year))

    @expose("/seed", methods=["POST"])
    @has_access
    def seed(self):
        year = parse_pk(request.form.get("year"))
        try:
            counts = work_calendar.seed_year(year if year is not None else -1, signed_in_user())
        except ValidationFailed as exc:
            db.session.rollback()
            flash("; ".join(exc.fields.values()), "danger")
            return redirect(url_for("WorkCalendarView.index"))
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            return redirect(url_for("WorkCalendarView.index"))
        flash(_("%(year)s seeded from the holiday calendar: %(added)s days added, %(updated)s "
                "updated (days edited by hand are kept)", year=year, **counts), "success")
        return redirect(url_for("WorkCalendarView.index", year=year))


class WorkingHoursView(BaseView):
    """工作时间: the global working periods of a working day (a team may have its own)."""

    route_base = "/working-hours"
    class_permission_name = RES_WORK_CALENDAR
    method_permission_name = {"index": "read", "save": "write"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self, errors=None, value=None, status=200):
        return make_response(self.render_template(
            "guishu/working_hours.html", errors=errors or {},
            value=work_calendar.global_periods_text() if value is None else value), status)

    @expose("/save", methods=["POST"])
    @has_access
    def save(self):
        value = request.form.get("work_periods", "")
        try:
            work_calendar.set_global_periods(signed_in_user(), value)
        except ValidationFailed as exc:
            db.session.rollback()
            return self.index(errors=exc.fields, value=value, status=400)
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
            return redirect(url_for("WorkingHoursView.index"))
        flash(_("Working hours saved."), "success")
        return redirect(url_for("WorkingHoursView.index"))
