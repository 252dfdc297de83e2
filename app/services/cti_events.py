"""Call events in: the vendor-neutral event (DESIGN.md) applied to the call it is about, and
the call becoming history.

`ingest(event, vendor, raw, api_key_id)` is the one entry point: POST /api/v1/cti/events,
the vendor adapters (app.services.cti_vendors) and the simulator all call it.

1. The event is checked field by field (ValidationFailed naming each bad one; every text
   bounded, times ISO-8601 or unix seconds, numbers within range).
2. It is stored once per (vendor, event_id): the unique constraint decides, also between two
   deliveries at once (the second insert waits for the first and fails), and the same event
   again answers `duplicate: true` and changes nothing.
3. The call is found by (vendor, call_id), else by the click-to-call reference (`crm_ref`) of
   a row the dialer created, else created (a concurrent creation: the unique constraint
   again, in a savepoint). Its row is locked (PostgreSQL: FOR UPDATE; SQLite: the event's
   insert already holds the write lock) while the event is applied.
4. Events may arrive out of order: a call never moves backwards (dialing < ringing <
   answered < ended), a late `answered` fills in the answer time of an ended call, and the
   `cdr` (the platform's record of the finished call) is authoritative for the result, the
   talk time and the times.
5. When the call has ended: answered with a customer that has an owner, it is logged once as
   a follow-up (channel call, by the agent or else the owner, at the answer time), which
   restarts the reclaim clock only when the talk time reaches the owner's policy
   `call_min_talk_seconds`; missed (inbound, unanswered), it opens one call-back task for the
   customer's dedicated service agent or else its owner (a lead: its owner) with a
   notification. An answered call closes the customer's (lead's) open call-back tasks.
6. `recording_ready` keeps the recording's link and expiry; `agent_status` sets the agent's
   status when it is newer than the one kept.
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (CtiCall, CtiEvent, Customer, CustomerServiceAgent, Employee,
                        FollowUp, Lead, LeadOwnership, Ownership)
from app.models.cti import AGENT_STATUSES, CALL_RESULTS, EVENT_TYPES
from app.models.customer import utcnow
from app.services import cti_numbers, cti_pop, followups, notifications, policies, tasks
from app.services.errors import UNKNOWN_FIELD, ValidationFailed, tr
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import local_text, parse_local, typed_period

# Bounds of the neutral event (the columns' widths).
EVENT_ID_MAX = 128
VENDOR_MAX = 32
CALL_ID_MAX = 128
NUMBER_MAX = 64
AGENT_NO_MAX = 32
QUEUE_MAX = 64
URL_MAX = 1000
CRM_REF_MAX = 40
TALK_MAX = 86_400          # a day on the phone is the most a call lasts
RAW_MAX = 64 * 1024        # characters of the raw payload kept
BODY_MAX = 64 * 1024       # bytes of a request to the endpoints (413 beyond)
EARLIEST = dt.datetime(2000, 1, 1)
FUTURE_SLACK = dt.timedelta(days=1)   # a platform's clock a little ahead; not a year
EXPIRY_AHEAD = dt.timedelta(days=3660)  # a recording kept for ten years at most
CALLBACK_DUE = dt.timedelta(hours=1)  # a missed call is called back within the hour
MISSED = ("missed", "no_answer", "busy")
DIRECTION_VALUES = ("in", "out")
FIELDS = ("event_id", "vendor", "call_id", "type", "direction", "occurred_at", "started_at",
          "caller", "callee", "agent_no", "queue", "answered_at", "ended_at", "talk_seconds",
          "result", "recording_url", "recording_expires_at", "crm_ref", "status", "raw")
TIME_FIELDS = ("occurred_at", "started_at", "answered_at", "ended_at", "recording_expires_at")
_STATE_RANK = {"dialing": 0, "ringing": 1, "answered": 2, "ended": 3}
_VENDOR = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
_URL = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)


# --- validation -----------------------------------------------------------------------------
def _text(data: dict, field: str, limit: int, errors: dict,
          required: bool = False) -> Optional[str]:
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[field] = tr("Required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        errors[field] = tr("Must be text")
        return None
    value = str(value).strip()
    if is_unclean(value) or any(ord(c) < 32 for c in value):
        errors[field] = f"{field} {UNCLEAN_MESSAGE}"
    elif len(value) > limit:
        errors[field] = tr("Cannot exceed %(limit)s characters", limit=limit)
    else:
        return value
    return None


def _choice(data: dict, field: str, choices, errors: dict,
            required: bool = False) -> Optional[str]:
    value = data.get(field)
    if value is None or value == "":
        if required:
            errors[field] = tr("Required")
        return None
    if not isinstance(value, str) or value not in choices:
        errors[field] = tr("%(field)s can only be: %(choices)s", field=field,
                           choices=tr(", ").join(choices))
        return None
    return value


def parse_time(value: Any, field: str, errors: dict,
               future: dt.timedelta = FUTURE_SLACK) -> Optional[dt.datetime]:
    """An event time as stored (naive UTC): unix seconds (a number, or its digits as text;
    milliseconds are taken too, by their size) or ISO-8601 text with a time (business time
    unless it names its offset). Bounded: after 2000, at most a day ahead of now."""
    if value is None or value == "":
        return None
    when: Optional[dt.datetime] = None
    try:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)) or (isinstance(value, str)
                                               and re.fullmatch(r"\d{1,16}(\.\d{1,6})?",
                                                                value.strip())):
            seconds = float(value)
            if seconds > 1e11:     # milliseconds
                seconds /= 1000.0
            if not 0 <= seconds < 1e11:
                raise ValueError
            when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=seconds)
        elif isinstance(value, str) and len(value) <= 40 and not is_unclean(value):
            period = typed_period(value)
            if period is None or period[1] - period[0] > dt.timedelta(seconds=1):
                raise ValueError   # no time, or a date alone
            when = parse_local(value.strip())
        else:
            raise ValueError
    except (ValueError, OverflowError, TypeError):
        errors[field] = tr("%(field)s must be ISO-8601 text with a time or unix seconds",
                           field=field)
        return None
    if when < EARLIEST or when > utcnow() + future:
        errors[field] = tr("%(field)s is out of range", field=field)
        return None
    return when


def _seconds(data: dict, field: str, errors: dict) -> Optional[int]:
    value = data.get(field)
    if value is None or value == "":
        return None
    if isinstance(value, str) and re.fullmatch(r"\d{1,6}", value.strip()):
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= TALK_MAX:
        errors[field] = tr("%(field)s must be a whole number of seconds from 0 to %(max)s",
                           field=field, max=TALK_MAX)
        return None
    return value


def clean_event(event: Any, vendor: Any = None) -> dict[str, Any]:
    """The neutral event's fields, checked (ValidationFailed naming each bad one). `vendor`
    (the adapter's, or the endpoint's) wins; an event naming another vendor is refused."""
    if not isinstance(event, dict):
        raise ValidationFailed({"body": tr("The request body must be a JSON object")})
    errors: dict[str, str] = {str(k)[:60]: str(UNKNOWN_FIELD) for k in event
                              if k not in FIELDS}
    out: dict[str, Any] = {}
    given_vendor = _text(event, "vendor", VENDOR_MAX, errors)
    vendor = vendor if vendor is not None else given_vendor
    if vendor is None:
        errors.setdefault("vendor", tr("Required"))
    elif not isinstance(vendor, str) or not _VENDOR.match(vendor):
        errors["vendor"] = tr("vendor is 1 to 32 lower-case letters, digits, '.', '_' or '-'")
    elif given_vendor is not None and given_vendor != vendor:
        errors["vendor"] = tr("The event names another vendor than its endpoint")
    out["vendor"] = vendor
    out["event_id"] = _text(event, "event_id", EVENT_ID_MAX, errors, required=True)
    out["type"] = _choice(event, "type", EVENT_TYPES, errors, required=True)
    is_agent_event = out["type"] == "agent_status"
    out["call_id"] = _text(event, "call_id", CALL_ID_MAX, errors,
                           required=not is_agent_event)
    out["direction"] = _choice(event, "direction", DIRECTION_VALUES, errors)
    for field in TIME_FIELDS:
        # A recording's expiry is ahead of now by design (months), an event's time is not.
        ahead = EXPIRY_AHEAD if field == "recording_expires_at" else FUTURE_SLACK
        out[field] = parse_time(event.get(field), field, errors, ahead)
    if event.get("occurred_at") in (None, ""):
        errors["occurred_at"] = tr("Required")
    for field in ("caller", "callee"):
        out[field] = _text(event, field, NUMBER_MAX, errors)
    out["agent_no"] = _text(event, "agent_no", AGENT_NO_MAX, errors,
                            required=is_agent_event)
    out["queue"] = _text(event, "queue", QUEUE_MAX, errors)
    out["talk_seconds"] = _seconds(event, "talk_seconds", errors)
    out["result"] = _choice(event, "result", tuple(CALL_RESULTS), errors)
    out["recording_url"] = _text(event, "recording_url", URL_MAX, errors,
                                 required=out["type"] == "recording_ready")
    if out["recording_url"] and not _URL.match(out["recording_url"]):
        errors["recording_url"] = tr("recording_url must be an http(s) address")
    out["crm_ref"] = _text(event, "crm_ref", CRM_REF_MAX, errors)
    out["status"] = _choice(event, "status", tuple(AGENT_STATUSES), errors,
                            required=is_agent_event)
    if errors:
        raise ValidationFailed(errors)
    return out


def _raw_text(raw: Any) -> str:
    """The payload as kept: text (bytes decoded, undecodable bytes replaced), without NUL
    (PostgreSQL's text cannot hold it), at most RAW_MAX characters."""
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    elif not isinstance(raw, str):
        raw = json.dumps(raw, ensure_ascii=False, default=str)
    raw = raw.replace("\x00", "\ufffd")
    raw = re.sub("[\ud800-\udfff]", "\ufffd", raw)
    return raw[:RAW_MAX]


def _stored_event(values: dict[str, Any]) -> str:
    return json.dumps({k: (v.isoformat() + "Z" if isinstance(v, dt.datetime) else v)
                       for k, v in values.items() if v is not None}, ensure_ascii=False)


# --- ingest ---------------------------------------------------------------------------------
@dataclass
class Ingested:
    event_pk: Optional[int]
    call_pk: Optional[int]
    duplicate: bool
    state: Optional[str] = None
    followup_id: Optional[int] = None
    callback_task_id: Optional[int] = None

    def as_dict(self) -> dict[str, Any]:
        return {"event_pk": self.event_pk, "call_pk": self.call_pk,
                "duplicate": self.duplicate, "state": self.state,
                "followup_id": self.followup_id, "callback_task_id": self.callback_task_id}


def _seen(vendor: str, event_id: str) -> Optional[Ingested]:
    row = db.session.execute(select(CtiEvent.id, CtiEvent.call_pk).where(
        CtiEvent.vendor == vendor, CtiEvent.event_id == event_id)).first()
    if row is None:
        return None
    state = db.session.execute(select(CtiCall.state).where(CtiCall.id == row.call_pk)
                               ).scalar() if row.call_pk else None
    return Ingested(row.id, row.call_pk, True, state)


def ingest(event: Any, vendor: Optional[str], raw: Any,
           api_key_id: Optional[int] = None) -> Ingested:
    """Apply one neutral event (see the module's docstring); commits. The same (vendor,
    event_id) again answers duplicate and changes nothing."""
    values = clean_event(event, vendor)
    vendor, event_id = values["vendor"], values["event_id"]
    seen = _seen(vendor, event_id)
    if seen is not None:
        return seen
    now = utcnow()
    row = CtiEvent(vendor=vendor, event_id=event_id, type=values["type"],
                   occurred_at=values["occurred_at"], received_at=now, api_key_id=api_key_id,
                   event=_stored_event(values), raw=_raw_text(raw))
    try:
        # First write of the transaction: on SQLite it takes the write lock, so what follows
        # is serialised; on PostgreSQL a concurrent insert of the same event waits here for
        # this one and then fails on the unique constraint.
        db.session.add(row)
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        seen = _seen(vendor, event_id)
        if seen is None:
            raise
        return seen
    try:
        if values["type"] == "agent_status":
            _agent_status(values)
            result = Ingested(row.id, None, False)
        else:
            call = _call_for(values, now)
            row.call_pk = call.id
            was_answered = _answered(call) and call.state in ("answered", "ended")
            _apply(call, values)
            _history(call, now, was_answered)
            result = Ingested(row.id, call.id, False, call.state, call.followup_id,
                              call.callback_task_id)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    if values["type"] == "ringing" and result.state == "ringing":
        # The screen pop, once the call is committed (a browser fetching the card finds it);
        # a ringing event that arrives after the answer pops nothing.
        cti_pop.publish_ringing(call)
    return result


def _agent_status(values: dict[str, Any]) -> None:
    """The agent's status, unless a newer one is already kept (events out of order)."""
    when = values["occurred_at"]
    db.session.execute(update(Employee).where(
        Employee.agent_no == values["agent_no"],
        (Employee.agent_status_at.is_(None)) | (Employee.agent_status_at <= when))
        .values(agent_status=values["status"], agent_status_at=when)
        .execution_options(synchronize_session=False))


def _locked(q):
    return db.session.execute(q.with_for_update()).scalar_one_or_none()


def _call_for(values: dict[str, Any], now: dt.datetime) -> CtiCall:
    """The event's call, locked: by (vendor, call_id), else the click-to-call row its crm_ref
    names (not yet tied to another vendor call), else a new row."""
    vendor, call_id = values["vendor"], values["call_id"]
    by_id = select(CtiCall).where(CtiCall.vendor == vendor, CtiCall.call_id == call_id)
    call = _locked(by_id)
    if call is not None:
        return call
    if values["crm_ref"]:
        call = _locked(select(CtiCall).where(CtiCall.crm_ref == values["crm_ref"]))
        if call is not None and call.call_id is None:
            call.vendor, call.call_id = vendor, call_id
            db.session.flush()
            return call
        if call is not None and call.vendor == vendor and call.call_id == call_id:
            return call
    call = _new_call(values, now)
    try:
        with db.session.begin_nested():
            db.session.add(call)
    except IntegrityError:
        # Another event of the same call created it meanwhile: use that row.
        call = _locked(by_id)
        if call is None:
            raise
    return call


def _new_call(values: dict[str, Any], now: dt.datetime) -> CtiCall:
    """A call seen for the first time: the far side's number matched once, here."""
    direction = values["direction"] or ("out" if values["crm_ref"] else "in")
    far = values["caller"] if direction == "in" else values["callee"]
    e164 = cti_numbers.caller_e164(far)
    match = cti_numbers.match_number(e164)
    started = min(t for t in (values["started_at"], values["occurred_at"]) if t is not None)
    # A recording is made of a call that took place: one first seen through its recording
    # (the record pushed before the call's other events) has ended.
    state = "ended" if values["type"] == "recording_ready" else "ringing"
    return CtiCall(vendor=values["vendor"], call_id=values["call_id"], direction=direction,
                   state=state, caller=values["caller"], callee=values["callee"],
                   number_e164=e164, customer_id=match.customer_id,
                   contact_id=match.contact_id, lead_id=match.lead_id,
                   started_at=started, created_at=now, updated_at=now)


def _agent_id(agent_no: str) -> Optional[int]:
    return db.session.execute(select(Employee.id).where(Employee.agent_no == agent_no)).scalar()


def _has_cdr(call: CtiCall) -> bool:
    """Whether the platform's record of the call was applied (events of this transaction
    included: the current one is flushed with its call)."""
    db.session.flush()
    return db.session.execute(select(CtiEvent.id).where(
        CtiEvent.call_pk == call.id, CtiEvent.type == "cdr").limit(1)).first() is not None


def _advance(call: CtiCall, state: str) -> None:
    if _STATE_RANK[state] > _STATE_RANK.get(call.state, 0):
        call.state = state


def _apply(call: CtiCall, values: dict[str, Any]) -> None:
    """The event's facts on the call, never moving it backwards (see the module's 4.)."""
    kind, when = values["type"], values["occurred_at"]
    is_cdr = kind == "cdr"
    if values["direction"] and call.direction != values["direction"] and is_cdr:
        call.direction = values["direction"]
    for field in ("caller", "callee"):
        if values[field] and (is_cdr or not getattr(call, field)):
            setattr(call, field, values[field])
    if values["agent_no"]:
        call.agent_no = values["agent_no"]
        call.agent_id = _agent_id(values["agent_no"])
    if values["queue"]:
        call.queue = values["queue"]
    started = values["started_at"] or (when if kind in ("ringing", "answered") else None)
    if started is not None and (call.started_at is None or started < call.started_at
                                or (is_cdr and values["started_at"])):
        call.started_at = started
    if kind == "ringing":
        _advance(call, "ringing")
    elif kind == "answered":
        answered = values["answered_at"] or when
        if call.answered_at is None or (call.answered_at > answered and not _has_cdr(call)):
            call.answered_at = answered
        _advance(call, "answered")
        if call.state == "ended" and call.result in MISSED + (None,) and not _has_cdr(call):
            # Answered after its hangup arrived: the call was answered after all.
            call.result = "answered"
            _derive_talk(call)
    elif kind == "hangup":
        if values["answered_at"] and call.answered_at is None:
            call.answered_at = values["answered_at"]
        if call.ended_at is None or not _has_cdr(call):
            call.ended_at = values["ended_at"] or call.ended_at or when
        _advance(call, "ended")
        if not _has_cdr(call):
            if values["result"]:
                call.result = values["result"]
            if values["talk_seconds"] is not None:
                call.talk_seconds = values["talk_seconds"]
            _derive_result(call)
            _derive_talk(call)
    elif kind == "cdr":
        # The platform's record of the finished call: authoritative.
        for field in ("answered_at", "ended_at", "talk_seconds", "result"):
            if values[field] is not None:
                setattr(call, field, values[field])
        if call.ended_at is None:
            call.ended_at = when
        _advance(call, "ended")
        _derive_result(call)
        if values["talk_seconds"] is None:
            _derive_talk(call)
    if values["recording_url"]:
        call.recording_url = values["recording_url"]
        if values["recording_expires_at"] is not None or kind == "recording_ready":
            call.recording_expires_at = values["recording_expires_at"]
    call.updated_at = utcnow()


def _derive_result(call: CtiCall) -> None:
    if call.result is None and call.state == "ended":
        if call.answered_at is not None or (call.talk_seconds or 0) > 0:
            call.result = "answered"
        else:
            call.result = "missed" if call.direction == "in" else "no_answer"


def _derive_talk(call: CtiCall) -> None:
    if call.talk_seconds is None and call.answered_at and call.ended_at \
            and call.result == "answered":
        call.talk_seconds = max(0, min(TALK_MAX, int(
            (call.ended_at - call.answered_at).total_seconds())))


# --- calls become history -------------------------------------------------------------------
def talk_text(seconds: Optional[int]) -> str:
    """"2分05秒", "45秒"."""
    seconds = seconds or 0
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}分{rest:02d}秒" if minutes else f"{rest}秒"


