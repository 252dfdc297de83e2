"""Issue 16's "done means", walked through the pages and the API the people use: marketing
builds a segment and an e-mail campaign and launches it; a real RQ worker sends the outbox
over SMTP; a reader unsubscribes through the mail's link, and the next campaign and birthday
care leave that address out; another reader clicks the tracked link; a visitor signs up
through the capture form with the campaign's token, the rep converts the lead and wins its
opportunity, and the won amount and ROI show in the campaign's effect (API and page)."""
from __future__ import annotations

import datetime as dt
import re
import uuid
from decimal import Decimal

from sqlalchemy import select, update

from app.models import (CampaignMessage, CampaignTouch, CareMessage, CareTemplate, Customer,
                        Deal, Lead, LeadOwnership, MarketingOptOut, Opportunity, PoolMember)
from app.services import care, customers, lead_capture, leads, opportunities
from tests.care_fixtures import SmtpServer
from tests.conftest import csrf_token

PUBLIC = "https://crm.example.com"
TARGET = "https://www.example.com/autumn-2026"


def _api(client, method, path, body=None):
    """A REST call with the session cookie: the page's CSRF token in X-CSRFToken."""
    resp = client.open(path, method=method, json=body, headers={"X-CSRFToken": client.csrf})
    assert resp.status_code == 200, (path, resp.get_data(as_text=True)[:500])
    return resp.get_json()


