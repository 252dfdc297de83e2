"""Marketing demo data (issue 16): what 市场专员 marketing1 finds after `flask crm init --demo`.

Tags on customers and leads, the segment 华东 A/B 级客户, two finished campaigns whose effect
table is full (members, delivered, clicked, responded, leads, converted, opportunities, won
amount, cost per lead, ROI) and one running campaign with its SMS waiting in the outbox.

Everything goes through the services as people would do it — marketing1 builds and launches,
visitors sign up through the capture form with the campaign's token, reps claim, convert and
win — with one exception: the demo has no mail server or SMS gateway, so the finished
campaigns' outbox rows are marked delivered in one UPDATE (see `_mark_delivered`).

The campaigns ran one to three months ago: touches are backdated through the services' `now=`
(well inside the 180-day attribution window before today's won deals). Launch has no `now=`,
so launched_at is the build time; the campaign's dates, the messages' sent_at and every touch
tell when it ran. The build stays small (about 200 members per campaign): it runs in
`make start` and in tests/test_demo.py.
"""
from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import exists, func, select, update

from app.extensions import db
from app.models import CampaignMember, CampaignMessage, Customer, Deal, Ownership, User
from app.models.marketing import RecordTag
from app.models.customer import utcnow
from app.services.errors import GuishuError

TAGS = (("重点客户", "#d4380d", "年采购额大、需要重点维护的客户"),
        ("制造业", "#1d39c4", "制造业客户与线索，智能制造相关活动的对象"),
        ("展会来访", "#d48806", "在展会展台登记或到访过的客户与线索"))
SEGMENT = "华东 A/B 级客户"
EAST_PROVINCES = ("上海市", "江苏省", "浙江省", "山东省", "安徽省", "福建省")
EXPO = "2026 华东智能制造展"
MAIL = "秋季新品邮件推广"
SEMINAR = "12 月线上研讨会"
EXPO_URL = "https://expo.guishu.cn/2026-smart-manufacturing"
MAIL_URL = "https://www.guishu.cn/products/autumn-2026"
# The reps who follow up (the demo's opportunity reps: the kanban shows their work).
FOLLOW_UP_REPS = ("rep1", "rep2", "rep3", "rep5")

# Sign-ups through 官网咨询表单 with the campaign's token: (campaign, name, company, mobile,
# e-mail, province, city, notes, converted and won for this amount or None).
SIGNUPS = [
    (EXPO, "顾海峰", "常州锐科自动化设备有限公司", "19850000001", "guhf@rk-auto.example.com",
     "江苏", "常州", "展前预约参观，想看产线数字化方案", "168000"),
    (EXPO, "蒋雅琴", "嘉兴恒润精工有限公司", "19850000002", "jiangyq@hrjg.example.com",
     "浙江", "嘉兴", "申请展会门票", None),
    (EXPO, "马国庆", "临沂鲁南机械制造有限公司", "19850000003", None,
     "山东", "临沂", "希望展会上约技术交流", None),
    (MAIL, "唐文静", "昆山新桥电子科技有限公司", "19850000011", "tangwj@xq-e.example.com",
     "江苏", "昆山", "看到邮件，想试用新版数据分析模块", "96000"),
    (MAIL, "韩志强", "台州海阳塑业有限公司", "19850000012", "hanzq@hyplastic.example.com",
     "浙江", "台州", "请发一份秋季新品报价", None),
    (MAIL, "彭丽华", "芜湖江岸物流有限公司", "19850000013", None,
     "安徽", "芜湖", "想了解云服务的迁移费用", None),
]
# Visitors at the stand who were nobody's record yet, entered by marketing1 from the badge
# scans: (name, company, mobile, note, converted and won for this amount or None).
STAND_VISITORS = [
    ("曹建军", "扬州汇通精密模具有限公司", "19850000021", "展台扫码，关注 MES 排程", "215000"),
    ("邓晓燕", "泉州闽兴鞋业有限公司", "19850000022", "展台咨询 ERP 二期", None),
]


def _users() -> dict[str, User]:
    return {u.username: u for u in db.session.execute(select(User)).scalars()}


