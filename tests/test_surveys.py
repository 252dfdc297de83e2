"""Surveys (市场调研): building and its refusals, sending set-based (opt-outs, consent), the
public page in every state, one answer per token (raced with threads), exact results and
exports, the pages and the API per role, and delivery on a real RQ worker."""
from __future__ import annotations

import datetime as dt
import io
import re
import threading
import uuid

import pytest
from sqlalchemy import select, update

from app.models import (AuditLog, Campaign, CampaignMember, Lead, MarketingOptOut,
                        MarketingSettings, Survey, SurveyAnswer, SurveyInvitation,
                        SurveyResponse)
from app.models.customer import utcnow
from app.services import surveys
from app.services.errors import Conflict, NotFound, PermissionDenied, ValidationFailed
from tests.care_fixtures import SmtpServer
from tests.conftest import login, make_user

QUESTIONS = [
    {"kind": "single", "text": "您从哪里知道我们", "options": ["展会", "朋友", "网络"]},
    {"kind": "multiple", "text": "您关心哪些功能", "options": ["报表", "移动端", "接口"],
     "required": False},
    {"kind": "rating", "text": "总体满意度"},
    {"kind": "text", "text": "其他建议", "required": False},
]
ROLES = ("admin", "manager", "rep", "staff", "auditor", "marketing")


@pytest.fixture
def marketer(db, org):
    return org.marketing  # marketing1, 市场专员


def refusal(fn, *args, **kwargs):
    with pytest.raises((ValidationFailed, Conflict, NotFound, PermissionDenied)) as info:
        fn(*args, **kwargs)
    return info.value


def open_survey(actor, title="客户调研", questions=QUESTIONS, **extra):
    survey = surveys.create_survey(actor, {"title": title, "questions": questions, **extra})
    return surveys.set_status(actor, survey.id, "open")


@pytest.fixture
def campaign(db, org):
    """A campaign with c_rep (mobile), c_north (e-mail), c_pool (phone only) and two leads
    with e-mail addresses, one with a recorded consent."""
    c = Campaign(name="秋季展会", kind="email")
    db.session.add(c)
    db.session.flush()
    with_consent = Lead(person_name="孙丽", email="sunli@example.com",
                        email_norm="sunli@example.com", consent_version="v1",
                        consented_at=utcnow())
    without = Lead(person_name="周强", email="zq@example.com", email_norm="zq@example.com")
    db.session.add_all([with_consent, without])
    db.session.flush()
    for cid in (org.c_rep.id, org.c_north.id, org.c_pool.id):
        db.session.add(CampaignMember(campaign_id=c.id, customer_id=cid))
    for lead in (with_consent, without):
        db.session.add(CampaignMember(campaign_id=c.id, lead_id=lead.id))
    db.session.commit()
    return c, with_consent, without


def invitations(db, survey_id):
    db.session.expire_all()
    return list(db.session.execute(select(SurveyInvitation).where(
        SurveyInvitation.survey_id == survey_id).order_by(SurveyInvitation.id)).scalars())


