"""Reclaim sweep (回收), DESIGN invariant 5: an owned, unlocked customer without a won deal goes
back to its pool when the days since max(acquired, last follow-up) exceed the owner's
no-follow-up days, or the days since acquired exceed the no-deal days.

Set-based: the periods are resolved per row in SQL (customer_rule: user + segment, user,
department + segment, ..., global + segment, global; app.services.segments) by one scan, which
selects the due customers with what made each due (owner, segment attributes, cut-offs);
chunks of them are then swept in one or two statements each: an UPDATE that re-checks the
rule against those carried values (same owner, unlocked, not won, same segment attributes,
still past a cut-off, no protecting opportunity since), and one event per row it returned.
A claim, follow-up or transfer that lands meanwhile makes the re-check false, so it is never
overwritten; a policy or org change meanwhile makes the rest be resolved again; two sweeps
at once serialise on a lock per chunk (PostgreSQL advisory lock; SQLite's single writer) and
each customer is reclaimed, and logged, once.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from sqlalchemy import (Column, Integer, MetaData, String, Table, and_, bindparam, case, cast,
                        column, func, insert, literal, or_, select, text, update)
from sqlalchemy.dialects.postgresql import ARRAY

from app.extensions import db
from app.models import (Customer, Department, Ownership, OwnershipEvent, Policy, Pool,
                        ReclaimWarning, User)
from app.models.customer import utcnow
from app.models.ownership import last_touch_of
from app.services import merge, notifications, opportunities, ownership, segments, work_calendar
from app.services.errors import tr
from app.services.times import local_date

CHUNK = 20000
SWEEP_LOCK_KEY = 4_242_001  # pg_advisory_xact_lock key shared by every sweep

RULE_NO_FOLLOWUP = "no_followup"
RULE_NO_DEAL = "no_deal"


@dataclass
class SweepResult:
    dry_run: bool
    reclaimed: int = 0
    by_rule: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    by_owner: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    due: list[dict] = field(default_factory=list)  # dry run: what would go, and why

    def summary(self) -> dict:
        return {"dry_run": self.dry_run, "reclaimed": self.reclaimed,
                "by_rule": dict(self.by_rule), "owners": len(self.by_owner)}


def last_touch():
    """max(acquired, last follow-up), portable (SQLite has no GREATEST); indexed per owner."""
    return last_touch_of(Ownership)


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def _in(column, values: list[int]):
    """An IN list of thousands of placeholders costs more to compile, bind and plan than the
    statement takes to run: one array parameter on PostgreSQL."""
    return ownership.in_ids(column, values, _postgres())


CUSTOMER_FIELDS = ("reclaim_no_followup_days", "reclaim_no_deal_days", "warn_before_days")


@dataclass
class CustomerRule:
    """Invariant 5 at one instant, per row: each owned customer's no-follow-up, no-deal and
    warn-before days resolved from the policies (app.services.segments: user + segment, user,
    department + segment, ..., global + segment, global), and the cut-offs they give.

    `joins` tie the customer_ownership row to the per-owner subquery (and to the customer
    when a segment needs its product line or source); `eligible` is who may be taken at all
    (held() and not exempt(): where exemptions go); `due` is the whole predicate. Both are
    plain WHERE clauses over customer_ownership (the scan, the dry run, the due-soon page);
    the sweep's UPDATE re-checks held(), exempt() and past_cut() with the periods the scan
    resolved carried along."""
    now: dt.datetime
    joins: list
    no_followup_days: Any
    no_deal_days: Any
    warn_before_days: Any
    no_followup_cut: Any
    no_deal_cut: Any
    eligible: Any
    due: Any
    snap: Any
    # `eligible` without the opportunity exemption (the warnings ask about a later instant).
    base_eligible: Any = None

    @property
    def rule_kind(self):
        """'no_followup' or 'no_deal': which rule makes a due row due (no-follow-up first, the
        earlier warning), as rule_for."""
        return case((last_touch() < self.no_followup_cut, literal(RULE_NO_FOLLOWUP)),
                    else_=literal(RULE_NO_DEAL))


def customer_rule(now: dt.datetime, owner_ids: Optional[list[int]] = None) -> CustomerRule:
    """The reclaim rule at `now`; `owner_ids` narrows it to those owners (a page about one
    rep)."""
    o = Ownership.__table__
    snap = segments.snapshot()
    op = segments.owner_periods(CUSTOMER_FIELDS, owner_ids)
    joins = [op.c.owner_id == o.c.owner_id]
    record_cols = {"grade": o.c.grade, "category": o.c.category}
    if segments.needs_columns(snap, ("product_line", "source"), CUSTOMER_FIELDS):
        c = Customer.__table__
        joins.append(c.c.id == o.c.customer_id)
        record_cols.update(product_line=c.c.product_line, source=c.c.source)
    nf, nd, wb = (segments.resolved_days(f, snap, op, record_cols) for f in CUSTOMER_FIELDS)
    nf_cut = segments.cut_of(nf, snap.values["reclaim_no_followup_days"], now)
    nd_cut = segments.cut_of(nd, snap.values["reclaim_no_deal_days"], now)
    # Who the rule may take at all: held() and not exempt(). The scan, the dry run, the
    # due-soon page, the warnings and the workbench read them here; the sweep's UPDATE
    # re-checks the same two functions with the periods its scan resolved (_recheck).
    base_eligible = and_(*joins, *held())
    eligible = and_(base_eligible, ~exempt(nf_cut))
    due = and_(eligible, past_cut(nf_cut, nd_cut))
    return CustomerRule(now, joins, nf, nd, wb, nf_cut, nd_cut, eligible, due, snap,
                        base_eligible)


def held() -> list:
    """Owned, unlocked, without a won deal: the rule may take only such a customer."""
    o = Ownership.__table__.c
    return [o.owner_id.is_not(None), o.locked.is_(False), o.won.is_(False)]


def exempt(no_followup_cut):
    """What keeps a held customer past its cut-offs; an exemption goes here, once. An open
    opportunity at a stage that protects from reclaim, updated within the no-follow-up days
    (`no_followup_cut`, a SQL expression per row), keeps its customer
    (app.services.opportunities)."""
    return opportunities.protected_customers_clause(Ownership.__table__.c.customer_id,
                                                    no_followup_cut)


def past_cut(no_followup_cut, no_deal_cut):
    """Touched last before the no-follow-up cut-off, or acquired before the no-deal one."""
    return or_(last_touch() < no_followup_cut,
               Ownership.__table__.c.acquired_at < no_deal_cut)


def due_customers(now: dt.datetime, rule: Optional[CustomerRule] = None):
    """The SELECT of every customer the sweep takes at `now` (customer_id, owner_id,
    acquired_at, last_followup_at, rule, no_followup_days, no_deal_days): what sweep()
    moves, what its dry run lists, what the due-soon page shows for a later instant. Add
    exemptions to customer_rule's `eligible`, which the UPDATE re-checks too."""
    rule = rule or customer_rule(now)
    o = Ownership.__table__
    return select(o.c.customer_id, o.c.owner_id, o.c.acquired_at, o.c.last_followup_at,
                  rule.rule_kind.label("rule"),
                  rule.no_followup_days.label("no_followup_days"),
                  rule.no_deal_days.label("no_deal_days"),
                  opportunities.protecting_since(o.c.customer_id).label("protected_since")
                  ).where(rule.due)


