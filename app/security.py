"""Permissions and roles as data, and the data scopes (数据权限) every route applies.

Roles are FAB "builtin roles": regex pairs checked in memory, defined here once and never
edited in the database, so `flask crm init` on any deployment gives the same access matrix.
"""
from __future__ import annotations

import enum
from typing import Optional, Sequence

from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import Role
from flask_babel import lazy_gettext as _l
from sqlalchemy import inspect as sa_inspect, or_, select, true
from sqlalchemy.orm import aliased, joinedload

from app.extensions import db
from app.models import Customer, CustomerShare, Department, Ownership, User
from app.models.customer import utcnow

# --- permission names (views and APIs map their methods onto these) -------------------------
CAN_READ, CAN_WRITE, CAN_DELETE, CAN_EXPORT = "read", "write", "delete", "export"

METHOD_PERMISSIONS = {
    # ModelView
    "list": CAN_READ, "count": CAN_READ, "show": CAN_READ, "add": CAN_WRITE, "edit": CAN_WRITE,
    "delete": CAN_DELETE, "download": CAN_READ, "action": CAN_READ, "action_post": CAN_READ,
    "export": CAN_EXPORT, "export_xlsx": CAN_EXPORT,
    # ModelRestApi
    "get": CAN_READ, "get_list": CAN_READ, "info": CAN_READ, "post": CAN_WRITE,
    "put": CAN_WRITE,
}

# View-menu (permission) names, one per resource; a view and its REST API share one.
RES_CUSTOMER = "Customer"
RES_CONTACT = "Contact"
RES_OWNERSHIP_EVENT = "OwnershipEvent"
RES_DEPARTMENT = "Department"
RES_POOL = "Pool"
RES_POLICY = "Policy"
RES_AUDIT = "AuditLog"
RES_JOBS = "Jobs"
RES_OWNERSHIP = "Ownership"
RES_POOL_CUSTOMERS = "PoolCustomer"
RES_LEAD = "Lead"  # leads in scope: read, write (edit, follow-up, invalid), release, assign, convert
# 商机: read (in scope), write (add, edit, change stage, kanban drag); stages: admins only
RES_OPPORTUNITY = "Opportunity"
RES_OPPORTUNITY_STAGE = "OpportunityStage"
RES_LEAD_POOL = "LeadPool"  # the lead pool page: read (masked), claim, assign
CAN_CONVERT = "convert"
RES_RULE = "AssignmentRule"
RES_WORKBENCH = "Workbench"
RES_FOLLOWUP = "FollowUp"  # 跟进记录: read, write (log); never edited or deleted
RES_DEAL = "Deal"  # 成交: read, write (record)
RES_GRADING = "GradingSettings"  # classification and grading thresholds (admins edit)
RES_DEDUPE = "DedupeRule"  # 查重规则 (admins edit; managers, staff and auditors read)
# Batch scan results: review, merge, dismiss, undo (admins, staff); auditors read.
RES_DEDUPE_REVIEW = "DedupeReview"
# 批量导入: staff and admins; reps and managers reach it only as pool admins (the service
# checks), so only staff get the menu entry.
RES_IMPORT = "CustomerImport"
RES_NOTIFICATION = "Notification"  # everyone's own in-app notifications
RES_CARE_TEMPLATE = "CareTemplate"  # 纪念日关怀 templates (admins edit)
RES_CARE_SETTINGS = "CareSettings"  # days ahead, greeted holidays, attempts (admins edit)
RES_CARE_MESSAGE = "CareMessage"  # the outbox: read in scope; write = retry / cancel
RES_TARGET = "SalesTarget"  # 业绩目标: read (own / tree / all), write (admins, managers)
RES_TASK = "Task"  # 待办: read (own, or in scope), write (add, edit, done, cancel, reopen)
RES_TRANSFER = "Transfer"  # read, request (apply / cancel), approve (approve / reject)
# 休假: everyone reads those in their scope and records their own (managers their team's,
# admins anyone's: app.services.absences checks).
RES_ABSENCE = "Absence"
RES_API_KEY = "ApiKey"  # API keys for machines: admins only (Admin's ".*")
RES_CAPTURE_FORM = "CaptureForm"  # public lead capture forms: admins only (Admin's ".*")
# 市场管理 (issue 16): campaigns, segments, the tag list, surveys. Marketing and admins write;
# tagging one's own records is a permission on the record's resource (CAN_TAG).
RES_CAMPAIGN = "Campaign"
RES_SEGMENT = "Segment"
RES_TAG = "Tag"
RES_SURVEY = "Survey"
RES_CAMPAIGN_MESSAGE = "CampaignMessage"  # templates and the campaign outbox (write: edit, retry)
RES_OPTOUT = "MarketingOptOut"  # 退订名单: read, write (add by hand, remove)
RES_MARKETING_SETTINGS = "MarketingSettings"  # consent rule, attribution window (admins edit)
# Campaign responses: read the members and touches, write = mark responses, rotate the
# sign-up token (the service lets owners mark only their own customers); the effect table:
# read, export.
RES_CAMPAIGN_RESPONSE = "CampaignResponse"
RES_CAMPAIGN_EFFECT = "CampaignEffect"
CAN_TAG = "tag"
# 工单 (issue 17): read in scope (app.services.tickets.scope_clause); write = raise, edit,
# assign, change status, reply, note (the service says who may do which: owners raise
# tickets and add notes, the desk works them).
RES_TICKET = "Ticket"
# issue 17 H3 — the desk's configuration (categories: admins edit; teams, routing rules,
# settings: admins and service managers) and a customer's dedicated service agent (write:
# admins, staff, service managers; app.services.service_admin checks which agents).
RES_TICKET_CATEGORY = "TicketCategory"
RES_SERVICE_TEAM = "ServiceTeam"
RES_ROUTING_RULE = "TicketRoutingRule"
RES_SERVICE_SETTINGS = "ServiceSettings"
RES_DEDICATED_AGENT = "DedicatedAgent"
CAN_REQUEST, CAN_APPROVE = "request", "approve"
# List actions on customer pages (the ownership verbs as buttons); admin-only verbs are
# granted by Admin's ".*" alone: move_pool (between pools) and handover (departure).
CAN_TRANSFER, CAN_MOVE_POOL, CAN_HANDOVER = "transfer", "move_pool", "handover"
CAN_GRADE = "grade"  # set a customer's grade by hand (managers, admins)  # the pool browsing page (masked contacts)  # claim, release, assign (and distribute), lock, unlock
CAN_CLAIM, CAN_RELEASE, CAN_ASSIGN, CAN_LOCK, CAN_UNLOCK = (
    "claim", "release", "assign", "lock", "unlock")

