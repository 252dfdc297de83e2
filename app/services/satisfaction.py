"""Satisfaction (满意度) of resolved tickets: the survey sent on resolution, the rating it
brings back onto the ticket, and what a low rating does.

The survey is the marketing survey engine's (app.services.surveys): ServiceSettings names
one survey (bootstrap seeds 服务满意度调查: a rating 1-5 and an optional comment); its first
rating question is the score, its first text question the comment. One invitation per
ticket is the schema's (survey_invitation.ticket_id is unique).

Who is asked: the ticket's contact, else its customer. A ticket without a customer (an
unknown sender's mail not yet linked) is not asked: an invitation must name a customer,
contact or lead (a CHECK), and a stranger's address is not a relationship we survey.
How: e-mail when the record has a (normalised) address that has not opted out, else SMS to
its mobile under the same rule, else no invitation. Delivery is the survey job's
(jobs.surveys.survey_deliver), which checks the opt-out list again when it sends.

Resolved again after a reopen: the ticket keeps its first invitation. An answered one
stands (the first rating is the ticket's); an unanswered one is sent again with a fresh
expiry (the link is the same), so the customer is asked about the final resolution.

A rating at or below ServiceSettings.low_score_threshold either reopens the ticket
(tickets.reopen by the system) or gives the customer's owner a task about it, per the
settings; the owner (else the team's manager) is told either way.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import select

from app.extensions import db
from app.models import (Contact, Customer, MarketingOptOut, Ownership, ServiceSettings,
                        ServiceTeam, Survey, SurveyInvitation, SurveyQuestion, Ticket, Task)
from app.models.customer import utcnow
from app.services import audit, notifications

SURVEY_TITLE = "服务满意度调查"
SURVEY_INTRO = "感谢您联系我们的客服。请为本次服务打分，帮助我们改进。"
RATING_QUESTION = "您对本次服务的满意程度（1 = 非常不满意，5 = 非常满意）"
COMMENT_QUESTION = "您还有什么意见或建议？"
SURVEY_EXPIRES_DAYS = 14
TASK_DUE = dt.timedelta(days=1)  # a low-score task is due the next day
COMMENT_MAX = 2_000


# --- settings and the default survey --------------------------------------------------------
def settings() -> ServiceSettings:
    """The desk's settings row (app.services.service_admin keeps it)."""
    from app.services import service_admin

    return service_admin.settings()


def ensure_default_survey() -> Survey:
    """Bootstrap: the default satisfaction survey (open, one rating and an optional comment)
    and the settings pointing at it. Idempotent: a survey of that title is reused, and the
    setting is only filled while it is empty and the survey new or the row just made, so an
    admin who chose another survey (or none) keeps the choice."""
    had_settings = db.session.execute(select(ServiceSettings.id).limit(1)).first() is not None
    row = settings()
    survey = db.session.execute(select(Survey).where(Survey.title == SURVEY_TITLE)) \
        .scalar_one_or_none()
    created = survey is None
    if created:
        now = utcnow()
        survey = Survey(title=SURVEY_TITLE, intro=SURVEY_INTRO, status="open", opened_at=now,
                        expires_days=SURVEY_EXPIRES_DAYS, created_at=now, updated_at=now)
        audit.record_new(None, "survey", survey)
        db.session.add_all([
            SurveyQuestion(survey_id=survey.id, position=1, kind="rating",
                           text=RATING_QUESTION, required=True),
            SurveyQuestion(survey_id=survey.id, position=2, kind="text",
                           text=COMMENT_QUESTION, required=False)])
    if row.satisfaction_survey_id is None and (created or not had_settings):
        audit.record(None, "update", "service_settings", row.id,
                     {"satisfaction_survey_id": (None, survey.id)})
        row.satisfaction_survey_id = survey.id
    db.session.commit()
    return survey


# --- on resolution ---------------------------------------------------------------------------
def _opted_out(channel: str, address: str) -> bool:
    return db.session.execute(select(MarketingOptOut.id).where(
        MarketingOptOut.channel == channel, MarketingOptOut.address == address)
        .limit(1)).first() is not None


def recipient(ticket: Ticket) -> Optional[dict]:
    """Whom the ticket's survey goes to and how: {contact_id | customer_id, greeting_name,
    channel, address}; None when nobody can be reached (no customer, no usable address)."""
    record: Any = None
    key = None
    if ticket.contact_id is not None:
        record, key = db.session.get(Contact, ticket.contact_id), "contact_id"
    if record is None and ticket.customer_id is not None:
        record, key = db.session.get(Customer, ticket.customer_id), "customer_id"
    if record is None:
        return None
    for channel, address in (("email", record.email_norm), ("sms", record.mobile_e164)):
        if address and not _opted_out(channel, address):
            return {key: record.id, "greeting_name": record.name, "channel": channel,
                    "address": address}
    return None


