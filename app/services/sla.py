"""SLA clocks of tickets: which policy applies, when the first response and the resolution
fall due, the pause while the ticket waits for the customer, and the time left.

The due instants are computed here, when a clock starts (or resumes, or the ticket changes
priority, customer or team), in the policy's clock: business time (the work calendar and
the working periods of the ticket's team, else the global ones) or around the clock. They
are stored on the ticket, so the SLA job (app.services.sla_sweep) only compares stored
times with now.

The resolution clock pauses while the ticket is 'waiting' (for the customer): its remaining
seconds are kept in resolution_remaining_seconds and resolution_due_at is empty until the
ticket leaves 'waiting', when a new due time is counted from then. The response clock does
not pause.

These functions only set columns on the ticket (the caller commits, and writes the
ticket's history); they read the policy, the calendar and the customer's grade.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import case, select

from app.extensions import db
from app.models import Ownership
from app.models.service_desk import OPEN_TICKET_STATUSES, SlaPolicy, Ticket
from app.services import work_calendar

CLOCK_BUSINESS = "business"
CLOCK_24X7 = "24x7"


# --- which policy ---------------------------------------------------------------------------
def customer_grade(customer_id: Optional[int]) -> Optional[str]:
    if customer_id is None:
        return None
    return db.session.execute(select(Ownership.grade).where(
        Ownership.customer_id == customer_id)).scalar()


def choose_policy(priority: Optional[str], grade: Optional[str]) -> Optional[SlaPolicy]:
    """The most specific active policy matching (priority, grade): both set beats one set
    beats none (any), then the lowest position, then the lowest id."""
    p = SlaPolicy
    specificity = (case((p.priority.is_(None), 0), else_=1)
                   + case((p.grade.is_(None), 0), else_=1))
    q = select(p).where(p.active.is_(True),
                        (p.priority.is_(None)) | (p.priority == priority),
                        (p.grade.is_(None)) | (p.grade == grade))
    return db.session.execute(q.order_by(specificity.desc(), p.position, p.id)
                              .limit(1)).scalar()


def policy_of(ticket: Ticket) -> Optional[SlaPolicy]:
    return choose_policy(ticket.priority, customer_grade(ticket.customer_id))


# --- clock arithmetic -----------------------------------------------------------------------
class Clock:
    """A policy's clock for one team: add seconds to an instant, or count seconds between
    two, in business time or around the clock."""

    def __init__(self, kind: str, team_id: Optional[int] = None,
                 calendar: Optional[work_calendar.Calendar] = None):
        self.kind = kind
        self._calendar = calendar
        self._team_id = team_id

    @property
    def calendar(self) -> work_calendar.Calendar:
        if self._calendar is None:
            self._calendar = work_calendar.calendar(self._team_id)
        return self._calendar

    def add(self, start: dt.datetime, seconds: int) -> dt.datetime:
        if self.kind == CLOCK_24X7:
            return start + dt.timedelta(seconds=seconds)
        return self.calendar.add(start, seconds)

    def seconds(self, a: dt.datetime, b: dt.datetime) -> int:
        if self.kind == CLOCK_24X7:
            return int((b - a).total_seconds())
        return self.calendar.seconds(a, b)


def clock_of(ticket: Ticket, policy: Optional[SlaPolicy] = None) -> Optional[Clock]:
    policy = policy if policy is not None else _policy_row(ticket)
    return Clock(policy.clock, ticket.team_id) if policy is not None else None


def _policy_row(ticket: Ticket) -> Optional[SlaPolicy]:
    if ticket.sla_policy_id is None:
        return None
    return db.session.get(SlaPolicy, ticket.sla_policy_id)


def _paused(ticket: Ticket) -> bool:
    return ticket.sla_paused_at is not None


# --- the clocks' life -----------------------------------------------------------------------
def start(ticket: Ticket, now: dt.datetime) -> Optional[SlaPolicy]:
    """A new ticket (flushed): its policy and both due times from `now`. No matching
    policy: no clocks (the ticket has no SLA)."""
    policy = policy_of(ticket)
    _clear_marks(ticket, response=True, resolution=True)
    ticket.sla_paused_at = None
    ticket.resolution_remaining_seconds = None
    if policy is None:
        ticket.sla_policy_id = None
        ticket.first_response_due_at = ticket.resolution_due_at = None
        return None
    ticket.sla_policy_id = policy.id
    clock = Clock(policy.clock, ticket.team_id)
    ticket.first_response_due_at = (None if ticket.first_response_at is not None
                                    else clock.add(now, policy.first_response_minutes * 60))
    resolution = policy.resolution_minutes * 60
    if ticket.status == "waiting":
        ticket.sla_paused_at = now
        ticket.resolution_remaining_seconds = resolution
        ticket.resolution_due_at = None
    else:
        ticket.resolution_due_at = clock.add(now, resolution)
    return policy


def reprioritise(ticket: Ticket, now: dt.datetime) -> Optional[SlaPolicy]:
    """The priority, the customer (its grade) or the team changed: the policy is chosen
    again and each running clock keeps what it has used so far (measured in the old clock)
    against the new target, counted from `now` in the new clock. A clock whose new due time
    lies ahead loses its breach and warning marks."""
    if ticket.status not in OPEN_TICKET_STATUSES:
        return _policy_row(ticket)
    old_policy = _policy_row(ticket)
    policy = policy_of(ticket)
    if old_policy is None:
        return start(ticket, now) if policy is not None else None
    old_clock = Clock(old_policy.clock, ticket.team_id)
    if policy is None:
        ticket.sla_policy_id = None
        ticket.first_response_due_at = ticket.resolution_due_at = None
        ticket.sla_paused_at = ticket.resolution_remaining_seconds = None
        _clear_marks(ticket, response=True, resolution=True)
        return None
    clock = Clock(policy.clock, ticket.team_id)
    ticket.sla_policy_id = policy.id
    if ticket.first_response_at is None and ticket.first_response_due_at is not None:
        used = old_policy.first_response_minutes * 60 - old_clock.seconds(
            now, ticket.first_response_due_at)
        ticket.first_response_due_at = clock.add(
            now, policy.first_response_minutes * 60 - used)
        if ticket.first_response_due_at > now:
            _clear_marks(ticket, response=True)
    if _paused(ticket):
        used = old_policy.resolution_minutes * 60 - (ticket.resolution_remaining_seconds or 0)
        ticket.resolution_remaining_seconds = policy.resolution_minutes * 60 - used
    elif ticket.resolution_due_at is not None:
        used = old_policy.resolution_minutes * 60 - old_clock.seconds(
            now, ticket.resolution_due_at)
        ticket.resolution_due_at = clock.add(now, policy.resolution_minutes * 60 - used)
        if ticket.resolution_due_at > now:
            _clear_marks(ticket, resolution=True)
    return policy


def pause(ticket: Ticket, now: dt.datetime) -> None:
    """The ticket waits for the customer: the resolution clock stops, keeping what is left
    (negative when it is already late)."""
    if _paused(ticket) or ticket.resolution_due_at is None:
        return
    clock = clock_of(ticket)
    if clock is None:
        return
    ticket.resolution_remaining_seconds = clock.seconds(now, ticket.resolution_due_at)
    ticket.sla_paused_at = now
    ticket.resolution_due_at = None


def resume(ticket: Ticket, now: dt.datetime) -> None:
    """The ticket no longer waits: the resolution clock runs again from `now` with what was
    left when it paused."""
    if not _paused(ticket):
        return
    clock = clock_of(ticket)
    left = ticket.resolution_remaining_seconds or 0
    ticket.sla_paused_at = None
    ticket.resolution_remaining_seconds = None
    if clock is None:
        return
    ticket.resolution_due_at = clock.add(now, left)


def responded(ticket: Ticket, now: dt.datetime) -> None:
    """The first reply to the customer: the response clock stops (its due time is kept, to
    tell met from missed)."""
    if ticket.first_response_at is None:
        ticket.first_response_at = now


def stop(ticket: Ticket, now: dt.datetime) -> None:
    """Resolved or closed: the clocks stop. A paused clock is resumed at `now` first so the
    resolution due time is there to tell met from missed."""
    if _paused(ticket):
        resume(ticket, now)


def reopened(ticket: Ticket, now: dt.datetime) -> Optional[SlaPolicy]:
    """A reopened ticket gets a fresh resolution clock from `now` under the policy that
    applies now (the response clock stays as it was: the customer has had an answer), and
    its escalation starts over."""
    policy = policy_of(ticket)
    _clear_marks(ticket, resolution=True)
    ticket.escalation_level, ticket.escalated_at = 0, None
    ticket.sla_paused_at = ticket.resolution_remaining_seconds = None
    if policy is None:
        ticket.sla_policy_id = None
        ticket.resolution_due_at = None
        return None
    ticket.sla_policy_id = policy.id
    clock = Clock(policy.clock, ticket.team_id)
    if ticket.first_response_at is None and ticket.first_response_due_at is None:
        ticket.first_response_due_at = clock.add(now, policy.first_response_minutes * 60)
    resolution = policy.resolution_minutes * 60
    if ticket.status == "waiting":
        ticket.sla_paused_at, ticket.resolution_remaining_seconds = now, resolution
        ticket.resolution_due_at = None
    else:
        ticket.resolution_due_at = clock.add(now, resolution)
    return policy


def _clear_marks(ticket: Ticket, response: bool = False, resolution: bool = False) -> None:
    if response:
        ticket.response_warned_at = ticket.response_breached_at = None
    if resolution:
        ticket.resolution_warned_at = ticket.resolution_breached_at = None


# --- what the ticket shows ------------------------------------------------------------------
def time_left(ticket: Ticket, now: dt.datetime) -> dict[str, Any]:
    """Seconds left on each running clock in the policy's clock (negative: late by that
    much; None: the clock does not run), whether the resolution clock is paused, and whether
    a target was missed."""
    out: dict[str, Any] = {"response": None, "resolution": None,
                           "paused": _paused(ticket), "breached": False}
    clock = clock_of(ticket)
    if clock is not None and ticket.status in OPEN_TICKET_STATUSES:
        if ticket.first_response_at is None and ticket.first_response_due_at is not None:
            out["response"] = clock.seconds(now, ticket.first_response_due_at)
        if _paused(ticket):
            out["resolution"] = ticket.resolution_remaining_seconds
        elif ticket.resolution_due_at is not None:
            out["resolution"] = clock.seconds(now, ticket.resolution_due_at)
    out["breached"] = bool(
        ticket.response_breached_at or ticket.resolution_breached_at
        or any(v is not None and v < 0 for v in (out["response"], out["resolution"]))
        or (ticket.first_response_at is not None and ticket.first_response_due_at is not None
            and ticket.first_response_at > ticket.first_response_due_at))
    return out
