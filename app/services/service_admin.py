"""The service desk's configuration (客户服务设置): the ticket category tree, service teams
and their agents, routing rules, the desk's settings (all but the working periods, which
app.services.work_calendar keeps), and dedicated service agents (专属客服) — set by hand, or
by the grade-A rule.

Who may change what: the category tree — admins; teams, routing rules and settings — admins
and service managers (a service manager only the teams they manage, and as members or lead
only itself, those reporting to it and agents of no other service manager: others_people); a customer's dedicated
agent — admins, back-office staff and the service managers of the agent's team. Every change
is audited in the same commit.
"""
from __future__ import annotations

import datetime as dt
import heapq
from typing import Any, Iterable, Optional

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError
from flask_appbuilder.security.sqla.models import Role, assoc_user_role

from app.extensions import db
from app.models import Customer, Ownership, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.models.service_desk import (LOW_SCORE_ACTIONS, TEAM_STRATEGIES, TICKET_PRIORITIES,
                                     CustomerServiceAgent, ServiceSettings, ServiceTeam,
                                     ServiceTeamMember, TicketCategory, TicketRoutingRule)
from app.security import (ROLE_ADMIN, ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER, ROLE_STAFF,
                          has_role, subordinate_ids)
from app.services import absences, audit, limits
from app.services.errors import (NO_SUCH_CUSTOMER, Conflict, NotFound, OutOfScope,
                                 PermissionDenied, ValidationFailed, tr)
from app.services.ids import MAX_PK, parse_pk
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import local_date

SERVICE_ROLES = (ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER)
NAME_MAX = 100
PROVINCE_MAX = 50
GRADES = ("A", "B", "C")
MAX_ATTACHMENT_MB = 100  # the largest upload limit the settings accept
MAX_TEAM_MEMBERS = 500
# Seeded at bootstrap: category names are data, kept in Chinese (admins rename them).
DEFAULT_CATEGORIES = (("咨询", False), ("故障", False), ("投诉", True), ("退换货", False),
                      ("建议", False))


# --- who ------------------------------------------------------------------------------------
def is_service_user(user: Optional[User]) -> bool:
    return has_role(user, *SERVICE_ROLES)


def may_administer(actor: Optional[User]) -> bool:
    """Teams, routing rules and the desk's settings: admins and service managers."""
    return has_role(actor, ROLE_ADMIN, ROLE_SERVICE_MANAGER)


def _require_admin(actor: Optional[User]) -> None:
    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only admins can change the ticket categories"))


def _require_desk_admin(actor: Optional[User]) -> None:
    if not may_administer(actor):
        raise PermissionDenied(tr("Only admins and service managers can change the service "
                                  "desk's teams, routing rules and settings"))


def service_user_ids_select():
    """SELECT of the active users holding a service role (客服 / 客服主管)."""
    return (select(assoc_user_role.c.user_id)
            .join(Role, Role.id == assoc_user_role.c.role_id)
            .join(User, User.id == assoc_user_role.c.user_id)
            .where(Role.name.in_(SERVICE_ROLES), User.active.is_(True),
                   User.employment_status == EMPLOYMENT_ACTIVE))


def active_service_users() -> list[User]:
    """The pickers' choices for members, leads, managers and dedicated agents."""
    return list(db.session.execute(select(User).where(User.id.in_(service_user_ids_select()))
                                   .order_by(User.username)).scalars())


# --- small checks ---------------------------------------------------------------------------
def _name(data: dict, errors: dict, field: str = "name", required: bool = True) -> Optional[str]:
    value = data.get(field)
    if value is not None and not isinstance(value, str):
        errors[field] = tr("Must be text")
        return None
    value = (value or "").strip()
    if is_unclean(value):
        errors[field] = f"{field} {UNCLEAN_MESSAGE}"
        return None
    if not value:
        if required:
            errors[field] = tr("Required")
        return None
    limits.check_length(errors, field, value, NAME_MAX)
    return value


