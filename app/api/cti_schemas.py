"""The call centre API's schemas (kept beside app.api.schemas): the bodies of
/api/v1/cti/events and the vendor pushes (app.services.cti_events and the vendor adapters
read them, each bad field named in a 400, not marshmallow), and the answers of routing and
the call log (each answer dumped through the class the spec names)."""
from __future__ import annotations

from marshmallow import fields

from app.api.schemas import Answer, Body
from app.models.cti import AGENT_STATUSES, CALL_RESULTS, EVENT_TYPES
from app.services import cti_events as ce


def _text(limit: int, description: str, required: bool = False) -> fields.String:
    return fields.String(required=required, allow_none=not required, metadata={
        "description": description, "maxLength": limit})


def _time(description: str, required: bool = False) -> fields.Raw:
    return fields.Raw(required=required, allow_none=not required, metadata={
        "description": description + ": RFC 3339 / ISO-8601 text with a time (business time "
                                     "without an offset) or unix seconds",
        "oneOf": [{"type": "string", "maxLength": 40}, {"type": "number", "minimum": 0}]})


def _choice(choices, description: str, required: bool = False) -> fields.String:
    return fields.String(required=required, allow_none=not required, metadata={
        "description": description, "enum": list(choices)})


class CtiEvent(Body):
    event_id = _text(ce.EVENT_ID_MAX, "unique per vendor: the same id again changes nothing "
                                      "(duplicate true)", required=True)
    vendor = _text(ce.VENDOR_MAX, "the platform: a-z, 0-9, '.', '_', '-'", required=True)
    type = _choice(EVENT_TYPES, "what happened", required=True)
    call_id = _text(ce.CALL_ID_MAX, "the vendor's call id (required but for agent_status)")
    direction = _choice(ce.DIRECTION_VALUES, "in | out (default in; out for a click-to-call "
                                             "reference)")
    occurred_at = _time("when it happened", required=True)
    started_at = _time("when the call began (a cdr's start)")
    caller = _text(ce.NUMBER_MAX, "the calling number, as the platform writes it")
    callee = _text(ce.NUMBER_MAX, "the called number")
    agent_no = _text(ce.AGENT_NO_MAX, "the agent's seat number (工号), mapped to the user "
                                      "whose agent number it is (required for agent_status)")
    queue = _text(ce.QUEUE_MAX, "the queue (技能组)")
    answered_at = _time("when it was answered")
    ended_at = _time("when it ended")
    talk_seconds = fields.Integer(allow_none=True, metadata={
        "description": "talk time in seconds", "minimum": 0, "maximum": ce.TALK_MAX})
    result = _choice(CALL_RESULTS, "how it ended (a cdr's is authoritative)")
    recording_url = _text(ce.URL_MAX, "http(s) address of the recording "
                                      "(required for recording_ready)")
    recording_expires_at = _time("when the vendor deletes the recording")
    crm_ref = _text(ce.CRM_REF_MAX, "the reference a click-to-call request gave the dialer, "
                                    "carried back so the call links to it")
    status = _choice(AGENT_STATUSES, "agent_status only: the agent's new status")
    raw = fields.Raw(allow_none=True, metadata={
        "description": "anything (the whole body is kept as the raw payload)"})


class CtiEventResult(Answer):
    event_pk = fields.Integer(allow_none=True, metadata={"description": "the stored event"})
    call_pk = fields.Integer(allow_none=True, metadata={
        "description": "the call (null for agent_status)"})
    duplicate = fields.Boolean(required=True, metadata={
        "description": "true: this event id was taken before, nothing changed"})
    state = fields.String(allow_none=True, metadata={
        "description": "the call's state now: dialing | ringing | answered | ended"})
    followup_id = fields.Integer(allow_none=True, metadata={
        "description": "the follow-up the call was logged as"})
    callback_task_id = fields.Integer(allow_none=True, metadata={
        "description": "the call-back task a missed call opened"})


