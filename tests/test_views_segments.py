"""Segment policies in the Policies form (conditions kept, caps refused beside the field,
nothing saved), the list naming the segment, and the user page and the workbench saying
which policy applies per field."""
from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.models import Policy
from app.services import policy_config

EMPTY = {"max_customers": "", "max_locked": "", "daily_claim_limit": "", "cooldown_days": "",
         "reclaim_no_followup_days": "", "reclaim_no_deal_days": "", "warn_before_days": "",
         "count_won": "", "lead_max": "", "lead_daily_claim_limit": "",
         "lead_reclaim_no_followup_days": "", "segment_record_type": "", "segment_grade": "",
         "segment_category": "", "segment_product_line": "", "segment_source": ""}


def post(client, **values):
    return client.post("/policies/add", data={**EMPTY, **values, "csrf_token": client.csrf},
                       follow_redirects=True)


def rows():
    return db.session.execute(select(Policy.id, Policy.segment_key, Policy.max_customers,
                                     Policy.reclaim_no_followup_days)
                              .order_by(Policy.id)).all()


def test_the_form_saves_a_segment_policy(org, admin_client):
    resp = post(admin_client, scope="department", department=str(org.east.id),
                segment_grade="A", segment_source=" 官网 ", reclaim_no_followup_days="180")
    assert resp.status_code == 200
    made = db.session.execute(select(Policy).where(Policy.segment_key != "")).scalar_one()
    assert (made.scope, made.department_id, made.segment_grade, made.segment_source,
            made.segment_key, made.reclaim_no_followup_days) == (
        "department", org.east.id, "A", "官网", "grade=A;source=官网", 180)
    listing = admin_client.get("/policies/list/").get_data(as_text=True)
    assert "等级 A、来源 官网" in listing


def test_the_form_refuses_a_cap_on_a_segment_policy_beside_the_field(org, admin_client):
    before = rows()
    resp = post(admin_client, scope="global", segment_grade="B", max_customers="5",
                reclaim_no_followup_days="40")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "细分策略只能设置回收期限和预警天数；max_customers 只能按用户、部门或全局设置" in html
    db.session.expire_all()
    assert rows() == before


def test_the_form_refuses_a_bad_condition(org, admin_client):
    before = rows()
    resp = post(admin_client, scope="global", segment_record_type="lead", segment_grade="A",
                lead_reclaim_no_followup_days="5")
    assert "线索没有等级、分类或产品线；此条件只适用于客户细分" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert rows() == before


def test_the_user_page_and_the_workbench_name_the_segment_policy(org, admin_client,
                                                                rep_client):
    seg = policy_config.create_policy(org.admin, {
        "scope": "global", "segment_grade": "A", "reclaim_no_followup_days": 180})
    policy_config.create_policy(org.admin, {"scope": "user", "user_id": org.rep2.id,
                                            "reclaim_no_followup_days": 20})
    html = admin_client.get(f"/users/show/{org.rep.id}").get_data(as_text=True)
    assert f'data-field="reclaim_no_followup_days" data-policy="{seg.id}"' in html
    assert f"全局默认，细分：等级 A (#{seg.id})" in html
    # rep2's own plain value comes first: the global segment never applies to them.
    html = admin_client.get(f"/users/show/{org.rep2.id}").get_data(as_text=True)
    assert 'class="segment-policy"' not in html
    html = rep_client.get("/workbench/").get_data(as_text=True)
    assert 'class="segment-policy" data-field="reclaim_no_followup_days"' in html
    assert f"全局默认，细分：等级 A (#{seg.id})" in html
