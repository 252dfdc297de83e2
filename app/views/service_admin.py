"""客户服务 configuration pages: the ticket category tree, service teams (with their members),
routing rules and the desk's settings. Every save goes through app.services.service_admin,
which checks who may, validates, audits and commits; a refusal shows the form again with
the message beside its field."""
from __future__ import annotations

from flask import abort, request
from flask_appbuilder.fields import QuerySelectField, QuerySelectMultipleField
from flask_appbuilder.fieldwidgets import Select2ManyWidget, Select2Widget
from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import lazy_gettext as _
from wtforms import BooleanField, IntegerField, SelectField, StringField
from wtforms.validators import Optional as OptionalValidator

from app.extensions import db
from app.models import Survey, User
from app.models.service_desk import (LOW_SCORE_ACTIONS, TEAM_STRATEGIES, TICKET_PRIORITIES,
                                     ServiceSettings, ServiceTeam, ServiceTeamMember,
                                     TicketCategory, TicketRoutingRule)
from app.security import (METHOD_PERMISSIONS, RES_ROUTING_RULE, RES_SERVICE_SETTINGS,
                          RES_SERVICE_TEAM, RES_TICKET_CATEGORY)
from app.services import service_admin
from app.views.org import ServiceModelView
from app.views.pickers import UserPickerField

# Categories and the settings row are never deleted (tickets keep their category; one
# settings row): delete maps to a permission nobody holds.
NO_DELETE = dict(METHOD_PERMISSIONS, delete="amend", add="write")


def service_users():
    """Active users with a service role: members, leads, managers, dedicated agents."""
    return db.session.query(User).filter(
        User.id.in_(service_admin.service_user_ids_select())).order_by(User.username)


def categories_query():
    return db.session.query(TicketCategory).order_by(TicketCategory.path)


def active_teams():
    return db.session.query(ServiceTeam).filter(ServiceTeam.active.is_(True)).order_by(
        ServiceTeam.name)


def surveys_query():
    return db.session.query(Survey).order_by(Survey.id.desc())


def _pk(row):
    return row.id


def pick(label, query_func, blank_text="—"):
    """A select of rows (Select2) that may be left empty."""
    return QuerySelectField(label, query_func=query_func, get_pk_func=_pk, allow_blank=True,
                            blank_text=blank_text, widget=Select2Widget())


def _blank(value):
    return None if value in ("", None, "None") else value


def category_label(category) -> str:
    """"故障 / 网络": a category with the names above it."""
    if category is None:
        return ""
    return dict(service_admin.category_choices(active_only=False)).get(category.id,
                                                                         category.name)


class TicketCategoryView(ServiceModelView):
    """The category tree (咨询, 故障, 投诉 …): admins add, rename, move, mark complaint and
    deactivate; no delete (tickets keep their category)."""

    datamodel = SQLAInterface(TicketCategory)
    class_permission_name = RES_TICKET_CATEGORY
    route_base = "/ticket-categories"
    method_permission_name = NO_DELETE
    base_permissions = ["can_read", "can_write"]
    base_order = ("path", "asc")
    list_title = show_title = _("Ticket categories")
    add_title, edit_title = _("Add ticket category"), _("Edit ticket category")
    list_columns = ["name", "parent", "is_complaint", "position", "active", "path"]
    show_columns = list_columns
    add_columns = edit_columns = ["name", "parent", "is_complaint", "position", "active"]
    label_columns = {"name": _("Name"), "parent": _("Parent category"),
                     "is_complaint": _("Complaint"), "position": _("Order"),
                     "active": _("Active"), "path": _("Path")}
    description_columns = {
        "is_complaint": _("Tickets in this category (or below it) are told to the customer's "
                          "owner"),
        "active": _("An inactive category (and everything below it) cannot be chosen for "
                    "new tickets"),
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "parent": pick(_("Parent category"), categories_query),
        "is_complaint": BooleanField(_("Complaint")),
        "active": BooleanField(_("Active"), default=True),
        "position": IntegerField(_("Order"), default=100, validators=[OptionalValidator()]),
    }

    def create_item(self, values):
        service_admin.create_category(self.actor(), values)

    def update_item(self, pk, values):
        service_admin.update_category(self.actor(), pk, values)

    def delete_item(self, pk):
        abort(404)


