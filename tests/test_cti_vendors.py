"""The vendor adapters end to end, from the sample payloads in tests/fixtures/cti/ (written
from the vendors' published field lists): Tinet's CDR push signed with Tinet's own md5
scheme, TCCC's ?action=cdr / ?action=record push with basic authentication and its push id;
each refused when its authentication fails, each bad field named in the vendor's words."""
from __future__ import annotations

import base64
import json
import time

import pytest
from sqlalchemy import func, select

from app.models import CtiCall, CtiEvent, FollowUp, Task
from app.services import api_keys
from app.services.cti_vendors import tencent, tinet
from app.services.errors import ValidationFailed
from tests.cti_fixtures import call_key, fixture


@pytest.fixture
def seats(db, org):
    org.rep.agent_no, org.agent.agent_no = "8001", "9001"
    db.session.commit()
    return org


def _count(db, model) -> int:
    db.session.expire_all()
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


# --- Tinet ----------------------------------------------------------------------------------
def _tinet(client, key, raw, payload, stamp=None, sign=None, enterprise="7000101"):
    stamp = str(int(time.time()) if stamp is None else stamp)
    sign = sign or tinet.sign(enterprise, stamp, api_keys.signing_secret(key))
    return client.post(f"/api/v1/cti/vendors/tinet?enterpriseId={enterprise}&timestamp={stamp}"
                       f"&sign={sign}", data=json.dumps(payload, ensure_ascii=False),
                       headers={"X-Api-Key": raw, "Content-Type": "application/json"})


def test_tinet_answered_cdr_becomes_a_call_and_a_followup(app, db, seats):
    org = seats
    key, raw = call_key(org)
    payload = fixture("tinet_cdr_inbound_answered.json")
    resp = _tinet(app.test_client(), key, raw, payload)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    call = db.session.get(CtiCall, resp.get_json()["call_pk"])
    assert (call.vendor, call.call_id, call.direction, call.state, call.result) == \
        ("tinet", payload["uniqueId"], "in", "ended", "answered")
    assert (call.customer_id, call.number_e164, call.agent_id, call.queue) == \
        (org.c_rep.id, "+8613800138000", org.rep.id, "0001")
    assert call.talk_seconds == 125
    assert call.answered_at.isoformat() == "2025-11-30T00:00:10"
    assert call.started_at.isoformat() == "2025-11-30T00:00:00"
    assert call.ended_at.isoformat() == "2025-11-30T00:02:15"
    assert call.recording_url == payload["recordFile"]
    followup = db.session.get(FollowUp, call.followup_id)
    assert followup.content == f"来电 2分05秒 · 坐席 {org.rep.display_name}"
    stored = db.session.execute(select(CtiEvent)).scalar_one()
    assert json.loads(stored.raw) == payload and stored.type == "cdr"
    # Tinet pushes again (a retry): nothing changes.
    again = _tinet(app.test_client(), key, raw, payload)
    assert again.get_json()["duplicate"] is True
    assert _count(db, CtiEvent) == 1


def test_tinet_missed_cdr_opens_a_call_back(app, db, seats):
    org = seats
    key, raw = call_key(org)
    resp = _tinet(app.test_client(), key, raw, fixture("tinet_cdr_inbound_missed.json"))
    assert resp.status_code == 200
    call = db.session.get(CtiCall, resp.get_json()["call_pk"])
    assert (call.result, call.talk_seconds, call.answered_at) == ("missed", 0, None)
    task = db.session.get(Task, call.callback_task_id)
    assert (task.owner_id, task.source, task.status) == (org.rep.id, "call", "open")


def test_tinet_click_to_call_links_back_by_its_request_id(app, db, seats):
    org = seats
    dialing = CtiCall(direction="out", state="dialing", crm_ref="gs-ref-0001",
                      customer_id=org.c_rep.id, dialed_by_id=org.rep.id)
    db.session.add(dialing)
    db.session.commit()
    key, raw = call_key(org)
    resp = _tinet(app.test_client(), key, raw, fixture("tinet_cdr_outbound_click_to_call.json"))
    assert resp.get_json()["call_pk"] == dialing.id
    db.session.expire_all()
    call = db.session.get(CtiCall, dialing.id)
    assert (call.direction, call.result, call.talk_seconds, call.callee) == \
        ("out", "answered", 3, "13800138000")
    # a 3-second call: logged, clock untouched (the default 30 s)
    assert db.session.get(FollowUp, call.followup_id).content.startswith("去电 3秒")