def _tags(marketing: User) -> dict[str, int]:
    """The tag list, and tags on some customers: 重点客户 on locked key accounts, 制造业 on
    manufacturing customers of 华东."""
    from app.services import tags

    made = {name: tags.create_tag(marketing, {"name": name, "color": color,
                                              "description": text}).id
            for name, color, text in TAGS}
    key_accounts = list(db.session.execute(
        select(Customer.id).join(Ownership, Ownership.customer_id == Customer.id)
        .where(Ownership.locked.is_(True)).order_by(Customer.id).limit(20)).scalars())
    makers = list(db.session.execute(
        select(Customer.id).join(Ownership, Ownership.customer_id == Customer.id)
        .where(Customer.industry == "制造业", Customer.province.in_(EAST_PROVINCES),
               Ownership.owner_id.is_not(None)).order_by(Customer.id).limit(40)).scalars())
    if key_accounts:
        tags.tag_records(marketing, "customer", key_accounts, made["重点客户"])
    if makers:
        tags.tag_records(marketing, "customer", makers, made["制造业"])
    return made


def _mark_delivered(campaign_id: int, sent_at: dt.datetime) -> int:
    """The one direct write of the marketing demo: the demo has no mail server or SMS gateway
    (`make start` runs none), so the finished campaigns' queued messages are marked sent as
    the delivery job (campaign_sending.deliver) would have, at the time the campaign went
    out. Rendering is skipped: a message's text is made at delivery from the template."""
    done = db.session.execute(
        update(CampaignMessage).where(CampaignMessage.campaign_id == campaign_id,
                                      CampaignMessage.status == "pending")
        .values(status="sent", sent_at=sent_at, attempts=1)
        .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return done


def _members(campaign_id: int, sent_at: dt.datetime, limit: int,
             offset: int = 0) -> list[CampaignMember]:
    """Customer members with an e-mail sent, in a stable order — those without a deal won
    since the campaign: the bulk demo's deals were never its doing, and a touch before them
    would credit it with their amounts (the effect table's ROI would be thousands of %)."""
    later_deal = exists().where(Deal.customer_id == CampaignMember.customer_id,
                                Deal.won_on >= (sent_at - dt.timedelta(days=1)).date())
    return list(db.session.execute(
        select(CampaignMember).join(CampaignMessage, CampaignMessage.member_id == CampaignMember.id)
        .where(CampaignMember.campaign_id == campaign_id, CampaignMember.customer_id.is_not(None),
               CampaignMessage.channel == "email", CampaignMessage.status == "sent",
               ~later_deal)
        .order_by(CampaignMember.id).offset(offset).limit(limit)).scalars())


def _convert_and_win(users: dict[str, User], lead_id: int, title: str,
                     amount: Optional[str]) -> tuple[int, int]:
    """A follow-up rep claims the pool lead and converts it; with an amount, its opportunity
    is won (the deal). Reps over a cap are passed over. (converted, won)."""
    from app.services import leads, opportunities

    for who in FOLLOW_UP_REPS:
        rep = users[who]
        try:
            leads.claim_leads(rep, [lead_id])
        except GuishuError:
            db.session.rollback()
            continue
        try:
            done = leads.convert_lead(rep, lead_id, confirm_duplicates=True,
                                      opportunity={"title": title, "amount": amount or "30000"})
        except GuishuError:
            db.session.rollback()
            return 0, 0
        if amount and done.get("opportunity_id"):
            try:
                opportunities.win(rep, done["opportunity_id"])
            except GuishuError:
                db.session.rollback()
                return 1, 0
            return 1, 1
        return 1, 0
    return 0, 0


def _win_on_member(member: CampaignMember, title: str, amount: str) -> int:
    """The customer member's owner opens an opportunity on it and wins it (1), when the owner
    is a follow-up rep and the customer can take one (else 0)."""
    from app.services import opportunities

    owner_id = db.session.execute(select(Ownership.owner_id).where(
        Ownership.customer_id == member.customer_id)).scalar()
    owner = db.session.get(User, owner_id) if owner_id else None
    if owner is None or owner.username not in FOLLOW_UP_REPS:
        return 0
    try:
        opp = opportunities.create(owner, {"customer_id": member.customer_id, "title": title,
                                           "product_line": "MES", "amount": amount})
        opportunities.win(owner, opp.id)
    except GuishuError:
        db.session.rollback()
        return 0
    return 1


def _finished_campaign(users, segment_id: int, *, name: str, kind: str, days_ago: int,
                       budget: str, cost: str, subject: str, body: str, sms: Optional[str],
                       url: str, clicks: int, responses: int, response_note: str,
                       form_token: str, member_deal: Optional[tuple[str, str]]) -> dict:
    """One campaign launched to the segment `days_ago` days ago, delivered, clicked, answered
    (sign-ups through the capture form, responses marked by hand), its leads converted and
    some won, and finished."""
    from app.services import campaign_responses, campaign_sending, campaigns, lead_capture

    marketing = users["marketing1"]
    today = utcnow()
    sent_at = today - dt.timedelta(days=days_ago)
    campaign = campaigns.create(marketing, {
        "name": name, "kind": kind, "segment_id": segment_id,
        "starts_on": (sent_at + dt.timedelta(days=14 if kind == "exhibition" else 0)).date(),
        "ends_on": (sent_at + dt.timedelta(days=16 if kind == "exhibition" else 14)).date(),
        "budget": budget, "actual_cost": cost,
        "description": f"{name}：面向华东 A/B 级客户"})
    campaign_sending.set_templates(campaign.id, marketing, email_subject=subject,
                                   email_body=body, sms_body=sms)
    campaign = campaign_responses.rotate_campaign_token(marketing, campaign.id)
    campaigns.launch(campaign.id, marketing)
    delivered = _mark_delivered(campaign.id, sent_at)

    # Clicks, a few hours to two days after the mail went out.
    clicked = _members(campaign.id, sent_at, clicks)
    for i, member in enumerate(clicked):
        campaign_responses.record_click(campaign_responses.click_token(member.id, url),
                                        now=sent_at + dt.timedelta(hours=3 + 11 * (i % 5)))
    # Responses marked by hand: members who came to the stand / wrote back.
    answered = _members(campaign.id, sent_at, responses, offset=clicks // 2)
    for i, member in enumerate(answered):
        campaign_responses.mark_member_response(
            marketing, member.id, response_note,
            now=sent_at + dt.timedelta(days=(14 if kind == "exhibition" else 3) + i % 2,
                                       hours=2))
    # Sign-ups through the capture form's campaign link; the pool leads they make are
    # claimed and converted by the reps, and some of them won.
    converted = won = 0
    lead_ids: list[int] = []
    for i, (campaign_name, person, company, mobile, email, province, city, notes, amount) \
            in enumerate(s for s in SIGNUPS if s[0] == name):
        visitor = {"name": person, "company": company, "mobile": mobile,
                   "province": province, "city": city, "notes": notes, "consent": "y"}
        if email:
            visitor["email"] = email
        done = lead_capture.submit(form_token, visitor,
            # A documentation address per visitor (RFC 5737): the form's rate is per address.
            f"203.0.113.{len(lead_ids) + (10 if kind == 'exhibition' else 40)}",
            now=sent_at + dt.timedelta(days=1 + i, hours=5), campaign_token=campaign.token)
        if done.lead_id:
            lead_ids.append(done.lead_id)
            c, w = _convert_and_win(users, done.lead_id, f"{name}：{company}", amount)
            converted, won = converted + c, won + w
    if kind == "exhibition":
        for i, (person, company, mobile, note, amount) in enumerate(STAND_VISITORS):
            got = campaign_responses.record_response(
                marketing, campaign.id, {"person_name": person, "company_name": company,
                                         "mobile": mobile},
                note=note, now=sent_at + dt.timedelta(days=14 + i, hours=3))
            if got.lead_created:
                lead_ids.append(got.record_id)
                c, w = _convert_and_win(users, got.record_id, f"{name}：{company}", amount)
                converted, won = converted + c, won + w
    # A customer member who clicked buys too (its owner's opportunity, won today).
    if member_deal:
        title, amount = member_deal
        for member in clicked:
            if _win_on_member(member, title, amount):
                won += 1
                break
    campaigns.finish(campaign.id, marketing)
    return {"id": campaign.id, "delivered": delivered, "leads": lead_ids,
            "converted": converted, "won": won}


def build_marketing_demo(form_name: str) -> dict:
    """Tags, a segment and three campaigns (two finished, one running) through the services;
    sign-ups come through the capture form `form_name` (官网咨询表单). Counts for the demo's
    summary."""
    from app.models import CaptureForm, Opportunity
    from app.services import (campaign_sending, campaigns, marketing_segments,
                              tags as tag_service)

    form_token = db.session.execute(select(CaptureForm.token).where(
        CaptureForm.name == form_name)).scalar_one()
    opportunities_before = db.session.execute(
        select(func.count()).select_from(Opportunity)).scalar_one()
    users = _users()
    marketing = users["marketing1"]
    tag_ids = _tags(marketing)
    segment = marketing_segments.create_segment(marketing, {
        "name": SEGMENT, "record_type": "customer",
        "description": "华东六省市 A、B 级的在管客户：展会邀约与新品推广的对象",
        "criteria": {"provinces": list(EAST_PROVINCES), "grades": ["A", "B"]}})
    expo = _finished_campaign(
        users, segment.id, name=EXPO, kind="exhibition", days_ago=90,
        budget="80000", cost="68000",
        subject="{company}：诚邀您参观 2026 华东智能制造展",
        body="{name}您好：\n\n我们将在 2026 华东智能制造展（上海国家会展中心）展出新一代"
             "MES 与数据分析方案，诚邀您莅临 A3 馆 215 展台。\n预约参观：" + EXPO_URL +
             "\n\n您的客户经理 {owner}",
        sms="{name}您好，诚邀您参观2026华东智能制造展A3馆215展台，详情见邮件",
        url=EXPO_URL, clicks=24, responses=10, response_note="展会当天到访展台，索取方案资料",
        form_token=form_token, member_deal=("展会后签约：产线排程模块", "88000"))
    mail = _finished_campaign(
        users, segment.id, name=MAIL, kind="email", days_ago=45,
        budget="12000", cost="9800",
        subject="秋季新品：数据分析模块与云服务升级",
        body="{name}您好：\n\n秋季新品已上线：数据分析模块、云服务一键迁移。了解详情："
             + MAIL_URL + "\n\n如需演示，请回复本邮件或联系 {owner}。",
        sms=None, url=MAIL_URL, clicks=30, responses=6, response_note="回复邮件，约了线上演示",
        form_token=form_token, member_deal=("秋季新品：数据分析模块", "56000"))
    # The 展会来访 tag on the stand's visitors and the exhibition's sign-ups.
    tag_service.tag_records(marketing, "lead", expo["leads"], tag_ids["展会来访"])
    # One reader unsubscribes through the link in the autumn mail.
    message = db.session.execute(select(CampaignMessage).where(
        CampaignMessage.campaign_id == mail["id"], CampaignMessage.channel == "email")
        .order_by(CampaignMessage.id.desc()).limit(1)).scalar_one()
    campaign_sending.unsubscribe(campaign_sending.unsubscribe_token(message))

    # The running seminar: the manufacturing customers added by hand, an SMS invitation
    # waiting in the outbox for the delivery job (its send window).
    seminar = campaigns.create(marketing, {
        "name": SEMINAR, "kind": "seminar",
        "starts_on": (utcnow() + dt.timedelta(days=10)).date(),
        "ends_on": (utcnow() + dt.timedelta(days=10)).date(), "budget": "5000",
        "description": "线上研讨会：制造业数字化转型实践"})
    makers = list(db.session.execute(select(Customer.id).join(
        RecordTag, RecordTag.customer_id == Customer.id).where(
        RecordTag.tag_id == tag_ids["制造业"]).order_by(Customer.id)).scalars())
    campaigns.add_members(seminar.id, marketing, customer_ids=makers)
    campaign_sending.set_templates(seminar.id, marketing,
                                   sms_body="{name}您好，12月线上研讨会“制造业数字化转型实践”"
                                            "开放报名，详询{owner}")
    launched = campaigns.launch(seminar.id, marketing)
    return {"tags": len(tag_ids), "segments": 1, "campaigns": 3,
            "campaign_members": sum(campaigns.member_counts(c)["total"]
                                    for c in (expo["id"], mail["id"], seminar.id)),
            "campaign_leads": len(expo["leads"]) + len(mail["leads"]),
            "campaign_deals": expo["won"] + mail["won"], "campaign_pending": launched.queued,
            "campaign_opportunities": db.session.execute(select(func.count()).select_from(
                Opportunity)).scalar_one() - opportunities_before,
            "converted_customers": expo["converted"] + mail["converted"]}

