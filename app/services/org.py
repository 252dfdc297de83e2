"""Departments (a tree with materialised paths) and users' employment status."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Department, Ownership, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE, EMPLOYMENT_DEPARTED
from app.services import audit, ownership
from app.services.errors import Conflict, ValidationFailed, tr


def compute_path(dept: Department) -> str:
    parent = dept.parent
    return f"{parent.path}{dept.id}/" if parent is not None else f"/{dept.id}/"


def check_parent(dept: Department, parent: Optional[Department]) -> None:
    """A department cannot sit under itself or one of its own sub-departments."""
    node = parent
    while node is not None:
        if dept.id is not None and node.id == dept.id:
            raise ValidationFailed({"parent": tr("The parent department cannot be itself or one of "
                                                  "its sub-departments")})
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
        refusal = Conflict(tr("%(name)s still owns %(held)s customers; hand them over first",
                              name=user.display_name, held=held),
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

    # Roles in the same statement: has_role() on each row would otherwise load them one by
    # one (and selectinload would add a statement per 500 users).
    q = select(User).options(joinedload(User.roles)).where(
        User.active.is_(True), User.employment_status == EMPLOYMENT_ACTIVE)
    if within is not None:
        q = q.where(User.id.in_(within))
    users = db.session.execute(q.order_by(User.department_id, User.username)).unique().scalars()
    return [u for u in users if has_role(u, ROLE_REP, ROLE_MANAGER)]


@dataclass
class PickerGroup:
    """One department's block in a user picker. `label` is the department's path of names
    ("销售中心 / 华东大区"; None: users without a department); `path` is the materialised
    path, so "whole team" is this group and every group whose path starts with it."""

    department_id: Optional[int]
    label: Optional[str]
    path: str
    options: list[tuple[int, str]] = field(default_factory=list)


def picker_label(user: User, department: Optional[str]) -> str:
    """"王桂芳 (rep12 · 华东一部)": two people with one name differ by username and team."""
    if department:
        return f"{user.display_name} ({user.username} · {department})"
    return f"{user.display_name} ({user.username})"


def natural_key(text: Optional[str]) -> tuple:
    """"rep8" before "rep10": runs of digits compare as numbers (re.split with a group
    alternates text and digits, so the tuples compare position by position)."""
    parts = re.split(r"(\d+)", text or "")
    return tuple(int(p) if i % 2 else p.lower() for i, p in enumerate(parts))


def user_labels(user_ids: Iterable[int]) -> dict[int, tuple[tuple, str]]:
    """For a page listing users (a distribution preview): each user's picker label and the
    order to list them in, by department, then display name, then username naturally."""
    wanted = {i for i in user_ids if i}
    if not wanted:
        return {}
    rows = db.session.execute(select(User, Department.name).outerjoin(
        Department, Department.id == User.department_id).where(User.id.in_(wanted))).all()
    return {u.id: ((natural_key(dept), natural_key(u.display_name), natural_key(u.username)),
                   picker_label(u, dept)) for u, dept in rows}


def picker_groups(users: Iterable[User]) -> list[PickerGroup]:
    """The users a picker offers, grouped by department in tree order (a department before
    its sub-departments, siblings by id), users by username within a group (rep8 before
    rep10), then those with
    no department. Departments above a user's own get a group too (empty when nobody there
    may be picked), so their whole team can be chosen.

    Reads each user's department_id only and loads the departments in one statement: the
    number of statements does not grow with the number of users."""
    users = sorted(users, key=lambda u: natural_key(u.username))
    departments = {d.id: d for d in db.session.execute(select(Department)).scalars()}

    def ancestry(dept_id: int) -> list[int]:
        path = [int(part) for part in departments[dept_id].path.strip("/").split("/") if part]
        return path if path and path[-1] == dept_id else [dept_id]

    groups: dict[int, PickerGroup] = {}
    loose = PickerGroup(None, None, "")
    for user in users:
        dept_id = user.department_id if user.department_id in departments else None
        if dept_id is None:
            loose.options.append((user.id, picker_label(user, None)))
            continue
        for above in ancestry(dept_id):
            if above not in groups and above in departments:
                names = " / ".join(departments[i].name for i in ancestry(above)
                                   if i in departments)
                groups[above] = PickerGroup(above, names, departments[above].path)
        groups[dept_id].options.append((user.id, picker_label(user, departments[dept_id].name)))
    ordered = sorted(groups.values(), key=lambda g: ancestry(g.department_id))
    return ordered + ([loose] if loose.options else [])