ROLE_ADMIN = "Admin"
ROLE_MANAGER = "Sales Manager"
ROLE_REP = "Sales Rep"
ROLE_STAFF = "Back-office Staff"
ROLE_AUDITOR = "Auditor"
ROLE_MARKETING = "Marketing"  # 市场专员
ROLE_SERVICE_AGENT = "Service Agent"  # 客服
ROLE_SERVICE_MANAGER = "Service Manager"  # 客服主管
ALL_ROLES = (ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF, ROLE_AUDITOR, ROLE_MARKETING,
             ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER)


def _perm(resource: str, *perms: str) -> tuple[str, str]:
    return (f"^{resource}$", "^can_(" + "|".join(perms) + ")$")


def _menus(*names: str) -> tuple[str, str]:
    return ("^(" + "|".join(names) + ")$", "^menu_access$")


# Every signed-in user may edit their own profile and password and switch language.
_SELF_SERVICE = [
    (f"^{RES_ABSENCE}$", "^can_(read|write)$"),  # 休假: one's own leave (the service checks whose)
    ("^GuishuUserDBModelView$", "^can_(userinfo|userinfoedit)$"),  # "my profile"
    ("^UserInfoEditView$", "^can_this_form_(get|post)$"),
    ("^ResetMyPasswordView$", "^can_this_form_(get|post)$"),
    ("^MenuApi$", "^can_get$"),
    ("^OpenApi$", "^can_get$"),  # the API's spec, /api/v1/_openapi, for every API user
    ("^SwaggerView$", "^can_show$"),  # and its Swagger UI, /swagger/v1
    ("^Notification$", "^can_read$"),  # one's own only: the pages filter by the user
]