# --- building -------------------------------------------------------------------------------
def test_building_refusals_name_the_field(db, org, marketer):
    assert refusal(surveys.create_survey, org.rep, {"title": "x"}).code == "forbidden"
    assert refusal(surveys.create_survey, org.manager, {"title": "x"}).code == "forbidden"
    bad = refusal(surveys.create_survey, marketer, {"title": " ", "expires_days": 0})
    assert set(bad.fields) == {"title", "expires_days"}
    bad = refusal(surveys.create_survey, marketer, {"title": "a", "questions": [
        {"kind": "single", "text": "q", "options": ["only one"]},
        {"kind": "rating", "text": "r", "options": ["x", "y"]},
        {"kind": "poll", "text": "p"}, {"kind": "text", "text": "x" * 501}]})
    assert bad.fields == {
        "questions.0.options": "选择题需要 2 到 20 个选项",
        "questions.1.options": "只有选择题有选项",
        "questions.2.kind": "题型只能是：single, multiple, rating, text",
        "questions.3.text": bad.fields["questions.3.text"]}
    assert "500" in bad.fields["questions.3.text"]
    survey = surveys.create_survey(marketer, {"title": "满意度", "questions": QUESTIONS[:1]})
    assert refusal(surveys.create_survey, org.admin, {"title": "满意度"}).fields == {
        "title": "已有同名问卷"}
    assert refusal(surveys.set_status, marketer, survey.id, "closed").code == "survey_status"
    empty = surveys.create_survey(marketer, {"title": "空问卷"})
    assert refusal(surveys.set_status, marketer, empty.id, "open").code == "survey_empty"
    surveys.set_status(marketer, survey.id, "open")
    # Opened: the questions are frozen, by every path.
    assert refusal(surveys.add_question, marketer, survey.id,
                   {"kind": "text", "text": "再问一个"}).code == "survey_not_draft"
    assert refusal(surveys.update_survey, marketer, survey.id,
                   {"questions": []}).code == "survey_not_draft"
    qid = surveys.questions_of(survey.id)[0].id
    assert refusal(surveys.delete_question, marketer, qid).code == "survey_not_draft"
    # The title and intro still change, audited.
    surveys.update_survey(marketer, survey.id, {"intro": "感谢参与"})
    actions = db.session.execute(select(AuditLog.action).where(
        AuditLog.object_type == "survey", AuditLog.object_id == survey.id)
        .order_by(AuditLog.id)).scalars().all()
    assert actions == ["create", "open", "update"]
    assert refusal(surveys.get_survey, org.rep, survey.id).code == "forbidden"
    assert refusal(surveys.get_survey, org.auditor, 2**31).code == "not_found"


def test_draft_questions_are_added_changed_and_removed(db, org, marketer):
    survey = surveys.create_survey(marketer, {"title": "草稿"})
    a = surveys.add_question(marketer, survey.id, {"kind": "rating", "text": "评分"})
    b = surveys.add_question(marketer, survey.id, {"kind": "single", "text": "选一个",
                                                    "options": "甲\n乙\n\n丙"})
    assert surveys.options_of(b) == ["甲", "乙", "丙"]
    surveys.update_question(marketer, a.id, {"kind": "text", "text": "说说看",
                                             "required": False})
    surveys.delete_question(marketer, b.id)
    assert [(q.position, q.kind, q.text, q.required)
            for q in surveys.questions_of(survey.id)] == [(1, "text", "说说看", False)]


# --- sending --------------------------------------------------------------------------------
def test_send_to_campaign_skips_no_address_opt_outs_and_leads_without_consent(
        db, org, marketer, campaign):
    c, with_consent, without = campaign
    survey = open_survey(marketer)
    db.session.add(MarketingOptOut(channel="email", address="contact@hualian.cn", source="link"))
    db.session.commit()
    out = surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "email"})
    assert out == {"invited": 1, "already": 0}
    rows = invitations(db, survey.id)
    assert [(r.lead_id, r.address, r.delivery_status, r.campaign_id, r.greeting_name)
            for r in rows] == [(with_consent.id, "sunli@example.com", "pending", c.id, "孙丽")]
    assert re.fullmatch(r"[0-9a-f]{48}", rows[0].token)
    assert rows[0].expires_at - rows[0].created_at == dt.timedelta(days=30)
    # Consent not required: the other lead too; sending again adds nobody twice.
    db.session.execute(update(MarketingSettings).values(require_consent=False))
    if db.session.execute(select(MarketingSettings)).first() is None:
        db.session.add(MarketingSettings(require_consent=False))
    db.session.commit()
    assert surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "email"}) == {
        "invited": 1, "already": 1}
    sms = surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "sms"})
    assert sms == {"invited": 1, "already": 2}  # c_rep: the only one with a mobile
    # Once per survey and record, whatever the channel.
    assert surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "sms"}) == {
        "invited": 0, "already": 3}
    rows = invitations(db, survey.id)
    assert len({r.token for r in rows}) == 3


def test_sms_invites_the_customer_with_a_mobile(db, org, marketer, campaign):
    c, *_ = campaign
    survey = open_survey(marketer)
    assert surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "sms"})[
        "invited"] == 1
    (row,) = invitations(db, survey.id)
    assert (row.customer_id, row.address, row.greeting_name) == (
        org.c_rep.id, "+8613800138000", "杭州云帆科技有限公司")


