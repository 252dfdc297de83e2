"""`flask crm cti simulate` and app.services.cti_simulator: one call to an agent through the
same ingest as the signed endpoint — the screen pop published on ringing, an answered call
logged as a follow-up that restarts the reclaim clock, a missed call opening a call-back
task, a refusal naming the option."""
from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.models import CtiCall, CtiEvent, FollowUp, Notification, Ownership, Task
from app.services import cti_simulator
from app.services.errors import ValidationFailed


@pytest.fixture
def agent(db, org):
    org.rep.agent_no = "8001"
    db.session.commit()
    return org.rep


def _call(db, pk):
    db.session.expire_all()
    return db.session.get(CtiCall, pk)


def test_an_answered_call_becomes_a_follow_up_with_its_recording(db, org, agent):
    before = db.session.get(Ownership, org.c_rep.id).last_followup_at
    out = cti_simulator.simulate(agent, talk_seconds=45, pause=0)
    assert [step for step, _ in out.steps] == ["ringing", "answered", "hangup",
                                                "recording_ready"]
    call = _call(db, out.call_pk)
    # The default caller is the agent's customer with a number: c_rep's mobile.
    assert (call.customer_id, call.number_e164, call.agent_id) == (
        org.c_rep.id, "+8613800138000", agent.id)
    assert (call.state, call.result, call.talk_seconds) == ("ended", "answered", 45)
    assert call.recording_url.endswith(f"{call.call_id}.mp3")
    followup = db.session.get(FollowUp, call.followup_id)
    assert (followup.channel, followup.customer_id, followup.user_id) == (
        "call", org.c_rep.id, agent.id)
    # 45 s ≥ the default 30 s: the reclaim clock restarts at the answer.
    clock = db.session.get(Ownership, org.c_rep.id).last_followup_at
    assert clock == call.answered_at and (before is None or clock > before)
    assert db.session.execute(select(CtiEvent.type).where(CtiEvent.call_pk == call.id)
                              .order_by(CtiEvent.id)).scalars().all() == [
        "ringing", "answered", "hangup", "recording_ready"]


def test_a_three_second_call_is_logged_but_keeps_the_clock(db, org, agent):
    before = db.session.get(Ownership, org.c_rep.id).last_followup_at
    out = cti_simulator.simulate(agent, talk_seconds=3, recording=False, pause=0)
    call = _call(db, out.call_pk)
    assert call.followup_id is not None and call.talk_seconds == 3
    assert db.session.get(Ownership, org.c_rep.id).last_followup_at == before


def test_a_missed_call_opens_one_call_back_task_for_the_owner(db, org, agent):
    out = cti_simulator.simulate(agent, outcome="missed", pause=0)
    call = _call(db, out.call_pk)
    assert (call.state, call.result, call.followup_id) == ("ended", "missed", None)
    task = db.session.get(Task, call.callback_task_id)
    assert (task.owner_id, task.source, task.status, task.record_type, task.record_id) == (
        org.rep.id, "call", "open", "customer", org.c_rep.id)
    assert db.session.execute(select(Notification).where(
        Notification.user_id == org.rep.id)).scalars().first() is not None
    # A later answered call closes it.
    cti_simulator.simulate(agent, pause=0, recording=False)
    db.session.expire_all()
    assert db.session.get(Task, task.id).status == "done"


def test_an_unknown_caller_is_a_call_without_a_record(db, org, agent):
    out = cti_simulator.simulate(agent, caller=cti_simulator.UNKNOWN_CALLER, ring_only=True)
    call = _call(db, out.call_pk)
    assert (call.state, call.customer_id, call.lead_id, call.number_e164) == (
        "ringing", None, None, "+862155550199")


def test_refusals_name_the_option(db, org):
    org.rep2.agent_no = None
    db.session.commit()
    with pytest.raises(ValidationFailed) as refused:
        cti_simulator.simulate(org.rep2, outcome="busy", talk_seconds=-1)
    assert set(refused.value.fields) == {"to", "outcome", "talk"}
    assert "rep2" in refused.value.fields["to"]


def test_ringing_publishes_the_screen_pop(app, db, org, agent, redis_url):
    if redis_url is None:
        pytest.skip("no Redis reachable")
    from app.redis_conn import get_redis
    from app.services import cti_pop

    client = get_redis()
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        pubsub.subscribe(cti_pop.channel_of(agent.id, client))
        out = cti_simulator.simulate(agent, ring_only=True)
        message = None
        for _ in range(20):
            message = pubsub.get_message(timeout=0.25)
            if message:
                break
        assert json.loads(message["data"]) == {"call_id": out.call_pk, "agent_id": agent.id}
    finally:
        pubsub.close()


def test_the_command_prints_each_step_and_refuses_clearly(app, db, org, agent):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "cti", "simulate", "--to", agent.username,
                                 "--pause", "0", "--talk", "40"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["ringing", "answered", "hangup",
                                                   "recording_ready"]
    assert "跟进记录 #" in lines[2]
    result = runner.invoke(args=["crm", "cti", "simulate", "--to", "rep2", "--pause", "0"])
    assert result.exit_code != 0 and "rep2" in result.output
    assert "agent number" in result.output or "坐席工号" in result.output
    result = runner.invoke(args=["crm", "cti", "simulate", "--to", "nobody"])
    assert result.exit_code != 0 and "no such user: nobody" in result.output


def test_a_late_event_of_an_older_call_keeps_a_newer_missed_calls_task(db, org, agent):
    from app.services.cti_events import ingest

    older = _call(db, cti_simulator.simulate(agent, recording=False, pause=0).call_pk)
    missed = _call(db, cti_simulator.simulate(agent, outcome="missed", pause=0).call_pk)
    late = {"event_id": f"{older.call_id}:late-recording", "type": "recording_ready",
            "call_id": older.call_id, "occurred_at": "2026-11-30T10:00:00Z",
            "recording_url": "https://recordings.example.invalid/late.mp3"}
    assert ingest(late, "simulator", late).duplicate is False
    db.session.expire_all()
    assert db.session.get(Task, missed.callback_task_id).status == "open"
