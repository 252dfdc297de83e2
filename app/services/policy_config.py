"""Editing ownership policies (admins): the Policies form and the REST API both create, update
and delete through here. One policy per target (global, a department, a user), the global
default is never deleted, and every change is audited (who, old -> new) in its own commit."""
from __future__ import annotations

from typing import Any, Optional

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Department, Policy, User
from app.models.policy import POLICY_FIELDS, SEGMENT_CONDITIONS
from app.security import ROLE_ADMIN, has_role
from app.services import audit, policies, segments
from app.services.errors import (UNKNOWN_FIELD, NotFound, PermissionDenied, ValidationFailed,
                                 lazy_tr, tr)
from app.services.ids import MAX_PK, check_paging, parse_pk
from app.services.policies import validate_policy

EDITABLE = ("scope", "department_id", "user_id") + SEGMENT_CONDITIONS + POLICY_FIELDS
DUPLICATE = lazy_tr("This target already has a policy; change that one")


def _require_admin(actor: User) -> None:
    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only admins can change ownership policies"))


def _clean(data: dict[str, Any]) -> dict[str, Any]:
    """Known fields only, with their types checked; a null policy field inherits."""
    unknown = sorted(set(data) - set(EDITABLE))
    if unknown:
        raise ValidationFailed({k: UNKNOWN_FIELD for k in unknown})
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for key, value in data.items():
        if key == "scope":
            out[key] = value
        elif key in SEGMENT_CONDITIONS:
            # A condition is text; blank means "any" (no condition).
            if value is not None and not isinstance(value, str):
                errors[key] = tr("%(field)s must be text or null", field=key)
            elif isinstance(value, str) and ("\x00" in value or len(value) > 100):
                errors[key] = tr("%(field)s must be 1 to 100 characters", field=key)
            out[key] = value.strip() or None if isinstance(value, str) else None
        elif key == "count_won":
            if value is not None and not isinstance(value, bool):
                errors[key] = tr("count_won must be true, false or null")
            out[key] = value
        elif key in ("department_id", "user_id") and isinstance(value, int) \
                and not isinstance(value, bool) and parse_pk(value) is None:
            errors[key] = tr("%(field)s must be an integer from 1 to %(max)s", field=key,
                              max=MAX_PK)
        elif value is None or (isinstance(value, int) and not isinstance(value, bool)):
            out[key] = value
        else:
            errors[key] = tr("%(field)s must be an integer or null", field=key)
    if errors:
        raise ValidationFailed(errors)
    return out


def _check_targets(values: dict[str, Any]) -> None:
    if values.get("department_id") is not None and \
            db.session.get(Department, values["department_id"]) is None:
        raise ValidationFailed({"department_id": tr("The department does not exist")})
    if values.get("user_id") is not None and db.session.get(User, values["user_id"]) is None:
        raise ValidationFailed({"user_id": tr("The user does not exist")})


def _duplicate_of(scope: str, department_id: Optional[int], user_id: Optional[int],
                  key: str, policy_id: Optional[int]) -> Optional[int]:
    """Another row's id for the same target and segment (one policy per global / department /
    user and segment)."""
    q = select(Policy.id).where(Policy.scope == scope, Policy.segment_key == key,
                                Policy.department_id.is_(None) if department_id is None
                                else Policy.department_id == department_id,
                                Policy.user_id.is_(None) if user_id is None
                                else Policy.user_id == user_id)
    if policy_id is not None:
        q = q.where(Policy.id != policy_id)
    return db.session.execute(q).scalars().first()


def _save_unique(policy: Policy) -> None:
    """Refuse a second policy for the policy's target; flush, turning a lost race (the partial
    unique indexes) into the same refusal."""
    policy.segment_key = segments.segment_key(
        {c: getattr(policy, c) for c in SEGMENT_CONDITIONS})
    target = (policy.scope, policy.department_id, policy.user_id, policy.segment_key, policy.id)
    with db.session.no_autoflush:
        if _duplicate_of(*target) is not None:
            raise ValidationFailed({"scope": DUPLICATE})
    try:
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        if _duplicate_of(*target) is not None:
            raise ValidationFailed({"scope": DUPLICATE}) from None
        raise