def test_send_refusals(db, org, marketer, campaign):
    c, *_ = campaign
    draft = surveys.create_survey(marketer, {"title": "未开放", "questions": QUESTIONS})
    assert refusal(surveys.send, marketer, draft.id,
                   {"campaign_id": c.id, "channel": "email"}).code == "survey_not_open"
    assert refusal(surveys.send, marketer, draft.id, {"channel": "fax"}).fields == {
        "channel": "发送渠道只能是：email, sms", "campaign_id": "请指定一个市场活动或一个客户分群"}
    assert refusal(surveys.send, marketer, draft.id, {
        "channel": "sms", "campaign_id": 2**40}).fields == {"campaign_id": "市场活动不存在"}
    assert refusal(surveys.send, org.manager, draft.id,
                   {"campaign_id": c.id, "channel": "sms"}).code == "forbidden"


def test_send_to_a_segment_invites_its_members(db, org, marketer):
    """The segment's members come from app.services.marketing_segments.members_select,
    evaluated in its creator's scope: 浙江 holds c_rep (a mobile, so SMS)."""
    from app.services import marketing_segments

    seg = marketing_segments.create_segment(marketer, {
        "name": "浙江客户", "record_type": "customer", "criteria": {"provinces": ["浙江"]}})
    survey = open_survey(marketer)
    assert surveys.send(marketer, survey.id, {"segment_id": seg.id, "channel": "email"}) == {
        "invited": 0, "already": 0}  # no e-mail address among them
    assert surveys.send(marketer, survey.id, {"segment_id": seg.id, "channel": "sms"}) == {
        "invited": 1, "already": 0}
    assert [(r.customer_id, r.campaign_id) for r in invitations(db, survey.id)] == [
        (org.c_rep.id, None)]
    assert refusal(surveys.send, marketer, survey.id, {
        "segment_id": seg.id, "campaign_id": 1, "channel": "sms"}).fields == {
        "campaign_id": "请指定一个市场活动或一个客户分群"}


# --- the public page ------------------------------------------------------------------------
@pytest.fixture
def invited(db, org, marketer, campaign):
    c, *_ = campaign
    survey = open_survey(marketer)
    surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "sms"})
    (row,) = invitations(db, survey.id)
    return survey, row


def public_csrf(client, token):
    html = client.get(f"/s/{token}").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def answer_form(survey_id, csrf, **over):
    qs = surveys.questions_of(survey_id)
    data = {"csrf_token": csrf, f"q{qs[0].id}": "朋友", f"q{qs[1].id}": ["报表", "接口"],
            f"q{qs[2].id}": "4", f"q{qs[3].id}": "希望有小程序"}
    for position, value in over.items():
        data[f"q{qs[int(position[1:]) - 1].id}"] = value
    return data


def test_public_page_shows_the_questions_and_only_a_greeting(app, db, invited):
    survey, row = invited
    client = app.test_client()
    resp = client.get(f"/s/{row.token}")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    assert "您好，杭州云帆科技有限公司" in html and "总体满意度" in html
    assert "13800138000" not in html and "+8613800138000" not in html
    assert "login" not in resp.request.path


def test_public_page_refuses_each_bad_answer_naming_the_question(app, db, invited):
    survey, row = invited
    client = app.test_client()
    csrf = public_csrf(client, row.token)
    qs = surveys.questions_of(survey.id)
    resp = client.post(f"/s/{row.token}", data=answer_form(
        survey.id, csrf, q1="随便", q3="6", q4="x" * 2001))
    html = resp.get_data(as_text=True)
    assert resp.status_code == 400
    assert f'id="error-q{qs[0].id}">第 1 题（您从哪里知道我们）：请从列出的选项中选择' in html
    assert f'id="error-q{qs[2].id}">第 3 题（总体满意度）：请给出 1 到 5 的评分' in html
    assert f'id="error-q{qs[3].id}">第 4 题（其他建议）：最多 2000 个字符' in html
    resp = client.post(f"/s/{row.token}", data={"csrf_token": csrf})
    assert resp.status_code == 400
    assert "第 1 题（您从哪里知道我们）为必答题" in resp.get_data(as_text=True)
    assert db.session.execute(select(SurveyResponse)).first() is None
    # Without the CSRF token: refused, nothing stored.
    assert app.test_client().post(f"/s/{row.token}", data=answer_form(
        survey.id, "")).status_code == 400
    assert db.session.execute(select(SurveyResponse)).first() is None


