"""Every page of the admin panel, registered in one place."""
from __future__ import annotations

from flask import current_app
from flask_babel import lazy_gettext as _


def register_views(appbuilder) -> None:
    from app.services.times import local_date, local_text
    from app.views.absences import AbsenceView
    from app.views.api_keys import ApiKeyView
    from app.views.activity import DealView, FollowUpView
    from app.views.campaigns import CampaignView
    from app.views.campaign_sending import (CampaignMessagesView, MarketingSettingsView,
                                            OptOutView, UnsubscribeView)
    from app.views.capture import CaptureFormView, PublicCaptureView
    from app.views.campaign_responses import (CampaignEffectView, CampaignResponsesView,
                                              PublicClickView)
    from app.views.care import CareMessageView, CareSettingsView, CareTemplateView
    from app.views.customers import ContactView, CustomerEventView, CustomerView
    from app.views.dedupe_review import DedupeReviewView
    from app.views.org import (AssignmentRuleView, AuditLogView, DedupeRuleView, DepartmentView,
                                GradingSettingsView, PolicyView, PoolMemberView, PoolView)
    from app.views.imports import ImportView, too_large
    from app.views.jobs import JobsView
    from app.views.leads import LeadPoolView, LeadView
    from app.views.marketing import SegmentView, TagView
    from app.views.opportunities import OpportunityStageView, OpportunityView
    from app.views.notifications import NotificationView, unread_notifications
    from app.views.ownership import OwnershipView
    from app.views.pickers import user_picker
    from app.views.pool import PoolCustomerView, administered_pool_ids
    from app.views.surveys import PublicSurveyView, SurveyView
    from app.views.targets import SalesTargetView
    from app.views.tasks import TaskView
    from app.views.transfers import TransferView
    from app.views.users import effective_policy_rows, policy_source, segment_overrides
    from app.views.base import keyset_link
    from app.views.menu import navbar_menu
    from app.views.workbench import WorkbenchView
    from app.views.due_soon import DueSoonView

    current_app.jinja_env.globals["effective_policy_rows"] = effective_policy_rows
    current_app.jinja_env.globals["segment_overrides"] = segment_overrides
    current_app.jinja_env.filters["policy_source"] = policy_source
    # Every time a template prints is business time: {{ x.created_at|local_time }}.
    current_app.jinja_env.filters["local_time"] = local_text
    current_app.jinja_env.filters["local_date"] = local_date
    current_app.jinja_env.globals["administered_pool_ids"] = administered_pool_ids
    current_app.jinja_env.globals["unread_notifications"] = unread_notifications
    current_app.jinja_env.globals["user_picker"] = user_picker
    current_app.jinja_env.globals["keyset_link"] = keyset_link
    current_app.jinja_env.globals["navbar_menu"] = navbar_menu
    current_app.register_error_handler(413, too_large)

    appbuilder.add_view(WorkbenchView, "MyWorkbench", label=_("My workbench"), href="/workbench/",
                        icon="fa-briefcase", category="Workbench",
                        category_label=_("Workbench"), category_icon="fa-briefcase")
    # Shown to roles with menu access to "Team" (managers, admins); the page checks again.
    appbuilder.add_link("Team", href="/workbench/team", label=_("My team"), icon="fa-users",
                        category="Workbench")
    appbuilder.add_view(DueSoonView, "DueSoon", label=_("Due for reclaim soon"),
                        href="/due-soon/", icon="fa-hourglass-half", category="Workbench")
    appbuilder.add_view(TaskView, "Tasks", label=_("My tasks"), icon="fa-check-square-o",
                        category="Workbench")
    appbuilder.add_view(SalesTargetView, "SalesTargets", label=_("Sales targets"),
                        icon="fa-bullseye", category="Workbench")
    appbuilder.add_link("TargetAttainment", href="/targets/attainment", label=_("Attainment"),
                        icon="fa-line-chart", category="Workbench")
    appbuilder.add_view(AbsenceView, "Absences", label=_("Absences"), icon="fa-plane",
                        category="Workbench")
    appbuilder.add_view_no_menu(OwnershipView)
    appbuilder.add_view_no_menu(NotificationView)
    appbuilder.add_view_no_menu(PoolMemberView)
    appbuilder.add_view(CustomerView, "CustomerList", label=_("Customers"), icon="fa-address-card",
                        category="Customers", category_label=_("Customers"),
                        category_icon="fa-users")
    appbuilder.add_link("CustomerExport", href="/customers/export.csv", label=_("Export CSV"),
                        icon="fa-download", category="Customers")
    appbuilder.add_link("CustomerExportXlsx", href="/customers/export.xlsx",
                        label=_("Export Excel"), icon="fa-file-excel-o", category="Customers")
    appbuilder.add_view(ImportView, "CustomerImport", label=_("Import customers"),
                        href="/imports/", icon="fa-upload", category="Customers")
    appbuilder.add_view(ContactView, "Contacts", label=_("Contacts"), icon="fa-user",
                        category="Customers")
    appbuilder.add_view(FollowUpView, "FollowUps", label=_("Follow-ups"), icon="fa-phone",
                        category="Customers")
    appbuilder.add_view(DealView, "Deals", label=_("Won deals"), icon="fa-trophy",
                        category="Customers")
    appbuilder.add_view(CustomerEventView, "OwnershipHistory", label=_("Ownership history"),
                        icon="fa-history", category="Customers")
    appbuilder.add_view(PoolCustomerView, "PoolCustomers", label=_("Public pool"),
                        icon="fa-life-ring", category="Customers")
    appbuilder.add_view(LeadView, "LeadList", label=_("Leads"), icon="fa-lightbulb-o",
                        category="Leads", category_label=_("Leads"),
                        category_icon="fa-lightbulb-o")
    appbuilder.add_view(LeadPoolView, "LeadPool", label=_("Lead pool"), icon="fa-life-ring",
                        category="Leads")
    appbuilder.add_view(OpportunityView, "OpportunityList", label=_("Opportunities"),
                        icon="fa-line-chart", category="Opportunities",
                        category_label=_("Opportunities"), category_icon="fa-line-chart")
    appbuilder.add_link("OpportunityKanban", href="/opportunities/kanban",
                        label=_("Pipeline kanban"), icon="fa-columns", category="Opportunities")
    appbuilder.add_view(OpportunityStageView, "OpportunityStages", label=_("Pipeline stages"),
                        icon="fa-list-ol", category="Rules")
    appbuilder.add_view(CampaignView, "Campaigns", label=_("Campaigns"), icon="fa-bullhorn",
                        category="Marketing", category_label=_("Marketing management"),
                        category_icon="fa-bullhorn")
    appbuilder.add_view(SegmentView, "Segments", label=_("Segments"), href="/segments/list/",
                        icon="fa-filter", category="Marketing",
                        category_label=_("Marketing management"), category_icon="fa-bullhorn")
    appbuilder.add_view(TagView, "Tags", label=_("Tags"), href="/tags/list/", icon="fa-tags",
                        category="Marketing")
    appbuilder.add_view(CaptureFormView, "CaptureForms", label=_("Capture forms"),
                        icon="fa-wpforms", category="Leads")
    appbuilder.add_view_no_menu(PublicCaptureView)
    # Marketing (市场): campaign responses and the effect table (活动效果).
    appbuilder.add_view(CampaignEffectView, "CampaignEffect", label=_("Campaign effect"),
                        href="/campaign-effect/", icon="fa-bar-chart", category="Marketing",
                        category_label=_("Marketing management"), category_icon="fa-bullhorn")
    appbuilder.add_view_no_menu(CampaignResponsesView)
    appbuilder.add_link("CampaignMine", href="/campaign-responses/mine",
                        label=_("My customers in campaigns"), icon="fa-bullhorn",
                        category="Customers")
    appbuilder.add_view_no_menu(PublicClickView)
    appbuilder.add_view(SurveyView, "Surveys", label=_("Surveys"), icon="fa-question-circle",
                        category="Marketing")
    appbuilder.add_view_no_menu(PublicSurveyView)
    appbuilder.add_view(TransferView, "Transfers", label=_("Transfer requests"),
                        href="/transfers/", icon="fa-exchange", category="Customers")
    appbuilder.add_view(CareMessageView, "CareOutbox", label=_("Care outbox"),
                        icon="fa-envelope", category="Care", category_label=_("Customer care"),
                        category_icon="fa-gift")
    appbuilder.add_view(CareTemplateView, "CareTemplates", label=_("Care templates"),
                        icon="fa-file-text-o", category="Care")
    appbuilder.add_view(CareSettingsView, "CareSettings", label=_("Care settings"),
                        icon="fa-calendar", category="Care")
    appbuilder.add_view(DepartmentView, "Departments", label=_("Departments"), icon="fa-sitemap",
                        category="Organisation", category_label=_("Organisation"),
                        category_icon="fa-building")
    appbuilder.add_view(PoolView, "Pools", label=_("Public pools"), icon="fa-life-ring",
                        category="Rules", category_label=_("Rules"), category_icon="fa-gavel")
    appbuilder.add_view(PolicyView, "Policies", label=_("Ownership policies"), icon="fa-sliders",
                        category="Rules")
    appbuilder.add_view(AssignmentRuleView, "AssignmentRules", label=_("Assignment rules"),
                        icon="fa-random", category="Rules")
    appbuilder.add_view(GradingSettingsView, "Grading", label=_("Classification and grading"),
                        icon="fa-star-half-o", category="Rules")
    appbuilder.add_view(DedupeRuleView, "DedupeRules", label=_("Dedupe rules"),
                        icon="fa-clone", category="Rules")
    appbuilder.add_view(JobsView, "Jobs", label=_("Background jobs"), href="/jobs/",
                        icon="fa-tasks", category="Rules")
    appbuilder.add_view(ApiKeyView, "ApiKeys", label=_("API keys"), icon="fa-key",
                        category="Rules")
    appbuilder.add_view(AuditLogView, "AuditLog", label=_("Audit log"), icon="fa-list",
                        category="Rules")
    appbuilder.add_view(DedupeReviewView, "DedupeReview", label=_("Duplicate review"),
                        href="/dedupe-review/", icon="fa-clone", category="Customers")
    appbuilder.add_view_no_menu(CampaignMessagesView)
    appbuilder.add_view_no_menu(UnsubscribeView)
    appbuilder.add_view(OptOutView, "OptOuts", label=_("Opt-out list"), href="/marketing/optouts/",
                        icon="fa-ban", category="Marketing", category_label=_("Marketing management"),
                        category_icon="fa-bullhorn")
    appbuilder.add_view(MarketingSettingsView, "MarketingSettings", label=_("Marketing settings"),
                        icon="fa-bullhorn", category="Rules")
    register_service_desk_views(appbuilder)
    # issue 17 H4: 服务分析
    from app.views.service_analysis import ServiceAnalysisView

    appbuilder.add_view(ServiceAnalysisView, "ServiceAnalysis", label=_("Service analysis"),
                        href="/service-analysis/", icon="fa-bar-chart", category="Service")
    register_sla_views(appbuilder)  # issue 17 H1
    register_call_views(appbuilder)  # issue 18: the call log, call statistics
    register_analysis_views(appbuilder)  # issue 20 §3: the ownership-effect evaluation
    from app.views.cti_pop import CtiPopView  # issue 18: screen pops

    appbuilder.add_view_no_menu(CtiPopView)
    from app.views.value_review import ValueReviewView  # issue 20 §4

    appbuilder.add_view(ValueReviewView, "ValueReview", label=_("Value re-evaluation"),
                        href="/value-review/", icon="fa-balance-scale", category="Customers")
    refuse_fab_file_downloads(appbuilder)