class ServiceTeamMemberView(ServiceModelView):
    """A team's members, listed on the team's page (edited on the team's form)."""

    datamodel = SQLAInterface(ServiceTeamMember)
    class_permission_name = RES_SERVICE_TEAM
    route_base = "/service-team-members"
    base_permissions = ["can_read"]
    list_title = show_title = _("Team members")
    list_columns = show_columns = ["user", "created_at"]
    label_columns = {"user": _("Member"), "team": _("Team"), "created_at": _("Added at")}


class ServiceTeamView(ServiceModelView):
    """Service teams: lead and manager (the escalation levels), how tickets spread among the
    agents, the members. Admins any team; a service manager the teams they manage."""

    datamodel = SQLAInterface(ServiceTeam)
    class_permission_name = RES_SERVICE_TEAM
    route_base = "/service-teams"
    base_order = ("name", "asc")
    list_title = show_title = _("Service teams")
    add_title, edit_title = _("Add service team"), _("Edit service team")
    list_columns = ["name", "lead", "manager", "strategy", "active"]
    show_columns = list_columns + ["work_periods", "created_at"]
    add_columns = edit_columns = ["name", "lead", "manager", "strategy", "active", "members"]
    label_columns = {"name": _("Name"), "lead": _("Team lead"), "manager": _("Manager"),
                     "strategy": _("Distribution"), "active": _("Active"),
                     "members": _("Team members"), "work_periods": _("Working hours"),
                     "created_at": _("Created at")}
    description_columns = {
        "lead": _("Told first when a ticket of the team breaches its SLA"),
        "manager": _("Told next; a service manager manages their own teams"),
        "members": _("Active service agents and managers; those on leave are passed over"),
    }
    formatters_columns = {"strategy": lambda v: TEAM_STRATEGIES.get(v, v),
                          "lead": lambda v: v or "—", "manager": lambda v: v or "—",
                          "work_periods": lambda v: v or _("The global working hours")}
    add_form_extra_fields = edit_form_extra_fields = {
        "lead": UserPickerField(_("Team lead"), query_func=service_users),
        "manager": UserPickerField(_("Manager"), query_func=service_users),
        "strategy": SelectField(_("Distribution"), choices=list(TEAM_STRATEGIES.items())),
        "active": BooleanField(_("Active"), default=True),
        "members": QuerySelectMultipleField(_("Team members"), query_func=service_users,
                                            get_pk_func=lambda u: u.id,
                                            widget=Select2ManyWidget()),
    }
    related_views = [ServiceTeamMemberView]
    show_template = "appbuilder/general/model/show_cascade.html"

    def create_item(self, values):
        service_admin.create_team(self.actor(), values)

    def update_item(self, pk, values):
        service_admin.update_team(self.actor(), pk, values)

    def delete_item(self, pk):
        service_admin.delete_team(self.actor(), pk)

    def _edit(self, pk):
        if request.method == "GET":
            item = self._scoped_get(pk)
            form = self.edit_form.refresh(obj=item)
            form.members.data = [db.session.get(User, i)
                                 for i in service_admin.team_member_ids(item.id)]
            return self.edit_widgets(form, item)
        return super()._edit(pk)


