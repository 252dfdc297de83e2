"""Surveys (市场调研): build a questionnaire, send it as tokenised links, take one answer per
link, count the results.

Who: admins and marketing (市场专员) build, open, close and send surveys; managers and
auditors read them and their results (and export them); reps and back-office staff do not
see surveys. The answers are anonymous to readers of the results except for the record each
response came from (customer / lead id) in the export.

Lifecycle: draft -> open -> closed -> open again. Questions are added, changed and removed
only while the survey is a draft: a draft has never been sent nor answered (sending and
answering need `open`, and no way leads back to draft), so a question never changes under
its answers. To ask something else after opening, make a new survey.

Sending (`send`): to a campaign's members or to a segment's members (the segment evaluated in
its creator's scope by app.services.marketing_segments.members_select), one invitation per
survey and record (unique indexes), written set-based by INSERT … SELECT: the token is drawn
by the database's strong random source (48 hex characters), the address is the record's
normalised e-mail or E.164 mobile, records without one, with an opted-out address
(marketing_optout) or, when marketing_settings.require_consent is on, leads without a recorded
consent are left out (a customer is an existing customer relationship: allowed).
`deliver` (job jobs.surveys.survey_deliver) sends the links like the care outbox: each
invitation claimed (pending -> sending) before it goes, failures retried with backoff up to
MAX_ATTEMPTS, permanent refusals failed at once, an address opted out meanwhile cancelled.

Answering (`answer`, the public page /s/<token>): every question checked and refused naming
it; one answer per token by a conditional UPDATE of answered_at (and a unique response per
invitation), so two submissions racing store one. An invitation of a ticket (the service
desk's satisfaction survey, one per ticket) puts its rating onto the ticket in the same
transaction, and a low rating reopens the ticket or tasks its owner after the commit
(app.services.satisfaction).
"""
from __future__ import annotations

import datetime as dt
import io
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from flask import current_app
from sqlalchemy import (DateTime, Integer, String, and_, cast, exists, func, literal, literal_column,
                        or_, select, update)
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import (Campaign, CampaignMember, Customer, Lead, MarketingOptOut,
                        MarketingSettings, Segment, Survey, SurveyAnswer, SurveyInvitation,
                        SurveyQuestion, SurveyResponse, User)
from app.models.customer import utcnow
from app.models.survey import INVITATION_CHANNELS, QUESTION_KINDS
from app.security import ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_MARKETING, has_role
from app.services import audit, campaign_sending, care_channels, limits
from app.services.saving import commit_unique
from app.services.care import backoff
from app.services.errors import (Conflict, NotFound, PermissionDenied, ValidationFailed,
                                 lazy_tr, tr)
from app.services.ids import whole_number_text as _whole, parse_pk
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import local_naive

TITLE_MAX, INTRO_MAX, QUESTION_MAX, OPTION_MAX, ANSWER_MAX = 200, 2_000, 500, 100, 2_000
MAX_OPTIONS, MAX_QUESTIONS = 20, 50
MAX_ATTEMPTS = 4
BATCH = 200
TEXT_PAGE = 50
PAGE_SIZE, MAX_PAGE_SIZE = 50, 200
STALE_SENDING = dt.timedelta(minutes=15)
TOKEN_RE = re.compile(r"^[0-9a-f]{48}$")
CHOICE_KINDS = ("single", "multiple")
NO_SUCH_SURVEY = lazy_tr("The survey does not exist")


# --- who may ------------------------------------------------------------------------------
def can_manage(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_MARKETING)


def can_read(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_MARKETING, ROLE_MANAGER, ROLE_AUDITOR)


def _require_manager(actor: Optional[User]) -> None:
    if not can_manage(actor):
        raise PermissionDenied(tr("Only admins and marketing may build and send surveys"))


def _require_reader(actor: Optional[User]) -> None:
    if not can_read(actor):
        raise PermissionDenied(tr("You may not read surveys"))


# --- reading ------------------------------------------------------------------------------
def get_survey(actor: Optional[User], survey_id: Any) -> Survey:
    _require_reader(actor)
    pk = parse_pk(survey_id)
    survey = db.session.get(Survey, pk) if pk is not None else None
    if survey is None:
        raise NotFound(str(NO_SUCH_SURVEY))
    return survey


def questions_of(survey_id: int) -> list[SurveyQuestion]:
    return list(db.session.execute(select(SurveyQuestion).where(
        SurveyQuestion.survey_id == survey_id).order_by(SurveyQuestion.position)).scalars())


def options_of(question: SurveyQuestion) -> list[str]:
    try:
        value = json.loads(question.options or "[]")
    except ValueError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []


@dataclass
class Page:
    items: list
    total: int
    page: int
    page_size: int


def list_surveys(actor: Optional[User], status: Optional[str] = None, page: Any = 0,
                 page_size: Any = PAGE_SIZE) -> Page:
    from app.services.ids import check_paging

    _require_reader(actor)
    check_paging(page, page_size, MAX_PAGE_SIZE)
    where = [] if status is None else [Survey.status == status]
    total = db.session.execute(select(func.count()).select_from(Survey).where(*where)) \
        .scalar_one()
    rows = list(db.session.execute(select(Survey).where(*where).order_by(
        Survey.created_at.desc(), Survey.id.desc()).limit(page_size)
        .offset(page * page_size)).scalars())
    return Page(rows, total, page, page_size)