@pytest.mark.parametrize("how, code", [("sign", "bad_signature"), ("stale", "stale_signature"),
                                       ("enterprise", "bad_signature"),
                                       ("nokey", "missing_key"), ("digit", "bad_signature")])
def test_tinet_refuses_what_its_sign_does_not_hold(app, db, seats, how, code):
    key, raw = call_key(seats)
    payload = fixture("tinet_cdr_inbound_answered.json")
    client = app.test_client()
    if how == "sign":
        resp = _tinet(client, key, raw, payload, sign="0" * 32)
    elif how == "stale":
        resp = _tinet(client, key, raw, payload, stamp=int(time.time()) - 1800)
    elif how == "digit":  # '²' is a digit to str.isdigit, not to int()
        resp = _tinet(client, key, raw, payload, stamp="\u00b2")
    elif how == "enterprise":  # signed for one enterprise, sent as another
        stamp = str(int(time.time()))
        sign = tinet.sign("7000101", stamp, api_keys.signing_secret(key))
        resp = _tinet(client, key, raw, payload, stamp=stamp, sign=sign, enterprise="7000102")
    else:
        resp = client.post("/api/v1/cti/vendors/tinet", json=payload)
    assert resp.status_code == 401 and resp.get_json()["code"] == code
    assert _count(db, CtiEvent) == 0


@pytest.mark.parametrize("field, value", [("uniqueId", None), ("startTime", "yesterday"),
                                          ("status", None), ("callType", True),
                                          ("customerNumber", "1" * 65), ("cno", ["8001"]),
                                          ("bridgeDuration", 10**14),
                                          ("callType", "\u00b2"), ("status", "\u0661")])
def test_tinet_names_its_bad_field(app, db, seats, field, value):
    key, raw = call_key(seats)
    payload = fixture("tinet_cdr_inbound_answered.json")
    payload[field] = value
    resp = _tinet(app.test_client(), key, raw, payload)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert field in resp.get_json()["fields"]


def test_tinet_status_codes_map_to_results():
    base = fixture("tinet_cdr_inbound_missed.json")
    for status, call_type, result in ((1, 1, "answered"), (2, 1, "missed"), (3, 1, "failed"),
                                      (12, 2, "missed"), (33, 3, "answered"),
                                      (32, 3, "no_answer"), (30, 4, "failed"),
                                      (99, 1, "failed")):
        [event] = tinet.events(dict(base, status=status, callType=call_type))
        assert event["result"] == result, status
        assert event["direction"] == ("in" if call_type in (1, 2) else "out")


# --- Tencent Cloud Contact Center -----------------------------------------------------------
def _basic(password: str, user: str = "tccc") -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def _tencent(client, raw, action, payload, push_id=None):
    headers = _basic(raw)
    if push_id:
        headers["X-TCCC-PUSH-UUID"] = push_id
    return client.post(f"/api/v1/cti/vendors/tencent?action={action}&version=1",
                       data=json.dumps(payload, ensure_ascii=False), headers=headers)


def test_tencent_cdr_and_recording_end_to_end(app, db, seats):
    org = seats
    _key, raw = call_key(org)
    client = app.test_client()
    resp = _tencent(client, raw, "cdr", fixture("tencent_cdr_inbound_answered.json"),
                    push_id="6f1c0d7e-push-0001")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["ErrCode"], body["duplicate"], body["state"]) == (0, False, "ended")
    call = db.session.get(CtiCall, body["call_pk"])
    assert (call.vendor, call.call_id, call.result, call.talk_seconds) == \
        ("tencent", "e97be0ab-1ef6-4ad2-a8c4-2b2bbfb18e55", "answered", 96)
    assert (call.customer_id, call.agent_id, call.queue) == \
        (org.c_rep.id, org.agent.id, "客服热线")
    followup = db.session.get(FollowUp, call.followup_id)
    # the agent (a service agent) is named; the follow-up is the agent's
    assert followup.content == f"来电 1分36秒 · 坐席 {org.agent.display_name}"
    assert followup.user_id == org.agent.id
    # TCCC retries the push with the same push id: nothing changes
    again = _tencent(client, raw, "cdr", fixture("tencent_cdr_inbound_answered.json"),
                     push_id="6f1c0d7e-push-0001")
    assert again.get_json()["duplicate"] is True and again.get_json()["ErrCode"] == 0
    # the user-side recording
    record = fixture("tencent_record.json")
    resp = _tencent(client, raw, "record", record, push_id="6f1c0d7e-push-0002")
    assert resp.status_code == 200 and resp.get_json()["call_pk"] == call.id
    db.session.expire_all()
    call = db.session.get(CtiCall, call.id)
    assert call.recording_url == record["RecordURL"]
    assert call.recording_expires_at.isoformat() == "2026-02-28T00:01:50"  # +90 days
    assert _count(db, CtiEvent) == 2