ROLES: dict[str, list[tuple[str, str]]] = {
    ROLE_ADMIN: [(".*", ".*")],
    ROLE_MANAGER: _SELF_SERVICE + [
        _perm(RES_TICKET, CAN_READ, CAN_WRITE), _menus("Service", "Tickets"),  # their scope's
        _perm(f"({RES_FOLLOWUP}|{RES_DEAL})", CAN_READ, CAN_WRITE),
        _perm(RES_CUSTOMER, CAN_READ, CAN_WRITE, CAN_EXPORT, CAN_RELEASE, CAN_LOCK, CAN_UNLOCK,
              CAN_TRANSFER, CAN_GRADE),
        _perm(f"({RES_CUSTOMER}|{RES_CONTACT}|{RES_LEAD})", CAN_TAG), _perm(RES_TAG, CAN_READ),
        _perm(RES_OWNERSHIP, CAN_CLAIM, CAN_RELEASE, CAN_ASSIGN, CAN_LOCK, CAN_UNLOCK, CAN_GRADE),
        _perm(RES_TRANSFER, CAN_READ, CAN_REQUEST, CAN_APPROVE),
        _perm(RES_TASK, CAN_READ, CAN_WRITE),
        _perm(RES_WORKBENCH, CAN_READ),
        _perm(RES_TARGET, CAN_READ, CAN_WRITE), _menus("SalesTargets", "TargetAttainment"),
        _perm(RES_POOL_CUSTOMERS, CAN_READ, CAN_CLAIM, CAN_ASSIGN),
        _perm(RES_LEAD, CAN_READ, CAN_WRITE, CAN_RELEASE, CAN_ASSIGN, CAN_CONVERT),
        _perm(RES_LEAD_POOL, CAN_READ, CAN_CLAIM, CAN_ASSIGN), _menus("Leads", "LeadList", "LeadPool"),
        _perm(RES_OPPORTUNITY, CAN_READ, CAN_WRITE),
        _menus("Opportunities", "OpportunityList", "OpportunityKanban"),
        _perm(RES_CAMPAIGN, CAN_READ), _menus("Marketing", "Campaigns"),  # 市场活动: read
        # marketing: responses — the effect table read-only; "responded" on own customers
        _perm(RES_CAMPAIGN_EFFECT, CAN_READ, CAN_EXPORT), _menus("Marketing", "CampaignEffect"),
        _perm(RES_CAMPAIGN_RESPONSE, CAN_WRITE), _menus("CampaignMine"),
        _perm(RES_CONTACT, CAN_READ, CAN_WRITE),
        _perm(RES_OWNERSHIP_EVENT, CAN_READ),
        _perm(RES_DEPARTMENT, CAN_READ),
        _perm(RES_POOL, CAN_READ),
        _perm(f"({RES_POLICY}|{RES_RULE}|{RES_GRADING}|{RES_CARE_TEMPLATE}|{RES_CARE_SETTINGS}"
              f"|{RES_DEDUPE})", CAN_READ),
        _perm(RES_CARE_MESSAGE, CAN_READ, CAN_WRITE),
        _perm(RES_IMPORT, CAN_READ, CAN_WRITE),
        _perm(RES_SURVEY, CAN_READ, CAN_EXPORT), _menus("Marketing", "Surveys"),  # results
        _menus("Customers", "CustomerList", "CustomerExport", "CustomerExportXlsx", "Contacts", "OwnershipHistory",
               "FollowUps", "Deals",
               "PoolCustomers", "Organisation", "Departments", "Rules", "Pools", "Policies",
               "AssignmentRules", "Grading", "Workbench", "MyWorkbench", "Team", "DueSoon", "Tasks",
               "Transfers", "Care", "CareOutbox", "CareTemplates", "CareSettings",
               "DedupeRules", "Absences"),
    ],
    ROLE_REP: _SELF_SERVICE + [
        _perm(RES_TICKET, CAN_READ, CAN_WRITE), _menus("Service", "Tickets"),  # their customers'
        _perm(f"({RES_FOLLOWUP}|{RES_DEAL})", CAN_READ, CAN_WRITE),
        _perm(RES_CUSTOMER, CAN_READ, CAN_WRITE, CAN_EXPORT, CAN_RELEASE, CAN_LOCK, CAN_TRANSFER),
        _perm(f"({RES_CUSTOMER}|{RES_CONTACT}|{RES_LEAD})", CAN_TAG), _perm(RES_TAG, CAN_READ),
        # assign: only pool admins get past the service (they distribute their pools).
        _perm(RES_OWNERSHIP, CAN_CLAIM, CAN_RELEASE, CAN_LOCK, CAN_ASSIGN),
        _perm(RES_TRANSFER, CAN_READ, CAN_REQUEST),
        _perm(RES_TASK, CAN_READ, CAN_WRITE),
        _perm(RES_WORKBENCH, CAN_READ),
        _perm(RES_TARGET, CAN_READ), _menus("SalesTargets", "TargetAttainment"),
        _perm(RES_POOL_CUSTOMERS, CAN_READ, CAN_CLAIM, CAN_ASSIGN),
        _perm(RES_LEAD, CAN_READ, CAN_WRITE, CAN_RELEASE, CAN_CONVERT),
        _perm(RES_LEAD_POOL, CAN_READ, CAN_CLAIM), _menus("Leads", "LeadList", "LeadPool"),
        _perm(RES_OPPORTUNITY, CAN_READ, CAN_WRITE),
        _menus("Opportunities", "OpportunityList", "OpportunityKanban"),
        _perm(RES_CAMPAIGN, CAN_READ), _menus("Marketing", "Campaigns"),  # 市场活动: read
        # marketing: responses — "responded" on their own customers (the service checks)
        _perm(RES_CAMPAIGN_RESPONSE, CAN_WRITE), _menus("CampaignMine"),
        _perm(RES_CONTACT, CAN_READ, CAN_WRITE),
        _perm(RES_OWNERSHIP_EVENT, CAN_READ),
        _perm(RES_CARE_MESSAGE, CAN_READ, CAN_WRITE),
        _perm(RES_IMPORT, CAN_READ, CAN_WRITE),
        _menus("Customers", "CustomerList", "CustomerExport", "CustomerExportXlsx", "Contacts", "OwnershipHistory",
               "FollowUps", "Deals",
               "PoolCustomers", "Workbench", "MyWorkbench", "DueSoon", "Tasks", "Transfers", "Care",
               "CareOutbox", "Absences"),
    ],
    ROLE_STAFF: _SELF_SERVICE + [
        _perm(RES_TICKET, CAN_READ, CAN_WRITE), _menus("Service", "Tickets"),  # every ticket
        _perm(RES_DEDUPE_REVIEW, CAN_READ, CAN_WRITE), _menus("DedupeReview"),
        _perm(RES_OPTOUT, CAN_READ, CAN_WRITE), _menus("OptOuts"),  # 退订 asked on the phone
        _perm(f"({RES_FOLLOWUP}|{RES_DEAL})", CAN_READ, CAN_WRITE),
        _perm(RES_CUSTOMER, CAN_READ, CAN_WRITE, CAN_EXPORT, CAN_TRANSFER),
        _perm(f"({RES_CUSTOMER}|{RES_CONTACT}|{RES_LEAD})", CAN_TAG), _perm(RES_TAG, CAN_READ),
        # They maintain every record, pool customers too: the pool page to browse, no claim.
        _perm(RES_POOL_CUSTOMERS, CAN_READ), _menus("PoolCustomers"),
        _perm(RES_LEAD, CAN_READ, CAN_WRITE, CAN_CONVERT),
        _perm(RES_LEAD_POOL, CAN_READ), _menus("Leads", "LeadList", "LeadPool"),
        _perm(RES_OPPORTUNITY, CAN_READ, CAN_WRITE),
        _menus("Opportunities", "OpportunityList", "OpportunityKanban"),
        _perm(RES_CAMPAIGN, CAN_READ), _menus("Marketing", "Campaigns"),  # 市场活动: read
        _perm(RES_TRANSFER, CAN_READ, CAN_REQUEST),
        _perm(RES_TASK, CAN_READ, CAN_WRITE), _menus("Workbench", "Tasks"),
        _perm(RES_CONTACT, CAN_READ, CAN_WRITE),
        _perm(RES_OWNERSHIP_EVENT, CAN_READ),
        _perm(RES_DEPARTMENT, CAN_READ),
        _perm(RES_POOL, CAN_READ),
        _perm(RES_CARE_MESSAGE, CAN_READ, CAN_WRITE),
        _perm(RES_IMPORT, CAN_READ, CAN_WRITE),
        _menus("Customers", "CustomerList", "CustomerExport", "CustomerExportXlsx", "CustomerImport", "Contacts",
               "OwnershipHistory", "FollowUps", "Deals",
               "Organisation", "Departments", "Rules", "Pools", "Transfers", "Care",
               "CareOutbox", "Workbench", "Absences"),
        # issue 17 H3: dedicated service agents
        _perm(RES_DEDICATED_AGENT, CAN_WRITE),
    ],
    ROLE_AUDITOR: _SELF_SERVICE + [
        _perm(RES_TICKET, CAN_READ), _menus("Service", "Tickets"),  # every ticket, read-only
        _perm(RES_DEDUPE_REVIEW, CAN_READ), _menus("DedupeReview"),
        _perm(f"({RES_FOLLOWUP}|{RES_DEAL})", CAN_READ),
        _perm(RES_CUSTOMER, CAN_READ, CAN_EXPORT),
        _perm(RES_TAG, CAN_READ),
        _perm(RES_TRANSFER, CAN_READ),
        _perm(RES_TASK, CAN_READ), _menus("Workbench", "Tasks"),
        _perm(RES_TARGET, CAN_READ), _menus("SalesTargets", "TargetAttainment"),
        _perm(RES_CONTACT, CAN_READ),
        _perm(RES_OWNERSHIP_EVENT, CAN_READ),
        _perm(RES_DEPARTMENT, CAN_READ),
        _perm(RES_POOL, CAN_READ),
        _perm(f"({RES_POLICY}|{RES_RULE}|{RES_GRADING}|{RES_CARE_TEMPLATE}|{RES_CARE_SETTINGS}"
              f"|{RES_CARE_MESSAGE}|{RES_DEDUPE})", CAN_READ),
        _perm(RES_AUDIT, CAN_READ),
        _perm(RES_SURVEY, CAN_READ, CAN_EXPORT), _menus("Marketing", "Surveys"),
        _perm(f"({RES_LEAD}|{RES_LEAD_POOL})", CAN_READ), _menus("Leads", "LeadList", "LeadPool"),
        _perm(RES_OPPORTUNITY, CAN_READ),
        _menus("Opportunities", "OpportunityList", "OpportunityKanban"),
        _perm(RES_CAMPAIGN, CAN_READ), _menus("Marketing", "Campaigns"),  # 市场活动: read
        # marketing: responses — the effect table, read-only (aggregates, no contact details)
        _perm(RES_CAMPAIGN_EFFECT, CAN_READ, CAN_EXPORT), _menus("Marketing", "CampaignEffect"),
        _menus("Customers", "CustomerList", "CustomerExport", "CustomerExportXlsx", "Contacts", "OwnershipHistory",
               "FollowUps", "Deals",
               "Organisation", "Departments", "Rules", "Pools", "Policies", "AuditLog",
               "AssignmentRules", "Grading", "Transfers", "Care", "CareOutbox",
               "CareTemplates", "CareSettings", "DedupeRules", "Workbench", "Absences"),
        # issue 17 H3: the desk's configuration, read-only
        _perm(f"({RES_TICKET_CATEGORY}|{RES_SERVICE_TEAM}|{RES_ROUTING_RULE}"
              f"|{RES_SERVICE_SETTINGS})", CAN_READ),
        _menus("Service", "TicketCategories", "ServiceTeams", "RoutingRules",
               "ServiceSettings"),
    ],
    # 市场专员: campaigns, segments, tags, surveys and lead pools; customers read-only with
    # contacts masked (app.services.masking), and no ownership verb on a customer.
    ROLE_MARKETING: _SELF_SERVICE + [
        _perm(RES_CUSTOMER, CAN_READ),
        _perm(RES_CONTACT, CAN_READ),
        # Leads: read and hand out from the lead pools; new leads come through capture forms,
        # sign-ups and marked responses (app.services.campaign_responses), not the lead form.
        _perm(RES_LEAD, CAN_READ),
        _perm(RES_LEAD_POOL, CAN_READ, CAN_ASSIGN), _menus("Leads", "LeadList", "LeadPool"),
        _menus("Customers", "CustomerList", "Contacts"),
        # 市场活动: every campaign (create, edit, delete a planned one, members, launch)
        _perm(RES_CAMPAIGN, CAN_READ, CAN_WRITE, CAN_DELETE), _menus("Marketing", "Campaigns"),
        # segments, the tag list, tagging
        _perm(RES_SEGMENT, CAN_READ, CAN_WRITE, CAN_DELETE),
        _perm(RES_TAG, CAN_READ, CAN_WRITE, CAN_DELETE),
        _perm(f"({RES_CUSTOMER}|{RES_CONTACT}|{RES_LEAD})", CAN_TAG),
        _menus("Marketing", "Segments", "Tags"),
        # marketing: sending, opt-outs
        _perm(RES_CAMPAIGN_MESSAGE, CAN_READ, CAN_WRITE),
        _perm(RES_OPTOUT, CAN_READ, CAN_WRITE), _perm(RES_MARKETING_SETTINGS, CAN_READ),
        _menus("OptOuts"),
        # marketing: responses (tracked links, sign-up token, marked responses, effect table)
        _perm(RES_CAMPAIGN_RESPONSE, CAN_READ, CAN_WRITE),
        _perm(RES_CAMPAIGN_EFFECT, CAN_READ, CAN_EXPORT), _menus("Marketing", "CampaignEffect"),
        # surveys
        _perm(RES_SURVEY, CAN_READ, CAN_WRITE, CAN_EXPORT), _menus("Marketing", "Surveys"),
    ],
    # 客服: tickets of its teams and those assigned to it (app.services.tickets); the
    # tickets' customers readable (contacts in full while a ticket is open).
    ROLE_SERVICE_AGENT: _SELF_SERVICE + [
        _perm(RES_TICKET, CAN_READ, CAN_WRITE), _menus("Service", "Tickets"),
        # the customers of its tickets: read-only (no ownership verb), contacts by the rule
        _perm(f"({RES_CUSTOMER}|{RES_CONTACT})", CAN_READ),
        _menus("Customers", "CustomerList", "Contacts"),
        _perm(RES_TASK, CAN_READ, CAN_WRITE), _menus("Tasks"),  # escalations, low scores
        # issue 17 H3: the categories and teams (read), the workbench's ticket panel
        _perm(f"({RES_TICKET_CATEGORY}|{RES_SERVICE_TEAM})", CAN_READ),
        _perm(RES_WORKBENCH, CAN_READ), _menus("Workbench", "MyWorkbench"),
        _menus("TicketCategories", "ServiceTeams"),
    ],
    # 客服主管: its teams' tickets and agents, routing rules, SLA policies, the work calendar.
    ROLE_SERVICE_MANAGER: _SELF_SERVICE + [
        _perm(RES_TICKET, CAN_READ, CAN_WRITE), _menus("Service", "Tickets"),
        _perm(f"({RES_CUSTOMER}|{RES_CONTACT})", CAN_READ),
        _menus("Customers", "CustomerList", "Contacts"),
        _perm(RES_TASK, CAN_READ, CAN_WRITE), _menus("Tasks"),
        # issue 17 H3: teams, routing rules, settings; dedicated agents; the workbench
        _perm(RES_TICKET_CATEGORY, CAN_READ),
        _perm(f"({RES_SERVICE_TEAM}|{RES_ROUTING_RULE})", CAN_READ, CAN_WRITE, CAN_DELETE),
        _perm(RES_SERVICE_SETTINGS, CAN_READ, CAN_WRITE), _perm(RES_DEDICATED_AGENT, CAN_WRITE),
        _perm(RES_WORKBENCH, CAN_READ), _menus("Workbench", "MyWorkbench"),
        _menus("TicketCategories", "ServiceTeams", "RoutingRules", "ServiceSettings"),
    ],
}