def _campaign(client, name, segment_id, cost):
    """Created through the API; its e-mail template and window saved through the page."""
    cid = _api(client, "POST", "/api/v1/campaigns/", {
        "name": name, "kind": "email", "segment_id": segment_id, "budget": cost,
        "actual_cost": cost, "starts_on": "2026-10-01", "ends_on": "2026-10-31"})["id"]
    resp = client.post(f"/campaigns/{cid}/messages/templates", data={
        "csrf_token": client.csrf, "email_subject": "{name}，秋季新品上市",
        "email_body": "{name}您好：秋季新品详见 " + TARGET + " 。{owner}敬上",
        "sms_body": "", "send_from_hour": "0", "send_to_hour": "24"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    return cid


def _queued(db, cid) -> list[str]:
    db.session.expire_all()
    return sorted(db.session.execute(select(CampaignMessage.address).where(
        CampaignMessage.campaign_id == cid)).scalars())


def _mail_to(inbox, address):
    (mail,) = [m for m in inbox.messages if m["To"] == address]
    return mail.get_content()


def test_a_campaign_from_segment_to_won_deal_and_roi(app, db, org, clients, redis_url,
                                                     database_url):
    from app.queue import get_queue
    from jobs.campaigns import campaign_deliver
    from tests.test_jobs import run_burst_worker

    assert redis_url, "the journey needs Redis (started by the tests' services_boot)"
    # The readers: two of rep's customers in 浙江, with e-mail and a birthday on 03-12.
    wang = customers.create_customer(org.rep, {
        "name": "王芳", "customer_type": "person", "province": "浙江", "city": "杭州",
        "email": "WangFang@Example.com", "birthday": "1985-03-12"})
    li = customers.create_customer(org.rep, {
        "name": "李雷", "customer_type": "person", "province": "浙江", "city": "宁波",
        "email": "lilei@example.com", "birthday": "1990-03-12"})
    province = wang.province
    # The lead pool is open to the sales centre; the public capture form feeds it.
    pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=pool.id, department_id=org.centre.id))
    db.session.commit()
    form = lead_capture.create_form(org.admin, {
        "name": "官网咨询", "channel": "web_form", "pool_id": pool.id,
        "policy_text": "我们只用您的信息联系您。", "policy_version": "v1", "is_active": True})

    # 1. Marketing: a segment (浙江 customers) and a campaign with an e-mail template.
    mkt = clients.marketing
    segment = _api(mkt, "POST", "/api/v1/segments/", {
        "name": "浙江客户", "record_type": "customer", "criteria": {"provinces": [province]}})
    sid = segment["id"]
    cid = _campaign(mkt, "秋季新品邮件", sid, "5000")

    # 2. Launch (the page's button): the segment is frozen, the outbox filled.
    resp = mkt.post(f"/campaigns/{cid}/launch", data={"csrf_token": mkt.csrf})
    assert resp.status_code == 302
    # c_rep (杭州) is in the segment too but has no e-mail: a member without a message.
    assert _queued(db, cid) == ["lilei@example.com", "wangfang@example.com"]
    page = mkt.get(f"/campaigns/{cid}/messages").get_data(as_text=True)
    assert len(re.findall(r'<tr data-id="\d+"', page)) == 2

    # 3. The delivery job on a real burst worker, against real Redis, to a loopback SMTP.
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with SmtpServer() as server:
        job = get_queue(queue).enqueue(campaign_deliver)
        result = run_burst_worker(redis_url, database_url, queue, extra_env={
            "GUISHU_SMTP_HOST": "127.0.0.1", "GUISHU_SMTP_PORT": str(server.port),
            "GUISHU_PUBLIC_URL": PUBLIC, "SECRET_KEY": app.config["SECRET_KEY"]})
        assert result.returncode == 0, result.stderr[-2000:]
        job.refresh()
        assert job.return_value()["sent"] == 2, result.stderr[-2000:]
        to_wang = _mail_to(server.inbox, "wangfang@example.com")
        to_li = _mail_to(server.inbox, "lilei@example.com")
    db.session.expire_all()
    assert set(db.session.execute(select(CampaignMessage.status).where(
        CampaignMessage.campaign_id == cid)).scalars()) == {"sent"}
    # The mail: the link tracked (not the bare target), the unsubscribe link at the end.
    assert to_li.startswith("李雷您好：秋季新品详见 " + PUBLIC + "/c/")
    assert TARGET not in to_li
    click = re.search(re.escape(PUBLIC) + r"/c/([A-Za-z0-9_.\-]+)", to_li).group(1)
    unsubscribe = re.search(re.escape(PUBLIC) + r"/u/(\S+)", to_wang).group(1)

    # 4. 王芳 follows the unsubscribe link: the page asks, the POST (with its CSRF) records.
    reader = app.test_client()
    asked = reader.get(f"/u/{unsubscribe}")
    assert asked.status_code == 200
    html = asked.get_data(as_text=True)
    assert "wangfang@example.com" not in html  # the address is shown masked
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    done = reader.post(f"/u/{unsubscribe}", data={"csrf_token": token})
    assert done.status_code == 200 and 'id="unsubscribe-done"' in done.get_data(as_text=True)
    db.session.expire_all()
    optout = db.session.execute(select(MarketingOptOut)).scalar_one()
    assert (optout.channel, optout.address, optout.source, optout.customer_id,
            optout.campaign_id) == ("email", "wangfang@example.com", "link", wang.id, cid)

    # 5. The next campaign to the same segment does not queue her address...
    second = _campaign(mkt, "冬季促销邮件", sid, "3000")
    launched = _api(mkt, "POST", f"/api/v1/campaigns/{second}/launch")
    assert (launched["total"], launched["queued"]) == (3, 1)
    assert _queued(db, second) == ["lilei@example.com"]
    # ... and birthday care greets 李雷 by e-mail on 03-12, not her.
    db.session.execute(update(CareTemplate).where(CareTemplate.channel == "email")
                       .values(active=True))
    db.session.commit()
    care.plan(today=dt.date(2027, 3, 10))
    greeted = set(db.session.execute(select(CareMessage.customer_id, CareMessage.address)
                                     .where(CareMessage.channel == "email")).all())
    assert (li.id, "lilei@example.com") in greeted
    assert {c for c, _a in greeted} & {wang.id} == set()

    # 6. 李雷 clicks the tracked link: redirected to the target, a click touch on him.
    resp = app.test_client().get(f"/c/{click}")
    assert (resp.status_code, resp.headers["Location"]) == (302, TARGET)
    db.session.expire_all()
    touches = db.session.execute(select(CampaignTouch.kind, CampaignTouch.customer_id,
                                        CampaignTouch.url).where(
        CampaignTouch.campaign_id == cid)).all()
    assert touches == [("click", li.id, TARGET)]

    # 7. A colleague he forwarded it to signs up through the form with the campaign's token
    #    (issued on the responses page): a new lead in the pool, with a sign-up touch.
    assert mkt.post(f"/campaign-responses/{cid}/token",
                    data={"csrf_token": mkt.csrf}).status_code == 302
    db.session.expire_all()
    from app.models.marketing import Campaign

    campaign_token = db.session.get(Campaign, cid).token
    visitor = app.test_client()
    path = f"/forms/{form.token}?c={campaign_token}"
    resp = visitor.post(path, data={
        "csrf_token": csrf_token(visitor, path), "name": "韩梅梅",
        "company": "宁波海曙精工有限公司", "mobile": "13700008888",
        "email": "hanmm@haishu.example.com", "city": "宁波", "consent": "y"})
    assert resp.status_code == 200
    db.session.expire_all()
    lead = db.session.execute(select(Lead).where(
        Lead.company_name == "宁波海曙精工有限公司")).scalar_one()
    assert (lead.source, lead.campaign) == ("web_form", "秋季新品邮件")
    assert db.session.get(LeadOwnership, lead.id).pool_id == pool.id
    signup = db.session.execute(select(CampaignTouch).where(
        CampaignTouch.kind == "signup")).scalar_one()
    assert (signup.campaign_id, signup.lead_id, signup.lead_created) == (cid, lead.id, True)

    # 8. The rep claims and converts it with an opportunity, and wins it on the kanban.
    rep = clients.rep
    assert rep.post("/lead-pool/action_post", data={
        "csrf_token": rep.csrf, "action": "claim", "rowid": [lead.id]}).status_code == 302
    assert rep.post(f"/leads/convert/{lead.id}", data={
        "csrf_token": rep.csrf, "opportunity_title": "秋季新品：排程模块",
        "opportunity_amount": "60000"}).status_code == 302
    db.session.expire_all()
    customer_id = db.session.get(Lead, lead.id).converted_customer_id
    assert db.session.get(Customer, customer_id) is not None
    opp = db.session.execute(select(Opportunity).where(
        Opportunity.customer_id == customer_id)).scalar_one()
    won = opportunities.stage_of_kind("won")
    resp = rep.post(f"/opportunities/stage/{opp.id}", data={
        "csrf_token": rep.csrf, "stage_id": won.id, "expected_stage_id": opp.stage_id},
        headers={"Accept": "application/json"})
    assert resp.status_code == 200 and resp.get_json()["status"] == "won"
    db.session.expire_all()
    deal = db.session.execute(select(Deal).where(Deal.customer_id == customer_id)).scalar_one()
    assert deal.amount == Decimal("60000.00")

    # 9. The campaign's effect: the sign-up's won deal, ROI (60,000 − 5,000) / 5,000 = 1100 %.
    stats = _api(mkt, "GET", f"/api/v1/campaigns/{cid}/stats")
    numbers = {k: stats[k] for k in (
        "status", "members", "delivered", "failed", "unsubscribed", "clicked", "responded",
        "leads", "converted", "opportunities", "won_first_touch", "won_last_touch",
        "cost_per_lead", "roi_first_touch", "roi_last_touch")}
    assert numbers == {
        "status": "running", "members": 3, "delivered": 2, "failed": 0, "unsubscribed": 1,
        "clicked": 1, "responded": 1, "leads": 1, "converted": 1, "opportunities": 1,
        "won_first_touch": "60000.00", "won_last_touch": "60000.00",
        "cost_per_lead": "5000.00", "roi_first_touch": 11.0, "roi_last_touch": 11.0}
    assert stats["attribution_days"] == 180
    # The second campaign touched nobody: nothing of the deal is its.
    other = _api(mkt, "GET", f"/api/v1/campaigns/{second}/stats")
    assert (other["won_first_touch"], other["delivered"], other["unsubscribed"]) == (
        "0.00", 0, 0)
    page = mkt.get("/campaign-effect/").get_data(as_text=True)
    row = page[page.index("秋季新品邮件"):]
    row = row[:row.index("</tr>")]
    assert '<td class="won-first">60,000.00</td>' in row and "1100.0%" in row, row
    # Scoped: a rep reads no campaign effect.
    refused = rep.get(f"/api/v1/campaigns/{cid}/stats")
    assert (refused.status_code, refused.get_json()["code"]) == (403, "forbidden")
    assert rep.get("/campaign-effect/").status_code in (302, 403)
