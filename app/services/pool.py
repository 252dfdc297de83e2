"""Public pools (公海): membership, claim (领取) and release (放弃).

Claim is race-free: the rep's row is locked first (caps and the daily limit are counted under
that lock), and the ownership UPDATE re-checks "still in the pool" in its WHERE clause, so two
reps claiming one customer cannot both win. A bulk claim is all-or-nothing.
"""
from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Iterable, Optional

from sqlalchemy import ARRAY, Integer, bindparam, false, func, null, or_, select, true, update

from app.database import rows_of
from app.extensions import db
from app.models import Customer, Department, Ownership, OwnershipEvent, Pool, PoolMember, User
from app.models.customer import utcnow
from app.security import ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, Scope, has_role, role_names, \
    scope_of, request_cache, visible_owner_ids_select
from app.services import caps, limits, ownership, policies
from app.services.errors import (CLAIMED_MEANWHILE, NO_SUCH_CUSTOMER, DailyLimitReached, InCooldown,
                                 NotInPool, OutOfScope, PermissionDenied, ValidationFailed, tr)
from app.services.ids import parse_ids as parse_id_list
# Business days live in app.services.times; these names stay importable from here.
from app.services.times import business_zone, local_date, local_day_start, local_today  # noqa: F401

MAX_BATCH = 1000
_CLAIMING_ROLES = frozenset({ROLE_REP, ROLE_MANAGER, ROLE_ADMIN})
# The policy fields a claim is decided by (its statement reads only these).
CLAIM_POLICY_FIELDS = ("max_customers", "count_won", "daily_claim_limit", "cooldown_days")
_HOW = "claimed"  # a claim's event kind and the ownership's acquired_how
_REASON = "领取"


def parse_ids(customer_ids: Iterable, limit: int = MAX_BATCH) -> list[int]:
    """Distinct customer ids (1..MAX_PK), in the given order; ValidationFailed otherwise."""
    return parse_id_list(customer_ids, "customer_ids", limit)


def pool_memberships(user: User, record_type: str = "customer"
                     ) -> tuple[tuple[int, bool], ...]:
    """(pool id, is admin) of every membership row that makes `user` a member of a pool of
    `record_type` (customer pools; lead pools for leads): as a user, or through their
    department or a department above it. One statement, read once per request (the pool page
    asks for the pools browsed and, for the contact details, administered)."""
    cache = request_cache()
    key = ("pool_memberships", user.id, record_type)
    if cache is not None and key in cache:
        return cache[key]
    mine = select(Department.path).where(Department.id == user.department_id) \
        .scalar_subquery()
    # Departments above (and including) the user's: those whose path starts the user's.
    chain = select(Department.id).where(mine.startswith(Department.path, autoescape=False))
    rows = tuple((pool_id, bool(is_admin)) for pool_id, is_admin in db.session.execute(
        select(PoolMember.pool_id, PoolMember.is_admin)
        .join(Pool, Pool.id == PoolMember.pool_id).where(
            Pool.record_type == record_type,
            or_(PoolMember.user_id == user.id, PoolMember.department_id.in_(chain)))))
    if cache is not None:
        cache[key] = rows
    return rows


def pool_ids_of_type(record_type: str = "customer") -> set[int]:
    return set(db.session.execute(select(Pool.id).where(Pool.record_type == record_type))
               .scalars())


def member_pool_ids(user: User, chain: Optional[list[int]] = None,
                    record_type: str = "customer") -> set[int]:
    """Pools of `record_type` the user belongs to: as a user, or through their department or
    a parent of it. Admins belong to every pool."""
    if has_role(user, ROLE_ADMIN):
        return pool_ids_of_type(record_type)
    if chain is None:
        return {pool_id for pool_id, _ in pool_memberships(user, record_type)}
    return set(db.session.execute(
        select(PoolMember.pool_id).join(Pool, Pool.id == PoolMember.pool_id).where(
            Pool.record_type == record_type,
            or_(PoolMember.user_id == user.id,
                PoolMember.department_id.in_(chain or [0])))).scalars())


def browsable_pool_ids(user: User) -> set[int]:
    """Pools whose customers the user may browse (the pool page): the pools they belong to;
    every pool for a user who sees every record (back-office staff maintain them all, and
    cannot claim: claiming is the member's, see claim_from_pool)."""
    if scope_of(user) == Scope.ALL:
        return pool_ids_of_type("customer")
    return member_pool_ids(user)


def claimed_today_select(user_id: int):
    """Today's claims by the user (since the business day began), as a scalar subquery: the
    workbench reads it inside its counts statement, claimed_today() on its own."""
    return select(func.count()).select_from(OwnershipEvent).where(
        OwnershipEvent.to_owner_id == user_id, OwnershipEvent.kind == "claimed",
        OwnershipEvent.created_at >= local_day_start()).scalar_subquery()


