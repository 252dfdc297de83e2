"""Reclaim sweep (回收), DESIGN invariant 5: an owned, unlocked customer without a won deal goes
back to its pool when the days since max(acquired, last follow-up) exceed the owner's
no-follow-up days, or the days since acquired exceed the no-deal days.

Set-based: owners are grouped by their effective thresholds, and each group is swept in
chunks of a few statements (select the due ids, UPDATE them with the predicate checked again,
insert one event per row the UPDATE returned). A claim, follow-up or transfer that lands
meanwhile makes the re-checked predicate false, so it is never overwritten; two sweeps at once
serialise on a lock per chunk (PostgreSQL advisory lock; SQLite's single writer) and each
customer is reclaimed, and logged, once.
"""
from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Optional

from sqlalchemy import and_, bindparam, case, func, insert, literal, or_, select, text, update

from app.extensions import db
from app.models import Customer, Department, Ownership, OwnershipEvent, Pool, ReclaimWarning, User
from app.models.customer import utcnow
from app.models.ownership import last_touch_of
from app.services import merge, notifications, opportunities, ownership, policies
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


def _due(owner_ids: list[int], no_followup_cut: dt.datetime, no_deal_cut: dt.datetime):
    return and_(_in(Ownership.owner_id, owner_ids), Ownership.locked.is_(False),
                Ownership.won.is_(False),
                or_(last_touch() < no_followup_cut, Ownership.acquired_at < no_deal_cut),
                ~opportunities.protected_customers_clause(Ownership.customer_id, no_followup_cut))


def rule_for(acquired_at, last_followup_at, no_followup_cut, no_followup_days, no_deal_days):
    """(rule, days) that makes a due customer due; no-follow-up first (the earlier warning)."""
    touch = max(acquired_at, last_followup_at or acquired_at)
    if touch < no_followup_cut:
        return RULE_NO_FOLLOWUP, no_followup_days
    return RULE_NO_DEAL, no_deal_days


def reason_text(rule: str, days: int) -> str:
    return (f"超过 {days} 天未跟进，自动回收" if rule == RULE_NO_FOLLOWUP
            else f"领取后超过 {days} 天未成交，自动回收")


def threshold_groups(with_warning: bool = False) -> dict[tuple, list[int]]:
    """Owners with reclaimable customers, grouped by (no-follow-up days, no-deal days) of
    their effective policy (user > department chain > global), plus warn-before days when
    `with_warning`."""
    owners = list(db.session.execute(
        select(Ownership.owner_id).where(Ownership.owner_id.is_not(None),
                                         Ownership.locked.is_(False), Ownership.won.is_(False))
        .distinct()).scalars())
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for owner_id, policy in policies.effective_policies(owners).items():
        key = (int(policy["reclaim_no_followup_days"].value),
               int(policy["reclaim_no_deal_days"].value))
        if with_warning:
            key += (int(policy["warn_before_days"].value or 0),)
        groups[key].append(owner_id)
    return groups


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
    default_pool_id = ownership.default_pool().id
    for (nf_days, nd_days), owner_ids in sorted(threshold_groups().items()):
        nf_cut, nd_cut = now - dt.timedelta(days=nf_days), now - dt.timedelta(days=nd_days)
        for start in range(0, len(owner_ids), 1000):
            group = owner_ids[start:start + 1000]
            if dry_run:
                _list_due(result, group, nf_cut, nd_cut, nf_days, nd_days)
            else:
                _sweep_group(result, group, nf_cut, nd_cut, nf_days, nd_days, now,
                             default_pool_id, chunk, progress)
    db.session.rollback()
    if not dry_run and result.by_owner:
        _notify(result, now)
    return result


def _list_due(result, group, nf_cut, nd_cut, nf_days, nd_days) -> None:
    rows = db.session.execute(
        select(Ownership.customer_id, Ownership.owner_id, Ownership.acquired_at,
               Ownership.last_followup_at)
        .where(_due(group, nf_cut, nd_cut)).order_by(Ownership.customer_id)).all()
    for r in rows:
        rule, days = rule_for(r.acquired_at, r.last_followup_at, nf_cut, nf_days, nd_days)
        result.due.append({"customer_id": r.customer_id, "owner_id": r.owner_id,
                           "rule": rule, "days": days, "reason": reason_text(rule, days)})
        result.by_rule[rule] += 1
        result.by_owner[r.owner_id] += 1


