"""Ownership primitives: where a new customer goes, the cap check, and the event log.

Every change of owner or pool goes through `_record_event`; nothing edits or deletes events.
The claim / release / transfer engine builds on these.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import func, insert, select, update

from app.extensions import db
from app.models import Ownership, OwnershipEvent, Pool, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.services import policies
from app.services.errors import CapExceeded, NotFound, ValidationFailed


def default_pool() -> Pool:
    pool = db.session.execute(select(Pool).where(Pool.is_default.is_(True))).scalars().first()
    if pool is None:
        raise NotFound("未配置默认公海，请先运行 flask crm init", code="no_default_pool")
    return pool


def lock_rep(user_id: int) -> None:
    """Serialise every ownership change for one rep until the transaction ends.

    An UPDATE of the rep's row takes a row lock on PostgreSQL and the write lock on SQLite,
    so two requests cannot both count the rep's customers and both squeeze in under the cap.
    """
    db.session.execute(update(User).where(User.id == user_id).values(changed_on=User.changed_on))


def lock_active_rep(user_id: int):
    """lock_rep and fetch (active, employment_status, department_id) in one statement;
    ValidationFailed if the user cannot own customers."""
    row = db.session.execute(
        update(User).where(User.id == user_id).values(changed_on=User.changed_on)
        .returning(User.active, User.employment_status, User.department_id,
                   User.username)).first()
    if row is None:
        raise ValidationFailed({"owner": "负责人不存在"})
    if not row.active or row.employment_status != EMPLOYMENT_ACTIVE:
        raise ValidationFailed({"owner": f"{row.username} 已停用或离职，不能成为负责人"})
    return row


def owned_count_select(user_id: int, count_won: bool):
    """Customers counted against the cap: unlocked, not won (won ones too if the policy
    counts them), as a scalar subquery."""
    q = select(func.count()).select_from(Ownership).where(
        Ownership.owner_id == user_id, Ownership.locked.is_(False))
    if not count_won:
        q = q.where(Ownership.won.is_(False))
    return q.scalar_subquery()


def owned_count(user_id: int, count_won: bool) -> int:
    return db.session.execute(select(owned_count_select(user_id, count_won))).scalar_one()


def cap_error(cap: int, have: int, adding: int, verb: str) -> CapExceeded:
    return CapExceeded(f"超出客户上限：上限 {cap}，已拥有 {have}，本次{verb} {adding}",
                       cap=cap, owned=have, adding=adding)


def cap_room(user_id: int, policy: Optional[dict] = None) -> tuple[int, int]:
    """(cap, currently counted) for user_id under its effective policy."""
    policy = policy or policies.effective_policy(user_id)
    return policy["max_customers"].value, owned_count(user_id, bool(policy["count_won"].value))


def check_cap(user_id: int, adding: int, verb: str = "新增",
              policy: Optional[dict] = None) -> None:
    """Refuse if user_id would hold more than the cap; call after lock_rep in the same
    transaction. Pass `policy` when the caller already resolved it."""
    cap, have = cap_room(user_id, policy)
    if have + adding > cap:
        raise cap_error(cap, have, adding, verb)


def ensure_active_owner(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise ValidationFailed({"owner": "负责人不存在"})
    if not user.active or user.employment_status != EMPLOYMENT_ACTIVE:
        raise ValidationFailed({"owner": f"{user.display_name} 已停用或离职，不能成为负责人"})
    return user


def _record_event(customer_id: int, kind: str, *, actor_id: Optional[int],
                  from_owner_id: Optional[int] = None, from_pool_id: Optional[int] = None,
                  to_owner_id: Optional[int] = None, to_pool_id: Optional[int] = None,
                  reason: Optional[str] = None, rule: Optional[str] = None) -> OwnershipEvent:
    event = OwnershipEvent(
        customer_id=customer_id, kind=kind, actor_id=actor_id,
        from_owner_id=from_owner_id, from_pool_id=from_pool_id,
        to_owner_id=to_owner_id, to_pool_id=to_pool_id, reason=reason, rule=rule,
        created_at=utcnow())
    db.session.add(event)
    return event


def place_new_customer(customer, *, actor_id: Optional[int], owner_id: Optional[int],
                       pool_id: Optional[int], how: str = "created",
                       reason: Optional[str] = None, rule: Optional[str] = None) -> Ownership:
    """Attach the ownership row and the 'created' event to a customer being inserted.

    Exactly one of owner_id / pool_id. The owner is locked and cap-checked here; the caller
    commits the customer, its ownership and the event in one transaction.
    """
    if (owner_id is None) == (pool_id is None):
        raise ValueError("exactly one of owner_id, pool_id")
    if owner_id is not None:
        ensure_active_owner(owner_id)
        lock_rep(owner_id)
        check_cap(owner_id, 1)
    elif db.session.get(Pool, pool_id) is None:
        raise ValidationFailed({"pool": "公海不存在"})
    now = utcnow()
    ownership = Ownership(owner_id=owner_id, pool_id=pool_id, acquired_at=now, acquired_how=how,
                          first_owner_id=owner_id, locked=False, won=False)
    customer.ownership = ownership
    db.session.flush()  # gives the customer its id for the event
    _record_event(customer.id, "created", actor_id=actor_id, to_owner_id=owner_id,
                  to_pool_id=pool_id, reason=reason or "新建客户", rule=rule)
    return ownership


def record_deletion(customer_id: int, ownership: Optional[Ownership], actor_id: Optional[int],
                    reason: str) -> None:
    _record_event(customer_id, "deleted", actor_id=actor_id,
                  from_owner_id=ownership.owner_id if ownership else None,
                  from_pool_id=ownership.pool_id if ownership else None, reason=reason)


def move_from_pool(customer_ids: list[int], owner_id: int, *, now, how: str = "claimed") -> int:
    """Give pool customers to owner_id; returns how many were still in a pool (the WHERE
    re-checks it, so a concurrent claim makes this count fall short)."""
    return db.session.execute(
        update(Ownership)
        .where(Ownership.customer_id.in_(customer_ids), Ownership.pool_id.is_not(None))
        .values(owner_id=owner_id, pool_id=None, acquired_at=now, acquired_how=how,
                last_followup_at=None, locked=False)).rowcount


def record_events(rows: list[dict], now) -> None:
    """Append many ownership events in one statement."""
    if rows:
        for row in rows:
            row.setdefault("created_at", now)
            for key in ("from_owner_id", "from_pool_id", "to_owner_id", "to_pool_id", "reason",
                        "rule"):
                row.setdefault(key, None)
        db.session.execute(insert(OwnershipEvent), rows)


def snapshot(customer_ids: list[int]) -> dict:
    """Plain rows (not ORM objects, which a bulk UPDATE would rewrite in place) of the
    ownership of these customers, keyed by customer id."""
    rows = db.session.execute(
        select(Ownership.customer_id, Ownership.owner_id, Ownership.pool_id,
               Ownership.previous_owner_id, Ownership.released_at, Ownership.locked)
        .where(Ownership.customer_id.in_(customer_ids))).all()
    return {r.customer_id: r for r in rows}


def move_between_pools(customer_ids: list[int], pool_id: int) -> int:
    return db.session.execute(
        update(Ownership)
        .where(Ownership.customer_id.in_(customer_ids), Ownership.pool_id.is_not(None))
        .values(pool_id=pool_id)).rowcount
