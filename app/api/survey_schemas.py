"""The bodies of /api/v1/surveys/ (kept beside app.api.schemas, registered by SurveyApi)."""
from __future__ import annotations

from marshmallow import fields

from app.api.schemas import Answer, Body, Choice, Count, Flag, RecordId, Text, page_query
from app.models.survey import QUESTION_KINDS
from app.services import surveys
from app.services.errors import tr

_KINDS = tuple(QUESTION_KINDS)


class SurveyQuestionIn(Body):
    kind = Choice(_KINDS, required=True, message=lambda: tr(
        "The question kind can only be: %(choices)s", choices=", ".join(_KINDS)),
        metadata={"description": "single | multiple | rating (1-5) | text"})
    text = Text(surveys.QUESTION_MAX, required=True)
    options = fields.List(Text(surveys.OPTION_MAX), allow_none=True, metadata={
        "description": f"single / multiple: 2-{surveys.MAX_OPTIONS} distinct choices"})
    required = Flag(metadata={"description": "an answer is required (default true)"})


class SurveyCreate(Body):
    title = Text(surveys.TITLE_MAX, required=True, metadata={"description": "unique"})
    intro = Text(surveys.INTRO_MAX, allow_none=True)
    expires_days = Count(1, 365, metadata={"description": "how long a link works (default 30)"})
    questions = fields.List(fields.Nested(SurveyQuestionIn), metadata={
        "description": f"at most {surveys.MAX_QUESTIONS}"})


class SurveyUpdate(Body):
    title = Text(surveys.TITLE_MAX)
    intro = Text(surveys.INTRO_MAX, allow_none=True)
    expires_days = Count(1, 365)
    questions = fields.List(fields.Nested(SurveyQuestionIn), metadata={
        "description": "replaces every question: drafts only (409 survey_not_draft)"})
    status = Choice(("open", "closed"), message=lambda: tr(
        "The status can only be: %(choices)s", choices="open, closed"), metadata={
        "description": "open (a draft with questions, or closed again) or close"})


class SurveySendRequest(Body):
    channel = Choice(("email", "sms"), required=True, message=lambda: tr(
        "The delivery channel can only be: %(choices)s", choices="email, sms"))
    campaign_id = RecordId(allow_none=True, metadata={"description": "the campaign's members"})
    segment_id = RecordId(allow_none=True, metadata={
        "description": "the segment's members (evaluated in its creator's scope)"})


class SurveyQuestionOut(Answer):
    id = fields.Integer(required=True)
    position = fields.Integer(required=True)
    kind = fields.String(required=True)
    text = fields.String(required=True)
    options = fields.List(fields.String(), required=True)
    required = fields.Boolean(required=True)


class Survey(Answer):
    id = fields.Integer(required=True)
    title = fields.String(required=True)
    intro = fields.String(allow_none=True)
    status = fields.String(required=True, metadata={"description": "draft | open | closed"})
    expires_days = fields.Integer(required=True)
    opened_at = fields.String(allow_none=True)
    closed_at = fields.String(allow_none=True)
    created_by_id = fields.Integer(allow_none=True)
    created_at = fields.String(allow_none=True)
    questions = fields.List(fields.Nested(SurveyQuestionOut), required=True)


class SurveyResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(Survey, required=True)


class SurveyPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "total over every page"})
    page = fields.Integer(required=True)
    page_size = fields.Integer(required=True)
    result = fields.List(fields.Nested(Survey), required=True)


class ChoiceCount(Answer):
    choice = fields.String(required=True)
    count = fields.Integer(required=True)


class RatingCount(Answer):
    rating = fields.Integer(required=True)
    count = fields.Integer(required=True)


class QuestionResult(SurveyQuestionOut):
    answered = fields.Integer(required=True, metadata={"description": "responses answering it"})
    counts = fields.List(fields.Nested(ChoiceCount), metadata={"description": "choices"})
    distribution = fields.List(fields.Nested(RatingCount), metadata={"description": "rating"})
    average = fields.Float(allow_none=True, metadata={"description": "rating, 2 decimals"})
    texts = fields.List(fields.String(), metadata={
        "description": "text: the newest answers (the page shows them all, paged)"})


class SurveyResults(Answer):
    survey_id = fields.Integer(required=True)
    title = fields.String(required=True)
    status = fields.String(required=True)
    invited = fields.Integer(required=True)
    sent = fields.Integer(required=True)
    responses = fields.Integer(required=True)
    response_rate = fields.Float(allow_none=True, metadata={"description": "responses / invited"})
    questions = fields.List(fields.Nested(QuestionResult), required=True)


class SurveySent(Answer):
    invited = fields.Integer(required=True, metadata={"description": "new invitations"})
    already = fields.Integer(required=True, metadata={
        "description": "invitations the survey had before"})


SURVEY_LIST_KEYS = {"type": "object", "additionalProperties": False,
                    "properties": {"page": {}, "page_size": {}, "status": {}}}


def survey_list_query() -> dict:
    out = page_query(surveys.MAX_PAGE_SIZE)
    out["properties"]["status"] = {"type": "string", "enum": ["draft", "open", "closed"]}
    return out


COMPONENTS = (SurveyQuestionIn, SurveyCreate, SurveyUpdate, SurveySendRequest,
              SurveyQuestionOut, Survey, SurveyResult, SurveyPage, ChoiceCount, RatingCount,
              QuestionResult, SurveyResults, SurveySent)