def rule_for(acquired_at, last_followup_at, no_followup_cut, no_followup_days, no_deal_days):
    """(rule, days) that makes a due customer due; no-follow-up first (the earlier warning)."""
    touch = max(acquired_at, last_followup_at or acquired_at)
    if touch < no_followup_cut:
        return RULE_NO_FOLLOWUP, no_followup_days
    return RULE_NO_DEAL, no_deal_days


def reason_text(rule: str, days: int) -> str:
    return (f"超过 {days} 天未跟进，自动回收" if rule == RULE_NO_FOLLOWUP
            else f"领取后超过 {days} 天未成交，自动回收")


def _origins(ids: list[int]) -> dict[int, int]:
    """{customer id: the pool it was last taken from} for those whose pool still exists; one
    grouped query on the (customer_id, id) index, instead of a subquery per updated row. A
    survivor's history includes the events of the customers merged into it."""
    e = OwnershipEvent
    whose = {**merge.merged_into(ids), **{i: i for i in ids}}  # event's customer -> history
    last = (select(e.customer_id, func.max(e.id).label("last_id"))
            .where(_in(e.customer_id, list(whose)), e.from_pool_id.is_not(None))
            .group_by(e.customer_id).subquery())
    latest: dict[int, tuple] = {}
    for customer_id, event_id, pool_id, pool_exists in db.session.execute(
            select(e.customer_id, e.id, e.from_pool_id, Pool.id.is_not(None))
            .join(last, last.c.last_id == e.id).outerjoin(Pool, Pool.id == e.from_pool_id)):
        if event_id > latest.get(whose[customer_id], (0,))[0]:
            latest[whose[customer_id]] = (event_id, pool_id if pool_exists else None)
    return {i: pool_id for i, (_, pool_id) in latest.items() if pool_id is not None}