# issue 17 H4: 服务分析 — every ticket for admins, staff and auditors; service managers,
# agents and sales managers over the tickets they may read (the service scopes it).
RES_SERVICE_ANALYSIS = "ServiceAnalysis"
for _role in (ROLE_MANAGER, ROLE_STAFF, ROLE_AUDITOR, ROLE_SERVICE_MANAGER, ROLE_SERVICE_AGENT):
    ROLES[_role] = ROLES[_role] + [_perm(RES_SERVICE_ANALYSIS, CAN_READ),
                                   _menus("Service", "ServiceAnalysis")]
# issue 17 H1: SLA policies (service managers and admins edit, agents read) and the work
# calendar with the working hours (service managers and admins).
RES_SLA_POLICY = "SlaPolicy"
RES_WORK_CALENDAR = "WorkCalendar"
ROLES[ROLE_SERVICE_AGENT] += [_perm(RES_SLA_POLICY, CAN_READ), _menus("Service", "SlaPolicies")]
ROLES[ROLE_SERVICE_MANAGER] += [
    _perm(RES_SLA_POLICY, CAN_READ, CAN_WRITE, CAN_DELETE),
    _perm(RES_WORK_CALENDAR, CAN_READ, CAN_WRITE, CAN_DELETE),
    _menus("Service", "SlaPolicies", "WorkCalendar", "WorkingHours")]

