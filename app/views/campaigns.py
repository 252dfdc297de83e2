"""市场活动 pages: the keyset list (filters by status and type), add / edit forms, and the
campaign page /campaigns/<id> with its details, segment, members (paged, in the reader's data
scope, contacts masked) and the launch / finish / add-members buttons. Every write goes
through app.services.campaigns."""
from __future__ import annotations

import re

from flask import abort, flash, g, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from flask_babel import lazy_gettext as _
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import Optional as OptionalValidator

from app.extensions import db
from app.models import User
from app.models.marketing import CAMPAIGN_KINDS, MEMBER_SOURCES, Campaign, Segment
from app.models.org import EMPLOYMENT_ACTIVE
from app.paging import KeysetInterface
from app.security import (RES_CAMPAIGN, RES_CAMPAIGN_EFFECT, RES_CAMPAIGN_MESSAGE,
                          RES_CAMPAIGN_RESPONSE)
from app.services import campaigns as service
from app.services.errors import GuishuError
from app.services.ids import parse_pk
from app.views.base import ScopedModelView, readable_formatters
from app.views.org import ServiceModelView
from app.views.ownership import flash_error
from app.views.pickers import UserPickerField

MEMBERS_PAGE = 50
FORM_FIELDS = ("name", "kind", "starts_on", "ends_on", "budget", "actual_cost", "description",
               "owner", "segment_id")
LABELS = {"name": _("Campaign"), "kind": _("Type"), "kind_label": _("Type"),
          "status": _("Status"), "status_label": _("Status"), "starts_on": _("Start date"),
          "ends_on": _("End date"), "budget": _("Budget"), "actual_cost": _("Actual cost"),
          "description": _("Description"), "owner": _("Owner"), "segment": _("Customer segment"),
          "segment_id": _("Customer segment"), "launched_at": _("Launched at"),
          "created_at": _("Created at"), "updated_at": _("Updated at")}


# The words for the statuses (计划中 / 进行中 / 已结束): the model's "Running" and
# "Finished" read 运行中 / 已完成 elsewhere (background jobs).
STATUS_LABELS = {"planned": _("Planned"), "running": _("In progress"), "finished": _("Ended")}


def status_text(status) -> str:
    return str(STATUS_LABELS.get(status, status))


def _money(value) -> str:
    return f"{value:,.2f}" if value is not None else ""


def active_users():
    return db.session.query(User).filter(User.active.is_(True),
                                         User.employment_status == EMPLOYMENT_ACTIVE) \
        .order_by(User.username)


def segment_choices():
    rows = db.session.execute(select(Segment.id, Segment.name).order_by(Segment.name)).all()
    return [("", "—")] + [(str(pk), name) for pk, name in rows]


def split_ids(text: str) -> list[str]:
    """Ids typed into a box, separated by commas, spaces or new lines (the service checks
    each one)."""
    return [part for part in re.split(r"[\s,，;；]+", text or "") if part]


