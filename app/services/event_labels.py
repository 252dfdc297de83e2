"""What an ownership event says, in the reader's language: its kind ("transferred" ->
转移) and the rule that moved the customer ("transfer:departure" -> 转移申请（员工离职）).

One mapping for every page that shows events: the customer page's timeline and the ownership
history list. The rule keys are written by the services that move customers (rules,
transfers, departure, merge, reclaim, assignment); an unknown key is shown as it is.
"""
from __future__ import annotations

from typing import Optional

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.models.transfer import TRANSFER_TRIGGERS

EVENT_KIND_LABELS = {
    "created": _l("Customer created"), "assigned": _l("Assigned"), "claimed": _l("Claimed"),
    "released": _l("Released to pool"), "reclaimed": _l("Reclaimed"),
    "transferred": _l("Transferred"), "merged": _l("Merged"), "unmerged": _l("Merge undone"),
    "rule-assigned": _l("Assigned by rule"), "moved": _l("Moved to another pool"),
    "deleted": _l("Deleted"),
}
# app.services.departure.MODES
DEPARTURE_MODE_LABELS = {"rep": _l("to one rep"), "team": _l("evenly over a team"),
                         "rules": _l("through the assignment rules"),
                         "pool": _l("back to a pool")}
# app.services.reclaim RULE_NO_FOLLOWUP / RULE_NO_DEAL, app.services.assignment's even split
PLAIN_RULE_LABELS = {"no_followup": _l("Reclaim: no follow-up in time"),
                     "no_deal": _l("Reclaim: no deal in time"),
                     "even distribution": _l("Even distribution")}


def event_kind_label(kind: Optional[str]) -> str:
    return str(EVENT_KIND_LABELS.get(kind, kind or ""))


def rule_label(rule: Optional[str]) -> str:
    """'rule:上海客户归上海团队' -> 'Assignment rule: 上海客户归上海团队'; '' for none."""
    if not rule:
        return ""
    if rule in PLAIN_RULE_LABELS:
        return str(PLAIN_RULE_LABELS[rule])
    prefix, _sep, rest = rule.partition(":")
    if prefix == "rule" and rest:
        return _("Assignment rule: %(name)s", name=rest)
    if prefix == "transfer" and rest:
        return _("Transfer request (%(trigger)s)",
                 trigger=str(TRANSFER_TRIGGERS.get(rest, rest)))
    if prefix == "departure" and rest:
        return _("Departure handover (%(mode)s)",
                 mode=str(DEPARTURE_MODE_LABELS.get(rest, rest)))
    if prefix == "merge" and rest:
        return _("Merge #%(id)s", id=rest)
    if prefix == "unmerge" and rest:
        return _("Merge #%(id)s undone", id=rest)
    return rule
