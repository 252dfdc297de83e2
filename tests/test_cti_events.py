"""Call events in (app.services.cti_events.ingest): the neutral event checked field by field,
applied once per (vendor, event_id), out of order without moving a call backwards, and the
call becoming history — a follow-up that restarts the reclaim clock only past the owner's
minimum talk time, a call-back task for a missed call closed by a later answered one, the
recording, the agent's status."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from app.models import (CtiCall, CtiEvent, CustomerServiceAgent, FollowUp, Notification,
                        Ownership, Task)
from app.services import cti_events, leads, policy_config
from app.services.errors import ValidationFailed
from tests.cti_fixtures import at, event


@pytest.fixture
def agents(db, org):
    """rep1 sits at seat 8001, agent1 at 9001."""
    org.rep.agent_no, org.agent.agent_no = "8001", "9001"
    db.session.commit()
    return org


def _call(db, call_id="c1", vendor="acme") -> CtiCall:
    db.session.expire_all()
    return db.session.execute(select(CtiCall).where(CtiCall.vendor == vendor,
                                                    CtiCall.call_id == call_id)).scalar_one()


def _clock(db, customer_id):
    db.session.expire_all()
    return db.session.get(Ownership, customer_id).last_followup_at


def _answered_call(call_id="c1", talk=125, agent_no="8001", caller="13800138000"):
    answered = at(300)
    cti_events.ingest(event("ringing", call_id, agent_no=agent_no, caller=caller,
                            occurred_at=at(310)), None, "{}")
    cti_events.ingest(event("answered", call_id, agent_no=agent_no, caller=caller,
                            occurred_at=answered), None, "{}")
    cti_events.ingest(event("hangup", call_id, talk_seconds=talk, caller=caller,
                            ended_at=answered + dt.timedelta(seconds=talk),
                            occurred_at=answered + dt.timedelta(seconds=talk)), None, "{}")
    return answered


# --- history: follow-ups and the clock -----------------------------------------------------
def test_an_answered_call_becomes_a_followup_that_restarts_the_clock(db, agents):
    org = agents
    before = _clock(db, org.c_rep.id)
    answered = _answered_call(talk=125)
    call = _call(db)
    assert (call.customer_id, call.number_e164, call.agent_id) == \
        (org.c_rep.id, "+8613800138000", org.rep.id)
    assert (call.state, call.result, call.talk_seconds) == ("ended", "answered", 125)
    followup = db.session.get(FollowUp, call.followup_id)
    assert followup.channel == "call"
    assert followup.content == f"来电 2分05秒 · 坐席 {org.rep.display_name}"
    assert (followup.user_id, followup.customer_id, followup.happened_at) == \
        (org.rep.id, org.c_rep.id, answered)
    assert _clock(db, org.c_rep.id) == answered != before
    assert db.session.execute(select(func.count()).select_from(FollowUp).where(
        FollowUp.customer_id == org.c_rep.id)).scalar_one() == 1


def test_a_three_second_call_is_logged_but_keeps_the_customer_on_its_clock(db, agents):
    org = agents
    before = _clock(db, org.c_rep.id)
    _answered_call(talk=3)
    call = _call(db)
    followup = db.session.get(FollowUp, call.followup_id)
    assert followup.content == f"来电 3秒 · 坐席 {org.rep.display_name}"
    assert _clock(db, org.c_rep.id) == before


def test_thirty_seconds_is_the_default_threshold(db, agents):
    org = agents
    answered = _answered_call(call_id="c30", talk=30)
    assert _clock(db, org.c_rep.id) == answered
    org2 = agents
    before = _clock(db, org2.c_rep2.id)
    _answered_call(call_id="c29", talk=29, caller="13900139000")
    assert _clock(db, org2.c_rep2.id) == before


def test_the_owners_policy_sets_the_minimum_talk_time(db, agents):
    org = agents
    policy_config.create_policy(org.admin, {"scope": "user", "user_id": org.rep.id,
                                            "call_min_talk_seconds": 2})
    answered = _answered_call(talk=3)
    assert _clock(db, org.c_rep.id) == answered
    # rep2 keeps the global 30 seconds
    before = _clock(db, org.c_rep2.id)
    _answered_call(call_id="c2", talk=3, caller="13900139000")
    assert _clock(db, org.c_rep2.id) == before


def test_without_an_agent_the_owner_logs_an_outbound_call(db, agents):
    org = agents
    cti_events.ingest(event("answered", "o1", direction="out", caller="4008001234",
                            callee="13800138000", occurred_at=at(100)), None, "{}")
    cti_events.ingest(event("hangup", "o1", direction="out", caller="4008001234",
                            callee="13800138000", occurred_at=at(35)), None, "{}")
    call = _call(db, "o1")
    followup = db.session.get(FollowUp, call.followup_id)
    assert (call.talk_seconds, followup.user_id) == (65, org.rep.id)
    assert followup.content == "去电 1分05秒"


def test_a_pool_customer_call_is_no_followup(db, agents):
    org = agents
    _answered_call(caller="021-62345678")
    call = _call(db)
    assert call.customer_id == org.c_pool.id and call.followup_id is None


def test_the_cdr_after_the_hangup_corrects_the_followup_and_moves_the_clock(db, agents):
    org = agents
    before = _clock(db, org.c_rep.id)
    answered = _answered_call(talk=3)
    assert _clock(db, org.c_rep.id) == before
    cti_events.ingest(event("cdr", talk_seconds=45, result="answered", answered_at=answered,
                            occurred_at=at(200)), None, "{}")
    call = _call(db)
    assert call.talk_seconds == 45
    assert db.session.get(FollowUp, call.followup_id).content.startswith("来电 45秒")
    assert _clock(db, org.c_rep.id) == answered
    assert db.session.execute(select(func.count()).select_from(FollowUp).where(
        FollowUp.customer_id == org.c_rep.id)).scalar_one() == 1


# --- history: missed calls ------------------------------------------------------------------
def _missed(call_id="m1", caller="13800138000", **fields):
    cti_events.ingest(event("ringing", call_id, caller=caller, occurred_at=at(60)), None, "{}")
    return cti_events.ingest(event("hangup", call_id, caller=caller, occurred_at=at(50),
                                   **fields), None, "{}")


def _call_tasks(db, record_type="customer", record_id=None):
    db.session.expire_all()
    q = select(Task).where(Task.source == "call")
    if record_id is not None:
        q = q.where(Task.record_type == record_type, Task.record_id == record_id)
    return db.session.execute(q.order_by(Task.id)).scalars().all()


def test_a_missed_call_opens_one_call_back_for_the_owner_and_tells_them(db, agents):
    org = agents
    result = _missed()
    call = _call(db, "m1")
    assert (call.state, call.result) == ("ended", "missed")
    [task] = _call_tasks(db)
    assert (task.owner_id, task.record_type, task.record_id, task.status) == \
        (org.rep.id, "customer", org.c_rep.id, "open")
    assert task.subject == f"回电：{org.c_rep.name}"
    assert dt.timedelta(minutes=50) < task.due_at - at() <= dt.timedelta(hours=1)
    assert result.callback_task_id == task.id == call.callback_task_id
    notes = db.session.execute(select(Notification).where(
        Notification.kind == "missed_call")).scalars().all()
    assert [(n.user_id, n.title) for n in notes] == [(org.rep.id, f"未接来电：{org.c_rep.name}")]
    # A second missed call while the first is open: still one task, no second message.
    _missed("m2")
    assert len(_call_tasks(db)) == 1
    assert _call(db, "m2").callback_task_id == task.id
    assert db.session.execute(select(func.count()).select_from(Notification).where(
        Notification.kind == "missed_call")).scalar_one() == 1


def test_a_later_answered_call_closes_the_call_back(db, agents):
    from app.models import AuditLog

    org = agents
    _missed(result="busy")
    [task] = _call_tasks(db)
    assert (task.status, task.record_id) == ("open", org.c_rep.id)
    # an answered call with another customer leaves it open
    _answered_call(call_id="other", talk=40, caller="13900139000")
    assert [t.status for t in _call_tasks(db)] == ["open"]
    _answered_call(call_id="later", talk=40)
    [task] = _call_tasks(db)
    assert task.status == "done" and task.done_at is not None
    done = db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "task", AuditLog.object_id == task.id,
        AuditLog.action == "done")).scalar_one()
    assert done.actor_id is None and done.changes == {"status": ["open", "done"]}


def test_the_dedicated_service_agent_gets_the_call_back(db, agents):
    org = agents
    db.session.add(CustomerServiceAgent(customer_id=org.c_rep.id, agent_id=org.agent.id))
    db.session.commit()
    _missed(result="no_answer")
    [task] = _call_tasks(db)
    assert task.owner_id == org.agent.id
    assert db.session.execute(select(Notification.user_id).where(
        Notification.kind == "missed_call")).scalars().all() == [org.agent.id]


def test_a_missed_call_from_a_lead_goes_to_the_leads_owner(db, agents):
    org = agents
    lead = leads.create_lead(org.rep2, {"company_name": "来电线索公司",
                                        "mobile": "13700137000"})
    _missed(caller="13700137000")
    [task] = _call_tasks(db)
    assert (task.owner_id, task.record_type, task.record_id) == (org.rep2.id, "lead", lead.id)
    assert task.subject == "回电：来电线索公司"


def test_no_call_back_for_a_pool_customer_an_unknown_number_or_an_outbound_call(db, agents):
    _missed(caller="021-62345678")
    _missed("m2", caller="13011112222")
    cti_events.ingest(event("hangup", "o9", direction="out", callee="13800138000",
                            caller="4008001234", occurred_at=at(5)), None, "{}")
    assert _call_tasks(db) == []
    assert _call(db, "o9").result == "no_answer"


# --- idempotency and order ------------------------------------------------------------------
def test_the_same_event_twice_changes_nothing(db, agents):
    first = event("ringing", agent_no="8001", occurred_at=at(30))
    one = cti_events.ingest(first, None, "{}")
    two = cti_events.ingest(dict(first, type="hangup"), None, "{}")
    assert (one.duplicate, two.duplicate) == (False, True)
    assert two.event_pk == one.event_pk and two.call_pk == one.call_pk
    assert _call(db).state == "ringing"
    assert db.session.execute(select(func.count()).select_from(CtiEvent)).scalar_one() == 1
    # another vendor's event of the same id is another event
    three = cti_events.ingest(dict(first, vendor="other"), None, "{}")
    assert three.duplicate is False and three.call_pk != one.call_pk


def test_a_call_never_moves_backwards(db, agents):
    cti_events.ingest(event("hangup", occurred_at=at(10)), None, "{}")
    cti_events.ingest(event("ringing", occurred_at=at(40)), None, "{}")
    call = _call(db)
    assert (call.state, call.result) == ("ended", "missed")
    assert call.started_at == at(40) or abs((call.started_at - at(40)).total_seconds()) < 3


def test_a_late_answered_event_turns_a_missed_call_answered(db, agents):
    org = agents
    answered = at(100)
    cti_events.ingest(event("ringing", occurred_at=at(110)), None, "{}")
    cti_events.ingest(event("hangup", occurred_at=at(40)), None, "{}")
    assert len(_call_tasks(db)) == 1
    cti_events.ingest(event("answered", agent_no="8001", occurred_at=answered), None, "{}")
    call = _call(db)
    assert (call.state, call.result, call.answered_at) == ("ended", "answered", answered)
    assert 59 <= call.talk_seconds <= 61
    assert call.followup_id is not None
    assert [t.status for t in _call_tasks(db)] == ["done"]
    assert _clock(db, org.c_rep.id) == answered


def test_the_cdr_is_authoritative_whenever_it_arrives(db, agents):
    answered, ended = at(500), at(300)
    cti_events.ingest(event("cdr", result="answered", talk_seconds=200, answered_at=answered,
                            ended_at=ended, occurred_at=ended), None, "{}")
    cti_events.ingest(event("hangup", talk_seconds=50, result="missed",
                            ended_at=at(100), occurred_at=at(100)), None, "{}")
    cti_events.ingest(event("answered", occurred_at=at(400)), None, "{}")
    call = _call(db)
    assert (call.state, call.result, call.talk_seconds) == ("ended", "answered", 200)
    assert (call.answered_at, call.ended_at) == (answered, ended)


def test_a_click_to_call_row_takes_the_vendors_call_by_its_reference(db, agents):
    org = agents
    dialing = CtiCall(direction="out", state="dialing", crm_ref="ref-42", caller=None,
                      callee="13800138000", number_e164="+8613800138000",
                      customer_id=org.c_rep.id, dialed_by_id=org.rep.id, started_at=at(20))
    db.session.add(dialing)
    db.session.commit()
    result = cti_events.ingest(event("ringing", "v-77", direction="out", crm_ref="ref-42",
                                     caller="4008001234", callee="13800138000",
                                     occurred_at=at(15)), None, "{}")
    assert result.call_pk == dialing.id
    call = _call(db, "v-77")
    assert (call.id, call.state, call.vendor, call.customer_id) == \
        (dialing.id, "ringing", "acme", org.c_rep.id)
    assert db.session.execute(select(func.count()).select_from(CtiCall)).scalar_one() == 1


# --- recording and agent status -------------------------------------------------------------
def test_recording_ready_keeps_the_link_and_the_vendors_expiry(db, agents):
    _answered_call()
    expires = at() + dt.timedelta(days=90)
    cti_events.ingest(event("recording_ready", recording_url="https://rec.example.com/c1.mp3",
                            recording_expires_at=expires), None, "{}")
    call = _call(db)
    assert (call.recording_url, call.recording_expires_at, call.state) == \
        ("https://rec.example.com/c1.mp3", expires, "ended")


def test_agent_status_is_kept_when_newer(db, agents):
    org = agents
    busy_at = at(10)  # once: read again in the assertion it could be the next second
    cti_events.ingest({"event_id": "s1", "vendor": "acme", "type": "agent_status",
                       "agent_no": "8001", "status": "busy", "occurred_at": busy_at.isoformat()
                       + "Z"}, None, "{}")
    cti_events.ingest({"event_id": "s0", "vendor": "acme", "type": "agent_status",
                       "agent_no": "8001", "status": "available",
                       "occurred_at": int((at(60) - dt.datetime(1970, 1, 1)).total_seconds())},
                      None, "{}")
    db.session.expire_all()
    assert (org.rep.agent_status, org.rep.agent_status_at) == ("busy", busy_at)
    result = cti_events.ingest({"event_id": "s2", "vendor": "acme", "type": "agent_status",
                                "agent_no": "8001", "status": "away",
                                "occurred_at": at(5).isoformat() + "Z"}, None, "{}")
    db.session.expire_all()
    assert org.rep.agent_status == "away" and result.call_pk is None


# --- validation -----------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("event_id", "x" * 129), ("event_id", None), ("type", "exploded"), ("call_id", None),
    ("call_id", "c" * 129), ("direction", "sideways"), ("occurred_at", "yesterday"),
    ("occurred_at", "2026-11-30"), ("occurred_at", 10**15), ("occurred_at", True),
    ("occurred_at", "1999-12-31T23:00:00Z"), ("occurred_at", "2099-01-01T00:00:00Z"),
    ("answered_at", {"t": 1}), ("caller", "1" * 65), ("caller", "138\x00"),
    ("agent_no", "8" * 33), ("queue", "q" * 65), ("talk_seconds", -1),
    ("talk_seconds", 86_401), ("talk_seconds", "12s"), ("talk_seconds", True),
    ("result", "exploded"), ("recording_url", "ftp://x/y"),
    ("recording_url", "https://" + "r" * 1000), ("crm_ref", "r" * 41), ("status", "asleep"),
    ("vendor", "Not A Vendor!"), ("zz_undeclared", 1),
])
def test_each_bad_field_is_named(db, agents, field, value):
    data = event("ringing")
    data[field] = value
    with pytest.raises(ValidationFailed) as refused:
        cti_events.ingest(data, None, "{}")
    assert field in refused.value.fields
    assert db.session.execute(select(func.count()).select_from(CtiEvent)).scalar_one() == 0


def test_required_fields_of_each_type(db, agents):
    with pytest.raises(ValidationFailed) as refused:
        cti_events.ingest({"event_id": "s", "vendor": "acme", "type": "agent_status",
                           "occurred_at": 1_700_000_000}, None, "{}")
    assert set(refused.value.fields) == {"agent_no", "status"}
    with pytest.raises(ValidationFailed) as refused:
        cti_events.ingest(event("recording_ready"), None, "{}")
    assert set(refused.value.fields) == {"recording_url"}
    with pytest.raises(ValidationFailed) as refused:
        cti_events.ingest(event("ringing", vendor="acme"), "tinet", "{}")
    assert set(refused.value.fields) == {"vendor"}
    with pytest.raises(ValidationFailed) as refused:
        cti_events.ingest(["not", "an", "object"], None, "{}")
    assert set(refused.value.fields) == {"body"}


def test_times_are_iso_or_epoch_and_the_raw_payload_is_kept(db, agents):
    when = at(90)
    epoch = int((when - dt.datetime(1970, 1, 1)).total_seconds())
    local = (when + dt.timedelta(hours=8)).strftime("%Y-%m-%d %H:%M:%S")  # business time
    for n, value in enumerate((epoch, str(epoch), epoch * 1000, local,
                               when.isoformat() + "+00:00")):
        cti_events.ingest(event("ringing", f"t{n}", occurred_at=value), None,
                          "raw\x00payload" if n == 0 else b"\xffbytes")
        assert _call(db, f"t{n}").started_at == when, value
    rows = db.session.execute(select(CtiEvent.raw).order_by(CtiEvent.id)).scalars().all()
    assert rows[0] == "raw\ufffdpayload" and rows[1] == "\ufffdbytes"


# --- the agent number on the user form ------------------------------------------------------
def _user_form(client, user, **changes):
    form = {"first_name": user.first_name, "last_name": user.last_name,
            "username": user.username, "email": user.email, "phone": user.phone or "",
            "roles": [str(r.id) for r in user.roles],
            "department": str(user.department_id or ""),
            "superior": str(user.superior_id or ""), "active": "y",
            "csrf_token": client.csrf}
    form.update(changes)
    return form


def test_the_user_form_sets_a_unique_agent_number(db, org, admin_client):
    from app.models import User

    assert 'name="agent_no"' in admin_client.get(f"/users/edit/{org.rep.id}").get_data(
        as_text=True)
    resp = admin_client.post(f"/users/edit/{org.rep.id}",
                             data=_user_form(admin_client, org.rep, agent_no=" 8001 "))
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, org.rep.id).agent_no == "8001"
    # another user with the same number: refused, nothing saved
    resp = admin_client.post(f"/users/edit/{org.rep2.id}",
                             data=_user_form(admin_client, org.rep2, agent_no="8001"),
                             follow_redirects=True)
    assert "8001" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, org.rep2.id).agent_no is None
    for bad in ("8" * 33, "80\x0001"):
        admin_client.post(f"/users/edit/{org.rep2.id}",
                          data=_user_form(admin_client, org.rep2, agent_no=bad))
        db.session.expire_all()
        assert db.session.get(User, org.rep2.id).agent_no is None, bad
    # blank is no agent number (several users may have none)
    for user in (org.rep, org.rep2):
        resp = admin_client.post(f"/users/edit/{user.id}",
                                 data=_user_form(admin_client, user, agent_no="  "))
        assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, org.rep.id).agent_no is None
    # the agent's calls are now nobody's: the number maps to no user
    cti_events.ingest(event("ringing", agent_no="8001"), None, "{}")
    assert _call(db).agent_id is None


def test_a_call_back_task_about_a_lead_is_readable_where_the_lead_is(db, org, api):
    """Tasks link leads now (a missed call from a lead): the link checks the lead's scope."""
    lead = leads.create_lead(org.rep, {"company_name": "待办线索", "mobile": "13700137001"})
    resp = api("rep1")("POST", "/api/v1/tasks/", json={
        "subject": "回电", "due_at": "2026-12-01 10:00", "record_type": "lead",
        "record_id": lead.id})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["result"]["record_name"] == "待办线索"
    resp = api("rep3")("POST", "/api/v1/tasks/", json={
        "subject": "回电", "due_at": "2026-12-01 10:00", "record_type": "lead",
        "record_id": lead.id})
    assert resp.status_code == 404
