"""POST /api/v1/hooks/sms-reply: authenticated by an API key of purpose sms_inbound only
(never a session or JWT), the sender matched by its normalised number, the owner notified,
bad input a 400 naming the field, every use audited."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditLog, Notification
from app.services import api_keys, customers

URL = "/api/v1/hooks/sms-reply"


@pytest.fixture
def key(db, org):
    made, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    return raw


def post(app, raw=None, json=None, header="X-Api-Key", **kwargs):
    headers = {}
    if raw is not None:
        headers = {"Authorization": f"Bearer {raw}"} if header == "bearer" else {header: raw}
    return app.test_client().post(URL, json=json, headers=headers, **kwargs)


def _uses(db) -> list[str]:
    db.session.expire_all()
    return [r.changes["result"][1] for r in db.session.execute(
        select(AuditLog).where(AuditLog.action == api_keys.USE).order_by(AuditLog.id)).scalars()]


def _notes(db, kind="sms_reply") -> list[tuple]:
    db.session.expire_all()
    return [(n.user_id, n.title, n.body, n.link) for n in db.session.execute(
        select(Notification).where(Notification.kind == kind)).scalars()]


@pytest.mark.parametrize("header", ["X-Api-Key", "bearer"])
def test_a_reply_from_a_customers_mobile_notifies_its_owner(app, db, org, key, header):
    resp = post(app, key, {"from": "+86 138-0013-8000", "text": "好的，明天联系",
                           "received_at": "2026-12-01T09:30:00+08:00"}, header=header)
    assert (resp.status_code, resp.get_json()) == (200, {"matched": True,
                                                         "customer_id": org.c_rep.id})
    assert _notes(db) == [(org.rep.id, "客户「杭州云帆科技有限公司」回复了短信（2026-12-01 09:30）",
                           "好的，明天联系", f"/customers/show/{org.c_rep.id}")]
    entry = db.session.execute(select(AuditLog).where(AuditLog.action == "sms_reply")
                               ).scalar_one()
    assert (entry.object_type, entry.object_id) == ("customer", org.c_rep.id)
    assert entry.changes["mobile"] == [None, "+8613800138000"]
    assert entry.changes["text"] == [None, "好的，明天联系"]
    assert _uses(db) == ["ok"]


def test_a_contacts_number_matches_its_customer(app, db, org, key):
    customers.add_contact(org.rep2, org.c_rep2.id, {"name": "王经理", "mobile": "13700137000"})
    resp = post(app, key, {"from": "13700137000", "text": "收到"})
    assert resp.get_json() == {"matched": True, "customer_id": org.c_rep2.id}
    assert [n[0] for n in _notes(db)] == [org.rep2.id]


def test_a_pool_customers_reply_is_only_audited(app, db, org, key):
    resp = post(app, key, {"from": "02162345678", "text": "请回电"})
    assert (resp.status_code, resp.get_json()) == (200, {"matched": True,
                                                         "customer_id": org.c_pool.id})
    assert _notes(db) == []
    entry = db.session.execute(select(AuditLog).where(AuditLog.action == "sms_reply")
                               ).scalar_one()
    assert entry.object_id == org.c_pool.id and entry.changes["text"] == [None, "请回电"]


def test_no_match_is_202(app, db, org, key):
    resp = post(app, key, {"from": "13600136000", "text": "你是谁"})
    assert (resp.status_code, resp.get_json()) == (202, {"matched": False})
    assert _notes(db) == [] and _uses(db) == ["ok"]


@pytest.mark.parametrize("body,fields", [
    ({"from": "12345", "text": "x"}, {"from": "无效的电话号码：12345"}),
    ({"from": "13800138000", "text": "  "}, {"text": "必填"}),
    ({"from": "13800138000"}, {"text": "必填"}),
    ({"from": "13800138000", "text": "长" * 1001}, {"text": "不能超过 1000 个字符"}),
    ({"from": "1" * 41, "text": "x"}, {"from": "不能超过 40 个字符"}),
    ({"from": "13800138000", "text": "x", "received_at": "昨天"},
     {"received_at": "received_at 必须是 RFC 3339 时间，例如 2026-12-01T09:30:00+08:00"}),
    ({"from": "13800138000", "text": "x", "colour": "red"}, {"colour": "不能修改或不存在的字段"}),
])
def test_bad_input_is_400_naming_the_field(app, db, org, key, body, fields):
    resp = post(app, key, body)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["code"] == "invalid"
    assert resp.get_json()["fields"] == fields
    assert _notes(db) == []


def test_a_nul_byte_is_400_naming_the_field(app, db, org, key):
    resp = post(app, key, {"from": "13800138000", "text": "a\x00b"})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"text": "text 含有不允许的字符（NUL 或不成对的代理字符）"}


def test_a_body_that_is_not_json_is_400(app, db, org, key):
    resp = app.test_client().post(URL, data="from=1", headers={"X-Api-Key": key})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"body": "请求体必须是 JSON 对象"}


def test_a_body_over_16_kib_is_413(app, db, org, key):
    resp = post(app, key, {"from": "13800138000", "text": "x" * 17_000})
    assert (resp.status_code, resp.get_json()["code"]) == (413, "too_large")


def test_no_key_is_401(app, db, org):
    resp = post(app, None, {"from": "13800138000", "text": "x"})
    assert resp.status_code == 401
    assert resp.get_json() == {"code": "missing_key", "message":
                               "需要 API 密钥：Authorization: Bearer <密钥> 或 X-Api-Key 请求头"}
    assert _uses(db) == ["missing_key"]


def test_a_revoked_key_is_401(app, db, org):
    made, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    api_keys.revoke_key(org.admin, made.id)
    resp = post(app, raw, {"from": "13800138000", "text": "x"})
    assert (resp.status_code, resp.get_json()["code"]) == (401, "revoked_key")
    assert _notes(db) == [] and _uses(db) == ["revoked_key"]


def test_a_key_for_another_purpose_is_403(app, db, org):
    _, raw = api_keys.create_key(org.admin, "表单", "web_forms")
    resp = post(app, raw, {"from": "13800138000", "text": "x"})
    assert resp.status_code == 403
    assert resp.get_json() == {"code": "wrong_purpose",
                               "message": "该 API 密钥用于 web_forms，不能用于 sms_inbound"}


def test_a_signed_in_session_or_a_jwt_is_no_key(app, db, org, clients, api):
    """The cookie carries no authority here (so there is no CSRF to forge), nor a JWT."""
    resp = clients.admin.post(URL, json={"from": "13800138000", "text": "x"})
    assert (resp.status_code, resp.get_json()["code"]) == (401, "missing_key")
    resp = api("admin")("POST", URL, json={"from": "13800138000", "text": "x"})
    assert (resp.status_code, resp.get_json()["code"]) == (401, "unknown_key")
    assert _notes(db) == []


def test_every_use_is_audited_and_the_last_use_recorded(app, db, org):
    from app.models import ApiKey

    made, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    post(app, raw, {"from": "13800138000", "text": "x"})
    post(app, raw, {"from": "13600136000", "text": "x"})
    post(app, "gsk_00000000_" + "b" * 43, {"from": "13800138000", "text": "x"})
    assert _uses(db) == ["ok", "ok", "unknown_key"]
    assert db.session.get(ApiKey, made.id).last_used_at is not None
    texts = [str(r.changes) for r in db.session.execute(select(AuditLog)).scalars()]
    assert not any(raw.split("_", 2)[2] in t for t in texts)


def test_the_spec_declares_the_hook_with_its_key_schemes(api):
    spec = api("admin")("GET", "/api/v1/_openapi").get_json()
    operation = spec["paths"][URL]["post"]
    assert operation["security"] == [{"machine_key_bearer": []}, {"machine_key_header": []}]
    assert {"200", "202", "400", "401", "403", "413", "429"} <= set(operation["responses"])
    schemes = spec["components"]["securitySchemes"]
    assert schemes["machine_key_header"] == {
        "type": "apiKey", "in": "header", "name": "X-Api-Key",
        "description": "The same API key in the X-Api-Key header"}
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SmsReply"}