def _lock_sweep() -> None:
    if _postgres():
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SWEEP_LOCK_KEY})


def sweep(dry_run: bool = False, now: Optional[dt.datetime] = None,
          chunk: int = CHUNK, progress: Optional[Callable[[int, Optional[int]], None]] = None
          ) -> SweepResult:
    """Reclaim every due customer (or, with dry_run, list them with the rule and days).
    `progress(done, total)` is told after each chunk (the job page shows it)."""
    now = now or utcnow()
    result = SweepResult(dry_run=dry_run)
    rule = customer_rule(now)
    if dry_run:
        _list_due(result, rule)
    else:
        _sweep_due(result, rule, now, ownership.default_pool().id, chunk, progress)
    db.session.rollback()
    if not dry_run and result.by_owner:
        _notify(result, now)
    return result


def _list_due(result: SweepResult, rule: CustomerRule) -> None:
    q = due_customers(rule.now, rule)
    for r in db.session.execute(q.order_by(q.selected_columns.customer_id)):
        days = r.no_followup_days if r.rule == RULE_NO_FOLLOWUP else r.no_deal_days
        result.due.append({"customer_id": r.customer_id, "owner_id": r.owner_id,
                           "rule": r.rule, "days": days, "reason": reason_text(r.rule, days)})
        result.by_rule[r.rule] += 1
        result.by_owner[r.owner_id] += 1


def _sweep_due(result, rule: CustomerRule, now, default_pool_id, chunk, progress) -> None:
    # One scan finds the due customers and what made each due: its owner, its segment
    # attributes and the periods resolved for it. (Selecting "the next chunk" instead
    # re-scans the table once per chunk.) What the periods depend on is read first: a change
    # from then on makes the rest be resolved again.
    fingerprint = _policy_fingerprint()
    due = _scan(rule)
    db.session.rollback()
    total = len(due["customer_id"])
    start = 0
    while start < len(due["customer_id"]):
        try:
            _lock_sweep()
            if _policy_fingerprint() != fingerprint:
                # A policy, a user's department or the tree changed since the scan: the
                # carried periods may be stale, so the rest is resolved again, under the lock.
                fingerprint = _policy_fingerprint()
                rule = customer_rule(now)
                due = _scan(rule, only=set(due["customer_id"][start:]))
                start = 0
            rows = {n: v[start:start + chunk] for n, v in due.items()}
            start += chunk
            if not rows["customer_id"]:
                db.session.rollback()
                break
            origins = _origins(rows["customer_id"])
            rows["pool_id"] = [origins.get(i, default_pool_id) for i in rows["customer_id"]]
            logged = _move_and_log(rule, rows, now)
            for owner_id, kind in logged:
                result.by_rule[kind] += 1
                result.by_owner[owner_id] += 1
            db.session.commit()
            result.reclaimed += len(logged)
            if progress is not None:
                progress(result.reclaimed, total)
        except Exception:
            db.session.rollback()
            raise


