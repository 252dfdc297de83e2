"""Lead capture forms: the admins' page (/capture-forms: list, add, edit, rotate the token)
and the public page a visitor fills in without signing in (/forms/<token>). Every write goes
through app.services.lead_capture."""
from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, session
from flask_appbuilder import BaseView, expose
from flask_appbuilder.actions import action
from flask_babel import get_locale, gettext, lazy_gettext as _, refresh
from markupsafe import Markup, escape
from sqlalchemy.orm import joinedload
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.validators import Optional as OptionalValidator

from app.models import CaptureForm
from app.models.lead import LEAD_SOURCES
from app.paging import KeysetInterface
from app.security import METHOD_PERMISSIONS, RES_CAPTURE_FORM
from app.services import lead_capture
from app.services import leads as lead_service
from app.services.errors import GuishuError, NotFound, TooManyRequests, ValidationFailed
from app.views.base import readable_formatters
from app.views.org import ServiceModelView

FORM_COLUMNS = ["name", "channel", "pool_id", "policy_text", "policy_version", "is_active"]


def _public_link(path: str) -> Markup:
    return Markup('<a href="{0}" target="_blank" rel="noopener">{1}{0}</a>').format(
        escape(path), escape(request.host_url.rstrip("/")))


class CaptureFormView(ServiceModelView):
    datamodel = KeysetInterface(CaptureForm, load=[joinedload(CaptureForm.pool)])
    class_permission_name = RES_CAPTURE_FORM
    route_base = "/capture-forms"
    base_permissions = ["can_read", "can_write"]
    # Never deleted (the leads name their form's policy version): delete needs "amend", a
    # permission no role has, so no delete button shows; switch a form off instead.
    method_permission_name = dict(METHOD_PERMISSIONS, rotate="write", delete="amend")
    base_order = ("id", "desc")
    order_columns = ["name"]
    list_title = show_title = _("Capture forms")
    add_title = _("Add capture form")
    edit_title = _("Edit capture form")
    list_columns = ["name", "channel_label", "pool", "policy_version", "is_active",
                    "public_path"]
    show_columns = ["name", "channel_label", "pool", "public_path", "policy_version",
                    "policy_text", "is_active", "submission_summary", "created_by",
                    "created_at", "token_rotated_at"]
    add_columns = edit_columns = FORM_COLUMNS
    search_columns = ["name", "channel", "is_active"]
    label_columns = {
        "name": _("Name"), "channel": _("Source channel"), "channel_label": _("Source channel"),
        "pool": _("Lead pool"), "pool_id": _("Lead pool"),
        "policy_text": _("Privacy policy text"), "policy_version": _("Privacy policy version"),
        "is_active": _("Active"), "public_path": _("Public address"),
        "submission_summary": _("Submissions"), "created_by": _("Created by"),
        "created_at": _("Created at"), "token_rotated_at": _("Address rotated at")}
    formatters_columns = dict(readable_formatters("created_by",
                                                  times=("created_at", "token_rotated_at")),
                              public_path=_public_link)
    _fields = {
        "channel": SelectField(_("Source channel"),
                               choices=lambda: list(LEAD_SOURCES.items())),
        "pool_id": SelectField(_("Lead pool"), choices=[], validate_choice=False,
                               description=_("Where the form's leads land")),
        "policy_text": TextAreaField(_("Privacy policy text"),
                                     description=_("Shown beside the consent checkbox")),
        "policy_version": StringField(_("Privacy policy version"),
                                      description=_("Stored on every lead with its consent; "
                                                    "a new text needs a new version")),
        "is_active": BooleanField(_("Active"), default=True,
                                  validators=[OptionalValidator()]),
    }
    add_form_extra_fields = edit_form_extra_fields = _fields

    def _pool_choices(self, form) -> None:
        form.pool_id.choices = [(str(p.id), p.name)
                                for p in lead_service.lead_pools(self.actor())]

    def _add(self):
        form = self.add_form.refresh()
        self._pool_choices(form)
        if request.method == "POST" and form.validate():
            try:
                lead_capture.create_form(self.actor(), self.form_values(form, FORM_COLUMNS))
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(self.add_row_message, "success")
            return None
        return self._get_add_widget(form=form)

    def _edit(self, pk):
        item = self._scoped_get(pk)
        if request.method == "POST":
            form = self.edit_form.refresh(request.form)
            form._id = item.id
        else:
            form = self.edit_form.refresh(obj=item)
        self._pool_choices(form)
        if request.method == "GET":
            form.pool_id.data = str(item.pool_id)
        elif form.validate():
            try:
                lead_capture.update_form(self.actor(), item.id,
                                         self.form_values(form, FORM_COLUMNS))
            except GuishuError as exc:
                self.show_error(form, exc)
                return self.edit_widgets(form, item)
            flash(self.edit_row_message, "success")
            return None
        return self.edit_widgets(form, item)

    def _delete(self, pk):
        abort(404)  # the leads name their form's consent version: switch a form off instead

    @action("rotate", _("New address"), _("Issue a new public address? The current one stops "
                                          "working at once."), "fa-refresh", multiple=False)
    def rotate(self, item):
        try:
            lead_capture.rotate_token(self.actor(), item.id)
        except GuishuError as exc:
            flash(exc.message, "danger")
        else:
            flash(gettext("The form has a new public address."), "success")
        return redirect(self.get_redirect())


LANGUAGES = ("zh", "en")


class PublicCaptureView(BaseView):
    """/forms/<token>: no sign-in. The page is served with a CSRF token (the visitor's
    session cookie carries its pair), so a POST from another site is refused like any other."""

    route_base = "/forms"
    default_view = "form"

    @expose("/<token>", methods=["GET", "POST"])
    def form(self, token):
        lang = request.args.get("lang")
        if lang in LANGUAGES and session.get("locale") != lang:
            session["locale"] = lang
            refresh()
        try:
            form = lead_capture.form_by_token(token)
        except NotFound:
            abort(404)
        errors: dict[str, str] = {}
        values = {k: request.form.get(k, "") for k in lead_capture.PUBLIC_FIELDS}
        status = 200
        if request.method == "POST":
            ip = lead_capture.client_address(request.remote_addr,
                                             request.headers.get("X-Forwarded-For"))
            data = dict(request.form.items())
            try:
                # ?c=<campaign token>: the sign-up answers a campaign (a 'signup' touch).
                lead_capture.submit(token, data, ip, campaign_token=request.args.get("c"))
            except NotFound:
                abort(404)
            except TooManyRequests as exc:
                return self._page(form, values, {}, refusal=exc.message, status=429)
            except ValidationFailed as exc:
                errors, status = exc.fields, 400
            else:
                return self._page(form, values, {}, thanks=True)
        return self._page(form, values, errors, status=status)

    def _page(self, form, values, errors, *, thanks=False, refusal=None, status=200):
        response = make_response(render_template(
            "guishu/capture_public.html", form=form, values=values, errors=errors,
            thanks=thanks, refusal=refusal, honeypot=lead_capture.HONEYPOT,
            languages=LANGUAGES, lang=str(get_locale())), status)
        response.headers["Cache-Control"] = "no-store"
        return response