def claimed_today(user_id: int) -> int:
    return db.session.execute(select(claimed_today_select(user_id))).scalar_one()


def customer_names(ids: Iterable[int]) -> str:
    """The customers' names for a refusal message, in the given order (#id if gone)."""
    rows = db.session.execute(select(Customer.id, Customer.name).where(Customer.id.in_(list(ids))))
    names = {i: n for i, n in rows}
    return "、".join(names.get(i, f"#{i}") for i in ids)


def _names_in(rows: dict, ids: Iterable[int]) -> str:
    """customer_names from rows already read (saves the query on the refusal path)."""
    return "、".join(rows[i].name if i in rows else f"#{i}" for i in ids)


def claim_from_pool(actor: User, customer_ids: Iterable, pool_id: Optional[int] = None) -> list[int]:
    """The actor takes customers from a pool they belong to; all or nothing."""
    ids = parse_ids(customer_ids)
    roles = role_names(actor) if actor is not None else set()  # read once (has_role twice)
    if not roles & _CLAIMING_ROLES:
        raise PermissionDenied(tr("Your role cannot claim pool customers"))
    try:
        _claim(actor, ids, pool_id, ROLE_ADMIN in roles)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ids


def _claim(actor: User, ids: list[int], pool_id: Optional[int], admin: bool) -> None:
    """The hot path (see bench/claims.py). On PostgreSQL two statements: lock the rep, then
    one statement that reads everything the rules need and, in the same snapshot, moves the
    customers still in the pool they were read in and logs their events; the rules are
    checked on what it read, and any refusal rolls the move back (the caller's rollback), so
    nothing of a refused claim is kept; both run through the driver (database.rows_of).
    Elsewhere (SQLite, no data-modifying CTEs) three: lock, read, then move and log once
    every rule passed."""
    actor_id = actor.id
    conn = db.session.connection()
    rep = ownership.lock_active_rep(actor_id, conn)  # first: counts below are read under it
    chain = policies.chain_from_path(rep.department_path)
    postgres = conn.dialect.name == "postgresql"
    single = postgres and len(ids) == 1
    now = utcnow()
    params = {"ids": ids[0] if single else ids, "actor_id": actor_id, "chain": chain or [0],
              "day_start": local_day_start(now), "pool_id": pool_id}
    if postgres:
        params["now"] = now
    result = rows_of(conn, _claim_statement(admin, postgres, single), params)
    rows, policy = _claim_rows(result, chain)
    if pool_id is not None and not (
            result[0].pool_member if result else pool_id in member_pool_ids(actor, chain)):
        raise OutOfScope(tr("You are not a member of this pool"), code="not_pool_member")
    gone = [i for i in ids if i not in rows or rows[i].pool_id is None
            or (pool_id is not None and rows[i].pool_id != pool_id)]
    if gone:
        raise NotInPool(tr("No longer in a pool: %(names)s", names=_names_in(rows, gone)),
                        customer_ids=gone)
    foreign = [i for i in ids if not rows[i].member]
    if foreign:
        raise OutOfScope(tr("These customers are in pools you may not claim from: %(names)s",
                            names=_names_in(rows, foreign)),
                         code="not_pool_member", customer_ids=foreign)
    _check_cooldown(rows, int(policy["cooldown_days"].value or 0), now)
    _check_claim_limits(policy, rows[ids[0]], len(ids))
    if postgres:
        moved = result[0].moved
    else:
        by_pool: dict[int, list[int]] = {}
        for i in ids:
            by_pool.setdefault(rows[i].pool_id, []).append(i)
        moved = ownership.take_from_pool(
            by_pool, actor_id, now=now, how=_HOW,
            event=dict(kind=_HOW, actor_id=actor_id, reason=_REASON))
    if moved != len(ids):
        raise NotInPool(tr(CLAIMED_MEANWHILE))


def _claim_rows(result, chain: list[int]) -> tuple[dict, dict]:
    """({customer id: row}, effective policy) from the rows of _claim_statement (one row per
    customer and policy layer)."""
    policy = policies.resolve(result, chain, CLAIM_POLICY_FIELDS)
    rows = {}
    for r in result:
        rows.setdefault(r.customer_id, r)
    return rows, policy