def _sweep_group(result, group, nf_cut, nd_cut, nf_days, nd_days, now, default_pool_id,
                 chunk, progress) -> None:
    postgres = _postgres()
    params = {"now": now, "nf_cut": nf_cut,
              "reason_nf": reason_text(RULE_NO_FOLLOWUP, nf_days),
              "reason_nd": reason_text(RULE_NO_DEAL, nd_days),
              "rule_nf": f"reclaim:{RULE_NO_FOLLOWUP}:{nf_days}d",
              "rule_nd": f"reclaim:{RULE_NO_DEAL}:{nd_days}d"}
    # One scan finds the group's due customers; each chunk is then its own transaction.
    # (Selecting "the next chunk" instead re-scans the table once per chunk.)
    due_ids = list(db.session.execute(
        select(Ownership.customer_id).where(_due(group, nf_cut, nd_cut))
        .order_by(Ownership.customer_id)).scalars())
    db.session.rollback()
    for start in range(0, len(due_ids), chunk):
        ids = due_ids[start:start + chunk]
        try:
            _lock_sweep()
            origins = _origins(ids)
            by_pool: dict[int, list[int]] = defaultdict(list)
            for cid in ids:
                by_pool[origins.get(cid, default_pool_id)].append(cid)
            logged = []
            for pool_id, pool_ids in sorted(by_pool.items()):
                # The predicate again, inside the UPDATE: whatever changed since the scan
                # wins (a claim, a follow-up, a transfer, or another sweep that got there).
                move = (update(Ownership)
                        .where(ownership.ids_match(Ownership.customer_id,
                                                   ownership.ids_param(postgres, pool_ids),
                                                   postgres),
                               _due(group, nf_cut, nd_cut))
                        .values(owner_id=None, pool_id=pool_id,
                                previous_owner_id=Ownership.owner_id, released_at=now,
                                locked=False))
                if postgres:
                    # One statement: the UPDATE's RETURNING feeds the event INSERT.
                    logged += db.session.execute(_move_and_log(move), params).all()
                else:
                    logged += _move_then_log(move, params)
            for owner_id, rule in logged:
                kind = RULE_NO_FOLLOWUP if rule == params["rule_nf"] else RULE_NO_DEAL
                result.by_rule[kind] += 1
                result.by_owner[owner_id] += 1
            db.session.commit()
            result.reclaimed += len(logged)
            if progress is not None:
                progress(result.reclaimed, len(due_ids))
        except Exception:
            db.session.rollback()
            raise


def _event_values(rows):
    """The event columns for reclaimed rows (a CTE or subquery of the UPDATE's RETURNING)."""
    touch = case((rows.c.last_followup_at > rows.c.acquired_at, rows.c.last_followup_at),
                 else_=rows.c.acquired_at)
    by_followup = touch < bindparam("nf_cut")
    e = OwnershipEvent.__table__.c
    return select(rows.c.customer_id, literal("reclaimed", e.kind.type),
                  rows.c.previous_owner_id, rows.c.pool_id,
                  case((by_followup, bindparam("reason_nf")), else_=bindparam("reason_nd")),
                  case((by_followup, bindparam("rule_nf")), else_=bindparam("rule_nd")),
                  bindparam("now", type_=e.created_at.type))


_EVENT_TARGET = ["customer_id", "kind", "from_owner_id", "to_pool_id", "reason", "rule",
                 "created_at"]


def _move_and_log(move):
    moved = move.returning(Ownership.customer_id, Ownership.previous_owner_id,
                           Ownership.pool_id, Ownership.acquired_at,
                           Ownership.last_followup_at).cte("moved")
    e = OwnershipEvent.__table__
    return (insert(e).from_select(_EVENT_TARGET, _event_values(moved)).add_cte(moved)
            .returning(e.c.from_owner_id, e.c.rule))


def _move_then_log(move, params) -> list[tuple]:
    """SQLite: UPDATE ... RETURNING, then one INSERT ... SELECT of exactly those rows."""
    moved = db.session.execute(move.returning(Ownership.customer_id), params).scalars().all()
    if not moved:
        return []
    rows = select(Ownership.customer_id, Ownership.previous_owner_id, Ownership.pool_id,
                  Ownership.acquired_at, Ownership.last_followup_at).where(
        Ownership.customer_id.in_(moved)).subquery()
    e = OwnershipEvent.__table__
    return db.session.execute(insert(e).from_select(_EVENT_TARGET, _event_values(rows))
                              .returning(e.c.from_owner_id, e.c.rule), params).all()


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


def deadline(acquired_at, last_followup_at, no_followup_days: int, no_deal_days: int):
    """(when, rule): the earlier of a customer's two deadlines, and which rule it is."""
    touch = max(acquired_at, last_followup_at or acquired_at)
    followup_due = touch + dt.timedelta(days=no_followup_days)
    deal_due = acquired_at + dt.timedelta(days=no_deal_days)
    if followup_due <= deal_due:
        return followup_due, RULE_NO_FOLLOWUP
    return deal_due, RULE_NO_DEAL


def warn(now: Optional[dt.datetime] = None) -> int:
    """Warn owners of customers that will be due within their warn-before days: one
    notification per customer and cycle (a later run, or a second worker, adds none; a
    follow-up or a new owner moves the due date and so starts a new cycle). Returns how many
    warnings were sent."""
    now = now or utcnow()
    sent = 0
    for (nf_days, nd_days, wb_days), owner_ids in sorted(threshold_groups(True).items()):
        if wb_days <= 0:
            continue
        ahead = dt.timedelta(days=wb_days)
        nf_cut, nd_cut = now - dt.timedelta(days=nf_days), now - dt.timedelta(days=nd_days)
        for start in range(0, len(owner_ids), 1000):
            group = owner_ids[start:start + 1000]
            rows = db.session.execute(
                select(Ownership.customer_id, Ownership.owner_id, Ownership.acquired_at,
                       Ownership.last_followup_at, Customer.name)
                .join(Customer, Customer.id == Ownership.customer_id)
                .where(_due(group, nf_cut + ahead, nd_cut + ahead),
                       ~_due(group, nf_cut, nd_cut))).all()
            sent += _record_warnings(rows, nf_days, nd_days, now)
    return sent


def _record_warnings(rows, nf_days: int, nd_days: int, now: dt.datetime) -> int:
    if not rows:
        return 0
    values = []
    for r in rows:
        when, rule = deadline(r.acquired_at, r.last_followup_at, nf_days, nd_days)
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
