"""休假 pages: the absences a user may read (their data scope), recorded and cancelled through
app.services.absences (oneself; managers for their team; admins anyone)."""
from __future__ import annotations

from flask import flash, redirect
from flask_appbuilder.actions import action
from flask_appbuilder.fieldwidgets import BS3TextFieldWidget, Select2Widget
from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _, ngettext
from sqlalchemy.orm import joinedload
from wtforms import SelectField, StringField

from app.models import Absence
from app.security import METHOD_PERMISSIONS, RES_ABSENCE, current_user
from app.services import absences
from app.services.errors import GuishuError
from app.services.times import local_today
from app.paging import KeysetInterface
from app.views.base import ScopedModelView, readable_formatters


class AbsenceScopeFilter(BaseFilter):
    """The absences of the users in the reader's data scope (app.services.absences)."""

    name = "data scope"
    arg_name = None

    def apply(self, query, value):
        user = current_user()
        if user is None:
            return query.filter(Absence.id.is_(None))
        ids = absences.readable_user_ids(user)
        return query if ids is None else query.filter(Absence.user_id.in_(ids))


def _user_choices():
    user = current_user()
    if user is None:
        return []
    return [(u.id, f"{u.display_name} ({u.username})") for u in absences.manageable_users(user)]


class AbsenceView(ScopedModelView):
    datamodel = KeysetInterface(Absence, load=[joinedload(Absence.user),
                                               joinedload(Absence.created_by)])
    order_columns = ["starts_on"]
    class_permission_name = RES_ABSENCE
    route_base = "/absences"
    base_filters = [["id", AbsenceScopeFilter, lambda: None]]
    base_permissions = ["can_read", "can_write"]
    # Rows change only through the service: edit and delete map to a permission nobody has.
    method_permission_name = dict(METHOD_PERMISSIONS, cancel="write", edit="amend",
                                  delete="amend")
    base_order = ("starts_on", "desc")
    list_title = show_title = _("Absences")
    add_title = _("Record leave")
    list_columns = ["user", "starts_on", "ends_on", "status", "reason", "created_by"]
    show_columns = list_columns + ["created_at", "cancelled_at", "cancelled_by"]
    add_columns = ["user", "starts_on", "ends_on", "reason"]
    search_columns = ["user", "starts_on", "ends_on"]
    label_columns = {"user": _("User"), "starts_on": _("From"), "ends_on": _("To"),
                     "status": _("Status"), "reason": _("Reason"), "created_by": _("By"),
                     "created_at": _("Recorded at"), "cancelled_at": _("Cancelled at"),
                     "cancelled_by": _("Cancelled by")}
    formatters_columns = readable_formatters("reason", "created_by", "cancelled_by",
                                             times=("created_at", "cancelled_at"))
    add_form_extra_fields = {
        "user": SelectField(_("User"), coerce=int, choices=_user_choices,
                            widget=Select2Widget()),
        "starts_on": StringField(_("From"), widget=BS3TextFieldWidget(),
                                 description=_("YYYY-MM-DD, the first day away")),
        "ends_on": StringField(_("To"), widget=BS3TextFieldWidget(),
                               description=_("YYYY-MM-DD, the last day away (at most 366 "
                                             "days in all)")),
        "reason": StringField(_("Reason"), widget=BS3TextFieldWidget(),
                              description=_("Optional")),
    }

    def _add(self):
        from flask import request

        form = self.add_form.refresh()
        if request.method == "GET":
            form.user.data = self.actor().id
            form.starts_on.data = form.starts_on.data or local_today().isoformat()
        if request.method == "POST" and form.validate():
            try:
                absences.create_absence(self.actor(), form.user.data, form.starts_on.data,
                                        form.ends_on.data, form.reason.data)
            except GuishuError as exc:
                self.show_error(form, exc)
                return self._get_add_widget(form=form)
            flash(str(self.add_row_message), "success")
            return None
        return self._get_add_widget(form=form)

    @action("cancel", _("Cancel leave"), _("Cancel the selected absences?"), "fa-ban",
            single=False)
    def cancel(self, items):
        items = items if isinstance(items, list) else [items]
        done, refused = 0, []
        for item in items:
            try:
                absences.cancel_absence(self.actor(), item.id)
                done += 1
            except GuishuError as exc:
                refused.append(exc.message)
        if done:
            flash(ngettext("Cancelled %(n)s absence.", "Cancelled %(n)s absences.", done,
                           n=done), "success")
        for message in dict.fromkeys(refused):
            flash(message, "danger")
        return redirect(self.get_redirect())
