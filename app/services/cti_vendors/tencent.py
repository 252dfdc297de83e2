"""腾讯云联络中心 (Tencent Cloud Contact Center, TCCC) data push → neutral events.

TCCC posts to one address and names the kind of data in the query string:
  ?action=cdr     the call's record when it has ended (one per session) → a `cdr` event:
                  SessionId, Direction (0 呼入, 1 呼出), Caller, Callee, StartTimestamp,
                  AcceptTimestamp (0: never answered), EndedTimestamp (unix seconds),
                  Duration (EndedTimestamp - AcceptTimestamp), EndStatus (numeric, see
                  RESULTS) / EndStatusString, SeatUser {StaffNumber (工号), Mail, Name, ...},
                  QueuedSkillGroupName, RecordURL / CustomRecordURL, UUI (the click-to-call
                  reference carried back: our crm_ref).
  ?action=record  a recording of the session (one per side) → a `recording_ready` event:
                  SessionId, RecordId, Timestamp, EndpointUser, RecordURL (kept 3 months by
                  default: the expiry), CustomRecordURL (the company's own storage: no expiry).
The push carries X-TCCC-PUSH-UUID, unique per push: the event id (a retried push repeats it).
TCCC expects {"ErrCode": 0} back, and pushes again otherwise.

Authentication, TCCC's own: HTTP basic authentication (the console's "basicAuth" setting):
the password is the Guishu API key of purpose call_events (the user name is free).
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from app.services import cti_vendors as v

VENDOR = "tencent"
ACTIONS = ("cdr", "record")
RECORDING_KEPT = dt.timedelta(days=90)  # TCCC keeps a recording 3 months by default
# EndStatus → result. 1 ok: answered when accepted. Inbound: 17 seatGiveUp, 102 ivrGiveUp,
# 103 waitingGiveUp, 104 ringingGiveUp, 105 noSeatOnline, 106 notWorkTime missed; 100
# blackList and 107 ivrEnd (the IVR served it, no agent needed) failed. Outbound: 202
# notAnswer, 203 userReject, 204 powerOff, 210 notInService no answer; 206 busy; others
# (108-111 restrictions, 205 numberNotExist, 207 outOfCredit, 208 operatorError, 209
# callerCancel, 211 clientError, 212 carrierBlocked, ...) failed.
RESULTS = {**{code: "missed" for code in (17, 102, 103, 104, 105, 106)},
           **{code: "no_answer" for code in (202, 203, 204, 210)},
           206: "busy"}


def _result(status: Optional[int], accepted: Optional[int]) -> str:
    if accepted:
        return "answered"
    if status == 1:
        return "missed"  # ended normally but nobody took it
    return RESULTS.get(status, "failed")


def events(action: Any, payload: Any, push_id: Optional[str] = None) -> list[dict[str, Any]]:
    """The neutral events of one push (ValidationFailed naming TCCC's fields)."""
    if action not in ACTIONS:
        v.check({"action": v.tr("%(field)s can only be: %(choices)s", field="action",
                                choices=", ".join(ACTIONS))})
    if not isinstance(payload, dict):
        v.check({"body": v.tr("The request body must be a JSON object")})
    errors: dict[str, str] = {}
    if push_id is not None and (len(push_id) > 100 or not push_id.strip()):
        errors["X-TCCC-PUSH-UUID"] = v.tr("Cannot exceed %(limit)s characters", limit=100)
    session = v.text(payload, "SessionId", errors, 128, required=True)
    if action == "record":
        record_id = v.text(payload, "RecordId", errors, 64, required=True)
        stamp = v.integer(payload, "Timestamp", errors, required=True)
        url = v.text(payload, "RecordURL", errors, 1000)
        own = v.text(payload, "CustomRecordURL", errors, 1000)
        if not url and not own and "RecordURL" not in errors:
            errors["RecordURL"] = v.tr("Required")
        if stamp is not None and stamp > v.MAX_EPOCH - RECORDING_KEPT.total_seconds():
            errors["Timestamp"] = v.tr("%(field)s is out of range", field="Timestamp")
        v.check(errors)
        expires = None if own else (dt.datetime(1970, 1, 1) + dt.timedelta(seconds=stamp)
                                    + RECORDING_KEPT).isoformat() + "+00:00"
        event = {"event_id": push_id or f"record:{session}:{record_id}", "call_id": session,
                 "type": "recording_ready", "occurred_at": stamp,
                 "recording_url": own or url, "recording_expires_at": expires}
        return [{k: val for k, val in event.items() if val is not None}]
    direction = v.integer(payload, "Direction", errors, required=True)
    if direction not in (None, 0, 1) and "Direction" not in errors:
        errors["Direction"] = v.tr("%(field)s can only be: %(choices)s", field="Direction",
                                   choices="0, 1")
    caller = v.text(payload, "Caller", errors, 64)
    callee = v.text(payload, "Callee", errors, 64)
    start = v.epoch(v.integer(payload, "StartTimestamp", errors, required=True))
    accepted = v.epoch(v.integer(payload, "AcceptTimestamp", errors))
    ended = v.epoch(v.integer(payload, "EndedTimestamp", errors))
    duration = v.integer(payload, "Duration", errors)
    status = v.integer(payload, "EndStatus", errors)
    queue = v.text(payload, "QueuedSkillGroupName", errors, 64)
    seat = payload.get("SeatUser")
    if seat is not None and not isinstance(seat, dict):
        errors["SeatUser"] = v.tr("The request body must be a JSON object")
        seat = None
    staff = v.text(seat or {}, "StaffNumber", errors, 32)
    url = v.text(payload, "RecordURL", errors, 1000)
    own = v.text(payload, "CustomRecordURL", errors, 1000)
    ref = v.text(payload, "UUI", errors, 40)
    v.check(errors)
    result = _result(status, accepted)
    event = {
        "event_id": push_id or f"cdr:{session}", "call_id": session, "type": "cdr",
        "direction": "out" if direction == 1 else "in",
        "occurred_at": ended or start, "started_at": start, "caller": caller,
        "callee": callee, "agent_no": staff, "queue": queue, "result": result,
        "answered_at": accepted, "ended_at": ended,
        "talk_seconds": duration if result == "answered" else 0,
        "recording_url": (own or url) if v.is_url(own or url) else None,
        "crm_ref": ref,
    }
    return [{k: val for k, val in event.items() if val is not None}]