def _answered(call: CtiCall) -> bool:
    return call.result == "answered" or (call.result is None and call.answered_at is not None)


def _history(call: CtiCall, now: dt.datetime, was_answered: bool = False) -> None:
    """What the call leaves behind (see the module's 5.), each once per call. The call-back
    tasks close when this event answered the call, not on its later events (a recording
    minutes later must not close the task of a newer missed call)."""
    if not was_answered and _answered(call) and call.state in ("answered", "ended"):
        record = _record_of(call)
        if record is not None:
            tasks.close_call_backs(*record, now)
    if call.state != "ended":
        return
    if _answered(call) and call.customer_id is not None:
        _log_followup(call, now)
    elif call.result in MISSED and call.direction == "in" and call.callback_task_id is None:
        _open_call_back(call, now)


def _record_of(call: CtiCall) -> Optional[tuple[str, int]]:
    if call.customer_id is not None:
        return "customer", call.customer_id
    if call.lead_id is not None:
        return "lead", call.lead_id
    return None


def _followup_content(call: CtiCall) -> str:
    verb = "来电" if call.direction == "in" else "去电"
    agent = call.agent.display_name if call.agent is not None else None
    return f"{verb} {talk_text(call.talk_seconds)}" + (f" · 坐席 {agent}" if agent else "")