ATTRIBUTES = ("grade", "category", "product_line", "source")  # what a segment may read
# What the scan carries per due customer, column-wise (350,000 row objects would be walked
# by the garbage collector again and again; lists of ints and strings are not): enough to
# re-check, without resolving its periods again, that nothing the rule reads has changed.
# The attributes no segment policy reads are None (a change to them changes no period).
_DUE_COLUMNS = ("customer_id", "owner_id", *ATTRIBUTES, "no_followup_days", "no_deal_days")


def _read_attributes(rule: CustomerRule) -> list[str]:
    """The segment attributes the customer's periods depend on (the conditions of the
    segment policies that may set a customer's no-follow-up or no-deal days): those the
    re-check compares."""
    read = set()
    for row, _ in rule.snap.segments:
        cond = segments.conditions_of(row)
        if cond.get("segment_record_type", "customer") != "customer" or (
                row.reclaim_no_followup_days is None and row.reclaim_no_deal_days is None):
            continue
        read |= {c[len("segment_"):] for c in cond if c != "segment_record_type"}
    return [a for a in ATTRIBUTES if a in read]


def _attribute_column(name: str):
    table = Customer.__table__ if name in ("product_line", "source") else Ownership.__table__
    return table.c[name]


def _scan(rule: CustomerRule, only: Optional[set[int]] = None) -> dict[str, list]:
    """The due customers by id, as columns (_DUE_COLUMNS); only those of `only` if given."""
    o = Ownership.__table__.c
    read = _read_attributes(rule)  # rule.joins holds the customer when one of them is there
    q = select(o.customer_id, o.owner_id,
               *(_attribute_column(a) if a in read else literal(None) for a in ATTRIBUTES),
               rule.no_followup_days, rule.no_deal_days).where(rule.due).order_by(
        o.customer_id)
    cols: dict[str, list] = {n: [] for n in _DUE_COLUMNS}
    # Small batches of rows: a batch that outlives two young collections reaches the oldest
    # generation, and each full collection walks every object of the process (with batches
    # of 20,000, fetching 627,000 such rows took 11 s instead of 2.7).
    for part in db.session.execute(q).partitions(200):
        if only is not None:
            part = [r for r in part if r[0] in only]
        for name, values in zip(_DUE_COLUMNS, zip(*part)):
            cols[name].extend(values)
    return cols


def _policy_fingerprint() -> tuple:
    """Everything the resolved periods depend on besides the customer's own row: the policy
    table, each user's department and the department tree (a few hundred rows)."""
    p, u, d = Policy.__table__, User.__table__, Department.__table__
    return tuple(tuple(db.session.execute(q).all()) for q in (
        select(p).order_by(p.c.id), select(u.c.id, u.c.department_id).order_by(u.c.id),
        select(d.c.id, d.c.path).order_by(d.c.id)))


_INT_COLUMNS = ("customer_id", "owner_id", "pool_id", "no_followup_days", "no_deal_days")
# SQLite: the chunk's rows in a temporary table of this connection.
_chunk_table = Table("reclaim_chunk", MetaData(),
                     *(Column(n, Integer, primary_key=(n == "customer_id"))
                       for n in _INT_COLUMNS),
                     *(Column(a, String) for a in ATTRIBUTES), prefixes=["TEMPORARY"])


