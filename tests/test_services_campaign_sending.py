"""Campaign sending: templates (placeholders refused by field), set-based queueing once per
member and channel (opt-outs, missing addresses and consent skipped), delivery in the send
window over real SMTP / SMS doubles with care's retries, the opt-out at send time, signed
unsubscribe links, TD replies on both webhook addresses, the pages by role, and the worker."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from app.models import AuditLog, Contact, Customer
from app.models.marketing import (Campaign, CampaignMember, CampaignMessage, MarketingOptOut,
                                  MarketingSettings)
from app.security import ROLE_MARKETING
from app.services import api_keys, campaign_sending as cs, customers, leads
from app.services.errors import NotFound, PermissionDenied, ValidationFailed
from tests.care_fixtures import SENT_SMS, SmtpServer
from tests.conftest import login, make_user

DAY = dt.date(2027, 3, 10)


def at(hour: int, minute: int = 0) -> dt.datetime:
    """Naive UTC for a Beijing wall-clock time on DAY."""
    return dt.datetime(DAY.year, DAY.month, DAY.day, hour, minute) - dt.timedelta(hours=8)


@pytest.fixture
def marketer(db, org):
    return make_user("mkt1", ROLE_MARKETING)


@pytest.fixture
def smtp(app, monkeypatch):
    with SmtpServer() as server:
        monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(app.config, "SMTP_PORT", server.port)
        yield server.inbox


@pytest.fixture
def sms(app, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_GATEWAY", "tests.care_fixtures:RecordingGateway")
    SENT_SMS.clear()
    return SENT_SMS


@pytest.fixture
def world(db, org, marketer):
    """A running campaign with both channels and members: c_rep (own mobile), c_north (own
    e-mail), a company whose primary contact has the e-mail, a lead with consent and one
    without."""
    company = customers.create_customer(org.rep, {"name": "宁波海通贸易有限公司"})
    customers.add_contact(org.rep, company.id, {"name": "孙丽", "email": "sunli@haitong.cn",
                                                 "mobile": "13500135000", "is_primary": True})
    consented = leads.create_lead(org.rep, {"person_name": "周杰", "company_name": "周氏五金",
                                            "email": "zhoujie@example.com",
                                            "mobile": "13300133000"})
    silent = leads.create_lead(org.rep, {"person_name": "吴刚", "email": "wugang@example.com"})
    db.session.execute(update(type(consented)).where(type(consented).id == consented.id)
                       .values(consent_version="v1", consented_at=dt.datetime(2026, 11, 1)))
    campaign = Campaign(name="春季促销", kind="email", status="running", owner_id=marketer.id,
                        email_subject="{name}，春季优惠", email_body="{name}您好，{company}专享，{owner}敬上",
                        sms_body="{name}您好，春季优惠", send_from_hour=9, send_to_hour=20)
    db.session.add(campaign)
    db.session.flush()
    members = {}
    for key, kind, rid in (("c_rep", "customer", org.c_rep.id),
                           ("c_north", "customer", org.c_north.id),
                           ("company", "customer", company.id),
                           ("consented", "lead", consented.id), ("silent", "lead", silent.id)):
        m = CampaignMember(campaign_id=campaign.id, source="manual",
                           **{f"{kind}_id": rid})
        db.session.add(m)
        db.session.flush()
        members[key] = m.id
    db.session.commit()
    return campaign.id, members, company.id, consented.id, silent.id


def messages(db, campaign_id) -> list[tuple]:
    db.session.expire_all()
    return [(m.member_id, m.channel, m.address, m.status) for m in db.session.execute(
        select(CampaignMessage).where(CampaignMessage.campaign_id == campaign_id)
        .order_by(CampaignMessage.member_id, CampaignMessage.channel)).scalars()]


# --- templates ----------------------------------------------------------------------------
def test_templates_refuse_unknown_placeholders_and_bad_windows_by_field(db, org, marketer,
                                                                       world):
    cid = world[0]
    with pytest.raises(ValidationFailed) as exc:
        cs.set_templates(cid, marketer, email_subject="Hi {nmae}", email_body="x {",
                         sms_body="a" * 300, send_from_hour=20, send_to_hour=9)
    assert exc.value.fields == {
        "email_subject": "未知占位符 {nmae}；可用：{name}、{company}、{owner}",
        "email_body": "花括号不成对：占位符写作 {name}，字面花括号写作 {{ }}",
        "sms_body": "不能超过 293 个字符",
        "send_to_hour": "发送时段必须在开始之后结束"}
    with pytest.raises(ValidationFailed) as exc:
        cs.set_templates(cid, marketer, email_body="只有正文", send_from_hour=-1,
                         send_to_hour="x")
    assert exc.value.fields == {"email_subject": "邮件模板需要主题",
                                "send_from_hour": "小时必须在 0 到 23 之间",
                                "send_to_hour": "小时必须在 1 到 24 之间"}


@pytest.mark.parametrize("who", ["rep", "manager", "staff", "auditor"])
def test_only_marketing_and_admins_set_templates(db, org, world, who):
    with pytest.raises(PermissionDenied):
        cs.set_templates(world[0], getattr(org, who), sms_body="hi")


def test_templates_saved_and_audited(db, org, marketer, world):
    campaign = cs.set_templates(world[0], marketer, email_subject="", email_body="",
                                sms_body=" {name}，周末见 ", send_from_hour="10",
                                send_to_hour=18)
    assert (campaign.email_body, campaign.sms_body, campaign.send_from_hour,
            campaign.send_to_hour) == (None, "{name}，周末见", 10, 18)
    assert cs.channels_of(campaign) == ["sms"]
    entry = db.session.execute(select(AuditLog).where(AuditLog.object_type == "campaign")
                               ).scalar_one()
    assert entry.actor_id == marketer.id and entry.changes["send_from_hour"] == [9, 10]
    cs.set_templates(world[0], org.admin, sms_body="x")  # admins too


# --- queueing -----------------------------------------------------------------------------
def test_queue_once_per_member_and_channel_skipping_what_the_law_and_the_list_say(db, org,
                                                                                 world):
    cid, m, *_ = world
    cs.record_optout("sms", "+8613800138000", "manual")  # c_rep's mobile
    db.session.commit()
    assert cs.queue_messages(cid) == 5
    assert messages(db, cid) == sorted([
        (m["c_north"], "email", "contact@hualian.cn", "pending"),
        (m["company"], "email", "sunli@haitong.cn", "pending"),  # the primary contact's
        (m["company"], "sms", "+8613500135000", "pending"),
        (m["consented"], "email", "zhoujie@example.com", "pending"),
        (m["consented"], "sms", "+8613300133000", "pending"),
    ])
    assert cs.queue_messages(cid) == 0  # idempotent
    assert len(messages(db, cid)) == 5


def test_without_the_consent_rule_leads_without_consent_are_queued(db, org, world):
    cid, m, *_ = world
    db.session.execute(update(MarketingSettings).values(require_consent=False))
    cs.settings().require_consent = False
    db.session.commit()
    assert cs.queue_messages(cid) == 7
    assert (m["silent"], "email", "wugang@example.com", "pending") in messages(db, cid)


# --- delivery -----------------------------------------------------------------------------
def test_delivery_renders_sends_within_the_window_and_links_an_unsubscribe(app, db, org, world,
                                                                           smtp, sms):
    cid, m, *_ = world
    cs.queue_messages(cid)
    assert cs.deliver(now=at(8, 59)).sent == 0  # before the window
    result = cs.deliver(now=at(9, 0))
    assert result.summary() == {"sent": 6, "retrying": 0, "failed": 0, "cancelled": 0,
                                "interrupted": 0}
    assert sorted(SENT_SMS) == [("+8613300133000", "周杰您好，春季优惠 回复TD退订"),
                                ("+8613500135000", "孙丽您好，春季优惠 回复TD退订"),
                                ("+8613800138000", "杭州云帆科技有限公司您好，春季优惠 回复TD退订")]
    mails = {msg["To"]: msg for msg in smtp.messages}
    sun = mails["sunli@haitong.cn"]
    assert sun["Subject"] == "孙丽，春季优惠"
    body = sun.get_content()
    assert body.startswith(f"孙丽您好，宁波海通贸易有限公司专享，{org.rep.display_name}敬上\n\n--\n不想再收到此类邮件？点此退订：http://localhost:5000/u/")
    token = re.search(r"http://localhost:5000/u/(\S+)", body).group(1)
    data = cs.read_token(token)
    assert (data.channel, data.address, data.customer_id, data.lead_id, data.campaign_id) == (
        "email", "sunli@haitong.cn", world[2], None, cid)
    assert {s for *_, s in messages(db, cid)} == {"sent"}
    assert cs.deliver(now=at(10)).sent == 0  # never twice


def test_a_finished_campaign_sends_nothing(db, org, world, smtp):
    cs.queue_messages(world[0])
    db.session.execute(update(Campaign).values(status="finished"))
    db.session.commit()
    assert cs.deliver(now=at(10)).sent == 0


def test_failures_retry_with_cares_backoff_then_fail(app, db, org, world, monkeypatch):
    from app.services import care

    cid = world[0]
    db.session.execute(update(Campaign).values(sms_body=None))
    db.session.commit()
    cs.queue_messages(cid)
    monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
    from tests.care_fixtures import free_port

    monkeypatch.setitem(app.config, "SMTP_PORT", free_port())  # nothing listens
    max_attempts = care.settings().max_attempts
    assert cs.deliver(now=at(10)).retrying == 3
    row = db.session.execute(select(CampaignMessage).order_by(CampaignMessage.id)).scalars().first()
    assert (row.attempts, row.next_attempt_at) == (1, at(10) + dt.timedelta(minutes=5))
    assert cs.deliver(now=at(10, 4)).summary()["retrying"] == 0  # not due yet
    now = at(10)
    for attempt in range(2, max_attempts + 1):
        now = now + care.backoff(attempt - 1)
        cs.deliver(now=now)
    assert {s for *_, s in messages(db, cid)} == {"failed"}
    db.session.refresh(row)
    assert row.attempts == max_attempts and "邮件服务器不可达" in row.last_error


def test_an_opt_out_between_queue_and_send_wins(db, org, world, smtp, sms):
    cid, m, *_ = world
    cs.queue_messages(cid)
    cs.record_optout("email", "sunli@haitong.cn", "link")
    db.session.commit()
    result = cs.deliver(now=at(12))
    assert (result.sent, result.cancelled) == (5, 1)
    assert (m["company"], "email", "sunli@haitong.cn", "cancelled") in messages(db, cid)
    assert "sunli@haitong.cn" not in {msg["To"] for msg in smtp.messages}


def test_an_interrupted_send_is_failed_not_repeated(db, org, world, smtp):
    cid = world[0]
    db.session.execute(update(Campaign).values(sms_body=None))
    db.session.commit()
    cs.queue_messages(cid)
    first = db.session.execute(select(CampaignMessage.id).order_by(CampaignMessage.id)).scalar()
    assert cs._claim(first, at(10))  # a worker took it and died
    assert not cs._claim(first, at(10, 5))  # nobody else takes it meanwhile
    result = cs.deliver(now=at(10, 20))
    assert (result.interrupted, result.sent) == (1, 2)
    db.session.expire_all()
    assert db.session.get(CampaignMessage, first).status == "failed"
    assert len(smtp.messages) == 2


def test_retry_and_cancel_by_marketing_only_and_audited(db, org, marketer, world):
    cid = world[0]
    cs.queue_messages(cid)
    ids = [i for i, in db.session.execute(select(CampaignMessage.id)
                                          .order_by(CampaignMessage.id)).all()]
    with pytest.raises(PermissionDenied):
        cs.cancel(org.manager, cid, ids)
    assert cs.cancel(marketer, cid, ids[:2]) == 2
    assert cs.cancel(marketer, cid, ids[:2]) == 0  # no longer pending
    assert cs.retry(marketer, cid, ids) == 2
    assert cs.status_counts(cid) == {"pending": 6, "sent": 0, "failed": 0, "cancelled": 0}
    assert [a for a, in db.session.execute(select(AuditLog.action).where(
        AuditLog.object_type == "campaign_message").order_by(AuditLog.id))] == \
        ["cancel", "cancel", "retry", "retry"]
    with pytest.raises(ValidationFailed):
        cs.retry(marketer, cid, [2 ** 40])


# --- opt-outs and tokens ------------------------------------------------------------------
def test_manual_opt_outs_are_normalised_unique_and_audited(db, org, marketer):
    row = cs.add_optout(org.staff, "email", " Foo@Example.COM ")
    assert (row.address, row.source, row.recorded_by_id) == ("foo@example.com", "manual",
                                                             org.staff.id)
    with pytest.raises(Exception) as exc:
        cs.add_optout(marketer, "email", "foo@example.com")
    assert getattr(exc.value, "code", None) == "already_opted_out"
    with pytest.raises(ValidationFailed) as exc:
        cs.add_optout(marketer, "fax", "1")
    assert list(exc.value.fields) == ["channel"]
    with pytest.raises(ValidationFailed) as exc:
        cs.add_optout(marketer, "sms", "12345")
    assert list(exc.value.fields) == ["address"]
    for who in ("rep", "manager", "auditor"):
        with pytest.raises(PermissionDenied):
            cs.add_optout(getattr(org, who), "sms", "13800138000")
    cs.remove_optout(marketer, row.id)
    assert db.session.execute(select(MarketingOptOut)).first() is None
    assert [a for a, in db.session.execute(select(AuditLog.action).where(
        AuditLog.object_type == "marketing_optout").order_by(AuditLog.id))] == \
        ["opt_out", "delete"]
    with pytest.raises(NotFound):
        cs.remove_optout(marketer, row.id)


@pytest.mark.parametrize("token", ["", "x" * 401, "abc", "eyJjaCI6ImVtYWlsIn0.forged",
                                   "\x00", "%ff"])
def test_a_token_we_did_not_sign_is_not_found(db, token):
    with pytest.raises(NotFound):
        cs.read_token(token)


def test_a_token_signed_with_another_salt_is_refused(app, db):
    from itsdangerous import URLSafeSerializer

    other = URLSafeSerializer(app.config["SECRET_KEY"], salt="other").dumps(
        {"ch": "email", "a": "x@y.cn"})
    with pytest.raises(NotFound):
        cs.read_token(other)


@pytest.mark.parametrize("text,expected", [("TD", True), (" td ", True), ("ＴＤ", True),
                                           ("退订", True), ("退订。", True), ("TD退订", False),
                                           ("好的", False), ("std", False)])
def test_td_replies(text, expected):
    assert cs.is_unsubscribe_reply(text) is expected


# --- pages --------------------------------------------------------------------------------
def _token(db, world):
    cs.queue_messages(world[0])
    message = db.session.execute(select(CampaignMessage).where(
        CampaignMessage.address == "sunli@haitong.cn")).scalar_one()
    return cs.unsubscribe_token(message)


def test_unsubscribe_page_asks_then_records_once(app, db, org, world):
    token = _token(db, world)
    client = app.test_client()
    page = client.get(f"/u/{token}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "s***@haitong.cn" in html and "sunli@haitong.cn" not in html
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post(f"/u/{token}").status_code == 400  # no CSRF token
    for _ in range(2):
        done = client.post(f"/u/{token}", data={"csrf_token": csrf})
        assert done.status_code == 200 and 'id="unsubscribe-done"' in done.get_data(as_text=True)
    rows = db.session.execute(select(MarketingOptOut)).scalars().all()
    assert [(r.channel, r.address, r.source, r.customer_id, r.campaign_id) for r in rows] == [
        ("email", "sunli@haitong.cn", "link", world[2], world[0])]
    assert len(db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "marketing_optout")).all()) == 1
    assert cs.queue_messages(world[0]) == 0


@pytest.mark.parametrize("path", ["/u/forged", "/u/" + "a" * 5000, "/u/%00", "/u/a.b.c"])
def test_bad_unsubscribe_links_are_a_404_page(app, db, path):
    resp = app.test_client().get(path)
    assert resp.status_code == 404 and 'id="unsubscribe-invalid"' in resp.get_data(as_text=True)


ROLE_USERS = ("admin", "manager", "rep", "staff", "auditor", "marketing")


def _client(app, org, marketer, role):
    user = marketer if role == "marketing" else getattr(org, role)
    return login(app.test_client(), user.username)


@pytest.mark.parametrize("role,expected", [("admin", 200), ("marketing", 200), ("staff", 200),
                                           ("manager", 403), ("rep", 403), ("auditor", 403)])
def test_opt_out_list_by_role_masked(app, db, org, marketer, role, expected):
    cs.record_optout("sms", "+8613800138000", "sms_reply", customer_id=org.c_rep.id)
    db.session.commit()
    client = _client(app, org, marketer, role)
    resp = client.get("/marketing/optouts/")
    assert resp.status_code == expected
    added = client.post("/marketing/optouts/add", data={"channel": "email",
                                                        "address": "a@b.cn",
                                                        "csrf_token": client.csrf})
    db.session.expire_all()
    listed = db.session.execute(select(MarketingOptOut.address).order_by(
        MarketingOptOut.id)).scalars().all()
    if expected == 200:
        html = resp.get_data(as_text=True)
        full = role in ("admin", "staff")
        assert ("+8613800138000" in html) is full and ("861****8000" in html) is not full
        assert added.status_code == 302 and listed == ["+8613800138000", "a@b.cn"]
    else:
        assert added.status_code == 403 and listed == ["+8613800138000"]


def test_opt_out_form_names_the_field(app, db, org, marketer):
    client = _client(app, org, marketer, "marketing")
    resp = client.post("/marketing/optouts/add", data={"channel": "sms", "address": "12345",
                                                       "csrf_token": client.csrf})
    assert resp.status_code == 400 and 'id="error-address"' in resp.get_data(as_text=True)
    assert client.post("/marketing/optouts/99999999999/remove",
                       data={"csrf_token": client.csrf}).status_code == 404


@pytest.mark.parametrize("role,read,write", [("admin", 200, 302), ("marketing", 200, 302),
                                             ("manager", 403, 403), ("rep", 403, 403),
                                             ("staff", 403, 403), ("auditor", 403, 403)])
def test_campaign_messages_page_by_role(app, db, org, marketer, world, role, read, write):
    cid = world[0]
    cs.queue_messages(cid)
    client = _client(app, org, marketer, role)
    resp = client.get(f"/campaigns/{cid}/messages")
    assert resp.status_code == read
    if read == 200:
        html = resp.get_data(as_text=True)
        assert re.search(r'data-status="pending">[^<]* 6</span>', html)
        shown_full = role == "admin"
        assert ("sunli@haitong.cn" in html.split('id="outbox"')[1]) is shown_full
    saved = client.post(f"/campaigns/{cid}/messages/templates", data={
        "email_subject": "新主题", "email_body": "正文 {name}", "sms_body": "",
        "send_from_hour": "8", "send_to_hour": "21", "csrf_token": client.csrf})
    assert saved.status_code == write
    db.session.expire_all()
    assert (db.session.get(Campaign, cid).email_subject == "新主题") is (write == 302)


def test_campaign_messages_page_errors_and_missing_campaign(app, db, org, marketer, world):
    client = _client(app, org, marketer, "marketing")
    resp = client.post(f"/campaigns/{world[0]}/messages/templates", data={
        "email_subject": "{x}", "email_body": "b", "send_from_hour": "9",
        "send_to_hour": "20", "csrf_token": client.csrf})
    assert resp.status_code == 400 and 'id="error-email_subject"' in resp.get_data(as_text=True)
    assert client.get("/campaigns/99999999999/messages").status_code == 404
    assert client.get("/campaigns/abc/messages").status_code == 404


# --- inbound SMS and consent --------------------------------------------------------------
@pytest.mark.parametrize("url", ["/api/v1/sms/inbound", "/api/v1/hooks/sms-reply"])
def test_a_td_reply_opts_the_number_out(app, db, org, url):
    made, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    client = app.test_client()
    resp = client.post(url, json={"from": "13800138000", "text": " ＴＤ "},
                       headers={"X-Api-Key": raw})
    assert (resp.status_code, resp.get_json()) == (
        200, {"matched": True, "customer_id": org.c_rep.id, "opted_out": True})
    resp = client.post(url, json={"from": "13600136000", "text": "退订"},
                       headers={"X-Api-Key": raw})
    assert resp.get_json() == {"matched": False, "opted_out": True}
    rows = db.session.execute(select(MarketingOptOut.address, MarketingOptOut.source,
                                     MarketingOptOut.customer_id)
                              .order_by(MarketingOptOut.id)).all()
    assert [tuple(r) for r in rows] == [("+8613800138000", "sms_reply", org.c_rep.id),
                                        ("+8613600136000", "sms_reply", None)]
    assert client.post(url, json={"from": "13800138000", "text": "td"},
                       headers={"X-Api-Key": raw}).status_code == 200  # again: no change
    assert len(db.session.execute(select(MarketingOptOut)).all()) == 2
    assert client.post(url, json={"from": "13800138000", "text": "td"}).status_code == 401
    other = client.post(url, json={"from": "13800138000", "text": "好的"},
                        headers={"X-Api-Key": raw})
    assert other.get_json() == {"matched": True, "customer_id": org.c_rep.id}


def test_conversion_keeps_the_consent_and_pages_show_it(app, db, org):
    lead = leads.create_lead(org.rep, {"person_name": "郑爽", "mobile": "13100131000"})
    when = dt.datetime(2026, 11, 2, 1, 30)
    db.session.execute(update(type(lead)).where(type(lead).id == lead.id)
                       .values(consent_version="2026-11", consented_at=when))
    db.session.commit()
    result = leads.convert_lead(org.rep, lead.id)
    customer = db.session.get(Customer, result["customer_id"])
    assert (customer.consent_version, customer.consented_at) == ("2026-11", when)
    html = login(app.test_client(), "rep1").get(
        f"/customers/show/{customer.id}").get_data(as_text=True)
    assert 'id="fact-consent"' in html and "2026-11" in html and "2026-11-02 09:30" in html
    assert db.session.execute(select(Contact)).first() is not None


def test_marketing_settings_are_admin_edited(app, db, org, marketer):
    cs.settings()
    db.session.commit()
    row_id = db.session.execute(select(MarketingSettings.id)).scalar()
    admin = login(app.test_client(), "admin")
    assert admin.get(f"/marketing/settings/edit/{row_id}").status_code == 200
    bad = admin.post(f"/marketing/settings/edit/{row_id}", data={
        "attribution_days": "5000", "csrf_token": admin.csrf})
    assert "归因窗口必须在 1 到 3650 天之间" in bad.get_data(as_text=True)
    admin.post(f"/marketing/settings/edit/{row_id}", data={
        "attribution_days": "90", "csrf_token": admin.csrf})
    db.session.expire_all()
    row = db.session.get(MarketingSettings, row_id)
    assert (row.attribution_days, row.require_consent) == (90, False)
    mkt = login(app.test_client(), "mkt1")
    assert mkt.post(f"/marketing/settings/edit/{row_id}", data={
        "attribution_days": "30", "require_consent": "y",
        "csrf_token": mkt.csrf}).status_code == 403


# --- the worker ---------------------------------------------------------------------------
def test_the_delivery_job_runs_on_a_real_worker(app, db, org, world, redis_url, database_url,
                                                monkeypatch):
    import uuid

    from app.queue import PERIODIC, get_queue
    from jobs.campaigns import campaign_deliver
    from tests.test_jobs import run_burst_worker

    assert "jobs.campaigns.campaign_deliver" in {job.func for job in PERIODIC}
    db.session.execute(update(Campaign).values(sms_body=None, send_from_hour=0,
                                               send_to_hour=24))
    db.session.commit()
    cs.queue_messages(world[0])
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with SmtpServer() as server:
        job = get_queue(queue).enqueue(campaign_deliver)
        result = run_burst_worker(redis_url, database_url, queue, extra_env={
            "GUISHU_SMTP_HOST": "127.0.0.1", "GUISHU_SMTP_PORT": str(server.port)})
        assert result.returncode == 0, result.stderr[-2000:]
        job.refresh()
        assert job.return_value()["sent"] == 3, result.stderr[-2000:]
        assert sorted(m["To"] for m in server.inbox.messages) == [
            "contact@hualian.cn", "sunli@haitong.cn", "zhoujie@example.com"]
    assert {s for *_, s in messages(db, world[0])} == {"sent"}


def test_outbox_and_opt_out_lists_page_by_keyset_in_few_statements(app, db, org, marketer,
                                                                  world, monkeypatch):
    from tests.test_list_paging import _count_statements
    from app.views import campaign_sending as views

    monkeypatch.setattr(views, "PAGE", 2)
    cid = world[0]
    cs.queue_messages(cid)
    for i in range(5):
        cs.record_optout("email", f"o{i}@example.com", "manual")
    db.session.commit()
    client = _client(app, org, marketer, "marketing")
    for path in (f"/campaigns/{cid}/messages", "/marketing/optouts/"):
        client.get(path)  # warm FAB's caches
        resp, seen = _count_statements(client, path)
        assert resp.status_code == 200 and len(seen) <= 8, (path, len(seen))
        html = resp.get_data(as_text=True)
        ids = [int(i) for i in re.findall(r'<tr data-id="(\d+)"', html)]
        assert len(ids) == 2 and ids == sorted(ids, reverse=True)
        after = re.search(r'id="next-page" href="\?after=(\d+)', html).group(1)
        assert int(after) == ids[-1]
        more, seen = _count_statements(client, f"{path}?after={after}")
        more_ids = [int(i) for i in re.findall(r'<tr data-id="(\d+)"',
                                               more.get_data(as_text=True))]
        assert len(seen) <= 8 and more_ids and max(more_ids) < ids[-1]
    assert client.get("/marketing/optouts/?after=99999999999999").status_code == 200


def test_hours_not_given_keep_their_value_and_non_text_is_refused(db, org, marketer, world):
    cs.set_templates(world[0], marketer, sms_body="hi", send_from_hour=7, send_to_hour=22)
    campaign = cs.set_templates(world[0], marketer, sms_body="hello")
    assert (campaign.sms_body, campaign.send_from_hour, campaign.send_to_hour) == (
        "hello", 7, 22)
    with pytest.raises(ValidationFailed) as exc:
        cs.set_templates(world[0], marketer, sms_body=["x"], email_body="a\x00b",
                         email_subject="s", send_from_hour=True)
    assert exc.value.fields["sms_body"] == "必须是文本"
    assert set(exc.value.fields) == {"sms_body", "email_body", "send_from_hour"}


# --- one message per person ---------------------------------------------------------------
def test_one_message_per_campaign_channel_and_address(db, org, marketer, world):
    """A lead with c_rep's mobile (the same person, not yet converted) and a second customer
    whose primary contact shares the company's mailbox: one message per address; customers
    first, and a later run adds nothing to an address the campaign already has."""
    cid, m, company_id, *_ = world
    twin = leads.create_lead(org.rep2, {"person_name": "王强", "mobile": "13700137999",
                                        "email": "wangqiang@example.com"})
    # The same number as c_rep's (the dedupe check would refuse it at the door: a record
    # imported before the check, or a number changed since).
    db.session.execute(update(type(twin)).where(type(twin).id == twin.id).values(
        mobile="13800138000", mobile_e164="+8613800138000"))
    sister = customers.create_customer(org.rep, {"name": "宁波海通物流有限公司"})
    customers.add_contact(org.rep, sister.id, {"name": "孙丽", "email": "sunli2@haitong.cn",
                                                "is_primary": True})
    db.session.execute(update(Contact).where(Contact.customer_id == sister.id).values(
        email="SunLi@haitong.cn", email_norm="sunli@haitong.cn"))  # one mailbox, two records
    db.session.execute(update(type(twin)).where(type(twin).id == twin.id)
                       .values(consent_version="v1", consented_at=dt.datetime(2026, 11, 1)))
    later = {}
    for key, kind, rid in (("twin", "lead", twin.id), ("sister", "customer", sister.id)):
        row = CampaignMember(campaign_id=cid, source="manual", **{f"{kind}_id": rid})
        db.session.add(row)
        db.session.flush()
        later[key] = row.id
    db.session.commit()
    assert cs.queue_messages(cid) == 7
    sent = messages(db, cid)
    assert [r for r in sent if r[2] in ("sunli@haitong.cn", "+8613800138000")] == [
        (m["c_rep"], "sms", "+8613800138000", "pending"),
        (m["company"], "email", "sunli@haitong.cn", "pending")]
    assert (later["twin"], "email", "wangqiang@example.com", "pending") in sent
    assert len({(channel, address) for _, channel, address, _ in sent}) == len(sent)
    assert cs.queue_messages(cid) == 0


# --- placeholders are the bare name -------------------------------------------------------
@pytest.mark.parametrize("field,text,name", [
    ("sms_body", "{name:d}您好", "name"), ("sms_body", "{company!r}", "company"),
    ("email_subject", "{owner:>300000000}", "owner"), ("email_body", "{name!s:10}", "name")])
def test_a_placeholder_with_a_format_or_conversion_is_refused_by_field(db, org, marketer,
                                                                       world, field, text,
                                                                       name):
    values = {"email_subject": "主题", "email_body": "正文", "sms_body": "短信"}
    values[field] = text
    with pytest.raises(ValidationFailed) as exc:
        cs.set_templates(world[0], marketer, **values)
    assert exc.value.fields == {field: f"占位符 {{{name}}} 不能带格式或转换；请写作 {{{name}}}"}


def test_rendering_replaces_the_bare_placeholders_only(db, org, world, sms):
    """A template stored around the check (an old row, a hand edit) renders literally: no
    width, no conversion, no attribute access; {{ }} are braces."""
    cid, m, *_ = world
    db.session.execute(update(Campaign).values(
        email_body=None, sms_body="{name:>300000000}{name!r}{name.__class__}{{name}} {name}"))
    db.session.commit()
    cs.queue_messages(cid)
    assert cs.deliver(now=at(10)).sent == 3
    assert ("+8613800138000", "{name:>300000000}{name!r}{name.__class__}{name} "
            "杭州云帆科技有限公司 回复TD退订") in SENT_SMS


def test_a_td_reply_counts_for_the_campaign_that_texted_last(app, db, org, marketer, sms):
    from app.services import campaign_responses, campaigns

    made = []
    for name in ("一月短信", "二月短信"):
        c = campaigns.create(marketer, {"name": name, "kind": "sms"})
        cs.set_templates(c.id, marketer, email_subject="", email_body="", sms_body="{name}您好",
                         send_from_hour=0, send_to_hour=24)
        campaigns.add_members(c.id, marketer, customer_ids=[org.c_rep.id, org.c_rep2.id])
        campaigns.launch(c.id, marketer)
        made.append(c.id)
    cs.deliver(now=at(10))
    # January's message to c_rep went out last (a retry, say); February's to c_rep2 did.
    db.session.execute(update(CampaignMessage).where(CampaignMessage.campaign_id == made[0])
                       .values(sent_at=at(11)))
    db.session.execute(update(CampaignMessage).where(
        CampaignMessage.campaign_id == made[0], CampaignMessage.address == "+8613900139000")
        .values(sent_at=at(9)))
    db.session.commit()
    _, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    client = app.test_client()
    for number in ("13800138000", "13900139000", "13600136000"):
        assert client.post("/api/v1/sms/inbound", json={"from": number, "text": "TD"},
                           headers={"X-Api-Key": raw}).status_code == 200
    assert [tuple(r) for r in db.session.execute(select(
        MarketingOptOut.address, MarketingOptOut.campaign_id).order_by(MarketingOptOut.id))] \
        == [("+8613800138000", made[0]), ("+8613900139000", made[1]),
            ("+8613600136000", None)]  # a number no campaign texted counts for none
    assert [campaign_responses.effect_of(cid, marketer).unsubscribed for cid in made] == [1, 1]