class CampaignView(ServiceModelView):
    datamodel = KeysetInterface(Campaign, load=[joinedload(Campaign.owner),
                                                joinedload(Campaign.segment)])
    class_permission_name = RES_CAMPAIGN
    route_base = "/campaigns"
    base_order = ("id", "desc")
    order_columns = []
    base_permissions = ["can_read", "can_write", "can_delete"]
    method_permission_name = dict(ScopedModelView.method_permission_name, page="read",
                                  launch="write", finish="write", add_members="write",
                                  remove_member="write")
    list_title = _("Campaigns")
    show_title = _("Campaign")
    add_title = _("Add campaign")
    edit_title = _("Edit campaign")
    list_columns = ["name", "kind_label", "status", "starts_on", "ends_on", "budget",
                    "actual_cost", "owner", "segment"]
    search_columns = ["name", "status", "kind", "starts_on", "owner"]
    add_columns = edit_columns = list(FORM_FIELDS)
    label_columns = LABELS
    formatters_columns = dict(readable_formatters("starts_on", "ends_on", "owner", "segment"),
                              budget=_money, actual_cost=_money, status=status_text)
    _fields = {
        "name": StringField(_("Campaign"), widget=BS3TextFieldWidget()),
        "kind": SelectField(_("Type"), choices=[(k, v) for k, v in CAMPAIGN_KINDS.items()]),
        "starts_on": StringField(_("Start date"), widget=BS3TextFieldWidget(),
                                 validators=[OptionalValidator()],
                                 description=_("YYYY-MM-DD")),
        "ends_on": StringField(_("End date"), widget=BS3TextFieldWidget(),
                               validators=[OptionalValidator()], description=_("YYYY-MM-DD")),
        "budget": StringField(_("Budget"), widget=BS3TextFieldWidget(),
                              validators=[OptionalValidator()],
                              description=_("e.g. 120000.00")),
        "actual_cost": StringField(_("Actual cost"), widget=BS3TextFieldWidget(),
                                   validators=[OptionalValidator()],
                                   description=_("e.g. 120000.00")),
        "description": TextAreaField(_("Description"), validators=[OptionalValidator()]),
        "owner": UserPickerField(_("Owner"), query_func=active_users,
                                 validators=[OptionalValidator()]),
        "segment_id": SelectField(_("Customer segment"), choices=[], validate_choice=False,
                                  validators=[OptionalValidator()],
                                  description=_("Frozen into the members at launch")),
    }
    add_form_extra_fields = edit_form_extra_fields = _fields

    def form_values(self, form, columns) -> dict:
        out = {c: form[c].data for c in columns if c in form and c != "owner"}
        owner = form["owner"].data if "owner" in form else None
        out["owner_id"] = owner.id if owner is not None else None
        for key in ("starts_on", "ends_on", "budget", "actual_cost", "segment_id",
                    "description"):
            if out.get(key) == "":
                out[key] = None
        return out

    def _add(self):
        form = self.add_form.refresh()
        form.segment_id.choices = segment_choices()
        if request.method == "POST" and form.validate():
            try:
                campaign = service.create(self.actor(), self.form_values(form, FORM_FIELDS))
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(self.add_row_message, "success")
            g.campaign_added = campaign.id  # post_add_redirect opens its page
            return None
        return self._get_add_widget(form=form)

    def post_add_redirect(self):
        added = g.get("campaign_added")
        if added is not None:
            return redirect(url_for("CampaignView.page", pk=added))
        return super().post_add_redirect()

    def _edit(self, pk):
        item = self._scoped_get(pk)
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            form.segment_id.choices = segment_choices()
            if form.validate():
                try:
                    service.update(self.actor(), item.id, self.form_values(form, FORM_FIELDS))
                except GuishuError as exc:
                    self.show_error(form, exc)
                    return self.edit_widgets(form, item)
                flash(self.edit_row_message, "success")
                return None
        else:
            form = self.edit_form.refresh(obj=item)
            form.segment_id.choices = segment_choices()
            form.segment_id.data = str(item.segment_id or "")
            for key in ("budget", "actual_cost"):
                form[key].data = str(getattr(item, key)) if getattr(item, key) is not None \
                    else ""
            for key in ("starts_on", "ends_on"):
                value = getattr(item, key)
                form[key].data = value.isoformat() if value else ""
        return self.edit_widgets(form, item)

    def delete_item(self, pk: int) -> None:
        service.delete(self.actor(), pk)

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        number = parse_pk(pk)
        if number is None:
            abort(404)
        return redirect(url_for("CampaignView.page", pk=number))

    @expose("/<int:pk>", methods=["GET"])
    @has_access
    def page(self, pk: int):
        """The campaign page; ?after=<member id> pages the members."""
        actor = self.actor()
        try:
            campaign = service.get_campaign(actor, pk)
        except GuishuError:
            abort(404)
        after = None
        if "after" in request.args:
            after = parse_pk(request.args["after"])
            if after is None:
                abort(400)
        members, next_after = service.members_page(actor, campaign.id, after=after,
                                                   page_size=MEMBERS_PAGE)
        may_manage = service.may_manage(actor) and \
            self.appbuilder.sm.has_access("can_write", RES_CAMPAIGN)
        # The campaign's other pages, for those their permissions let in.
        has = self.appbuilder.sm.has_access
        sections = [(label, url) for label, url, allowed in (
            (_("Messages and templates"), url_for("CampaignMessagesView.messages",
                                                  campaign_id=campaign.id),
             has("can_read", RES_CAMPAIGN_MESSAGE)),
            (_("Responses and sign-up links"), url_for("CampaignResponsesView.show",
                                                       campaign_id=campaign.id),
             has("can_read", RES_CAMPAIGN_RESPONSE)),
            (_("Campaign effect"), url_for("CampaignEffectView.index"),
             has("can_read", RES_CAMPAIGN_EFFECT)),
        ) if allowed]
        return self.render_template(
            "guishu/campaign_page.html", campaign=campaign, members=members,
            next_after=next_after, counts=service.member_counts(campaign.id),
            may_manage=may_manage, money=_money, sources=MEMBER_SOURCES,
            statuses=STATUS_LABELS, title=campaign.name, sections=sections)

    def _act(self, pk: int, fn, done):
        try:
            result = fn()
        except GuishuError as exc:
            if exc.status == 404 and exc.code == "not_found":
                abort(404)
            flash_error(exc)
        else:
            flash(done(result), "success")
        return redirect(url_for("CampaignView.page", pk=pk))

    @expose("/<int:pk>/launch", methods=["POST"])
    @has_access
    def launch(self, pk: int):
        return self._act(pk, lambda: service.launch(pk, self.actor()), lambda r: _(
            "Launched: %(total)s members (%(frozen)s from the segment), %(queued)s messages "
            "queued.", total=r.total, frozen=r.from_segment, queued=r.queued))

    @expose("/<int:pk>/finish", methods=["POST"])
    @has_access
    def finish(self, pk: int):
        return self._act(pk, lambda: service.finish(pk, self.actor()),
                         lambda r: _("The campaign has finished."))

    @expose("/<int:pk>/members", methods=["POST"])
    @has_access
    def add_members(self, pk: int):
        return self._act(pk, lambda: service.add_members(
            pk, self.actor(), customer_ids=split_ids(request.form.get("customer_ids", "")),
            lead_ids=split_ids(request.form.get("lead_ids", ""))), lambda r: _(
            "%(added)s members added, %(skipped)s already in the campaign.",
            added=r.added, skipped=r.skipped))

    @expose("/<int:pk>/members/<int:member_id>/remove", methods=["POST"])
    @has_access
    def remove_member(self, pk: int, member_id: int):
        return self._act(pk, lambda: service.remove_member(pk, self.actor(), member_id),
                         lambda r: _("The member was removed."))


__all__ = ["CampaignView"]
