"""POST /api/v1/cti/events: an API key of purpose call_events and the HMAC signature of
timestamp + body; a replay is a no-op, a stale or forged signature is refused, the wrong key
too, a bad field named; sessions and JWTs carry no authority here. The signing secret is
shown once with a call_events key."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import re
import time

import pytest
from sqlalchemy import func, select

from app.models import AuditLog, CtiCall, CtiEvent, FollowUp
from app.services import api_keys, cti_events
from app.services.errors import GuishuError
from tests.conftest import login
from tests.cti_fixtures import at, call_key, event, post_event, signed_headers
from tests.helpers import in_threads


def _events(db) -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(CtiEvent)).scalar_one()


def test_a_signed_event_is_taken_and_its_replay_changes_nothing(app, db, org):
    key, raw = call_key(org)
    client = app.test_client()
    payload = event("ringing", occurred_at=at(5))
    resp = post_event(client, key, raw, payload)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["duplicate"] is False and body["state"] == "ringing"
    call = db.session.get(CtiCall, body["call_pk"])
    assert call.customer_id == org.c_rep.id
    stored = db.session.get(CtiEvent, body["event_pk"])
    assert stored.api_key_id == key.id and json.loads(stored.raw) == payload
    # The same event again, freshly signed: 200, duplicate, nothing new.
    again = post_event(client, key, raw, payload)
    assert again.status_code == 200
    assert again.get_json() == dict(body, duplicate=True)
    assert _events(db) == 1


def test_a_stale_timestamp_is_refused(app, db, org):
    key, raw = call_key(org)
    client = app.test_client()
    for skew in (-330, 330):  # margins: a busy machine takes seconds between sign and check
        resp = post_event(client, key, raw, event("ringing"), timestamp=int(time.time()) + skew)
        assert resp.status_code == 401
        assert resp.get_json()["code"] == "stale_signature"
    resp = post_event(client, key, raw, event("ringing"),  # '²': isdigit, but no int
                      headers={"X-Guishu-Timestamp": "\u00b2"})
    assert (resp.status_code, resp.get_json()["code"]) == (401, "bad_signature")
    assert post_event(client, key, raw, event("ringing"),
                      timestamp=int(time.time()) - 270).status_code == 200
    assert _events(db) == 1
    refused = db.session.execute(select(AuditLog).where(
        AuditLog.action == "api_key_signature_refused")).scalars().all()
    assert [r.changes["result"][1] for r in refused] == ["stale_signature"] * 2 + [
        "bad_signature"]


@pytest.mark.parametrize("tamper", ["body", "signature", "secret", "missing", "timestamp"])
def test_a_forged_signature_is_refused(app, db, org, tamper):
    key, raw = call_key(org)
    body = json.dumps(event("ringing")).encode()
    headers = signed_headers(key, raw, body)
    if tamper == "body":
        body = body.replace(b"ringing", b"hangup\x20")
    elif tamper == "signature":
        headers["X-Guishu-Signature"] = "sha256=" + "0" * 64
    elif tamper == "secret":  # signed with the key itself instead of its signing secret
        headers["X-Guishu-Signature"] = api_keys.sign(raw, headers["X-Guishu-Timestamp"], body)
    elif tamper == "missing":
        del headers["X-Guishu-Signature"]
    else:
        headers["X-Guishu-Timestamp"] = "soon"
    resp = app.test_client().post("/api/v1/cti/events", data=body, headers=headers)
    assert resp.status_code == 401
    assert resp.get_json()["code"] == "bad_signature"
    assert _events(db) == 0


def test_a_rotated_key_signs_with_a_new_secret(app, db, org):
    key, raw = call_key(org)
    old_secret = api_keys.signing_secret(key)
    key, new_raw = api_keys.rotate_key(org.admin, key.id)
    assert api_keys.signing_secret(key) != old_secret
    body = json.dumps(event("ringing")).encode()
    stamp = str(int(time.time()))
    headers = {"Authorization": f"Bearer {new_raw}", "Content-Type": "application/json",
               "X-Guishu-Timestamp": stamp,
               "X-Guishu-Signature": api_keys.sign(old_secret, stamp, body)}
    resp = app.test_client().post("/api/v1/cti/events", data=body, headers=headers)
    assert resp.get_json()["code"] == "bad_signature"
    assert post_event(app.test_client(), key, new_raw, event("ringing")).status_code == 200


def test_keys_of_another_purpose_or_none_are_refused(app, db, org):
    sms_key, sms_raw = call_key(org, "短信网关", "sms_inbound")
    client = app.test_client()
    resp = post_event(client, sms_key, sms_raw, event("ringing"))
    assert (resp.status_code, resp.get_json()["code"]) == (403, "wrong_purpose")
    resp = client.post("/api/v1/cti/events", json=event("ringing"))
    assert (resp.status_code, resp.get_json()["code"]) == (401, "missing_key")
    key, raw = call_key(org)
    api_keys.revoke_key(org.admin, key.id)
    resp = post_event(client, key, raw, event("ringing"))
    assert (resp.status_code, resp.get_json()["code"]) == (401, "revoked_key")
    assert _events(db) == 0


@pytest.mark.parametrize("role", ["admin", "rep"])
def test_a_session_or_a_jwt_carries_no_authority(app, db, org, api, role):
    user = getattr(org, role)
    client = login(app.test_client(), user.username)
    resp = client.post("/api/v1/cti/events", json=event("ringing"),
                       headers={"X-CSRFToken": client.csrf})
    assert (resp.status_code, resp.get_json()["code"]) == (401, "missing_key")
    resp = client.post("/api/v1/cti/events", json=event("ringing"))  # no CSRF: still 401
    assert resp.status_code == 401
    resp = api(user.username)("POST", "/api/v1/cti/events", json=event("ringing"))
    assert (resp.status_code, resp.get_json()["code"]) == (401, "unknown_key")
    assert _events(db) == 0


def test_bad_bodies_answer_400_naming_the_field(app, db, org):
    key, raw = call_key(org)
    client = app.test_client()
    for payload, field in ((b"{not json", "body"), (b"[1, 2]", "body"), (b"\xff\xfe{}", "body"),
                           (b"", "body"),
                           (dict(event("ringing"), talk_seconds=-5), "talk_seconds"),
                           (dict(event("ringing"), caller="1" * 65), "caller"),
                           (dict(event("ringing"), event_id="\x00"), "event_id"),
                           (dict(event("ringing"), call_id={"id": 2**70}), "call_id"),
                           (dict(event("ringing"), occurred_at="tomorrow"), "occurred_at"),
                           (dict(event("ringing"), zz_undeclared=1), "zz_undeclared")):
        resp = post_event(client, key, raw, payload)
        assert resp.status_code == 400, (payload, resp.get_data(as_text=True))
        assert field in resp.get_json()["fields"], (payload, resp.get_json())
    assert _events(db) == 0


def test_a_body_over_64_kib_is_refused_before_anything_else(app, db, org):
    key, raw = call_key(org)
    payload = dict(event("ringing"), raw="x" * (65 * 1024))
    resp = post_event(app.test_client(), key, raw, payload)
    assert (resp.status_code, resp.get_json()["code"]) == (413, "too_large")


def test_call_event_keys_have_their_own_rate(app, db, org, monkeypatch):
    monkeypatch.setitem(app.config, "API_KEY_RATE_PER_MINUTE", 1)
    monkeypatch.setitem(app.config, "CTI_KEY_RATE_PER_MINUTE", 3)
    key, raw = call_key(org)
    client = app.test_client()
    codes = [post_event(client, key, raw, event("ringing", f"r{n}")).status_code
             for n in range(4)]
    assert codes == [200, 200, 200, 429]


def test_an_answered_call_over_http_becomes_a_followup(app, db, org):
    key, raw = call_key(org)
    client = app.test_client()
    for payload in (event("ringing", occurred_at=at(200)),
                    event("answered", occurred_at=at(190)),
                    event("hangup", talk_seconds=185, occurred_at=at(5))):
        assert post_event(client, key, raw, payload).status_code == 200
    followup = db.session.execute(select(FollowUp).where(
        FollowUp.customer_id == org.c_rep.id)).scalar_one()
    assert followup.content == "来电 3分05秒" and followup.user_id == org.rep.id


# --- the signing secret, shown once ---------------------------------------------------------
def test_the_signing_secret_is_shown_once_with_a_call_events_key(admin_client, db, org):
    client = admin_client
    resp = client.post("/api-keys/add", data={"csrf_token": client.csrf, "name": "话务平台",
                                              "purpose": "call_events"})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    raw = re.search(r'id="api-key-plaintext">([^<]+)<', html).group(1)
    secret = re.search(r'id="api-key-signing-secret">([0-9a-f]{64})<', html).group(1)
    key = api_keys.authenticate(raw, "call_events")
    assert secret == api_keys.signing_secret(key)
    assert secret not in client.get(f"/api-keys/show/{key.id}").get_data(as_text=True)
    resp = client.post("/api-keys/add", data={"csrf_token": client.csrf, "name": "短信",
                                              "purpose": "sms_inbound"})
    assert 'id="api-key-signing-secret"' not in resp.get_data(as_text=True)
    resp = client.post(f"/api-keys/action/rotate/{key.id}", data={"csrf_token": client.csrf})
    html = resp.get_data(as_text=True)
    rotated = re.search(r'id="api-key-signing-secret">([0-9a-f]{64})<', html).group(1)
    assert rotated != secret


# --- concurrency ----------------------------------------------------------------------------
@pytest.mark.real_db
def test_the_same_event_delivered_at_once_is_taken_once(app, db, org):
    payload = event("hangup", "race-1", occurred_at=at(5))
    results = in_threads(app, 8, lambda i: cti_events.ingest(dict(payload), None, "{}"))
    assert sorted(r.duplicate for r in results) == [False] + [True] * 7
    assert len({r.event_pk for r in results}) == 1
    db.session.expire_all()
    assert _events(db) == 1
    assert db.session.execute(select(func.count()).select_from(CtiCall)).scalar_one() == 1


@pytest.mark.real_db
def test_events_of_one_new_call_at_once_make_one_call_and_one_history(app, db, org):
    answered = at(100)
    payloads = [event("ringing", "race-2", occurred_at=at(110)),
                event("answered", "race-2", occurred_at=answered),
                event("hangup", "race-2", talk_seconds=95, occurred_at=at(5)),
                event("cdr", "race-2", talk_seconds=95, result="answered",
                      answered_at=answered, ended_at=at(5), occurred_at=at(5))]

    def work(i):
        try:
            return cti_events.ingest(payloads[i], None, "{}")
        except GuishuError as exc:  # pragma: no cover - would fail below
            return exc

    results = in_threads(app, len(payloads), work)
    assert all(not r.duplicate for r in results)
    db.session.expire_all()
    calls = db.session.execute(select(CtiCall)).scalars().all()
    assert len(calls) == 1
    call = calls[0]
    assert (call.state, call.result, call.talk_seconds) == ("ended", "answered", 95)
    assert db.session.execute(select(func.count()).select_from(FollowUp).where(
        FollowUp.customer_id == org.c_rep.id)).scalar_one() == 1
    assert _events(db) == 4


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_the_documented_openssl_signature_is_accepted(app, db, org):
    """docs/features.md signs with `printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256
    -hmac "$SECRET"`: the same signature the endpoint checks."""
    key, raw = call_key(org)
    body = json.dumps(event("ringing"), ensure_ascii=False)
    stamp = str(int(time.time()))
    script = ('printf \'%s.%s\' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" '
              '| sed \'s/^.* //\'')
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True,
                         env={"TS": stamp, "BODY": body, "PATH": os.environ["PATH"],
                              "SECRET": api_keys.signing_secret(key)}).stdout.strip()
    resp = app.test_client().post("/api/v1/cti/events", data=body.encode("utf-8"), headers={
        "Authorization": f"Bearer {raw}", "Content-Type": "application/json",
        "X-Guishu-Timestamp": stamp, "X-Guishu-Signature": f"sha256={out}"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
