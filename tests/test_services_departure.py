"""Departure handover: one operation, preview first, nothing left with the departed user."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import Ownership, OwnershipEvent, Policy, User
from app.services import customers, departure
from app.services.errors import Conflict, PermissionDenied, ValidationFailed


@pytest.fixture
def book(db, org):
    """rep1 holds five customers."""
    return [org.c_rep.id] + [customers.create_customer(org.rep, {"name": f"离职客户{i}"}).id
                             for i in range(4)]


def owned(db, user):
    return db.session.execute(select(func.count()).select_from(Ownership).where(
        Ownership.owner_id == user.id)).scalar_one()


def test_preview_changes_nothing(db, org, book):
    plan = departure.handover(org.admin, org.rep.id, "team", owner_ids=[org.rep2.id, org.rep_north.id])
    assert plan["dry_run"] is True and plan["customers"] == 5
    assert sorted(a["count"] for a in plan["assignments"]) == [2, 3]
    assert owned(db, org.rep) == 5
    assert db.session.get(User, org.rep.id).employment_status == "active"


def test_handover_to_one_rep_then_departed(db, org, book):
    departure.handover(org.admin, org.rep.id, "rep", owner_id=org.rep2.id, dry_run=False)
    db.session.expire_all()
    assert owned(db, org.rep) == 0 and owned(db, org.rep2) == 6
    user = db.session.get(User, org.rep.id)
    assert (user.employment_status, user.active) == ("departed", False)
    kinds = db.session.execute(select(OwnershipEvent.rule).where(
        OwnershipEvent.kind == "transferred")).scalars().all()
    assert kinds == ["departure:rep"] * 5


def test_team_split_sends_overflow_to_pool(db, org, book):
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_customers=3))
    db.session.add(Policy(scope="user", user_id=org.rep_north.id, max_customers=2))
    db.session.commit()
    plan = departure.handover(org.admin, org.rep.id, "team",
                              owner_ids=[org.rep2.id, org.rep_north.id], dry_run=False)
    assert plan["to_pool"]["count"] == 2
    db.session.expire_all()
    assert (owned(db, org.rep), owned(db, org.rep2), owned(db, org.rep_north)) == (0, 3, 2)


def test_handover_to_pool_and_refusals(db, org, book):
    with pytest.raises(PermissionDenied):
        departure.handover(org.manager, org.rep.id, "pool")
    with pytest.raises(ValidationFailed):
        departure.handover(org.admin, org.rep.id, "magic")
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_customers=3))
    db.session.commit()
    with pytest.raises(Conflict) as exc:
        departure.handover(org.admin, org.rep.id, "rep", owner_id=org.rep2.id)
    assert exc.value.message == "接收人超出客户上限：上限 3，已拥有 1，本次转入 5"
    departure.handover(org.admin, org.rep.id, "pool", dry_run=False)
    db.session.expire_all()
    assert owned(db, org.rep) == 0
    assert db.session.get(Ownership, book[0]).pool_id == org.pool.id


def test_locked_customers_count_against_the_receivers_lock_cap(db, org, book):
    from sqlalchemy import update

    from app.services.errors import LockCapExceeded

    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_locked=1))
    db.session.execute(update(Ownership).where(Ownership.customer_id.in_(
        [book[0], org.c_rep2.id])).values(locked=True))
    db.session.commit()
    with pytest.raises(LockCapExceeded) as refused:
        departure.handover(org.admin, org.rep.id, "rep", owner_id=org.rep2.id, dry_run=False)
    assert refused.value.code == "lock_cap_exceeded"
    assert str(refused.value) == "超出锁定上限：上限 1，已锁定 1，本次转入 1"
    db.session.expire_all()
    assert (owned(db, org.rep), owned(db, org.rep2)) == (5, 1)
    assert db.session.get(User, org.rep.id).employment_status == "active"
