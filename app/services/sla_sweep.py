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
import gc
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

from sqlalchemy import (ARRAY, Integer, and_, any_, bindparam, case, insert, literal,
                        null, select, update)

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
# More escalations than LISTED to one person in one chunk become one task listing them (up to
# DIGEST_LINES): a lead does not want 4,000 to-dos after an outage, and 4,000 task rows
# would cost the job more than its marks.
DIGEST_LINES = 50

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
    # A run after an outage handles 100,000s of rows, a few small objects each, none of them
    # in a cycle: the cyclic collector would walk the whole application's heap over and over
    # (a fifth of the job's time at 1M tickets, measured). Reference counting frees them.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _sweep(now or utcnow(), chunk)
    finally:
        if collecting:
            gc.enable()


def _sweep(now: dt.datetime, chunk: int) -> SweepResult:
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
                  lambda row: _breach_recipients(row, teams), result, escalate_level=1,
                  escalate_to=lambda row: _lead_or_manager(teams, row.team_id))
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
          result, escalate_level=2,
          escalate_to=lambda row: teams.get(row.team_id, (None, None))[1])
    result.seconds["level_2"] = time.perf_counter() - clock
    clock = time.perf_counter()
    _notify(result, now)
    db.session.commit()
    result.seconds["notifications"] = time.perf_counter() - clock
    return result


def _lead_or_manager(teams: dict, team_id: Optional[int]) -> Optional[int]:
    lead, manager = teams.get(team_id, (None, None))
    return lead or manager


def _breach_recipients(row, teams) -> list:
    out = [(row.agent_id, "sla_breach")]
    if row.escalation_level == 0:
        out.append((_lead_or_manager(teams, row.team_id), "sla_escalation"))
    return out


def _mark(cond, values: dict, kind: str, now: dt.datetime, chunk: int, recipients,
          result: SweepResult, escalate_level: int = 0, escalate_to=None) -> int:
    """Mark the tickets matching `cond` with `values`, chunk by chunk (each UPDATE re-checks
    `cond`), with one TicketEvent each (a breach's says whether it escalated); collect the
    recipients to be told and, for an escalation, the team's lead (level 1) or manager
    (level 2) to be given a task. Returns how many were marked."""
    t = Ticket
    # What each candidate's level was before this step: a ticket is escalated to level 1 by
    # its first breach only (RETURNING gives the new values, so it is read here).
    was = dict(db.session.execute(select(t.id, t.escalation_level).where(cond)
                                  .order_by(t.id)).all())
    ids = list(was)
    marked = 0
    for k in range(0, len(ids), chunk):
        part = ids[k:k + chunk]
        levelled = [pk for pk in part if escalate_level == 2 or (
            escalate_level == 1 and was[pk] == 0)]
        done = _mark_chunk(part, levelled, cond, values, kind, escalate_level, now)
        if not done:
            continue
        marked += len(done)
        levelled = set(levelled)
        tell, escalations = result.tell, defaultdict(list)
        for pk, subject, agent_id, team_id in done:
            row = _Marked(pk, subject, agent_id, team_id, was[pk])
            for user_id, what in recipients(row):
                if user_id is not None:
                    tell[(user_id, what)].append((pk, subject))
            if pk in levelled:
                to = escalate_to(row)
                if to is not None:
                    escalations[to].append((pk, subject))
        n_levelled = len(levelled.intersection(r[0] for r in done))
        if escalate_level == 1:
            result.escalated_1 += n_levelled
        elif escalate_level == 2:
            result.escalated_2 += n_levelled
        # The tasks in the marks' transaction: a run that dies later leaves no escalated
        # ticket without its task (the next run will not escalate it again).
        _escalation_tasks(escalations, escalate_level, now)
        db.session.commit()
    return marked


@dataclass(slots=True)
class _Marked:
    id: int
    subject: str
    agent_id: Optional[int]
    team_id: Optional[int]
    escalation_level: int  # before this step


