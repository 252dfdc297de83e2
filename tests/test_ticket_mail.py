"""Tickets by e-mail: inbound mail (API key) opens a ticket matched to the customer by the
normalised address, or an unlinked one; continues a ticket by In-Reply-To or by the [#id]
token of its sender; a redelivery (also two at once) is taken once; replies go out by a
real RQ burst worker through a loopback SMTP server with [#id] and a Message-ID, and the
customer's answer threads back by it; failures retry with backoff."""
from __future__ import annotations

import datetime as dt
import threading
import uuid

import pytest
from sqlalchemy import func, select

from app.models import Contact, Notification, Ticket, TicketMessage
from app.services import api_keys, care_channels, ticket_mail, tickets
from tests.care_fixtures import SmtpServer
from tests.ticket_fixtures import NOW, build_desk

URL = "/api/v1/tickets/inbound-mail"


@pytest.fixture
def desk(db, org):
    return build_desk(db, org)


@pytest.fixture
def key(db, org):
    _made, raw = api_keys.create_key(org.admin, "邮件网关", "email_inbound")
    return raw


def mail(app, key, **fields):
    body = {"from": "王芳 <Wang.Fang@Example.com>", "to": "service@guishu.cn",
            "subject": "发票开错了", "text": "请重开发票", "message_id": f"<{uuid.uuid4()}@mx>",
            **fields}
    return app.test_client().post(URL, json=body, headers={"X-Api-Key": key})


def test_an_unknown_sender_gets_a_ticket_without_a_customer(app, db, org, desk, key):
    resp = mail(app, key, message_id="<a1@mx>")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["created"], body["duplicate"]) == (True, False)
    t = db.session.get(Ticket, body["ticket_id"])
    assert (t.customer_id, t.requester_email, t.requester_name, t.channel, t.subject,
            t.description, t.mail_thread_id, t.status) == (
        None, "wang.fang@example.com", "王芳", "email", "发票开错了", "请重开发票", "<a1@mx>",
        "new")
    again = mail(app, key, message_id="<a1@mx>").get_json()
    assert again == {**body, "created": False, "duplicate": True}
    # Linked later by hand.
    tickets.update(org.staff, t.id, {"customer_id": org.c_north.id})
    assert t.customer_id == org.c_north.id


def test_a_known_address_is_matched_to_its_customer_or_contact(app, db, org, desk, key):
    body = mail(app, key, **{"from": "contact@hualian.cn"}).get_json()
    assert db.session.get(Ticket, body["ticket_id"]).customer_id == org.c_north.id
    contact = Contact(customer_id=org.c_rep.id, name="李工", email="LI@yunfan.cn",
                      email_norm="li@yunfan.cn")
    db.session.add(contact)
    db.session.commit()
    body = mail(app, key, **{"from": "李工 <li@YUNFAN.cn>"}).get_json()
    t = db.session.get(Ticket, body["ticket_id"])
    assert (t.customer_id, t.contact_id) == (org.c_rep.id, contact.id)


