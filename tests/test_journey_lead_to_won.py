"""Issue 15's "done means", walked through the pages a newcomer uses: a visitor fills in the
public form, the lead lands in the lead pool, a rep claims it, follows it up and converts it
into a customer with an opportunity, drags the opportunity to 赢单 on the kanban, and the
won amount and the new customer show in the rep's target attainment on the workbench."""
from __future__ import annotations

import re
from decimal import Decimal

from sqlalchemy import func, select

from app.models import (AuditLog, Deal, Lead, LeadEvent, LeadOwnership, Opportunity, OpportunityStageChange,
                        Ownership, PoolMember)
from app.services import lead_capture, leads, opportunities, targets
from tests.conftest import csrf_token


def test_one_lead_from_the_public_form_to_a_won_opportunity_in_the_target(app, db, org,
                                                                          clients):
    pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=pool.id, department_id=org.centre.id))
    db.session.commit()
    form = lead_capture.create_form(org.admin, {
        "name": "官网咨询", "channel": "web_form", "pool_id": pool.id,
        "policy_text": "我们只用您的信息联系您。", "policy_version": "v3", "is_active": True})
    targets.create_target(org.admin, {
        "user_id": org.rep.id, "period_kind": "month",
        "period_start": targets.period_containing("month"), "won_amount": "100000",
        "new_customers": 4})

    # 1. A visitor, not signed in, submits the public form.
    visitor = app.test_client()
    path = f"/forms/{form.token}"
    resp = visitor.post(path, data={
        "csrf_token": csrf_token(visitor, path), "name": "赵六", "company": "旅程测试科技有限公司",
        "mobile": "13700007777", "email": "zhao@example.com", "city": "宁波", "consent": "y"})
    assert resp.status_code == 200
    db.session.commit()
    lead = db.session.execute(select(Lead).where(
        Lead.company_name == "旅程测试科技有限公司")).scalar_one()
    assert (lead.source, lead.consent_version) == ("web_form", "v3")
    assert db.session.get(LeadOwnership, lead.id).pool_id == pool.id

    # 2. The rep claims it from the lead pool (the list's bulk action).
    rep = clients.rep
    resp = rep.post("/lead-pool/action_post", data={
        "csrf_token": rep.csrf, "action": "claim", "rowid": [lead.id]})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(LeadOwnership, lead.id).owner_id == org.rep.id

    # 3. A follow-up, then the conversion with an opportunity.
    assert rep.post(f"/leads/followup/{lead.id}", data={
        "csrf_token": rep.csrf, "channel": "call", "content": "电话沟通，需要报价"}
    ).status_code == 302
    assert rep.post(f"/leads/convert/{lead.id}", data={
        "csrf_token": rep.csrf, "opportunity_title": "官网咨询转化", "opportunity_amount": "58000"}
    ).status_code == 302
    db.session.expire_all()
    lead = db.session.get(Lead, lead.id)
    assert lead.status == "converted" and lead.converted_customer_id is not None
    customer_id = lead.converted_customer_id
    assert db.session.get(Ownership, customer_id).owner_id == org.rep.id
    opp = db.session.execute(select(Opportunity).where(
        Opportunity.customer_id == customer_id)).scalar_one()
    assert (opp.title, opp.amount, opp.status) == ("官网咨询转化", Decimal("58000.00"), "open")

    # 4. On the kanban the card is dragged to 赢单: the drop POSTs JSON with the CSRF token.
    board = rep.get("/opportunities/kanban").get_data(as_text=True)
    assert "官网咨询转化" in board
    won = opportunities.stage_of_kind("won")
    resp = rep.post(f"/opportunities/stage/{opp.id}", data={
        "csrf_token": rep.csrf, "stage_id": won.id, "expected_stage_id": opp.stage_id},
        headers={"Accept": "application/json"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["status"] == "won"
    db.session.expire_all()
    opp = db.session.get(Opportunity, opp.id)
    assert opp.closed_owner_id == org.rep.id and opp.deal_id is not None
    deal = db.session.get(Deal, opp.deal_id)
    assert (deal.customer_id, deal.amount) == (customer_id, Decimal("58000.00"))
    assert db.session.get(Ownership, customer_id).won is True
    assert db.session.execute(select(func.count()).select_from(OpportunityStageChange).where(
        OpportunityStageChange.opportunity_id == opp.id)).scalar_one() == 2  # created, won

    # 5. The rep's attainment: the won amount and the new customer (the claimed lead's
    #    customer counts as acquired this month), on the workbench too.
    mine = targets.my_attainment(org.rep, "month")
    assert mine["actual_won"] == Decimal("58000.00") and mine["target_won"] == Decimal("100000")
    assert mine["rate_won"] == Decimal("0.58")
    assert mine["actual_new"] >= 1
    page = rep.get("/workbench/").get_data(as_text=True)
    panel = page[page.index('id="my-target"'):]
    assert re.search(r'class="actual-won">[^<]*58,?000', panel), panel[:800]
    assert re.search(r'class="rate-won">58(\.0)?\s*%', panel), panel[:800]

    # Every step is audited under the rep.
    steps = set(db.session.execute(select(AuditLog.object_type, AuditLog.action).where(
        AuditLog.actor_id == org.rep.id)).all())
    assert {("lead", "followup"), ("lead", "convert"), ("customer", "create"),
            ("opportunity", "create"), ("opportunity", "stage")} <= steps
    # The lead's ownership changes are its events: created in the pool, claimed, converted.
    kinds = list(db.session.execute(select(LeadEvent.kind).where(
        LeadEvent.lead_id == lead.id).order_by(LeadEvent.id)).scalars())
    assert kinds[:2] == ["created", "claimed"], kinds
