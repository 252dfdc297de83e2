"""Campaign responses and attribution (app.services.campaign_responses): tracked links and
their redirect (a forged token is a 404, no open redirect), sign-ups with a campaign's token,
responses marked by hand (customer, lead, new respondent), the attribution window and first vs
last touch, the effect table's exact numbers on a hand-built dataset, its export, the pages
and the API for every role."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import event, func, select

from app.models import (AuditLog, Campaign, CampaignMember, CampaignMessage, CampaignTouch,
                        Deal, Lead, MarketingOptOut, Opportunity,
                        OpportunityStage)
from app.security import ROLE_MARKETING
from app.services import campaign_responses as cr
from app.services import customers, lead_capture, leads, timeline
from app.services.errors import NotFound, OutOfScope, PermissionDenied, ValidationFailed
from tests.conftest import csrf_token, login, make_user

T = dt.datetime


# --- building blocks ------------------------------------------------------------------------------
@pytest.fixture
def mkt(db, org):
    return make_user("mkt1", ROLE_MARKETING)


def campaign(db, name, cost=None, kind="email"):
    c = Campaign(name=name, kind=kind, status="running", actual_cost=cost,
                 starts_on=dt.date(2026, 3, 1))
    db.session.add(c)
    db.session.flush()
    return c


def member(db, camp, customer=None, lead=None):
    m = CampaignMember(campaign_id=camp.id, customer_id=customer.id if customer else None,
                       lead_id=lead.id if lead else None, source="manual")
    db.session.add(m)
    db.session.flush()
    return m


def new_lead(name, mobile):
    values = leads.clean_lead_data({"person_name": name, "mobile": mobile})
    return leads.insert_lead(values, actor_id=None, owner_id=None,
                             pool_id=leads.default_lead_pool().id)


def touch(db, camp, kind, at, customer=None, lead=None, mem=None, created=False):
    t = CampaignTouch(campaign_id=camp.id, kind=kind, occurred_at=at,
                      customer_id=customer.id if customer else None,
                      lead_id=lead.id if lead else None, member_id=mem.id if mem else None,
                      lead_created=created)
    db.session.add(t)
    db.session.flush()
    return t


def deal(db, customer, amount, won_on):
    d = Deal(customer_id=customer.id, amount=Decimal(amount), won_on=won_on)
    db.session.add(d)
    db.session.flush()
    return d


def opportunity(db, customer, created_at):
    stage = db.session.execute(select(OpportunityStage).where(
        OpportunityStage.kind == "open").order_by(OpportunityStage.position)).scalars().first()
    o = Opportunity(customer_id=customer.id, title="机会", amount=Decimal("100"),
                    stage_id=stage.id, status="open", created_at=created_at,
                    updated_at=created_at)
    db.session.add(o)
    db.session.flush()
    return o


def touches_of(db, campaign_id):
    db.session.commit()
    return [tuple(r) for r in db.session.execute(select(
        CampaignTouch.kind, CampaignTouch.customer_id, CampaignTouch.lead_id,
        CampaignTouch.member_id, CampaignTouch.lead_created).where(
        CampaignTouch.campaign_id == campaign_id).order_by(CampaignTouch.id))]


def lead_count(db):
    db.session.commit()
    return db.session.execute(select(func.count()).select_from(Lead)).scalar_one()


# --- tracked links --------------------------------------------------------------------------------
def test_every_link_of_a_body_is_rewritten_to_a_signed_token(app, db, org, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", "")  # relative links, read more easily
    body = ("详情见 https://example.com/a?x=1&y=2。报名：http://shop.example.cn/p(1) ，"
            "或 (https://example.com/b). 长链接 https://example.com/" + "x" * 600)
    out = cr.rewrite_links(body, 42)
    tokens = re.findall(r"/c/([A-Za-z0-9_.\-]+)", out)
    assert [cr.read_click_token(t) for t in tokens] == [
        (42, "https://example.com/a?x=1&y=2"), (42, "http://shop.example.cn/p(1)"),
        (42, "https://example.com/b")]
    # The sentence's punctuation stays outside the link; the oversized link stays as written.
    assert "。报名：" in out and "). 长链接" in out and "https://example.com/" + "x" * 600 in out
    assert out.startswith("详情见 /c/") and all(len(t) < cr.TOKEN_MAX for t in tokens)
    assert cr.rewrite_links("", 1) == "" and cr.rewrite_links(None, 1) is None


def test_links_point_at_the_public_address_and_leave_our_own_links_alone(app, db, org,
                                                                          monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://crm.example.com")
    out = cr.rewrite_links("看 https://example.com 退订 https://crm.example.com/u/abc", 7)
    assert re.fullmatch(r"看 https://crm\.example\.com/c/\S+ 退订 https://crm\.example\.com/u/abc",
                        out)


def test_a_click_is_recorded_and_redirects_to_the_signed_target(app, db, org):
    camp = campaign(db, "春季邮件")
    m = member(db, camp, customer=org.c_rep)
    db.session.commit()
    token = cr.click_token(m.id, "https://example.com/offer")
    resp = app.test_client().get(f"/c/{token}")
    assert resp.status_code == 302
    assert resp.headers["Location"] == "https://example.com/offer"
    assert resp.headers["Cache-Control"] == "no-store"
    assert touches_of(db, camp.id) == [("click", org.c_rep.id, None, m.id, False)]
    # Repeats within ten minutes (scanners, double clicks) are one click; later ones count.
    assert app.test_client().get(f"/c/{token}").status_code == 302
    assert len(touches_of(db, camp.id)) == 1
    assert cr.record_click(token, now=dt.datetime.utcnow() + dt.timedelta(minutes=11)) \
        == "https://example.com/offer"
    assert len(touches_of(db, camp.id)) == 2
    # Another link of the same member is another click; "clicked" counts the member once.
    cr.record_click(cr.click_token(m.id, "https://example.com/other"))
    assert len(touches_of(db, camp.id)) == 3
    assert cr.effect([camp.id], org.admin)[0].clicked == 1


def test_a_forged_or_altered_token_is_a_404_and_no_open_redirect(app, db, org):
    from itsdangerous import URLSafeSerializer

    camp = campaign(db, "春季邮件")
    m = member(db, camp, customer=org.c_rep)
    db.session.commit()
    good = cr.click_token(m.id, "https://example.com/offer")
    forged = [
        URLSafeSerializer("not-our-secret", salt=cr.CLICK_SALT).dumps([m.id, "https://evil.example"]),
        URLSafeSerializer(app.config["SECRET_KEY"], salt="other").dumps([m.id, "https://evil.example"]),
        good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "https%3A%2F%2Fevil.example", "x" * (cr.TOKEN_MAX + 1), "é点击", ".", ".eJzT.x",
        # Signed by us, but not a web address or not [id, url]: refused all the same.
        URLSafeSerializer(app.config["SECRET_KEY"], salt=cr.CLICK_SALT).dumps(
            [m.id, "javascript:alert(1)"]),
        URLSafeSerializer(app.config["SECRET_KEY"], salt=cr.CLICK_SALT).dumps(
            [True, "https://example.com"]),
        URLSafeSerializer(app.config["SECRET_KEY"], salt=cr.CLICK_SALT).dumps(
            [2 ** 40, "https://example.com"]),
    ]
    client = app.test_client()
    for token in forged:
        resp = client.get(f"/c/{token}")
        assert resp.status_code == 404, token
        assert "Location" not in resp.headers
        with pytest.raises(NotFound):
            cr.read_click_token(token)
    assert client.get("/c/?next=https://evil.example").status_code == 404
    assert touches_of(db, camp.id) == []


def test_a_click_of_a_removed_member_still_reaches_the_target_unrecorded(app, db, org):
    camp = campaign(db, "春季邮件")
    m = member(db, camp, customer=org.c_rep)
    token = cr.click_token(m.id, "https://example.com/offer")
    db.session.delete(m)
    db.session.commit()
    resp = app.test_client().get(f"/c/{token}")
    assert (resp.status_code, resp.headers["Location"]) == (302, "https://example.com/offer")
    assert touches_of(db, camp.id) == []


# --- sign-ups through the capture form ------------------------------------------------------------
@pytest.fixture
def form(db, org):
    made = lead_capture.create_form(org.admin, {
        "name": "活动报名", "channel": "web_form", "pool_id": leads.default_lead_pool().id,
        "policy_text": "我们只用您的信息联系您。", "policy_version": "v1", "is_active": True})
    return SimpleNamespace(id=made.id, token=made.token)


def signup(app, form_token, campaign_token, data):
    client = app.test_client()
    path = f"/forms/{form_token}?c={campaign_token}"
    resp = client.post(path, data=dict(data, consent="y", csrf_token=csrf_token(client, path)))
    assert resp.status_code == 200, resp.get_data(as_text=True)[:300]
    return resp


def test_a_signup_with_the_campaigns_token_makes_a_lead_and_its_touch(app, db, org, mkt, form):
    camp = campaign(db, "秋季研讨会", kind="seminar")
    db.session.commit()
    token = cr.rotate_campaign_token(mkt, camp.id).token
    before = lead_count(db)
    signup(app, form.token, token, {"name": "赵六", "company": "报名测试有限公司",
                                    "mobile": "13700001234"})
    assert lead_count(db) == before + 1
    lead = db.session.execute(select(Lead).where(Lead.company_name == "报名测试有限公司")
                              ).scalar_one()
    assert (lead.source, lead.campaign) == ("web_form", "秋季研讨会")
    assert touches_of(db, camp.id) == [("signup", None, lead.id, None, True)]
    e = cr.effect([camp.id], org.admin)[0]
    assert (e.responded, e.leads, e.converted) == (1, 1, 0)


def test_a_signup_matching_a_customer_lands_on_the_customer(app, db, org, mkt, form):
    camp = campaign(db, "秋季研讨会", kind="seminar")
    m = member(db, camp, customer=org.c_rep)
    db.session.commit()
    token = cr.rotate_campaign_token(mkt, camp.id).token
    before = lead_count(db)
    signup(app, form.token, token, {"name": "老客户", "mobile": "13800138000"})  # c_rep's
    assert lead_count(db) == before
    assert touches_of(db, camp.id) == [("signup", org.c_rep.id, None, m.id, False)]


def test_a_finished_campaigns_token_makes_the_lead_but_no_touch(app, db, org, mkt, form):
    from app.services import campaigns

    camp = campaign(db, "秋季研讨会", kind="seminar")
    member(db, camp, customer=org.c_rep)
    db.session.commit()
    token = cr.rotate_campaign_token(mkt, camp.id).token
    signup(app, form.token, token, {"name": "赵六", "mobile": "13700001234"})
    assert len(touches_of(db, camp.id)) == 1
    campaigns.finish(camp.id, mkt)
    before = lead_count(db)
    signup(app, form.token, token, {"name": "钱七", "mobile": "13700005678"})
    signup(app, form.token, token, {"name": "老客户", "mobile": "13800138000"})  # c_rep's
    assert lead_count(db) == before + 1  # the visitor is never lost
    assert db.session.execute(select(Lead.person_name).where(
        Lead.mobile == "13700005678")).scalar_one() == "钱七"
    assert len(touches_of(db, camp.id)) == 1  # nothing more for the finished campaign
    assert [e.responded for e in cr.effect([camp.id], org.admin)] == [1]


def test_an_unknown_or_rotated_campaign_token_still_makes_the_lead(app, db, org, mkt, form):
    camp = campaign(db, "秋季研讨会", kind="seminar")
    db.session.commit()
    old = cr.rotate_campaign_token(mkt, camp.id).token
    new = cr.rotate_campaign_token(mkt, camp.id).token
    assert new != old and len(new) == 32
    before = lead_count(db)
    signup(app, form.token, old, {"name": "甲", "mobile": "13700004321"})
    signup(app, form.token, "nonsense", {"name": "乙", "mobile": "13700004322"})
    assert lead_count(db) == before + 2
    assert touches_of(db, camp.id) == []
    assert db.session.execute(select(AuditLog.action).where(
        AuditLog.object_type == "campaign", AuditLog.object_id == camp.id)
        .order_by(AuditLog.id)).scalars().all() == ["issue_token", "rotate_token"]


def test_only_marketing_and_admins_rotate_the_token(db, org, mkt):
    camp = campaign(db, "秋季研讨会")
    db.session.commit()
    for user in (org.manager, org.rep, org.staff, org.auditor):
        with pytest.raises(PermissionDenied):
            cr.rotate_campaign_token(user, camp.id)
    assert cr.rotate_campaign_token(org.admin, camp.id).token
    with pytest.raises(NotFound):
        cr.rotate_campaign_token(mkt, 2_147_483_647)


# --- responses marked by hand ---------------------------------------------------------------------
def test_a_customer_members_response_goes_on_its_timeline_without_a_lead(app, db, org, mkt):
    camp = campaign(db, "客户答谢会", kind="seminar")
    m = member(db, camp, customer=org.c_rep)
    db.session.commit()
    before = lead_count(db)
    t = cr.mark_member_response(mkt, m.id, "到场并咨询新品")
    assert lead_count(db) == before
    assert touches_of(db, camp.id) == [("response", org.c_rep.id, None, m.id, False)]
    with app.test_request_context("/"):  # the other sources link their records' pages
        page = timeline.page_of(org.admin, org.c_rep.id)
    entry = next(e for e in page.entries if e.kind == "campaign_touch")
    assert entry.summary == "市场活动「客户答谢会」：已响应 — 到场并咨询新品"
    assert db.session.execute(select(AuditLog.actor_id, AuditLog.action).where(
        AuditLog.object_type == "campaign_touch", AuditLog.object_id == t.id)).one() == (
        mkt.id, "response")


def test_the_owner_marks_their_own_customer_and_nobody_else_does(db, org, mkt):
    camp = campaign(db, "客户答谢会", kind="seminar")
    m = member(db, camp, customer=org.c_rep)
    ml = member(db, camp, lead=new_lead("线索甲", "13600001111"))
    db.session.commit()
    assert cr.mark_member_response(org.rep, m.id).customer_id == org.c_rep.id
    for user in (org.rep2, org.manager, org.rep_north):
        with pytest.raises(OutOfScope) as refused:
            cr.mark_member_response(user, m.id)
        assert refused.value.code == "out_of_scope"
    with pytest.raises(OutOfScope):
        cr.mark_member_response(org.rep, ml.id)  # a lead member: marketing's
    for user in (org.staff, org.auditor):
        with pytest.raises(PermissionDenied):
            cr.mark_member_response(user, m.id)
    with pytest.raises(OutOfScope):
        cr.mark_member_response(mkt, m.id, campaign_id=camp.id + 1)
    with pytest.raises(ValidationFailed) as bad:
        cr.mark_member_response(mkt, m.id, "x" * 501)
    assert list(bad.value.fields) == ["note"]
    assert len(touches_of(db, camp.id)) == 1


def test_a_lead_members_response_goes_on_the_lead(db, org, mkt):
    camp = campaign(db, "线索培育", kind="telemarketing")
    lead = new_lead("线索乙", "13600002222")
    m = member(db, camp, lead=lead)
    db.session.commit()
    before = lead_count(db)
    cr.mark_member_response(mkt, m.id)
    assert lead_count(db) == before
    assert touches_of(db, camp.id) == [("response", None, lead.id, m.id, False)]


def test_a_new_respondent_becomes_a_lead_unless_dedupe_finds_them(db, org, mkt):
    camp = campaign(db, "展会", kind="exhibition")
    existing = new_lead("老线索", "13600003333")
    db.session.commit()
    before = lead_count(db)
    new = cr.record_response(mkt, camp.id, {"person_name": "新访客", "mobile": "13600004444"},
                             "展台留资")
    assert (new.record, new.lead_created) == ("lead", True)
    lead = db.session.get(Lead, new.record_id)
    assert (lead.source, lead.campaign, lead.created_by_id) == ("campaign", "展会", mkt.id)
    on_customer = cr.record_response(mkt, camp.id, {"person_name": "老客户",
                                                    "mobile": "13800138000"})
    assert (on_customer.record, on_customer.record_id, on_customer.lead_created) == (
        "customer", org.c_rep.id, False)
    on_lead = cr.record_response(mkt, camp.id, {"person_name": "老线索", "mobile": "13600003333"})
    assert (on_lead.record, on_lead.record_id) == ("lead", existing.id)
    assert lead_count(db) == before + 1
    assert touches_of(db, camp.id) == [("response", None, new.record_id, None, True),
                                       ("response", org.c_rep.id, None, None, False),
                                       ("response", None, existing.id, None, False)]
    e = cr.effect([camp.id], mkt)[0]
    assert (e.responded, e.leads) == (3, 1)


def test_a_new_respondent_needs_a_way_to_reach_them_and_marketing_or_admin(db, org, mkt):
    camp = campaign(db, "展会", kind="exhibition")
    db.session.commit()
    with pytest.raises(ValidationFailed) as bad:
        cr.record_response(mkt, camp.id, {"person_name": "无联系方式"})
    assert list(bad.value.fields) == ["mobile"]
    with pytest.raises(ValidationFailed) as bad:
        cr.record_response(mkt, camp.id, {"mobile": "13600005555"})
    assert list(bad.value.fields) == ["person_name"]
    for user in (org.manager, org.rep, org.staff, org.auditor):
        with pytest.raises(PermissionDenied):
            cr.record_response(user, camp.id, {"person_name": "甲", "mobile": "13600005555"})
    with pytest.raises(NotFound):
        cr.record_response(mkt, 2_147_483_647, {"person_name": "甲", "mobile": "13600005555"})


# --- attribution ----------------------------------------------------------------------------------
WON_ON = dt.date(2026, 6, 30)
# Business days in Asia/Shanghai (UTC+8): 2026-01-01 00:00 local = 2025-12-31 16:00 UTC (the
# 180-day window's first instant), 2026-07-01 00:00 local = 2026-06-30 16:00 UTC (the first
# instant after the deal's day).
WINDOW_START, WINDOW_END = T(2025, 12, 31, 16, 0), T(2026, 6, 30, 16, 0)


def test_the_window_is_the_deals_business_day_and_the_days_before(db, org):
    a, b = campaign(db, "窗口A"), campaign(db, "窗口B")
    touch(db, a, "click", WINDOW_START - dt.timedelta(seconds=1), customer=org.c_rep)  # out
    touch(db, b, "click", WINDOW_START, customer=org.c_rep)                             # first
    touch(db, a, "click", WINDOW_END - dt.timedelta(seconds=1), customer=org.c_rep)     # last
    touch(db, b, "click", WINDOW_END, customer=org.c_rep)                               # out
    deal(db, org.c_rep, "1000", WON_ON)
    won = cr.attribution([a.id, b.id])
    assert (won[a.id].won_first, won[a.id].won_last) == (Decimal("0.00"), Decimal("1000.00"))
    assert (won[b.id].won_first, won[b.id].won_last) == (Decimal("1000.00"), Decimal("0.00"))
    assert (won[b.id].deals_first, won[a.id].deals_last) == (1, 1)
    # A 30-day window (the setting) leaves the January touch outside: A is first and last.
    from app.services.campaign_sending import settings as marketing_settings
    marketing_settings().attribution_days = 30  # the one row bootstrap made, or a new one
    db.session.flush()
    assert cr.attribution_days() == 30
    won = cr.attribution([a.id, b.id])
    assert (won[a.id].won_first, won[a.id].won_last) == (Decimal("1000.00"), Decimal("1000.00"))
    assert b.id not in won


def test_touches_on_a_lead_count_for_the_customer_it_became(db, org):
    a, b = campaign(db, "线索A"), campaign(db, "客户B")
    lead = new_lead("转化线索", "13600006666")
    touch(db, a, "signup", T(2026, 3, 1), lead=lead, created=True)
    touch(db, b, "response", T(2026, 4, 1), customer=org.c_rep2)
    deal(db, org.c_rep2, "800", WON_ON)
    assert cr.attribution([a.id]) == {}  # not converted yet: the lead is no customer's
    lead.converted_customer_id = org.c_rep2.id
    db.session.flush()
    won = cr.attribution([a.id, b.id])
    assert (won[a.id].won_first, won[a.id].won_last) == (Decimal("800.00"), Decimal("0.00"))
    assert (won[b.id].won_first, won[b.id].won_last) == (Decimal("0.00"), Decimal("800.00"))
    # Asked about B alone, A's earlier touch still takes the first touch.
    assert cr.attribution([b.id])[b.id].won_first == Decimal("0.00")


def test_an_untouched_deal_and_a_touch_after_the_deal_attribute_nothing(db, org):
    a = campaign(db, "无关")
    touch(db, a, "click", T(2026, 7, 2), customer=org.c_rep)
    deal(db, org.c_rep, "500", WON_ON)
    deal(db, org.c_rep2, "500", WON_ON)
    assert cr.attribution([a.id]) == {}
    assert cr.attribution([]) == {}


# --- the effect table ------------------------------------------------------------------------------
@pytest.fixture
def dataset(db, org):
    """Two campaigns with every kind of number, and a third with none (see the test)."""
    a = campaign(db, "A 春季邮件", cost=Decimal("1000"))
    b = campaign(db, "B 短信", cost=Decimal("500"), kind="sms")
    c = campaign(db, "C 未开展")
    c.starts_on = dt.date(2026, 1, 1)
    l1 = new_lead("会员线索", "13600007001")
    l2 = new_lead("报名线索", "13600007002")
    l3 = new_lead("响应线索", "13600007003")
    x = customers.create_customer(org.rep, {"name": "转化客户有限公司", "mobile": "13600007009"})
    ma_rep, ma_rep2, ma_l1 = (member(db, a, customer=org.c_rep), member(db, a, customer=org.c_rep2),
                              member(db, a, lead=l1))
    mb_rep = member(db, b, customer=org.c_rep)
    for m, channel, status in ((ma_rep, "email", "sent"), (ma_rep2, "email", "failed"),
                               (ma_l1, "email", "sent"), (ma_rep, "sms", "pending"),
                               (mb_rep, "sms", "sent")):
        db.session.add(CampaignMessage(campaign_id=m.campaign_id, member_id=m.id,
                                       channel=channel, address=f"{m.id}-{channel}",
                                       status=status))
    db.session.add(MarketingOptOut(channel="email", address="out@example.com", source="link",
                                   campaign_id=a.id))
    touch(db, a, "click", T(2026, 3, 1), customer=org.c_rep, mem=ma_rep)
    touch(db, a, "click", T(2026, 3, 2), customer=org.c_rep, mem=ma_rep)
    touch(db, a, "click", T(2026, 3, 3), lead=l1, mem=ma_l1)
    touch(db, a, "signup", T(2026, 3, 5), lead=l2, created=True)
    touch(db, a, "response", T(2026, 3, 10), customer=org.c_rep2, mem=ma_rep2)
    touch(db, a, "response", T(2026, 3, 12), lead=l3, created=True)
    touch(db, b, "click", T(2026, 5, 1), customer=org.c_rep, mem=mb_rep)
    l2.converted_customer_id = x.id
    opportunity(db, org.c_rep, T(2026, 4, 1))    # after A's first touch, before B's: A
    opportunity(db, org.c_rep2, T(2026, 2, 1))   # before A's response: nobody's
    opportunity(db, x, T(2026, 4, 15))           # on the customer A's sign-up became: A
    deal(db, org.c_rep, "10000", WON_ON)         # A first (3-01), B last (5-01)
    deal(db, x, "5000", WON_ON)                  # A first and last (through l2)
    deal(db, org.c_rep2, "7000", dt.date(2026, 1, 1))  # A's response came after: nobody's
    db.session.commit()
    return SimpleNamespace(a=a.id, b=b.id, c=c.id)


EXPECTED = {
    "A 春季邮件": dict(members=3, delivered=2, failed=1, unsubscribed=1, clicked=2, responded=3,
                   leads=2, converted=1, opportunities=2, won_first_touch="15000.00",
                   won_last_touch="5000.00", actual_cost="1000.00", cost_per_lead="500.00",
                   roi_first_touch=14.0, roi_last_touch=4.0),
    "B 短信": dict(members=1, delivered=1, failed=0, unsubscribed=0, clicked=1, responded=0,
                 leads=0, converted=0, opportunities=0, won_first_touch="0.00",
                 won_last_touch="10000.00", actual_cost="500.00", cost_per_lead=None,
                 roi_first_touch=-1.0, roi_last_touch=19.0),
    "C 未开展": dict(members=0, delivered=0, failed=0, unsubscribed=0, clicked=0, responded=0,
                 leads=0, converted=0, opportunities=0, won_first_touch="0.00",
                 won_last_touch="0.00", actual_cost=None, cost_per_lead=None,
                 roi_first_touch=None, roi_last_touch=None),
}


def _numbers(row: dict) -> dict:
    return {k: row[k] for k in EXPECTED["C 未开展"]}


def test_the_effect_numbers_of_a_hand_built_dataset(db, org, mkt, dataset):
    rows = {e.name: _numbers(e.to_dict()) for e in cr.effect(None, mkt)}
    assert rows == EXPECTED
    # Asked for some campaigns: the same numbers for those.
    only = cr.effect([dataset.b], mkt)
    assert [e.name for e in only] == ["B 短信"] and _numbers(only[0].to_dict()) == EXPECTED["B 短信"]
    assert cr.effect([2_147_483_647], mkt) == []


def _statements(db, fn) -> int:
    seen = []
    engine = db.engine

    def count(*_args):
        seen.append(1)

    event.listen(engine, "before_cursor_execute", count)
    try:
        fn()
    finally:
        event.remove(engine, "before_cursor_execute", count)
    return len(seen)


def test_the_effect_costs_the_same_statements_for_one_or_many_campaigns(db, org, mkt, dataset):
    cr.effect([dataset.a], mkt)  # the user's roles loaded once, as in a request
    few = _statements(db, lambda: cr.effect([dataset.a], mkt))
    for i in range(12):
        camp = campaign(db, f"批量{i}", cost=Decimal(i + 1))
        touch(db, camp, "click", T(2026, 3, 1 + i), customer=org.c_rep)
    db.session.commit()
    assert len(cr.effect(None, mkt)) == 15
    many = _statements(db, lambda: cr.effect(None, mkt))
    assert few == many <= 8


def test_who_reads_the_effect(db, org, mkt, dataset):
    for user in (org.admin, mkt, org.manager, org.auditor):
        assert len(cr.effect(None, user)) == 3
    for user in (org.rep, org.staff, None):
        with pytest.raises(PermissionDenied):
            cr.effect(None, user)


# --- pages and export ----------------------------------------------------------------------------
def _client(app, username):
    return login(app.test_client(), username)


ROLE_USERS = {"admin": "admin", "marketing": "mkt1", "manager": "manager1", "rep": "rep1",
              "staff": "staff1", "auditor": "auditor1"}


@pytest.mark.parametrize("role,status", [("admin", 200), ("marketing", 200), ("manager", 200),
                                         ("auditor", 200), ("rep", 403), ("staff", 403)])
def test_the_effect_page_and_its_exports_per_role(app, db, org, mkt, dataset, role, status):
    client = _client(app, ROLE_USERS[role])
    page = client.get("/campaign-effect/")
    assert page.status_code == status
    csv_resp = client.get("/campaign-effect/export.csv")
    xlsx_resp = client.get("/campaign-effect/export.xlsx")
    assert (csv_resp.status_code, xlsx_resp.status_code) == (status, status)
    if status != 200:
        return
    html = page.get_data(as_text=True)
    row = re.search(rf'<tr data-campaign="{dataset.a}">(.*?)</tr>', html, re.S).group(1)
    assert '<td class="won-first">15,000.00</td>' in row and '<td class="roi-last">400.0%</td>' \
        in row and '<td class="leads">2</td>' in row
    # Only marketing and admins open a campaign's responses from the table.
    assert (f'href="/campaign-responses/{dataset.a}"' in html) == (role in ("admin", "marketing"))
    text = csv_resp.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][:4] == ["编号", "市场活动", "类型", "状态"]
    a = next(r for r in rows if r[1] == "A 春季邮件")
    header = rows[0]
    assert {header[i]: a[i] for i in range(6, len(header))} == {
        "活动成员": "3", "已送达": "2", "失败": "1", "退订": "1", "点击": "2", "已响应": "3",
        "线索": "2", "转化客户": "1", "商机": "2", "预算": "", "实际费用": "1000.00",
        "成交金额（首次接触）": "15000.00", "成交金额（末次接触）": "5000.00", "单条线索成本": "500.00",
        "投资回报率（首次接触）": "1400.00%", "投资回报率（末次接触）": "400.00%"}
    from openpyxl import load_workbook

    sheet = load_workbook(io.BytesIO(xlsx_resp.data)).active
    values = [[c.value for c in r] for r in sheet.iter_rows()]
    assert values[0] == rows[0]
    assert [str(v) if v is not None else "" for v in
            next(r for r in values if r[1] == "A 春季邮件")][6:] == a[6:]


def test_the_export_cells_cannot_run_as_formulas(db, org, mkt):
    camp = campaign(db, "=HYPERLINK(\"http://evil\")")
    db.session.commit()
    from app.services import exports

    rows = cr.effect_rows(cr.effect([camp.id], mkt))
    assert rows[0][:2] == [camp.id, "=HYPERLINK(\"http://evil\")"]
    out = exports.table_csv(cr.effect_header(), rows)
    assert '\'=HYPERLINK(""http://evil"")' in out


@pytest.mark.parametrize("role,status", [("admin", 200), ("marketing", 200), ("manager", 403),
                                         ("auditor", 403), ("rep", 403), ("staff", 403)])
def test_the_responses_pages_per_role(app, db, org, mkt, dataset, role, status):
    client = _client(app, ROLE_USERS[role])
    assert client.get(f"/campaign-responses/{dataset.a}").status_code == status
    assert client.get(f"/campaign-responses/{dataset.a}/touches").status_code == status
    if status == 200:
        assert client.get("/campaign-responses/2147483647").status_code == 404


def test_the_member_and_touch_lists_mask_contact_details_for_marketing(app, db, org, mkt,
                                                                      dataset):
    admin = _client(app, "admin").get(f"/campaign-responses/{dataset.a}").get_data(as_text=True)
    market = _client(app, "mkt1").get(f"/campaign-responses/{dataset.a}").get_data(as_text=True)
    assert "13800138000" in admin and "138****8000" not in admin
    assert "138****8000" in market and "13800138000" not in market
    assert "136****7001" in market  # the lead member, masked too
    touches = _client(app, "mkt1").get(f"/campaign-responses/{dataset.a}/touches")
    html = touches.get_data(as_text=True)
    assert html.count("<tr data-touch=") == 6
    assert "138****8000" in html and "13800138000" not in html


def test_marking_and_rotating_through_the_page(app, db, org, mkt):
    camp = campaign(db, "页面活动")
    m = member(db, camp, customer=org.c_rep)
    db.session.commit()
    client = _client(app, "mkt1")
    token = csrf_token(client, f"/campaign-responses/{camp.id}")
    resp = client.post(f"/campaign-responses/{camp.id}/members/{m.id}/respond",
                       data={"csrf_token": token, "note": "电话回访"})
    assert resp.status_code == 302
    assert touches_of(db, camp.id) == [("response", org.c_rep.id, None, m.id, False)]
    resp = client.post(f"/campaign-responses/{camp.id}/respond",
                       data={"csrf_token": token, "person_name": "页面访客",
                             "mobile": "13600008888"})
    assert resp.status_code == 302
    assert touches_of(db, camp.id)[-1][4] is True
    resp = client.post(f"/campaign-responses/{camp.id}/token", data={"csrf_token": token})
    assert resp.status_code == 302
    db.session.commit()
    shown = client.get(f"/campaign-responses/{camp.id}").get_data(as_text=True)
    assert db.session.get(Campaign, camp.id).token in shown
    # Without the CSRF token nothing is written.
    n = len(touches_of(db, camp.id))
    client.post(f"/campaign-responses/{camp.id}/members/{m.id}/respond", data={})
    assert len(touches_of(db, camp.id)) == n


def test_an_owner_marks_from_their_own_list(app, db, org, mkt):
    camp = campaign(db, "答谢会")
    mine = member(db, camp, customer=org.c_rep)
    other = member(db, camp, customer=org.c_rep2)
    db.session.commit()
    rep = _client(app, "rep1")
    page = rep.get("/campaign-responses/mine")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert f'data-member="{mine.id}"' in html and f'data-member="{other.id}"' not in html
    token = csrf_token(rep, "/campaign-responses/mine")
    assert rep.post(f"/campaign-responses/{camp.id}/members/{other.id}/respond",
                    data={"csrf_token": token}).status_code == 404
    assert rep.post(f"/campaign-responses/{camp.id}/members/{mine.id}/respond",
                    data={"csrf_token": token, "back": "mine"}).status_code == 302
    assert touches_of(db, camp.id) == [("response", org.c_rep.id, None, mine.id, False)]
    for username in ("auditor1", "staff1"):
        assert _client(app, username).get("/campaign-responses/mine").status_code == 403


# --- the API ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("role,status", [("admin", 200), ("marketing", 200), ("manager", 200),
                                         ("auditor", 200), ("rep", 403), ("staff", 403)])
def test_the_stats_api_per_role(api, db, org, mkt, dataset, role, status):
    call = api(ROLE_USERS[role])
    resp = call("GET", f"/api/v1/campaigns/{dataset.a}/stats")
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    if status != 200:
        assert body["code"] == "forbidden"
        return
    assert _numbers(body) == EXPECTED["A 春季邮件"]
    assert (body["name"], body["kind"], body["attribution_days"]) == ("A 春季邮件", "email", 180)
    missing = call("GET", "/api/v1/campaigns/2147483647/stats")
    assert (missing.status_code, missing.get_json()["code"]) == (404, "not_found")


def test_the_responses_api(api, db, org, mkt):
    camp = campaign(db, "接口活动")
    m = member(db, camp, customer=org.c_rep)
    db.session.commit()
    path = f"/api/v1/campaigns/{camp.id}/responses"
    resp = api("rep1")("POST", path, json={"member_id": m.id, "note": "回电"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"touch_id": resp.get_json()["touch_id"], "record": "customer",
                               "record_id": org.c_rep.id, "lead_created": False}
    refused = api("rep2")("POST", path, json={"member_id": m.id})
    assert (refused.status_code, refused.get_json()["code"]) == (404, "out_of_scope")
    new = api("mkt1")("POST", path, json={"person_name": "接口访客", "mobile": "13600009999"})
    assert new.status_code == 200 and new.get_json()["lead_created"] is True
    for username, status, code in (("rep1", 403, "forbidden"), ("auditor1", 403, "forbidden"),
                                   ("staff1", 403, "forbidden")):
        resp = api(username)("POST", path, json={"person_name": "甲", "mobile": "13600009998"})
        assert (resp.status_code, resp.get_json()["code"]) == (status, code), username
    both = api("mkt1")("POST", path, json={"member_id": m.id, "mobile": "13600009997"})
    assert (both.status_code, list(both.get_json()["fields"])) == (400, ["member_id"])
    unknown = api("mkt1")("POST", path, json={"member_id": m.id, "owner_id": 1})
    assert (unknown.status_code, list(unknown.get_json()["fields"])) == (400, ["owner_id"])
    assert [t[0] for t in touches_of(db, camp.id)] == ["response", "response"]


def test_the_stats_and_responses_operations_are_in_the_spec(api, db, org):
    spec = api("admin")("GET", "/api/v1/_openapi").get_json()
    stats = spec["paths"]["/api/v1/campaigns/{pk}/stats"]["get"]
    assert stats["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CampaignStats"}
    post = spec["paths"]["/api/v1/campaigns/{pk}/responses"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CampaignResponseRequest"}
    assert "roi_first_touch" in spec["components"]["schemas"]["CampaignStats"]["properties"]