def to_dict(survey: Survey, questions: Optional[list[SurveyQuestion]] = None) -> dict:
    from app.services.times import rfc3339

    questions = questions_of(survey.id) if questions is None else questions
    return {"id": survey.id, "title": survey.title, "intro": survey.intro,
            "status": survey.status, "expires_days": survey.expires_days,
            "opened_at": rfc3339(survey.opened_at), "closed_at": rfc3339(survey.closed_at),
            "created_by_id": survey.created_by_id, "created_at": rfc3339(survey.created_at),
            "questions": [question_dict(q) for q in questions]}


def question_dict(q: SurveyQuestion) -> dict:
    return {"id": q.id, "position": q.position, "kind": q.kind, "text": q.text,
            "options": options_of(q) if q.kind in CHOICE_KINDS else [],
            "required": bool(q.required)}


# --- building -----------------------------------------------------------------------------
def _text(errors: dict, data: dict, field: str, limit: int, required: bool) -> Optional[str]:
    value = data.get(field)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[field] = tr("Required")
        return None
    if not isinstance(value, str):
        errors[field] = tr("Must be text")
        return None
    if is_unclean(value):
        errors[field] = f"{field} {UNCLEAN_MESSAGE}"
        return None
    value = value.strip()
    problem = limits.too_long(value, limit)
    if problem:
        errors[field] = problem
    return value


def clean_survey(data: dict, partial: bool = False) -> dict:
    """title (required, unique), intro, expires_days (1..365): the values, or
    ValidationFailed naming each bad field."""
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    unknown = set(data) - {"title", "intro", "expires_days", "questions"}
    for name in sorted(unknown):
        errors[name] = tr("This field cannot be changed or does not exist")
    if not partial or "title" in data:
        out["title"] = _text(errors, data, "title", TITLE_MAX, True)
    if "intro" in data:
        out["intro"] = _text(errors, data, "intro", INTRO_MAX, False)
    if "expires_days" in data or not partial:
        days = data.get("expires_days", 30)
        if isinstance(days, str) and _whole(days):
            days = int(days.strip())
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
            errors["expires_days"] = tr("The link lifetime must be 1 to 365 days")
        else:
            out["expires_days"] = days
    if errors:
        raise ValidationFailed(errors)
    return out


def clean_question(data: dict, field: str = "") -> dict:
    """kind, text, options (single / multiple: 2..20 distinct, each 1..100 characters),
    required. Errors are named `field` + the key (questions.0.text from the API)."""
    errors: dict[str, str] = {}
    prefix = f"{field}." if field else ""
    if not isinstance(data, dict):
        raise ValidationFailed({field or "question": tr("A question must be an object")})
    for name in sorted(set(data) - {"kind", "text", "options", "required"}):
        errors[prefix + name] = tr("This field cannot be changed or does not exist")
    kind = data.get("kind")
    if kind not in QUESTION_KINDS:
        errors[prefix + "kind"] = tr("The question kind can only be: %(choices)s",
                                     choices=", ".join(QUESTION_KINDS))
    sub: dict[str, str] = {}
    question = _text(sub, data, "text", QUESTION_MAX, True)
    errors.update({prefix + k: v for k, v in sub.items()})
    options: list[str] = []
    raw = data.get("options")
    if kind in CHOICE_KINDS:
        if isinstance(raw, str):
            raw = [line for line in raw.splitlines()]
        if not isinstance(raw, list):
            errors[prefix + "options"] = tr("Give the choices, one per line")
        else:
            for item in raw:
                if not isinstance(item, str) or is_unclean(item):
                    errors[prefix + "options"] = tr("Every choice must be text")
                    break
                item = item.strip()
                if not item:
                    continue
                if len(item) > OPTION_MAX:
                    errors[prefix + "options"] = tr(
                        "A choice may have at most %(max)s characters", max=OPTION_MAX)
                    break
                if item in options:
                    errors[prefix + "options"] = tr("The choice %(choice)s is listed twice",
                                                    choice=item)
                    break
                options.append(item)
            else:
                if not 2 <= len(options) <= MAX_OPTIONS:
                    errors[prefix + "options"] = tr(
                        "A choice question needs 2 to %(max)s choices", max=MAX_OPTIONS)
    elif raw not in (None, [], ""):
        errors[prefix + "options"] = tr("Only choice questions have choices")
    required = data.get("required", True)
    if isinstance(required, str):
        required = required.lower() in ("y", "yes", "true", "1", "on")
    if not isinstance(required, bool):
        errors[prefix + "required"] = tr("%(field)s must be true or false", field="required")
    if errors:
        raise ValidationFailed(errors)
    return {"kind": kind, "text": question, "required": required,
            "options": json.dumps(options, ensure_ascii=False) if kind in CHOICE_KINDS else None}


def _clean_questions(raw: Any) -> list[dict]:
    if not isinstance(raw, list):
        raise ValidationFailed({"questions": tr("questions must be a list")})
    if len(raw) > MAX_QUESTIONS:
        raise ValidationFailed({"questions": tr("A survey may have at most %(max)s questions",
                                                max=MAX_QUESTIONS)})
    errors: dict[str, str] = {}
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(clean_question(item, f"questions.{i}"))
        except ValidationFailed as exc:
            errors.update(exc.fields)
    if errors:
        raise ValidationFailed(errors)
    return out


def _title_taken(title: str, survey_id: Optional[int] = None) -> None:
    q = select(Survey.id).where(func.lower(Survey.title) == title.lower())
    if survey_id is not None:
        q = q.where(Survey.id != survey_id)
    if db.session.execute(q.limit(1)).first():
        raise ValidationFailed({"title": tr("A survey with this title already exists")})