def _mark_chunk(ids: list[int], levelled: list[int], cond, values: dict, kind: str,
                escalate_level: int, now: dt.datetime) -> list:
    """One chunk: the UPDATE (re-checking `cond`) and its TicketEvents. Returns the marked
    rows (id, subject, agent_id, team_id). On PostgreSQL it is a single statement — the
    UPDATE ... RETURNING feeds the INSERT as a data-modifying CTE, so the marked rows are
    not looked up again by id; SQLite runs the two in turn."""
    t = Ticket
    update_ = (update(t).where(_among(ids), cond).values(**values)
               .returning(t.id, t.subject, t.agent_id, t.team_id)
               .execution_options(synchronize_session=False))
    if db.session.get_bind().dialect.name == "postgresql":
        done = update_.cte("done")
        among = done.c.id == any_(bindparam("levelled", levelled, type_=ARRAY(Integer)))
        events = insert(TicketEvent.__table__).from_select(
            _EVENT_COLUMNS, _event_rows(done, kind, among, escalate_level, now)).cte("ev")
        return db.session.execute(select(done.c.id, done.c.subject, done.c.agent_id,
                                         done.c.team_id).add_cte(events)).all()
    done = db.session.execute(update_).all()
    if not done:
        return done
    levelled = list(set(levelled).intersection(r.id for r in done))
    t = Ticket.__table__
    among = t.c.id.in_(levelled)
    db.session.execute(insert(TicketEvent.__table__).from_select(
        _EVENT_COLUMNS, _event_rows(t, kind, among, escalate_level, now)
        .where(_among([r.id for r in done]))))
    return done


def _among(ids: list[int]):
    """ticket.id among ids: on PostgreSQL one array parameter (= ANY), since thousands of IN
    parameters cost more to send and plan than the rows they name; elsewhere an IN list."""
    if db.session.get_bind().dialect.name == "postgresql":
        return Ticket.id == any_(bindparam("ids", ids, type_=ARRAY(Integer)))
    return Ticket.id.in_(ids)


_EVENT_COLUMNS = ["ticket_id", "kind", "from_value", "to_value", "at"]


def _event_rows(source, kind: str, levelled, level: int, now: dt.datetime):
    """SELECT of one TicketEvent row per ticket in `source` (the ticket table, or the CTE of
    the rows just marked). A breach that escalated the ticket (`levelled`) says so in the same
    row, to_value "1" (the history shows "escalated to level 1"): one line per thing that
    happened, and a second event per breach would cost as much as the mark. Level 2 is its
    own event, sla_escalated "1" → "2"."""
    e = TicketEvent.__table__.c
    if level == 2:
        return select(source.c.id, literal(ESCALATED, e.kind.type),
                      literal("1", e.from_value.type), literal("2", e.to_value.type),
                      literal(now, e.at.type))
    to_value = (case((levelled, literal("1", e.to_value.type)), else_=null())
                if level == 1 else null())
    return select(source.c.id, literal(kind, e.kind.type), null(), to_value,
                  literal(now, e.at.type))


def _escalation_tasks(escalations: dict, level: int, now: dt.datetime) -> None:
    """The escalation to-dos of one chunk, for the team's lead (else manager) at level 1 and
    its manager at level 2: a task about each ticket ("SLA 升级（第 1 级）：<subject>", due
    now) — or, past LISTED tickets to one person, one task listing them."""
    rows = []
    for user_id, tickets in sorted(escalations.items()):
        tickets.sort()  # by ticket number (RETURNING gives the rows in no particular order)
        common = dict(owner_id=user_id, due_at=now, source="manual", status="open",
                      created_at=now)
        if len(tickets) <= LISTED:
            rows += [dict(common, record_type="ticket", record_id=pk,
                          subject=tr("SLA escalation (level %(level)d): %(subject)s",
                                     level=level, subject=subject)[:SUBJECT],
                          notes=tr("The ticket missed its SLA target; see that it is handled."))
                     for pk, subject in tickets]
            continue
        lines = [f"#{pk} {subject}" for pk, subject in tickets[:DIGEST_LINES]]
        if len(tickets) > DIGEST_LINES:
            lines.append(tr("… and %(n)d more (the ticket list shows them)",
                            n=len(tickets) - DIGEST_LINES))
        rows.append(dict(common, record_type=None, record_id=None,
                         subject=tr("SLA escalation (level %(level)d): %(n)d tickets",
                                    level=level, n=len(tickets))[:SUBJECT],
                         notes="\n".join([tr("These tickets missed their SLA targets; see "
                                             "that they are handled.")] + lines)))
    if rows:
        db.session.execute(insert(Task.__table__), rows)


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
        tickets.sort()  # by ticket number (RETURNING gives the rows in no particular order)
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

