"""Value re-evaluation (issue 20 §4): the review proposes and never acts; a manager accepts in
scope (a transfer request into the usual approvals, the grade given back to the deals, a
re-activation task or campaign membership) or dismisses with a reason; one open proposal per
customer and kind, also under simultaneous runs; decided ones stay quiet; stale ones expire."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from app.models import AuditLog, Notification, Ownership, Policy, TransferRequest
from app.models.customer import utcnow
from app.models.task import Task
from app.models.value_review import ValueProposal
from app.services import value_review
from app.services.errors import Conflict, OutOfScope, PermissionDenied, ValidationFailed


def _set(db, cid, **values):
    db.session.execute(update(Ownership).where(Ownership.customer_id == cid).values(**values))
    db.session.commit()


def _open(db, kind=None):
    db.session.expire_all()
    q = select(ValueProposal).where(ValueProposal.status == "open")
    if kind:
        q = q.where(ValueProposal.kind == kind)
    return db.session.execute(q.order_by(ValueProposal.id)).scalars().all()


def _cap(db, user, cap):
    db.session.add(Policy(scope="user", user_id=user.id, max_customers=cap))
    db.session.commit()


NOW = utcnow()


def test_a_neglected_grade_a_customer_is_proposed_to_the_least_loaded_rep(db, org):
    _set(db, org.c_rep.id, grade="A", acquired_at=NOW - dt.timedelta(days=40),
         last_followup_at=NOW - dt.timedelta(days=31))
    counts = value_review.review(NOW)
    assert counts["grade_a_neglected"] == 1
    (p,) = _open(db, "grade_a_neglected")
    # rep2 is the other rep of 华东 (rep's department), with room under the cap
    assert (p.customer_id, p.owner_id, p.proposed_owner_id, p.detail) == (
        org.c_rep.id, org.rep.id, org.rep2.id, "31")
    assert value_review.finding_text({"kind": p.kind, "detail": p.detail}) == \
        "已 31 天没有跟进（复评按 30 天查找）"
    # nothing moved: the review only proposes
    assert db.session.get(Ownership, org.c_rep.id).owner_id == org.rep.id
    # the department's manager is told once
    note = db.session.execute(select(Notification).where(
        Notification.user_id == org.manager.id, Notification.kind == "value_review")).scalar_one()
    assert note.title == "价值复评：1 条新建议" and note.link == "/value-review/"
    # a second run files nothing new
    assert value_review.review(NOW)["grade_a_neglected"] == 0
    assert len(_open(db)) == 1


def test_followed_up_within_the_days_is_not_neglected_and_a_stale_proposal_expires(db, org):
    _set(db, org.c_rep.id, grade="A", acquired_at=NOW - dt.timedelta(days=40),
         last_followup_at=NOW - dt.timedelta(days=29))
    assert value_review.review(NOW)["grade_a_neglected"] == 0
    _set(db, org.c_rep.id, last_followup_at=NOW - dt.timedelta(days=45))
    assert value_review.review(NOW)["grade_a_neglected"] == 1
    _set(db, org.c_rep.id, last_followup_at=NOW)   # the rep calls: the finding is gone
    counts = value_review.review(NOW)
    assert counts["expired"] == 1 and _open(db) == []


def test_accepting_files_a_transfer_request_into_the_approvals(db, org):
    _set(db, org.c_rep.id, grade="A", last_followup_at=NOW - dt.timedelta(days=60),
         acquired_at=NOW - dt.timedelta(days=90))
    value_review.review(NOW)
    (p,) = _open(db)
    with pytest.raises(PermissionDenied):
        value_review.accept(org.rep, p.id)           # reps do not decide
    with pytest.raises(OutOfScope):
        value_review.accept(org.manager_north, p.id)  # another department's manager
    done = value_review.accept(org.manager, p.id)
    assert done.status == "accepted" and done.decided_by_id == org.manager.id
    t = db.session.get(TransferRequest, done.transfer_id)
    # grade A: the transfer waits for its approvals (second level too), the owner is unchanged
    assert (t.status, t.from_owner_id, t.to_owner_id, t.needs_second_approval) == (
        "pending", org.rep.id, org.rep2.id, True)
    assert t.reason == "价值复评：重点客户（A 级）长期未跟进"
    assert db.session.get(Ownership, org.c_rep.id).owner_id == org.rep.id
    with pytest.raises(Conflict) as exc:
        value_review.accept(org.manager, p.id)
    assert exc.value.code == "proposal_decided"
    assert db.session.execute(select(func.count()).select_from(AuditLog).where(
        AuditLog.object_type == "value_proposal", AuditLog.action == "accept")).scalar_one() == 1
    # a customer with a transfer pending is not proposed again, nor while it stays quiet
    value_review.review(NOW)
    assert _open(db) == []


def test_an_owner_at_the_cap_and_no_rep_with_room(db, org):
    _set(db, org.c_rep.id, grade="A", last_followup_at=NOW)
    _cap(db, org.rep, 1)    # rep holds 1 customer against a cap of 1
    _cap(db, org.rep2, 1)   # and rep2 has no room either
    counts = value_review.review(NOW)
    assert counts["grade_a_overloaded"] == 1
    (p,) = _open(db)
    assert (p.kind, p.detail, p.proposed_owner_id) == ("grade_a_overloaded", "1/1", None)
    with pytest.raises(ValidationFailed) as exc:
        value_review.accept(org.manager, p.id)
    assert exc.value.fields == {"to_owner_id": "部门里没有还有名额的代表：请指定接收人"}
    assert _open(db)[0].status == "open"     # a refusal changes nothing
    with pytest.raises(ValidationFailed) as exc:
        value_review.accept(org.manager, p.id, to_owner_id="99999999999999")
    assert set(exc.value.fields) == {"to_owner_id"}
    assert _open(db)[0].status == "open"
    # the manager names the receiver: the request is filed, and the transfer's own rules
    # apply at approval (rep2's cap is checked when the customer moves)
    done = value_review.accept(org.manager, p.id, to_owner_id=str(org.rep2.id))
    assert db.session.get(TransferRequest, done.transfer_id).to_owner_id == org.rep2.id


def test_a_manual_grade_the_deals_contradict_goes_back_to_the_deals(db, org):
    _set(db, org.c_rep2.id, grade="A", grade_override="A")
    counts = value_review.review(NOW)
    assert counts["grade_review"] == 1
    (p,) = _open(db, "grade_review")
    assert (p.grade, p.proposed_grade) == ("A", "C")     # no deals: C
    assert value_review.finding_text({"kind": p.kind, "grade": p.grade,
                                      "proposed_grade": p.proposed_grade}) == \
        "手动设为 A；最近 12 个月的成交对应 C"
    value_review.accept(org.admin, p.id)
    own = db.session.get(Ownership, org.c_rep2.id)
    assert (own.grade_override, own.grade) == (None, "C")


def test_a_silent_valuable_customer_gets_a_reactivation_task(db, org):
    _set(db, org.c_rep.id, category="silent", grade="B")
    assert value_review.review(NOW)["reactivate"] == 1
    (p,) = _open(db, "reactivate")
    value_review.accept(org.manager, p.id)
    task = db.session.execute(select(Task).where(Task.record_id == org.c_rep.id,
                                                 Task.record_type == "customer")).scalar_one()
    assert (task.owner_id, task.subject) == (org.rep.id, "重新激活沉默客户")


def test_dismissing_needs_a_reason_and_keeps_the_finding_quiet(db, org):
    _set(db, org.c_rep.id, category="silent", grade="A")
    value_review.review(NOW)
    (p,) = _open(db)
    for bad in ("", "   ", None, "x" * 2001):
        with pytest.raises(ValidationFailed) as exc:
            value_review.dismiss(org.manager, p.id, bad)
        assert set(exc.value.fields) == {"reason"}
    done = value_review.dismiss(org.manager, p.id, "客户已明确暂不合作")
    assert (done.status, done.decision_note) == ("dismissed", "客户已明确暂不合作")
    value_review.review(NOW + dt.timedelta(days=89))
    assert _open(db, "reactivate") == []
    value_review.review(NOW + dt.timedelta(days=91))   # after QUIET_DAYS it may come back
    assert len(_open(db, "reactivate")) == 1


def test_scope_of_the_list(db, org):
    _set(db, org.c_rep.id, category="silent", grade="A")
    _set(db, org.c_north.id, category="silent", grade="A")
    value_review.review(NOW)
    names = lambda user: sorted(r["customer_id"] for r in value_review.open_proposals(user)[0])
    assert names(org.admin) == sorted([org.c_rep.id, org.c_north.id])
    assert names(org.manager) == [org.c_rep.id]
    assert names(org.manager_north) == [org.c_north.id]
    assert names(org.auditor) == sorted([org.c_rep.id, org.c_north.id])
    assert value_review.open_proposals(org.manager)[1] == 1
    with pytest.raises(ValidationFailed) as exc:
        value_review.open_proposals(org.manager, "nonsense")
    assert set(exc.value.fields) == {"kind"}


def test_the_cli_runs_the_review(app, db, org):
    _set(db, org.c_rep.id, category="silent", grade="A", last_followup_at=NOW)
    result = app.test_cli_runner().invoke(args=["crm", "value-review"])
    assert result.exit_code == 0, result.output
    assert "沉默的高价值客户：重新激活：1" in result.output
    assert "已过期：0" in result.output
    assert len(_open(db, "reactivate")) == 1


def test_two_reps_of_one_department_are_proposed_each_other_never_themselves(db, org):
    for c in (org.c_rep, org.c_rep2):
        _set(db, c.id, grade="A", acquired_at=NOW - dt.timedelta(days=90),
             last_followup_at=NOW - dt.timedelta(days=60))
    value_review.review(NOW)
    proposed = {p.owner_id: p.proposed_owner_id for p in _open(db, "grade_a_neglected")}
    assert proposed == {org.rep.id: org.rep2.id, org.rep2.id: org.rep.id}
