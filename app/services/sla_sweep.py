"""The SLA job (every 5 minutes): warnings before a target falls due, breach marks, and
escalation — level 1 on a breach (the team lead), level 2 escalate_after_minutes later (the
team's manager) — as notifications, tasks and TicketEvent rows.

Set-based and idempotent like the reclaim sweep: the due instants are stored on the tickets
(app.services.sla computes them when a clock starts), so each step is one indexed SELECT of
the ticket ids still due, then UPDATEs of chunks of them that re-check the step's predicate
(a ticket answered meanwhile is left alone) and mark it; a second run finds nothing. The
only business-time arithmetic per run is the "warn from" and "escalate before" instants of
each (policy, working periods) pair, computed once in Python and compared in SQL as a CASE.
"""
from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

from sqlalchemy import (ARRAY, Integer, and_, any_, bindparam, case, func, insert, literal,
                        select, update)

from app.extensions import db
from app.models import Notification, Task
from app.models.customer import utcnow
from app.models.service_desk import (OPEN_TICKET_STATUSES, ServiceTeam, SlaPolicy, Ticket,
                                     TicketEvent)
from app.services import work_calendar
from app.services.errors import lazy_tr, tr

CHUNK = 5000
SUBJECT = 200  # the task subject column
LISTED = 5  # tickets named in one notification; the rest are counted

# TicketEvent kinds the job writes (H2's history labels them).
WARN_RESPONSE = "sla_warning_response"
WARN_RESOLUTION = "sla_warning_resolution"
BREACH_RESPONSE = "sla_breach_response"
BREACH_RESOLUTION = "sla_breach_resolution"
ESCALATED = "sla_escalated"
# Their words, for the ticket's history (the ticket page merges these into its labels).
EVENT_LABELS = {
    WARN_RESPONSE: lazy_tr("SLA warning: first response due soon"),
    WARN_RESOLUTION: lazy_tr("SLA warning: resolution due soon"),
    BREACH_RESPONSE: lazy_tr("SLA missed: first response"),
    BREACH_RESOLUTION: lazy_tr("SLA missed: resolution"),
    ESCALATED: lazy_tr("SLA escalation level"),
}


def ticket_link(ticket_id: int) -> str:
    return f"/tickets/show/{ticket_id}"


@dataclass
class SweepResult:
    warned_response: int = 0
    warned_resolution: int = 0
    breached_response: int = 0
    breached_resolution: int = 0
    escalated_1: int = 0
    escalated_2: int = 0
    # (user, kind) -> [(ticket id, subject)]: one notification each, after the marks.
    tell: dict = field(default_factory=lambda: defaultdict(list))
    # seconds per step (the bench compares the breach steps with a bare UPDATE)
    seconds: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in ("warned_response", "warned_resolution",
                                              "breached_response", "breached_resolution",
                                              "escalated_1", "escalated_2")}


# --- the instants of this run ---------------------------------------------------------------
def _per_clock(now: dt.datetime, minutes: Callable[[SlaPolicy], int], sign: int):
    """A CASE giving, per ticket, now ± the policy's minutes in the ticket's clock (its
    policy, its team's working periods): one arithmetic per (policy, periods) pair. Returns
    (expression, latest instant) — the latter bounds the indexed range."""
    policies = db.session.execute(select(SlaPolicy)).scalars().all()
    own = defaultdict(list)
    for team_id, text in db.session.execute(select(ServiceTeam.id, ServiceTeam.work_periods)
                                            .where(ServiceTeam.work_periods.isnot(None))):
        own[text].append(team_id)
    default = work_calendar.calendar()
    calendars = {text: work_calendar.Calendar(default.overrides, _periods(text)) for text in own}
    whens, latest = [], now
    for p in policies:
        seconds = sign * minutes(p) * 60
        if p.clock == "24x7":
            at = now + dt.timedelta(seconds=seconds)
            whens.append((Ticket.sla_policy_id == p.id, at))
            latest = max(latest, at)
            continue
        for text, team_ids in own.items():
            at = calendars[text].add(now, seconds)
            whens.append((and_(Ticket.sla_policy_id == p.id, Ticket.team_id.in_(team_ids)), at))
            latest = max(latest, at)
        at = default.add(now, seconds)
        whens.append((Ticket.sla_policy_id == p.id, at))
        latest = max(latest, at)
    if not whens:
        return literal(now), now
    return case(*((cond, literal(at)) for cond, at in whens), else_=literal(now)), latest


def _periods(text: str):
    try:
        return work_calendar.parse_periods(text)
    except Exception:  # a bad team value (typed before validation) counts as the global one
        return work_calendar.parse_periods(work_calendar.global_periods_text())


