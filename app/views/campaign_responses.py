"""Campaign responses: the public tracked link (/c/<token>, no sign-in), the effect table
(/campaign-effect/, 活动效果, with its CSV and Excel export), a campaign's responses page
(/campaign-responses/<id>: its sign-up token and links, members with "responded", a new
respondent, its touches) and an owner's own customers in campaigns (/campaign-responses/mine).
Every read and write through app.services.campaign_responses."""
from __future__ import annotations

from flask import Response, abort, flash, make_response, redirect, request
from flask_appbuilder import BaseView, expose, has_access
from flask_babel import gettext

from app.security import RES_CAMPAIGN_EFFECT, RES_CAMPAIGN_RESPONSE, current_user
from app.services import campaign_responses as responses
from app.services import exports
from app.services.errors import GuishuError, NotFound, PermissionDenied, ValidationFailed

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
RESPONDENT_FIELDS = ("person_name", "company_name", "mobile", "phone", "email", "city")


class PublicClickView(BaseView):
    """/c/<token>: a tracked link. Only a target we signed redirects (no open redirect)."""

    route_base = "/c"
    default_view = "click"

    @expose("/<token>")
    def click(self, token):
        try:
            target = responses.record_click(token)
        except NotFound:
            abort(404)
        response = make_response(redirect(target, 302))
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response


def _refusal(exc: GuishuError):
    if isinstance(exc, PermissionDenied):
        abort(403)
    if exc.status == 404:
        abort(404)
    abort(400, description=exc.message)


class CampaignEffectView(BaseView):
    route_base = "/campaign-effect"
    class_permission_name = RES_CAMPAIGN_EFFECT
    method_permission_name = {"index": "read", "export_csv": "export", "export_xlsx": "export"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self):
        actor = current_user()
        try:
            rows = responses.effect(None, actor)
        except GuishuError as exc:
            _refusal(exc)
        return self.render_template("guishu/campaign_effect.html", rows=rows,
                                    days=responses.attribution_days(),
                                    may_manage=responses.may_manage(actor))

    def _table(self):
        try:
            rows = responses.effect(None, current_user())
        except GuishuError as exc:
            _refusal(exc)
        return responses.effect_header(), responses.effect_rows(rows)

    @expose("/export.csv")
    @has_access
    def export_csv(self):
        header, rows = self._table()
        return Response(exports.table_csv(header, rows), mimetype="text/csv; charset=utf-8",
                        headers={"Content-Disposition":
                                 "attachment; filename=campaign-effect.csv"})

    @expose("/export.xlsx")
    @has_access
    def export_xlsx(self):
        header, rows = self._table()
        return Response(exports.table_xlsx("campaign effect", header, rows), mimetype=XLSX,
                        headers={"Content-Disposition":
                                 "attachment; filename=campaign-effect.xlsx"})


class CampaignResponsesView(BaseView):
    route_base = "/campaign-responses"
    class_permission_name = RES_CAMPAIGN_RESPONSE
    method_permission_name = {"show": "read", "touches": "read", "rotate": "write",
                              "respond_member": "write", "respond_new": "write",
                              "mine": "write"}
    default_view = "mine"

    def _campaign(self, campaign_id):
        actor = current_user()
        if not responses.may_manage(actor):
            abort(403)
        try:
            return actor, responses.get_campaign(campaign_id)
        except NotFound:
            abort(404)

    @expose("/<int:campaign_id>")
    @has_access
    def show(self, campaign_id):
        actor, campaign = self._campaign(campaign_id)
        members, next_after = responses.member_page(actor, campaign.id, request.args.get("after"))
        return self.render_template(
            "guishu/campaign_responses.html", campaign=campaign, members=members,
            next_after=next_after, links=responses.signup_links(campaign),
            host=request.host_url.rstrip("/"), fields=RESPONDENT_FIELDS)

    @expose("/<int:campaign_id>/touches")
    @has_access
    def touches(self, campaign_id):
        actor, campaign = self._campaign(campaign_id)
        rows, next_after = responses.touch_page(actor, campaign.id, request.args.get("after"))
        return self.render_template("guishu/campaign_touches.html", campaign=campaign,
                                    rows=rows, next_after=next_after)

    @expose("/<int:campaign_id>/token", methods=["POST"])
    @has_access
    def rotate(self, campaign_id):
        actor, campaign = self._campaign(campaign_id)
        try:
            responses.rotate_campaign_token(actor, campaign.id)
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            flash(gettext("The campaign has a new sign-up token; links with the old one no "
                          "longer count for it."), "success")
        return redirect(f"/campaign-responses/{campaign_id}")

    @expose("/<int:campaign_id>/members/<int:member_id>/respond", methods=["POST"])
    @has_access
    def respond_member(self, campaign_id, member_id):
        actor = current_user()
        try:
            responses.mark_member_response(actor, member_id, request.form.get("note"),
                                           campaign_id=campaign_id)
        except (PermissionDenied, NotFound) as exc:
            _refusal(exc)
        except GuishuError as exc:
            if exc.status == 404:
                abort(404)
            flash(exc.message, "danger")
        else:
            flash(gettext("The response is recorded."), "success")
        back = request.form.get("back")
        return redirect("/campaign-responses/mine" if back == "mine"
                        else f"/campaign-responses/{campaign_id}")

    @expose("/<int:campaign_id>/respond", methods=["POST"])
    @has_access
    def respond_new(self, campaign_id):
        actor, campaign = self._campaign(campaign_id)
        data = {k: request.form.get(k) for k in RESPONDENT_FIELDS if request.form.get(k)}
        try:
            done = responses.record_response(actor, campaign.id, data, request.form.get("note"))
        except ValidationFailed as exc:
            flash("; ".join(f"{k}: {v}" for k, v in exc.fields.items()), "danger")
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            flash(gettext("A new lead was created with the response.") if done.lead_created
                  else gettext("The respondent exists already: the response is on that "
                               "record."), "success")
        return redirect(f"/campaign-responses/{campaign_id}")

    @expose("/mine")
    @has_access
    def mine(self):
        try:
            rows, next_after = responses.own_member_page(current_user(),
                                                         request.args.get("after"))
        except GuishuError as exc:
            _refusal(exc)
        return self.render_template("guishu/campaign_mine.html", rows=rows,
                                    next_after=next_after)