class TinetCdr(Body):
    uniqueId = fields.String(required=True, metadata={"description": "the call (通话唯一标识)"})
    callType = fields.Integer(required=True, metadata={
        "description": "1 呼入, 2 网上400呼入 (inbound); 3 点击外呼, 4 预览外呼, 5 预测外呼, 6 主叫外呼 "
                       "(outbound)"})
    status = fields.Integer(required=True, metadata={
        "description": "接听状态: 1 座席接听, 2 座席未接听, 3 系统接听, 4-13 系统未接, 20-24 webcall, "
                       "30 座席未接听, 31 座席接听未呼叫客户, 32 客户未接听, 33 双方接听, 40-43 预测外呼, "
                       "50-51 主叫外呼"})
    startTime = fields.Integer(required=True, metadata={"description": "unix seconds"})
    answerTime = fields.Integer(metadata={"description": "unix seconds, 0: none"})
    bridgeTime = fields.Integer(metadata={"description": "unix seconds the parties were "
                                                        "connected, 0: never"})
    endTime = fields.Integer(metadata={"description": "unix seconds"})
    bridgeDuration = fields.Integer(metadata={"description": "talk seconds"})
    totalDuration = fields.Integer(metadata={"description": "seconds from start to end"})
    customerNumber = fields.String(metadata={"description": "the customer's number"})
    hotline = fields.String(metadata={"description": "the company's number (热线号码)"})
    cno = fields.String(metadata={"description": "座席工号: the agent number of a user"})
    qno = fields.String(metadata={"description": "队列号"})
    recordFile = fields.String(metadata={"description": "the recording's address"})
    requestUniqueId = fields.String(metadata={
        "description": "the click-to-call reference carried back (crm_ref)"})
    enterpriseId = fields.String(metadata={"description": "企业编号 (or in the query string)"})
    timestamp = fields.Integer(metadata={"description": "unix seconds (or in the query string)"})
    sign = fields.String(metadata={
        "description": "md5(enterpriseId + timestamp + signing secret), lower-case hex (or in "
                       "the query string)"})


class TencentPush(Body):
    SdkAppId = fields.Integer(metadata={"description": "the TCCC application"})
    SessionId = fields.String(required=True, metadata={"description": "the call (会话 ID)"})
    Direction = fields.Integer(metadata={"description": "action=cdr: 0 呼入, 1 呼出"})
    Caller = fields.String(metadata={"description": "action=cdr"})
    Callee = fields.String(metadata={"description": "action=cdr"})
    StartTimestamp = fields.Integer(metadata={"description": "action=cdr: unix seconds"})
    AcceptTimestamp = fields.Integer(metadata={"description": "action=cdr: unix seconds, 0: "
                                                             "not answered"})
    EndedTimestamp = fields.Integer(metadata={"description": "action=cdr: unix seconds"})
    Duration = fields.Integer(metadata={"description": "action=cdr: talk seconds"})
    EndStatus = fields.Integer(metadata={"description": "action=cdr: 1 ok; 17, 102-106 "
                                                       "missed; 202-204, 210 no answer; 206 "
                                                       "busy; others failed"})
    EndStatusString = fields.String(metadata={"description": "action=cdr"})
    SeatUser = fields.Dict(metadata={"description": "action=cdr: the agent, StaffNumber is "
                                                   "its agent number"})
    QueuedSkillGroupName = fields.String(metadata={"description": "action=cdr: the queue"})
    UUI = fields.String(metadata={"description": "action=cdr: the click-to-call reference"})
    RecordId = fields.String(metadata={"description": "action=record"})
    Timestamp = fields.Integer(metadata={"description": "action=record: unix seconds"})
    EndpointUser = fields.String(metadata={"description": "action=record: whose side"})
    RecordURL = fields.String(metadata={"description": "the recording (kept 3 months)"})
    CustomRecordURL = fields.String(metadata={"description": "the recording in the company's "
                                                            "own storage"})


class TencentPushResult(CtiEventResult):
    ErrCode = fields.Integer(required=True, metadata={"description": "0: taken (TCCC pushes "
                                                                    "again otherwise)"})
    ErrMsg = fields.String(required=True)


EVENT_COMPONENTS = (CtiEvent, CtiEventResult, TinetCdr, TencentPush, TencentPushResult)


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


# Every API of the call centre lists all of them: FAB keeps one spec per resource name.
COMPONENTS = EVENT_COMPONENTS + (CtiRoute, CtiCall, CtiCallPage)