def _commit_unique_title() -> None:
    # A concurrent survey may take the title first: the unique index decides.
    commit_unique(None, "title", tr("A survey with this title already exists"))


def create_survey(actor: User, data: dict) -> Survey:
    _require_manager(actor)
    values = clean_survey(data)
    questions = _clean_questions(data["questions"]) if "questions" in data else []
    _title_taken(values["title"])
    survey = Survey(created_by_id=actor.id, status="draft", **values)
    try:
        audit.record_new(actor.id, "survey", survey)
    except IntegrityError:  # a concurrent survey took the title between look-up and flush
        raise ValidationFailed({"title": tr("A survey with this title already exists")})
    for position, q in enumerate(questions, 1):
        db.session.add(SurveyQuestion(survey_id=survey.id, position=position, **q))
    _commit_unique_title()
    return survey


def _lock(survey_id: int) -> Survey:
    """The survey row, locked for the transaction (PostgreSQL) so that a status change and a
    question change cannot interleave."""
    survey = db.session.execute(select(Survey).where(Survey.id == survey_id)
                                .with_for_update()).scalar_one_or_none()
    if survey is None:
        raise NotFound(str(NO_SUCH_SURVEY))
    return survey


def _require_draft(survey: Survey) -> None:
    if survey.status != "draft":
        raise Conflict(tr("Questions can only be changed while the survey is a draft (it has "
                          "been opened and may have answers): make a new survey instead"),
                       code="survey_not_draft")


def update_survey(actor: User, survey_id: Any, data: dict) -> Survey:
    """Title, intro, link lifetime; `questions` replaces every question (drafts only)."""
    survey = get_survey(actor, survey_id)
    _require_manager(actor)
    values = clean_survey(data, partial=True)
    questions = _clean_questions(data["questions"]) if "questions" in data else None
    survey = _lock(survey.id)
    if "title" in values:
        _title_taken(values["title"], survey.id)
    changes = audit.diff(survey, values)
    for key, value in values.items():
        setattr(survey, key, value)
    if questions is not None:
        _require_draft(survey)
        old = [q.text for q in questions_of(survey.id)]
        db.session.execute(SurveyQuestion.__table__.delete().where(
            SurveyQuestion.survey_id == survey.id))
        for position, q in enumerate(questions, 1):
            db.session.add(SurveyQuestion(survey_id=survey.id, position=position, **q))
        changes["questions"] = (" | ".join(old), " | ".join(q["text"] for q in questions))
    if changes:
        survey.updated_at = utcnow()
        audit.record(actor.id, "update", "survey", survey.id, changes)
    _commit_unique_title()
    return survey


def add_question(actor: User, survey_id: Any, data: dict) -> SurveyQuestion:
    survey = get_survey(actor, survey_id)
    _require_manager(actor)
    values = clean_question(data)
    survey = _lock(survey.id)
    _require_draft(survey)
    count, last = db.session.execute(select(func.count(), func.max(SurveyQuestion.position))
                                     .where(SurveyQuestion.survey_id == survey.id)).one()
    if count >= MAX_QUESTIONS:
        raise ValidationFailed({"text": tr("A survey may have at most %(max)s questions",
                                           max=MAX_QUESTIONS)})
    question = SurveyQuestion(survey_id=survey.id, position=(last or 0) + 1, **values)
    db.session.add(question)
    db.session.flush()
    audit.record(actor.id, "add_question", "survey", survey.id,
                 {"question": (None, values["text"])})
    db.session.commit()
    return question


def _question(actor: User, question_id: Any) -> tuple[Survey, SurveyQuestion]:
    pk = parse_pk(question_id)
    question = db.session.get(SurveyQuestion, pk) if pk is not None else None
    if question is None:
        raise NotFound(tr("The question does not exist"))
    survey = get_survey(actor, question.survey_id)
    _require_manager(actor)
    survey = _lock(survey.id)
    _require_draft(survey)
    return survey, question


def update_question(actor: User, question_id: Any, data: dict) -> SurveyQuestion:
    values = clean_question(data)
    survey, question = _question(actor, question_id)
    changes = audit.diff(question, values)
    for key, value in values.items():
        setattr(question, key, value)
    if changes:
        audit.record(actor.id, "update_question", "survey", survey.id,
                     {f"question.{question.position}.{k}": v for k, v in changes.items()})
    db.session.commit()
    return question


def delete_question(actor: User, question_id: Any) -> None:
    survey, question = _question(actor, question_id)
    audit.record(actor.id, "delete_question", "survey", survey.id,
                 {"question": (question.text, None)})
    db.session.delete(question)
    db.session.commit()


TRANSITIONS = {("draft", "open"), ("open", "closed"), ("closed", "open")}


def set_status(actor: User, survey_id: Any, status: str) -> Survey:
    """Open (a draft with questions, or a closed survey again) or close a survey."""
    survey = get_survey(actor, survey_id)
    _require_manager(actor)
    if status not in ("open", "closed"):
        raise ValidationFailed({"status": tr("The status can only be: %(choices)s",
                                             choices="open, closed")})
    survey = _lock(survey.id)
    if (survey.status, status) not in TRANSITIONS:
        raise Conflict(tr("The survey is %(status)s already", status=survey.status_label)
                       if survey.status == status else
                       tr("A draft survey cannot be closed: open it first"),
                       code="survey_status")
    if status == "open" and not questions_of(survey.id):
        raise Conflict(tr("Add at least one question before opening the survey"),
                       code="survey_empty")
    now = utcnow()
    audit.record(actor.id, status, "survey", survey.id, {"status": (survey.status, status)})
    survey.status, survey.updated_at = status, now
    if status == "open":
        survey.opened_at, survey.closed_at = survey.opened_at or now, None
    else:
        survey.closed_at = now
    db.session.commit()
    return survey


