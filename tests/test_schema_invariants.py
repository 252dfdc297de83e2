"""Invariant 1 lives in the schema: exactly one owner or one pool, never neither, never two."""
from __future__ import annotations

import pytest
from sqlalchemy import insert, text, update
from sqlalchemy.exc import IntegrityError

from app.models import Customer, Ownership, OwnershipEvent


def _fails(db, stmt):
    with pytest.raises(IntegrityError):
        db.session.execute(stmt)
        db.session.commit()
    db.session.rollback()


def test_owner_and_pool_both_set_is_refused(db, org):
    _fails(db, update(Ownership).where(Ownership.customer_id == org.c_rep.id)
           .values(pool_id=org.pool.id))


def test_neither_owner_nor_pool_is_refused(db, org):
    _fails(db, update(Ownership).where(Ownership.customer_id == org.c_pool.id)
           .values(pool_id=None))


def test_second_ownership_row_is_refused(db, org):
    _fails(db, insert(Ownership).values(customer_id=org.c_rep.id, owner_id=org.rep2.id,
                                        acquired_how="created", acquired_at=org.c_rep.created_at))


@pytest.mark.real_db  # deferred constraints are checked at the real COMMIT
def test_customer_without_ownership_row_cannot_be_committed(db, org):
    _fails(db, insert(Customer).values(name="孤儿客户", customer_type="company",
                                       created_at=org.c_rep.created_at,
                                       updated_at=org.c_rep.created_at))


@pytest.mark.real_db  # deferred constraints are checked at the real COMMIT
def test_ownership_row_cannot_be_removed_while_customer_exists(db, org):
    _fails(db, text("DELETE FROM customer_ownership WHERE customer_id = :id").bindparams(
        id=org.c_rep.id))


def test_locked_pool_customer_is_refused(db, org):
    _fails(db, update(Ownership).where(Ownership.customer_id == org.c_pool.id)
           .values(locked=True))


def test_owner_with_customers_cannot_be_deleted(db, org):
    _fails(db, text("DELETE FROM ab_user WHERE id = :id").bindparams(id=org.rep.id))


def test_events_survive_customer_deletion(db, org):
    from app.services import customers

    customers.delete_customer(org.admin, org.c_pool.id)
    assert db.session.query(OwnershipEvent).filter_by(customer_id=org.c_pool.id).count() == 2
