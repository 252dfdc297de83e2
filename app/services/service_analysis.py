"""Service analysis (服务分析): what the desk did over a period, as tables.

Who: admins, back-office staff and auditors (every ticket), service managers and agents
and sales managers — each over the tickets they may read (tickets.scope_clause, the one
rule: a manager's teams, an agent's teams and own tickets, a sales manager's scope's
customers). Reps and marketing do not get the page (a management view; reps see their
customers' tickets on the customer page).

The period: tickets raised from `start` to `end` (business dates, both included; default
the last 30 days, at most 366). Every table but the backlog counts those tickets; the
backlog is the open tickets now, by age.

- volume by category, channel and day (SQL counts; the days are business days, grouped in
  Python over the period's creation times);
- SLA per priority: response and resolution in time against the stored due times (pauses
  are in them; over the tickets that had a due time), breach rate (the tickets with an SLA
  that breached either target), and the first
  response and resolution times p50 / p90 (nearest rank) in the policy's clock: business
  seconds (work_calendar.business_seconds, the team's periods) for business-hour
  policies, wall seconds otherwise. The durations are computed in Python over the most
  recent DURATION_SAMPLE tickets of the period (said on the page when the period has more);
  resolution durations include the time spent waiting for the customer;
- satisfaction (rated tickets of the period) by category, agent and team: count, average,
  low scores (≤ the settings' threshold);
- backlog: open tickets by age 0–1 d, 1–3 d, 3–7 d, > 7 d and priority;
- recurring problems: per category the tickets and the customers with two or more of them;
  and similar subjects grouped within each of the TOP_CATEGORIES busiest categories, over
  its SUBJECTS_PER_CATEGORY most recent subjects: normalised (NFKC, lowercase, punctuation
  and digits removed) and joined to the first group whose subject is similar (rapidfuzz
  token_set_ratio ≥ SIMILARITY); groups of two or more, the TOP_GROUPS largest shown.
"""
from __future__ import annotations

import datetime as dt
import io
import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Optional

from rapidfuzz import fuzz, process
from sqlalchemy import and_, case, func, or_, select

from app.extensions import db
from app.models import ServiceTeam, SlaPolicy, Ticket, TicketCategory, User
from app.models.customer import utcnow
from app.models.service_desk import (OPEN_TICKET_STATUSES, TICKET_CHANNELS, TICKET_PRIORITIES)
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_SERVICE_AGENT,
                          ROLE_SERVICE_MANAGER, ROLE_STAFF, has_role)
from app.services import periods
from app.services.errors import PermissionDenied, ValidationFailed, lazy_tr, tr
from app.services.times import from_local, local_date, local_today

DEFAULT_DAYS, MAX_DAYS = 30, 366
DURATION_SAMPLE = 20_000
TOP_CATEGORIES, SUBJECTS_PER_CATEGORY, TOP_GROUPS, SIMILARITY = 10, 2_000, 20, 80
AGE_BUCKETS = (("0-1d", 1), ("1-3d", 3), ("3-7d", 7), (">7d", None))
TABLES = ("by_category", "by_channel", "by_day", "sla", "satisfaction_category",
          "satisfaction_agent", "satisfaction_team", "backlog", "recurring_categories",
          "recurring_subjects")
TABLE_TITLES = {
    "by_category": lazy_tr("Tickets by category"), "by_channel": lazy_tr("Tickets by channel"),
    "by_day": lazy_tr("Tickets by day"),
    "sla": lazy_tr("SLA by priority (times in minutes of the policy's clock)"),
    "satisfaction_category": lazy_tr("Satisfaction by category"),
    "satisfaction_agent": lazy_tr("Satisfaction by agent"),
    "satisfaction_team": lazy_tr("Satisfaction by team"),
    "backlog": lazy_tr("Open tickets by age (now)"),
    "recurring_categories": lazy_tr("Recurring problems by category"),
    "recurring_subjects": lazy_tr("Recurring problems: similar subjects")}
