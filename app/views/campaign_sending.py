"""Campaign sending pages: a campaign's messages (templates, send window, its outbox), the
public unsubscribe page /u/<token>, the opt-out list (退订名单) and the marketing settings."""
from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext as _, lazy_gettext as _l, ngettext
from sqlalchemy import select
from wtforms import BooleanField
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Ownership
from app.models.marketing import (MESSAGE_STATUSES, OPTOUT_SOURCES, Campaign, CampaignMember,
                                  CampaignMessage, MarketingOptOut, MarketingSettings)
from app.security import RES_CAMPAIGN_MESSAGE, RES_MARKETING_SETTINGS, RES_OPTOUT
from app.services import campaign_sending, masking
from app.services.errors import GuishuError, NotFound, ValidationFailed
from app.services.ids import parse_pk
from app.views.base import minutes, signed_in_user
from app.views.org import SettingsRowView, ValidatedModelView

PAGE = 50
CHANNEL_LABELS = {"email": _l("E-mail"), "sms": _l("SMS")}


def _after(name: str = "after"):
    """The keyset cursor (the last id of the page before), or None."""
    return parse_pk(request.args.get(name))


def _masked(rule, channel: str, address: str, owner_id, pool_id) -> str:
    return masking.shown("email" if channel == "email" else "mobile", address,
                         rule(owner_id, pool_id))


class CampaignMessagesView(BaseView):
    """/campaigns/<id>/messages: Marketing and Admin edit the templates and retry / cancel;
    readers with the permission see the counts and the outbox (addresses masked)."""

    route_base = "/campaigns"
    class_permission_name = RES_CAMPAIGN_MESSAGE
    method_permission_name = {"messages": "read", "templates": "write", "retry": "write",
                              "cancel": "write"}
    default_view = "messages"

    def _campaign(self, campaign_id) -> Campaign:
        pk = parse_pk(campaign_id)
        row = db.session.get(Campaign, pk) if pk else None
        if row is None:
            abort(404)
        return row

    @expose("/<campaign_id>/messages")
    @has_access
    def messages(self, campaign_id, errors=None, values=None, status=200):
        campaign = self._campaign(campaign_id)
        status_filter = request.args.get("status")
        stmt = select(CampaignMessage, Ownership.owner_id, Ownership.pool_id) \
            .join(CampaignMember, CampaignMember.id == CampaignMessage.member_id) \
            .outerjoin(Ownership, Ownership.customer_id == CampaignMember.customer_id) \
            .where(CampaignMessage.campaign_id == campaign.id) \
            .options(joinedload(CampaignMessage.member).joinedload(CampaignMember.customer),
                     joinedload(CampaignMessage.member).joinedload(CampaignMember.lead))
        if status_filter in MESSAGE_STATUSES:
            stmt = stmt.where(CampaignMessage.status == status_filter)
        after = _after()
        if after:
            stmt = stmt.where(CampaignMessage.id < after)
        rows = db.session.execute(stmt.order_by(CampaignMessage.id.desc()).limit(PAGE + 1)).all()
        rule = masking.current_rule()
        items = [{"m": m, "address": _masked(rule, m.channel, m.address, owner_id, pool_id),
                  "record": (m.member.customer.name if m.member.customer_id
                             else (m.member.lead.name if m.member.lead else "")),
                  "status": MESSAGE_STATUSES.get(m.status, m.status),
                  "channel": CHANNEL_LABELS.get(m.channel, m.channel)}
                 for m, owner_id, pool_id in rows[:PAGE]]
        next_after = rows[PAGE - 1][0].id if len(rows) > PAGE else None
        response = make_response(self.render_template(
            "guishu/campaign_messages.html", campaign=campaign,
            counts=campaign_sending.status_counts(campaign.id), items=items,
            next_after=next_after, status_filter=status_filter, statuses=MESSAGE_STATUSES,
            errors=errors or {}, values=values,
            placeholders=campaign_sending.PLACEHOLDERS,
            can_edit=campaign_sending.can_edit(signed_in_user()), minutes=minutes), status)
        return response

    @expose("/<campaign_id>/messages/templates", methods=["POST"])
    @has_access
    def templates(self, campaign_id):
        campaign = self._campaign(campaign_id)
        form = request.form
        values = {k: form.get(k, "") for k in ("email_subject", "email_body", "sms_body",
                                              "send_from_hour", "send_to_hour")}
        try:
            campaign_sending.set_templates(campaign.id, signed_in_user(), **values)
        except ValidationFailed as exc:
            db.session.rollback()
            return self.messages(campaign_id, errors=exc.fields, values=values, status=400)
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            flash(_("The campaign's messages were saved."), "success")
        return redirect(url_for("CampaignMessagesView.messages", campaign_id=campaign.id))

    def _verb(self, campaign_id, fn, done):
        campaign = self._campaign(campaign_id)
        try:
            n = fn(signed_in_user(), campaign.id, request.form.getlist("ids"))
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            flash(done(n), "success" if n else "warning")
        return redirect(url_for("CampaignMessagesView.messages", campaign_id=campaign.id))

    @expose("/<campaign_id>/messages/retry", methods=["POST"])
    @has_access
    def retry(self, campaign_id):
        return self._verb(campaign_id, campaign_sending.retry, lambda n: ngettext(
            "%(n)s message will be sent again.", "%(n)s messages will be sent again.", n, n=n))

    @expose("/<campaign_id>/messages/cancel", methods=["POST"])
    @has_access
    def cancel(self, campaign_id):
        return self._verb(campaign_id, campaign_sending.cancel, lambda n: ngettext(
            "Cancelled %(n)s message.", "Cancelled %(n)s messages.", n, n=n))