def _recheck(rule: CustomerRule, s, read: list[str]):
    """The rule again, inside the UPDATE, against the row as it is now, with the periods the
    scan resolved carried in `s`: the same owner (a claim, a transfer or another sweep moved
    it otherwise), still held() (unlocked, not won), the same segment attributes (those a
    segment policy reads: the periods were resolved from them), still past_cut() of those
    periods (a follow-up or a new acquisition since makes this false) and not exempt() (a
    protecting opportunity updated since). Whatever changed since the scan wins. The
    cut-offs are cut_of's, as in the rule; the owner's own periods cannot have changed
    unnoticed (_policy_fingerprint)."""
    o, c = Ownership.__table__.c, Customer.__table__.c
    values = rule.snap.values
    nf_cut = segments.cut_of(s.c.no_followup_days, values["reclaim_no_followup_days"],
                             rule.now)
    nd_cut = segments.cut_of(s.c.no_deal_days, values["reclaim_no_deal_days"], rule.now)
    conds = [o.customer_id == s.c.customer_id, o.owner_id == s.c.owner_id, *held(),
             *(_attribute_column(a).is_not_distinct_from(s.c[a]) for a in read),
             past_cut(nf_cut, nd_cut), ~exempt(nf_cut)]
    if {"product_line", "source"} & set(read):
        conds.append(c.id == s.c.customer_id)
    return and_(*conds), nf_cut


def _move(rule: CustomerRule, s, read: list[str], now):
    o = Ownership.__table__
    recheck, nf_cut = _recheck(rule, s, read)
    return (update(o).where(recheck)
            .values(owner_id=None, pool_id=s.c.pool_id, previous_owner_id=o.c.owner_id,
                    released_at=now, locked=False)), nf_cut


def _int_array(values: list[int]) -> str:
    """A PostgreSQL int[] literal: the driver's list adaptation costs about 20 ms a column
    for 20,000 values, this about 2."""
    return "{" + ",".join(map(str, values)) + "}"


def _move_and_log(rule: CustomerRule, rows: dict[str, list], now) -> list[tuple[int, str]]:
    """Moves the chunk's rows (_DUE_COLUMNS and pool_id) that are still due and logs one
    event each; (previous owner, rule) per row moved."""
    read = _read_attributes(rule)
    if _postgres():
        # One statement: the chunk as arrays (unnest), the UPDATE's RETURNING feeding the
        # event INSERT.
        arrays = [cast(bindparam(n, _int_array(rows[n]), type_=String), ARRAY(Integer))
                  for n in _INT_COLUMNS]
        arrays += [bindparam(a, rows[a], type_=ARRAY(String)) for a in read]
        s = func.unnest(*arrays).table_valued(
            *(column(n, Integer) for n in _INT_COLUMNS), *(column(a, String) for a in read)
        ).render_derived(name="chunk")
        o = Ownership.__table__.c
        move, nf_cut = _move(rule, s, read, now)
        moved = move.returning(
            o.customer_id, o.previous_owner_id, o.pool_id,
            case((last_touch() < nf_cut, literal(RULE_NO_FOLLOWUP)),
                 else_=literal(RULE_NO_DEAL)).label("rule"),
            s.c.no_followup_days, s.c.no_deal_days).cte("moved")
        e = OwnershipEvent.__table__
        logged = db.session.execute(
            insert(e).from_select(_EVENT_TARGET, _event_values(moved)).add_cte(moved)
            .returning(e.c.from_owner_id, e.c.rule), {"now": now}).all()
        followup = f"reclaim:{RULE_NO_FOLLOWUP}:"
        return [(owner, RULE_NO_FOLLOWUP if text_.startswith(followup) else RULE_NO_DEAL)
                for owner, text_ in logged]
    # SQLite (its RETURNING sees only the updated table): the chunk in a temporary table,
    # UPDATE ... FROM it, then the events written from the rows it returned.
    t = _chunk_table
    t.create(db.session.connection(), checkfirst=True)
    db.session.execute(t.delete())
    names = list(rows)
    db.session.execute(t.insert(), [dict(zip(names, v)) for v in zip(*rows.values())])
    o = Ownership.__table__.c
    move, _ = _move(rule, t, read, now)
    # SQLite's planner, with no statistics on the temporary table, would scan the whole
    # customer_ownership table and probe the chunk; the IN makes it look the chunk's rows up.
    move = move.where(o.customer_id.in_(select(t.c.customer_id)))
    moved = db.session.execute(move.returning(o.customer_id, o.acquired_at,
                                              o.last_followup_at)).all()
    db.session.execute(t.delete())
    if not moved:
        return []
    at = {cid: k for k, cid in enumerate(rows["customer_id"])}
    events, logged = [], []
    for cid, acquired_at, last_followup_at in moved:
        k = at[cid]
        owner_id, nf_days = rows["owner_id"][k], rows["no_followup_days"][k]
        kind, days = rule_for(acquired_at, last_followup_at,
                              now - dt.timedelta(days=int(nf_days)), nf_days,
                              rows["no_deal_days"][k])
        events.append(dict(customer_id=cid, kind="reclaimed", from_owner_id=owner_id,
                           to_pool_id=rows["pool_id"][k], reason=reason_text(kind, days),
                           rule=f"reclaim:{kind}:{days}d", created_at=now))
        logged.append((owner_id, kind))
    db.session.execute(insert(OwnershipEvent.__table__), events)
    return logged