def _ref_id(value: Any, field: str, errors: dict) -> Optional[int]:
    """An optional id (an object with .id, a number, or digits); None for empty."""
    if value in (None, "", "None", "__None"):
        return None
    if hasattr(value, "id"):
        return value.id
    number = parse_pk(value)
    if number is None:
        errors[field] = tr("%(field)s must be an integer from 1 to %(max)s", field=field,
                           max=MAX_PK)
    return number


def _service_user(user_id: Optional[int], field: str, errors: dict) -> Optional[User]:
    if user_id is None:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.employment_status != EMPLOYMENT_ACTIVE \
            or not is_service_user(user):
        errors[field] = tr("%(name)s is not an active service agent or service manager",
                           name=user.display_name if user is not None else user_id)
        return None
    return user


def _changes(row: Any, values: dict) -> dict:
    return audit.diff(row, values) if row is not None else {k: (None, v) for k, v in values.items()}


def _fail(errors: dict) -> None:
    if errors:
        raise ValidationFailed(errors)


# --- the category tree ----------------------------------------------------------------------
def category_path(category: TicketCategory) -> str:
    parent = db.session.get(TicketCategory, category.parent_id) if category.parent_id else None
    return f"{parent.path}{category.id}/" if parent is not None else f"/{category.id}/"


def _refresh_paths(category: TicketCategory) -> None:
    """The path of `category` and of everything below it (after a move)."""
    category.path = category_path(category)
    db.session.flush()
    for child in db.session.execute(select(TicketCategory).where(
            TicketCategory.parent_id == category.id)).scalars():
        _refresh_paths(child)


def subtree_clause(category_id: int, column=TicketCategory.id):
    """A clause: `column` (a category id) is `category_id` or below it (one LIKE on path)."""
    path = select(TicketCategory.path).where(TicketCategory.id == category_id).scalar_subquery()
    below = select(TicketCategory.id).where(TicketCategory.path.startswith(path,
                                                                            autoescape=False))
    return column.in_(below)


def _category_values(data: dict, category: Optional[TicketCategory]) -> dict:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if category is None or "name" in data:
        values["name"] = _name(data, errors)
    if "parent" in data or "parent_id" in data:
        values["parent_id"] = _ref_id(data.get("parent_id", data.get("parent")), "parent",
                                      errors)
    for flag in ("is_complaint", "active"):
        if flag in data:
            values[flag] = bool(data[flag])
    if data.get("position") not in (None, ""):
        try:
            values["position"] = int(data["position"])
            if not 0 <= values["position"] <= 100000:
                raise ValueError
        except (TypeError, ValueError):
            errors["position"] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                                    field="position", min=0, max=100000)
    _fail(errors)
    if values.get("name") and db.session.execute(select(TicketCategory.id).where(
            TicketCategory.name == values["name"],
            TicketCategory.id != (category.id if category else 0))).first() is not None:
        errors["name"] = tr("A category named 『%(name)s』 already exists", name=values["name"])
    parent_id = values.get("parent_id", category.parent_id if category else None)
    if parent_id is not None:
        parent = db.session.get(TicketCategory, parent_id)
        if parent is None:
            errors["parent"] = tr("The parent category does not exist")
        elif category is not None and category.id is not None and (
                parent.id == category.id or parent.path.startswith(category.path)):
            errors["parent"] = tr("A category cannot sit under itself or one of its "
                                  "sub-categories")
        elif not parent.active and values.get("active", category.active if category else True):
            errors["parent"] = tr("The parent category 『%(name)s』 is inactive",
                                  name=parent.name)
    _fail(errors)
    return values


def _commit_unique(field: str, message: str) -> None:
    """Commit; a name taken at the same moment by another request (the unique index) is the
    same refusal as the look-up's."""
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ValidationFailed({field: message})


def create_category(actor: User, data: dict) -> TicketCategory:
    _require_admin(actor)
    values = _category_values(data, None)
    category = TicketCategory(path="/", **values)
    db.session.add(category)
    db.session.flush()
    _refresh_paths(category)
    audit.record(actor.id, "create", "ticket_category", category.id, _changes(None, values))
    _commit_unique("name", tr("A category named 『%(name)s』 already exists",
                              name=values["name"]))
    return category


def _get(model, pk: Any, message: str):
    number = parse_pk(pk)
    row = db.session.get(model, number) if number is not None else None
    if row is None:
        raise NotFound(message)
    return row


