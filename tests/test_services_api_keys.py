"""API keys (app.services.api_keys): stored hashed, shown once, compared in constant time;
rotate and revoke take effect at once; a key serves one purpose; every use is audited
(without the secret) and an accepted one sets last_used_at."""
from __future__ import annotations

import hashlib
import threading

import pytest
from sqlalchemy import func, select

from app.models import ApiKey, AuditLog
from app.services import api_keys
from app.services.errors import (Conflict, PermissionDenied, TooManyRequests, Unauthorized,
                                 ValidationFailed)


def _refusal(err_type, call):
    with pytest.raises(err_type) as err:
        call()
    return err.value


def _uses(db) -> list[dict]:
    rows = db.session.execute(select(AuditLog).where(AuditLog.action == api_keys.USE)
                              .order_by(AuditLog.id)).scalars()
    return [dict(r.changes, object_id=r.object_id) for r in rows]


def test_a_new_key_is_stored_as_its_hash_only(db, org):
    key, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    assert raw.startswith(f"gsk_{key.prefix}_") and len(key.prefix) == 8
    assert key.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    db.session.expire_all()
    row = db.session.get(ApiKey, key.id)
    stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert not any(raw in value or raw.split("_", 2)[2] in value for value in stored)
    audit_texts = [str(r.changes) for r in db.session.execute(select(AuditLog)).scalars()]
    assert not any(raw.split("_", 2)[2] in text for text in audit_texts)
    created = db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "api_key", AuditLog.action == "create")).scalar_one()
    assert created.changes == {"name": [None, "短信网关"], "purpose": [None, "sms_inbound"],
                               "prefix": [None, key.prefix]}


@pytest.mark.parametrize("role", ["manager", "rep", "staff", "auditor"])
def test_only_admins_manage_keys(db, org, role):
    actor = getattr(org, role)
    err = _refusal(PermissionDenied, lambda: api_keys.create_key(actor, "k", "sms_inbound"))
    assert err.message == "只有管理员可以管理 API 密钥"
    key, _ = api_keys.create_key(org.admin, "k", "sms_inbound")
    for verb in (api_keys.rotate_key, api_keys.revoke_key):
        assert _refusal(PermissionDenied, lambda: verb(actor, key.id)).code == "forbidden"
    db.session.expire_all()
    assert db.session.get(ApiKey, key.id).revoked_at is None


@pytest.mark.parametrize("name,purpose,fields", [
    ("", "sms_inbound", {"name": "必填"}),
    ("x" * 101, "sms_inbound", {"name": "不能超过 100 个字符"}),
    ("网关", "telepathy", {"purpose": "用途只能是以下之一：sms_inbound, email_inbound, "
                                    "call_events, web_forms"}),
    ("a\x00b", None, {"name": "name 含有不允许的字符（NUL 或不成对的代理字符）",
                      "purpose": "用途只能是以下之一：sms_inbound, email_inbound, "
                                 "call_events, web_forms"}),
])
def test_bad_input_names_the_field(db, org, name, purpose, fields):
    err = _refusal(ValidationFailed, lambda: api_keys.create_key(org.admin, name, purpose))
    assert err.fields == fields


def test_a_name_is_taken_once(db, org):
    api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    err = _refusal(Conflict, lambda: api_keys.create_key(org.admin, "短信网关", "web_forms"))
    assert (err.code, err.message) == ("duplicate_name", "已有名为 短信网关 的 API 密钥")


@pytest.mark.real_db
def test_two_admins_creating_one_name_at_once_make_one_key(app, db, org):
    admin_id = org.admin.id
    start = threading.Barrier(3)
    answers, errors = [], []

    def create():
        with app.app_context():
            from app.extensions import db as thread_db
            from app.models import User

            try:
                actor = thread_db.session.get(User, admin_id)
                start.wait(timeout=60)
                api_keys.create_key(actor, "同名", "sms_inbound")
                answers.append("ok")
            except Conflict as exc:
                answers.append(exc.code)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                thread_db.session.remove()

    threads = [threading.Thread(target=create) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert sorted(answers) == ["duplicate_name", "duplicate_name", "ok"]
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(ApiKey)).scalar_one() == 1


def test_authenticate_accepts_records_last_use_and_audits_without_the_secret(db, org):
    key, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    assert key.last_used_at is None
    found = api_keys.authenticate(raw, "sms_inbound", "/api/v1/hooks/sms-reply")
    assert found.id == key.id
    db.session.expire_all()
    assert db.session.get(ApiKey, key.id).last_used_at is not None
    assert _uses(db) == [{"purpose": [None, "sms_inbound"],
                          "endpoint": [None, "/api/v1/hooks/sms-reply"],
                          "result": [None, "ok"], "prefix": [None, key.prefix],
                          "object_id": key.id}]


