"""市场调研 pages: the survey list, add / edit, open / close, the questions of a draft,
sending to a campaign or segment, the results (exportable), and the public page /s/<token>
a recipient answers without signing in. Every write goes through app.services.surveys."""
from __future__ import annotations

from flask import Response, abort, flash, make_response, redirect, render_template, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.actions import action
from flask_babel import gettext, lazy_gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from wtforms import IntegerField, TextAreaField
from wtforms.validators import Optional as OptionalValidator

from app.extensions import db
from app.models import Campaign, Segment, Survey
from app.models.survey import QUESTION_KINDS
from app.paging import KeysetInterface
from app.security import METHOD_PERMISSIONS, RES_SURVEY
from app.services import surveys
from app.services.errors import GuishuError, ValidationFailed
from app.views.base import readable_formatters
from app.views.org import ServiceModelView

FORM_COLUMNS = ["title", "intro", "expires_days"]


class SurveyView(ServiceModelView):
    datamodel = KeysetInterface(Survey, load=[joinedload(Survey.created_by)])
    class_permission_name = RES_SURVEY
    route_base = "/surveys"
    base_permissions = ["can_read", "can_write", "can_export"]
    # Never deleted (the answers belong to it): close a survey instead.
    method_permission_name = dict(METHOD_PERMISSIONS, delete="amend", questions="read",
                                  send="write", results="read", results_csv="export",
                                  results_xlsx="export", open_survey="write",
                                  close_survey="write")
    base_order = ("created_at", "desc")
    order_columns = ["created_at"]
    list_title = show_title = _("Surveys")
    add_title = _("Add survey")
    edit_title = _("Edit survey")
    list_columns = ["title", "status_label", "created_by", "created_at"]
    show_columns = ["title", "status_label", "intro", "expires_days", "created_by",
                    "created_at", "opened_at", "closed_at"]
    add_columns = edit_columns = FORM_COLUMNS
    search_columns = ["title", "status"]
    show_template = "guishu/survey_show.html"
    label_columns = {"title": _("Title"), "intro": _("Introduction"),
                     "status": _("Survey status"), "status_label": _("Survey status"),
                     "expires_days": _("Link valid for (days)"), "created_by": _("Created by"),
                     "created_at": _("Created at"), "opened_at": _("Opened at"),
                     "closed_at": _("Closed at")}
    formatters_columns = readable_formatters("created_by",
                                             times=("created_at", "opened_at", "closed_at"))
    _fields = {"intro": TextAreaField(_("Introduction"), validators=[OptionalValidator()]),
               "expires_days": IntegerField(_("Link valid for (days)"), default=30,
                                            validators=[OptionalValidator()])}
    add_form_extra_fields = edit_form_extra_fields = _fields

    def create_item(self, values: dict) -> None:
        surveys.create_survey(self.actor(), self._values(values))

    def update_item(self, pk: int, values: dict) -> None:
        surveys.update_survey(self.actor(), pk, self._values(values))

    @staticmethod
    def _values(values: dict) -> dict:
        if values.get("expires_days") is None:
            values.pop("expires_days", None)
        return values

    def _delete(self, pk):
        abort(404)

    def _status(self, item, status):
        try:
            surveys.set_status(self.actor(), item.id, status)
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            flash(gettext("The survey is open for answers.") if status == "open"
                  else gettext("The survey is closed."), "success")
        return redirect(url_for("SurveyView.show", pk=item.id))

    @action("open_survey", _("Open for answers"), None, "fa-play", multiple=False)
    def open_survey(self, item):
        return self._status(item, "open")

    @action("close_survey", _("Close survey"), _("Close the survey? Its links stop taking "
                                                 "answers."), "fa-stop", multiple=False)
    def close_survey(self, item):
        return self._status(item, "closed")

    @expose("/<pk>/questions", methods=["GET", "POST"])
    @has_access
    def questions(self, pk):
        survey = self._scoped_get(pk)
        errors: dict[str, str] = {}
        values = {"kind": "single", "text": "", "options": "", "required": "y"}
        if request.method == "POST":
            form = request.form
            try:
                if form.get("delete"):
                    surveys.delete_question(self.actor(), form.get("delete"))
                    flash(gettext("The question was removed."), "success")
                else:
                    data = {"kind": form.get("kind"), "text": form.get("text"),
                            "options": form.get("options", ""),
                            "required": form.get("required") == "y"}
                    if data["kind"] not in surveys.CHOICE_KINDS:
                        data["options"] = None
                    if form.get("question_id"):
                        surveys.update_question(self.actor(), form.get("question_id"), data)
                    else:
                        surveys.add_question(self.actor(), survey.id, data)
                    flash(gettext("The question was saved."), "success")
                return redirect(url_for("SurveyView.questions", pk=survey.id))
            except ValidationFailed as exc:
                errors, values = exc.fields, dict(form.items())
            except GuishuError as exc:
                flash(exc.message, "danger")
        return self.render_template(
            "guishu/survey_questions.html", survey=survey,
            questions=surveys.questions_of(survey.id), options_of=surveys.options_of,
            kinds=QUESTION_KINDS, errors=errors, values=values,
            editable=survey.status == "draft" and surveys.can_manage(self.actor()))

    @expose("/<pk>/send", methods=["GET", "POST"])
    @has_access
    def send(self, pk):
        survey = self._scoped_get(pk)
        errors: dict[str, str] = {}
        if request.method == "POST":
            form = request.form
            data = {"channel": form.get("channel")}
            target = form.get("target", "")
            kind, _sep, target_id = target.partition(":")
            if kind == "campaign":
                data["campaign_id"] = target_id
            elif kind == "segment":
                data["segment_id"] = target_id
            try:
                out = surveys.send(self.actor(), survey.id, data)
            except ValidationFailed as exc:
                errors = exc.fields
            except GuishuError as exc:
                flash(exc.message, "danger")
            else:
                from app.queue import enqueue

                enqueue("jobs.surveys.survey_deliver")
                flash(gettext("%(n)s invitations are on their way.", n=out["invited"]),
                      "success")
                return redirect(url_for("SurveyView.results", pk=survey.id))
        campaigns = db.session.execute(select(Campaign.id, Campaign.name)
                                       .order_by(Campaign.name).limit(500)).all()
        segments = db.session.execute(select(Segment.id, Segment.name)
                                      .order_by(Segment.name).limit(500)).all()
        return self.render_template("guishu/survey_send.html", survey=survey,
                                    campaigns=campaigns, segments=segments, errors=errors)

    @expose("/<pk>/results")
    @has_access
    def results(self, pk):
        survey = self._scoped_get(pk)
        try:
            report = surveys.results(self.actor(), survey.id)
        except GuishuError:
            abort(404)
        question = request.args.get("question")
        texts = {}
        for q in report["questions"]:
            if q["kind"] == "text":
                after = request.args.get("after") if str(q["id"]) == question else None
                texts[q["id"]] = surveys.texts(self.actor(), q["id"], after)
        return self.render_template("guishu/survey_results.html", survey=survey,
                                    report=report, texts=texts)

    def _export(self, pk, kind):
        survey = self._scoped_get(pk)
        try:
            if kind == "csv":
                body, mimetype = surveys.export_csv(self.actor(), survey.id), "text/csv"
            else:
                body = surveys.export_xlsx(self.actor(), survey.id)
                mimetype = ("application/vnd.openxmlformats-officedocument."
                            "spreadsheetml.sheet")
        except GuishuError:
            abort(404)
        return Response(body, mimetype=mimetype, headers={
            "Content-Disposition": f"attachment; filename=survey-{survey.id}.{kind}"})

    @expose("/<pk>/results.csv")
    @has_access
    def results_csv(self, pk):
        return self._export(pk, "csv")

    @expose("/<pk>/results.xlsx")
    @has_access
    def results_xlsx(self, pk):
        return self._export(pk, "xlsx")