def update_category(actor: User, category_id: Any, data: dict) -> TicketCategory:
    """Rename, move (the paths below follow), mark complaint, reorder, (de)activate.
    Deactivating a category deactivates everything below it: no new ticket can take them."""
    _require_admin(actor)
    category = _get(TicketCategory, category_id, tr("The category does not exist"))
    values = _category_values(data, category)
    changes = _changes(category, values)
    moved = "parent_id" in changes
    for key, value in values.items():
        setattr(category, key, value)
    if moved:
        _refresh_paths(category)
    if values.get("active") is False:
        below = db.session.execute(select(TicketCategory).where(
            TicketCategory.path.startswith(category.path, autoescape=True),
            TicketCategory.id != category.id, TicketCategory.active.is_(True))).scalars().all()
        for child in below:
            child.active = False
            audit.record(actor.id, "update", "ticket_category", child.id,
                         {"active": (True, False)})
    if changes:
        audit.record(actor.id, "update", "ticket_category", category.id, changes)
    _commit_unique("name", tr("A category named 『%(name)s』 already exists",
                              name=category.name))
    return category


def deactivate_category(actor: User, category_id: Any) -> TicketCategory:
    return update_category(actor, category_id, {"active": False})


def ensure_categories() -> None:
    """Seed 咨询, 故障, 投诉 (a complaint category), 退换货, 建议 once: only into an empty tree,
    so categories admins renamed or removed stay as they left them."""
    if db.session.execute(select(TicketCategory.id).limit(1)).first() is not None:
        return
    for position, (name, complaint) in enumerate(DEFAULT_CATEGORIES, start=1):
        category = TicketCategory(name=name, is_complaint=complaint, position=position * 10,
                                  path="/")
        db.session.add(category)
        db.session.flush()
        category.path = f"/{category.id}/"
    db.session.flush()


def category_choices(active_only: bool = True) -> list[tuple[int, str]]:
    """(id, "故障 / 网络") in tree order, for pickers."""
    q = select(TicketCategory)
    if active_only:
        q = q.where(TicketCategory.active.is_(True))
    rows = list(db.session.execute(q).scalars())
    names = {c.id: c.name for c in db.session.execute(select(TicketCategory)).scalars()}

    def ids(c):
        return [int(p) for p in c.path.strip("/").split("/") if p]

    rows.sort(key=lambda c: [(names.get(i, ""), i) for i in ids(c)])
    return [(c.id, " / ".join(names.get(i, "?") for i in ids(c))) for c in rows]


# --- teams ----------------------------------------------------------------------------------
def may_manage_team(actor: Optional[User], team: Optional[ServiceTeam]) -> bool:
    """Admins any team; a service manager the teams they manage (and new ones)."""
    if has_role(actor, ROLE_ADMIN):
        return True
    if not has_role(actor, ROLE_SERVICE_MANAGER):
        return False
    return team is None or team.manager_id == actor.id