def on_resolved(ticket: Ticket, now: Optional[dt.datetime] = None) -> Optional[SurveyInvitation]:
    """The ticket was resolved (called by tickets.change_status, in its transaction): invite
    the customer to the satisfaction survey, queued for the survey delivery job. Nothing
    when the desk has no open satisfaction survey or nobody can be reached. Does not commit
    (surveys.invite with ticket_id only flushes); the caller commits."""
    from app.services import surveys
    from app.services.tickets import add_event

    now = now or utcnow()
    survey_id = settings().satisfaction_survey_id
    survey = db.session.get(Survey, survey_id) if survey_id is not None else None
    if survey is None or survey.status != "open":
        return None
    existing = db.session.execute(select(SurveyInvitation).where(
        SurveyInvitation.ticket_id == ticket.id)).scalar_one_or_none()
    if existing is not None:
        if existing.answered_at is None and existing.channel:
            # Resolved again, still unanswered: the same link once more, valid anew.
            existing.expires_at = now + dt.timedelta(days=survey.expires_days)
            existing.delivery_status, existing.attempts = "pending", 0
            existing.next_attempt_at = existing.last_error = None
            existing.updated_at = now
            add_event(ticket, "survey", None, to_value=existing.channel)
        return existing
    who = recipient(ticket)
    if who is None:
        return None
    invitation = surveys.invite(None, survey.id, ticket_id=ticket.id, now=now, **who)
    add_event(ticket, "survey", None, to_value=invitation.channel)
    return invitation


# --- on answer --------------------------------------------------------------------------------
def rated(invitation: SurveyInvitation, rows: list[tuple[int, str, Any]],
          now: dt.datetime) -> Optional[Ticket]:
    """The survey of a ticket was answered (called by surveys.answer before it commits): the
    score and comment onto the ticket and its history. Returns the ticket when the score is
    low (the caller runs `low_score` after its commit), else None."""
    from app.services.tickets import add_event

    ticket = db.session.get(Ticket, invitation.ticket_id)
    if ticket is None:
        return None
    questions = {q.id: q.kind for q in db.session.execute(select(SurveyQuestion).where(
        SurveyQuestion.survey_id == invitation.survey_id)).scalars()}
    score = next((v for qid, column, v in rows
                  if column == "rating" and questions.get(qid) == "rating"), None)
    comment = next((v for qid, column, v in rows
                    if column == "text" and questions.get(qid) == "text"), None)
    if score is None:
        return None
    values = {"satisfaction_score": score, "satisfaction_comment":
              comment[:COMMENT_MAX] if comment else None, "rated_at": now}
    changes = audit.diff(ticket, values)
    for key, value in values.items():
        setattr(ticket, key, value)
    audit.record(None, "rate", "ticket", ticket.id, changes)
    add_event(ticket, "rated", None, to_value=str(score), note=values["satisfaction_comment"])
    threshold = settings().low_score_threshold
    return ticket if score <= threshold else None


def _owner_of(ticket: Ticket) -> Optional[int]:
    if ticket.customer_id is None:
        return None
    return db.session.execute(select(Ownership.owner_id).where(
        Ownership.customer_id == ticket.customer_id)).scalar()


def _team_manager_of(ticket: Ticket) -> Optional[int]:
    if ticket.team_id is None:
        return None
    return db.session.execute(select(ServiceTeam.manager_id).where(
        ServiceTeam.id == ticket.team_id)).scalar()


def low_score(ticket_id: int, now: dt.datetime) -> str:
    """What a low rating does, per the settings: 'reopened' (tickets.reopen by the system),
    'task' (a task for the customer's owner, else the team's manager), or 'none' (the
    ticket is open already, or nobody to give the task to). Commits."""
    from app.services import tickets
    from app.services.errors import GuishuError

    ticket = db.session.get(Ticket, ticket_id)
    row = settings()
    owner_id = _owner_of(ticket)
    link = f"/tickets/show/{ticket.id}"
    title = f"低满意度（{ticket.satisfaction_score} 分）：{ticket.subject}"[:200]
    body = ticket.satisfaction_comment or ""
    outcome = "none"
    if row.low_score_action == "reopen":
        if ticket.status in ("resolved", "closed"):
            try:
                tickets.reopen(None, ticket.id, f"客户评分 {ticket.satisfaction_score} 分")
                outcome = "reopened"
            except GuishuError:  # reopened by someone meanwhile: nothing more to do
                db.session.rollback()
        notifications.notify([owner_id], "ticket_low_score", title, body, link)
    else:
        assignee = owner_id or _team_manager_of(ticket)
        if assignee is not None:
            task = Task(owner_id=assignee, created_by_id=None, subject=title,
                        notes=body or None, due_at=now + TASK_DUE, record_type="ticket",
                        record_id=ticket.id, source="manual", status="open", created_at=now)
            audit.record_new(None, "task", task)
            notifications.notify([assignee], "ticket_low_score", title, body,
                                 f"/tasks/show/{task.id}")
            outcome = "task"
    db.session.commit()
    return outcome