def get_policy(policy_id: int) -> Policy:
    policy = db.session.get(Policy, policy_id)
    if policy is None:
        raise NotFound(tr("The policy does not exist"))
    return policy


def create_policy(actor: User, data: dict[str, Any]) -> Policy:
    _require_admin(actor)
    values = _clean(data)
    _check_targets(values)
    policy = Policy(**values)
    validate_policy(policy)
    try:
        db.session.add(policy)
        _save_unique(policy)
        audit.record(actor.id, "create", "policy", policy.id,
                     {k: (None, v) for k, v in values.items() if v is not None})
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return policy


def update_policy(actor: User, policy_id: int, data: dict[str, Any]) -> Policy:
    _require_admin(actor)
    policy = get_policy(policy_id)
    values = _clean(data)
    _check_targets(values)
    changes = audit.diff(policy, values)
    try:
        if policy.scope == "global" and values.get("scope", "global") != "global":
            raise ValidationFailed({"scope": tr("The global default policy cannot become a "
                                                 "department or user policy")})
        # The plain global policy is where every value ends up: it stays plain (a segment
        # would leave caps and limits to the built-in defaults).
        plain_global = policy.scope == "global" and not policy.segment_key
        for key, value in values.items():
            setattr(policy, key, value)
        validate_policy(policy)
        _save_unique(policy)
        if plain_global and policy.segment_key:
            field = next(c for c in SEGMENT_CONDITIONS if getattr(policy, c) is not None)
            raise ValidationFailed({field: tr(
                "The global default policy takes no segment conditions; add a new global "
                "policy for the segment")})
        audit.record(actor.id, "update", "policy", policy.id, changes)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return policy


def delete_policy(actor: User, policy_id: int) -> None:
    _require_admin(actor)
    policy = get_policy(policy_id)
    if policy.scope == "global":
        raise ValidationFailed({"scope": tr("The global default policy cannot be deleted, only "
                                          "changed")})
    audit.record(actor.id, "delete", "policy", policy.id,
                 {k: (getattr(policy, k), None) for k in EDITABLE
                  if getattr(policy, k) is not None})
    db.session.delete(policy)
    db.session.commit()


def effective_for(actor: User, user_id: int) -> dict:
    """A user's effective policy with sources, for users in the actor's scope (everyone for
    admins and auditors); NotFound otherwise, the same as for a missing user."""
    from app.security import ROLE_AUDITOR, Scope, scope_of, visible_owner_ids_select

    visible = has_role(actor, ROLE_ADMIN, ROLE_AUDITOR) or db.session.execute(
        visible_owner_ids_select(actor, scope_of(actor) or Scope.OWN)
        .where(User.id == user_id)).first() is not None
    if not visible or db.session.get(User, user_id) is None:
        raise NotFound(tr("The user does not exist or is outside your data scope"))
    out = {k: {"value": v.value, "source": v.source}
           for k, v in policies.effective_policy(user_id).items()}
    # The reclaim fields also list the segment policies that come before the plain value.
    for field, found in segments.segment_overrides(user_id).items():
        out[field]["segments"] = [{"segment": a.segment, "value": a.value, "source": a.source,
                                   "policy_id": a.policy_id} for a in found]
    return out


MAX_PAGE_SIZE = 500


def page_of_policies(page: Any = 0, page_size: Any = MAX_PAGE_SIZE) -> tuple[int, list[Policy]]:
    """(the number of policies, one page of them by scope then id); ValidationFailed naming
    a bad page or page size."""
    check_paging(page, page_size, MAX_PAGE_SIZE)
    total = db.session.execute(select(func.count()).select_from(Policy)).scalar_one()
    rows = db.session.execute(select(Policy).order_by(Policy.scope, Policy.id)
                              .offset(page * page_size).limit(page_size)).scalars().all()
    return total, list(rows)


def to_dict(policy: Policy) -> dict[str, Any]:
    return {"id": policy.id, **{k: getattr(policy, k) for k in EDITABLE}}


def policy_label(policy: Policy) -> str:
    """'Department: 华东销售部, segment: grade A, customers (#12)': how pages name a policy."""
    source = ("user" if policy.scope == "user" else "global" if policy.scope == "global"
              else f"department:{policy.department.name if policy.department else ''}")
    return f"{segments.source_label(source, segments.segment_text(policy))} (#{policy.id})"
