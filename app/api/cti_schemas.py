"""The call centre API's answers for routing and the call log (issue 18), declared as in
app.api.schemas: each answer dumped through the class the spec names."""
from __future__ import annotations

from marshmallow import fields

from app.api.schemas import Answer

_TIME = "RFC 3339 with the offset, business time"


class CtiRoute(Answer):
    target = fields.String(required=True, metadata={"description": "agent | queue"})
    agent_no = fields.String(allow_none=True, metadata={
        "description": "the agent number (工号) to ring when target is agent"})
    queue = fields.String(allow_none=True, metadata={
        "description": "the queue (技能组) to ring when target is queue"})
    reason = fields.String(required=True, metadata={
        "description": "dedicated_agent | owner | team_queue | default_queue | unknown_number"})
    customer_id = fields.Integer(allow_none=True, metadata={
        "description": "the customer the number belongs to (directly or through a contact)"})
    lead_id = fields.Integer(allow_none=True, metadata={
        "description": "the open lead the number belongs to (no customer has it)"})


class CtiCall(Answer):
    id = fields.Integer(required=True)
    direction = fields.String(required=True, metadata={"description": "in | out"})
    state = fields.String(required=True, metadata={
        "description": "dialing | ringing | answered | ended"})
    result = fields.String(allow_none=True, metadata={
        "description": "answered | missed | busy | no_answer | failed"})
    number = fields.String(allow_none=True, metadata={
        "description": "the far side's number, masked (138****8000) unless the contact details "
                       "rule shows the caller this customer's (or lead's) numbers in full"})
    customer_id = fields.Integer(allow_none=True)
    contact_id = fields.Integer(allow_none=True)
    lead_id = fields.Integer(allow_none=True)
    agent_no = fields.String(allow_none=True)
    agent_id = fields.Integer(allow_none=True)
    dialed_by_id = fields.Integer(allow_none=True)
    queue = fields.String(allow_none=True)
    started_at = fields.String(allow_none=True, metadata={"description": _TIME})
    answered_at = fields.String(allow_none=True, metadata={"description": _TIME})
    ended_at = fields.String(allow_none=True, metadata={"description": _TIME})
    talk_seconds = fields.Integer(allow_none=True)
    recording_url = fields.String(allow_none=True, metadata={
        "description": "only to those who may read the customer, only before it expires"})
    recording_expires_at = fields.String(allow_none=True, metadata={"description": _TIME})
    followup_id = fields.Integer(allow_none=True)
    callback_task_id = fields.Integer(allow_none=True)


class CtiCallPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "the rows of this page"})
    next_cursor = fields.String(allow_none=True, metadata={
        "description": "pass as cursor for the next page (null: the last page)"})
    result = fields.List(fields.Nested(CtiCall), required=True)


COMPONENTS = (CtiRoute, CtiCall, CtiCallPage)