class UnsubscribeView(BaseView):
    """/u/<token>: no sign-in. GET asks, POST (with the page's CSRF token) records the
    opt-out. A token we did not sign is a 404 page."""

    route_base = "/u"
    default_view = "unsubscribe"

    @expose("/<path:token>", methods=["GET", "POST"])
    def unsubscribe(self, token):
        try:
            data = campaign_sending.read_token(token)
            done = None
            if request.method == "POST":
                done = campaign_sending.unsubscribe(token)
        except NotFound:
            return self._page(None, None, status=404)
        return self._page(data, done)

    def _page(self, data, done, status=200):
        shown = None
        if data is not None:
            shown = masking.shown("email" if data.channel == "email" else "mobile",
                                  data.address, False)
        response = make_response(render_template(
            "guishu/unsubscribe.html", data=data, shown=shown, done=done,
            channel=CHANNEL_LABELS.get(data.channel) if data else None), status)
        response.headers["Cache-Control"] = "no-store"
        return response


class OptOutView(BaseView):
    """退订名单: Marketing, back-office staff and admins list (masked by the one rule), add
    by hand and remove."""

    route_base = "/marketing/optouts"
    class_permission_name = RES_OPTOUT
    method_permission_name = {"index": "read", "add": "write", "remove": "write"}
    default_view = "index"

    @expose("/")
    @has_access
    def index(self, errors=None, values=None, status=200):
        stmt = select(MarketingOptOut, Ownership.owner_id, Ownership.pool_id).outerjoin(
            Ownership, Ownership.customer_id == MarketingOptOut.customer_id)
        channel = request.args.get("channel")
        if channel in campaign_sending.CHANNELS:
            stmt = stmt.where(MarketingOptOut.channel == channel)
        after = _after()
        if after:
            stmt = stmt.where(MarketingOptOut.id < after)
        rows = db.session.execute(stmt.order_by(MarketingOptOut.id.desc()).limit(PAGE + 1)).all()
        rule = masking.current_rule()
        items = [{"o": o, "address": _masked(rule, o.channel, o.address, owner_id, pool_id),
                  "channel": CHANNEL_LABELS.get(o.channel, o.channel),
                  "source": OPTOUT_SOURCES.get(o.source, o.source)}
                 for o, owner_id, pool_id in rows[:PAGE]]
        next_after = rows[PAGE - 1][0].id if len(rows) > PAGE else None
        return make_response(self.render_template(
            "guishu/optouts.html", items=items, next_after=next_after, channel=channel,
            errors=errors or {}, values=values or {}, channels=CHANNEL_LABELS,
            minutes=minutes), status)

    @expose("/add", methods=["POST"])
    @has_access
    def add(self):
        values = {"channel": request.form.get("channel", ""),
                  "address": request.form.get("address", "")}
        try:
            campaign_sending.add_optout(signed_in_user(), values["channel"], values["address"])
        except ValidationFailed as exc:
            db.session.rollback()
            return self.index(errors=exc.fields, values=values, status=400)
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            flash(_("The address will receive no more marketing."), "success")
        return redirect(url_for("OptOutView.index"))

    @expose("/<optout_id>/remove", methods=["POST"])
    @has_access
    def remove(self, optout_id):
        pk = parse_pk(optout_id)
        if pk is None:
            abort(404)
        try:
            campaign_sending.remove_optout(signed_in_user(), pk)
        except NotFound:
            abort(404)
        except GuishuError as exc:
            db.session.rollback()
            flash(exc.message, "danger")
        else:
            flash(_("The address was taken off the opt-out list."), "success")
        return redirect(url_for("OptOutView.index"))


class MarketingSettingsView(ValidatedModelView, SettingsRowView):
    """Whether marketing needs consent (个人信息保护法) and the attribution window."""

    datamodel = SQLAInterface(MarketingSettings)
    class_permission_name = RES_MARKETING_SETTINGS
    route_base = "/marketing/settings"
    audit_type = "marketing_settings"
    list_title = show_title = edit_title = _l("Marketing settings")
    list_columns = show_columns = ["require_consent", "attribution_days", "updated_at"]
    edit_columns = ["require_consent", "attribution_days"]
    label_columns = {"require_consent": _l("Send only with consent or a customer relationship"),
                     "attribution_days": _l("Attribution window (days)"),
                     "updated_at": _l("Updated at")}
    description_columns = {
        "require_consent": _l("On (Personal Information Protection Law): leads without a "
                              "recorded consent receive no campaign messages; customers always "
                              "may"),
        "attribution_days": _l("A won deal counts for the campaigns that touched it within "
                               "this many days before")}
    formatters_columns = {"updated_at": minutes}
    # FAB makes a NOT NULL boolean a required field: unticking would be refused.
    edit_form_extra_fields = {"require_consent": BooleanField(
        _l("Send only with consent or a customer relationship"))}

    def validate_item(self, item):
        campaign_sending.validate_settings(item)