def _event_values(rows):
    """The event columns for reclaimed rows (a CTE or subquery with customer_id,
    previous_owner_id, pool_id, rule, no_followup_days, no_deal_days)."""
    by_followup = rows.c.rule == literal(RULE_NO_FOLLOWUP)
    days = segments.days_text(case((by_followup, rows.c.no_followup_days),
                                   else_=rows.c.no_deal_days))
    e = OwnershipEvent.__table__.c
    return select(rows.c.customer_id, literal("reclaimed", e.kind.type),
                  rows.c.previous_owner_id, rows.c.pool_id,
                  case((by_followup, literal("超过 ") + days + literal(" 天未跟进，自动回收")),
                       else_=literal("领取后超过 ") + days + literal(" 天未成交，自动回收")),
                  literal("reclaim:") + rows.c.rule + literal(":") + days + literal("d"),
                  bindparam("now", type_=e.created_at.type))


_EVENT_TARGET = ["customer_id", "kind", "from_owner_id", "to_pool_id", "reason", "rule",
                 "created_at"]


def _notify(result: SweepResult, now: dt.datetime) -> None:
    """One notification per owner (and one to their manager) per sweep, with the count."""
    owners = db.session.execute(
        select(User.id, User.username, User.superior_id, Department.manager_id)
        .outerjoin(Department, Department.id == User.department_id)
        .where(User.id.in_(list(result.by_owner)))).all()
    for o in owners:
        n = result.by_owner[o.id]
        notifications.notify([o.id], "reclaimed", f"{n} 个客户已被自动回收到公海",
                             "长期未跟进或未成交的客户已退回公海；冷却期内您不能再次领取。",
                             link="/ownership-events/list/")
        manager = o.superior_id or o.manager_id
        if manager and manager != o.id:
            notifications.notify([manager], "reclaimed_team",
                                 f"{o.username} 的 {n} 个客户已被自动回收到公海",
                                 "长期未跟进或未成交。", link="/workbench/team")
    db.session.commit()


def deadline(acquired_at, last_followup_at, no_followup_days: int, no_deal_days: int,
             protected_since=None):
    """(when, rule): the earlier of a customer's two deadlines, and which rule it is. An open
    opportunity at a protecting stage last updated at `protected_since` keeps the customer
    for the no-follow-up days from then: the sweep takes it at that moment at the earliest."""
    touch = max(acquired_at, last_followup_at or acquired_at)
    followup_due = touch + dt.timedelta(days=no_followup_days)
    deal_due = acquired_at + dt.timedelta(days=no_deal_days)
    when, rule = ((followup_due, RULE_NO_FOLLOWUP) if followup_due <= deal_due
                  else (deal_due, RULE_NO_DEAL))
    if protected_since is not None and no_followup_days > 0:
        when = max(when, protected_since + dt.timedelta(days=no_followup_days))
    return when, rule