# --- sending ------------------------------------------------------------------------------
def _token_sql():
    """48 hex characters from the database's strong random source, per row."""
    if db.session.get_bind().dialect.name == "postgresql":
        return literal_column("replace(gen_random_uuid()::text, '-', '') || "
                              "substr(replace(gen_random_uuid()::text, '-', ''), 1, 16)")
    return literal_column("lower(hex(randomblob(24)))")


def _require_consent() -> bool:
    row = db.session.execute(select(MarketingSettings).limit(1)).scalar_one_or_none()
    return True if row is None else bool(row.require_consent)


def _not_opted_out(channel: str, address_column):
    return ~exists().where(MarketingOptOut.channel == channel,
                           MarketingOptOut.address == address_column)


def _insert(select_stmt, columns: list[str]) -> int:
    table = SurveyInvitation.__table__
    if db.session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        inserted = pg_insert(table).from_select(columns, select_stmt) \
            .on_conflict_do_nothing().returning(table.c.id).cte("inserted")
        return db.session.execute(select(func.count()).select_from(inserted)).scalar_one()
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return db.session.execute(sqlite_insert(table).from_select(columns, select_stmt)
                              .on_conflict_do_nothing()).rowcount


_COLUMNS = ["survey_id", "customer_id", "lead_id", "campaign_id", "token", "greeting_name",
            "channel", "address", "delivery_status", "attempts", "expires_at", "created_by_id",
            "created_at", "updated_at"]


def _rows_for(members, survey: Survey, channel: str, campaign_id: Optional[int],
              actor: User, now: dt.datetime, expires: dt.datetime, consent: bool) -> int:
    """INSERT … SELECT of the invitations of `members` (a subquery with customer_id and
    lead_id, one of them NULL per row): customers, then leads."""
    column = "email_norm" if channel == "email" else "mobile_e164"
    common = [literal(survey.id, Integer()), None, None, literal(campaign_id, Integer()),
              _token_sql(), None, literal(channel, String()), None,
              literal("pending", String()), literal(0, Integer()), literal(expires, DateTime()),
              literal(actor.id, Integer()), literal(now, DateTime()), literal(now, DateTime())]
    total = 0
    for model, key in ((Customer, "customer_id"), (Lead, "lead_id")):
        address = getattr(model, column)
        name = Customer.name if model is Customer else func.coalesce(
            Lead.person_name, Lead.company_name)
        values = list(common)
        values[1] = model.id if model is Customer else literal(None, Integer())
        values[2] = model.id if model is Lead else literal(None, Integer())
        values[5], values[7] = name, address
        where = [address.isnot(None), address != "", _not_opted_out(channel, address)]
        if model is Lead and consent:
            where.append(Lead.consented_at.isnot(None))
        # The cast: a segment's NULL column may come untyped (PostgreSQL: integer = text).
        stmt = select(*values).select_from(members).join(
            model, model.id == cast(getattr(members.c, key), Integer())).where(*where)
        total += _insert(stmt, _COLUMNS)
    return total


def send(actor: User, survey_id: Any, data: dict) -> dict:
    """Invite a campaign's members (campaign_id) or a segment's (segment_id) by `channel`
    (email | sms); returns {"invited": new invitations, "already": ones the survey had}."""
    survey = get_survey(actor, survey_id)
    _require_manager(actor)
    errors: dict[str, str] = {}
    for name in sorted(set(data) - {"campaign_id", "segment_id", "channel"}):
        errors[name] = tr("This field cannot be changed or does not exist")
    channel = data.get("channel")
    if channel not in INVITATION_CHANNELS:
        errors["channel"] = tr("The delivery channel can only be: %(choices)s",
                              choices="email, sms")
    campaign_id, segment_id = data.get("campaign_id"), data.get("segment_id")
    campaign = segment = None
    if (campaign_id in (None, "")) == (segment_id in (None, "")):
        errors["campaign_id"] = tr("Name either a campaign or a segment")
    elif campaign_id not in (None, ""):
        pk = parse_pk(campaign_id)
        campaign = db.session.get(Campaign, pk) if pk is not None else None
        if campaign is None:
            errors["campaign_id"] = tr("The campaign does not exist")
    else:
        pk = parse_pk(segment_id)
        segment = db.session.get(Segment, pk) if pk is not None else None
        if segment is None:
            errors["segment_id"] = tr("The segment does not exist")
    if errors:
        raise ValidationFailed(errors)
    if survey.status != "open":
        raise Conflict(tr("Only an open survey can be sent"), code="survey_not_open")
    if campaign is not None:
        members = select(CampaignMember.customer_id, CampaignMember.lead_id).where(
            CampaignMember.campaign_id == campaign.id).subquery("members")
    else:
        from app.services.marketing_segments import members_select

        members = members_select(segment).subquery("members")
    now = utcnow()
    expires = now + dt.timedelta(days=survey.expires_days)
    before = db.session.execute(select(func.count()).where(
        SurveyInvitation.survey_id == survey.id)).scalar_one()
    invited = _rows_for(members, survey, channel, campaign.id if campaign else None, actor,
                        now, expires, _require_consent())
    audit.record(actor.id, "send", "survey", survey.id, {
        "invited": (None, invited), "channel": (None, channel),
        "campaign_id": (None, campaign.id if campaign else None),
        "segment_id": (None, segment.id if segment else None)})
    db.session.commit()
    return {"invited": invited, "already": before}