def test_public_page_every_state(app, db, org, marketer, invited):
    survey, row = invited
    client = app.test_client()
    for token in ("nope", "0" * 48, "'; drop table survey; --", "a" * 5000):
        resp = client.get(f"/s/{token}")
        assert resp.status_code == 404
        assert "此问卷链接无效" in resp.get_data(as_text=True)
    csrf = public_csrf(client, row.token)
    resp = client.post(f"/s/{row.token}", data=answer_form(survey.id, csrf))
    assert resp.status_code == 200 and 'id="survey-thanks"' in resp.get_data(as_text=True)
    again = client.post(f"/s/{row.token}", data=answer_form(survey.id, csrf))
    assert again.status_code == 200
    assert 'id="survey-state-answered"' in again.get_data(as_text=True)
    other = surveys.invite(marketer, survey.id, customer_id=org.c_rep2.id)
    db.session.execute(update(SurveyInvitation).where(SurveyInvitation.id == other.id)
                       .values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    db.session.commit()
    resp = client.get(f"/s/{other.token}")
    assert resp.status_code == 410 and "此问卷链接已过期" in resp.get_data(as_text=True)
    third = surveys.invite(marketer, survey.id, lead_id=None, contact_id=None,
                           customer_id=org.c_north.id)
    # The same record again: its invitation; a record that does not exist: refused.
    assert surveys.invite(marketer, survey.id, customer_id=org.c_north.id).id == third.id
    assert refusal(surveys.invite, marketer, survey.id,
                   customer_id=2**31 - 1).code == "not_found"
    assert refusal(surveys.invite, marketer, survey.id).code == "invalid"
    surveys.set_status(marketer, survey.id, "closed")
    resp = client.post(f"/s/{third.token}", data=answer_form(survey.id, csrf))
    assert resp.status_code == 410 and "此问卷已关闭" in resp.get_data(as_text=True)
    assert refusal(surveys.answer, third.token, {}).code == "survey_closed"
    assert refusal(surveys.answer, other.token, {}).code == "survey_closed"


# --- results --------------------------------------------------------------------------------
def test_results_are_exact_and_export(app, db, org, marketer, campaign):
    c, with_consent, _ = campaign
    db.session.add(MarketingSettings(require_consent=False)) if db.session.execute(
        select(MarketingSettings)).first() is None else db.session.execute(
        update(MarketingSettings).values(require_consent=False))
    db.session.commit()
    survey = open_survey(marketer)
    assert surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "email"})[
        "invited"] == 3
    rows = invitations(db, survey.id)
    qs = surveys.questions_of(survey.id)
    given = [({"q1": ["朋友"], "q2": ["报表", "接口"], "q3": ["4"], "q4": ["希望有小程序"]}),
             ({"q1": ["展会"], "q2": ["报表"], "q3": ["5"]}),
             ({"q1": ["朋友"], "q3": ["2"], "q4": ["=1+1"]})]
    for row, answers in zip(rows, given):
        surveys.answer(row.token, {f"q{qs[int(k[1:]) - 1].id}": v for k, v in answers.items()})
    report = surveys.results(org.manager, survey.id)
    assert (report["invited"], report["sent"], report["responses"], report["response_rate"]) \
        == (3, 0, 3, 1.0)
    single, multiple, rating, text = report["questions"]
    assert single["counts"] == [{"choice": "展会", "count": 1}, {"choice": "朋友", "count": 2},
                                {"choice": "网络", "count": 0}]
    assert (multiple["answered"], multiple["counts"]) == (2, [
        {"choice": "报表", "count": 2}, {"choice": "移动端", "count": 0},
        {"choice": "接口", "count": 1}])
    assert rating["average"] == 3.67
    assert [d["count"] for d in rating["distribution"]] == [0, 1, 0, 1, 1]
    page, after = surveys.texts(org.auditor, text["id"], limit=1)
    assert [t for _i, t in page] == ["=1+1"] and after is not None
    page, after = surveys.texts(org.auditor, text["id"], after=after, limit=1)
    assert ([t for _i, t in page], after) == (["希望有小程序"], None)
    csv_text = surveys.export_csv(org.manager, survey.id)
    lines = csv_text.splitlines()
    assert lines[0].startswith("答卷,提交时间,记录信息,1. 您从哪里知道我们")
    assert len(lines) == 4 and lines[1].endswith(",朋友,报表; 接口,4,希望有小程序")
    assert lines[3].endswith(",朋友,,2,'=1+1")  # no formula reaches Excel
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(surveys.export_xlsx(org.manager, survey.id)))
    assert book.active.max_row == 4
    assert refusal(surveys.results, org.rep, survey.id).code == "forbidden"