# --- the steps ------------------------------------------------------------------------------
def sweep(now: Optional[dt.datetime] = None, chunk: int = CHUNK) -> SweepResult:
    """One run of the SLA job; commits per chunk. Returns what it marked."""
    now = now or utcnow()
    result = SweepResult()
    teams = {t.id: (t.lead_id, t.manager_id) for t in db.session.execute(
        select(ServiceTeam.id, ServiceTeam.lead_id, ServiceTeam.manager_id))}
    warn_cut, warn_latest = _per_clock(now, lambda p: p.warn_before_minutes, +1)
    open_ = Ticket.status.in_(OPEN_TICKET_STATUSES)
    response_running = and_(open_, Ticket.first_response_at.is_(None),
                            Ticket.response_breached_at.is_(None))
    t = Ticket

    # Warnings: the target falls due within warn_before_minutes of the policy's clock.
    clock = time.perf_counter()
    result.warned_response = _mark(
        and_(response_running, t.response_warned_at.is_(None), t.first_response_due_at > now,
             t.first_response_due_at <= warn_latest, t.first_response_due_at <= warn_cut),
        {"response_warned_at": now}, WARN_RESPONSE, now, chunk,
        lambda row: [(row.agent_id or teams.get(row.team_id, (None,))[0], "sla_warning")],
        result)
    result.warned_resolution = _mark(
        and_(open_, t.resolution_breached_at.is_(None), t.resolution_warned_at.is_(None),
             t.resolution_due_at > now, t.resolution_due_at <= warn_latest,
             t.resolution_due_at <= warn_cut),
        {"resolution_warned_at": now}, WARN_RESOLUTION, now, chunk,
        lambda row: [(row.agent_id or teams.get(row.team_id, (None,))[0], "sla_warning")],
        result)

    # Breaches: the mark, and escalation level 1 (the team lead) if not escalated yet.
    escalate_1 = {"escalation_level": case((t.escalation_level == 0, 1),
                                           else_=t.escalation_level),
                  "escalated_at": case((t.escalation_level == 0, now), else_=t.escalated_at)}
    result.seconds["warnings"] = time.perf_counter() - clock
    clock = time.perf_counter()
    for kind, cond, mark in (
            (BREACH_RESPONSE, and_(response_running, t.first_response_due_at <= now),
             "response_breached_at"),
            (BREACH_RESOLUTION, and_(open_, t.resolution_breached_at.is_(None),
                                     t.resolution_due_at <= now), "resolution_breached_at")):
        n = _mark(cond, {mark: now, **escalate_1}, kind, now, chunk,
                  lambda row: _breach_recipients(row, teams), result, escalate_level=1)
        if kind == BREACH_RESPONSE:
            result.breached_response = n
        else:
            result.breached_resolution = n

    # Level 2: escalate_after_minutes (policy's clock) after level 1, the team's manager.
    result.seconds["breaches"] = time.perf_counter() - clock
    clock = time.perf_counter()
    esc_cut, _ = _per_clock(now, lambda p: p.escalate_after_minutes, -1)
    _mark(and_(open_, t.escalation_level == 1, t.escalated_at <= now,
               t.escalated_at <= esc_cut),
          {"escalation_level": 2, "escalated_at": now}, ESCALATED, now, chunk,
          lambda row: [(teams.get(row.team_id, (None, None))[1], "sla_escalation")],
          result, escalate_level=2)
    result.seconds["level_2"] = time.perf_counter() - clock
    clock = time.perf_counter()
    _notify(result, now)
    db.session.commit()
    result.seconds["notifications"] = time.perf_counter() - clock
    return result


def _breach_recipients(row, teams) -> list:
    lead, manager = teams.get(row.team_id, (None, None))
    out = [(row.agent_id, "sla_breach")]
    if row.escalation_level == 0:
        out.append((lead or manager, "sla_escalation"))
    return out


def _mark(cond, values: dict, kind: str, now: dt.datetime, chunk: int, recipients,
          result: SweepResult, escalate_level: int = 0) -> int:
    """Mark the tickets matching `cond` with `values`, chunk by chunk (each UPDATE re-checks
    `cond`); one TicketEvent each, the recipients to be told, and for an escalation a task
    for the team's lead (level 1) or manager (level 2). Events and tasks are INSERT ...
    SELECT: a row per ticket sent from Python would cost more than the marks themselves.
    Returns how many were marked."""
    t = Ticket
    rows = db.session.execute(select(t.id, t.subject, t.agent_id, t.team_id, t.escalation_level)
                              .where(cond).order_by(t.id)).all()
    marked = 0
    for k in range(0, len(rows), chunk):
        part = {r.id: r for r in rows[k:k + chunk]}
        done = [pk for (pk,) in db.session.execute(
            update(t).where(_among(list(part)), cond).values(**values)
            .returning(t.id).execution_options(synchronize_session=False))]
        if not done:
            continue
        marked += len(done)
        levelled = [pk for pk in done if escalate_level == 2 or (
            escalate_level == 1 and part[pk].escalation_level == 0)]
        if escalate_level != 2:
            _events(done, kind, None, None, now)
        if levelled:
            _events(levelled, ESCALATED, str(escalate_level - 1), str(escalate_level), now)
            _tasks(levelled, escalate_level, now)
            if escalate_level == 1:
                result.escalated_1 += len(levelled)
            else:
                result.escalated_2 += len(levelled)
        for pk in done:
            row = part[pk]
            for user_id, what in recipients(row):
                if user_id is not None:
                    result.tell[(user_id, what)].append((pk, row.subject))
        db.session.commit()
    return marked


