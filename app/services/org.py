"""Departments (a tree with materialised paths) and users' employment status."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import func, select

from app.extensions import db
from app.models import Department, Ownership, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE, EMPLOYMENT_DEPARTED
from app.services import audit, ownership
from app.services.errors import Conflict, ValidationFailed


def compute_path(dept: Department) -> str:
    parent = dept.parent
    return f"{parent.path}{dept.id}/" if parent is not None else f"/{dept.id}/"


def check_parent(dept: Department, parent: Optional[Department]) -> None:
    """A department cannot sit under itself or one of its own sub-departments."""
    node = parent
    while node is not None:
        if dept.id is not None and node.id == dept.id:
            raise ValidationFailed({"parent": "上级部门不能是自己或自己的下级部门"})
        node = node.parent


def refresh_paths(dept: Department) -> None:
    """Recompute the path of `dept` and every department below it (after a move)."""
    dept.path = compute_path(dept)
    for child in db.session.execute(
            select(Department).where(Department.parent_id == dept.id)).scalars():
        refresh_paths(child)


def save_department(dept: Department, actor_id: Optional[int] = None) -> Department:
    """Insert or update a department built by a form, keeping the paths right."""
    if dept.id is None:
        dept.path = "/"
        db.session.add(dept)
    check_parent(dept, dept.parent)
    db.session.flush()
    refresh_paths(dept)
    audit.record(actor_id, "save", "department", dept.id,
                 {"name": (None, dept.name), "parent_id": (None, dept.parent_id)})
    db.session.commit()
    return dept


def create_department(name: str, parent: Optional[Department] = None,
                      manager: Optional[User] = None, actor_id: Optional[int] = None) -> Department:
    return save_department(Department(name=name, parent=parent, manager=manager), actor_id)


def ensure_can_deactivate(user: User) -> None:
    """The one rule for every path that deactivates a user (the user form's Active box, marking
    departed): no customer may stay with an inactive user, so one who still owns customers
    is refused until the departure handover has moved them.

    Takes the user's row lock first (the one claims and assignments take), so a customer
    cannot land on the user between the count and the commit; a refusal rolls the
    transaction back, releasing it."""
    ownership.lock_rep(user.id)
    held = db.session.execute(
        select(func.count()).select_from(Ownership).where(Ownership.owner_id == user.id)
    ).scalar_one()
    if held:
        refusal = Conflict(f"{user.display_name} 仍负责 {held} 个客户，请先办理离职交接",
                           code="has_customers", owned=held)
        db.session.rollback()
        raise refusal


def mark_departed(user_id: int, actor_id: Optional[int] = None) -> User:
    """Deactivate a departed user. Their customers must be handed over first."""
    user = db.session.get(User, user_id)
    ensure_can_deactivate(user)
    audit.record(actor_id, "depart", "user", user.id,
                 {"employment_status": (user.employment_status, EMPLOYMENT_DEPARTED)})
    user.employment_status = EMPLOYMENT_DEPARTED
    user.departed_at = utcnow()
    user.active = False
    db.session.commit()
    return user


def reinstate(user_id: int, actor_id: Optional[int] = None) -> User:
    user = db.session.get(User, user_id)
    audit.record(actor_id, "reinstate", "user", user.id,
                 {"employment_status": (user.employment_status, EMPLOYMENT_ACTIVE)})
    user.employment_status = EMPLOYMENT_ACTIVE
    user.departed_at = None
    user.active = True
    db.session.commit()
    return user


def active_sellers(within=None) -> list[User]:
    """Active reps and managers - the people customers can be given to - ordered by
    department and username; `within` (a SELECT of user ids) narrows them to a scope."""
    from app.security import ROLE_MANAGER, ROLE_REP, has_role

    q = select(User).where(User.active.is_(True), User.employment_status == EMPLOYMENT_ACTIVE)
    if within is not None:
        q = q.where(User.id.in_(within))
    users = db.session.execute(q.order_by(User.department_id, User.username)).scalars()
    return [u for u in users if has_role(u, ROLE_REP, ROLE_MANAGER)]