# issue 18 (call centre, screen pop and click-to-call): every signed-in user receives the
# screen pops of the calls ringing at their own agent number; the roles that call customers
# dial them (app.services.cti_dial checks the record's scope and the agent number).
RES_CTI_POP = "CtiPop"
RES_CTI_DIAL = "CtiDial"
CAN_DIAL = "dial"
for _role in ROLES:
    if _role != ROLE_ADMIN:
        ROLES[_role] = ROLES[_role] + [_perm(RES_CTI_POP, CAN_READ)]
for _role in (ROLE_MANAGER, ROLE_REP, ROLE_STAFF, ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER):
    ROLES[_role] = ROLES[_role] + [_perm(RES_CTI_DIAL, CAN_DIAL)]


# issue 20 §4: 价值复评建议 — managers decide in their scope, admins everywhere, auditors read.
RES_VALUE_REVIEW = "ValueReview"
ROLES[ROLE_MANAGER] = ROLES[ROLE_MANAGER] + [_perm(RES_VALUE_REVIEW, CAN_READ, CAN_WRITE),
                                             _menus("ValueReview")]
ROLES[ROLE_AUDITOR] = ROLES[ROLE_AUDITOR] + [_perm(RES_VALUE_REVIEW, CAN_READ),
                                             _menus("ValueReview")]