def _team_values(actor: User, data: dict, team: Optional[ServiceTeam]
                 ) -> tuple[dict, Optional[list[int]]]:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if team is None or "name" in data:
        values["name"] = _name(data, errors)
    for field in ("lead", "manager"):
        key = f"{field}_id"
        if key in data or field in data:
            values[key] = _ref_id(data.get(key, data.get(field)), field, errors)
            _service_user(values[key], field, errors)
    if "strategy" in data or team is None:
        values["strategy"] = data.get("strategy") or "round_robin"
        if values["strategy"] not in TEAM_STRATEGIES:
            errors["strategy"] = tr("The strategy is round robin or fewest open tickets")
    if "active" in data:
        values["active"] = bool(data["active"])
    members = None
    if "members" in data or "member_ids" in data:
        raw = data.get("member_ids", data.get("members")) or []
        if isinstance(raw, (str, bytes, dict)):
            raw = [raw]
        members = []
        for item in raw:
            number = _ref_id(item, "members", errors)
            if number is not None and number not in members:
                members.append(number)
        if len(members) > MAX_TEAM_MEMBERS:
            errors["members"] = tr("A team has at most %(limit)s members", limit=MAX_TEAM_MEMBERS)
        elif "members" not in errors:
            wrong = [str(u.display_name) for u in db.session.execute(
                select(User).where(User.id.in_(members))).scalars()
                if not (u.active and u.employment_status == EMPLOYMENT_ACTIVE
                        and is_service_user(u))]
            known = set(db.session.execute(select(User.id).where(User.id.in_(members))).scalars())
            wrong += [str(i) for i in members if i not in known]
            if wrong:
                errors["members"] = tr("Only active service agents and service managers can be "
                                       "members: %(names)s", names="、".join(wrong))
    _fail(errors)
    if not has_role(actor, ROLE_ADMIN):
        current = set(team_member_ids(team.id)) if team is not None else set()
        taken = others_people(actor, [*(m for m in members or () if m not in current),
                                      *([values["lead_id"]] if values.get("lead_id") and (
                                          team is None or values["lead_id"] != team.lead_id)
                                        else [])])
        if taken:
            errors["lead" if set(taken) == {values.get("lead_id")} else "members"] = tr(
                "%(names)s belong to another service manager (they report to one, or serve "
                "in one's team): an admin can add them", names="、".join(
                    str(u.display_name) for u in taken.values()))
    _fail(errors)
    if values.get("name") and db.session.execute(select(ServiceTeam.id).where(
            ServiceTeam.name == values["name"],
            ServiceTeam.id != (team.id if team else 0))).first() is not None:
        errors["name"] = tr("A team named 『%(name)s』 already exists", name=values["name"])
    if not has_role(actor, ROLE_ADMIN):
        manager = values.get("manager_id", team.manager_id if team else None)
        if manager != actor.id:
            errors["manager"] = tr("A service manager keeps themselves as the manager of "
                                   "their teams")
    _fail(errors)
    return values, members


def others_people(actor: User, user_ids: Iterable[int]) -> dict[int, User]:
    """Of `user_ids`, those a service manager may not put into its teams: people of another
    service manager — reporting to one, or members of a team another manager manages. A
    manager adds itself, those reporting to it (directly or further down the reports-to
    chain admins keep) and free agents (no other service manager's); admins add anyone.
    A team a manager makes never reaches another manager's agents (nor, through the
    dedicated-agent and assignment rules that follow team membership, their work)."""
    wanted = sorted(set(user_ids) - {actor.id} - subordinate_ids(actor.id))
    if not wanted:
        return {}
    managers = select(assoc_user_role.c.user_id).join(
        Role, Role.id == assoc_user_role.c.role_id).where(Role.name == ROLE_SERVICE_MANAGER)
    in_others_team = select(ServiceTeamMember.user_id).join(
        ServiceTeam, ServiceTeam.id == ServiceTeamMember.team_id).where(
        ServiceTeam.manager_id.is_not(None), ServiceTeam.manager_id != actor.id)
    rows = db.session.execute(select(User).where(User.id.in_(wanted), or_(
        User.id.in_(in_others_team),
        (User.superior_id != actor.id) & User.superior_id.in_(managers))).order_by(User.id))
    return {u.id: u for u in rows.scalars()}


def _set_members(actor: User, team: ServiceTeam, member_ids: list[int]) -> None:
    current = set(db.session.execute(select(ServiceTeamMember.user_id).where(
        ServiceTeamMember.team_id == team.id)).scalars())
    wanted = set(member_ids)
    if current == wanted:
        return
    gone = current - wanted
    if gone:
        db.session.execute(delete(ServiceTeamMember).where(
            ServiceTeamMember.team_id == team.id, ServiceTeamMember.user_id.in_(sorted(gone))))
    for user_id in sorted(wanted - current):
        db.session.add(ServiceTeamMember(team_id=team.id, user_id=user_id))
    audit.record(actor.id, "update", "service_team", team.id,
                 {"members": (",".join(map(str, sorted(current))),
                              ",".join(map(str, sorted(wanted))))})