COLUMNS = {
    "category": lazy_tr("Category"), "channel": lazy_tr("Channel"), "day": lazy_tr("Day"),
    "tickets": lazy_tr("Tickets"), "priority": lazy_tr("Priority"),
    "with_sla": lazy_tr("With an SLA"), "breached": lazy_tr("Breached"),
    "breach_rate": lazy_tr("Breach rate %"), "responded": lazy_tr("Responded"),
    "response_met": lazy_tr("Response in time %"),
    "response_p50": lazy_tr("First response p50"), "response_p90": lazy_tr("First response p90"),
    "resolved": lazy_tr("Resolved"), "resolution_met": lazy_tr("Resolved in time %"),
    "resolution_p50": lazy_tr("Resolution p50"), "resolution_p90": lazy_tr("Resolution p90"),
    "name": lazy_tr("Name"), "rated": lazy_tr("Rated"), "average": lazy_tr("Average score"),
    "low": lazy_tr("Low scores"), "age": lazy_tr("Age"), "P1": "P1", "P2": "P2", "P3": "P3",
    "P4": "P4", "total": lazy_tr("Total"),
    "repeat_customers": lazy_tr("Customers with two or more"),
    "subject": lazy_tr("Subject (an example of the group)")}
AGE_LABELS = {"0-1d": lazy_tr("0-1 days"), "1-3d": lazy_tr("1-3 days"),
              "3-7d": lazy_tr("3-7 days"), ">7d": lazy_tr("over 7 days")}
READERS = (ROLE_ADMIN, ROLE_STAFF, ROLE_AUDITOR, ROLE_SERVICE_MANAGER, ROLE_SERVICE_AGENT,
           ROLE_MANAGER)


def can_read(actor: Optional[User]) -> bool:
    return has_role(actor, *READERS)


@dataclass
class Period:
    start: dt.date
    end: dt.date

    @property
    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        """[from, to) in stored time."""
        return (from_local(dt.datetime.combine(self.start, dt.time())),
                from_local(dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time())))


def parse_period(start: Any = None, end: Any = None, today: Optional[dt.date] = None) -> Period:
    """`start` / `end` as typed (YYYY-MM-DD, business dates, both included); empty: the last
    DEFAULT_DAYS days to today."""
    today = today or local_today()
    errors: dict[str, str] = {}

    frm, to = periods.parse_period(start, end, today, DEFAULT_DAYS, MAX_DAYS, errors)
    if errors:
        raise ValidationFailed(errors)
    return Period(frm, to)


@dataclass
class Report:
    period: Period
    tables: dict[str, list[dict]] = field(default_factory=dict)
    total: int = 0
    sampled: Optional[int] = None  # the durations' sample size when the period had more


def _scope(actor: User):
    from app.services import tickets

    return tickets.scope_clause(actor, Ticket.id)