# --- data scopes --------------------------------------------------------------------------
class Scope(enum.IntEnum):
    """Ordered from narrowest to widest: a user with several roles gets the widest."""

    OWN = 1            # 本人
    OWN_AND_SUBORDINATES = 2  # 本人及下属
    DEPARTMENT = 3     # 本部门
    DEPARTMENT_TREE = 4  # 本部门及下属部门
    ALL = 5            # 全部


ROLE_SCOPES: dict[str, Scope] = {
    ROLE_ADMIN: Scope.ALL,
    ROLE_MANAGER: Scope.DEPARTMENT_TREE,
    ROLE_REP: Scope.OWN,
    ROLE_STAFF: Scope.ALL,
    ROLE_AUDITOR: Scope.ALL,
    ROLE_MARKETING: Scope.ALL,  # reads every customer, masked; owns none
}

SCOPE_LABELS = {
    Scope.OWN: _l("Own customers"), Scope.OWN_AND_SUBORDINATES: _l("Own and subordinates'"),
    Scope.DEPARTMENT: _l("Own department"), Scope.DEPARTMENT_TREE: _l("Department and below"),
    Scope.ALL: _l("All"),
}
# Role names are data (ab_role.name, matched by the permission sync): shown translated.
ROLE_LABELS = {ROLE_ADMIN: _l("Admin"), ROLE_MANAGER: _l("Sales Manager"),
               ROLE_REP: _l("Sales Rep"), ROLE_STAFF: _l("Back-office Staff"),
               ROLE_AUDITOR: _l("Auditor"), ROLE_MARKETING: _l("Marketing specialist"),
               ROLE_SERVICE_AGENT: _l("Service agent"),
               ROLE_SERVICE_MANAGER: _l("Service manager")}


def role_label(name: str) -> str:
    """A role's name in the user's language (roles admins add keep their own name)."""
    return str(ROLE_LABELS.get(name, name))


# Pickers and related lists print a role with str(): the translated name there too.
Role.__str__ = lambda role: role_label(role.name)


def role_names(user: User) -> set[str]:
    return {r.name for r in (user.roles or [])}


def has_role(user: Optional[User], *names: str) -> bool:
    return user is not None and bool(role_names(user) & set(names))


def marketing_only(user: Optional[User]) -> bool:
    """Marketing (市场专员) without a sales or back-office role: reads customers, owns none
    and takes no ownership action on them (the services refuse, not only the permissions)."""
    return has_role(user, ROLE_MARKETING) and not has_role(
        user, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF)


def marketing_only_ids_select():
    """SELECT of the users marketing_only() holds for, for pickers of owners."""
    from flask_appbuilder.security.sqla.models import assoc_user_role

    def holders(*names: str):
        return select(assoc_user_role.c.user_id).join(
            Role, Role.id == assoc_user_role.c.role_id).where(Role.name.in_(names))

    return holders(ROLE_MARKETING).where(assoc_user_role.c.user_id.not_in(
        holders(ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF)))


def service_only(user: Optional[User]) -> bool:
    """客服 / 客服主管 without a sales or back-office role: reads the customers of its
    tickets, owns none and takes no ownership action (like marketing_only)."""
    return has_role(user, ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER) and not has_role(
        user, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF)


def cannot_own(user: Optional[User]) -> bool:
    """Marketing only or service only: never an owner of customers or leads."""
    return marketing_only(user) or service_only(user)


def non_owner_ids_select():
    """SELECT of the users cannot_own() holds for (marketing or service only), for pickers
    of owners."""
    from flask_appbuilder.security.sqla.models import assoc_user_role

    def holders(*names: str):
        return select(assoc_user_role.c.user_id).join(
            Role, Role.id == assoc_user_role.c.role_id).where(Role.name.in_(names))

    return holders(ROLE_MARKETING, ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER).where(
        assoc_user_role.c.user_id.not_in(holders(ROLE_ADMIN, ROLE_MANAGER, ROLE_REP,
                                                 ROLE_STAFF)))


def service_customer_ids_select(user: User):
    """SELECT of the customers of the tickets a service agent or manager may read: the
    customers it reads (app.services.tickets.scope_clause), never edits."""
    from app.models import Ticket
    from app.services.tickets import service_scope_clause

    return select(Ticket.customer_id).where(Ticket.customer_id.is_not(None),
                                            service_scope_clause(user))


def _service_reader(user: Optional[User]) -> bool:
    return has_role(user, ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER)


def scope_of(user: Optional[User]) -> Optional[Scope]:
    """The widest scope among the user's roles; None for anonymous or role-less users."""
    if user is None or not getattr(user, "is_authenticated", True):
        return None
    scopes = [ROLE_SCOPES[r] for r in role_names(user) if r in ROLE_SCOPES]
    return max(scopes) if scopes else None


def subordinate_ids(user_id: int) -> set[int]:
    """Everyone who reports to user_id, directly or through others (reports-to chain)."""
    found: set[int] = set()
    frontier = {user_id}
    while frontier:
        rows = db.session.execute(
            select(User.id).where(User.superior_id.in_(frontier))).scalars().all()
        frontier = set(rows) - found - {user_id}
        found |= frontier
    return found


def request_cache() -> Optional[dict]:
    """A dict that lives as long as the current request (None outside one): for values a
    request reads several times (the scope's owners), never across requests."""
    from flask import has_request_context, request

    if not has_request_context():
        return None
    return request.environ.setdefault("guishu.request_cache", {})