def create_team(actor: User, data: dict) -> ServiceTeam:
    """A service team; `members` / `member_ids`: its agents (active service users)."""
    _require_desk_admin(actor)
    data = dict(data)
    if not has_role(actor, ROLE_ADMIN) and not (data.get("manager_id") or data.get("manager")):
        data["manager_id"] = actor.id  # a service manager's new team is theirs
    try:
        values, members = _team_values(actor, data, None)
        team = ServiceTeam(**values)
        db.session.add(team)
        db.session.flush()
        audit.record(actor.id, "create", "service_team", team.id, _changes(None, values))
        if members:
            _set_members(actor, team, members)
    except Exception:
        db.session.rollback()
        raise
    _commit_unique("name", tr("A team named 『%(name)s』 already exists", name=values["name"]))
    return team


def _team_for(actor: User, team_id: Any) -> ServiceTeam:
    team = _get(ServiceTeam, team_id, tr("The service team does not exist"))
    if not may_manage_team(actor, team):
        if may_administer(actor):
            raise PermissionDenied(tr("A service manager can change only the teams they "
                                      "manage"))
        _require_desk_admin(actor)
    return team


def update_team(actor: User, team_id: Any, data: dict) -> ServiceTeam:
    team = _team_for(actor, team_id)
    try:
        values, members = _team_values(actor, data, team)
        changes = _changes(team, values)
        for key, value in values.items():
            setattr(team, key, value)
        if changes:
            audit.record(actor.id, "update", "service_team", team.id, changes)
        if members is not None:
            _set_members(actor, team, members)
    except Exception:
        db.session.rollback()
        raise
    _commit_unique("name", tr("A team named 『%(name)s』 already exists", name=team.name))
    return team


def set_members(actor: User, team_id: Any, member_ids: Iterable) -> ServiceTeam:
    return update_team(actor, team_id, {"member_ids": list(member_ids)})


def delete_team(actor: User, team_id: Any) -> None:
    """A team still named by a routing rule or a ticket is deactivated instead (refused, so
    the admin decides); an unused one goes."""
    team = _team_for(actor, team_id)
    from app.models.service_desk import Ticket

    used = db.session.execute(select(func.count()).select_from(Ticket).where(
        Ticket.team_id == team.id)).scalar_one()
    if used:
        raise Conflict(tr("The team 『%(name)s』 has %(n)s tickets: deactivate it instead",
                          name=team.name, n=used), code="team_in_use", tickets=used)
    audit.record(actor.id, "delete", "service_team", team.id, {"name": (team.name, None)})
    db.session.delete(team)
    db.session.commit()


def team_member_ids(team_id: int) -> list[int]:
    return list(db.session.execute(select(ServiceTeamMember.user_id).where(
        ServiceTeamMember.team_id == team_id).order_by(ServiceTeamMember.user_id)).scalars())


def present_member_ids(team_id: int, day: dt.date) -> list[int]:
    """The team's members who can take a ticket on business date `day`: active, employed,
    holding a service role, not on leave — ordered by id (round robin walks this order)."""
    away = absences.absent_user_ids(day)
    ids = db.session.execute(select(ServiceTeamMember.user_id).where(
        ServiceTeamMember.team_id == team_id,
        ServiceTeamMember.user_id.in_(service_user_ids_select()))
        .order_by(ServiceTeamMember.user_id)).scalars()
    return [i for i in ids if i not in away]


def managed_team_ids(actor: User) -> set[int]:
    return set(db.session.execute(select(ServiceTeam.id).where(
        ServiceTeam.manager_id == actor.id)).scalars())