@lru_cache(maxsize=None)
def _claim_statement(admin: bool, postgres: bool, single: bool = False):
    """The statement after the rep lock, built once per kind of actor (admins belong to every
    pool) and backend: building it cost more than running it. Without `postgres`, the read
    of _facts_select alone. On PostgreSQL the same read as a CTE, and beside it the move and
    the event log as data-modifying CTEs: every part sees the snapshot taken before the move
    (the facts are the state the rules are about), the move re-checks each customer is still
    in the pool it was read in (a concurrent claim makes it fall short), and each row answers
    `moved`, how many moved and were logged.

    With `single` (one customer, the usual claim) "ids" is one id, not an array. The driver
    prepares the statement once it has run a few times, and PostgreSQL then keeps a generic
    plan only if its estimate is no worse than a custom plan's: for `= ANY(array)` it
    guesses ten ids, a plan ten times dearer, so it planned every claim afresh (planning
    cost several times the execution). With `= id` both plans are the same."""
    facts = _facts_select(admin, postgres, single)
    if not postgres:
        return facts
    o, e = Ownership.__table__, OwnershipEvent.__table__
    facts = facts.cte("facts")
    read = select(facts.c.customer_id, facts.c.pool_id).where(
        facts.c.pool_id.is_not(None)).distinct().cte("read")
    # The actor takes them; what is the same for every claim is written into the SQL, so
    # only the ids, the actor, the department chain, the day's start, the pool asked for
    # and the time are sent with each.
    actor_id = bindparam("actor_id", type_=Integer)
    # The ids again, so that the planner sees the primary key look-up (the CTE's row count
    # is a guess), also in a generic plan.
    moved = (update(o).where(_ids_match(o.c.customer_id, True, single),
                             o.c.customer_id == read.c.customer_id,
                             o.c.pool_id == read.c.pool_id)
             .values(owner_id=actor_id, pool_id=null(), acquired_at=bindparam("now"),
                     acquired_how=ownership.sql_text(_HOW, o.c.acquired_how),
                     last_followup_at=null(), locked=false())
             .returning(o.c.customer_id, read.c.pool_id.label("from_pool")).cte("moved"))
    logged = ownership.log_moves_select(
        moved, kind=ownership.sql_text(_HOW, e.c.kind), to_owner=actor_id,
        reason=ownership.sql_text(_REASON, e.c.reason), rule=null(),
    ).returning(e.c.customer_id).cte("logged")
    return select(facts, select(func.count()).select_from(logged).scalar_subquery()
                  .label("moved"))


def _ids_match(column, postgres: bool, single: bool):
    """`column` is one of the bind parameter "ids" (see _claim_statement for `single`)."""
    if single:
        return column == bindparam("ids", type_=Integer)
    return ownership.ids_match(column, ownership.ids_param(postgres), postgres)


def _facts_select(admin: bool, postgres: bool, single: bool = False):
    """One read for every claim check. Each row has the customer's pool, name, when it last
    went from the actor to a pool (the cooldown's start), whether the actor belongs to its
    pool (and to the pool asked for, `pool_member`: admins belong to every pool), and the actor's claims today and
    customers counted against the cap (read once by the database, repeated on every row).
    The policy rows that apply ride along (their CLAIM_POLICY_FIELDS), joined onto each
    customer (one result row per customer and policy layer)."""
    o, event, member = Ownership.__table__, OwnershipEvent.__table__, PoolMember.__table__
    customer = Customer.__table__
    actor_id = bindparam("actor_id")
    chain = (bindparam("chain", type_=ARRAY(Integer)) if postgres
             else bindparam("chain", expanding=True))
    pool_id = bindparam("pool_id", type_=o.c.pool_id.type)
    my_pools = select(member.c.pool_id).where(or_(
        member.c.user_id == actor_id, policies.in_chain(member.c.department_id, chain, postgres)))
    in_member_pool = true() if admin else o.c.pool_id.in_(my_pools)
    pool_member = pool_id.in_(select(Pool.__table__.c.id) if admin else my_pools)
    claimed_today = select(func.count()).select_from(event).where(
        event.c.to_owner_id == actor_id, event.c.kind == ownership.sql_text(_HOW, event.c.kind),
        event.c.created_at >= bindparam("day_start")).scalar_subquery()
    # From the event log, not the row's previous owner: that names only the last one, so a
    # second owner's release would wipe out the first one's cooldown.
    released_from_actor = select(func.max(event.c.created_at)).where(
        event.c.customer_id == o.c.customer_id, event.c.from_owner_id == actor_id,
        event.c.to_pool_id.is_not(None)).scalar_subquery()
    # Both cap counts in one read of the owner tally (one row, joined onto every row).
    counted = caps.counted_both_select(actor_id).subquery("counted")
    return (select(o.c.customer_id, o.c.pool_id, released_from_actor.label("released_at"),
                   customer.c.name, in_member_pool.label("member"),
                   pool_member.label("pool_member"),
                   claimed_today.label("claimed_today"),
                   counted.c.counted_all, counted.c.counted_unwon,
                   *policies.layer_columns(CLAIM_POLICY_FIELDS))
            .select_from(policies.layers_join(
                o.join(customer, customer.c.id == o.c.customer_id).join(counted, true()),
                actor_id, chain, postgres))
            .where(_ids_match(o.c.customer_id, postgres, single)))