def _log_followup(call: CtiCall, now: dt.datetime) -> None:
    owner_id = db.session.execute(select(Ownership.owner_id).where(
        Ownership.customer_id == call.customer_id)).scalar()
    if owner_id is None:
        return  # a pool customer: nobody's follow-up, no clock to restart
    minimum = policies.policy_value(owner_id, "call_min_talk_seconds")
    counts = (call.talk_seconds or 0) >= minimum
    happened = min(call.answered_at or call.ended_at or now, now)
    if call.followup_id is not None:
        # Logged at hangup; the platform's record came later: its talk time is the true one.
        followup = db.session.get(FollowUp, call.followup_id)
        if followup is not None:
            followup.content = _followup_content(call)
            followup.happened_at = happened
        if counts:
            db.session.execute(update(Ownership).where(
                Ownership.customer_id == call.customer_id).values(
                last_followup_at=followups.clock_forward(happened)))
        return
    values = {"channel": "call", "content": _followup_content(call), "happened_at": happened,
              "next_contact_on": None}
    followup = followups.record_followup(
        call.customer_id, call.agent_id or owner_id, values, now, contact_id=call.contact_id,
        restart_clock=counts, plans_next_contact=False)
    db.session.flush()
    call.followup_id = followup.id


def _call_back_owner(call: CtiCall) -> Optional[int]:
    if call.customer_id is not None:
        agent_id = db.session.execute(select(CustomerServiceAgent.agent_id).where(
            CustomerServiceAgent.customer_id == call.customer_id)).scalar()
        if agent_id is not None:
            return agent_id
        return db.session.execute(select(Ownership.owner_id).where(
            Ownership.customer_id == call.customer_id)).scalar()
    if call.lead_id is not None:
        return db.session.execute(select(LeadOwnership.owner_id).where(
            LeadOwnership.lead_id == call.lead_id)).scalar()
    return None


def _open_call_back(call: CtiCall, now: dt.datetime) -> None:
    """One call-back task per caller: a second missed call while one is open joins it."""
    record = _record_of(call)
    owner_id = _call_back_owner(call) if record is not None else None
    if record is None or owner_id is None:
        return
    existing = tasks.open_call_backs(*record)
    if existing:
        call.callback_task_id = existing[0].id
        return
    if record[0] == "customer":
        name = db.session.execute(select(Customer.name).where(
            Customer.id == call.customer_id)).scalar()
    else:
        lead = db.session.get(Lead, call.lead_id)
        name = lead.name if lead is not None else f"#{call.lead_id}"
    when = local_text(call.ended_at or call.started_at)
    subject = f"回电：{name}"
    notes = f"未接来电（{when}）"
    task = tasks.open_call_back(owner_id, record[0], record[1], subject, notes,
                                (now + CALLBACK_DUE).replace(microsecond=0), now)
    call.callback_task_id = task.id
    notifications.notify([owner_id], "missed_call", f"未接来电：{name}",
                         f"{when} 来电未接，请回电", link=tasks.page_link(task.id))