def visible_owner_ids(user: User, scope: Scope) -> frozenset[int]:
    """The ids of the owners whose customers `user` may see under `scope` (not ALL): read in
    one statement (the department tree through its indexed path), once per request."""
    cache = request_cache()
    key = ("owners", user.id, scope)
    if cache is not None and key in cache:
        return cache[key]
    if scope == Scope.OWN:
        ids = frozenset({user.id})
    elif scope == Scope.OWN_AND_SUBORDINATES:
        ids = frozenset({user.id} | subordinate_ids(user.id))
    elif not user.department_id:
        ids = frozenset({user.id})
    else:
        mine = select(Department).where(Department.id == user.department_id).subquery()
        if scope == Scope.DEPARTMENT:
            team = User.department_id == user.department_id
        else:
            subtree = select(Department.id).join(
                mine, Department.path.startswith(mine.c.path, autoescape=False))
            team = User.department_id.in_(subtree)
        ids = frozenset(db.session.execute(select(User.id).where(team)).scalars()) | {user.id}
    if cache is not None:
        cache[key] = ids
    return ids


def visible_owner_ids_select(user: User, scope: Scope):
    """A SELECT of the owner ids whose customers `user` may see under `scope` (not ALL)."""
    return select(User.id).where(User.id.in_(visible_owner_ids(user, scope)))


def visible_customer_ids_select(user: Optional[User], include_shared: bool = True):
    """SELECT of customer ids in the user's scope, or None when the scope is ALL.

    Owned customers of the visible owners, plus (for reading) customers shared with the
    user. Pool customers are outside every scope but ALL; reps browse pools through the pool
    pages.
    """
    scope = scope_of(user)
    # 客服: the customers of its tickets, for reading (include_shared) only.
    service = include_shared and _service_reader(user)
    if scope is None:
        if service:
            return service_customer_ids_select(user)
        return select(Customer.id).where(false_clause())
    if scope == Scope.ALL:
        return None
    # The owners and the shared customers as lists of ids, in one semi-join: the planner
    # reads their share of the customers from the statistics of customer_ownership and uses
    # its indexes (a UNION with the shares sorted every visible id: a second for 700,000).
    mine = Ownership.owner_id.in_(sorted(visible_owner_ids(user, scope)))
    shared = shared_customer_ids(user) if include_shared else ()
    if shared:
        mine = or_(mine, Ownership.customer_id.in_(sorted(shared)))
    if service:
        return select(Ownership.customer_id).where(mine).union(
            service_customer_ids_select(user))
    return select(Ownership.customer_id).where(mine)


def shared_customer_ids(user: User) -> frozenset[int]:
    """The customers shared with `user` now (read-only shares, few per user), read once per
    request."""
    cache = request_cache()
    key = ("shared", user.id)
    if cache is not None and key in cache:
        return cache[key]
    ids = frozenset(db.session.execute(select(CustomerShare.customer_id).where(
        CustomerShare.user_id == user.id,
        or_(CustomerShare.expires_at.is_(None), CustomerShare.expires_at > utcnow())))
        .scalars())
    if cache is not None:
        cache[key] = ids
    return ids


def false_clause():
    return Customer.id != Customer.id


def customer_scope_clause(user: Optional[User], column=Customer.id, include_shared: bool = True):
    """A WHERE clause limiting `column` (a customer id column) to the user's scope."""
    ids = visible_customer_ids_select(user, include_shared)
    if ids is None:
        return true()
    return column.in_(ids)


def can_see_customer(user: Optional[User], customer_id: int) -> bool:
    return db.session.execute(
        select(Customer.id).where(Customer.id == customer_id, customer_scope_clause(user))
    ).first() is not None


def can_write_customer(user: Optional[User], customer_id: int) -> bool:
    """In scope through ownership; a share gives read access only."""
    return db.session.execute(
        select(Customer.id).where(Customer.id == customer_id,
                                  customer_scope_clause(user, include_shared=False))
    ).first() is not None


def current_user() -> Optional[User]:
    """The signed-in user (session or JWT), or None."""
    from app.extensions import appbuilder

    user = appbuilder.sm.current_user
    if user is None or not getattr(user, "is_authenticated", True):
        return None
    return user


class CustomerScopeFilter(BaseFilter):
    """FAB base filter: limits any query whose `column_name` is a customer id to the scope."""

    name = "data scope"
    arg_name = None

    def apply(self, query, value):
        model = self.datamodel.obj
        column = getattr(model, self.column_name)
        return limit_to_scope(query, current_user(), column)


def limit_to_scope(query, user: Optional[User], column, include_shared: bool = True):
    """`query` (an ORM query or a SELECT) limited to the rows whose `column` (a customer id)
    is in the user's scope: a semi-join on PostgreSQL, a join on SQLite (scope_joined)."""
    if db.session.get_bind().dialect.name == "sqlite":
        return scope_joined(query, user, column, include_shared)
    return query.filter(customer_scope_clause(user, column, include_shared))


