"""Chart data (统计): a registry of named stats, each evaluated in the caller's data scope.

One stat is one chart and one table (categories × series); the API answers it as JSON for
ECharts and as CSV / XLSX, the home page's dashboards draw it. The numbers come from the live
tables through the rules the pages already use (the workbench's stages and reclaim clock, the
targets' "new customer", the pipeline's scope), never counted a second way.

Scope, once for every stat:
  customers   limit_to_scope (app.security): the customers the caller may read; pool
              customers only for the scope ALL (admins, staff, auditors).
  people      the users whose customers the caller sees (visible_owner_ids): a rep
              themself, a manager their team; everyone for the scope ALL. Per-person
              numbers (follow-ups logged, deals won, claims, releases) count those people.
  own         the caller's own customers only (days before reclaim, claims today).
  whole org   pools, duplicates, imports: the scope ALL only (403 for the others).
Audience, once for every stat (`readers`): the customer charts above are the sales side's
(admins, managers, reps, back-office staff, auditors: reads_sales); the service desk's charts
(app.services.stats_desk) are read by whoever reads the service analysis and cover the tickets
it would count for them; the campaign charts (app.services.stats_campaigns) by whoever reads
the campaign effect table. A stat outside the caller's audience is absent from readable() and
a 403 from evaluate().
Filters: `from` / `to` (business days, inclusive) for the stats that run over time, and
`department` (that department and its sub-departments' people, inside the scope). The answer
says which filters applied (null: the stat has no such axis).
"""
from __future__ import annotations

import datetime as dt
import importlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping, Optional

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, distinct, func, or_, select, text
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import (Customer, CustomerMerge, Deal, DedupeCluster, Department, FollowUp,
                        ImportBatch, Opportunity, OpportunityStage, Ownership, OwnershipEvent,
                        Pool, User)
from app.models.org import EMPLOYMENT_ACTIVE
from app.models.ownership import ACQUIRED_KINDS_SQL
from app.models.stat_aggregate import NOBODY, StatDaily
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_MARKETING, ROLE_REP,
                          ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER, ROLE_STAFF, Scope, has_role,
                          limit_to_scope, scope_of, visible_owner_ids)
from app.services.errors import NotFound, PermissionDenied, ValidationFailed, tr
from app.services.times import business_zone, local_day_bounds, local_today, rfc3339

DEFAULT_DAYS = 30  # a dated stat without `from` covers the last 30 days up to `to`
MAX_DAYS = 366  # one point per day: a year at most
KINDS = ("bar", "line", "pie")


# --- filters ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Filters:
    """What the caller asked for, checked: business days [date_from, date_to] and a
    department (with its sub-departments)."""
    date_from: dt.date
    date_to: dt.date
    department_id: Optional[int] = None

    @property
    def since(self) -> dt.datetime:
        return local_day_bounds(self.date_from)[0]

    @property
    def until(self) -> dt.datetime:
        return local_day_bounds(self.date_to)[1]

    def days(self) -> list[dt.date]:
        return [self.date_from + dt.timedelta(days=i)
                for i in range((self.date_to - self.date_from).days + 1)]


def _day(value: Any, name: str, errors: dict) -> Optional[dt.date]:
    if value in (None, ""):
        return None
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        errors[name] = tr("%(field)s must be a date like 2026-01-31", field=name)
        return None


def parse_filters(args: Mapping[str, Any], today: Optional[dt.date] = None) -> Filters:
    """`from`, `to` (YYYY-MM-DD) and `department` (an id) from a request's arguments;
    ValidationFailed naming each bad one."""
    errors: dict[str, str] = {}
    today = today or local_today()
    date_to = _day(args.get("to"), "to", errors) or today
    date_from = _day(args.get("from"), "from", errors) or \
        date_to - dt.timedelta(days=DEFAULT_DAYS - 1)
    if not errors and date_from > date_to:
        errors["from"] = tr("from must not be after to")
    elif not errors and (date_to - date_from).days >= MAX_DAYS:
        errors["from"] = tr("The date range is at most %(days)s days", days=MAX_DAYS)
    department_id = None
    raw = args.get("department")
    if raw not in (None, ""):
        text = str(raw).strip()
        if not text.isdigit() or not 0 < int(text) <= 2_147_483_647:
            errors["department"] = tr("department must be a department id")
        elif db.session.get(Department, int(text)) is None:
            errors["department"] = tr("No such department: %(id)s", id=text)
        else:
            department_id = int(text)
    if errors:
        raise ValidationFailed(errors)
    return Filters(date_from, date_to, department_id)


# --- the answer ------------------------------------------------------------------------------
@dataclass
class Chart:
    """A stat's numbers: one value per category in each series."""
    name: str
    title: str
    kind: str
    categories: list[str]
    series: list[tuple[str, list]]
    filters: dict = field(default_factory=dict)
    category_label: str = ""
    as_of: Optional[dt.datetime] = None  # aggregate-backed: counted up to then (stored UTC)

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "kind": self.kind,
                "categories": self.categories,
                "series": [{"name": n, "data": [_plain(v) for v in values]}
                           for n, values in self.series],
                "filters": self.filters,
                "as_of": rfc3339(self.as_of) if self.as_of else None}

    def table(self) -> tuple[list[str], list[list]]:
        """The chart as a table, for CSV / XLSX: a row per category, a column per series."""
        header = [self.category_label or tr("Category")] + [n for n, _ in self.series]
        rows = [[c] + [_plain(values[i]) for _, values in self.series]
                for i, c in enumerate(self.categories)]
        return header, rows


def _plain(value):
    """Amounts as numbers a chart can draw (yuan, two decimals)."""
    if isinstance(value, Decimal):
        return float(round(value, 2))
    return value