def register_service_desk_views(appbuilder) -> None:
    """客户服务 (issue 17, H3): tickets, the category tree, teams, routing rules, settings."""
    from app.views.service_admin import (RoutingRuleView, ServiceSettingsView,
                                         ServiceTeamMemberView, ServiceTeamView,
                                         TicketCategoryView)
    from app.views.tickets import DedicatedAgentView, TicketView

    appbuilder.add_view(TicketView, "Tickets", label=_("Tickets"), icon="fa-ticket",
                        category="Service", category_label=_("Service desk"),
                        category_icon="fa-headphones")
    appbuilder.add_view(TicketCategoryView, "TicketCategories", label=_("Ticket categories"),
                        icon="fa-sitemap", category="Service")
    appbuilder.add_view(ServiceTeamView, "ServiceTeams", label=_("Service teams"),
                        icon="fa-users", category="Service")
    appbuilder.add_view(RoutingRuleView, "RoutingRules", label=_("Routing rules"),
                        icon="fa-random", category="Service")
    appbuilder.add_view(ServiceSettingsView, "ServiceSettings", label=_("Service settings"),
                        icon="fa-cog", category="Service")
    appbuilder.add_view_no_menu(ServiceTeamMemberView)
    appbuilder.add_view_no_menu(DedicatedAgentView)