# --- routing rules --------------------------------------------------------------------------
def _rule_values(data: dict, rule: Optional[TicketRoutingRule]) -> dict:
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    if rule is None or "name" in data:
        values["name"] = _name(data, errors)
    if data.get("position") not in (None, ""):
        try:
            values["position"] = int(data["position"])
            if not 0 <= values["position"] <= 100000:
                raise ValueError
        except (TypeError, ValueError):
            errors["position"] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                                    field="position", min=0, max=100000)
    if "active" in data:
        values["active"] = bool(data["active"])
    if "category" in data or "category_id" in data:
        values["category_id"] = _ref_id(data.get("category_id", data.get("category")),
                                        "category", errors)
        if values["category_id"] is not None and \
                db.session.get(TicketCategory, values["category_id"]) is None:
            errors["category"] = tr("The category does not exist")
    if "priority" in data:
        values["priority"] = data["priority"] or None
        if values["priority"] is not None and values["priority"] not in TICKET_PRIORITIES:
            errors["priority"] = tr("The priority is one of P1, P2, P3, P4 (or any)")
    if "grade" in data:
        values["grade"] = data["grade"] or None
        if values["grade"] is not None and values["grade"] not in GRADES:
            errors["grade"] = tr("The grade can only be A, B, C or any")
    if "province" in data:
        province = data["province"]
        if province is not None and not isinstance(province, str):
            errors["province"] = tr("Must be text")
        elif is_unclean(province):
            errors["province"] = f"province {UNCLEAN_MESSAGE}"
        else:
            values["province"] = (province or "").strip() or None
            limits.check_length(errors, "province", values["province"], PROVINCE_MAX)
    if rule is None or "team" in data or "team_id" in data:
        values["team_id"] = _ref_id(data.get("team_id", data.get("team")), "team", errors)
        if "team" not in errors:
            team = db.session.get(ServiceTeam, values["team_id"]) if values["team_id"] else None
            if team is None:
                errors["team"] = tr("Select the team the rule sends tickets to")
            elif not team.active:
                errors["team"] = tr("The team 『%(name)s』 is inactive", name=team.name)
    _fail(errors)
    if values.get("name") and db.session.execute(select(TicketRoutingRule.id).where(
            TicketRoutingRule.name == values["name"],
            TicketRoutingRule.id != (rule.id if rule else 0))).first() is not None:
        raise ValidationFailed({"name": tr("A routing rule named 『%(name)s』 already exists",
                                           name=values["name"])})
    return values


def create_rule(actor: User, data: dict) -> TicketRoutingRule:
    _require_desk_admin(actor)
    values = _rule_values(data, None)
    rule = TicketRoutingRule(**values)
    db.session.add(rule)
    db.session.flush()
    audit.record(actor.id, "create", "ticket_routing_rule", rule.id, _changes(None, values))
    _commit_unique("name", tr("A routing rule named 『%(name)s』 already exists",
                              name=values["name"]))
    return rule


def update_rule(actor: User, rule_id: Any, data: dict) -> TicketRoutingRule:
    _require_desk_admin(actor)
    rule = _get(TicketRoutingRule, rule_id, tr("The routing rule does not exist"))
    values = _rule_values(data, rule)
    changes = _changes(rule, values)
    for key, value in values.items():
        setattr(rule, key, value)
    if changes:
        audit.record(actor.id, "update", "ticket_routing_rule", rule.id, changes)
    _commit_unique("name", tr("A routing rule named 『%(name)s』 already exists",
                              name=rule.name))
    return rule


def delete_rule(actor: User, rule_id: Any) -> None:
    _require_desk_admin(actor)
    rule = _get(TicketRoutingRule, rule_id, tr("The routing rule does not exist"))
    audit.record(actor.id, "delete", "ticket_routing_rule", rule.id, {"name": (rule.name, None)})
    db.session.delete(rule)
    db.session.commit()


# --- settings -------------------------------------------------------------------------------
SETTINGS_FIELDS = ("satisfaction_survey_id", "low_score_threshold", "low_score_action",
                   "dedicated_team_id", "default_team_id", "max_attachment_mb")


def settings() -> ServiceSettings:
    """The one settings row (created with the defaults when missing; flushed, not
    committed)."""
    row = db.session.execute(select(ServiceSettings).order_by(ServiceSettings.id)
                             .limit(1)).scalars().first()
    if row is None:
        row = ServiceSettings()
        db.session.add(row)
        db.session.flush()
    return row


def _int_in(data: dict, field: str, low: int, high: int, errors: dict) -> Optional[int]:
    value = data.get(field)
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(value)
        if not low <= number <= high:
            raise ValueError
    except (TypeError, ValueError):
        errors[field] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                           field=field, min=low, max=high)
        return None
    return number