SALES_ROLES = (ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF, ROLE_AUDITOR)


def reads_sales(user: Optional[User]) -> bool:
    """The customer charts' audience: a role with a customer data scope on the sales side or
    over the whole organisation. Marketing (it reads every customer, masked, but answers for
    campaigns) and the service desk have their own charts."""
    return scope_of(user) is not None and has_role(user, *SALES_ROLES)


@dataclass(frozen=True)
class Stat:
    name: str
    title: Any  # lazy: the reader's language
    kind: str
    compute: Callable[[User, Filters], "Numbers"]
    dated: bool = False
    departmental: bool = True
    whole_org: bool = False
    readers: Callable[[Optional[User]], bool] = reads_sales
    aggregated: bool = False  # reads stat_daily (app.services.stat_aggregates)


@dataclass
class Numbers:
    categories: list[str]
    series: list[tuple[str, list]]
    category_label: str = ""


STATS: dict[str, Stat] = {}
# The live query each aggregate-backed stat replaces, same answer from the event tables:
# the benchmark's baseline (bench/stats.py) and the tests' oracle.
RAW: dict[str, Callable[[User, Filters], "Numbers"]] = {}


def stat(name: str, title, kind: str, *, dated: bool = False, departmental: bool = True,
         whole_org: bool = False, readers: Callable[[Optional[User]], bool] = reads_sales,
         aggregated: bool = False):
    """Register a stat under `name` (its URL: /api/v1/stats/<name>), read by those `readers`
    accepts (default: the sales side's customer charts)."""
    assert kind in KINDS and name not in STATS

    def register(compute):
        STATS[name] = Stat(name, title, kind, compute, dated, departmental, whole_org, readers,
                           aggregated)
        return compute
    return register


def raw_query(name: str):
    """Register the live query an aggregate-backed stat `name` replaces."""
    def register(compute):
        RAW[name] = compute
        return compute
    return register


def may_read(user: Optional[User], found: Stat) -> bool:
    """Whether the stat is for the user: in its audience, and whole-org ones with the scope
    ALL."""
    if user is None or not found.readers(user):
        return False
    return not found.whole_org or scope_of(user) == Scope.ALL


def readable(user: Optional[User]) -> list[Stat]:
    """The stats the user may read."""
    return [s for s in STATS.values() if may_read(user, s)]


def evaluate(user: Optional[User], name: str, filters: Filters, raw: bool = False) -> Chart:
    """The stat `name` for `user` with `filters`: NotFound for no such stat, PermissionDenied
    when it is not for the user's roles or scope. `raw`: from the live query an
    aggregate-backed stat replaces (the benchmark's baseline, the tests' oracle)."""
    found = STATS.get(name)
    if found is None:
        raise NotFound(tr("No such chart: %(name)s", name=name))
    if user is None or not found.readers(user):
        raise PermissionDenied(tr("This chart is not for your role"))
    if found.whole_org and scope_of(user) != Scope.ALL:
        raise PermissionDenied(tr("This chart covers the whole organisation: admins, "
                                  "back-office staff and auditors only"))
    if not found.departmental:
        filters = Filters(filters.date_from, filters.date_to, None)
    as_of = None
    if found.aggregated and raw:
        numbers = RAW[name](user, filters)
    elif found.aggregated:
        from app.services import stat_aggregates

        stat_aggregates.catch_up()
        numbers = found.compute(user, filters)
        as_of = stat_aggregates.fresh_as_of()
    else:
        numbers = found.compute(user, filters)
    applied = {"from": filters.date_from.isoformat() if found.dated else None,
               "to": filters.date_to.isoformat() if found.dated else None,
               "department": filters.department_id if found.departmental else None}
    return Chart(found.name, str(found.title), found.kind, numbers.categories,
                 numbers.series, applied, numbers.category_label, as_of)


# --- the dashboards --------------------------------------------------------------------------
REP_DASHBOARD = ("customers_by_stage", "reclaim_days", "followups_week", "claims_today",
                 "pipeline", "target_attainment", "my_tasks")
MANAGER_DASHBOARD = ("team_ranking", "team_conversion", "pool_flow", "reclaims_transfers",
                     "pipeline", "target_attainment", "customers_by_stage")
ORG_DASHBOARD = ("customer_growth", "customers_by_category", "customers_by_grade",
                 "customers_by_region", "pool_sizes", "pool_sizes_over_time", "duplicates",
                 "imports")
# The service desk's and marketing's (app.services.stats_desk, stats_campaigns): their
# analysis pages' tables as charts.
SERVICE_DASHBOARD = ("tickets_per_day", "ticket_backlog", "ticket_sla", "satisfaction_scores",
                     "tickets_by_category")
SERVICE_MANAGER_DASHBOARD = ("tickets_per_day", "agent_workload", "satisfaction_by_agent",
                             "ticket_sla", "ticket_backlog", "satisfaction_scores",
                             "tickets_by_category")
MARKETING_DASHBOARD = ("campaign_effect", "campaign_money", "campaign_totals",
                       "campaign_responses_per_day")


def dashboard_for(user: Optional[User]) -> tuple[str, ...]:
    """The charts of the user's home page, one dashboard per user. With several roles the
    first that applies wins: the organisation's for those who see all of it (admins,
    auditors, back-office staff), then the managers' (sales, then service: a team to watch
    outweighs one's own work), then the individual roles' (rep, marketing, service agent)."""
    if user is None:
        return ()
    if scope_of(user) == Scope.ALL and has_role(user, ROLE_ADMIN, ROLE_AUDITOR, ROLE_STAFF):
        return ORG_DASHBOARD
    for role, charts in ((ROLE_MANAGER, MANAGER_DASHBOARD),
                         (ROLE_SERVICE_MANAGER, SERVICE_MANAGER_DASHBOARD),
                         (ROLE_REP, REP_DASHBOARD), (ROLE_MARKETING, MARKETING_DASHBOARD),
                         (ROLE_SERVICE_AGENT, SERVICE_DASHBOARD)):
        if has_role(user, role):
            return charts
    return ()