def scope_joined(query, user: Optional[User], column, include_shared: bool = True,
                 also_ids: Sequence[int] = ()):
    """`query` limited to the user's scope through a join with the customers' ownership rows
    instead of `column IN (SELECT …)`: SQLite materialises an IN subquery whole before the
    first row (700,000 ids, 0.4 s for a manager of the sales tree at 1M customers), while for
    a join its planner weighs both orders from the statistics and, for a wide scope, walks
    the list's own index and stops after one page. Same rows as customer_scope_clause;
    `also_ids`: ids in scope besides (merged-away customers, which have no ownership row:
    then an outer join)."""
    scope = scope_of(user)
    if include_shared and _service_reader(user) and scope != Scope.ALL:
        # 客服 read the customers of their tickets: an IN over those (few per agent).
        clause = customer_scope_clause(user, column, include_shared)
        if also_ids:
            clause = or_(clause, column.in_(sorted(set(also_ids))))
        return query.filter(clause)
    if scope is None:
        return query.filter(false_clause())
    if scope == Scope.ALL:
        return query
    own = aliased(Ownership, name="scope_ownership")
    mine = own.owner_id.in_(sorted(visible_owner_ids(user, scope)))
    shared = shared_customer_ids(user) if include_shared else ()
    if shared:
        mine = or_(mine, own.customer_id.in_(sorted(shared)))
    if also_ids:
        return query.outerjoin(own, own.customer_id == column).filter(
            or_(mine, column.in_(sorted(set(also_ids)))))
    return query.join(own, own.customer_id == column).filter(mine)


def scope_filters(column: str = "id") -> list:
    """`base_filters` for a model whose `column` holds a customer id."""
    return [[column, CustomerScopeFilter, lambda: None]]


# --- security manager ---------------------------------------------------------------------
class GuishuSecurityManager(SecurityManager):
    user_model = User

    def __init__(self, appbuilder):
        # The user admin page calls services, which import this module: import it late.
        from app.views.users import (GuishuUserDBModelView, PermissionViewModelView,
                                     RoleModelView, UserGroupModelView, UserStatsChartView)

        self.userdbmodelview = GuishuUserDBModelView
        self.rolemodelview, self.groupmodelview = RoleModelView, UserGroupModelView
        self.permissionviewmodelview = PermissionViewModelView
        self.userstatschartview = UserStatsChartView
        super().__init__(appbuilder)

    def _create_db(self) -> None:
        # The schema comes from Alembic migrations only; FAB's create_all would also create
        # our tables behind Alembic's back. Sync the roles once the migrations have run.
        if "ab_role" not in sa_inspect(self.session.get_bind()).get_table_names():
            return
        # Builtin roles need only their row: their permissions are the regexes in ROLES.
        for name in ROLES:
            self.add_role(name)
        self.add_role(self.auth_role_public)

    @staticmethod
    def create_builtin_roles():
        return ROLES

    def _has_access_builtin_roles(self, role, permission_name: str, view_name: str) -> bool:
        # FAB matches the role's regex pairs one by one on every check (~35 re.match each, and
        # a page makes ~60 checks for its menu alone). The builtin roles are fixed for the
        # process, so each answer is too: remember it (a few thousand pairs at most).
        memo = self.__dict__.setdefault("_builtin_access", {})
        key = (role.name, permission_name, view_name)
        answer = memo.get(key)
        if answer is None:
            if len(memo) >= 50_000:
                memo.clear()
            answer = memo[key] = super()._has_access_builtin_roles(role, permission_name,
                                                                   view_name)
        return answer

    def get_user_by_id(self, pk):
        # Every request loads the signed-in user, then FAB reads its roles and groups: one
        # statement for the three (the list pages' budget is counted in statements).
        return self.session.execute(
            select(self.user_model).where(self.user_model.id == pk)
            .options(joinedload(self.user_model.roles), joinedload(self.user_model.groups))
        ).unique().scalar_one_or_none()


__all__ = [
    "ROLES", "ROLE_SCOPES", "Scope", "scope_of", "customer_scope_clause", "can_see_customer",
    "current_user", "scope_filters", "CustomerScopeFilter", "METHOD_PERMISSIONS",
]
# issue 18 (B): 通话记录 — the call log (app.services.cti_calls.scope_clause decides which
# calls: those of customers and leads in scope, and those the user took or dialled); every
# role but marketing reads it (auditors: all, read-only, like everything). 通话统计 — the
# per-rep table: sales managers over their team, admins over everyone.
RES_CTI_CALL = "CtiCall"
RES_CTI_STATS = "CtiCallStats"
for _role in (ROLE_MANAGER, ROLE_REP, ROLE_STAFF, ROLE_AUDITOR, ROLE_SERVICE_AGENT,
              ROLE_SERVICE_MANAGER):
    ROLES[_role] = ROLES[_role] + [_perm(RES_CTI_CALL, CAN_READ), _menus("CallCentre", "CallLog")]
ROLES[ROLE_MANAGER] += [_perm(RES_CTI_STATS, CAN_READ), _menus("CallCentre", "CallStats")]
# issue 20: 统计图表 — the charts' data (/api/v1/stats/, the home page's dashboards), each
# evaluated in the reader's scope by app.services.stats (whole-organisation charts: the scope
# ALL only). Marketing and the service desk read their own charts (the campaign effect and
# the service analysis as charts); the registry decides which stat is for which role.
RES_STATS = "Stats"
for _role in (ROLE_MANAGER, ROLE_REP, ROLE_STAFF, ROLE_AUDITOR, ROLE_MARKETING,
              ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER):
    ROLES[_role] = ROLES[_role] + [_perm(RES_STATS, CAN_READ)]

# issue 20 §3: 归属效果评估 — admins (".*") and auditors read every receipt, sales managers
# their scope's reps, reps their own (app.services.ownership_effect decides which rows).
RES_OWNERSHIP_EFFECT = "OwnershipEffect"
for _role in (ROLE_MANAGER, ROLE_REP, ROLE_AUDITOR):
    ROLES[_role] = ROLES[_role] + [_perm(RES_OWNERSHIP_EFFECT, CAN_READ),
                                   _menus("Analysis", "OwnershipEffect")]
