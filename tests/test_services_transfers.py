"""Transfer requests: states, who approves, second approval, cap at approval, handover."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import CustomerShare, Notification, Ownership, OwnershipEvent, Policy
from app.services import transfers
from app.services.errors import (CapExceeded, Conflict, OutOfScope, PermissionDenied,
                                 ValidationFailed)
from app.security import can_see_customer, can_write_customer


def holder(db, cid):
    db.session.expire_all()
    return db.session.get(Ownership, cid).owner_id


def notified(db, user, kind):
    return db.session.execute(select(Notification).where(
        Notification.user_id == user.id, Notification.kind == kind)).scalars().all()


def test_same_department_transfer_needs_one_approval_and_hands_over(db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求换人",
                                  "customer_request", "下周二回访报价", keep_read_days=7)
    assert (t.status, t.needs_second_approval) == ("pending", False)
    assert holder(db, org.c_rep.id) == org.rep.id
    assert len(notified(db, org.manager, "transfer_pending")) == 1
    with pytest.raises(PermissionDenied):
        transfers.approve(org.rep2, t.id)
    with pytest.raises(PermissionDenied):
        transfers.approve(org.manager_north, t.id)
    t = transfers.approve(org.manager, t.id)
    assert t.status == "completed"
    assert holder(db, org.c_rep.id) == org.rep2.id
    ev = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == org.c_rep.id, OwnershipEvent.kind == "transferred")
    ).scalar_one()
    assert (ev.from_owner_id, ev.to_owner_id, ev.actor_id) == (org.rep.id, org.rep2.id,
                                                               org.manager.id)
    own = db.session.get(Ownership, org.c_rep.id)
    assert own.acquired_how == "transferred" and own.previous_owner_id == org.rep.id
    # The old owner keeps read-only access for the agreed days.
    share = db.session.execute(select(CustomerShare).where(
        CustomerShare.customer_id == org.c_rep.id)).scalar_one()
    assert share.user_id == org.rep.id and share.expires_at is not None
    assert can_see_customer(org.rep, org.c_rep.id) and not can_write_customer(org.rep, org.c_rep.id)
    for user in (org.rep, org.rep2, org.manager):
        assert len(notified(db, user, "transfer_completed")) == 1


def test_cross_department_needs_a_second_different_approver(db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep_north.id, "组织调整",
                                  "org_change")
    assert t.needs_second_approval is True
    t = transfers.approve(org.manager, t.id)
    assert t.status == "approved" and holder(db, org.c_rep.id) == org.rep.id
    with pytest.raises(PermissionDenied):
        transfers.approve(org.manager, t.id)  # not the same person twice
    t = transfers.approve(org.manager_north, t.id)  # the receiving department's manager
    assert t.status == "completed" and holder(db, org.c_rep.id) == org.rep_north.id


def test_grade_a_or_locked_needs_second_approval(db, org):
    db.session.get(Ownership, org.c_rep.id).grade = "A"
    db.session.commit()
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "customer_request")
    assert t.needs_second_approval is True
    transfers.approve(org.manager, t.id)
    transfers.approve(org.admin, t.id)
    assert holder(db, org.c_rep.id) == org.rep2.id


def test_receiver_cap_is_checked_at_approval(db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "customer_request")
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_customers=1))
    db.session.commit()
    with pytest.raises(CapExceeded) as exc:
        transfers.approve(org.manager, t.id)
    assert exc.value.message == "超出客户上限：上限 1，已拥有 1，本次转入 1"
    db.session.expire_all()
    assert holder(db, org.c_rep.id) == org.rep.id
    assert db.session.get(type(t), t.id).status == "pending"


def test_validation_and_scope(db, org):
    with pytest.raises(ValidationFailed) as exc:
        transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "", "weather")
    assert set(exc.value.fields) == {"reason", "trigger"}
    with pytest.raises(OutOfScope):
        transfers.create_transfer(org.rep, [org.c_rep2.id], org.rep.id, "想要", "other")
    with pytest.raises(ValidationFailed):
        transfers.create_transfer(org.staff, [org.c_rep.id, org.c_rep2.id], org.rep_north.id,
                                  "两个负责人", "other")
    with pytest.raises(ValidationFailed):
        transfers.create_transfer(org.staff, [org.c_pool.id], org.rep.id, "公海", "other")
    transfers.create_transfer(org.staff, [org.c_rep.id], org.rep2.id, "后台代申请", "other")
    with pytest.raises(Conflict) as exc:
        transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "重复", "other")
    assert exc.value.code == "transfer_pending"


def test_reject_and_cancel(db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "customer_request")
    with pytest.raises(ValidationFailed):
        transfers.reject(org.manager, t.id, "")
    t = transfers.reject(org.manager, t.id, "客户已签约，暂不更换")
    assert t.status == "rejected" and holder(db, org.c_rep.id) == org.rep.id
    assert len(notified(db, org.rep, "transfer_rejected")) == 1
    with pytest.raises(Conflict):
        transfers.approve(org.manager, t.id)
    t2 = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "再试", "other")
    with pytest.raises(PermissionDenied):
        transfers.cancel(org.rep2, t2.id)
    assert transfers.cancel(org.rep, t2.id).status == "cancelled"


def test_owner_changed_before_approval_fails_cleanly(db, org):
    from app.services import pool

    t = transfers.create_transfer(org.staff, [org.c_rep.id], org.rep2.id, "后台代申请", "other")
    pool.release_to_pool(org.rep, [org.c_rep.id], reason="先放弃了")
    with pytest.raises(Conflict) as exc:
        transfers.approve(org.manager, t.id)
    assert exc.value.code == "owner_changed"
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).owner_id is None
