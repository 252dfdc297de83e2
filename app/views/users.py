"""FAB's user admin with the organisation columns and the departure action."""
from __future__ import annotations

from flask import flash, redirect, url_for
from flask_appbuilder import action
from flask_appbuilder.security import views as fab_views
from flask_appbuilder.security.views import UserDBModelView
from flask_babel import gettext, lazy_gettext as _

from app.models.org import employment_label
from app.models.policy import POLICY_FIELDS
from app.security import current_user, role_label
from app.services import cti_routing, org, policies, segments
from app.services.errors import GuishuError, ValidationFailed
from app.services.times import local_text
from app.views.base import ReadableCells
from app.views.org import POLICY_LABELS


def agent_no_validator(form, field) -> None:
    """The agent number's format and length, as the service checks it (uniqueness: FAB's
    Unique validator on the form, the service again on save)."""
    from wtforms.validators import ValidationError

    try:
        field.data = cti_routing.clean_agent_no(field.data, getattr(form, "_id", None))
    except ValidationFailed as exc:
        raise ValidationError(exc.fields.get("agent_no", exc.message)) from None


def agent_status_label(status) -> str:
    from app.models.cti import AGENT_STATUSES

    return str(AGENT_STATUSES.get(status, status or ""))


def role_labels(roles) -> str:
    """A user's roles by their translated names."""
    return ", ".join(role_label(r.name) for r in roles or [])


def policy_source(source: str) -> str:
    """'department:华东销售部' -> 'Department: 华东销售部', in the user's language."""
    if source.startswith("department:"):
        return gettext("Department: %(name)s", name=source.split(":", 1)[1])
    return {"user": gettext("This user's own setting"), "global": gettext("Global default"),
            "built-in": gettext("Built-in default")}.get(source, source)


def effective_policy_rows(user_id) -> list[dict]:
    """The user page's table: every policy field, its effective value and where it comes from."""
    if not user_id:
        return []
    effective = policies.effective_policy(int(user_id))
    overrides = segment_overrides(user_id)
    return [{"field": f, "label": POLICY_LABELS[f], "value": effective[f].value,
             "source": policy_source(effective[f].source), "segments": overrides.get(f, [])}
            for f in POLICY_FIELDS]


def segment_overrides(user_id) -> dict[str, list[dict]]:
    """Per reclaim field, the segment policies that come before the user's plain value: what
    their matching customers or leads get instead, and which policy says so."""
    if not user_id:
        return {}
    return {f: [{"segment": a.segment, "value": a.value, "source": a.label,
                 "policy_id": a.policy_id} for a in found]
            for f, found in segments.segment_overrides(int(user_id)).items()}


def server_clock_minutes(value) -> str:
    """FAB stamps last_login with the server's own clock (datetime.now()), not UTC: read it as
    such, show it in business time."""
    return local_text(value.astimezone()) if value is not None else ""


class GuishuUserDBModelView(ReadableCells, UserDBModelView):
    # FAB's show page plus the user's effective ownership policy (also on "my profile").
    show_template = "guishu/user_show.html"
    # Family name (FAB's last_name) first, as Chinese names are written.
    list_columns = ["username", "last_name", "first_name", "department", "superior", "roles",
                    "employment_status", "active"]
    show_fieldsets = [
        (_("User"), {"fields": ["username", "last_name", "first_name", "email", "phone",
                                "active", "roles", "department", "superior",
                                "employment_status", "departed_at", "login_count",
                                "last_login"]}),
        (_("Call centre"), {"fields": ["agent_no", "agent_status", "agent_status_at"]}),
    ]
    user_show_fieldsets = [
        (_("User info"), {"fields": ["username", "active", "roles", "department", "superior",
                                     "login_count"]}),
        (_("Personal Info"), {"fields": ["last_name", "first_name", "email", "phone"]}),
    ]
    add_columns = ["last_name", "first_name", "username", "active", "email", "phone", "roles",
                   "department", "superior", "agent_no", "password", "conf_password"]
    edit_columns = ["last_name", "first_name", "username", "active", "email", "phone", "roles",
                    "department", "superior", "agent_no"]
    # The seat on the telephony platform (工号): letters, digits, _ and -, unique (FAB's own
    # Unique validator and app.services.cti_routing.clean_agent_no say so by the field).
    validators_columns = {"agent_no": [agent_no_validator]}
    search_columns = ["username", "last_name", "first_name", "email", "department", "roles",
                      "employment_status", "active"]
    # FAB's own labels (translated by its catalogue) plus ours: replacing them would leave
    # FAB's columns with untranslated generated names ("First Name").
    label_columns = {**UserDBModelView.label_columns, "department": _("Department"), "superior": _("Reports to"),
                     "employment_status": _("Employment"), "departed_at": _("Departed at"),
                     "phone": _("Phone"), "agent_no": _("Agent number"),
                     "agent_status": _("Agent status"),
                     "agent_status_at": _("Agent status since")}
    formatters_columns = {"roles": role_labels, "departed_at": local_text,
                          "last_login": server_clock_minutes,
                          "employment_status": employment_label,
                          "agent_status": agent_status_label, "agent_status_at": local_text}

    def pre_add(self, item):
        item.agent_no = cti_routing.clean_agent_no(item.agent_no)
        super().pre_add(item)

    def pre_update(self, item):
        item.agent_no = cti_routing.clean_agent_no(item.agent_no, item.id)
        # Saving with "Active" unticked deactivates: the same rule as marking departed (a user
        # already inactive owns nothing and passes; a refusal rolls the edit back and FAB
        # flashes the message).
        if not item.active:
            org.ensure_can_deactivate(item)
        super().pre_update(item)

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

    @action("handover", _("Departure handover"), None, "fa-share", multiple=False)
    def handover(self, item):
        """One user at a time: the handover form moves every customer, then marks departed."""
        item = item[0] if isinstance(item, list) else item
        return redirect(url_for("OwnershipView.departure", user_id=item.id))


# FAB's role and group admin under their own class names (so their permissions and
# endpoints stay FAB's): role names shown translated, every column labelled in the catalogue.
class RoleModelView(ReadableCells, fab_views.RoleModelView):
    label_columns = {**fab_views.RoleModelView.label_columns, "user": _("User"),
                     "users": _("Users")}
    formatters_columns = {"name": role_label}


class PermissionViewModelView(ReadableCells, fab_views.PermissionViewModelView):
    label_columns = {**fab_views.PermissionViewModelView.label_columns, "role": _("Role")}


class UserGroupModelView(ReadableCells, fab_views.UserGroupModelView):
    label_columns = {"name": _("Name"), "label": _("Label"), "description": _("Description"),
                     "users": _("Users"), "roles": _("Roles")}
    formatters_columns = {"roles": role_labels}


class UserStatsChartView(fab_views.UserStatsChartView):
    # Its search form names the user's columns: FAB's user labels (translated).
    label_columns = {**fab_views.UserStatsChartView.label_columns,
                     **fab_views.UserModelView.label_columns}
    definitions = [
        {"label": _("Login count"), "group": "username", "series": ["login_count"]},
        {"label": _("Failed login count"), "group": "username", "series": ["fail_login_count"]},
    ]
