"""/api/v1/sla-policies/ (CRUD; agents read, admins and service managers write) and
/api/v1/work-calendar/ (the days of a year or a range, put / delete a day, the working
periods). Load, call app.services.sla_policies / work_calendar, map errors."""
from __future__ import annotations

from flask_appbuilder.api import expose, rison
from flask_appbuilder.security.decorators import permission_name, protect

from app.api import schemas, service_calendar_schemas as sc
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.security import RES_SLA_POLICY, RES_WORK_CALENDAR, current_user
from app.services import sla_policies, work_calendar
from app.services.ids import parse_int


def _policy(row) -> dict:
    return schemas.dump(sc.SlaPolicyResult, {"id": row.id, "result": sla_policies.to_dict(row)})


class SlaPolicyApi(DocumentedApi):
    resource_name = "sla-policies"
    class_permission_name = RES_SLA_POLICY
    openapi_spec_tag = "SLA policies"
    openapi_spec_component_schemas = schemas.COMPONENTS + sc.COMPONENTS
    apispec_parameter_schemas = {"SlaPolicyListQuery": sc.policy_list_query()}

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @rison(sc.POLICY_LIST_KEYS)
    @maps_domain_errors
    def list_policies(self, **kwargs):
        """The SLA policies.
        ---
        get:
          summary: SLA 策略 — by id; a page after the cursor `after` (the previous page's
            next_after)
          parameters:
          - in: query
            name: q
            description: 'rison: (after:0,page_size:50)'
            content:
              application/json:
                schema: {$ref: '#/components/schemas/SlaPolicyListQuery'}
          answer: SlaPolicyPage
          errors: [400, 401, 403]
        """
        args = kwargs.get("rison") or {}
        size = parse_int(args.get("page_size", 50), "page_size", 1, sc.MAX_PAGE_SIZE)
        after = parse_int(args.get("after", 0), "after")
        rows = sla_policies.list_policies(current_user(), after or None, size + 1)
        return self.response(200, **schemas.dump(sc.SlaPolicyPage, {
            "result": [sla_policies.to_dict(r) for r in rows[:size]],
            "next_after": rows[size - 1].id if len(rows) > size else None}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def show(self, pk: int):
        """One SLA policy.
        ---
        get:
          summary: SLA 策略 — one policy
          answer: SlaPolicyResult
          errors: [400, 401, 403, 404]
        """
        return self.response(200, **_policy(sla_policies.get_policy(current_user(), pk)))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Add an SLA policy.
        ---
        post:
          summary: 新建 SLA 策略 — targets for a priority and / or a customer grade (admins,
            service managers)
          body: SlaPolicyCreate
          answer: SlaPolicyResult
          answer_status: 201
          errors: [400, 401, 403]
        """
        row = sla_policies.create(current_user(), load_body(sc.SlaPolicyCreate))
        return self.response(201, **_policy(row))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def change(self, pk: int):
        """Change an SLA policy.
        ---
        put:
          summary: 修改 SLA 策略 — the fields given; running tickets keep their due times
          body: SlaPolicyUpdate
          answer: SlaPolicyResult
          errors: [400, 401, 403, 404]
        """
        row = sla_policies.update(current_user(), pk, load_body(sc.SlaPolicyUpdate))
        return self.response(200, **_policy(row))

    @expose("/<int:pk>", methods=["DELETE"])
    @protect()
    @permission_name("delete")
    @maps_domain_errors
    def remove(self, pk: int):
        """Delete an SLA policy.
        ---
        delete:
          summary: 删除 SLA 策略 — tickets keep their due times (deactivating keeps the link)
          answer: SlaPolicyDeleted
          errors: [400, 401, 403, 404]
        """
        sla_policies.delete(current_user(), pk)
        return self.response(200, **schemas.dump(sc.SlaPolicyDeleted, {"id": pk}))


class WorkCalendarApi(DocumentedApi):
    resource_name = "work-calendar"
    class_permission_name = RES_WORK_CALENDAR
    openapi_spec_tag = "Work calendar"
    openapi_spec_component_schemas = schemas.COMPONENTS + sc.COMPONENTS
    apispec_parameter_schemas = {"WorkCalendarQuery": sc.calendar_query()}

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @rison(sc.CALENDAR_KEYS)
    @maps_domain_errors
    def list_days(self, **kwargs):
        """The calendar's days of a year or a range.
        ---
        get:
          summary: 工作日历 — the days departing from Monday-Friday (holidays on weekdays,
            调休 working days at weekends) of `year` (default this year) or `start`..`end`
            (at most three years; the whole range in one answer)
          parameters:
          - in: query
            name: q
            description: "rison: (year:2026) or (start:'2026-02-01',end:'2026-02-28')"
            content:
              application/json:
                schema: {$ref: '#/components/schemas/WorkCalendarQuery'}
          answer: CalendarDays
          errors: [400, 401, 403]
        """
        args = kwargs.get("rison") or {}
        start, end, rows = work_calendar.days_in(args.get("year"), args.get("start"),
                                                 args.get("end"))
        return self.response(200, **schemas.dump(sc.CalendarDays, {
            "start": start.isoformat(), "end": end.isoformat(),
            "result": [work_calendar.to_dict(r) for r in rows]}))

    @expose("/working-periods", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def working_periods(self):
        """The global working periods.
        ---
        get:
          summary: 工作时间 — the working periods of a working day (a team may have its own)
          answer: WorkingPeriods
          errors: [401, 403]
        """
        text = work_calendar.global_periods_text()
        return self.response(200, **schemas.dump(sc.WorkingPeriods, {
            "work_periods": text, "periods": work_calendar.periods_dict(text)}))

    @expose("/<day>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def put_day(self, day: str):
        """Set how a day counts.
        ---
        put:
          summary: 设置日期 — a working day or a day off (kept by later seeds from the holiday
            calendar)
          parameters:
          - in: path
            name: day
            required: true
            schema: {type: string, description: YYYY-MM-DD}
          body: CalendarDayPut
          answer: CalendarDayResult
          errors: [400, 401, 403]
        """
        body = load_body(sc.CalendarDayPut)
        when = work_calendar.parse_day(day)
        row = work_calendar.put_day(current_user(), dict(body, day=when))
        return self.response(200, **schemas.dump(sc.CalendarDayResult, {
            "result": work_calendar.to_dict(row)}))

    @expose("/<day>", methods=["DELETE"])
    @protect()
    @permission_name("delete")
    @maps_domain_errors
    def delete_day(self, day: str):
        """The day counts by the weekly pattern again.
        ---
        delete:
          summary: 删除日期 — Monday-Friday work, weekends not, for this day again
          parameters:
          - in: path
            name: day
            required: true
            schema: {type: string, description: YYYY-MM-DD}
          answer: CalendarDayDeleted
          errors: [400, 401, 403, 404]
        """
        when = work_calendar.parse_day(day)
        work_calendar.delete_day(current_user(), when)
        return self.response(200, **schemas.dump(sc.CalendarDayDeleted,
                                                 {"day": when.isoformat()}))