class RoutingRuleView(ServiceModelView):
    """分派规则: ordered; the first active rule whose conditions all match sends the ticket to
    its team (empty condition: any; a category matches its sub-categories too)."""

    datamodel = SQLAInterface(TicketRoutingRule)
    class_permission_name = RES_ROUTING_RULE
    route_base = "/routing-rules"
    base_order = ("position", "asc")
    list_title = show_title = _("Routing rules")
    add_title, edit_title = _("Add routing rule"), _("Edit routing rule")
    list_columns = ["position", "name", "active", "category", "priority", "province", "grade",
                    "team"]
    show_columns = list_columns + ["updated_at"]
    add_columns = edit_columns = list_columns
    label_columns = {"position": _("Order"), "name": _("Name"), "active": _("Active"),
                     "category": _("Category"), "priority": _("Priority"),
                     "province": _("Province"), "grade": _("Grade"), "team": _("Team"),
                     "updated_at": _("Updated at")}
    description_columns = {
        "position": _("Rules are tried from the lowest order; the first that matches wins; "
                      "no match: the default team of the service settings"),
        "province": _("The customer's province, as written on the customer"),
    }
    formatters_columns = {"category": lambda v: category_label(v) or _("Any"),
                          "priority": lambda v: TICKET_PRIORITIES.get(v, v) if v else _("Any"),
                          "province": lambda v: v or _("Any"),
                          "grade": lambda v: v or _("Any")}
    add_form_extra_fields = edit_form_extra_fields = {
        "position": IntegerField(_("Order"), default=100, validators=[OptionalValidator()]),
        "active": BooleanField(_("Active"), default=True),
        "category": pick(_("Category"), categories_query, _("Any")),
        "priority": SelectField(_("Priority"), choices=[("", _("Any"))] + list(
            TICKET_PRIORITIES.items()), coerce=_blank),
        "grade": SelectField(_("Grade"), choices=[("", _("Any")), ("A", "A"), ("B", "B"),
                                                  ("C", "C")], coerce=_blank),
        "province": StringField(_("Province")),
        "team": pick(_("Team"), active_teams),
    }

    def create_item(self, values):
        service_admin.create_rule(self.actor(), values)

    def update_item(self, pk, values):
        service_admin.update_rule(self.actor(), pk, values)

    def delete_item(self, pk):
        service_admin.delete_rule(self.actor(), pk)


class ServiceSettingsView(ServiceModelView):
    """客服设置 (one row): the satisfaction survey and what a low score does, the dedicated
    agents' team, the default team, the attachment limit. The working hours are on the work
    calendar's page."""

    datamodel = SQLAInterface(ServiceSettings)
    class_permission_name = RES_SERVICE_SETTINGS
    route_base = "/service-settings"
    method_permission_name = NO_DELETE
    base_permissions = ["can_read", "can_write"]
    list_title = show_title = edit_title = _("Service settings")
    _fields = ["satisfaction_survey", "low_score_threshold", "low_score_action",
               "dedicated_team", "default_team", "max_attachment_mb"]
    list_columns = show_columns = _fields + ["updated_at"]
    edit_columns = _fields
    label_columns = {"satisfaction_survey": _("Satisfaction survey"),
                     "low_score_threshold": _("Low score (at most)"),
                     "low_score_action": _("On a low score"),
                     "dedicated_team": _("Dedicated agents' team"),
                     "default_team": _("Default team"),
                     "max_attachment_mb": _("Largest attachment (MB)"),
                     "updated_at": _("Updated at")}
    description_columns = {
        "satisfaction_survey": _("Sent to the customer when a ticket is resolved; its rating "
                                 "question is the score (1-5)"),
        "low_score_threshold": _("1-4: a score at or below it is a low score"),
        "dedicated_team": _("Grade-A customers without a dedicated agent get one from this "
                            "team (daily, and when a customer becomes grade A); empty: by "
                            "hand only"),
        "default_team": _("Tickets no routing rule matches go to this team"),
    }
    formatters_columns = {"low_score_action": lambda v: LOW_SCORE_ACTIONS.get(v, v),
                          "satisfaction_survey": lambda v: v or "—",
                          "dedicated_team": lambda v: v or "—",
                          "default_team": lambda v: v or "—"}
    edit_form_extra_fields = {
        "satisfaction_survey": pick(_("Satisfaction survey"), surveys_query),
        "low_score_action": SelectField(_("On a low score"),
                                        choices=list(LOW_SCORE_ACTIONS.items())),
        "dedicated_team": pick(_("Dedicated agents' team"), active_teams),
        "default_team": pick(_("Default team"), active_teams),
    }

    def create_item(self, values):
        abort(404)

    def update_item(self, pk, values):
        service_admin.update_settings(self.actor(), values)

    def delete_item(self, pk):
        abort(404)

    def _add(self):
        abort(404)