def invite(actor: Optional[User], survey_id: int, *, customer_id: Optional[int] = None,
           contact_id: Optional[int] = None, lead_id: Optional[int] = None,
           greeting_name: Optional[str] = None, ticket_id: Optional[int] = None,
           channel: Optional[str] = None, address: Optional[str] = None,
           now: Optional[dt.datetime] = None) -> SurveyInvitation:
    """One invitation: a new token, or the record's existing invitation to this survey.
    Without a channel it is not delivered (the link is handed out otherwise); with channel
    and address it waits for the survey delivery job (pending).

    With ticket_id (the service desk's satisfaction survey, app.services.satisfaction): one
    invitation per ticket instead of per survey and record (a unique index), and it only
    flushes: the resolving transaction commits it with the ticket's change."""
    import secrets

    if ticket_id is not None:
        return _invite_for_ticket(actor, survey_id, ticket_id, customer_id=customer_id,
                                  contact_id=contact_id, greeting_name=greeting_name,
                                  channel=channel, address=address, now=now or utcnow())

    survey = db.session.get(Survey, survey_id)
    if survey is None:
        raise NotFound(str(NO_SUCH_SURVEY))
    if survey.status != "open":
        raise Conflict(tr("Only an open survey can be sent"), code="survey_not_open")
    if sum(x is not None for x in (customer_id, contact_id, lead_id)) != 1:
        raise ValidationFailed({"record": tr("Name exactly one customer, contact or lead")})
    record = (SurveyInvitation.customer_id == customer_id if customer_id is not None else
              SurveyInvitation.contact_id == contact_id if contact_id is not None else
              SurveyInvitation.lead_id == lead_id)
    mine = select(SurveyInvitation).where(SurveyInvitation.survey_id == survey_id, record)
    found = db.session.execute(mine).scalar_one_or_none()
    if found is not None:
        return found
    now = now or utcnow()
    row = SurveyInvitation(survey_id=survey_id, customer_id=customer_id, contact_id=contact_id,
                           lead_id=lead_id, token=secrets.token_hex(24),
                           greeting_name=greeting_name, expires_at=now + dt.timedelta(
                               days=survey.expires_days),
                           created_by_id=actor.id if actor else None, created_at=now,
                           updated_at=now, **_delivery(channel, address))
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:  # invited concurrently (that invitation is the record's), or
        db.session.rollback()  # the record does not exist
        found = db.session.execute(mine).scalar_one_or_none()
        if found is None:
            raise NotFound(tr("The record does not exist"))
        return found
    return row


def _delivery(channel: Optional[str], address: Optional[str]) -> dict:
    if channel is None:
        return {}
    if channel not in INVITATION_CHANNELS or not address:
        raise ValidationFailed({"channel": tr("The delivery channel can only be: %(choices)s",
                                              choices="email, sms")})
    return {"channel": channel, "address": address, "delivery_status": "pending",
            "attempts": 0}


def _invite_for_ticket(actor: Optional[User], survey_id: int, ticket_id: int, *,
                       customer_id: Optional[int], contact_id: Optional[int],
                       greeting_name: Optional[str], channel: Optional[str],
                       address: Optional[str], now: dt.datetime) -> SurveyInvitation:
    """The ticket's invitation: the existing one, or a new one flushed in the caller's
    transaction (a savepoint, so a concurrent resolve's row wins without undoing it)."""
    import secrets

    survey = db.session.get(Survey, survey_id)
    if survey is None:
        raise NotFound(str(NO_SUCH_SURVEY))
    if survey.status != "open":
        raise Conflict(tr("Only an open survey can be sent"), code="survey_not_open")
    if (customer_id is None) == (contact_id is None):
        raise ValidationFailed({"record": tr("Name exactly one customer, contact or lead")})
    mine = select(SurveyInvitation).where(SurveyInvitation.ticket_id == ticket_id)
    found = db.session.execute(mine).scalar_one_or_none()
    if found is not None:
        return found
    row = SurveyInvitation(survey_id=survey_id, customer_id=customer_id, contact_id=contact_id,
                           ticket_id=ticket_id, token=secrets.token_hex(24),
                           greeting_name=greeting_name,
                           expires_at=now + dt.timedelta(days=survey.expires_days),
                           created_by_id=actor.id if actor else None, created_at=now,
                           updated_at=now, **_delivery(channel, address))
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:  # the ticket was invited concurrently: that invitation stands
        found = db.session.execute(mine).scalar_one_or_none()
        if found is None:
            raise NotFound(tr("The record does not exist"))
        return found
    return row


# --- delivery -----------------------------------------------------------------------------
@dataclass
class DeliveryResult:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    cancelled: int = 0
    interrupted: int = 0

    def summary(self) -> dict:
        return {"sent": self.sent, "retrying": self.retrying, "failed": self.failed,
                "cancelled": self.cancelled, "interrupted": self.interrupted}