def test_tencent_missed_cdr_opens_a_call_back_for_the_dedicated_agent(app, db, seats):
    from app.models import CustomerServiceAgent

    org = seats
    db.session.add(CustomerServiceAgent(customer_id=org.c_rep.id, agent_id=org.agent2.id))
    db.session.commit()
    _key, raw = call_key(org)
    resp = _tencent(app.test_client(), raw, "cdr", fixture("tencent_cdr_inbound_missed.json"))
    assert resp.status_code == 200
    call = db.session.get(CtiCall, resp.get_json()["call_pk"])
    assert call.result == "missed"
    assert db.session.get(Task, call.callback_task_id).owner_id == org.agent2.id
    # without a push id the session names the event: the same push again is a duplicate
    again = _tencent(app.test_client(), raw, "cdr", fixture("tencent_cdr_inbound_missed.json"))
    assert again.get_json()["duplicate"] is True


@pytest.mark.parametrize("how, status, code", [
    ("password", 401, "unknown_key"), ("none", 401, "missing_key"),
    ("purpose", 403, "wrong_purpose"), ("bearer", 401, "missing_key")])
def test_tencent_refuses_a_bad_basic_authentication(app, db, seats, how, status, code):
    _key, raw = call_key(seats)
    client = app.test_client()
    payload = json.dumps(fixture("tencent_cdr_inbound_answered.json"))
    url = "/api/v1/cti/vendors/tencent?action=cdr"
    if how == "password":
        resp = client.post(url, data=payload, headers=_basic(raw[:-2] + "zz"))
    elif how == "none":
        resp = client.post(url, data=payload, headers={"Content-Type": "application/json"})
    elif how == "purpose":
        _other, sms_raw = call_key(seats, "短信", "sms_inbound")
        resp = client.post(url, data=payload, headers=_basic(sms_raw))
    else:
        resp = client.post(url, data=payload, headers={"Authorization": f"Bearer {raw}"})
    assert (resp.status_code, resp.get_json()["code"]) == (status, code)
    assert _count(db, CtiEvent) == 0


@pytest.mark.parametrize("action, field, value", [
    ("cdr", "SessionId", None), ("cdr", "Direction", 7), ("cdr", "StartTimestamp", "soon"),
    ("cdr", "SeatUser", "agent1"), ("cdr", "Caller", {"n": 1}), ("record", "RecordId", None),
    ("record", "Timestamp", None), ("record", "RecordURL", None),
    ("record", "Timestamp", 999999999999), ("cdr", "Duration", "\u00b2")])
def test_tencent_names_its_bad_field(app, db, seats, action, field, value):
    _key, raw = call_key(seats)
    name = "tencent_record.json" if action == "record" else "tencent_cdr_inbound_answered.json"
    payload = fixture(name)
    payload[field] = value
    resp = _tencent(app.test_client(), raw, action, payload)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert field in resp.get_json()["fields"]


def test_tencent_unknown_action_is_named(app, db, seats):
    _key, raw = call_key(seats)
    resp = _tencent(app.test_client(), raw, "voicemail", fixture("tencent_record.json"))
    assert resp.status_code == 400 and "action" in resp.get_json()["fields"]


def test_tencent_end_statuses_map_to_results():
    base = fixture("tencent_cdr_inbound_missed.json")
    for status, accepted, result in ((1, 1764464410, "answered"), (1, 0, "missed"),
                                     (104, 0, "missed"), (107, 0, "failed"),
                                     (202, 0, "no_answer"), (206, 0, "busy"),
                                     (205, 0, "failed")):
        [event] = tencent.events("cdr", dict(base, EndStatus=status, AcceptTimestamp=accepted))
        assert event["result"] == result, status
    with pytest.raises(ValidationFailed):
        tencent.events("cdr", ["not", "an", "object"])
