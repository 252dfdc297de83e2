"""FAB's user admin with the organisation columns and the departure action."""
from __future__ import annotations

from flask import flash, redirect
from flask_appbuilder import action
from flask_appbuilder.security.views import UserDBModelView
from flask_babel import lazy_gettext as _

from app.security import current_user
from app.services import org
from app.services.errors import GuishuError


class GuishuUserDBModelView(UserDBModelView):
    list_columns = ["username", "first_name", "last_name", "department", "superior", "roles",
                    "employment_status", "active"]
    show_fieldsets = [
        (_("User"), {"fields": ["username", "first_name", "last_name", "email", "phone",
                                "active", "roles", "department", "superior",
                                "employment_status", "departed_at", "login_count",
                                "last_login"]}),
    ]
    user_show_fieldsets = [
        (_("User info"), {"fields": ["username", "active", "roles", "department", "superior",
                                     "login_count"]}),
        (_("Personal Info"), {"fields": ["first_name", "last_name", "email", "phone"]}),
    ]
    add_columns = ["first_name", "last_name", "username", "active", "email", "phone", "roles",
                   "department", "superior", "password", "conf_password"]
    edit_columns = ["first_name", "last_name", "username", "active", "email", "phone", "roles",
                    "department", "superior"]
    search_columns = ["username", "first_name", "last_name", "email", "department", "roles",
                      "employment_status", "active"]
    label_columns = {"department": _("Department"), "superior": _("Reports to"),
                     "employment_status": _("Employment"), "departed_at": _("Departed at"),
                     "phone": _("Phone")}

    @action("mark_departed", _("Mark departed"),
            _("Mark the selected users as departed? Their customers must be handed over first."),
            "fa-user-times", single=False)
    def mark_departed(self, items):
        items = items if isinstance(items, list) else [items]
        actor = current_user()
        for user in items:
            try:
                org.mark_departed(user.id, actor.id if actor else None)
            except GuishuError as exc:
                flash(exc.message, "danger")
            else:
                flash(_("%(name)s is marked departed.", name=user.display_name), "success")
        return redirect(self.get_redirect())