def update_settings(actor: User, data: dict) -> ServiceSettings:
    """The desk's settings: the satisfaction survey, the low score (≤ threshold, 1–4) and
    what it does, the dedicated agents' team, the default team, the attachment size limit."""
    _require_desk_admin(actor)
    from app.models import Survey

    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for field, model in (("satisfaction_survey_id", Survey), ("dedicated_team_id", ServiceTeam),
                         ("default_team_id", ServiceTeam)):
        name = field[:-3]
        if field in data or name in data:
            values[field] = _ref_id(data.get(field, data.get(name)), field, errors)
            if values[field] is not None and field not in errors:
                row = db.session.get(model, values[field])
                if row is None:
                    errors[field] = tr("The survey does not exist") if model is Survey else \
                        tr("The service team does not exist")
                elif model is ServiceTeam and not row.active:
                    errors[field] = tr("The team 『%(name)s』 is inactive", name=row.name)
    if "low_score_threshold" in data:
        values["low_score_threshold"] = _int_in(data, "low_score_threshold", 1, 4, errors)
    if "low_score_action" in data:
        values["low_score_action"] = data["low_score_action"]
        if values["low_score_action"] not in LOW_SCORE_ACTIONS:
            errors["low_score_action"] = tr("A low score reopens the ticket or makes a task for "
                                            "the owner")
    if "max_attachment_mb" in data:
        values["max_attachment_mb"] = _int_in(data, "max_attachment_mb", 1, MAX_ATTACHMENT_MB,
                                              errors)
    _fail(errors)
    row = settings()
    changes = _changes(row, values)
    for key, value in values.items():
        setattr(row, key, value)
    if changes:
        audit.record(actor.id, "update", "service_settings", row.id, changes)
    db.session.commit()
    return row


def ensure_defaults() -> None:
    """Bootstrap: the settings row and the default categories (idempotent)."""
    settings()
    ensure_categories()


# --- dedicated agents (专属客服) --------------------------------------------------------------
def dedicated_agent_of(customer_id: int) -> Optional[int]:
    return db.session.execute(select(CustomerServiceAgent.agent_id).where(
        CustomerServiceAgent.customer_id == customer_id)).scalar_one_or_none()


def dedicated_row(customer_id: int) -> Optional[CustomerServiceAgent]:
    return db.session.get(CustomerServiceAgent, customer_id)


def may_set_dedicated(actor: Optional[User], agent_id: Optional[int] = None) -> bool:
    """Admins and back-office staff; service managers for agents of the teams they manage
    (agent_id None: whether they could for some agent)."""
    if has_role(actor, ROLE_ADMIN, ROLE_STAFF):
        return True
    if not has_role(actor, ROLE_SERVICE_MANAGER):
        return False
    if agent_id is None:
        return True
    if agent_id == actor.id:
        return True
    return db.session.execute(select(ServiceTeamMember.id).join(
        ServiceTeam, ServiceTeam.id == ServiceTeamMember.team_id).where(
        ServiceTeam.manager_id == actor.id, ServiceTeamMember.user_id == agent_id)
        .limit(1)).first() is not None


def _customer_for(actor: User, customer_id: Any) -> Customer:
    from app.security import can_see_customer

    number = parse_pk(customer_id)
    customer = db.session.get(Customer, number) if number is not None else None
    # Service managers keep key accounts' agents for any customer (they hold no sales scope).
    if customer is None or not (
            has_role(actor, ROLE_SERVICE_MANAGER) or can_see_customer(actor, customer.id)):
        raise OutOfScope(tr(NO_SUCH_CUSTOMER))
    return customer