def days_to_deadline(acquired_at, touch, no_followup_cut, no_deal_cut):
    """deadline() in SQL before an opportunity's protection, for ordering: the earlier of the
    two deadlines as its distance from the instant the cuts were taken at (a cut is that
    instant less the period, segments.cut_of). Each distance is written once, in LEAST (MIN
    on SQLite): a CASE choosing between them evaluated the periods four times per row, a
    third of the due list's statement at 1M. A protection only moves a deadline later (the
    caller applies it to the few protected), and deadline() stays what a page shows."""
    if not _postgres():
        # SQLite's MIN is NULL when either is (a period no cut names); LEAST skips it.
        followup = _days_between(touch, no_followup_cut)
        deal = _days_between(acquired_at, no_deal_cut)
        return func.min(func.coalesce(followup, deal), func.coalesce(deal, followup))
    return func.least(touch - no_followup_cut, acquired_at - no_deal_cut)


def _days_between(later, earlier):
    """later - earlier in (fractional) days, in SQL."""
    if not _postgres():
        return func.julianday(later) - func.julianday(earlier)
    return func.extract("epoch", later - earlier) / 86400.0


def warn(now: Optional[dt.datetime] = None) -> int:
    """Warn owners of customers that will be due within their warn-before days (resolved per
    customer, like the periods): one notification per customer and cycle (a later run, or a
    second worker, adds none; a follow-up or a new owner moves the due date and so starts a
    new cycle). One SELECT for every owner. Returns how many warnings were sent."""
    now = now or utcnow()
    rule = customer_rule(now)
    o, c = Ownership.__table__.c, Customer.__table__.c
    rows = db.session.execute(
        select(o.customer_id, o.owner_id, o.acquired_at, o.last_followup_at, c.name,
               rule.no_followup_days.label("no_followup_days"),
               rule.no_deal_days.label("no_deal_days"),
               opportunities.protecting_since(o.customer_id).label("protected_since"))
        .where(c.id == o.customer_id, due_within_warning(rule),
               # not due yet: what is due now the sweep takes (a protected one is not due)
               or_(opportunities.protected_customers_clause(o.customer_id,
                                                            rule.no_followup_cut),
                   ~or_(last_touch() < rule.no_followup_cut,
                        o.acquired_at < rule.no_deal_cut)))
    ).all()
    return _record_warnings(rows, now)


def due_within_warning(rule: CustomerRule):
    """Owned customers the sweep takes within their own warn-before days of rule.now (those
    already due included): touch < now - (no-follow-up - warn-before) days, or acquired <
    now - (no-deal - warn-before) days, with warn-before days > 0."""
    o = Ownership.__table__.c
    return and_(rule.base_eligible,
                within_warning(rule.now, rule.snap, rule.no_followup_days, rule.no_deal_days,
                               rule.warn_before_days, o.customer_id, last_touch(),
                               o.acquired_at))


def within_warning(now: dt.datetime, snap, no_followup_days, no_deal_days, warn_before_days,
                   customer_id, touch, acquired_at):
    """due_within_warning's test on any row source: the periods, the customer, its last
    touch and its acquisition as SQL expressions (the rule's own, or the columns of a
    subquery that resolved each customer's periods once: app.services.workbench)."""
    horizons = warning_horizons(now, snap)
    return and_(warning_due(snap, horizons, no_followup_days, no_deal_days, warn_before_days,
                            touch, acquired_at),
                warning_unprotected(snap, horizons, no_followup_days, warn_before_days,
                                    customer_id))


def warning_horizons(now: dt.datetime, snap) -> dict[int, dt.datetime]:
    """The end of the warning window per warn-before value. Warn-before days are working
    days of the work calendar: each value's horizon instant is computed here once, and "due
    before it" is compared in SQL."""
    return work_calendar.workdays_horizons(now, snap.values["warn_before_days"])


