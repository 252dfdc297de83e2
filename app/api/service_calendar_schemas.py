"""The bodies of /api/v1/sla-policies/ and /api/v1/work-calendar/ (kept beside app.api.schemas,
registered by their APIs)."""
from __future__ import annotations

from marshmallow import fields

from app.api.schemas import Answer, Body, Choice, Count, Flag, Text
from app.models.service_desk import SLA_CLOCKS, TICKET_PRIORITIES
from app.services import sla_policies
from app.services.errors import tr
from app.services.ids import MAX_PK

_PRIORITIES = tuple(TICKET_PRIORITIES)
_CLOCKS = tuple(SLA_CLOCKS)
_MINUTES = sla_policies.MAX_MINUTES
MAX_PAGE_SIZE = 200


def _priority():
    return Choice(_PRIORITIES, allow_none=True, message=lambda: tr(
        "Give one of %(choices)s, or nothing for any", choices=", ".join(_PRIORITIES)),
        metadata={"description": "P1-P4; null: any priority"})


def _grade():
    return Choice(sla_policies.GRADES, allow_none=True, message=lambda: tr(
        "Give one of %(choices)s, or nothing for any", choices=", ".join(sla_policies.GRADES)),
        metadata={"description": "the customer's grade A-C; null: any grade"})


def _clock():
    return Choice(_CLOCKS, message=lambda: tr("Give one of %(choices)s",
                                              choices=", ".join(_CLOCKS)),
                  metadata={"description": "business (the work calendar) | 24x7"})


class SlaPolicyCreate(Body):
    name = Text(sla_policies.NAME, required=True, metadata={"description": "unique"})
    position = Count(0, 1_000_000, metadata={"description": "order among equally specific "
                                                            "policies (default 100)"})
    active = Flag()
    priority = _priority()
    grade = _grade()
    first_response_minutes = Count(1, _MINUTES, required=True)
    resolution_minutes = Count(1, _MINUTES, required=True, metadata={
        "description": "not shorter than first_response_minutes"})
    clock = _clock()
    warn_before_minutes = Count(0, _MINUTES, metadata={"description": "default 60"})
    escalate_after_minutes = Count(0, _MINUTES, metadata={
        "description": "level 2 (the team's manager) this long after the breach; default 120"})


class SlaPolicyUpdate(Body):
    name = Text(sla_policies.NAME)
    position = Count(0, 1_000_000)
    active = Flag()
    priority = _priority()
    grade = _grade()
    first_response_minutes = Count(1, _MINUTES)
    resolution_minutes = Count(1, _MINUTES)
    clock = _clock()
    warn_before_minutes = Count(0, _MINUTES)
    escalate_after_minutes = Count(0, _MINUTES)


class SlaPolicy(Answer):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    position = fields.Integer(required=True)
    active = fields.Boolean(required=True)
    priority = fields.String(allow_none=True)
    grade = fields.String(allow_none=True)
    first_response_minutes = fields.Integer(required=True)
    resolution_minutes = fields.Integer(required=True)
    clock = fields.String(required=True)
    warn_before_minutes = fields.Integer(required=True)
    escalate_after_minutes = fields.Integer(required=True)


class SlaPolicyResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(SlaPolicy, required=True)


class SlaPolicyPage(Answer):
    result = fields.List(fields.Nested(SlaPolicy), required=True)
    next_after = fields.Integer(allow_none=True, metadata={
        "description": "the cursor of the next page ((after:<this>)); null on the last"})


class SlaPolicyDeleted(Answer):
    id = fields.Integer(required=True)


def policy_list_query() -> dict:
    return {"type": "object", "additionalProperties": False, "properties": {
        "after": {"type": "integer", "minimum": 0, "maximum": MAX_PK},
        "page_size": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE}}}


POLICY_LIST_KEYS = {"type": "object", "additionalProperties": False,
                    "properties": {"after": {}, "page_size": {}}}


class CalendarDayPut(Body):
    is_workday = Flag(required=True, metadata={"description": "true: a working day"})
    name = Text(100, allow_none=True, metadata={"description": "e.g. 春节, 调休上班"})


class CalendarDay(Answer):
    id = fields.Integer(required=True)
    day = fields.String(required=True, metadata={"description": "YYYY-MM-DD (business date)"})
    is_workday = fields.Boolean(required=True)
    name = fields.String(allow_none=True)
    source = fields.String(required=True, metadata={"description": "holidays | manual"})


class CalendarDayResult(Answer):
    result = fields.Nested(CalendarDay, required=True)


class CalendarDays(Answer):
    start = fields.String(required=True)
    end = fields.String(required=True)
    result = fields.List(fields.Nested(CalendarDay), required=True, metadata={
        "description": "the days from start to end that depart from Monday-Friday"})


class CalendarDayDeleted(Answer):
    day = fields.String(required=True)


class WorkPeriod(Answer):
    start = fields.String(required=True, metadata={"description": "HH:MM"})
    end = fields.String(required=True, metadata={"description": "HH:MM (24:00 allowed)"})


class WorkingPeriods(Answer):
    work_periods = fields.String(required=True, metadata={
        "description": "the global periods, e.g. 09:00-12:00,13:30-18:00"})
    periods = fields.List(fields.Nested(WorkPeriod), required=True)


def calendar_query() -> dict:
    day = {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
    return {"type": "object", "additionalProperties": False, "properties": {
        "year": {"type": "integer", "minimum": 1990, "maximum": 2100},
        "start": day, "end": day}}


CALENDAR_KEYS = {"type": "object", "additionalProperties": False,
                 "properties": {"year": {}, "start": {}, "end": {}}}

COMPONENTS = (SlaPolicyCreate, SlaPolicyUpdate, SlaPolicy, SlaPolicyResult, SlaPolicyPage,
              SlaPolicyDeleted, CalendarDayPut, CalendarDay, CalendarDayResult, CalendarDays,
              CalendarDayDeleted, WorkPeriod, WorkingPeriods)