# --- one answer per token, raced -------------------------------------------------------------
@pytest.mark.real_db
def test_concurrent_answers_to_one_token_store_one(app, db, org):
    from app.security import ROLE_MARKETING

    marketer = make_user("mkt-race", ROLE_MARKETING)
    survey = open_survey(marketer, questions=[{"kind": "rating", "text": "评分"}])
    row = surveys.invite(marketer, survey.id, customer_id=org.c_rep.id)
    token, qid = row.token, surveys.questions_of(survey.id)[0].id
    n = 8
    barrier = threading.Barrier(n)
    outcomes: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(rating: int) -> None:
        with app.app_context():
            from app.extensions import db as tdb

            try:
                barrier.wait(timeout=30)
                try:
                    surveys.answer(token, {f"q{qid}": [str(rating)]})
                    key = "stored"
                except Conflict as exc:
                    key = exc.code
                with lock:
                    outcomes.append(key)
            except BaseException as exc:  # noqa: BLE001
                with lock:
                    errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=work, args=(1 + i % 5,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert sorted(outcomes) == ["stored"] + ["survey_answered"] * (n - 1)
    db.session.expire_all()
    assert len(db.session.execute(select(SurveyResponse.id)).all()) == 1
    assert len(db.session.execute(select(SurveyAnswer.id)).all()) == 1


# --- delivery on a real worker -------------------------------------------------------------
def test_the_delivery_job_sends_the_links_on_a_real_worker(db, org, redis_url, database_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from app.queue import get_queue
    from app.security import ROLE_MARKETING
    from jobs.surveys import survey_deliver
    from tests.test_jobs import run_burst_worker

    marketer = make_user("mkt-job", ROLE_MARKETING)
    c = Campaign(name="邮件活动", kind="email")
    db.session.add(c)
    db.session.flush()
    db.session.add(CampaignMember(campaign_id=c.id, customer_id=org.c_north.id))
    db.session.commit()
    survey = open_survey(marketer)
    assert surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "email"})[
        "invited"] == 1
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with SmtpServer() as server:
        job = get_queue(queue).enqueue(survey_deliver)
        again = get_queue(queue).enqueue(survey_deliver)
        result = run_burst_worker(redis_url, database_url, queue, {
            "GUISHU_SMTP_HOST": "127.0.0.1", "GUISHU_SMTP_PORT": str(server.port),
            "GUISHU_PUBLIC_URL": "https://crm.example.com"})
    assert result.returncode == 0, result.stderr[-2000:]
    job.refresh()
    again.refresh()
    assert job.return_value()["sent"] == 1 and again.return_value()["sent"] == 0
    (row,) = invitations(db, survey.id)
    assert (row.delivery_status, row.attempts) == ("sent", 1)
    assert server.inbox.recipients == [["contact@hualian.cn"]]
    body = server.inbox.messages[0].get_content()
    assert f"https://crm.example.com/s/{row.token}" in body


def test_delivery_retries_then_fails_and_skips_opt_outs(app, db, org, marketer, campaign,
                                                        monkeypatch):
    c, *_ = campaign
    survey = open_survey(marketer)
    surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "email"})
    monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
    from tests.care_fixtures import free_port

    monkeypatch.setitem(app.config, "SMTP_PORT", free_port())  # nothing listens
    now = utcnow()
    assert surveys.deliver(now).summary()["retrying"] == 2  # c_north and the consenting lead
    row = invitations(db, survey.id)[0]
    assert (row.delivery_status, row.attempts, row.next_attempt_at) == (
        "pending", 1, now + dt.timedelta(minutes=5))
    assert surveys.deliver(now).summary()["sent"] == 0  # not due yet
    for i in range(3):
        now += dt.timedelta(days=1)
        surveys.deliver(now)
    assert [(r.delivery_status, r.attempts) for r in invitations(db, survey.id)] == [
        ("failed", 4), ("failed", 4)]
    assert "不可达" in row.last_error or invitations(db, survey.id)[0].last_error
    # Pending ones whose address opted out meanwhile are cancelled, not sent.
    db.session.execute(update(SurveyInvitation).values(delivery_status="pending",
                                                       next_attempt_at=None))
    for r in invitations(db, survey.id):
        db.session.add(MarketingOptOut(channel="email", address=r.address, source="link"))
    db.session.commit()
    assert surveys.deliver(now).summary() == {"sent": 0, "retrying": 0, "failed": 0,
                                              "cancelled": 2, "interrupted": 0}


