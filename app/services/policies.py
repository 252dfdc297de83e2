"""Effective ownership policy for a user: user row > department chain > global default."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from sqlalchemy import select

from app.extensions import db
from app.models import Department, Policy, User
from app.models.policy import POLICY_FIELDS
from app.services.errors import ValidationFailed

# Seeded by `flask crm init` as the global row; admins edit it in the Policies form.
GLOBAL_DEFAULTS: dict[str, Any] = {
    "max_customers": 100,
    "count_won": False,
    "max_locked": 10,
    "daily_claim_limit": 20,
    "cooldown_days": 30,
    "reclaim_no_followup_days": 30,
    "reclaim_no_deal_days": 90,
    "warn_before_days": 3,
}


@dataclass(frozen=True)
class EffectiveValue:
    value: Any
    source: str  # "user", "department:<name>", "global", "built-in"


def global_policy() -> Optional[Policy]:
    return db.session.execute(select(Policy).where(Policy.scope == "global")).scalar_one_or_none()


def ensure_global_policy() -> Policy:
    """Create the global default row if it is missing (idempotent)."""
    policy = global_policy()
    if policy is None:
        policy = Policy(scope="global", **GLOBAL_DEFAULTS)
        db.session.add(policy)
        db.session.flush()
    return policy


def _department_chain(department_id: Optional[int]) -> list[Department]:
    """The user's department first, then its parents up to the root."""
    chain: list[Department] = []
    seen: set[int] = set()
    dept = db.session.get(Department, department_id) if department_id else None
    while dept is not None and dept.id not in seen:
        chain.append(dept)
        seen.add(dept.id)
        dept = dept.parent
    return chain


def effective_policy(user_id: int) -> dict[str, EffectiveValue]:
    """Every policy field with its value and where it comes from (most specific wins)."""
    user = db.session.get(User, user_id)
    layers: list[tuple[str, Optional[Policy]]] = []
    if user is not None:
        layers.append(("user", db.session.execute(
            select(Policy).where(Policy.scope == "user", Policy.user_id == user.id)
        ).scalar_one_or_none()))
        for dept in _department_chain(user.department_id):
            layers.append((f"department:{dept.name}", db.session.execute(
                select(Policy).where(Policy.scope == "department", Policy.department_id == dept.id)
            ).scalar_one_or_none()))
    layers.append(("global", global_policy()))
    result: dict[str, EffectiveValue] = {}
    for field in POLICY_FIELDS:
        for source, policy in layers:
            value = getattr(policy, field) if policy is not None else None
            if value is not None:
                result[field] = EffectiveValue(value, source)
                break
        else:
            result[field] = EffectiveValue(GLOBAL_DEFAULTS[field], "built-in")
    return result


def policy_value(user_id: int, field: str) -> Any:
    return effective_policy(user_id)[field].value


def validate_policy(policy: Policy) -> None:
    """The target matches the scope, and no number is negative; raises ValidationFailed."""
    errors: dict[str, str] = {}
    if policy.scope not in ("global", "department", "user"):
        errors["scope"] = "适用范围只能是 global、department 或 user"
    has_dept = policy.department_id is not None or policy.department is not None
    has_user = policy.user_id is not None or policy.user is not None
    if policy.scope == "department" and (not has_dept or has_user):
        errors["department"] = "部门策略须选择部门，且不选用户"
    if policy.scope == "user" and (not has_user or has_dept):
        errors["user"] = "用户策略须选择用户，且不选部门"
    if policy.scope == "global" and (has_user or has_dept):
        errors["scope"] = "全局策略不能指定部门或用户"
    for field in POLICY_FIELDS:
        value = getattr(policy, field)
        if field != "count_won" and value is not None and value < 0:
            errors[field] = "不能为负数"
    if errors:
        raise ValidationFailed(errors)