def public_link(token: str) -> str:
    base = (current_app.config.get("PUBLIC_URL") or "http://localhost:5000").rstrip("/")
    return f"{base}/s/{token}"


def message_for(invitation: SurveyInvitation, survey: Survey) -> tuple[str, str]:
    """(subject, body) of the invitation in the default language (Chinese)."""
    link = public_link(invitation.token)
    until = local_naive(invitation.expires_at).strftime("%Y-%m-%d")
    name = invitation.greeting_name or ""
    if invitation.channel == "sms":
        return "", f"{name}您好，诚邀您参与问卷「{survey.title}」：{link} （{until}前有效）" \
            + campaign_sending.SMS_OPTOUT_TAIL
    body = (f"{name}您好：\n\n诚邀您参与问卷调查「{survey.title}」。\n"
            + (f"{survey.intro}\n" if survey.intro else "")
            + f"\n请点击以下链接填写（{until}前有效）：\n{link}\n")
    # Marketing mail: the same unsubscribe link as a campaign's (the opt-out is recorded for
    # the invitation's address, source 'link', and the campaign if it came with one).
    optout = campaign_sending.address_unsubscribe_url(
        "email", invitation.address, customer_id=invitation.customer_id,
        lead_id=invitation.lead_id, campaign_id=invitation.campaign_id)
    body += f"\n--\n{campaign_sending.EMAIL_OPTOUT_LINE}{optout}"
    return f"问卷调查：{survey.title}", body


def _claim(invitation_id: int, now: dt.datetime) -> bool:
    n = db.session.execute(update(SurveyInvitation).where(
        SurveyInvitation.id == invitation_id, SurveyInvitation.delivery_status == "pending")
        .values(delivery_status="sending", updated_at=now)).rowcount
    db.session.commit()
    return n == 1


def _settle(row: SurveyInvitation, error: Optional[care_channels.DeliveryError],
            result: DeliveryResult, now: dt.datetime) -> None:
    row.attempts += 1
    row.updated_at = now
    if error is None:
        row.delivery_status, row.sent_at, row.last_error, row.next_attempt_at = \
            "sent", now, None, None
        result.sent += 1
    elif error.permanent or row.attempts >= MAX_ATTEMPTS:
        row.delivery_status, row.last_error = "failed", str(error)
        result.failed += 1
    else:
        row.delivery_status, row.last_error = "pending", str(error)
        row.next_attempt_at = now + backoff(row.attempts)
        result.retrying += 1
    db.session.commit()


def deliver(now: Optional[dt.datetime] = None, limit: Optional[int] = None,
            progress: Optional[Callable[[int, Optional[int]], None]] = None) -> DeliveryResult:
    """Send every pending invitation due by now; commits as it goes."""
    now = now or utcnow()
    result = DeliveryResult()
    result.interrupted = db.session.execute(update(SurveyInvitation).where(
        SurveyInvitation.delivery_status == "sending",
        SurveyInvitation.updated_at < now - STALE_SENDING).values(
        delivery_status="failed", updated_at=now,
        last_error="发送中断（进程退出），无法确认是否送达")).rowcount
    db.session.commit()
    due = and_(SurveyInvitation.delivery_status == "pending",
               or_(SurveyInvitation.next_attempt_at.is_(None),
                   SurveyInvitation.next_attempt_at <= now))
    last_id, done = 0, 0
    while limit is None or done < limit:
        ids = list(db.session.execute(select(SurveyInvitation.id).where(
            due, SurveyInvitation.id > last_id).order_by(SurveyInvitation.id)
            .limit(BATCH)).scalars())
        if not ids:
            break
        last_id = ids[-1]
        for invitation_id in ids:
            if not _claim(invitation_id, now):
                continue
            row = db.session.get(SurveyInvitation, invitation_id)
            survey = db.session.get(Survey, row.survey_id)
            opted_out = db.session.execute(select(MarketingOptOut.id).where(
                MarketingOptOut.channel == row.channel,
                MarketingOptOut.address == row.address).limit(1)).first()
            if opted_out or survey.status != "open" or row.expires_at <= now \
                    or row.answered_at is not None:
                # Opted out since, survey closed, link expired or already answered: not sent.
                row.delivery_status, row.updated_at = "cancelled", now
                row.last_error = "已退订" if opted_out else None
                result.cancelled += 1
                db.session.commit()
                continue
            subject, body = message_for(row, survey)
            try:
                if row.channel == "email":
                    care_channels.send_email(row.address, subject, body)
                else:
                    care_channels.send_sms(row.address, body)
                error = None
            except care_channels.DeliveryError as exc:
                error = exc
            _settle(row, error, result, now)
            done += 1
        if progress:
            progress(done, None)
    return result


# --- answering ----------------------------------------------------------------------------
STATES = ("unknown", "expired", "closed", "answered", "ready")


@dataclass
class Invitation:
    state: str
    invitation: Optional[SurveyInvitation] = None
    survey: Optional[Survey] = None


def by_token(token: Any, now: Optional[dt.datetime] = None) -> Invitation:
    """What the public page shows for this token: unknown (also malformed), answered,
    closed (the survey is not open), expired, or ready to answer."""
    now = now or utcnow()
    if not isinstance(token, str) or not TOKEN_RE.match(token):
        return Invitation("unknown")
    row = db.session.execute(select(SurveyInvitation).where(
        SurveyInvitation.token == token)).scalar_one_or_none()
    if row is None:
        return Invitation("unknown")
    survey = db.session.get(Survey, row.survey_id)
    if row.answered_at is not None:
        return Invitation("answered", row, survey)
    if survey.status != "open":
        return Invitation("closed", row, survey)
    if row.expires_at <= now:
        return Invitation("expired", row, survey)
    return Invitation("ready", row, survey)