def test_survey_mail_carries_an_unsubscribe_link_and_sms_the_td_tail(app, db, org, marketer,
                                                                     campaign, monkeypatch):
    from app.services import campaign_sending
    from tests.care_fixtures import SENT_SMS

    c, with_consent, _ = campaign
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://crm.example.com")
    monkeypatch.setitem(app.config, "SMS_GATEWAY", "tests.care_fixtures:RecordingGateway")
    SENT_SMS.clear()
    survey = open_survey(marketer)
    surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "email"})
    surveys.send(marketer, survey.id, {"campaign_id": c.id, "channel": "sms"})
    with SmtpServer() as server:
        monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(app.config, "SMTP_PORT", server.port)
        assert surveys.deliver(utcnow()).sent == 3
        mails = {m["To"]: m.get_content() for m in server.inbox.messages}
    assert sorted(mails) == ["contact@hualian.cn", "sunli@example.com"]
    body = mails["sunli@example.com"]
    token = re.search(r"\n--\n不想再收到此类邮件？点此退订：https://crm\.example\.com/u/(\S+)\s*$",
                      body).group(1)
    data = campaign_sending.read_token(token)
    assert (data.channel, data.address, data.customer_id, data.lead_id, data.campaign_id) == (
        "email", "sunli@example.com", None, with_consent.id, c.id)
    assert campaign_sending.unsubscribe(token) is True
    assert [tuple(r) for r in db.session.execute(select(
        MarketingOptOut.channel, MarketingOptOut.address, MarketingOptOut.source,
        MarketingOptOut.lead_id, MarketingOptOut.campaign_id))] == [
        ("email", "sunli@example.com", "link", with_consent.id, c.id)]
    (sms,) = SENT_SMS
    assert sms[0] == "+8613800138000" and sms[1].endswith("回复TD退订")


# --- pages per role -------------------------------------------------------------------------
@pytest.fixture
def role_client(app, org, marketer):
    def make(role):
        user = marketer if role == "marketing" else getattr(
            org, {"staff": "staff"}.get(role, role))
        return login(app.test_client(), user.username)
    return make


@pytest.mark.parametrize("role", ROLES)
def test_pages_by_role(role, role_client, db, org, marketer, invited):
    survey, row = invited
    client = role_client(role)
    readers, writers = {"admin", "manager", "auditor", "marketing"}, {"admin", "marketing"}
    for path in ("/surveys/list/", f"/surveys/show/{survey.id}",
                 f"/surveys/{survey.id}/results", f"/surveys/{survey.id}/results.csv",
                 f"/surveys/{survey.id}/questions"):
        assert client.get(path).status_code == (200 if role in readers else 403), (role, path)
    assert client.get("/surveys/add").status_code == (200 if role in writers else 403)
    assert client.get(f"/surveys/{survey.id}/send").status_code == (
        200 if role in writers else 403)
    resp = client.post("/surveys/add", data={"csrf_token": client.csrf, "title": f"新问卷{role}",
                                             "intro": "", "expires_days": "14"})
    made = db.session.execute(select(Survey).where(Survey.title == f"新问卷{role}")) \
        .scalar_one_or_none()
    assert (made is not None) == (role in writers), (role, resp.status_code)
    if made is not None:
        assert made.expires_days == 14
        resp = client.post(f"/surveys/{made.id}/questions", data={
            "csrf_token": client.csrf, "kind": "single", "text": "选哪个", "options": "A"})
        assert "选择题需要 2 到 20 个选项" in resp.get_data(as_text=True)
        client.post(f"/surveys/{made.id}/questions", data={
            "csrf_token": client.csrf, "kind": "rating", "text": "打分", "required": "y"})
        assert [q.text for q in surveys.questions_of(made.id)] == ["打分"]
        client.post(f"/surveys/action/open_survey/{made.id}", data={"csrf_token": client.csrf})
        db.session.expire_all()
        assert db.session.get(Survey, made.id).status == "open"
    html = client.get("/").get_data(as_text=True)
    assert ('href="/surveys/list/"' in html) == (role in readers)
    assert client.get("/surveys/show/2147483648").status_code in (403, 404)
    assert client.get(f"/surveys/{2**31}/results").status_code in (403, 404)


