"""SLA policies (SLA 策略): first-response and resolution targets per priority and / or customer
grade, in business time or around the clock. Admins and service managers edit them; service
agents read them. The choice of the policy for a ticket is app.services.sla.choose_policy.

A changed policy applies to tickets whose clocks start (or restart) afterwards; the due
times of running tickets are not moved (they were promised under the old targets)."""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import func, select

from app.extensions import db
from app.models import User
from app.models.service_desk import SLA_CLOCKS, TICKET_PRIORITIES, SlaPolicy, Ticket
from app.security import ROLE_ADMIN, ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER, has_role
from app.services import audit
from app.services.errors import (N_, UNKNOWN_FIELD, NotFound, PermissionDenied,
                                 ValidationFailed, tr)
from app.services.ids import whole_number_text as _whole, parse_id
from app.services.saving import commit_unique
from app.services.text import UNCLEAN_MESSAGE, is_unclean

NAME = 100
GRADES = ("A", "B", "C")
MAX_MINUTES = 60 * 24 * 365  # a year: beyond it a target means nothing
FIELDS = ("name", "position", "active", "priority", "grade", "first_response_minutes",
          "resolution_minutes", "clock", "warn_before_minutes", "escalate_after_minutes")
NO_SUCH_POLICY = N_("The SLA policy does not exist")  # msgid
EDITORS_ONLY = N_("Only admins and service managers change SLA policies and the work calendar")


def may_edit(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_SERVICE_MANAGER)


def require_editor(actor: Optional[User]) -> None:
    """Admins and service managers edit SLA policies, the work calendar and working hours."""
    if not may_edit(actor):
        raise PermissionDenied(tr(EDITORS_ONLY))


def require_reader(actor: Optional[User]) -> None:
    if not (may_edit(actor) or has_role(actor, ROLE_SERVICE_AGENT)):
        raise PermissionDenied(tr("Only the service desk reads the SLA policies"))


def _minutes(data: dict, field: str, errors: dict, minimum: int, default=None) -> Optional[int]:
    value = data.get(field, default)
    if isinstance(value, str) and _whole(value, signed=True):
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) \
            or not minimum <= value <= MAX_MINUTES:
        errors[field] = tr("Give whole minutes from %(low)d to %(high)d",
                           low=minimum, high=MAX_MINUTES)
        return None
    return value


def clean(data: Any, partial: bool = False) -> dict[str, Any]:
    """The fields of a policy, checked: every problem named by its field at once."""
    if not isinstance(data, dict):
        raise ValidationFailed({"name": tr("Give the policy's fields")})
    errors: dict[str, str] = {}
    out: dict[str, Any] = {}
    unknown = sorted(set(data) - set(FIELDS) - {"id"})
    for field in unknown:
        errors[field] = str(UNKNOWN_FIELD)

    def wanted(field: str) -> bool:
        return field in data or not partial

    if wanted("name"):
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            errors["name"] = tr("Give the policy a name")
        elif len(name.strip()) > NAME or is_unclean(name):
            errors["name"] = (tr("At most %(n)d characters", n=NAME) if len(name.strip()) > NAME
                              else str(UNCLEAN_MESSAGE))
        else:
            out["name"] = name.strip()
    if wanted("position"):
        value = data.get("position", 100)
        if isinstance(value, str) and _whole(value, signed=True):
            value = int(value.strip())
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
            errors["position"] = tr("Give a whole number from %(low)d to %(high)d",
                                    low=0, high=1_000_000)
        else:
            out["position"] = value
    if wanted("active"):
        value = data.get("active", True)
        if not isinstance(value, bool):
            errors["active"] = tr("Give true or false")
        else:
            out["active"] = value
    for field, choices in (("priority", tuple(TICKET_PRIORITIES)), ("grade", GRADES)):
        if wanted(field):
            value = data.get(field) or None
            if value is not None and value not in choices:
                errors[field] = tr("Give one of %(choices)s, or nothing for any",
                                   choices=", ".join(choices))
            else:
                out[field] = value
    if wanted("clock"):
        value = data.get("clock", "business")
        if value not in SLA_CLOCKS:
            errors["clock"] = tr("Give one of %(choices)s", choices=", ".join(SLA_CLOCKS))
        else:
            out["clock"] = value
    for field, minimum, default in (("first_response_minutes", 1, None),
                                    ("resolution_minutes", 1, None),
                                    ("warn_before_minutes", 0, 60),
                                    ("escalate_after_minutes", 0, 120)):
        if wanted(field):
            value = _minutes(data, field, errors, minimum, default)
            if value is not None:
                out[field] = value
    if errors:
        raise ValidationFailed(errors)
    return out