def test_a_reply_continues_its_ticket(app, db, org, desk, key):
    first = mail(app, key, message_id="<t1@mx>").get_json()
    tid = first["ticket_id"]
    tickets.assign(org.admin, tid, agent_id=org.agent.id, team_id=desk.team.id)
    tickets.change_status(org.agent, tid, "waiting")
    # By In-Reply-To: the waiting ticket is back in progress and its agent told.
    cont = mail(app, key, message_id="<t2@mx>", in_reply_to="<t1@mx>", subject="Re: 发票").get_json()
    assert (cont["ticket_id"], cont["created"]) == (tid, False)
    t = db.session.get(Ticket, tid)
    db.session.refresh(t)
    assert t.status == "in_progress"
    assert db.session.execute(select(Notification.title).where(
        Notification.user_id == org.agent.id, Notification.kind == "ticket_inbound")
    ).scalars().all() == [f"客户在工单 #{tid} 来信：发票开错了"]
    # By the [#id] token, from the ticket's own sender; a stranger's token opens a new one.
    tickets.change_status(org.agent, tid, "resolved")
    by_token = mail(app, key, message_id="<t3@mx>", subject=f"Re: [#{tid}] 发票").get_json()
    assert by_token["ticket_id"] == tid
    db.session.refresh(t)
    assert (t.status, t.reopened_count) == ("assigned", 1)   # reopened by the customer
    stranger = mail(app, key, message_id="<t4@mx>", subject=f"[#{tid}] 我也要",
                    **{"from": "other@example.com"}).get_json()
    assert stranger["created"] and stranger["ticket_id"] != tid
    # A closed ticket: a new one.
    tickets.change_status(org.agent, tid, "closed")
    late = mail(app, key, message_id="<t5@mx>", in_reply_to="<t3@mx>").get_json()
    assert late["created"] and late["ticket_id"] not in (tid, stranger["ticket_id"])
    kinds = db.session.execute(select(TicketMessage.kind).where(
        TicketMessage.ticket_id == tid)).scalars().all()
    assert kinds == ["inbound", "inbound", "inbound"]


def test_refusals(app, db, org, desk, key):
    resp = app.test_client().post(URL, json={"from": "x@example.com"})
    assert (resp.status_code, resp.get_json()["code"]) == (401, "missing_key")
    _m, sms = api_keys.create_key(org.admin, "短信", "sms_inbound")
    resp = mail(app, sms)
    assert (resp.status_code, resp.get_json()["code"]) == (403, "wrong_purpose")
    resp = app.test_client().post(URL, json={"from": "not an address", "text": "",
                                             "message_id": "x" * 301},
                                  headers={"X-Api-Key": key})
    assert resp.status_code == 400
    assert set(resp.get_json()["fields"]) == {"message_id"}
    resp = app.test_client().post(URL, json={"from": "not an address", "text": "hi",
                                             "message_id": "<m@x>"},
                                  headers={"X-Api-Key": key})
    assert list(resp.get_json()["fields"]) == ["from"]
    resp = app.test_client().post(URL, data="x" * (600 * 1024), headers={
        "X-Api-Key": key, "Content-Type": "application/json"})
    assert (resp.status_code, resp.get_json()["code"]) == (413, "too_large")


@pytest.mark.real_db
def test_the_same_mail_twice_at_once_is_taken_once(app, db, org, desk, key):
    outcomes: list[dict] = []
    barrier = threading.Barrier(2)
    data = {"from": "zhao@example.com", "subject": "重复投递", "text": "同一封",
            "message_id": "<same@mx>"}

    def deliver():
        with app.app_context():
            from app.extensions import db as tdb

            try:
                barrier.wait(timeout=30)
                outcomes.append(ticket_mail.receive(None, dict(data)).as_dict())
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(o["duplicate"] for o in outcomes) == [False, True]
    assert outcomes[0]["ticket_id"] == outcomes[1]["ticket_id"]
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(Ticket)).scalar() == 1
    assert db.session.execute(select(func.count()).select_from(TicketMessage)).scalar() == 1


# --- outbound -------------------------------------------------------------------------------
def test_replies_retry_with_backoff_then_fail(db, org, desk, monkeypatch):
    t = tickets.create(org.staff, {"channel": "email", "subject": "退款",
                                   "requester_email": "liu@example.com"}, now=NOW)
    tickets.assign(org.admin, t.id, agent_id=org.agent.id, team_id=desk.team.id)
    m = tickets.reply(org.agent, t.id, "已退款", now=NOW)

    def refuse(to, subject, body):
        raise care_channels.DeliveryError("邮件服务器不可达")

    monkeypatch.setattr(care_channels, "send_email", refuse)
    assert ticket_mail.deliver(now=NOW).summary()["retrying"] == 1
    db.session.refresh(m)
    assert (m.delivery_status, m.attempts, m.next_attempt_at) == (
        "pending", 1, NOW + dt.timedelta(minutes=5))
    assert ticket_mail.deliver(now=NOW).summary()["retrying"] == 0   # not due yet
    later = NOW
    for _ in range(3):
        later += dt.timedelta(days=1)
        ticket_mail.deliver(now=later)
    db.session.refresh(m)
    assert (m.delivery_status, m.attempts, m.last_error) == ("failed", 4, "邮件服务器不可达")
    assert db.session.execute(select(Notification.title).where(
        Notification.user_id == org.agent.id, Notification.kind == "ticket_reply_failed")
    ).scalars().all() == [f"工单 #{t.id} 的回复发送失败"]