def _among(ids: list[int]):
    """ticket.id among ids: on PostgreSQL one array parameter (= ANY), since thousands of IN
    parameters cost more to send and plan than the rows they name; elsewhere an IN list."""
    if db.session.get_bind().dialect.name == "postgresql":
        return Ticket.id == any_(bindparam("ids", ids, type_=ARRAY(Integer)))
    return Ticket.id.in_(ids)


def _events(ids: list[int], kind: str, from_value, to_value, now: dt.datetime) -> None:
    e = TicketEvent.__table__.c
    db.session.execute(insert(TicketEvent.__table__).from_select(
        ["ticket_id", "kind", "from_value", "to_value", "at"],
        select(Ticket.id, literal(kind, e.kind.type), literal(from_value, e.from_value.type),
               literal(to_value, e.to_value.type), literal(now, e.at.type))
        .where(_among(ids))))


def _tasks(ids: list[int], level: int, now: dt.datetime) -> None:
    """A task about each ticket for its team's lead (else manager) at level 1, its manager at
    level 2 ("SLA 升级（第 1 级）：<subject>", due now)."""
    team = ServiceTeam.__table__.c
    owner = func.coalesce(team.lead_id, team.manager_id) if level == 1 else team.manager_id
    prefix, _, suffix = (tr("SLA escalation (level %(level)d): %(subject)s")
                         % {"level": level, "subject": "\x00"}).partition("\x00")
    c = Task.__table__.c
    title = func.substr(literal(prefix, c.subject.type) + Ticket.subject
                        + literal(suffix, c.subject.type), 1, SUBJECT)
    db.session.execute(insert(Task.__table__).from_select(
        ["owner_id", "subject", "notes", "due_at", "record_type", "record_id", "source",
         "status", "created_at"],
        select(owner, title,
               literal(tr("The ticket missed its SLA target; see that it is handled."),
                       c.notes.type),
               literal(now, c.due_at.type), literal("ticket", c.record_type.type), Ticket.id,
               literal("manual", c.source.type), literal("open", c.status.type),
               literal(now, c.created_at.type))
        .select_from(Ticket.__table__.join(ServiceTeam.__table__, team.id == Ticket.team_id))
        .where(_among(ids), owner.isnot(None))))


_TITLES = {
    "sla_warning": ("A ticket is about to miss its SLA: %(subject)s",
                    "%(n)d tickets are about to miss their SLA"),
    "sla_breach": ("A ticket missed its SLA: %(subject)s", "%(n)d tickets missed their SLA"),
    "sla_escalation": ("Escalated to you: %(subject)s (SLA missed)",
                       "%(n)d tickets escalated to you (SLA missed)"),
}


def _notify(result: SweepResult, now: dt.datetime) -> None:
    """One notification per recipient and kind per run: the ticket itself when there is one,
    else the count and the first few subjects."""
    rows = []
    for (user_id, kind), tickets in sorted(result.tell.items()):
        one, many = _TITLES[kind]
        if len(tickets) == 1:
            pk, subject = tickets[0]
            title, link = tr(one, subject=f"#{pk} {subject}"), ticket_link(pk)
            body = ""
        else:
            title, link = tr(many, n=len(tickets)), "/tickets/list/"
            body = "\n".join(f"#{pk} {subject}" for pk, subject in tickets[:LISTED])
        rows.append(dict(user_id=user_id, kind=kind, title=title[:200], body=body, link=link,
                         created_at=now))
    if rows:
        db.session.execute(insert(Notification.__table__), rows)
    result.tell.clear()


def bare_breach_update(now: dt.datetime) -> int:
    """The bench's baseline: one UPDATE of the breached rows, nothing else."""
    t = Ticket
    return db.session.execute(update(t).where(
        t.status.in_(OPEN_TICKET_STATUSES), t.resolution_breached_at.is_(None),
        t.resolution_due_at <= now).values(resolution_breached_at=now)
        .execution_options(synchronize_session=False)).rowcount