def _label(q: SurveyQuestion) -> str:
    return tr("Question %(n)s (%(text)s)", n=q.position, text=q.text[:40])


def clean_answers(questions: list[SurveyQuestion], data: dict) -> list[tuple[int, str, Any]]:
    """The form's values (field q<id> -> list of strings) checked against each question:
    (question_id, column, value) rows, or ValidationFailed naming every bad question."""
    errors: dict[str, str] = {}
    rows: list[tuple[int, str, Any]] = []
    for q in questions:
        key = f"q{q.id}"
        raw = data.get(key) or []
        values = [raw] if isinstance(raw, str) else list(raw)
        values = [v.strip() for v in values if isinstance(v, str) and v.strip()]
        if not values:
            if q.required:
                errors[key] = tr("%(question)s is required", question=_label(q))
            continue
        if q.kind in CHOICE_KINDS:
            options = options_of(q)
            if q.kind == "single" and len(values) > 1:
                errors[key] = tr("%(question)s takes one choice", question=_label(q))
            elif any(v not in options for v in values) or len(set(values)) != len(values):
                errors[key] = tr("%(question)s: choose from the listed choices",
                                 question=_label(q))
            else:
                rows.extend((q.id, "choice", v) for v in values)
        elif q.kind == "rating":
            if len(values) != 1 or values[0] not in ("1", "2", "3", "4", "5"):
                errors[key] = tr("%(question)s: give a rating from 1 to 5", question=_label(q))
            else:
                rows.append((q.id, "rating", int(values[0])))
        else:
            value = "\n".join(values)
            if is_unclean(value):
                errors[key] = f"{_label(q)} {UNCLEAN_MESSAGE}"
            elif len(value) > ANSWER_MAX:
                errors[key] = tr("%(question)s: at most %(max)s characters",
                                 question=_label(q), max=ANSWER_MAX)
            else:
                rows.append((q.id, "text", value))
    if errors:
        raise ValidationFailed(errors)
    return rows


STATE_REFUSALS = {
    "unknown": lazy_tr("This survey link is not valid"),
    "expired": lazy_tr("This survey link has expired"),
    "closed": lazy_tr("This survey is closed"),
    "answered": lazy_tr("This survey has already been answered with this link. Thank you"),
}


def answer(token: Any, data: dict, now: Optional[dt.datetime] = None) -> SurveyResponse:
    """Store the answers of the invitation with this token, once. Conflict (code = the
    state: survey_unknown, survey_expired, survey_closed, survey_answered) when the link
    cannot take an answer; ValidationFailed naming each bad question."""
    now = now or utcnow()
    found = by_token(token, now)
    if found.state != "ready":
        raise Conflict(str(STATE_REFUSALS[found.state]), code=f"survey_{found.state}")
    invitation, survey = found.invitation, found.survey
    rows = clean_answers(questions_of(survey.id), data)
    invitation_id, survey_id = invitation.id, survey.id
    taken = db.session.execute(update(SurveyInvitation).where(
        SurveyInvitation.id == invitation_id, SurveyInvitation.answered_at.is_(None),
        SurveyInvitation.expires_at > now,
        SurveyInvitation.survey_id.in_(select(Survey.id).where(Survey.status == "open")))
        .values(answered_at=now, updated_at=now)).rowcount
    if taken != 1:
        db.session.rollback()
        state = by_token(token, now).state
        state = "answered" if state == "ready" else state
        raise Conflict(str(STATE_REFUSALS[state]), code=f"survey_{state}")
    try:
        response = SurveyResponse(survey_id=survey_id, invitation_id=invitation_id,
                                  submitted_at=now)
        db.session.add(response)
        db.session.flush()
        db.session.add_all(SurveyAnswer(response_id=response.id, question_id=qid,
                                        **{column: value}) for qid, column, value in rows)
        low = None
        if invitation.ticket_id is not None:  # a ticket's satisfaction: the score onto it
            from app.services import satisfaction

            low = satisfaction.rated(invitation, rows, now)
        db.session.commit()
    except IntegrityError:  # the unique response per invitation: another submission won
        db.session.rollback()
        raise Conflict(str(STATE_REFUSALS["answered"]), code="survey_answered")
    if low is not None:  # after the answer is safe: reopen, or a task for the owner
        satisfaction.low_score(low.id, now)
    return response