def department_choices(user: Optional[User]) -> list[tuple[int, str]]:
    """The departments a dashboard's department filter offers the user: every one for the
    scope ALL, a manager's own department tree, none for a scope of people (a rep's own)."""
    scope = scope_of(user)
    if scope is None or scope in (Scope.OWN, Scope.OWN_AND_SUBORDINATES):
        return []
    q = select(Department.id, Department.name).order_by(Department.path)
    if scope != Scope.ALL:
        if not user.department_id:
            return []
        mine = db.session.get(Department, user.department_id)
        q = q.where(Department.id == mine.id) if scope == Scope.DEPARTMENT else \
            q.where(Department.path.startswith(mine.path, autoescape=True))
    return [(r.id, r.name) for r in db.session.execute(q)]


# --- scope helpers ---------------------------------------------------------------------------
def department_members(department_id: int):
    """SELECT of the users in a department and its sub-departments (its indexed path)."""
    top = select(Department.path).where(Department.id == department_id).scalar_subquery()
    sub = aliased(Department)
    return select(User.id).join(sub, sub.id == User.department_id).where(
        sub.path.startswith(top, autoescape=False))


def people_clause(user: User, column, filters: Filters):
    """`column` (a user id) limited to the people whose numbers the caller sees."""
    scope = scope_of(user)
    clauses = []
    if scope != Scope.ALL:
        clauses.append(column.in_(sorted(visible_owner_ids(user, scope))))
    if filters.department_id is not None:
        clauses.append(column.in_(department_members(filters.department_id)))
    return and_(*clauses) if clauses else column.is_not(None)


def scoped_customers(query, user: User, filters: Filters, column=Customer.id):
    """`query` limited to the customers the caller reads (owned ones only with a department
    filter: those its people own)."""
    query = limit_to_scope(query, user, column)
    if filters.department_id is not None:
        query = query.where(column.in_(select(Ownership.customer_id).where(
            Ownership.owner_id.in_(department_members(filters.department_id)))))
    return query


def owned_in_scope(user: User, filters: Filters):
    """WHERE clause on Ownership: owned by the people in scope (customers shared with the
    caller are someone else's stage, not theirs)."""
    return and_(Ownership.owner_id.is_not(None),
                people_clause(user, Ownership.owner_id, filters))