def _check_targets(values: dict) -> None:
    """The resolution target cannot come before the first response."""
    response, resolution = values.get("first_response_minutes"), values.get("resolution_minutes")
    if response is not None and resolution is not None and resolution < response:
        raise ValidationFailed({"resolution_minutes": tr(
            "The resolution target (%(resolution)d minutes) is shorter than the first-response "
            "target (%(response)d minutes)", resolution=resolution, response=response)})


def _name_taken(name: str) -> str:
    return tr("An SLA policy named \"%(name)s\" exists already", name=name)


def get_policy(actor: Optional[User], policy_id: Any) -> SlaPolicy:
    require_reader(actor)
    row = db.session.get(SlaPolicy, parse_id(policy_id, "id"))
    if row is None:
        raise NotFound(tr(NO_SUCH_POLICY))
    return row


def create(actor: User, data: Any) -> SlaPolicy:
    require_editor(actor)
    values = clean(data)
    _check_targets(values)
    if db.session.execute(select(SlaPolicy.id).where(SlaPolicy.name == values["name"])).first():
        raise ValidationFailed({"name": _name_taken(values["name"])})
    row = SlaPolicy(**values)
    return commit_unique(lambda: (audit.record_new(actor.id, "sla_policy", row), row)[1],
                         "name", _name_taken(values["name"]))


def update(actor: User, policy_id: Any, data: Any) -> SlaPolicy:
    require_editor(actor)
    row = get_policy(actor, policy_id)
    values = clean(data, partial=True)
    merged = {f: values.get(f, getattr(row, f)) for f in FIELDS}
    _check_targets(merged)
    if "name" in values and db.session.execute(select(SlaPolicy.id).where(
            SlaPolicy.name == values["name"], SlaPolicy.id != row.id)).first():
        raise ValidationFailed({"name": _name_taken(values["name"])})
    changes = audit.diff(row, values)
    for key, (_old, new) in changes.items():
        setattr(row, key, new)
    if changes:
        audit.record(actor.id, "update", "sla_policy", row.id, changes)
    return commit_unique(lambda: row, "name", _name_taken(values.get("name", row.name)))


def delete(actor: User, policy_id: Any) -> None:
    """Remove a policy. Tickets that had it keep their due times (their policy link is
    emptied by the foreign key), so a policy in use is better deactivated: said in the
    audit row's count."""
    require_editor(actor)
    row = get_policy(actor, policy_id)
    used = db.session.execute(select(func.count()).select_from(Ticket).where(
        Ticket.sla_policy_id == row.id)).scalar_one()
    audit.record(actor.id, "delete", "sla_policy", row.id,
                 {"name": (row.name, None), "tickets": (used, None)})
    db.session.delete(row)
    db.session.commit()


def list_policies(actor: Optional[User], after: Optional[int] = None,
                  limit: int = 50) -> list[SlaPolicy]:
    """Policies by id (a keyset page: those after id `after`)."""
    require_reader(actor)
    q = select(SlaPolicy).order_by(SlaPolicy.id).limit(limit)
    if after is not None:
        q = q.where(SlaPolicy.id > after)
    return list(db.session.execute(q).scalars())


def to_dict(row: SlaPolicy) -> dict:
    return {f: getattr(row, f) for f in ("id",) + FIELDS}