def register_sla_views(appbuilder) -> None:
    """客户服务 (issue 17 H1): SLA policies, the work calendar, the working hours."""
    from app.views.service_calendar import SlaPolicyView, WorkCalendarView, WorkingHoursView

    appbuilder.add_view(SlaPolicyView, "SlaPolicies", label=_("SLA policies"),
                        icon="fa-clock-o", category="Service",
                        category_label=_("Service desk"), category_icon="fa-headphones")
    appbuilder.add_view(WorkCalendarView, "WorkCalendar", label=_("Work calendar"),
                        href="/work-calendar/", icon="fa-calendar", category="Service",
                        category_label=_("Service desk"), category_icon="fa-headphones")
    appbuilder.add_view(WorkingHoursView, "WorkingHours", label=_("Working hours"),
                        href="/working-hours/", icon="fa-clock-o", category="Service",
                        category_label=_("Service desk"), category_icon="fa-headphones")


def register_call_views(appbuilder) -> None:
    """呼叫中心 (issue 18, B): the call log and the per-rep call statistics."""
    from app.views.cti import CallLogView, CallStatsView

    appbuilder.add_view(CallLogView, "CallLog", label=_("Call log"), icon="fa-phone-square",
                        category="CallCentre", category_label=_("Call centre"),
                        category_icon="fa-phone")
    appbuilder.add_view(CallStatsView, "CallStats", label=_("Call statistics"),
                        href="/call-stats/", icon="fa-bar-chart", category="CallCentre",
                        category_label=_("Call centre"), category_icon="fa-phone")


def register_analysis_views(appbuilder) -> None:
    """分析 (issue 20): the ownership-effect evaluation."""
    from app.views.ownership_effect import OwnershipEffectView

    appbuilder.add_view(OwnershipEffectView, "OwnershipEffect", label=_("Ownership effect"),
                        href="/ownership-effect/", icon="fa-balance-scale", category="Analysis",
                        category_label=_("Analysis"), category_icon="fa-bar-chart")


def refuse_fab_file_downloads(appbuilder) -> None:
    """No view has a file column: the `/download/<filename>` route FAB gives every ModelView
    (the user, role and group pages too) would read the unset UPLOAD_FOLDER; it is a 404."""
    from flask import abort
    from flask_appbuilder.baseviews import BaseCRUDView

    from app.views.base import ScopedModelView

    def no_download(filename):
        abort(404)

    for view in appbuilder.baseviews:
        if isinstance(view, BaseCRUDView) and not isinstance(view, ScopedModelView):
            endpoint = f"{view.endpoint}.download"
            if endpoint in current_app.view_functions:
                current_app.view_functions[endpoint] = no_download
