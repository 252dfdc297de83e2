"""API keys for machines (admins only): list, create (the key shown once), rotate, revoke.
Every write goes through app.services.api_keys, which checks the admin role again."""
from __future__ import annotations

from flask import flash, make_response, redirect, request
from flask_appbuilder import expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
from flask_babel import gettext, lazy_gettext as _
from sqlalchemy.orm import joinedload
from wtforms import SelectField, StringField

from app.models import ApiKey
from app.models.api_key import PURPOSES
from app.security import METHOD_PERMISSIONS, RES_API_KEY
from app.services import api_keys
from app.services.errors import GuishuError
from app.paging import KeysetInterface
from app.views.base import ScopedModelView, readable_formatters


def _purpose_choices():
    return [(p, f"{api_keys.purpose_label(p)} ({p})") for p in PURPOSES]


class ApiKeyView(ScopedModelView):
    datamodel = KeysetInterface(ApiKey, load=[joinedload(ApiKey.created_by)])
    order_columns = ["name"]  # NOT NULL and unique (indexed)
    class_permission_name = RES_API_KEY
    route_base = "/api-keys"
    base_permissions = ["can_read", "can_write"]
    method_permission_name = dict(METHOD_PERMISSIONS, rotate="write", revoke="write",
                                  edit="amend", delete="amend")
    base_order = ("id", "desc")
    list_title = show_title = _("API keys")
    add_title = _("Create API key")
    list_columns = ["name", "purpose_label", "prefix", "created_at", "last_used_at",
                    "state_label", "revoked_at"]
    show_columns = list_columns + ["created_by", "rotated_at"]
    add_columns = ["name", "purpose"]
    search_columns = ["name", "purpose", "prefix"]
    label_columns = {"name": _("Name"), "purpose": _("Purpose"), "purpose_label": _("Purpose"),
                     "prefix": _("Key prefix"), "created_at": _("Created at"),
                     "last_used_at": _("Last used"), "state_label": _("Status"),
                     "revoked_at": _("Revoked at"), "created_by": _("Created by"),
                     "rotated_at": _("Rotated at")}
    formatters_columns = readable_formatters(
        "created_by", times=("created_at", "last_used_at", "revoked_at", "rotated_at"))
    add_form_extra_fields = {
        "name": StringField(_("Name"), widget=BS3TextFieldWidget(),
                            description=_("Who uses it, e.g. the SMS gateway (unique)")),
        "purpose": SelectField(_("Purpose"), choices=_purpose_choices,
                               description=_("The one kind of endpoint this key may call")),
    }

    def secret_page(self, key, raw, title):
        """The key in plain text, this once; never cached by the browser or a proxy."""
        signing = api_keys.signing_secret(key) if api_keys.shows_signing_secret(key) else None
        response = make_response(self.render_template(
            "guishu/api_key_secret.html", key=key, raw=raw, title=title, signing=signing))
        response.headers["Cache-Control"] = "no-store"
        return response

    @expose("/add", methods=["GET", "POST"])
    @has_access
    def add(self):
        form = self.add_form.refresh()
        if request.method == "POST" and form.validate():
            try:
                key, raw = api_keys.create_key(self.actor(), form.name.data, form.purpose.data)
            except GuishuError as exc:
                self.show_error(form, exc)
            else:
                return self.secret_page(key, raw, gettext("API key created"))
        widget = self._get_add_widget(form=form)
        return self.render_template(self.add_template, title=self.add_title, widgets=widget)

    @action("rotate", _("Rotate"), _("Issue a new secret? The current key stops working at "
                                     "once."), "fa-refresh", multiple=False)
    def rotate(self, item):
        try:
            key, raw = api_keys.rotate_key(self.actor(), item.id)
        except GuishuError as exc:
            flash(exc.message, "danger")
            return redirect(self.get_redirect())
        return self.secret_page(key, raw, gettext("API key rotated"))

    @action("revoke", _("Revoke"), _("Revoke the selected keys? They stop working at once, "
                                     "for good."), "fa-ban")
    def revoke(self, items):
        items = items if isinstance(items, list) else [items]
        done = 0
        for item in items:
            try:
                api_keys.revoke_key(self.actor(), item.id)
                done += 1
            except GuishuError as exc:
                flash(f"{item.name}: {exc.message}", "danger")
        if done:
            flash(gettext("Revoked %(n)s API keys.", n=done), "success")
        return redirect(self.get_redirect())