def warning_due(snap, horizons: dict, no_followup_days, no_deal_days, warn_before_days,
                touch, acquired_at):
    """The first half of within_warning: due by the end of the warning window, before any
    opportunity's protection."""
    values = snap.values
    ahead_nf = _warning_cut(no_followup_days, values["reclaim_no_followup_days"],
                            warn_before_days, horizons)
    ahead_nd = _warning_cut(no_deal_days, values["reclaim_no_deal_days"],
                            warn_before_days, horizons)
    return and_(warn_before_days > 0, or_(touch < ahead_nf, acquired_at < ahead_nd))


def warning_unprotected(snap, horizons: dict, no_followup_days, warn_before_days,
                        customer_id):
    """The second half: no opportunity protects the customer at the end of the window (one
    whose protection lapses within it warns as the rule's own deadline would). A page that
    keeps the soonest may ask it of those alone: it only ever removes protected customers."""
    ahead_nf = _warning_cut(no_followup_days, snap.values["reclaim_no_followup_days"],
                            warn_before_days, horizons)
    return ~opportunities.protected_customers_clause(customer_id, ahead_nf)


def _warning_cut(days_expr, days_values, warn_expr, horizons: dict[int, dt.datetime]):
    """horizon(warn-before working days) - period days, per (period, warn-before) pair: a
    customer touched before it falls due before the horizon."""
    whens = [(and_(days_expr == int(a), warn_expr == b), at - dt.timedelta(days=int(a)))
             for a in sorted({int(v) for v in days_values if v is not None})
             for b, at in sorted(horizons.items())]
    return case(*whens, else_=None) if whens else literal(None)


def _record_warnings(rows, now: dt.datetime) -> int:
    if not rows:
        return 0
    values = []
    days_of = {}
    for r in rows:
        when, rule = deadline(r.acquired_at, r.last_followup_at, r.no_followup_days,
                              r.no_deal_days, r.protected_since)
        days_of[r.customer_id] = (r.no_followup_days, r.no_deal_days)
        values.append(dict(customer_id=r.customer_id, owner_id=r.owner_id, due_at=when,
                           rule=rule, created_at=now))
    names = {r.customer_id: r.name for r in rows}
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    # The unique (customer, owner, due date) row is the "already warned this cycle" memory.
    new = db.session.execute(
        dialect_insert(ReclaimWarning).values(values).on_conflict_do_nothing()
        .returning(ReclaimWarning.customer_id, ReclaimWarning.owner_id, ReclaimWarning.due_at,
                   ReclaimWarning.rule)).all()
    # An owner on leave is not there to act: their superior (else their department's
    # manager) is warned meanwhile, and told so.
    from app.services import absences

    away = absences.current_absences({w.owner_id for w in new}, local_date(now))
    stand_ins = absences.substitutes(away)
    owner_names = dict(db.session.execute(
        select(User.id, User.username).where(User.id.in_(sorted(away)))).all()) if away else {}
    for w in new:
        nf_days, nd_days = days_of[w.customer_id]
        days = nf_days if w.rule == RULE_NO_FOLLOWUP else nd_days
        title = f"客户「{names[w.customer_id]}」将于 {local_date(w.due_at)} 被自动回收"
        body = (f"{reason_text(w.rule, days).replace('，自动回收', '')}：请跟进或成交，"
                "或申请锁定。")
        to = w.owner_id
        if w.owner_id in away and stand_ins.get(w.owner_id):
            to = stand_ins[w.owner_id]
            period = absences.period_text(*away[w.owner_id])
            title = tr("(%(owner)s is on leave, warned in their place)",
                       owner=owner_names[w.owner_id]) + title
            body = tr("Owner %(owner)s is on leave (%(period)s); this warning comes to you in "
                      "their place.", owner=owner_names[w.owner_id], period=period) + body
        notifications.notify([to], "reclaim_warning", title, body,
                             link=f"/customers/show/{w.customer_id}")
    db.session.commit()
    return len(new)
