"""Transfer requests: states, who approves, second approval, caps at approval, handover, one
open request per customer, write access to apply."""
from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select, update

from app.models import (CustomerShare, Notification, Ownership, OwnershipEvent, Policy,
                        TransferRequest)
from app.models.customer import utcnow
from app.services import transfers
from app.services.errors import (CapExceeded, Conflict, LockCapExceeded, OutOfScope,
                                 PermissionDenied, ValidationFailed)
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


def test_receiver_lock_cap_is_checked_at_the_last_approval(db, org):
    """A locked customer stays locked with its new owner: it needs room under the receiver's
    lock cap, checked when the last approval lands (the first one moves nothing)."""
    db.session.execute(update(Ownership).where(Ownership.customer_id.in_(
        [org.c_rep.id, org.c_rep2.id])).values(locked=True))
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_locked=1))
    db.session.commit()
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    transfers.approve(org.manager, t.id)
    with pytest.raises(LockCapExceeded) as exc:
        transfers.approve(org.admin, t.id)
    assert exc.value.to_dict() == {"code": "lock_cap_exceeded",
                                   "message": "超出锁定上限：上限 1，已锁定 1，本次转入 1",
                                   "cap": 1, "locked": 1, "adding": 1}
    assert holder(db, org.c_rep.id) == org.rep.id
    assert db.session.get(TransferRequest, t.id).status == "approved"
    # With room under the lock cap the same approval hands the customer over, still locked.
    db.session.execute(update(Policy).where(Policy.user_id == org.rep2.id).values(max_locked=2))
    db.session.commit()
    assert transfers.approve(org.admin, t.id).status == "completed"
    assert db.session.get(Ownership, org.c_rep.id).locked is True
    assert holder(db, org.c_rep.id) == org.rep2.id


def test_unlocked_customers_pass_a_receiver_over_the_lock_cap(db, org):
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep2.id)
                       .values(locked=True))
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_locked=0))
    db.session.commit()
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    assert transfers.approve(org.manager, t.id).status == "completed"


def test_a_read_only_share_cannot_request_a_transfer(db, org):
    """The previous owner keeps reading the customer after a transfer, and may not apply to
    move it (the same refusal as for any customer outside their write scope)."""
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other",
                                  keep_read_days=7)
    transfers.approve(org.manager, t.id)
    assert can_see_customer(org.rep, org.c_rep.id)
    with pytest.raises(OutOfScope) as exc:
        transfers.create_transfer(org.rep, [org.c_rep.id], org.rep.id, "想要回来", "other")
    assert exc.value.to_dict() == {"code": "out_of_scope",
                                   "message": "客户不存在或不在您的数据权限内",
                                   "customer_ids": [org.c_rep.id]}
    assert exc.value.status == 404
    assert db.session.execute(select(func.count()).select_from(TransferRequest)).scalar() == 1


def test_an_ended_request_frees_its_customers(db, org):
    """One open request per customer: pending and approved ones hold it; rejecting,
    cancelling or completing lets the next one in."""
    first = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep_north.id, "组织调整",
                                      "org_change")
    transfers.approve(org.manager, first.id)  # approved, waiting for the second approval
    with pytest.raises(Conflict) as exc:
        transfers.create_transfer(org.staff, [org.c_rep.id], org.rep2.id, "后台代申请", "other")
    assert exc.value.to_dict() == {"code": "transfer_pending",
                                   "message": f"这些客户已有待处理的转移申请：{org.c_rep.name}"}
    transfers.reject(org.manager_north, first.id, "不接收")
    second = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    transfers.cancel(org.rep, second.id)
    third = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    transfers.approve(org.manager, third.id)
    transfers.create_transfer(org.rep2, [org.c_rep.id], org.rep.id, "换回", "other")
    with pytest.raises(Conflict) as exc:
        transfers.create_transfer(org.staff, [org.c_rep.id], org.rep_north.id, "后台", "other")
    assert exc.value.code == "transfer_pending"


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


# --- who sees which request, and the lists' pages ------------------------------------------
def add_requests(db, n, applicant, giver, receiver, status="rejected"):
    """n requests newer than every request so far, written in one statement (no service
    calls: the lists only read the rows). Their ids, newest first."""
    now = utcnow()
    db.session.execute(insert(TransferRequest), [dict(
        applicant_id=applicant.id, from_owner_id=giver.id, to_owner_id=receiver.id,
        reason=f"批量 {i}", trigger="other", status=status, keep_read_days=0,
        needs_second_approval=False, created_at=now) for i in range(n)])
    db.session.commit()
    return list(db.session.execute(select(TransferRequest.id).where(
        TransferRequest.from_owner_id == giver.id).order_by(TransferRequest.id.desc())).scalars())


