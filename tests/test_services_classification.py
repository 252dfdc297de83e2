"""Classification (潜在 / 活跃 / 沉默) and grading (A/B/C): from deals, immediately on a deal and
nightly in bulk, thresholds from the settings form, a hand-set grade kept."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import AuditLog, Deal, Ownership
from app.models.customer import utcnow
from app.services import classification, deals
from app.services.errors import OutOfScope, PermissionDenied, ValidationFailed
from tests.test_views_ownership import post

TODAY = utcnow().date()


def row(db, cid) -> Ownership:
    db.session.expire_all()
    return db.session.get(Ownership, cid)


def add_deal(db, cid, user, amount, days_ago):
    db.session.add(Deal(customer_id=cid, user_id=user.id, amount=Decimal(amount),
                        won_on=TODAY - dt.timedelta(days=days_ago)))
    db.session.commit()


def test_a_deal_classifies_and_grades_at_once(db, org):
    assert (row(db, org.c_rep.id).category, row(db, org.c_rep.id).grade) == ("potential", None)
    deals.record_deal(org.rep, org.c_rep.id, {"amount": "150000"})
    r = row(db, org.c_rep.id)
    assert (r.won, r.category, r.grade) == (True, "active", "B")  # B from 100k (default)
    deals.record_deal(org.rep, org.c_rep.id, {"amount": "400000"})
    assert row(db, org.c_rep.id).grade == "A"  # 550k within 12 months


def test_nightly_bulk_classification(db, org):
    add_deal(db, org.c_rep.id, org.rep, "600000", 10)      # active, A
    add_deal(db, org.c_rep2.id, org.rep2, "20000", 200)    # silent (after 180 days), C
    add_deal(db, org.c_north.id, org.rep_north, "900000", 400)  # silent; outside 12 months: C
    assert classification.classify() == 4
    got = {cid: (row(db, cid).category, row(db, cid).grade) for cid in
           (org.c_rep.id, org.c_rep2.id, org.c_north.id, org.c_pool.id)}
    assert got == {org.c_rep.id: ("active", "A"), org.c_rep2.id: ("silent", "C"),
                   org.c_north.id: ("silent", "C"), org.c_pool.id: ("potential", "C")}


def test_thresholds_come_from_the_settings(db, org):
    conf = classification.settings()
    conf.grade_a_min, conf.grade_b_min, conf.silent_after_days = Decimal(50000), Decimal(10000), 30
    db.session.commit()
    add_deal(db, org.c_rep.id, org.rep, "60000", 40)
    classification.classify([org.c_rep.id])
    assert (row(db, org.c_rep.id).category, row(db, org.c_rep.id).grade) == ("silent", "A")


def test_a_hand_set_grade_is_kept_by_the_nightly_job_and_audited(db, org):
    classification.set_grade(org.manager, [org.c_rep.id], "A")
    classification.classify()
    assert row(db, org.c_rep.id).grade == "A"
    assert db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "customer_grade")).scalar_one().changes == {
        "grade_override": [None, "A"]}
    classification.set_grade(org.admin, [org.c_rep.id], None)  # back to automatic
    assert row(db, org.c_rep.id).grade == "C"


@pytest.mark.parametrize("who,customer,error", [
    ("rep", "c_rep", PermissionDenied), ("manager", "c_north", OutOfScope),
    ("manager", "c_pool", OutOfScope)])
def test_who_may_set_a_grade(db, org, who, customer, error):
    with pytest.raises(error):
        classification.set_grade(getattr(org, who), [getattr(org, customer).id], "A")
    assert row(db, getattr(org, customer).id).grade_override is None


def test_bad_grade_and_bad_settings_are_refused(db, org):
    with pytest.raises(ValidationFailed) as exc:
        classification.set_grade(org.admin, [org.c_rep.id], "S")
    assert exc.value.fields == {"grade": "等级只能是 A、B、C 或自动"}
    conf = classification.settings()
    conf.grade_a_min, conf.grade_b_min = Decimal(1000), Decimal(5000)
    with pytest.raises(ValidationFailed) as exc:
        classification.validate_settings(conf)
    assert exc.value.fields == {"grade_a_min": "A 级门槛不能低于 B 级门槛"}
    db.session.rollback()


def test_grade_page_for_managers_only(clients, db, org):
    resp = post(clients.manager, f"/ownership/grade?ids={org.c_rep.id}", {"grade": "B"})
    assert resp.status_code == 302 and row(db, org.c_rep.id).grade == "B"
    assert clients.rep.get(f"/ownership/grade?ids={org.c_rep.id}").status_code == 403
    assert clients.manager.get(f"/ownership/grade?ids={org.c_north.id}").status_code == 404


def test_settings_form_edits_the_row_and_refuses_a_below_b(clients, db, org):
    conf = classification.settings()
    db.session.commit()
    resp = post(clients.admin, f"/grading/edit/{conf.id}", {
        "silent_after_days": "90", "grade_a_min": "1000", "grade_b_min": "5000"},
        follow_redirects=True)
    assert "A 级门槛不能低于 B 级门槛" in resp.get_data(as_text=True)
    post(clients.admin, f"/grading/edit/{conf.id}", {
        "silent_after_days": "90", "grade_a_min": "300000", "grade_b_min": "50000"})
    db.session.expire_all()
    assert classification.settings().silent_after_days == 90
    assert clients.manager.get("/grading/list/").status_code == 200
    assert clients.manager.get(f"/grading/edit/{conf.id}").status_code == 403
    assert clients.admin.get("/grading/add").status_code == 403
