"""A call as a telephony platform would report it, without one: the demo and the tests.

`simulate(agent, …)` sends the neutral events of one inbound call to `agent` — ringing,
then answered and hangup with the talk time (or a missed hangup), then recording_ready —
through the same `cti_events.ingest` as the signed endpoint and the vendor adapters, under
the vendor name "simulator". So everything a real call does happens: the screen pop on
ringing, the follow-up or the call-back task, the recording on the call log.

The call is placed so that it ends now (ringing RING seconds before the answer, the talk
time before now), so its follow-up is not dated in the future. Between the events the
caller may pause (the demo pauses, so a person sees the card while it rings).
"""
from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Optional

from sqlalchemy import select

from app.extensions import db
from app.models import Customer, Ownership, User
from app.models.customer import utcnow
from app.services.cti_events import Ingested, ingest
from app.services.errors import ValidationFailed, tr

VENDOR = "simulator"
RING = dt.timedelta(seconds=8)
OUTCOMES = ("answered", "missed")
# A caller nobody knows (a valid Shanghai landline no record carries): the unknown-caller card.
UNKNOWN_CALLER = "021-5555 0199"


@dataclass
class Simulated:
    call_pk: Optional[int] = None
    steps: list[tuple[str, Ingested]] = field(default_factory=list)


def default_caller(agent: User) -> str:
    """The mobile (else the phone) of the agent's most recently acquired customer that has
    one: a call the agent's card can show in full."""
    row = db.session.execute(
        select(Customer.mobile, Customer.phone).join(Ownership, Ownership.customer_id == Customer.id)
        .where(Ownership.owner_id == agent.id,
               (Customer.mobile_e164.is_not(None)) | (Customer.phone_e164.is_not(None)))
        .order_by(Ownership.acquired_at.desc(), Customer.id.desc()).limit(1)).first()
    if row is None:
        return UNKNOWN_CALLER
    return row.mobile or row.phone


def simulate(agent: User, caller: Optional[str] = None, outcome: str = "answered",
             talk_seconds: int = 45, recording: bool = True, pause: float = 0.0,
             ring_only: bool = False, hotline: str = "4008001234",
             echo: Callable[[str, Ingested], None] = lambda step, result: None) -> Simulated:
    """One inbound call to `agent` (see the module's docstring). ValidationFailed when the
    agent has no agent number or the options do not make a call."""
    errors = {}
    if not agent.agent_no:
        errors["to"] = tr("%(user)s has no agent number: set one on the user form",
                          user=agent.username)
    if outcome not in OUTCOMES:
        errors["outcome"] = tr("outcome is answered or missed")
    if not isinstance(talk_seconds, int) or not 0 <= talk_seconds <= 86_400:
        errors["talk"] = tr("talk is a whole number of seconds from 0 to 86400")
    if errors:
        raise ValidationFailed(errors)
    caller = caller or default_caller(agent)
    call_id = f"sim-{uuid.uuid4().hex[:20]}"
    end = utcnow().replace(microsecond=0)
    answered = outcome == "answered"
    answered_at = end - dt.timedelta(seconds=talk_seconds) if answered else None
    ringing_at = (answered_at or end) - RING
    common = {"call_id": call_id, "direction": "in", "caller": caller, "callee": hotline,
              "agent_no": agent.agent_no, "queue": "hotline"}

    def event(kind: str, at: dt.datetime, **extra) -> dict:
        return {"event_id": f"{call_id}:{kind}", "type": kind,
                "occurred_at": at.isoformat() + "Z", **common, **extra}

    steps = [("ringing", event("ringing", ringing_at, started_at=ringing_at.isoformat() + "Z"))]
    if not ring_only:
        if answered:
            steps.append(("answered", event("answered", answered_at,
                                            answered_at=answered_at.isoformat() + "Z")))
            steps.append(("hangup", event("hangup", end, ended_at=end.isoformat() + "Z",
                                          answered_at=answered_at.isoformat() + "Z",
                                          talk_seconds=talk_seconds, result="answered")))
            if recording:
                steps.append(("recording_ready", event(
                    "recording_ready", end,
                    recording_url=f"https://recordings.example.invalid/{call_id}.mp3")))
        else:
            steps.append(("hangup", event("hangup", end, ended_at=end.isoformat() + "Z",
                                          talk_seconds=0, result="missed")))
    out = Simulated()
    for i, (kind, body) in enumerate(steps):
        if i and pause > 0:
            time.sleep(pause)
        result = ingest(body, VENDOR, body)
        out.call_pk = result.call_pk
        out.steps.append((kind, result))
        echo(kind, result)
    return out