class PublicSurveyView(BaseView):
    """/s/<token>: no sign-in. The page carries a CSRF token (the visitor's session cookie
    holds its pair), so a POST from another site is refused. It shows the questions and a
    greeting name, nothing else of the recipient."""

    route_base = "/s"
    default_view = "page"

    @expose("/<token>", methods=["GET", "POST"])
    def page(self, token):
        found = surveys.by_token(token)
        errors: dict[str, str] = {}
        values: dict = {}
        status = {"unknown": 404, "expired": 410, "closed": 410, "answered": 200,
                  "ready": 200}[found.state]
        if found.state == "ready" and request.method == "POST":
            data = {k: request.form.getlist(k) for k in request.form if k.startswith("q")}
            try:
                surveys.answer(token, data)
            except ValidationFailed as exc:
                errors, values, status = exc.fields, data, 400
            except GuishuError:
                found = surveys.by_token(token)
                status = 409
            else:
                return self._render(found, thanks=True)
            if status == 409:
                return self._render(found, status=409)
        return self._render(found, errors=errors, values=values, status=status)

    def _render(self, found, thanks=False, errors=None, values=None, status=200):
        questions = surveys.questions_of(found.survey.id) \
            if found.state == "ready" and not thanks else []
        response = make_response(render_template(
            "guishu/survey_public.html", found=found, thanks=thanks, questions=questions,
            errors=errors or {}, values=values or {}, options_of=surveys.options_of,
            refusal=None if found.state == "ready" or thanks
            else str(surveys.STATE_REFUSALS[found.state])), status)
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"  # the token stays off other sites
        return response
