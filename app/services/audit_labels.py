"""The audit log in words: what was done ("dedupe_scan" -> 查重扫描), to what ("department"
-> 部门), and the changes as "名称：— → 审计部；上级部门：— → 3" rather than a Python dict.

The keys are what the services write (app.services.audit.record callers, the audited admin
views' audit_type); a key with no label here is shown as it is, so a new one is never lost.
"""
from __future__ import annotations

from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l

ACTION_LABELS = {
    "create": _l("Create"), "update": _l("Update"), "save": _l("Save"),
    "delete": _l("Delete"), "depart": _l("Marked departed"), "reinstate": _l("Reinstated"),
    "merge": _l("Merged"), "merged_into": _l("Merged into another customer"),
    "unmerge": _l("Merge undone"), "unmerged": _l("Restored from a merge"),
    "dedupe_confirmed": _l("Confirmed not a duplicate"),
    "dedupe_flagged": _l("Flagged as a possible duplicate"), "dedupe_scan": _l("Duplicate scan"),
    "dedupe_dismiss": _l("Duplicate group dismissed"), "requeue": _l("Queued again"),
    "retry": _l("Retried"), "cancel": _l("Cancelled"), "start": _l("Started"),
    "import": _l("Imported"), "upload": _l("Uploaded"), "configure": _l("Columns mapped"),
    "rotate": _l("Rotated"), "revoke": _l("Revoked"), "api_key_use": _l("API key used"),
    "sms_reply": _l("SMS reply received"),
}
OBJECT_LABELS = {
    "customer": _l("Customer"), "contact": _l("Contact"), "department": _l("Department"),
    "user": _l("User"), "policy": _l("Ownership policy"), "pool": _l("Pool"),
    "pool_member": _l("Pool member"), "assignment_rule": _l("Assignment rule"),
    "dedupe_rule": _l("Dedupe rule"), "dedupe_cluster": _l("Duplicate group"),
    "care_message": _l("Care message"), "care_template": _l("Care template"),
    "care_settings": _l("Care settings"), "grading_settings": _l("Grading settings"),
    "customer_grade": _l("Customer grade"), "import_batch": _l("Import"),
    "job": _l("Background job"), "demo": _l("Demo data"),
    "absence": _l("Absence"), "api_key": _l("API key"),
    "sales_target": _l("Sales target"), "deal": _l("Won deal"), "lead": _l("Lead"),
    "opportunity": _l("Opportunity"), "opportunity_stage": _l("Pipeline stage"),
    "capture_form": _l("Capture form"), "task": _l("Task"),
}
# The fields changes name most often; others are shown by their key.
FIELD_LABELS = {
    "name": _l("Name"), "customer_type": _l("Type"), "industry": _l("Industry"),
    "province": _l("Province"), "city": _l("City"), "address": _l("Address"),
    "phone": _l("Phone"), "mobile": _l("Mobile"), "email": _l("Email"), "source": _l("Source"),
    "phone_e164": _l("Phone (E.164)"), "mobile_e164": _l("Mobile (E.164)"),
    "email_norm": _l("Email (normalised)"),
    "product_line": _l("Product line"), "birthday": _l("Birthday"),
    "birthday_lunar": _l("Lunar birthday"), "notes": _l("Notes"), "title": _l("Title"),
    "is_primary": _l("Primary contact"), "parent_id": _l("Parent department"),
    "manager_id": _l("Manager"), "employment_status": _l("Employment"),
    "description": _l("Description"), "is_default": _l("Default pool"),
    "is_admin": _l("Pool admin"), "active": _l("Active"), "status": _l("Status"),
    "grade": _l("Grade"), "scope": _l("Applies to"), "department_id": _l("Department"),
    "user_id": _l("User"), "job": _l("Background job"),
    "starts_on": _l("From"), "ends_on": _l("To"), "reason": _l("Reason"),
    "cancelled_at": _l("Cancelled at"), "purpose": _l("Purpose"), "prefix": _l("Key prefix"),
    "rotated_at": _l("Rotated at"), "revoked_at": _l("Revoked at"), "result": _l("Result"),
    "endpoint": _l("Endpoint"), "text": _l("Text"), "received_at": _l("Received at"),
    "period_kind": _l("Period"), "period_start": _l("Period starts"),
    "won_amount": _l("Target won amount"), "new_customers": _l("Target new customers"),
    "segment_record_type": _l("Segment: record type"), "segment_grade": _l("Segment: grade"),
    "segment_category": _l("Segment: category"),
    "segment_product_line": _l("Segment: product line"),
    "segment_source": _l("Segment: source"),
}


def action_label(action: str) -> str:
    return str(ACTION_LABELS.get(action, action))


def object_label(object_type: str) -> str:
    return str(OBJECT_LABELS.get(object_type, object_type))


def _value(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if value is True or value is False:
        return gettext("Yes") if value else gettext("No")
    return str(value)


def changes_text(changes: Any) -> str:
    """{'name': [None, '审计部'], …} -> '名称：— → 审计部；…' (old → new per field; a value that
    is not a pair is shown alone). Give it AuditLog.changes_shown: the masking stays."""
    if not changes:
        return ""
    if not isinstance(changes, dict):
        return str(changes)
    parts = []
    for field, value in changes.items():
        label = str(FIELD_LABELS.get(field, field))
        if isinstance(value, (list, tuple)) and len(value) == 2:
            text = f"{_value(value[0])} → {_value(value[1])}"
        else:
            text = _value(value)
        parts.append(gettext("%(field)s: %(change)s", field=label, change=text))
    return gettext("; ").join(parts)


# issue 17 H3: the service desk's configuration and dedicated agents
ACTION_LABELS.update(rule_assign=_l("Given by the grade-A rule"))
OBJECT_LABELS.update(ticket_category=_l("Ticket category"), service_team=_l("Service team"),
                     ticket_routing_rule=_l("Routing rule"),
                     service_settings=_l("Service settings"),
                     customer_service_agent=_l("Dedicated service agent"))
