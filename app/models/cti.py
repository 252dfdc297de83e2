"""Call centre (CTI): calls and the vendor-neutral events that built them.

A call (cti_call) is one conversation as the telephony platform reports it, keyed by the
vendor's call id; the events (cti_event) are what the platform pushed about it, each kept
with its raw payload and made idempotent by (vendor, event_id). The number on the far side
is matched through the normalised keys to a customer, contact or lead when the first event
arrives; the call then follows that customer's data scope everywhere it is shown.

Times are stored naive UTC like everywhere else.
"""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, String,
                        Text, UniqueConstraint)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow
from app.models.marketing import BigId

EVENT_TYPES = ("ringing", "answered", "hangup", "cdr", "recording_ready", "agent_status")
DIRECTIONS = {"in": _l("Inbound"), "out": _l("Outbound")}
# dialing: click-to-call sent to the dialer, no event yet; ended: hung up or a CDR arrived.
CALL_STATES = {"dialing": _l("Dialing"), "ringing": _l("Ringing"),
               "answered": _l("In conversation"), "ended": _l("Ended")}
CALL_RESULTS = {"answered": _l("Answered"), "missed": _l("Missed"), "busy": _l("Busy"),
                "no_answer": _l("No answer"), "failed": _l("Failed")}
AGENT_STATUSES = {"available": _l("Available"), "busy": _l("Busy"), "away": _l("Away"),
                  "offline": _l("Offline")}


class CtiCall(Model):
    __tablename__ = "cti_call"
    __table_args__ = (
        CheckConstraint("direction in ('in', 'out')", name="ck_cti_call_direction"),
        CheckConstraint("state in ('dialing', 'ringing', 'answered', 'ended')",
                        name="ck_cti_call_state"),
        CheckConstraint("result IS NULL OR result in ('answered', 'missed', 'busy', "
                        "'no_answer', 'failed')", name="ck_cti_call_result"),
        CheckConstraint("talk_seconds IS NULL OR talk_seconds >= 0",
                        name="ck_cti_call_talk_seconds"),
        # One row per vendor call; a click-to-call row has neither until its first event.
        UniqueConstraint("vendor", "call_id", name="uq_cti_call_vendor_call"),
        Index("ix_cti_call_started_id", "started_at", "id"),  # the call log's sort key
        Index("ix_cti_call_customer_started", "customer_id", "started_at"),
        Index("ix_cti_call_agent_started", "agent_id", "started_at"),
        Index("ix_cti_call_number_started", "number_e164", "started_at"),
    )
    id = Column(BigId, primary_key=True)
    vendor = Column(String(32))
    call_id = Column(String(128))
    direction = Column(String(3), nullable=False, default="in")
    state = Column(String(10), nullable=False, default="ringing")
    result = Column(String(10))
    caller = Column(String(64))   # as the platform sent it
    callee = Column(String(64))
    # The far side's number (the caller of an inbound call, the callee of an outbound one),
    # normalised to E.164 when it could be; the key that matched the records below.
    number_e164 = Column(String(40))
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="SET NULL"))
    contact_id = Column(Integer, ForeignKey("contact.id", ondelete="SET NULL"), index=True)
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="SET NULL"), index=True)
    agent_no = Column(String(32))
    agent_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    queue = Column(String(64))
    started_at = Column(DateTime, nullable=False, default=utcnow)
    answered_at = Column(DateTime)
    ended_at = Column(DateTime)
    talk_seconds = Column(Integer)
    recording_url = Column(String(1000))
    recording_expires_at = Column(DateTime)
    # What the call left behind: the follow-up it was logged as, the call-back task a
    # missed call opened (closed by a later answered call).
    followup_id = Column(Integer, ForeignKey("follow_up.id", ondelete="SET NULL"), index=True)
    callback_task_id = Column(Integer, ForeignKey("task.id", ondelete="SET NULL"), index=True)
    # Click-to-call: who dialled, and the reference sent to the dialer that the vendor's
    # events carry back (so they link to this row).
    dialed_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), index=True)
    crm_ref = Column(String(40), unique=True)
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    customer = relationship("Customer")
    contact = relationship("Contact")
    lead = relationship("Lead")
    agent = relationship("Employee", foreign_keys=[agent_id])
    dialed_by = relationship("Employee", foreign_keys=[dialed_by_id])
    followup = relationship("FollowUp")
    callback_task = relationship("Task")

    @property
    def direction_label(self) -> str:
        return str(DIRECTIONS.get(self.direction, self.direction))

    @property
    def state_label(self) -> str:
        return str(CALL_STATES.get(self.state, self.state))

    @property
    def result_label(self) -> str:
        return str(CALL_RESULTS.get(self.result, self.result or ""))


class CtiEvent(Model):
    """One pushed event, as received: the neutral fields it mapped to and its raw payload."""

    __tablename__ = "cti_event"
    __table_args__ = (
        CheckConstraint("type in ('ringing', 'answered', 'hangup', 'cdr', 'recording_ready', "
                        "'agent_status')", name="ck_cti_event_type"),
        # The same event twice changes nothing: the second insert meets this.
        UniqueConstraint("vendor", "event_id", name="uq_cti_event_vendor_event"),
        Index("ix_cti_event_call_occurred", "call_pk", "occurred_at"),
    )
    id = Column(BigId, primary_key=True)
    vendor = Column(String(32), nullable=False)
    event_id = Column(String(128), nullable=False)
    type = Column(String(16), nullable=False)
    # NULL for agent_status events (they concern an agent, not a call).
    call_pk = Column(BigId, ForeignKey("cti_call.id", ondelete="CASCADE"))
    occurred_at = Column(DateTime, nullable=False)
    received_at = Column(DateTime, nullable=False, default=utcnow)
    api_key_id = Column(Integer, ForeignKey("api_key.id", ondelete="SET NULL"))
    event = Column(Text, nullable=False)   # the neutral event, JSON
    raw = Column(Text, nullable=False)     # the payload as the vendor sent it

    call = relationship("CtiCall")