def local_day(column):
    """The business day of a stored (naive UTC) time, as 'YYYY-MM-DD' text, in SQL: shifted by
    the zone's offset today (Asia/Shanghai has no daylight saving; elsewhere an hour around a
    change may land on the neighbouring day)."""
    minutes = int(dt.datetime.now(business_zone()).utcoffset().total_seconds() // 60)
    if db.session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m-%d", column, f"{minutes:+d} minutes")
    return func.to_char(column + dt.timedelta(minutes=minutes), "YYYY-MM-DD")


def per_day(rows: Iterable, days: list[dt.date]) -> list[int]:
    """Counts keyed by 'YYYY-MM-DD' as one value per day (0 for a day without any)."""
    found = {str(day): int(n or 0) for day, n in rows}
    return [found.get(d.isoformat(), 0) for d in days]


def _user_names(ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(ids))
    if not ids:
        return {}
    return {u.id: u.display_name for u in db.session.execute(
        select(User).where(User.id.in_(ids))).scalars()}


def _day_labels(filters: Filters) -> list[str]:
    return [d.isoformat() for d in filters.days()]


# --- reading the aggregates (app.services.stat_aggregates) -------------------------------------
def agg_people(user: User, filters: Filters, column=StatDaily.owner_id):
    """people_clause on an aggregate's person column (NOBODY is no one, as NULL is in the
    event tables)."""
    return and_(column != NOBODY, people_clause(user, column, filters))


def agg_days(kind: str, first: dt.date, last: dt.date):
    """The aggregate rows of `kind` on business days first..last."""
    return and_(StatDaily.kind == kind, StatDaily.day >= first, StatDaily.day <= last)


def agg_per_owner(kind: str, filters: Filters, *where, value=StatDaily.n) -> dict:
    """{owner id: sum of `value`} over the filters' days."""
    rows = db.session.execute(
        select(StatDaily.owner_id, func.sum(value)).where(
            agg_days(kind, filters.date_from, filters.date_to), *where)
        .group_by(StatDaily.owner_id)).all()
    if value is StatDaily.n:
        return {owner: int(n) for owner, n in rows}
    return {owner: Decimal(amount) for owner, amount in rows}


def agg_per_day(kind: str, first: dt.date, last: dt.date, *where) -> list:
    """(day 'YYYY-MM-DD', sum of n) over business days first..last, for per_day."""
    return [(str(day), n) for day, n in db.session.execute(
        select(StatDaily.day, func.sum(StatDaily.n)).where(agg_days(kind, first, last), *where)
        .group_by(StatDaily.day)).all()]


def first_acquired(filters: Filters):
    """An 'acquired' row counts a customer once per range: the same owner did not acquire the
    same customer earlier in the range (the targets' distinct "new customer")."""
    return StatDaily.since < filters.date_from


# --- the rep's -------------------------------------------------------------------------------
@stat("customers_by_stage", _l("Customers by stage"), "pie")
def customers_by_stage(user: User, filters: Filters) -> Numbers:
    """The workbench's tabs (not contacted / following up / won) over the owned customers in
    scope: a rep's own, a manager's team's."""
    from app.services.workbench import TABS

    unwon = Ownership.won.is_(False)
    row = db.session.execute(select(
        func.count().filter(unwon, Ownership.last_followup_at.is_(None)),
        func.count().filter(unwon, Ownership.last_followup_at.is_not(None)),
        func.count().filter(Ownership.won.is_(True)),
    ).where(owned_in_scope(user, filters))).one()
    return Numbers([str(TABS[t]) for t in ("new", "following", "won")],
                   [(tr("Customers"), list(row))], tr("Stage"))


RECLAIM_BUCKETS = ((0, _l("Due today or overdue")), (3, _l("1–3 days")), (7, _l("4–7 days")),
                   (14, _l("8–14 days")), (30, _l("15–30 days")), (None, _l("Over 30 days")))


@stat("reclaim_days", _l("My customers by days before reclaim"), "bar", departmental=False)
def reclaim_days(user: User, filters: Filters) -> Numbers:
    """The caller's own customers by whole days until the reclaim sweep would take them (the
    workbench's clock, segment policies and protecting opportunities included); locked and
    won ones are exempt."""
    from app.services import policies, workbench

    policy = policies.effective_policy(user.id)
    counts = [0] * (len(RECLAIM_BUCKETS) + 1)
    for tab in ("new", "following"):
        for row in workbench.my_customers(user, tab, limit=None, policy=policy):
            counts[_bucket(row["days_left"])] += 1
    counts[-1] += db.session.execute(select(func.count()).where(
        Ownership.owner_id == user.id, Ownership.won.is_(True))).scalar_one()
    labels = [str(label) for _, label in RECLAIM_BUCKETS] + [tr("Exempt (locked or won)")]
    return Numbers(labels, [(tr("Customers"), counts)], tr("Days before reclaim"))


def _bucket(days_left: Optional[int]) -> int:
    if days_left is None:
        return len(RECLAIM_BUCKETS)
    for i, (upto, _) in enumerate(RECLAIM_BUCKETS):
        if upto is None or days_left <= upto:
            return i
    return len(RECLAIM_BUCKETS) - 1


WEEKDAYS = (_l("Mon"), _l("Tue"), _l("Wed"), _l("Thu"), _l("Fri"), _l("Sat"), _l("Sun"))


@stat("followups_week", _l("Follow-ups this week and last week"), "bar", aggregated=True)
def followups_week(user: User, filters: Filters) -> Numbers:
    """Follow-ups logged by the people in scope, per weekday of this business week and of the
    one before (a rep's own, a manager's team's)."""
    today = local_today()
    monday = today - dt.timedelta(days=today.weekday())
    last_monday = monday - dt.timedelta(days=7)
    rows = agg_per_day("followup", last_monday, monday + dt.timedelta(days=6),
                       agg_people(user, filters))
    return _followup_weeks(rows, monday)


def _followup_weeks(rows, monday: dt.date) -> Numbers:
    week = [monday + dt.timedelta(days=i) for i in range(7)]
    last = [monday - dt.timedelta(days=7 - i) for i in range(7)]
    return Numbers([str(d) for d in WEEKDAYS],
                   [(tr("Last week"), per_day(rows, last)), (tr("This week"), per_day(rows, week))],
                   tr("Weekday"))


@raw_query("followups_week")
def followups_week_raw(user: User, filters: Filters) -> Numbers:
    """Follow-ups logged by the people in scope, per weekday of this business week and of the
    one before (a rep's own, a manager's team's)."""
    today = local_today()
    monday = today - dt.timedelta(days=today.weekday())
    last_monday = monday - dt.timedelta(days=7)
    day = local_day(FollowUp.happened_at)
    rows = db.session.execute(
        select(day, func.count()).where(
            FollowUp.happened_at >= local_day_bounds(last_monday)[0],
            FollowUp.happened_at < local_day_bounds(monday + dt.timedelta(days=6))[1],
            people_clause(user, FollowUp.user_id, filters)).group_by(day)).all()
    return _followup_weeks(rows, monday)


@stat("claims_today", _l("My claims today against the daily limit"), "pie", departmental=False)
def claims_today(user: User, filters: Filters) -> Numbers:
    """Today's claims from the pools and what the daily limit leaves (the workbench's
    figures: app.services.workbench.limits)."""
    from app.services import workbench

    standing = workbench.limits(user.id)
    limit = standing["policy"]["daily_claim_limit"]["value"]
    claimed = standing["claimed_today"]
    left = max(int(limit) - claimed, 0) if limit is not None else 0
    return Numbers([tr("Claimed today"), tr("Left today")], [(tr("Customers"), [claimed, left])],
                   tr("Claims"))


@stat("pipeline", _l("Pipeline by stage"), "bar")
def pipeline(user: User, filters: Filters) -> Numbers:
    """Open opportunities the caller may read (app.services.opportunities.scope_clause), per
    stage in the stages' order: how many and their amount."""
    from app.services import opportunities

    mine = [Opportunity.stage_id == OpportunityStage.id, Opportunity.status == "open",
            opportunities.scope_clause(user)]
    if filters.department_id is not None:
        mine.append(Opportunity.customer_id.in_(select(Ownership.customer_id).where(
            Ownership.owner_id.in_(department_members(filters.department_id)))))
    rows = db.session.execute(
        select(OpportunityStage.name, func.count(Opportunity.id),
               func.coalesce(func.sum(Opportunity.amount), 0))
        .join(Opportunity, and_(*mine), isouter=True)
        .where(OpportunityStage.kind == "open")
        .group_by(OpportunityStage.id, OpportunityStage.name, OpportunityStage.position)
        .order_by(OpportunityStage.position, OpportunityStage.id)).all()
    return Numbers([r[0] for r in rows],
                   [(tr("Opportunities"), [r[1] for r in rows]),
                    (tr("Amount (yuan)"), [Decimal(r[2]) for r in rows])], tr("Stage"))


@stat("target_attainment", _l("Sales target attainment this month"), "bar",
      departmental=False)
def target_attainment(user: User, filters: Filters) -> Numbers:
    """达成率 of this month's targets (won amount and new customers), in percent, per person
    the targets' own scope lets the caller read (app.services.targets: a rep's own row, a
    manager's team); empty where no target is set."""
    from app.services import targets

    start = targets.period_containing("month")
    if has_role(user, ROLE_ADMIN, ROLE_MANAGER, ROLE_AUDITOR):
        rows = targets.team_attainment(user, "month", start).users
    else:
        rows = [targets.my_attainment(user, "month", start)]
    rows = [r for r in rows if r["target_won"] is not None or r["target_new"] is not None]

    def percent(rate):
        return None if rate is None else float(round(rate * 100, 1))
    return Numbers([r["name"] for r in rows],
                   [(tr("Won amount attained (%)"), [percent(r["rate_won"]) for r in rows]),
                    (tr("New customers attained (%)"), [percent(r["rate_new"]) for r in rows])],
                   tr("Person"))


TASK_BUCKETS = (_l("Overdue"), _l("Due today"), _l("Due this week"), _l("Due later"))


@stat("my_tasks", _l("My open tasks by due date"), "bar", departmental=False)
def my_tasks(user: User, filters: Filters) -> Numbers:
    """The caller's own open tasks (待办): overdue, due today, later this business week,
    after it."""
    from app.models import Task
    from app.models.customer import utcnow

    today = local_today()
    end = local_day_bounds(today)[1]
    week_end = local_day_bounds(today + dt.timedelta(days=6 - today.weekday()))[1]
    now = utcnow()
    row = db.session.execute(select(
        func.count().filter(Task.due_at < now),
        func.count().filter(Task.due_at >= now, Task.due_at < end),
        func.count().filter(Task.due_at >= end, Task.due_at < week_end),
        func.count().filter(Task.due_at >= week_end),
    ).where(Task.owner_id == user.id, Task.status == "open")).one()
    return Numbers([str(b) for b in TASK_BUCKETS], [(tr("Tasks"), list(row))], tr("Due"))


# --- the manager's ---------------------------------------------------------------------------
@stat("team_ranking", _l("Team ranking"), "bar", dated=True, aggregated=True)
def team_ranking(user: User, filters: Filters) -> Numbers:
    """Per active person in scope over the dates: new customers (the targets' measure:
    customers created, claimed, assigned or rule-assigned to them), follow-ups logged, won
    amount; best won amount first, then most new customers."""
    people = StatDaily.owner_id.in_(select(User.id).where(
        User.employment_status == EMPLOYMENT_ACTIVE, people_clause(user, User.id, filters)))
    return _ranking(agg_per_owner("acquired", filters, people, first_acquired(filters)),
                    agg_per_owner("followup", filters, people),
                    agg_per_owner("won", filters, people, value=StatDaily.amount))


def _ranking(new: dict, followed: dict, won: dict) -> Numbers:
    ids = set(new) | set(followed) | set(won)
    names = _user_names(ids)
    order = sorted(ids, key=lambda i: (-won.get(i, 0), -new.get(i, 0), -followed.get(i, 0),
                                       names.get(i, "")))
    return Numbers([names.get(i, f"#{i}") for i in order],
                   [(tr("New customers"), [new.get(i, 0) for i in order]),
                    (tr("Follow-ups"), [followed.get(i, 0) for i in order]),
                    (tr("Won amount (yuan)"), [won.get(i, Decimal(0)) for i in order])],
                   tr("Person"))


@raw_query("team_ranking")
def team_ranking_raw(user: User, filters: Filters) -> Numbers:
    """Per active person in scope over the dates: new customers (the targets' measure:
    customers created, claimed, assigned or rule-assigned to them), follow-ups logged, won
    amount; best won amount first, then most new customers."""
    from app.services.targets import ACQUIRED

    since, until = filters.since, filters.until
    people = select(User.id).where(User.employment_status == EMPLOYMENT_ACTIVE,
                                   people_clause(user, User.id, filters))
    new = dict(db.session.execute(
        select(OwnershipEvent.to_owner_id, func.count(distinct(OwnershipEvent.customer_id)))
        .where(OwnershipEvent.to_owner_id.in_(people), OwnershipEvent.kind.in_(ACQUIRED),
               OwnershipEvent.created_at >= since, OwnershipEvent.created_at < until)
        .group_by(OwnershipEvent.to_owner_id)).all())
    followed = dict(db.session.execute(
        select(FollowUp.user_id, func.count()).where(
            FollowUp.user_id.in_(people), FollowUp.happened_at >= since,
            FollowUp.happened_at < until).group_by(FollowUp.user_id)).all())
    won = {uid: Decimal(amount) for uid, amount in db.session.execute(
        select(Deal.user_id, func.sum(Deal.amount)).where(
            Deal.user_id.in_(people), Deal.won_on >= filters.date_from,
            Deal.won_on <= filters.date_to).group_by(Deal.user_id)).all()}
    return _ranking(new, followed, won)


@stat("team_conversion", _l("Conversion of new customers per person"), "bar", dated=True,
      aggregated=True)
def team_conversion(user: User, filters: Filters) -> Numbers:
    """Per person in scope: the customers they acquired over the dates (the targets' "new
    customer"), how many of those they hold won today, and that share in percent. The first
    from the aggregates; the second from the won customers they hold (a few per person) with
    an acquisition by them in the dates."""
    new = agg_per_owner("acquired", filters, agg_people(user, filters), first_acquired(filters))
    new = {owner: n for owner, n in new.items() if n}
    # One probe of the acquisitions index per won customer, LIMIT 1 so that no planner turns
    # it into a join over every event of a long range.
    acquired_then = select(OwnershipEvent.id).where(
        OwnershipEvent.customer_id == Ownership.customer_id,
        OwnershipEvent.to_owner_id == Ownership.owner_id,
        text(f"ownership_event.{ACQUIRED_KINDS_SQL}"),  # ix_ownership_event_acquired
        OwnershipEvent.created_at >= filters.since, OwnershipEvent.created_at < filters.until
    ).limit(1).scalar_subquery()
    won = dict(db.session.execute(
        select(Ownership.owner_id, func.count()).where(
            Ownership.won.is_(True), Ownership.owner_id.in_(sorted(new)),
            acquired_then.is_not(None)).group_by(Ownership.owner_id)).all()) if new else {}
    return _conversion([(owner, n, won.get(owner, 0)) for owner, n in new.items()])


def _conversion(rows) -> Numbers:
    names = _user_names(r[0] for r in rows)
    rows = sorted(rows, key=lambda r: (-(r[2] / r[1]), -r[1], names.get(r[0], "")))
    return Numbers([names.get(r[0], f"#{r[0]}") for r in rows],
                   [(tr("New customers"), [r[1] for r in rows]),
                    (tr("Won of them"), [r[2] for r in rows]),
                    (tr("Conversion (%)"), [round(100 * r[2] / r[1], 1) for r in rows])],
                   tr("Person"))


@raw_query("team_conversion")
def team_conversion_raw(user: User, filters: Filters) -> Numbers:
    """Per person in scope: the customers they acquired over the dates (the targets' "new
    customer"), how many of those they hold won today, and that share in percent."""
    from app.services.targets import ACQUIRED

    acquired = select(OwnershipEvent.to_owner_id.label("owner_id"),
                      OwnershipEvent.customer_id.label("customer_id")).where(
        OwnershipEvent.kind.in_(ACQUIRED), OwnershipEvent.created_at >= filters.since,
        OwnershipEvent.created_at < filters.until,
        people_clause(user, OwnershipEvent.to_owner_id, filters)).distinct().subquery()
    rows = db.session.execute(
        select(acquired.c.owner_id, func.count(),
               func.count(Ownership.customer_id))
        .select_from(acquired)
        .join(Ownership, and_(Ownership.customer_id == acquired.c.customer_id,
                              Ownership.owner_id == acquired.c.owner_id,
                              Ownership.won.is_(True)), isouter=True)
        .group_by(acquired.c.owner_id)).all()
    return _conversion([tuple(r) for r in rows])


@stat("pool_flow", _l("Pool put and take per person"), "bar", dated=True, aggregated=True)
def pool_flow(user: User, filters: Filters) -> Numbers:
    """Per person in scope over the dates, from the ownership events: customers they released
    to a pool, those the sweep reclaimed from them, those they claimed from a pool."""
    put = {}
    for kind in ("released", "reclaimed"):
        for owner, n in agg_per_owner(kind, filters, agg_people(user, filters)).items():
            put[(owner, kind)] = n
    return _pool_flow(put, agg_per_owner("claimed", filters, agg_people(user, filters)))


def _pool_flow(put: dict, took: dict) -> Numbers:
    ids = {owner for owner, _ in put} | set(took)
    names = _user_names(ids)
    order = sorted(ids, key=lambda i: names.get(i, ""))
    return Numbers([names.get(i, f"#{i}") for i in order],
                   [(tr("Released"), [put.get((i, "released"), 0) for i in order]),
                    (tr("Reclaimed"), [put.get((i, "reclaimed"), 0) for i in order]),
                    (tr("Claimed"), [took.get(i, 0) for i in order])], tr("Person"))


@raw_query("pool_flow")
def pool_flow_raw(user: User, filters: Filters) -> Numbers:
    """Per person in scope over the dates, from the ownership events: customers they released
    to a pool, those the sweep reclaimed from them, those they claimed from a pool."""
    since, until = filters.since, filters.until
    dated = and_(OwnershipEvent.created_at >= since, OwnershipEvent.created_at < until)
    put = {}
    for owner, kind, n in db.session.execute(
            select(OwnershipEvent.from_owner_id, OwnershipEvent.kind, func.count())
            .where(dated, OwnershipEvent.kind.in_(("released", "reclaimed")),
                   people_clause(user, OwnershipEvent.from_owner_id, filters))
            .group_by(OwnershipEvent.from_owner_id, OwnershipEvent.kind)):
        put[(owner, kind)] = n
    took = dict(db.session.execute(
        select(OwnershipEvent.to_owner_id, func.count())
        .where(dated, OwnershipEvent.kind == "claimed",
               people_clause(user, OwnershipEvent.to_owner_id, filters))
        .group_by(OwnershipEvent.to_owner_id)).all())
    return _pool_flow(put, took)


@stat("reclaims_transfers", _l("Reclaims and transfers per day"), "line", dated=True,
      aggregated=True)
def reclaims_transfers(user: User, filters: Filters) -> Numbers:
    """Per business day: customers the sweep reclaimed from the people in scope, and
    customers transferred from or to them."""
    first, last = filters.date_from, filters.date_to
    reclaimed = agg_per_day("reclaimed", first, last, agg_people(user, filters))
    transferred = agg_per_day("transferred", first, last, or_(
        agg_people(user, filters), agg_people(user, filters, StatDaily.peer_id)))
    days = filters.days()
    return Numbers(_day_labels(filters), [(tr("Reclaimed"), per_day(reclaimed, days)),
                                          (tr("Transferred"), per_day(transferred, days))],
                   tr("Day"))


@raw_query("reclaims_transfers")
def reclaims_transfers_raw(user: User, filters: Filters) -> Numbers:
    """Per business day: customers the sweep reclaimed from the people in scope, and
    customers transferred from or to them."""
    day = local_day(OwnershipEvent.created_at)
    dated = and_(OwnershipEvent.created_at >= filters.since,
                 OwnershipEvent.created_at < filters.until)
    reclaimed = db.session.execute(select(day, func.count()).where(
        dated, OwnershipEvent.kind == "reclaimed",
        people_clause(user, OwnershipEvent.from_owner_id, filters)).group_by(day)).all()
    transferred = db.session.execute(select(day, func.count()).where(
        dated, OwnershipEvent.kind == "transferred",
        or_(people_clause(user, OwnershipEvent.from_owner_id, filters),
            people_clause(user, OwnershipEvent.to_owner_id, filters))).group_by(day)).all()
    days = filters.days()
    return Numbers(_day_labels(filters), [(tr("Reclaimed"), per_day(reclaimed, days)),
                                          (tr("Transferred"), per_day(transferred, days))],
                   tr("Day"))


# --- the organisation's ----------------------------------------------------------------------
@stat("customer_growth", _l("New customers per day"), "line", dated=True, aggregated=True)
def customer_growth(user: User, filters: Filters) -> Numbers:
    """Customers created per business day, among those the caller reads: the whole
    organisation's from the aggregates; a narrower scope or a department (customers by their
    owner now) from the customers themselves, a team's few."""
    if scope_of(user) != Scope.ALL or filters.department_id is not None:
        return customer_growth_raw(user, filters)
    rows = agg_per_day("customer_new", filters.date_from, filters.date_to)
    return Numbers(_day_labels(filters), [(tr("New customers"), per_day(rows, filters.days()))],
                   tr("Day"))


@raw_query("customer_growth")
def customer_growth_raw(user: User, filters: Filters) -> Numbers:
    """Customers created per business day, among those the caller reads."""
    day = local_day(Customer.created_at)
    q = select(day, func.count()).where(Customer.created_at >= filters.since,
                                        Customer.created_at < filters.until)
    rows = db.session.execute(scoped_customers(q, user, filters).group_by(day)).all()
    return Numbers(_day_labels(filters), [(tr("New customers"), per_day(rows, filters.days()))],
                   tr("Day"))


def ownership_counts(column, user: User, filters: Filters) -> dict:
    """{value of `column` (an Ownership column): customers} over the customers the caller
    reads. Every customer has exactly one ownership row, so for the scope ALL without a
    department the ownership table alone answers (one scan of the narrow table instead of a
    join with a million customers)."""
    if scope_of(user) == Scope.ALL and filters.department_id is None:
        q = select(column, func.count()).select_from(Ownership)
    else:
        q = scoped_customers(select(column, func.count()).select_from(Customer).join(
            Ownership, Ownership.customer_id == Customer.id), user, filters)
    return dict(db.session.execute(q.group_by(column)).all())


@stat("customers_by_category", _l("Customers by category"), "pie")
def customers_by_category(user: User, filters: Filters) -> Numbers:
    """潜在 / 活跃 / 沉默 (the nightly classification) over the customers the caller reads."""
    from app.services.cti_pop import CATEGORY_LABELS

    found = ownership_counts(Ownership.category, user, filters)
    keys = list(CATEGORY_LABELS) + sorted(set(found) - set(CATEGORY_LABELS))
    return Numbers([str(CATEGORY_LABELS.get(k, k)) for k in keys],
                   [(tr("Customers"), [found.get(k, 0) for k in keys])], tr("Category"))


@stat("customers_by_grade", _l("Customers by grade"), "pie")
def customers_by_grade(user: User, filters: Filters) -> Numbers:
    """A / B / C (the grading, or the grade set by hand) and not graded yet."""
    from app.services.classification import GRADES

    found = ownership_counts(Ownership.grade, user, filters)
    keys = list(GRADES) + [None]
    return Numbers([k if k else tr("Not graded") for k in keys],
                   [(tr("Customers"), [found.get(k, 0) for k in keys])], tr("Grade"))


REGIONS_SHOWN = 15


@stat("customers_by_region", _l("Customers by province"), "bar")
def customers_by_region(user: User, filters: Filters) -> Numbers:
    """The provinces with the most customers the caller reads, the rest as "other", and
    those without a province."""
    q = select(Customer.province, func.count())
    rows = db.session.execute(scoped_customers(q, user, filters).group_by(Customer.province)
                              .order_by(func.count().desc(), Customer.province)).all()
    named = [(p, n) for p, n in rows if p]
    unknown = sum(n for p, n in rows if not p)
    shown, rest = named[:REGIONS_SHOWN], named[REGIONS_SHOWN:]
    labels, values = [p for p, _ in shown], [n for _, n in shown]
    if rest:
        labels.append(tr("Other provinces"))
        values.append(sum(n for _, n in rest))
    if unknown:
        labels.append(tr("No province"))
        values.append(unknown)
    return Numbers(labels, [(tr("Customers"), values)], tr("Province"))


@stat("pool_sizes", _l("Customers per pool"), "bar", departmental=False, whole_org=True)
def pool_sizes(user: User, filters: Filters) -> Numbers:
    """How many customers each customer pool holds now."""
    rows = db.session.execute(
        select(Pool.name, func.count(Ownership.customer_id))
        .join(Ownership, Ownership.pool_id == Pool.id, isouter=True)
        .where(Pool.record_type == "customer")
        .group_by(Pool.id, Pool.name).order_by(Pool.name)).all()
    return Numbers([r[0] for r in rows], [(tr("Customers"), [r[1] for r in rows])], tr("Pool"))


@stat("pool_sizes_over_time", _l("Pool sizes over time"), "line", dated=True, departmental=False,
      whole_org=True, aggregated=True)
def pool_sizes_over_time(user: User, filters: Filters) -> Numbers:
    """Customers in each customer pool at the end of each business day: the pool's size now
    less what entered it since, plus what left it (the ownership events, summed in the
    aggregates per pool and day)."""
    rows = db.session.execute(
        select(StatDaily.day, StatDaily.peer_id, StatDaily.kind, func.sum(StatDaily.n))
        .where(StatDaily.kind.in_(("pool_in", "pool_out")),
               StatDaily.day > filters.date_from)
        .group_by(StatDaily.day, StatDaily.peer_id, StatDaily.kind)).all()
    return _pool_sizes(filters, [(str(d), pool, n if kind == "pool_in" else -n)
                                 for d, pool, kind, n in rows])


@raw_query("pool_sizes_over_time")
def pool_sizes_over_time_raw(user: User, filters: Filters) -> Numbers:
    """The same from the ownership events themselves."""
    e = OwnershipEvent
    day = local_day(e.created_at)
    since = local_day_bounds(filters.date_from)[1]
    flows = []
    for column, sign in ((e.to_pool_id, 1), (e.from_pool_id, -1)):
        flows += [(d, pool, sign * n) for d, pool, n in db.session.execute(
            select(day, column, func.count()).where(e.created_at >= since, column.is_not(None))
            .group_by(day, column)).all()]
    return _pool_sizes(filters, flows)


def _pool_sizes(filters: Filters, flows: list) -> Numbers:
    """The sizes per pool and day from the sizes now and (day, pool, net inflow) after each
    day's end."""
    pools = db.session.execute(select(Pool.id, Pool.name).where(
        Pool.record_type == "customer").order_by(Pool.name)).all()
    now = dict(db.session.execute(select(Ownership.pool_id, func.count()).where(
        Ownership.pool_id.is_not(None)).group_by(Ownership.pool_id)).all())
    net: dict[tuple[int, str], int] = {}
    for day, pool, n in flows:
        net[(pool, str(day))] = net.get((pool, str(day)), 0) + int(n)
    days = filters.days()
    series = []
    for pool_id, name in pools:
        later = sum(n for (p, d), n in net.items() if p == pool_id and d > days[-1].isoformat())
        size, sizes = now.get(pool_id, 0) - later, []
        for d in reversed(days):
            sizes.append(size)
            size -= net.get((pool_id, d.isoformat()), 0)
        series.append((name, list(reversed(sizes))))
    return Numbers(_day_labels(filters), series, tr("Day"))


@stat("duplicates", _l("Duplicates found and merged"), "bar", dated=True, departmental=False,
      whole_org=True)
def duplicates(user: User, filters: Filters) -> Numbers:
    """Over the dates: groups the batch scan found, groups reviewed as merged or dismissed,
    and customers merged away (merges not undone); and the groups still to review."""
    since, until = filters.since, filters.until

    def count(*where):
        return db.session.execute(select(func.count()).where(*where)).scalar_one()

    found = count(DedupeCluster.created_at >= since, DedupeCluster.created_at < until)
    reviewed = dict(db.session.execute(
        select(DedupeCluster.status, func.count()).where(
            DedupeCluster.reviewed_at >= since, DedupeCluster.reviewed_at < until)
        .group_by(DedupeCluster.status)).all())
    merged = count(CustomerMerge.created_at >= since, CustomerMerge.created_at < until,
                   CustomerMerge.undone_at.is_(None))
    still_open = count(DedupeCluster.status == "open")
    return Numbers([tr("Groups found"), tr("Groups merged"), tr("Groups dismissed"),
                    tr("Customers merged away"), tr("Groups to review now")],
                   [(tr("Count"), [found, reviewed.get("merged", 0),
                                   reviewed.get("dismissed", 0), merged, still_open])],
                   tr("Measure"))


@stat("imports", _l("Imported rows per day"), "bar", dated=True, departmental=False,
      whole_org=True)
def imports(user: User, filters: Filters) -> Numbers:
    """Per business day an import finished: rows inserted, duplicates skipped, invalid rows."""
    day = local_day(ImportBatch.finished_at)
    rows = db.session.execute(
        select(day, func.sum(ImportBatch.inserted), func.sum(ImportBatch.duplicates),
               func.sum(ImportBatch.invalid))
        .where(ImportBatch.finished_at >= filters.since, ImportBatch.finished_at < filters.until)
        .group_by(day)).all()
    days = filters.days()
    return Numbers(_day_labels(filters),
                   [(tr("Inserted"), per_day(((r[0], r[1]) for r in rows), days)),
                    (tr("Duplicates"), per_day(((r[0], r[2]) for r in rows), days)),
                    (tr("Invalid"), per_day(((r[0], r[3]) for r in rows), days))], tr("Day"))


# The service desk's and marketing's stats register themselves in their own modules (they
# import this one's registry, so they come last).
for _module in ("app.services.stats_desk", "app.services.stats_campaigns"):
    importlib.import_module(_module)