# --- API per role ---------------------------------------------------------------------------
@pytest.mark.parametrize("role", ROLES)
def test_api_by_role(role, api, db, org, marketer, campaign):
    c, *_ = campaign
    call = api(marketer.username if role == "marketing" else getattr(org, role).username)
    readers, writers = {"admin", "manager", "auditor", "marketing"}, {"admin", "marketing"}
    resp = call("POST", "/api/v1/surveys/", json={"title": f"API问卷{role}",
                                                   "questions": QUESTIONS})
    assert resp.status_code == (200 if role in writers else 403), resp.get_json()
    if role in writers:
        sid = resp.get_json()["id"]
        assert [q["kind"] for q in resp.get_json()["result"]["questions"]] == [
            "single", "multiple", "rating", "text"]
        bad = call("PUT", f"/api/v1/surveys/{sid}", json={"status": "closed"})
        assert (bad.status_code, bad.get_json()["code"]) == (409, "survey_status")
        ok = call("PUT", f"/api/v1/surveys/{sid}", json={"status": "open", "intro": "你好"})
        assert ok.get_json()["result"]["status"] == "open"
        frozen = call("PUT", f"/api/v1/surveys/{sid}", json={"questions": []})
        assert (frozen.status_code, frozen.get_json()["code"]) == (409, "survey_not_draft")
        sent = call("POST", f"/api/v1/surveys/{sid}/send",
                    json={"campaign_id": c.id, "channel": "sms"})
        assert sent.get_json() == {"invited": 1, "already": 0}
        unknown = call("POST", "/api/v1/surveys/", json={"title": "x", "owner": 1})
        assert unknown.status_code == 400 and "owner" in unknown.get_json()["fields"]
    else:
        sid = surveys.create_survey(org.admin, {"title": f"别人的{role}"}).id
        assert call("POST", f"/api/v1/surveys/{sid}/send",
                    json={"campaign_id": c.id, "channel": "sms"}).status_code == 403
    for path in ("/api/v1/surveys/", f"/api/v1/surveys/{sid}",
                 f"/api/v1/surveys/{sid}/results"):
        assert call("GET", path).status_code == (200 if role in readers else 403), path
    if role in readers:
        results = call("GET", f"/api/v1/surveys/{sid}/results").get_json()
        assert results["invited"] == (1 if role in writers else 0)
        assert call("GET", "/api/v1/surveys/2147483647").status_code == 404


def test_the_list_and_results_pages_cost_the_same_at_any_size(app, db, org, marketer):
    from tests.test_list_paging import _count_statements

    for i in range(30):
        survey = surveys.create_survey(marketer if i % 2 else org.admin, {
            "title": f"问卷{i}", "questions": QUESTIONS})
    surveys.set_status(marketer, survey.id, "open")
    for cid in (org.c_rep.id, org.c_rep2.id, org.c_north.id):
        row = surveys.invite(marketer, survey.id, customer_id=cid)
        surveys.answer(row.token, {f"q{q.id}": ["4"] for q in surveys.questions_of(survey.id)
                                   if q.kind == "rating"} | {
            f"q{surveys.questions_of(survey.id)[0].id}": ["展会"]})
    client = login(app.test_client(), org.manager.username)
    client.get("/surveys/list/")
    small, seen_small = _count_statements(client, "/surveys/list/?psize_SurveyView=25")
    large, seen_large = _count_statements(client, "/surveys/list/?psize_SurveyView=100")
    assert small.status_code == large.status_code == 200
    assert len(seen_small) <= 8 and len(seen_large) == len(seen_small), seen_small
    page, seen = _count_statements(client, f"/surveys/{survey.id}/results")
    assert page.status_code == 200 and len(seen) <= 12, seen
    html = page.get_data(as_text=True)
    assert '<b id="stat-invited">3</b>' in html and '<b id="stat-rate">100.0%</b>' in html
