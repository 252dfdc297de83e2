"""Surveys (市场调研): questionnaires, their questions, the tokenised invitations sent to
customers, contacts or leads, and the answers.

An invitation points at one record through one of several nullable foreign keys with a CHECK
that exactly one is set (as campaign_member does): the service desk's satisfaction survey
invites a contact or a customer the same way marketing invites a lead. The token is the
invitation's only key from outside: 48 hex characters drawn by the database's strong random
source when the invitation is written set-based, unique. One answer per invitation is the
schema's: survey_response.invitation_id is unique, and the answering UPDATE of
invitation.answered_at is conditional on it being NULL.
"""
from __future__ import annotations

from flask_appbuilder import Model
from flask_babel import lazy_gettext as _l
from sqlalchemy import (Boolean, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer,
                        String, Text, text)
from sqlalchemy.orm import relationship

from app.models.customer import utcnow
from app.models.marketing import BigId

SURVEY_STATUSES = {"draft": _l("Draft"), "open": _l("Collecting answers"),
                   "closed": _l("Closed")}
QUESTION_KINDS = {"single": _l("Single choice"), "multiple": _l("Multiple choice"),
                  "rating": _l("Rating 1-5"), "text": _l("Free text")}
DELIVERY_STATUSES = {"pending": _l("Waiting to send"), "sending": _l("Sending"), "sent": _l("Sent"),
                     "failed": _l("Failed"), "cancelled": _l("Cancelled")}
INVITATION_CHANNELS = {"email": _l("E-mail"), "sms": _l("SMS")}


class Survey(Model):
    """A questionnaire (调查问卷): drafted, opened for answers, closed."""

    __tablename__ = "survey"
    __table_args__ = (
        CheckConstraint("status in ('draft', 'open', 'closed')", name="ck_survey_status"),
        CheckConstraint("expires_days between 1 and 365", name="ck_survey_expires_days"),
        Index("ix_survey_created_id", "created_at", "id"),  # the list's sort key
    )
    id = Column(Integer, primary_key=True)
    title = Column(String(200), nullable=False, unique=True)
    intro = Column(Text)
    status = Column(String(10), nullable=False, default="draft", server_default="draft")
    # How long an invitation's link works from the day it is sent.
    expires_days = Column(Integer, nullable=False, default=30, server_default="30")
    opened_at = Column(DateTime)
    closed_at = Column(DateTime)
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow, onupdate=utcnow)

    created_by = relationship("Employee", foreign_keys=[created_by_id])
    questions = relationship("SurveyQuestion", order_by="SurveyQuestion.position",
                             viewonly=True)

    @property
    def status_label(self) -> str:
        return str(SURVEY_STATUSES.get(self.status, self.status))

    def __repr__(self) -> str:
        return self.title or ""


class SurveyQuestion(Model):
    """One question: its kind, text, choices (JSON list, single / multiple only), whether an
    answer is required, and its place in the survey."""

    __tablename__ = "survey_question"
    __table_args__ = (
        CheckConstraint("kind in ('single', 'multiple', 'rating', 'text')",
                        name="ck_survey_question_kind"),
        Index("uq_survey_question_position", "survey_id", "position", unique=True),
    )
    id = Column(Integer, primary_key=True)
    survey_id = Column(Integer, ForeignKey("survey.id", ondelete="CASCADE"), nullable=False)
    position = Column(Integer, nullable=False)
    kind = Column(String(10), nullable=False)
    text = Column(String(500), nullable=False)
    options = Column(Text)  # JSON list of option texts (app.services.surveys bounds it)
    required = Column(Boolean, nullable=False, default=True, server_default="1")

    survey = relationship("Survey")

    @property
    def kind_label(self) -> str:
        return str(QUESTION_KINDS.get(self.kind, self.kind))