def set_dedicated_agent(actor: User, customer_id: Any, agent_id: Any) -> CustomerServiceAgent:
    """Make `agent_id` the customer's dedicated service agent (replacing any)."""
    if not may_set_dedicated(actor):
        raise PermissionDenied(tr("Only admins, back-office staff and service managers can set "
                                  "a customer's dedicated service agent"))
    customer = _customer_for(actor, customer_id)
    errors: dict[str, str] = {}
    number = _ref_id(agent_id, "agent", errors)
    if number is None and "agent" not in errors:
        errors["agent"] = tr("Select the dedicated service agent")
    agent = _service_user(number, "agent", errors) if not errors else None
    _fail(errors)
    if not may_set_dedicated(actor, agent.id):
        raise PermissionDenied(tr("A service manager can give customers only agents of the "
                                  "teams they manage"))
    row = db.session.get(CustomerServiceAgent, customer.id)
    old = row.agent_id if row is not None else None
    if old == agent.id:
        return row
    if row is not None and not may_set_dedicated(actor, old):
        raise PermissionDenied(tr("A service manager can give customers only agents of the "
                                  "teams they manage"))
    if row is None:
        row = CustomerServiceAgent(customer_id=customer.id)
        db.session.add(row)
    row.agent_id, row.source = agent.id, "manual"
    row.assigned_by_id, row.assigned_at = actor.id, utcnow()
    audit.record(actor.id, "update", "customer_service_agent", customer.id,
                 {"agent_id": (old, agent.id)})
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise Conflict(tr("Someone else just set this customer's dedicated agent; refresh and "
                          "try again"), code="dedicated_agent_changed")
    return row


def unset_dedicated_agent(actor: User, customer_id: Any) -> None:
    if not may_set_dedicated(actor):
        raise PermissionDenied(tr("Only admins, back-office staff and service managers can set "
                                  "a customer's dedicated service agent"))
    customer = _customer_for(actor, customer_id)
    row = db.session.get(CustomerServiceAgent, customer.id)
    if row is None:
        raise Conflict(tr("This customer has no dedicated service agent"),
                       code="no_dedicated_agent")
    if not may_set_dedicated(actor, row.agent_id):
        raise PermissionDenied(tr("A service manager can give customers only agents of the "
                                  "teams they manage"))
    audit.record(actor.id, "delete", "customer_service_agent", customer.id,
                 {"agent_id": (row.agent_id, None)})
    db.session.delete(row)
    db.session.commit()


def assign_grade_a(customer_ids: Optional[Iterable[int]] = None,
                   now: Optional[dt.datetime] = None) -> int:
    """The grade-A rule: every grade-A customer without a dedicated agent gets one from
    ServiceSettings.dedicated_team_id — the present member with the fewest dedicated
    customers (ties: the lowest id). Set-based and idempotent: it selects only customers
    still without one, so a second run (or one overlapping the first) adds nothing twice
    (the customer is the table's key). `customer_ids`: only these (a grade just changed).
    Returns how many were given an agent; commits."""
    team_id = db.session.execute(select(ServiceSettings.dedicated_team_id).order_by(
        ServiceSettings.id).limit(1)).scalar_one_or_none()
    if team_id is None:
        return 0
    day = local_date(now or utcnow())
    present = present_member_ids(team_id, day)
    if not present:
        return 0
    q = select(Ownership.customer_id).where(
        Ownership.grade == "A",
        ~Ownership.customer_id.in_(select(CustomerServiceAgent.customer_id)))
    if customer_ids is not None:
        ids = sorted({i for i in customer_ids if i})
        if not ids:
            return 0
        q = q.where(Ownership.customer_id.in_(ids))
    wanting = list(db.session.execute(q.order_by(Ownership.customer_id)).scalars())
    if not wanting:
        return 0
    loads = dict(db.session.execute(select(CustomerServiceAgent.agent_id, func.count())
                                    .where(CustomerServiceAgent.agent_id.in_(present))
                                    .group_by(CustomerServiceAgent.agent_id)).all())
    heap = [(loads.get(agent, 0), agent) for agent in present]
    heapq.heapify(heap)
    now = now or utcnow()
    rows = []
    for customer_id in wanting:
        load, agent = heapq.heappop(heap)
        rows.append({"customer_id": customer_id, "agent_id": agent, "source": "rule",
                     "assigned_at": now})
        heapq.heappush(heap, (load + 1, agent))
    try:
        for start in range(0, len(rows), 5000):
            db.session.execute(CustomerServiceAgent.__table__.insert(), rows[start:start + 5000])
        audit.record(None, "rule_assign", "customer_service_agent", None,
                     {"customers": (None, len(rows)), "team_id": (None, team_id)})
        db.session.commit()
    except IntegrityError:
        # An overlapping run (or a hand) gave some of them an agent first: theirs stands;
        # the next run picks up whoever is still without one.
        db.session.rollback()
        return 0
    return len(rows)
