"""/api/v1/surveys/: list, show, add, change (fields, questions, open / close), results, send.
Admins and marketing write; managers and auditors read (app.services.surveys)."""
from __future__ import annotations

from flask_appbuilder.api import expose, rison
from flask_appbuilder.security.decorators import permission_name, protect

from app.api import schemas, survey_schemas as ss
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.security import RES_SURVEY, current_user
from app.services import surveys


def _answer(survey) -> dict:
    return schemas.dump(ss.SurveyResult, {"id": survey.id, "result": surveys.to_dict(survey)})


class SurveyApi(DocumentedApi):
    resource_name = "surveys"
    class_permission_name = RES_SURVEY
    openapi_spec_tag = "Surveys"
    openapi_spec_component_schemas = schemas.COMPONENTS + ss.COMPONENTS
    apispec_parameter_schemas = {"SurveyListQuery": ss.survey_list_query()}

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @rison(ss.SURVEY_LIST_KEYS)
    @maps_domain_errors
    def list_surveys(self, **kwargs):
        """The surveys.
        ---
        get:
          summary: 市场调研 — every survey, newest first; count is the total over every page
          parameters:
          - in: query
            name: q
            description: 'rison: (page:0,page_size:50,status:open)'
            content:
              application/json:
                schema: {$ref: '#/components/schemas/SurveyListQuery'}
          answer: SurveyPage
          errors: [400, 401, 403]
        """
        args = kwargs.get("rison") or {}
        status = args.get("status")
        if status is not None and status not in ("draft", "open", "closed"):
            from app.services.errors import ValidationFailed, tr

            raise ValidationFailed({"status": tr("The status can only be: %(choices)s",
                                                 choices="draft, open, closed")})
        page = surveys.list_surveys(current_user(), status, args.get("page", 0),
                                    args.get("page_size", surveys.PAGE_SIZE))
        return self.response(200, **schemas.dump(ss.SurveyPage, {
            "count": page.total, "page": page.page, "page_size": page.page_size,
            "result": [surveys.to_dict(s) for s in page.items]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def show(self, pk: int):
        """One survey with its questions.
        ---
        get:
          summary: 问卷 — one survey and its questions
          answer: SurveyResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(surveys.get_survey(current_user(), pk)))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Add a survey (a draft).
        ---
        post:
          summary: 新建问卷 — a draft, with its questions if given (admins, marketing)
          body: SurveyCreate
          answer: SurveyResult
          errors: [400, 401, 403]
        """
        body = load_body(ss.SurveyCreate)
        return self.response(200, **_answer(surveys.create_survey(current_user(), body)))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def change(self, pk: int):
        """Change a survey, its questions (drafts) or its status.
        ---
        put:
          summary: 修改问卷 — title, intro, link lifetime; questions while a draft; status
            open / closed
          body: SurveyUpdate
          answer: SurveyResult
          errors: [400, 401, 403, 404, 409]
        """
        body = load_body(ss.SurveyUpdate)
        status = body.pop("status", None)
        actor = current_user()
        surveys.get_survey(actor, pk)
        survey = surveys.update_survey(actor, pk, body) if body else None
        if status is not None:
            survey = surveys.set_status(actor, pk, status)
        if survey is None:
            survey = surveys.get_survey(actor, pk)
        return self.response(200, **_answer(survey))

    @expose("/<int:pk>/results", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def results(self, pk: int):
        """The results of a survey.
        ---
        get:
          summary: 调研结果 — per question the counts per choice, the ratings' average and
            distribution, the newest texts; invitations, responses and the response rate
          answer: SurveyResults
          errors: [401, 403, 404]
        """
        actor = current_user()
        out = surveys.results(actor, pk)
        for q in out["questions"]:
            if q["kind"] == "text":
                q["texts"] = [t for _id, t in surveys.texts(actor, q["id"])[0]]
        return self.response(200, **schemas.dump(ss.SurveyResults, out))

    @expose("/<int:pk>/send", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def send(self, pk: int):
        """Send an open survey to a campaign's or a segment's members.
        ---
        post:
          summary: 发送问卷 — one invitation per member with an address on the channel, not
            opted out (and with consent where required); delivered by the background job
          body: SurveySendRequest
          answer: SurveySent
          errors: [400, 401, 403, 404, 409]
        """
        body = load_body(ss.SurveySendRequest)
        body = {k: v for k, v in body.items() if v is not None}
        out = surveys.send(current_user(), pk, body)
        from app.queue import enqueue

        enqueue("jobs.surveys.survey_deliver")
        return self.response(200, **schemas.dump(ss.SurveySent, out))