class SurveyInvitation(Model):
    """One tokenised link (/s/<token>) to one survey for one customer, contact or lead, with
    its delivery (e-mail / SMS through the care channels) and whether it was answered."""

    __tablename__ = "survey_invitation"
    __table_args__ = (
        CheckConstraint("(CASE WHEN customer_id IS NULL THEN 0 ELSE 1 END"
                        " + CASE WHEN contact_id IS NULL THEN 0 ELSE 1 END"
                        " + CASE WHEN lead_id IS NULL THEN 0 ELSE 1 END) = 1",
                        name="ck_survey_invitation_one_record"),
        CheckConstraint("channel IS NULL OR channel in ('email', 'sms')",
                        name="ck_survey_invitation_channel"),
        CheckConstraint("delivery_status IS NULL OR delivery_status in"
                        " ('pending', 'sending', 'sent', 'failed', 'cancelled')",
                        name="ck_survey_invitation_delivery_status"),
        # Once per survey and record (NULLs are distinct: each index binds its own kind),
        # except the service desk's satisfaction survey: once per ticket.
        Index("uq_survey_invitation_customer", "survey_id", "customer_id", unique=True,
              sqlite_where=text("ticket_id IS NULL"), postgresql_where=text("ticket_id IS NULL")),
        Index("uq_survey_invitation_contact", "survey_id", "contact_id", unique=True,
              sqlite_where=text("ticket_id IS NULL"), postgresql_where=text("ticket_id IS NULL")),
        Index("uq_survey_invitation_lead", "survey_id", "lead_id", unique=True),
        Index("uq_survey_invitation_ticket", "ticket_id", unique=True),
        Index("ix_survey_invitation_due", "delivery_status", "next_attempt_at"),
        Index("ix_survey_invitation_customer", "customer_id"),
        Index("ix_survey_invitation_contact", "contact_id"),
        Index("ix_survey_invitation_lead", "lead_id"),
    )
    id = Column(BigId, primary_key=True)
    survey_id = Column(Integer, ForeignKey("survey.id", ondelete="CASCADE"), nullable=False)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"))
    contact_id = Column(Integer, ForeignKey("contact.id", ondelete="CASCADE"))
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="CASCADE"))
    campaign_id = Column(Integer, ForeignKey("campaign.id", ondelete="SET NULL"), index=True)
    # The ticket whose satisfaction this asks (service desk). Not a foreign key: SQLite adds a
    # referencing column only with an inline REFERENCES whose ON DELETE reflection cannot
    # see (the schema check would never agree), and tickets are never deleted.
    ticket_id = Column(Integer)
    token = Column(String(64), nullable=False, unique=True)
    greeting_name = Column(String(200))  # the only thing about the recipient the page shows
    channel = Column(String(8))
    address = Column(String(200))  # normalised e-mail or E.164 mobile
    delivery_status = Column(String(10))
    attempts = Column(Integer, nullable=False, default=0, server_default="0")
    next_attempt_at = Column(DateTime)
    last_error = Column(Text)
    sent_at = Column(DateTime)
    expires_at = Column(DateTime, nullable=False)
    answered_at = Column(DateTime)
    created_by_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"))
    created_at = Column(DateTime, nullable=False, default=utcnow)
    updated_at = Column(DateTime, nullable=False, default=utcnow)

    survey = relationship("Survey")


class SurveyResponse(Model):
    """One submitted questionnaire: at most one per invitation (a unique index)."""

    __tablename__ = "survey_response"
    __table_args__ = (
        Index("ix_survey_response_survey", "survey_id", "submitted_at"),
    )
    id = Column(BigId, primary_key=True)
    survey_id = Column(Integer, ForeignKey("survey.id", ondelete="CASCADE"), nullable=False)
    invitation_id = Column(BigId, ForeignKey("survey_invitation.id", ondelete="CASCADE"),
                           nullable=False, unique=True)
    submitted_at = Column(DateTime, nullable=False, default=utcnow)


class SurveyAnswer(Model):
    """One answer to one question: a chosen option (one row per option of a multiple
    choice), a rating 1-5, or a text."""

    __tablename__ = "survey_answer"
    __table_args__ = (
        CheckConstraint("rating IS NULL OR rating between 1 and 5",
                        name="ck_survey_answer_rating"),
        CheckConstraint("(CASE WHEN choice IS NULL THEN 0 ELSE 1 END"
                        " + CASE WHEN rating IS NULL THEN 0 ELSE 1 END"
                        " + CASE WHEN text IS NULL THEN 0 ELSE 1 END) = 1",
                        name="ck_survey_answer_one_value"),
        Index("ix_survey_answer_question", "question_id", "choice"),
        Index("ix_survey_answer_response", "response_id"),
    )
    id = Column(BigId, primary_key=True)
    response_id = Column(BigId, ForeignKey("survey_response.id", ondelete="CASCADE"),
                         nullable=False)
    question_id = Column(Integer, ForeignKey("survey_question.id", ondelete="CASCADE"),
                         nullable=False)
    choice = Column(String(100))
    rating = Column(Integer)
    text = Column(Text)