# --- results ------------------------------------------------------------------------------
def results(actor: Optional[User], survey_id: Any) -> dict:
    """Per question: counts per choice, or the ratings' count, average and distribution,
    or the number of texts; and the invitations, deliveries and response rate."""
    survey = get_survey(actor, survey_id)
    questions = questions_of(survey.id)
    invited, sent, answered = db.session.execute(select(
        func.count(), func.count(SurveyInvitation.sent_at),
        func.count(SurveyInvitation.answered_at)).where(
        SurveyInvitation.survey_id == survey.id)).one()
    choice_counts: dict[tuple[int, str], int] = {}
    for qid, choice, n in db.session.execute(select(
            SurveyAnswer.question_id, SurveyAnswer.choice, func.count()).join(
            SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id).where(
            SurveyQuestion.survey_id == survey.id, SurveyAnswer.choice.isnot(None))
            .group_by(SurveyAnswer.question_id, SurveyAnswer.choice)):
        choice_counts[(qid, choice)] = n
    rating_counts: dict[tuple[int, int], int] = {}
    for qid, rating, n in db.session.execute(select(
            SurveyAnswer.question_id, SurveyAnswer.rating, func.count()).join(
            SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id).where(
            SurveyQuestion.survey_id == survey.id, SurveyAnswer.rating.isnot(None))
            .group_by(SurveyAnswer.question_id, SurveyAnswer.rating)):
        rating_counts[(qid, rating)] = n
    answered_per_question = dict(db.session.execute(select(
        SurveyAnswer.question_id, func.count(func.distinct(SurveyAnswer.response_id))).join(
        SurveyQuestion, SurveyQuestion.id == SurveyAnswer.question_id).where(
        SurveyQuestion.survey_id == survey.id).group_by(SurveyAnswer.question_id)).all())
    out = []
    for q in questions:
        item = question_dict(q)
        item["answered"] = answered_per_question.get(q.id, 0)
        if q.kind in CHOICE_KINDS:
            item["counts"] = [{"choice": o, "count": choice_counts.get((q.id, o), 0)}
                              for o in options_of(q)]
        elif q.kind == "rating":
            dist = [{"rating": r, "count": rating_counts.get((q.id, r), 0)} for r in range(1, 6)]
            n = sum(d["count"] for d in dist)
            item["distribution"] = dist
            item["average"] = (round(sum(d["rating"] * d["count"] for d in dist) / n, 2)
                               if n else None)
        out.append(item)
    return {"survey_id": survey.id, "title": survey.title, "status": survey.status,
            "invited": invited, "sent": sent, "responses": answered,
            "response_rate": round(answered / invited, 4) if invited else None,
            "questions": out}


def texts(actor: Optional[User], question_id: Any, after: Any = None,
          limit: int = TEXT_PAGE) -> tuple[list[tuple[int, str]], Optional[int]]:
    """The free-text answers of a question, newest first, `limit` at a time by keyset:
    ([(answer id, text)], the `after` of the next page or None)."""
    pk = parse_pk(question_id)
    question = db.session.get(SurveyQuestion, pk) if pk is not None else None
    if question is None:
        raise NotFound(tr("The question does not exist"))
    get_survey(actor, question.survey_id)
    q = select(SurveyAnswer.id, SurveyAnswer.text).where(
        SurveyAnswer.question_id == question.id, SurveyAnswer.text.isnot(None))
    cursor = parse_pk(after) if after not in (None, "") else None
    if cursor is not None:
        q = q.where(SurveyAnswer.id < cursor)
    rows = [tuple(r) for r in db.session.execute(q.order_by(SurveyAnswer.id.desc())
                                                 .limit(limit + 1)).all()]
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (rows[-1][0] if more else None)


def export_header(questions: list[SurveyQuestion]) -> list[str]:
    return [tr("Response"), tr("Submitted at"), tr("Record")] + [
        f"{q.position}. {q.text}" for q in questions]


def export_rows(actor: Optional[User], survey_id: Any,
                batch: int = 500) -> tuple[list[str], Iterator[list]]:
    """The header and one row per response (multiple choices joined by "; ")."""
    survey = get_survey(actor, survey_id)
    questions = questions_of(survey.id)

    def rows() -> Iterator[list]:
        last = 0
        while True:
            page = db.session.execute(select(
                SurveyResponse.id, SurveyResponse.submitted_at, SurveyInvitation.customer_id,
                SurveyInvitation.contact_id, SurveyInvitation.lead_id).join(
                SurveyInvitation, SurveyInvitation.id == SurveyResponse.invitation_id).where(
                SurveyResponse.survey_id == survey.id, SurveyResponse.id > last)
                .order_by(SurveyResponse.id).limit(batch)).all()
            if not page:
                return
            last = page[-1].id
            answers: dict[int, dict[int, list[str]]] = {}
            for rid, qid, choice, rating, txt in db.session.execute(select(
                    SurveyAnswer.response_id, SurveyAnswer.question_id, SurveyAnswer.choice,
                    SurveyAnswer.rating, SurveyAnswer.text).where(
                    SurveyAnswer.response_id.in_([r.id for r in page]))
                    .order_by(SurveyAnswer.id)):
                value = choice if choice is not None else str(rating) if rating is not None \
                    else txt
                answers.setdefault(rid, {}).setdefault(qid, []).append(value)
            for r in page:
                record = (f"customer {r.customer_id}" if r.customer_id else
                          f"contact {r.contact_id}" if r.contact_id else f"lead {r.lead_id}")
                yield [r.id, local_naive(r.submitted_at), record] + [
                    "; ".join(answers.get(r.id, {}).get(q.id, [])) for q in questions]

    return export_header(questions), rows()


def export_csv(actor: Optional[User], survey_id: Any) -> str:
    from app.services.exports import SafeCsvWriter

    header, rows = export_rows(actor, survey_id)
    out = io.StringIO()
    writer = SafeCsvWriter(out)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def export_xlsx(actor: Optional[User], survey_id: Any) -> bytes:
    from openpyxl import Workbook

    from app.services.exports import safe_cell

    header, rows = export_rows(actor, survey_id)
    book = Workbook(write_only=True)
    sheet = book.create_sheet("survey")
    sheet.append([safe_cell(h) for h in header])
    for row in rows:
        sheet.append(["" if v is None else safe_cell(v) for v in row])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