def _check_cooldown(rows: dict, days: int, now: dt.datetime) -> None:
    """DESIGN invariant 4: no claiming back within `days` of a customer leaving the actor for
    a pool (released, reclaimed, or a merge that left it in a pool), whoever held it since;
    `rows` are rows of _facts_select, whose released_at is the last time it left the actor."""
    if not days:
        return
    cooling = [o for o in rows.values()
               if o.released_at is not None and o.released_at > now - dt.timedelta(days=days)]
    if cooling:
        first = min(cooling, key=lambda o: o.released_at)
        left = days - (now - first.released_at).days
        cooling_ids = [o.customer_id for o in cooling]
        raise InCooldown(
            tr("Previous-owner cooldown of %(days)s days: %(names)s left you on %(date)s; "
               "you can claim again in %(left)s days", days=days,
               names=_names_in(rows, cooling_ids), date=local_date(first.released_at),
               left=left),
            cooldown_days=days, customer_ids=cooling_ids)


def _check_claim_limits(policy: dict, counts, adding: int) -> None:
    """Daily claim limit, then the cap; `counts` is a row of _facts_select."""
    limit = int(policy["daily_claim_limit"].value)
    today = counts.claimed_today
    if today + adding > limit:
        raise DailyLimitReached(
            tr("Over the daily claim limit: limit %(limit)s, claimed today %(today)s, "
               "claiming now %(adding)s", limit=limit, today=today, adding=adding),
            limit=limit, claimed_today=today, adding=adding)
    caps.check(caps.room_of(policy, counts.counted_all, counts.counted_unwon), adding,
               caps.CLAIMING)


def release_to_pool(actor: User, customer_ids: Iterable, reason: str,
                    pool_id: Optional[int] = None) -> list[int]:
    """Owners (or their managers, or admins) return customers to a pool with a reason."""
    ids = parse_ids(customer_ids)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationFailed({"reason": tr("Please give a reason for releasing")})
    if limits.too_long(reason, limits.REASON):
        raise ValidationFailed({"reason": limits.too_long(reason, limits.REASON)})
    target = ownership.customer_pool(pool_id, "pool_id") if pool_id is not None \
        else ownership.default_pool()
    try:
        rows = ownership.snapshot(ids)
        not_owned = [i for i in ids if i not in rows or rows[i].owner_id is None]
        if not_owned:
            raise NotInPool(tr("These customers have no owner, nothing to release: %(names)s",
                               names=customer_names(not_owned)),
                            code="not_owned", customer_ids=not_owned)
        allowed = managed_owner_ids(actor, {o.owner_id for o in rows.values()})
        foreign = [i for i in ids if rows[i].owner_id not in allowed]
        if foreign:
            raise OutOfScope(tr(NO_SUCH_CUSTOMER), customer_ids=foreign)
        now = utcnow()
        by_owner: dict[int, list[int]] = {}
        for i in ids:
            by_owner.setdefault(rows[i].owner_id, []).append(i)
        for owner_id, group in by_owner.items():
            done = db.session.execute(
                update(Ownership)
                .where(Ownership.customer_id.in_(group), Ownership.owner_id == owner_id)
                .values(owner_id=None, pool_id=target.id, previous_owner_id=owner_id,
                        released_at=now, locked=False)).rowcount
            if done != len(group):
                raise NotInPool(tr("The owner of some customers just changed; refresh and try "
                                   "again"),
                                code="conflict")
        ownership.record_events(
            [dict(customer_id=i, kind="released", from_owner_id=rows[i].owner_id,
                  to_pool_id=target.id, actor_id=actor.id, reason=reason) for i in ids], now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return ids


def managed_owner_ids(actor: User, owner_ids: set[int]) -> set[int]:
    """Which of owner_ids the actor may act for: themself, anyone for admins, their scope for
    managers."""
    if has_role(actor, ROLE_ADMIN):
        return set(owner_ids)
    allowed = {actor.id} & owner_ids
    if has_role(actor, ROLE_MANAGER):
        allowed |= set(db.session.execute(
            visible_owner_ids_select(actor, scope_of(actor) or Scope.OWN)
            .where(User.id.in_(owner_ids))).scalars())
    return allowed