def test_an_old_request_is_listed_behind_many_newer_ones_and_pages_add_up(db, org):
    mine = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    north = add_requests(db, 520, org.rep_north, org.rep_north, org.manager_north)
    page = transfers.requests_for(org.rep)
    assert ([t.id for t in page.items], page.total) == ([mine.id], 1)
    assert [t.id for t in transfers.inbox(org.rep)["mine"].items] == [mine.id]
    awaiting = transfers.inbox(org.manager)["awaiting"]
    assert ([t.id for t in awaiting.items], awaiting.total) == ([mine.id], 1)
    # Visible to the north's rep and manager: their 520, never the east rep's request.
    for user in (org.rep_north, org.manager_north):
        first = transfers.requests_for(user, page=0, page_size=500)
        second = transfers.requests_for(user, page=1, page_size=500)
        assert (first.total, second.total) == (520, 520)
        assert [t.id for t in first.items] == north[:500]
        assert [t.id for t in second.items] == north[500:]
        assert (first.has_next, second.has_next) == (True, False)
    # Admins and auditors see every request: the oldest is the last of 521.
    last = transfers.requests_for(org.auditor, page=52, page_size=10)
    assert ([t.id for t in last.items], last.total) == ([mine.id], 521)


@pytest.mark.parametrize("page,page_size,field,message", [
    (-1, 50, "page", "page 必须是不小于 0 的整数"),
    ("1", 50, "page", "page 必须是不小于 0 的整数"),
    (0, 0, "page_size", "page_size 应在 1–500 之间"),
    (0, 501, "page_size", "page_size 应在 1–500 之间"),
])
def test_a_page_out_of_bounds_is_refused(db, org, page, page_size, field, message):
    with pytest.raises(ValidationFailed) as err:
        transfers.requests_for(org.rep, page=page, page_size=page_size)
    assert err.value.fields == {field: message}


def test_who_sees_which_request_in_which_box(db, org):
    """Parties, the managers of the giving and the receiving department and of every
    department above them, admins and auditors; nobody else."""
    from tests.conftest import make_user

    top = make_user("director", "Sales Manager", org.centre)
    org.centre.manager_id = top.id
    db.session.commit()
    cross = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep_north.id, "组织调整",
                                      "org_change")
    inside = transfers.create_transfer(org.rep2, [org.c_rep2.id], org.rep.id, "客户要求",
                                       "other")

    def boxes(user):
        return {box: [t.id for t in page.items]
                for box, page in transfers.inbox(user).items()}

    assert boxes(org.rep) == {"awaiting": [], "mine": [inside.id, cross.id], "others": []}
    assert boxes(org.rep_north) == {"awaiting": [], "mine": [cross.id], "others": []}
    assert boxes(org.manager) == {"awaiting": [inside.id, cross.id], "mine": [], "others": []}
    assert boxes(top) == {"awaiting": [inside.id, cross.id], "mine": [], "others": []}
    # The receiving side's manager sees the cross-department request, and decides it only
    # once the first approval is in; then its first approver waits no more.
    assert boxes(org.manager_north) == {"awaiting": [], "mine": [], "others": [cross.id]}
    transfers.approve(org.manager, cross.id)
    assert boxes(org.manager_north) == {"awaiting": [cross.id], "mine": [], "others": []}
    assert boxes(org.manager) == {"awaiting": [inside.id], "mine": [], "others": [cross.id]}
    assert boxes(top) == {"awaiting": [inside.id, cross.id], "mine": [], "others": []}
    assert boxes(org.admin) == {"awaiting": [inside.id, cross.id], "mine": [], "others": []}
    assert boxes(org.auditor) == {"awaiting": [], "mine": [], "others": [inside.id, cross.id]}
    assert boxes(org.staff) == {"awaiting": [], "mine": [], "others": []}
    assert transfers.visible_to(org.manager_north, db.session.get(TransferRequest, cross.id))
    assert not transfers.visible_to(org.manager_north,
                                    db.session.get(TransferRequest, inside.id))
    assert not transfers.visible_to(org.staff, db.session.get(TransferRequest, inside.id))