def test_the_hashes_are_compared_in_constant_time(db, org, monkeypatch):
    key, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    calls = []
    real = api_keys.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(api_keys, "compare_digest", spy)
    api_keys.authenticate(raw, "sms_inbound")
    assert calls == [(key.secret_hash, key.secret_hash)]
    # An unknown prefix is hashed and compared too (against a dummy), not answered early.
    _refusal(Unauthorized, lambda: api_keys.authenticate("gsk_00000000_" + "a" * 43,
                                                          "sms_inbound"))
    assert len(calls) == 2 and calls[1][1] == api_keys._DUMMY_HASH


@pytest.mark.parametrize("raw,code,message", [
    (None, "missing_key", "需要 API 密钥：Authorization: Bearer <密钥> 或 X-Api-Key 请求头"),
    ("", "missing_key", "需要 API 密钥：Authorization: Bearer <密钥> 或 X-Api-Key 请求头"),
    ("not-a-key", "unknown_key", "未知的 API 密钥"),
    ("gsk_00000000_" + "a" * 43, "unknown_key", "未知的 API 密钥"),
    ("x" * 5000, "unknown_key", "未知的 API 密钥"),
])
def test_missing_and_unknown_keys_are_401_and_audited(db, org, raw, code, message):
    err = _refusal(Unauthorized, lambda: api_keys.authenticate(raw, "sms_inbound"))
    assert (err.status, err.code, err.message) == (401, code, message)
    (use,) = _uses(db)
    assert use["result"] == [None, code] and use["object_id"] is None


def test_wrong_purpose_is_403_naming_both(db, org):
    key, raw = api_keys.create_key(org.admin, "表单", "web_forms")
    err = _refusal(PermissionDenied, lambda: api_keys.authenticate(raw, "sms_inbound"))
    assert (err.status, err.code, err.message) == (
        403, "wrong_purpose", "该 API 密钥用于 web_forms，不能用于 sms_inbound")
    assert _uses(db)[-1]["result"] == [None, "wrong_purpose"]
    db.session.expire_all()
    assert db.session.get(ApiKey, key.id).last_used_at is None


def test_revoke_stops_the_key_at_once(db, org):
    key, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    api_keys.revoke_key(org.admin, key.id)
    err = _refusal(Unauthorized, lambda: api_keys.authenticate(raw, "sms_inbound"))
    assert (err.code, err.message) == ("revoked_key", "该 API 密钥已被吊销")
    assert _uses(db)[-1] == {"purpose": [None, "sms_inbound"], "endpoint": [None, ""],
                             "result": [None, "revoked_key"], "prefix": [None, key.prefix],
                             "object_id": key.id}
    for verb in (api_keys.rotate_key, api_keys.revoke_key):
        assert _refusal(Conflict, lambda: verb(org.admin, key.id)).code == "revoked_key"
    assert db.session.execute(select(AuditLog.action).where(
        AuditLog.object_type == "api_key", AuditLog.actor_id == org.admin.id)
        .order_by(AuditLog.id)).scalars().all() == ["create", "revoke"]


def test_rotate_gives_a_new_secret_and_the_old_one_stops_at_once(db, org):
    key, old = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    same, new = api_keys.rotate_key(org.admin, key.id)
    assert same.id == key.id and new != old and new.startswith(f"gsk_{key.prefix}_")
    assert same.secret_hash == hashlib.sha256(new.encode()).hexdigest()
    assert _refusal(Unauthorized, lambda: api_keys.authenticate(old, "sms_inbound")).code \
        == "unknown_key"
    assert api_keys.authenticate(new, "sms_inbound").id == key.id
    # The stale secret's refusal is logged against the key: someone still uses the old one.
    assert [u["result"][1] for u in _uses(db)] == ["unknown_key", "ok"]
    assert _uses(db)[0]["object_id"] == key.id


def test_uses_beyond_the_rate_are_429_and_audited(db, org, app, monkeypatch):
    monkeypatch.setitem(app.config, "API_KEY_RATE_PER_MINUTE", 2)
    key, raw = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    api_keys.authenticate(raw, "sms_inbound")
    api_keys.authenticate(raw, "sms_inbound")
    err = _refusal(TooManyRequests, lambda: api_keys.authenticate(raw, "sms_inbound"))
    assert (err.status, err.code, err.message) == (
        429, "rate_limited", "该 API 密钥请求过于频繁：每分钟最多 2 次")
    assert [u["result"][1] for u in _uses(db)] == ["ok", "ok", "rate_limited"]


def test_key_from_headers_reads_bearer_then_x_api_key():
    assert api_keys.key_from_headers({"Authorization": "Bearer gsk_a"}) == "gsk_a"
    assert api_keys.key_from_headers({"Authorization": "bearer  gsk_a "}) == "gsk_a"
    assert api_keys.key_from_headers({"X-Api-Key": "gsk_b"}) == "gsk_b"
    assert api_keys.key_from_headers({"Authorization": "Basic eA==", "X-Api-Key": ""}) is None