@pytest.mark.real_db
def test_a_reply_is_mailed_by_the_worker_and_the_answer_threads_back(
        app, db, org, desk, redis_url, database_url, key):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from app.queue import get_queue
    from jobs.tickets import ticket_mail_deliver
    from tests.test_jobs import run_burst_worker

    opened = mail(app, key, message_id="<open@mx>", **{"from": "chen@example.com"}).get_json()
    tid = opened["ticket_id"]
    tickets.assign(org.admin, tid, agent_id=org.agent.id, team_id=desk.team.id)
    reply = tickets.reply(org.agent, tid, "您好，发票已重开。")
    reply_id = reply.id
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with SmtpServer() as server:
        job = get_queue(queue).enqueue(ticket_mail_deliver)
        result = run_burst_worker(redis_url, database_url, queue, extra_env={
            "GUISHU_SMTP_HOST": "127.0.0.1", "GUISHU_SMTP_PORT": str(server.port),
            "SECRET_KEY": app.config["SECRET_KEY"]})
        assert result.returncode == 0, result.stderr[-2000:]
        job.refresh()
        assert job.return_value()["sent"] == 1, result.stderr[-2000:]
        (sent,) = server.inbox.messages
    assert sent["To"] == "chen@example.com"
    assert sent["Subject"] == f"[#{tid}] 发票开错了"
    assert sent.get_content().strip() == "您好，发票已重开。"
    db.session.expire_all()
    row = db.session.get(TicketMessage, reply_id)
    assert (row.delivery_status, row.attempts, row.mail_message_id) == (
        "sent", 1, sent["Message-ID"])
    # The customer answers the mail: it threads back to the ticket by In-Reply-To.
    answer = mail(app, key, message_id="<answer@mx>", in_reply_to=sent["Message-ID"],
                  subject="Re: 发票", **{"from": "Chen <chen@example.com>"}).get_json()
    assert (answer["ticket_id"], answer["created"]) == (tid, False)


def test_a_strangers_in_reply_to_opens_a_ticket_of_its_own(app, db, org, desk, key):
    """issue 17 fix: In-Reply-To continues (and reopens) a ticket only for its sender, as
    the [#id] token does; a stranger quoting the Message-ID opens a new ticket."""
    first = mail(app, key, message_id="<orig-1@mx>").get_json()
    tid = first["ticket_id"]
    tickets.change_status(org.staff, tid, "resolved")
    other = mail(app, key, message_id="<evil-1@mx>", in_reply_to="<orig-1@mx>",
                 text="伪造的客户回复", **{"from": "attacker@evil.example"}).get_json()
    assert other["created"] is True and other["ticket_id"] != tid
    db.session.expire_all()
    t = db.session.get(Ticket, tid)
    assert (t.status, t.reopened_count) == ("resolved", 0)
    assert db.session.execute(select(func.count()).select_from(TicketMessage).where(
        TicketMessage.ticket_id == tid)).scalar_one() == 1
    # The sender itself (any spelling of its address) still continues and reopens it.
    again = mail(app, key, message_id="<orig-2@mx>", in_reply_to="<orig-1@mx>",
                 **{"from": "WANG.FANG@example.com"}).get_json()
    assert (again["ticket_id"], again["created"]) == (tid, False)
    db.session.expire_all()
    assert db.session.get(Ticket, tid).status == "assigned"
