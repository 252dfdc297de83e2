"""Public lead capture forms (/forms/<token>): no sign-in, CSRF, the per-address rate with its
exact refusal, the honeypot, the consent, the duplicate path (a neutral thank-you, the holder
told) and bad input shown again by field; the admins' page and its service."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from app.models import (AuditLog, CaptureForm, CaptureSubmission, Lead, LeadEvent,
                        LeadOwnership, Notification)
from app.services import lead_capture, leads
from app.services.errors import (NotFound, PermissionDenied, TooManyRequests,
                                 ValidationFailed)
from tests.conftest import csrf_token

THANKS = "感谢您的提交，我们已收到您的信息，会尽快与您联系。"
GOOD = {"name": "王五", "company": "表单测试有限公司", "mobile": "13900001111",
        "email": "wang@example.com", "city": "杭州", "notes": "想了解报价", "consent": "y"}


@pytest.fixture
def form(db, org):
    made = lead_capture.create_form(org.admin, {
        "name": "官网咨询", "channel": "web_form", "pool_id": leads.default_lead_pool().id,
        "policy_text": "我们只用您的信息联系您。", "policy_version": "2026-11", "is_active": True})
    return type("F", (), {"id": made.id, "token": made.token,
                          "pool": made.pool_id})


def lead_count(db) -> int:
    db.session.commit()
    return db.session.execute(select(func.count()).select_from(Lead)).scalar_one()


def outcomes(db, form_id) -> list[str]:
    db.session.commit()
    return list(db.session.execute(select(CaptureSubmission.outcome).where(
        CaptureSubmission.form_id == form_id).order_by(CaptureSubmission.id)).scalars())


def post(client, token, data, lang=None):
    path = f"/forms/{token}" + (f"?lang={lang}" if lang else "")
    token_value = csrf_token(client, path)
    return client.post(path, data=dict(data, csrf_token=token_value))


# --- the public page ----------------------------------------------------------------------------
def test_the_page_opens_without_signing_in_in_both_languages(app, form):
    client = app.test_client()
    zh = client.get(f"/forms/{form.token}?lang=zh")
    assert zh.status_code == 200
    html = zh.get_data(as_text=True)
    assert "官网咨询" in html and "我同意隐私政策（版本 2026-11）" in html
    assert 'name="website"' in html and 'name="csrf_token"' in html
    en = client.get(f"/forms/{form.token}?lang=en").get_data(as_text=True)
    assert "I agree to the privacy policy (version 2026-11)" in en
    assert "Your name" in en


def test_a_submission_makes_a_lead_in_the_forms_pool_with_the_consent(app, db, form):
    resp = post(app.test_client(), form.token, GOOD)
    assert resp.status_code == 200
    assert THANKS in resp.get_data(as_text=True)
    db.session.commit()
    lead = db.session.execute(select(Lead).where(
        Lead.company_name == "表单测试有限公司")).scalar_one()
    assert (lead.person_name, lead.mobile_e164, lead.source, lead.consent_version) == (
        "王五", "+8613900001111", "web_form", "2026-11")
    assert lead.consented_at is not None and lead.created_by_id is None
    o = db.session.get(LeadOwnership, lead.id)
    assert (o.owner_id, o.pool_id) == (None, form.pool)
    assert db.session.execute(select(LeadEvent.kind, LeadEvent.reason).where(
        LeadEvent.lead_id == lead.id)).all() == [("created", "公开表单：官网咨询")]
    assert lead.priority_score > 0
    assert outcomes(db, form.id) == ["lead"]


def test_the_lead_page_shows_the_consent(app, db, form, admin_client):
    post(app.test_client(), form.token, GOOD)
    db.session.commit()
    lead_id = db.session.execute(select(Lead.id).where(
        Lead.company_name == "表单测试有限公司")).scalar_one()
    page = admin_client.get(f"/leads/show/{lead_id}").get_data(as_text=True)
    assert '<th>隐私政策同意</th><td id="lead-consent">版本 2026-11，' in page


def test_unknown_rotated_and_inactive_addresses_are_404(app, db, org, form):
    client = app.test_client()
    assert client.get("/forms/" + "x" * 32).status_code == 404
    assert client.get("/forms/short").status_code == 404
    assert client.get("/forms/" + "a" * 500).status_code == 404
    old = form.token
    lead_capture.rotate_token(org.admin, form.id)
    assert client.get(f"/forms/{old}").status_code == 404
    new = db.session.get(CaptureForm, form.id)
    assert client.get(f"/forms/{new.token}").status_code == 200
    data = {"name": "官网咨询", "channel": "web_form", "pool_id": form.pool,
            "policy_text": "我们只用您的信息联系您。", "policy_version": "2026-11",
            "is_active": False}
    lead_capture.update_form(org.admin, form.id, data)
    assert client.get(f"/forms/{new.token}").status_code == 404


def test_the_consent_is_required(app, db, form):
    before = lead_count(db)
    resp = post(app.test_client(), form.token, {k: v for k, v in GOOD.items()
                                                if k != "consent"})
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    assert re.search(r'id="error-consent">请同意隐私政策<', html)
    assert "表单测试有限公司" in html  # the visitor's input is kept
    assert lead_count(db) == before
    assert outcomes(db, form.id) == ["invalid"]


def test_bad_input_is_shown_again_by_field(app, db, form):
    before = lead_count(db)
    client = app.test_client()
    resp = post(client, form.token, dict(GOOD, mobile="12ab", email="not-an-email",
                                         name="", company="", notes="长" * 10_001))
    assert resp.status_code == 400
    html = resp.get_data(as_text=True)
    for field in ("mobile", "email", "name", "notes"):
        assert f'id="error-{field}"' in html, field
    assert "不能超过 10000 个字符" in html
    resp = post(client, form.token, {"name": "只有名字", "consent": "y"})
    assert resp.status_code == 400
    assert "请留下手机、电话或邮箱，以便我们联系您" in resp.get_data(as_text=True)
    resp = post(client, form.token, dict(GOOD, name="甲\x00乙"))
    assert resp.status_code == 400
    assert lead_count(db) == before


def test_a_filled_honeypot_is_thanked_counted_and_makes_no_lead(app, db, form):
    before = lead_count(db)
    resp = post(app.test_client(), form.token, dict(GOOD, website="http://spam.example"))
    assert resp.status_code == 200 and THANKS in resp.get_data(as_text=True)
    assert lead_count(db) == before
    assert outcomes(db, form.id) == ["honeypot"]
    assert db.session.execute(select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "honeypot", AuditLog.object_id == form.id)).scalar_one() == 1


def test_a_duplicate_is_thanked_alike_and_its_holder_told(app, db, org, form):
    mine = leads.create_lead(org.rep, {"person_name": "已有", "mobile": "13900001111"})
    before = lead_count(db)
    resp = post(app.test_client(), form.token, GOOD)
    assert resp.status_code == 200 and THANKS in resp.get_data(as_text=True)
    assert lead_count(db) == before
    assert outcomes(db, form.id) == ["duplicate"]
    note = db.session.execute(select(Notification).where(
        Notification.user_id == org.rep.id, Notification.kind == "capture_duplicate")
    ).scalar_one()
    assert note.title == "公开表单「官网咨询」收到与您的线索「已有」重复的提交"
    assert note.body == "留言：想了解报价" and note.link == f"/leads/show/{mine.id}"


def test_a_customer_duplicate_tells_the_customers_owner(app, db, org, form):
    from app.services import customers

    c = customers.create_customer(org.rep2, {"name": "老客户", "customer_type": "person",
                                             "mobile": "13900002222"})
    before = lead_count(db)
    resp = post(app.test_client(), form.token, dict(GOOD, mobile="13900002222",
                                                     email="", company=""))
    assert resp.status_code == 200 and THANKS in resp.get_data(as_text=True)
    assert lead_count(db) == before
    assert db.session.execute(select(Notification.link).where(
        Notification.user_id == org.rep2.id, Notification.kind == "capture_duplicate")
    ).scalar_one() == f"/customers/show/{c.id}"


def test_the_rate_per_address_refuses_with_the_numbers(app, db, form, monkeypatch):
    monkeypatch.setitem(app.config, "CAPTURE_FORM_RATE_PER_HOUR", 2)
    client = app.test_client()
    for n in range(2):
        assert post(client, form.token, dict(GOOD, mobile=f"1390000300{n}", email="",
                                             company=f"限流{n}")).status_code == 200
    before = lead_count(db)
    resp = post(client, form.token, dict(GOOD, mobile="13900003009", email="",
                                         company="限流9"))
    assert resp.status_code == 429
    assert "来自您网络的提交过多：每小时最多 2 次。请稍后再试" in resp.get_data(as_text=True)
    assert lead_count(db) == before
    assert outcomes(db, form.id) == ["lead", "lead"]  # the refusal is not stored
    # Another address is counted apart.
    other = app.test_client()
    token_value = csrf_token(other, f"/forms/{form.token}")
    resp = other.post(f"/forms/{form.token}", data=dict(GOOD, mobile="13900003008", email="",
                                                        company="限流8", csrf_token=token_value),
                      environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert resp.status_code == 200


def test_forwarded_for_counts_only_behind_configured_proxies(app, monkeypatch):
    with app.app_context():
        monkeypatch.setitem(app.config, "TRUSTED_PROXY_COUNT", 0)
        assert lead_capture.client_address("10.0.0.1", "1.2.3.4") == "10.0.0.1"
        monkeypatch.setitem(app.config, "TRUSTED_PROXY_COUNT", 1)
        # The visitor may send its own X-Forwarded-For: only our proxy's entry counts.
        assert lead_capture.client_address("10.0.0.1", "6.6.6.6, 1.2.3.4") == "1.2.3.4"
        monkeypatch.setitem(app.config, "TRUSTED_PROXY_COUNT", 2)
        assert lead_capture.client_address("10.0.0.1", "6.6.6.6, 1.2.3.4, 10.0.0.2") \
            == "1.2.3.4"
        assert lead_capture.client_address("10.0.0.1", "1.2.3.4") == "10.0.0.1"


def test_the_public_post_needs_the_csrf_token(app, db, form):
    client = app.test_client()
    before = lead_count(db)
    resp = client.post(f"/forms/{form.token}", data=GOOD)
    assert resp.status_code == 400
    assert "The CSRF token is missing." in resp.get_data(as_text=True)
    other = app.test_client()
    stolen = csrf_token(other, f"/forms/{form.token}")
    resp = client.post(f"/forms/{form.token}", data=dict(GOOD, csrf_token=stolen))
    assert resp.status_code == 400
    assert lead_count(db) == before
    assert outcomes(db, form.id) == []


# --- the service ----------------------------------------------------------------------------
def test_the_service_refusals(app, db, org, form, monkeypatch):
    with pytest.raises(NotFound) as exc:
        lead_capture.submit("nope", GOOD, "1.1.1.1")
    assert exc.value.message == "此表单不存在或已关闭"
    data = dict(GOOD, consent="y")
    with pytest.raises(ValidationFailed) as exc:
        lead_capture.submit(form.token, {"name": "名" * 101, "consent": "y",
                                         "mobile": "13900009999"}, "1.1.1.1")
    assert exc.value.fields == {"name": "不能超过 100 个字符"}
    monkeypatch.setitem(app.config, "CAPTURE_FORM_RATE_PER_HOUR", 1)
    with pytest.raises(TooManyRequests) as exc:
        lead_capture.submit(form.token, data, "1.1.1.1")
    assert exc.value.code == "rate_limited" and exc.value.status == 429


@pytest.mark.parametrize("role", ["manager", "rep", "staff", "auditor"])
def test_only_admins_manage_forms(db, org, form, role):
    user = getattr(org, role)
    with pytest.raises(PermissionDenied):
        lead_capture.create_form(user, {"name": "x", "pool_id": form.pool,
                                        "policy_text": "t", "policy_version": "1"})
    with pytest.raises(PermissionDenied):
        lead_capture.rotate_token(user, form.id)


def test_form_settings_are_validated(db, org, form):
    with pytest.raises(ValidationFailed) as exc:
        lead_capture.create_form(org.admin, {"name": "", "channel": "fax", "pool_id": 999999,
                                             "policy_text": "", "policy_version": "v" * 41})
    assert set(exc.value.fields) == {"name", "channel", "pool_id", "policy_text",
                                     "policy_version"}
    with pytest.raises(ValidationFailed) as exc:
        lead_capture.create_form(org.admin, {"name": "官网咨询", "pool_id": form.pool,
                                             "policy_text": "t", "policy_version": "1"})
    assert exc.value.fields == {"name": "同名的线索表单已存在"}
    with pytest.raises(ValidationFailed) as exc:
        lead_capture.update_form(org.admin, form.id, {
            "name": "官网咨询", "pool_id": form.pool, "policy_text": "新的文本",
            "policy_version": "2026-11"})
    assert set(exc.value.fields) == {"policy_version"}
    # A version once used names its text for good: v2 for a new text, then back to the
    # first version for yet another text is refused (the audit log keeps every text).
    lead_capture.update_form(org.admin, form.id, {
        "name": "官网咨询", "pool_id": form.pool, "policy_text": "新的文本",
        "policy_version": "2026-12"})
    with pytest.raises(ValidationFailed) as exc:
        lead_capture.update_form(org.admin, form.id, {
            "name": "官网咨询", "pool_id": form.pool, "policy_text": "第三段文本",
            "policy_version": "2026-11"})
    assert exc.value.fields == {"policy_version": (
        "版本 2026-11 以前用于另一段文本：请为新文本使用新的版本号（每条同意记录注明访客同意的版本）")}
    texts = [c["policy_text"] for c in db.session.execute(select(AuditLog.changes).where(
        AuditLog.object_type == "capture_form", AuditLog.object_id == form.id)
        .order_by(AuditLog.id)).scalars()]
    assert texts == [[None, "我们只用您的信息联系您。"], ["我们只用您的信息联系您。", "新的文本"]]
    customer_pool = org.pool.id
    with pytest.raises(ValidationFailed) as exc:
        lead_capture.create_form(org.admin, {"name": "客户池", "pool_id": customer_pool,
                                             "policy_text": "t", "policy_version": "1"})
    assert exc.value.fields == {"pool_id": "线索公海不存在"}


def test_the_admin_page_shows_the_address_and_the_counts(app, db, admin_client, form):
    post(app.test_client(), form.token, dict(GOOD, website="x"))
    html = admin_client.get(f"/capture-forms/show/{form.id}").get_data(as_text=True)
    assert f"/forms/{form.token}" in html
    assert "0 条线索，0 条重复，1 条被蜜罐拦截，0 条有误" in html
    resp = admin_client.post("/capture-forms/add", data={
        "csrf_token": admin_client.csrf, "name": "展会登记", "channel": "exhibition",
        "pool_id": str(form.pool), "policy_text": "展会隐私政策", "policy_version": "v1",
        "is_active": "y"})
    assert resp.status_code == 302
    made = db.session.execute(select(CaptureForm).where(CaptureForm.name == "展会登记")
                              ).scalar_one()
    assert made.channel == "exhibition" and len(made.token) >= 32
