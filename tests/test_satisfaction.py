"""Satisfaction of resolved tickets (issue 17 §4): the default survey, the invitation on
resolution (who, which channel, once per ticket), its delivery by the survey job, and the
rating written back with the low-score action."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from app.models import (Contact, MarketingOptOut, ServiceSettings, Survey, SurveyInvitation,
                        SurveyQuestion, Task, Ticket, TicketEvent)
from app.services import satisfaction, surveys
from tests.care_fixtures import SENT_SMS, SmtpServer

NOW = dt.datetime(2026, 11, 20, 6, 0)


def make_ticket(db, org, customer=None, contact_id=None, status="resolved", **extra):
    customer = org.c_rep if customer is None else customer
    ticket = Ticket(customer_id=customer.id if customer else None, contact_id=contact_id,
                    channel="phone", priority="P3", subject="打印机无法连接", status=status,
                    created_at=NOW - dt.timedelta(days=1), updated_at=NOW,
                    resolved_at=NOW if status == "resolved" else None, **extra)
    db.session.add(ticket)
    db.session.flush()
    return ticket


def settings_row(db):
    return db.session.execute(select(ServiceSettings)).scalar_one()


def test_bootstrap_seeds_one_open_survey_and_the_setting(db, org):
    survey = db.session.execute(select(Survey).where(
        Survey.title == "服务满意度调查")).scalar_one()
    assert survey.status == "open" and settings_row(db).satisfaction_survey_id == survey.id
    kinds = [(q.kind, q.required) for q in surveys.questions_of(survey.id)]
    assert kinds == [("rating", True), ("text", False)]
    # Again: nothing new; an admin who cleared the setting keeps it cleared.
    settings_row(db).satisfaction_survey_id = None
    db.session.commit()
    assert satisfaction.ensure_default_survey().id == survey.id
    assert db.session.execute(select(func.count()).select_from(Survey)).scalar_one() == 1
    assert db.session.execute(select(func.count()).select_from(SurveyQuestion)).scalar_one() == 2
    assert settings_row(db).satisfaction_survey_id is None
    assert satisfaction.on_resolved(make_ticket(db, org), NOW) is None


def test_invitation_goes_to_the_contact_by_email_else_sms_once_per_ticket(db, org):
    contact = Contact(customer_id=org.c_rep.id, name="王磊", email="WangLei@Example.com",
                      email_norm="wanglei@example.com", mobile="13700137000",
                      mobile_e164="+8613700137000")
    db.session.add(contact)
    db.session.flush()
    ticket = make_ticket(db, org, contact_id=contact.id)
    row = satisfaction.on_resolved(ticket, NOW)
    db.session.commit()
    assert (row.contact_id, row.customer_id, row.ticket_id, row.channel, row.address,
            row.delivery_status, row.greeting_name) == (
        contact.id, None, ticket.id, "email", "wanglei@example.com", "pending", "王磊")
    assert row.expires_at == NOW + dt.timedelta(days=14)
    # Resolved again: the same invitation (one per ticket), its link valid anew.
    later = NOW + dt.timedelta(days=20)
    db.session.execute(update(SurveyInvitation).values(delivery_status="sent"))
    again = satisfaction.on_resolved(ticket, later)
    db.session.commit()
    assert again.id == row.id and again.token == row.token
    assert (again.delivery_status, again.expires_at) == ("pending", later + dt.timedelta(days=14))
    # The contact's e-mail opted out: a second ticket goes by SMS.
    db.session.add(MarketingOptOut(channel="email", address="wanglei@example.com", source="link"))
    other = make_ticket(db, org, contact_id=contact.id)
    sms = satisfaction.on_resolved(other, NOW)
    assert (sms.channel, sms.address) == ("sms", "+8613700137000")
    # No contact: the customer (rep1's has a mobile only); no customer: nobody asked.
    third = satisfaction.on_resolved(make_ticket(db, org), NOW)
    assert (third.customer_id, third.channel, third.address) == (org.c_rep.id, "sms",
                                                                 "+8613800138000")
    assert satisfaction.on_resolved(make_ticket(db, org, customer=False,
                                                requester_email="x@y.cn"), NOW) is None
    assert satisfaction.on_resolved(make_ticket(db, org, customer=org.c_pool), NOW) is None
    events = db.session.execute(select(TicketEvent.ticket_id, TicketEvent.to_value).where(
        TicketEvent.kind == "survey").order_by(TicketEvent.id)).all()
    assert [tuple(e) for e in events] == [(ticket.id, "email"), (ticket.id, "email"),
                                          (other.id, "sms"), (third.ticket_id, "sms")]


def test_the_survey_job_delivers_it(app, db, org, monkeypatch):
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://crm.example.com")
    monkeypatch.setitem(app.config, "SMS_GATEWAY", "tests.care_fixtures:RecordingGateway")
    SENT_SMS.clear()
    by_sms = satisfaction.on_resolved(make_ticket(db, org), NOW)
    by_mail = satisfaction.on_resolved(make_ticket(db, org, customer=org.c_north), NOW)
    db.session.commit()
    with SmtpServer() as server:
        monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(app.config, "SMTP_PORT", server.port)
        assert surveys.deliver(NOW).sent == 2
        (mail,) = server.inbox.messages
    assert mail["To"] == "contact@hualian.cn" and mail["Subject"] == "问卷调查：服务满意度调查"
    assert f"https://crm.example.com/s/{by_mail.token}" in mail.get_content()
    (sms,) = SENT_SMS
    assert sms[0] == "+8613800138000" and f"/s/{by_sms.token}" in sms[1]


def answer(invitation, score: str, comment: str = "", now=NOW):
    rating, text = surveys.questions_of(invitation.survey_id)
    return surveys.answer(invitation.token, {f"q{rating.id}": [score],
                                             f"q{text.id}": [comment]}, now)


def test_a_good_score_is_written_onto_the_ticket(db, org):
    ticket = make_ticket(db, org)
    invitation = satisfaction.on_resolved(ticket, NOW)
    db.session.commit()
    answer(invitation, "4", "很及时", NOW + dt.timedelta(hours=2))
    db.session.refresh(ticket)
    assert (ticket.satisfaction_score, ticket.satisfaction_comment, ticket.rated_at,
            ticket.status) == (4, "很及时", NOW + dt.timedelta(hours=2), "resolved")
    event = db.session.execute(select(TicketEvent).where(
        TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "rated")).scalar_one()
    assert (event.to_value, event.note, event.actor_id) == ("4", "很及时", None)
    assert db.session.execute(select(Task)).first() is None


def test_a_low_score_reopens_the_ticket(db, org):
    ticket = make_ticket(db, org)
    invitation = satisfaction.on_resolved(ticket, NOW)
    db.session.commit()
    answer(invitation, "2", "还是连不上")
    db.session.refresh(ticket)
    assert (ticket.satisfaction_score, ticket.reopened_count) == (2, 1)
    assert ticket.status not in ("resolved", "closed")
    kinds = list(db.session.execute(select(TicketEvent.kind).where(
        TicketEvent.ticket_id == ticket.id).order_by(TicketEvent.id)).scalars())
    assert kinds[:2] == ["survey", "rated"] and "reopened" in kinds
    from app.models import Notification

    told = db.session.execute(select(Notification).where(
        Notification.kind == "ticket_low_score")).scalar_one()
    assert told.user_id == org.rep.id and told.title == "低满意度（2 分）：打印机无法连接"
    assert told.body == "还是连不上"


def test_a_low_score_tasks_the_owner_when_set(db, org):
    row = settings_row(db)
    row.low_score_action, row.low_score_threshold = "task", 3
    ticket = make_ticket(db, org)
    invitation = satisfaction.on_resolved(ticket, NOW)
    db.session.commit()
    answer(invitation, "3")
    task = db.session.execute(select(Task)).scalar_one()
    assert (task.owner_id, task.record_type, task.record_id, task.due_at, task.subject,
            task.status) == (org.rep.id, "ticket", ticket.id, NOW + dt.timedelta(days=1),
                             "低满意度（3 分）：打印机无法连接", "open")
    db.session.refresh(ticket)
    assert ticket.status == "resolved"


def test_an_answer_twice_is_refused_and_the_score_stands(db, org):
    ticket = make_ticket(db, org)
    invitation = satisfaction.on_resolved(ticket, NOW)
    db.session.commit()
    answer(invitation, "5")
    with pytest.raises(Exception) as exc:
        answer(invitation, "1")
    assert getattr(exc.value, "code", None) == "survey_answered"
    db.session.refresh(ticket)
    assert ticket.satisfaction_score == 5