def _percentile(values: list[int], q: float) -> Optional[int]:
    """Nearest rank: the smallest value with at least q of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _minutes(seconds: Optional[int]) -> Optional[int]:
    return None if seconds is None else round(seconds / 60)


def _names(model, ids) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(model.id, model.name).where(model.id.in_(ids))).all())


def _user_names(ids) -> dict[int, str]:
    ids = {i for i in ids if i is not None}
    if not ids:
        return {}
    return {u.id: u.display_name for u in db.session.execute(
        select(User).where(User.id.in_(ids))).scalars()}


def report(actor: Optional[User], start: Any = None, end: Any = None,
           now: Optional[dt.datetime] = None) -> Report:
    if not can_read(actor):
        raise PermissionDenied(tr("You may not read the service analysis"))
    now = now or utcnow()
    period = parse_period(start, end, local_date(now))
    scope = _scope(actor)
    where = raised_in(scope, period)
    out = Report(period)
    out.total = db.session.execute(select(func.count()).select_from(Ticket).where(where)) \
        .scalar_one()

    # --- volume --------------------------------------------------------------------------
    out.tables["by_category"] = by_category(where)
    rows = db.session.execute(select(Ticket.channel, func.count()).where(where)
                              .group_by(Ticket.channel)).all()
    out.tables["by_channel"] = sorted(
        ({"channel": str(TICKET_CHANNELS.get(ch, ch)), "tickets": n} for ch, n in rows),
        key=lambda r: (-r["tickets"], r["channel"]))
    days = per_day(Ticket.created_at, where)
    out.tables["by_day"] = [{"day": d.isoformat(), "tickets": days[d]} for d in sorted(days)]

    # --- SLA -----------------------------------------------------------------------------
    out.tables["sla"], out.sampled = sla_by_priority(where)

    # --- satisfaction --------------------------------------------------------------------
    for table in SATISFACTION_TABLES:
        out.tables[table] = satisfaction(where, table)

    # --- backlog -------------------------------------------------------------------------
    out.tables["backlog"] = backlog(scope, now)

    # --- recurring problems ----------------------------------------------------------------
    out.tables["recurring_categories"], out.tables["recurring_subjects"] = _recurring(where)
    return out


# --- the tables' queries, shared with the charts (app.services.stats_desk) ----------------------
def raised_in(scope, period: Period):
    """WHERE clause: the tickets in `scope` raised in the period."""
    lo, hi = period.bounds
    return and_(scope, Ticket.created_at >= lo, Ticket.created_at < hi)


def resolved_in(scope, period: Period):
    """WHERE clause: the tickets in `scope` whose (latest) resolution fell in the period,
    whenever they were raised."""
    lo, hi = period.bounds
    return and_(scope, Ticket.resolved_at >= lo, Ticket.resolved_at < hi)


def by_category(where) -> list[dict]:
    """The tickets `where` selects per category, busiest first."""
    rows = db.session.execute(select(Ticket.category_id, func.count()).where(where)
                              .group_by(Ticket.category_id)).all()
    names = _names(TicketCategory, [r[0] for r in rows])
    none = tr("(none)")
    return sorted(({"category": names.get(cid, none), "tickets": n} for cid, n in rows),
                  key=lambda r: (-r["tickets"], r["category"]))


def per_day(column, where) -> dict[dt.date, int]:
    """{business day: tickets} of a stored time column over the tickets `where` selects
    (grouped in Python: the business day of a stored UTC time, whatever the database)."""
    days: dict[dt.date, int] = {}
    for (at,) in db.session.execute(select(column).where(where)):
        day = local_date(at)
        days[day] = days.get(day, 0) + 1
    return days


SATISFACTION_TABLES = {"satisfaction_category": Ticket.category_id,
                       "satisfaction_agent": Ticket.agent_id,
                       "satisfaction_team": Ticket.team_id}


def satisfaction(where, table: str) -> list[dict]:
    """The rated tickets of `where` per category, agent or team (`table`): how many, their
    average score and the low scores (≤ the settings' threshold); worst average first."""
    from app.services.satisfaction import settings

    threshold = settings().low_score_threshold
    column = SATISFACTION_TABLES[table]
    namer = {"satisfaction_category": lambda ids: _names(TicketCategory, ids),
             "satisfaction_agent": _user_names,
             "satisfaction_team": lambda ids: _names(ServiceTeam, ids)}[table]
    rows = db.session.execute(
        select(column, func.count(), func.avg(Ticket.satisfaction_score),
               func.sum(case((Ticket.satisfaction_score <= threshold, 1), else_=0)))
        .where(where, Ticket.satisfaction_score.isnot(None)).group_by(column)).all()
    names = namer([r[0] for r in rows])
    none = tr("(none)")
    return sorted(({"name": names.get(key, none), "rated": n, "average": round(float(avg), 2),
                    "low": int(low or 0)} for key, n, avg, low in rows),
                  key=lambda r: (r["average"], -r["rated"], r["name"]))


def score_counts(where) -> dict[int, int]:
    """{score: rated tickets} over the tickets `where` selects (the survey's 1–5)."""
    return {int(score): n for score, n in db.session.execute(
        select(Ticket.satisfaction_score, func.count())
        .where(where, Ticket.satisfaction_score.isnot(None))
        .group_by(Ticket.satisfaction_score)).all()}


def workload(scope) -> list[dict]:
    """The open tickets in `scope` now per agent and status (unassigned ones under no agent),
    most tickets first: who carries what."""
    rows = db.session.execute(
        select(Ticket.agent_id, Ticket.status, func.count())
        .where(scope, Ticket.status.in_(OPEN_TICKET_STATUSES))
        .group_by(Ticket.agent_id, Ticket.status)).all()
    names = _user_names(r[0] for r in rows)
    table: dict[Optional[int], dict] = {}
    for agent_id, status, n in rows:
        row = table.setdefault(agent_id, {
            "agent_id": agent_id, "name": names.get(agent_id, tr("(none)")),
            **{s: 0 for s in OPEN_TICKET_STATUSES}, "total": 0})
        row[status] += n
        row["total"] += n
    return sorted(table.values(), key=lambda r: (r["agent_id"] is None, -r["total"], r["name"]))


def sla_by_priority(where, durations: bool = True) -> tuple[list[dict], Optional[int]]:
    """The SLA table per priority and in all. `durations=False` leaves the p50 / p90 times
    out (None): the chart needs the counts and rates only, and the durations in business
    time are the table's costly part."""
    from app.services import work_calendar

    breached = or_(Ticket.response_breached_at.isnot(None),
                   Ticket.resolution_breached_at.isnot(None))
    met_response = and_(Ticket.first_response_at.isnot(None),
                        Ticket.first_response_due_at.isnot(None),
                        Ticket.first_response_at <= Ticket.first_response_due_at)
    met_resolution = and_(Ticket.resolved_at.isnot(None), Ticket.resolution_due_at.isnot(None),
                          Ticket.resolved_at <= Ticket.resolution_due_at)

    def n(cond):
        return func.sum(case((cond, 1), else_=0))

    counts = {r[0]: r[1:] for r in db.session.execute(select(
        Ticket.priority, func.count(), n(Ticket.sla_policy_id.isnot(None)), n(breached),
        n(Ticket.first_response_at.isnot(None)), n(met_response),
        n(Ticket.resolved_at.isnot(None)), n(met_resolution),
        n(and_(Ticket.first_response_at.isnot(None), Ticket.first_response_due_at.isnot(None))),
        n(and_(Ticket.resolved_at.isnot(None), Ticket.resolution_due_at.isnot(None))))
        .where(where)
        .group_by(Ticket.priority)).all()}
    sample = [] if not durations else db.session.execute(select(
        Ticket.priority, Ticket.team_id, Ticket.created_at, Ticket.first_response_at,
        Ticket.resolved_at, SlaPolicy.clock).outerjoin(
        SlaPolicy, SlaPolicy.id == Ticket.sla_policy_id).where(
        where, or_(Ticket.first_response_at.isnot(None), Ticket.resolved_at.isnot(None)))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(DURATION_SAMPLE + 1)).all()
    sampled = DURATION_SAMPLE if len(sample) > DURATION_SAMPLE else None
    times: dict[str, tuple[list[int], list[int]]] = {}

    def seconds(a, b, clock, team_id) -> int:
        if clock == "business":
            return work_calendar.business_seconds(a, b, team_id)
        return max(0, int((b - a).total_seconds()))

    for priority, team_id, created, responded, resolved, clock in sample[:DURATION_SAMPLE]:
        response, resolution = times.setdefault(priority, ([], []))
        if responded is not None:
            response.append(seconds(created, responded, clock, team_id))
        if resolved is not None:
            resolution.append(seconds(created, resolved, clock, team_id))
    out = []
    totals = [0] * 9
    for priority in TICKET_PRIORITIES:
        if priority not in counts:
            continue
        row = [int(v or 0) for v in counts[priority]]
        totals = [a + b for a, b in zip(totals, row)]
        response, resolution = times.get(priority, ([], []))
        out.append(_sla_row(priority, row, response, resolution))
    if out:
        every = [v for r, _ in times.values() for v in r]
        every_res = [v for _, r in times.values() for v in r]
        out.append(_sla_row(tr("All"), totals, every, every_res))
    return out, sampled


def _rate(part: int, whole: int) -> Optional[float]:
    return round(100.0 * part / whole, 1) if whole else None


def _sla_row(label: str, row: list[int], response: list[int], resolution: list[int]) -> dict:
    (tickets, with_sla, breached, responded, met_response, resolved, met_resolution,
     responded_due, resolved_due) = row
    return {"priority": label, "tickets": tickets, "with_sla": with_sla,
            "breached": breached, "breach_rate": _rate(breached, with_sla),
            "responded": responded, "response_met": _rate(met_response, responded_due),
            "response_p50": _minutes(_percentile(response, 0.5)),
            "response_p90": _minutes(_percentile(response, 0.9)),
            "resolved": resolved, "resolution_met": _rate(met_resolution, resolved_due),
            "resolution_p50": _minutes(_percentile(resolution, 0.5)),
            "resolution_p90": _minutes(_percentile(resolution, 0.9))}


def backlog(scope, now: dt.datetime) -> list[dict]:
    """The open tickets in `scope` now by age bucket and priority."""
    # Youngest first: CASE WHEN created_at > now - 1 d THEN '0-1d' WHEN … ELSE '>7d'.
    bucket = case(*[(Ticket.created_at > now - dt.timedelta(days=days), label)
                    for label, days in AGE_BUCKETS if days is not None],
                  else_=AGE_BUCKETS[-1][0])
    rows = db.session.execute(select(bucket, Ticket.priority, func.count()).where(
        scope, Ticket.status.in_(OPEN_TICKET_STATUSES)).group_by(bucket, Ticket.priority)).all()
    table = {label: {"age": label, **{p: 0 for p in TICKET_PRIORITIES}, "total": 0}
             for label, _ in AGE_BUCKETS}
    for label, priority, n in rows:
        table[label][priority] += n
        table[label]["total"] += n
    return [table[label] for label, _ in AGE_BUCKETS]


_NOISE = re.compile(r"[\W\d_]+", re.UNICODE)


def normalise(subject: str) -> str:
    """NFKC, lowercase, punctuation and digits out, spaces collapsed."""
    text = unicodedata.normalize("NFKC", subject or "").lower()
    return " ".join(_NOISE.sub(" ", text).split())


def group_subjects(subjects: list[str]) -> list[tuple[str, int]]:
    """Greedy grouping: each subject joins the first group whose first subject is similar
    (token_set_ratio ≥ SIMILARITY), else starts one. [(example subject, size)], largest
    first."""
    keys: list[str] = []
    groups: list[list] = []  # [example, size]
    for subject in subjects:
        key = normalise(subject)
        if not key:
            continue
        hit = process.extractOne(key, keys, scorer=fuzz.token_set_ratio,
                                 score_cutoff=SIMILARITY) if keys else None
        if hit is None:
            keys.append(key)
            groups.append([subject, 1])
        else:
            groups[hit[2]][1] += 1
    return sorted(((g[0], g[1]) for g in groups), key=lambda g: (-g[1], g[0]))


def _recurring(where) -> tuple[list[dict], list[dict]]:
    none = tr("(none)")
    per_customer = select(Ticket.category_id.label("category_id"),
                          Ticket.customer_id.label("customer_id"), func.count().label("n")) \
        .where(where, Ticket.customer_id.isnot(None)) \
        .group_by(Ticket.category_id, Ticket.customer_id).subquery()
    repeat = dict((cid, n) for cid, n in db.session.execute(select(
        per_customer.c.category_id, func.count()).where(per_customer.c.n >= 2)
        .group_by(per_customer.c.category_id)).all())
    volume = [tuple(r) for r in db.session.execute(select(Ticket.category_id, func.count())
                                                    .where(where).group_by(Ticket.category_id))]
    names = _names(TicketCategory, [r[0] for r in volume])
    volume.sort(key=lambda r: (-r[1], names.get(r[0], none)))
    categories = [{"category": names.get(cid, none), "tickets": n,
                   "repeat_customers": repeat.get(cid, 0)} for cid, n in volume]
    subjects = []
    for cid, _n in volume[:TOP_CATEGORIES]:
        rows = list(db.session.execute(select(Ticket.subject).where(
            where, Ticket.category_id == cid if cid is not None else Ticket.category_id.is_(None))
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(SUBJECTS_PER_CATEGORY)).scalars())
        for example, size in group_subjects(rows):
            if size >= 2:
                subjects.append({"category": names.get(cid, none), "subject": example,
                                 "tickets": size})
    subjects.sort(key=lambda r: (-r["tickets"], r["category"], r["subject"]))
    return categories, subjects[:TOP_GROUPS]


# --- CSV --------------------------------------------------------------------------------------
def csv_text(result: Report, table: str) -> str:
    """One table as CSV (the keys as the header, as the page's columns)."""
    from app.services.exports import SafeCsvWriter

    if table not in TABLES:
        raise ValidationFailed({"table": tr("The table can only be: %(choices)s",
                                            choices=", ".join(TABLES))})
    rows = result.tables.get(table, [])
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    header = list(rows[0]) if rows else []
    writer.writerow([str(COLUMNS.get(k, k)) for k in header])
    for row in rows:
        writer.writerow(["" if row[k] is None else cell(k, row[k]) for k in header])
    return out.getvalue()


def cell(key: str, value: Any) -> Any:
    """A value as shown: the age buckets by their label."""
    return str(AGE_LABELS[value]) if key == "age" and value in AGE_LABELS else value
