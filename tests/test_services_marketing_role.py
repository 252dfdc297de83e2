"""The Marketing role (市场专员) in the services, not only in the permissions: every customer read
and masked (a pool it administers too), no ownership action on a customer and never an
owner, and the leads of the lead pools handed out to sales."""
from __future__ import annotations

import pytest

from app.models import LeadOwnership, PoolMember
from app.services import (assignment, classification, customers, leads, masking,
                          pool as pool_service, transfers)
from app.services.errors import OutOfScope, PermissionDenied, ValidationFailed


def test_marketing_reads_every_customer_masked(db, org):
    rule = masking.rule_for(org.marketing)
    for c in (org.c_rep, org.c_rep2, org.c_north, org.c_pool):
        o = c.ownership
        assert rule(o.owner_id, o.pool_id) is False
        assert customers.get_customer(org.marketing, c.id).id == c.id
    # Even as the admin of a pool, where a pool admin otherwise reads in full.
    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.marketing.id, is_admin=True))
    db.session.commit()
    assert masking.rule_for(org.marketing)(None, org.pool.id) is False
    assert masking.shown("mobile", "13800138000", False) == "138****8000"


def test_marketing_takes_no_ownership_action(db, org):
    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.marketing.id, is_admin=True))
    db.session.commit()
    with pytest.raises(PermissionDenied) as exc:
        pool_service.claim_from_pool(org.marketing, [org.c_pool.id])
    assert exc.value.message == "您的角色不能领取公海客户"
    with pytest.raises(PermissionDenied) as exc:
        assignment.assign(org.marketing, [org.c_pool.id], org.rep.id)
    assert exc.value.message == "市场专员不能对客户做归属操作"
    with pytest.raises(OutOfScope):
        pool_service.release_to_pool(org.marketing, [org.c_rep.id], "不跟了")
    with pytest.raises(OutOfScope):
        assignment.lock(org.marketing, [org.c_rep.id])
    with pytest.raises(PermissionDenied):
        classification.set_grade(org.marketing, [org.c_rep.id], "A")
    with pytest.raises(PermissionDenied):
        transfers.create_transfer(org.marketing, [org.c_rep.id], org.rep2.id, "调整")
    with pytest.raises(PermissionDenied) as exc:
        customers.create_customer(org.marketing, {"name": "市场录入有限公司"})
    assert exc.value.message == "您的角色不能新增或修改客户"
    with pytest.raises(PermissionDenied):
        customers.update_customer(org.marketing, org.c_rep.id, {"city": "宁波"})


def test_marketing_is_never_made_an_owner(db, org):
    with pytest.raises(ValidationFailed) as exc:
        assignment.assign(org.admin, [org.c_pool.id], org.marketing.id)
    assert exc.value.fields == {"owner": "测试marketing1 是市场专员，不能负责客户或线索"}
    with pytest.raises(ValidationFailed):
        transfers.create_transfer(org.rep, [org.c_rep.id], org.marketing.id, "调整")


def test_marketing_hands_out_lead_pool_leads_to_sales(db, org):
    pooled = leads.create_lead(org.staff, {"company_name": "温州鹿城电器有限公司"})
    mine = leads.create_lead(org.rep, {"company_name": "宁波海曙贸易有限公司"})
    assert leads.assign_leads(org.marketing, [pooled.id], org.rep2.id, "展会线索") == [pooled.id]
    db.session.expire_all()
    assert db.session.get(LeadOwnership, pooled.id).owner_id == org.rep2.id
    # A rep's lead is not marketing's to move; leads go to sales only.
    with pytest.raises(OutOfScope):
        leads.assign_leads(org.marketing, [mine.id], org.rep2.id)
    other = leads.create_lead(org.staff, {"company_name": "嘉兴南湖纺织有限公司"})
    for target in (org.marketing, org.staff, org.auditor):
        with pytest.raises(ValidationFailed) as exc:
            leads.assign_leads(org.marketing, [other.id], target.id)
        assert exc.value.fields == {"owner_id": "线索只能分配给销售或销售经理"}
    with pytest.raises(PermissionDenied) as exc:
        leads.assign_leads(org.auditor, [other.id], org.rep.id)
    assert exc.value.message == "只有销售经理、市场专员和管理员可以分配线索"


def test_marketing_reads_lead_pools_and_leads_masked(db, org):
    pooled = leads.create_lead(org.staff, {"company_name": "温州鹿城电器有限公司",
                                           "mobile": "13700137000"})
    assert leads.browsable_lead_pool_ids(org.marketing) == {leads.default_lead_pool().id}
    assert leads.get_lead(org.marketing, pooled.id).id == pooled.id
    assert leads.shown_field(pooled, "mobile", leads.contact_rule(org.marketing)) \
        == "137****7000"
    with pytest.raises(PermissionDenied):
        leads.claim_leads(org.marketing, [pooled.id])
    with pytest.raises(PermissionDenied):
        leads.update_lead(org.marketing, pooled.id, {"city": "温州"})


def test_marketing_reads_leads_masked_even_as_a_lead_pool_admin(app, db, org, api):
    """As for customers (app.services.masking): a lead pool marketing administers does not
    unmask its leads, on the lead page, the lead API, campaign member lists and segment
    previews."""
    from app.services import campaigns, marketing_segments
    from tests.conftest import login

    pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=pool.id, user_id=org.marketing.id, is_admin=True))
    db.session.commit()
    lead = leads.create_lead(org.staff, {"person_name": "钱七", "mobile": "13612345678",
                                         "email": "qianqi@example.com"})
    assert (lead.ownership.owner_id, lead.ownership.pool_id) == (None, pool.id)
    assert leads.contact_rule(org.marketing)(None, pool.id) is False
    assert leads.contact_rule(org.rep)(None, pool.id) is False  # not its pool's admin
    campaign = campaigns.create(org.marketing, {"name": "线索活动", "kind": "sms"})
    campaigns.add_members(campaign.id, org.marketing, lead_ids=[lead.id])
    rows, _ = campaigns.members_page(org.marketing, campaign.id)
    assert [(r["mobile"], r["email"]) for r in rows] == [("136****5678", "q***@example.com")]
    segment = marketing_segments.create_segment(org.marketing, {
        "name": "线索", "record_type": "lead", "include_pool": True})
    previewed = marketing_segments.preview(segment, org.marketing)
    assert [(r["mobile"], r["email"]) for r in previewed] == [
        ("136****5678", "q***@example.com")]
    client = login(app.test_client(), org.marketing.username)
    call = api(org.marketing.username)
    for resp in (client.get(f"/leads/show/{lead.id}"), client.get(f"/campaigns/{campaign.id}"),
                 client.get(f"/segments/preview/{segment.id}"),
                 call("GET", f"/api/v1/leads/{lead.id}"),
                 call("GET", f"/api/v1/campaigns/{campaign.id}/members"),
                 call("GET", f"/api/v1/segments/{segment.id}/preview")):
        text = resp.get_data(as_text=True)
        assert resp.status_code == 200 and "136****5678" in text, resp.request.path
        assert "13612345678" not in text and "qianqi@example.com" not in text, resp.request.path
    # Staff, who keep the pool, read it in full.
    assert leads.contact_rule(org.staff)(None, pool.id) is True
