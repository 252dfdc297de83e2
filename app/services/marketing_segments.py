"""Segments (客户分群): saved filters over customers and leads, evaluated in SQL in their
creator's data scope (issue 16 section 2).

`validate_criteria` cleans the criteria JSON; `members_select(segment)` is ONE SELECT of
(customer_id, lead_id) rows (one of them NULL) that campaigns freeze with INSERT ... SELECT,
with no loop over rows; `count` and `preview` read it.

Decisions where the issue is silent:
- Scope is the creator's, whoever looks: a rep's segment holds the customers and leads they
  own, a manager's their department tree's, marketing's and admins' everyone's. A deleted or
  deactivated creator's segment has no members (it speaks for nobody any more). Read-only
  shares are not "their records": never members.
- Pool records only when include_pool: every pool for creators who see everything, the pools
  the creator belongs to otherwise.
- won: a customer with a won deal (customer_ownership.won). A converted lead is never a member
  (its customer is: one person, one message), so won=yes matches no lead and won=no all.
- grades and categories exist for customers only: a segment of leads refuses them; in a
  segment of both, leads never match them.
- min_days_since_followup counts from the holder's last follow-up (customer_ownership /
  lead_ownership.last_followup_at); never followed up matches.
- Invalid leads (无效线索) are never members: nobody markets to a lead judged junk.
- Converted leads (已转化) are never members: the customer they became stands for them.
- tag_ids match any of the tags on the record itself (a customer's contacts' tags are theirs).
"""
from __future__ import annotations

import datetime as dt
import json
from typing import Any, Optional

from sqlalchemy import Integer, cast, exists, false, func, null, or_, select, true, union_all

from app.extensions import db
from app.models import Customer, Lead, LeadOwnership, Ownership, User
from app.models.customer import utcnow
from app.models.marketing import RecordTag, Segment, SEGMENT_RECORD_TYPES
from app.security import Scope, scope_of, visible_owner_ids
from app.services.errors import N_, ValidationFailed, tr
from app.services.saving import commit_unique
from app.services.text import UNCLEAN_MESSAGE, is_unclean

GRADES = ("A", "B", "C")
CATEGORIES = ("potential", "active", "silent")  # app.services.classification's values
# criteria key -> the longest value (characters) of its strings, from the columns compared
TEXT_LISTS = {"provinces": 50, "cities": 50, "industries": 100, "sources": 100}
MAX_ITEMS = 200        # values in one list (a region picker's whole country fits)
MAX_TAGS = 50
MAX_DAYS = 36_500      # a century without a follow-up
CRITERIA_KEYS = tuple(TEXT_LISTS) + ("grades", "categories", "tag_ids",
                                     "min_days_since_followup", "won")
CUSTOMER_ONLY = ("grades", "categories")
PREVIEW_MAX = 100

_NOT_A_LIST = N_("Must be a list")
_TOO_MANY = N_("At most %(limit)s values")


def _text_list(value: Any, limit: int) -> list[str]:
    """Distinct, stripped, non-empty strings of at most `limit` characters, in order."""
    if not isinstance(value, list):
        raise ValueError(tr(_NOT_A_LIST))
    if len(value) > MAX_ITEMS:
        raise ValueError(tr(_TOO_MANY, limit=MAX_ITEMS))
    out: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(tr("Must be text"))
        if is_unclean(item):
            raise ValueError(str(UNCLEAN_MESSAGE))
        item = item.strip()
        if len(item) > limit:
            raise ValueError(tr("Cannot exceed %(limit)s characters", limit=limit))
        if item and item not in out:
            out.append(item)
    return out


def _choice_list(value: Any, choices: tuple[str, ...], message: str) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(tr(_NOT_A_LIST))
    if len(value) > len(choices) or any(v not in choices for v in value):
        raise ValueError(message)
    return [c for c in choices if c in value]


def _tag_ids(value: Any) -> list[int]:
    from app.services.ids import parse_pk

    if not isinstance(value, list):
        raise ValueError(tr(_NOT_A_LIST))
    if len(value) > MAX_TAGS:
        raise ValueError(tr(_TOO_MANY, limit=MAX_TAGS))
    ids = [parse_pk(v) if not isinstance(v, bool) else None for v in value]
    if any(i is None for i in ids):
        raise ValueError(tr("The tag ids must be a list of positive integers"))
    from app.models.marketing import Tag

    wanted = sorted(set(ids))
    known = set(db.session.execute(select(Tag.id).where(Tag.id.in_(wanted))).scalars()) \
        if wanted else set()
    if set(wanted) - known:
        raise ValueError(tr("Unknown tags: %(ids)s",
                            ids=", ".join(str(i) for i in wanted if i not in known)))
    return wanted


def validate_criteria(data: Any, record_type: str = "both") -> dict:
    """The cleaned criteria (only the keys given a value); ValidationFailed naming each bad
    field (unknown keys too). `record_type` is the segment's: customer-only criteria are
    refused for a segment of leads."""
    if isinstance(data, str):
        try:
            data = json.loads(data) if len(data) <= 100_000 else None
        except ValueError:
            data = None
    if not isinstance(data, dict):
        raise ValidationFailed({"criteria": tr("Must be an object")})
    errors: dict[str, str] = {str(k)[:100]: tr("Unknown criterion")
                              for k in data if k not in CRITERIA_KEYS}
    out: dict[str, Any] = {}
    for key in CRITERIA_KEYS:
        value = data.get(key)
        if value is None or value == [] or value == "":
            continue
        try:
            if key in TEXT_LISTS:
                value = _text_list(value, TEXT_LISTS[key])
            elif key == "grades":
                value = _choice_list(value, GRADES, tr("The grade can only be A, B or C"))
            elif key == "categories":
                value = _choice_list(value, CATEGORIES, tr(
                    "The lifecycle can only be potential, active or silent"))
            elif key == "tag_ids":
                value = _tag_ids(value)
            elif key == "min_days_since_followup":
                from app.services.ids import _as_int

                number = None if isinstance(value, bool) else _as_int(value)
                if number is None or not 0 <= number <= MAX_DAYS:
                    raise ValueError(tr("Must be an integer from %(min)s to %(max)s",
                                        min=0, max=MAX_DAYS))
                value = number
            elif key == "won":
                if value not in ("yes", "no"):
                    raise ValueError(tr("Can only be yes or no"))
        except ValueError as exc:
            errors[key] = str(exc)
            continue
        if value != []:
            out[key] = value
    if record_type == "lead":
        for key in CUSTOMER_ONLY:
            if key in out:
                errors[key] = tr("Leads have no grade or lifecycle: a segment of leads cannot "
                                 "filter by it")
    if errors:
        raise ValidationFailed(errors)
    return out


def criteria_of(segment: Segment) -> dict:
    """The stored criteria, cleaned again (a tag deleted since is dropped, not an error)."""
    try:
        raw = json.loads(segment.criteria or "{}")
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    if raw.get("tag_ids"):
        from app.models.marketing import Tag

        ids = [i for i in raw["tag_ids"] if isinstance(i, int) and not isinstance(i, bool)]
        live = set(db.session.execute(select(Tag.id).where(Tag.id.in_(ids or [0]))).scalars())
        raw["tag_ids"] = [i for i in ids if i in live]
        if not raw["tag_ids"]:
            # Every tag it named is gone: it matches nobody rather than everybody.
            raw["tag_ids"] = [0]
    try:
        return validate_criteria({k: v for k, v in raw.items() if k != "tag_ids"},
                                 segment.record_type) | (
            {"tag_ids": raw["tag_ids"]} if raw.get("tag_ids") else {})
    except ValidationFailed:
        return {"tag_ids": [0]}  # stored by hand and broken: nobody, never everybody


# --- evaluation ---------------------------------------------------------------------------
def _creator(segment: Segment) -> Optional[User]:
    if segment.created_by_id is None:
        return None
    user = db.session.get(User, segment.created_by_id)
    return user if user is not None and user.active else None


def _holder_clause(creator: Optional[User], holder, include_pool: bool, record_type: str):
    """Which holders' records the creator's segment may reach (holder: Ownership or
    LeadOwnership)."""
    scope = scope_of(creator)
    if scope is None:
        return false()
    if scope == Scope.ALL:
        return true() if include_pool else holder.owner_id.isnot(None)
    mine = holder.owner_id.in_(sorted(visible_owner_ids(creator, scope)))
    if include_pool:
        from app.services.pool import member_pool_ids

        pools = member_pool_ids(creator, record_type=record_type)
        if pools:
            mine = or_(mine, holder.pool_id.in_(sorted(pools)))
    return mine


def _followup_clause(holder, days: int, now: dt.datetime):
    return or_(holder.last_followup_at.is_(None),
               holder.last_followup_at <= now - dt.timedelta(days=days))


def _customers(creator, criteria: dict, include_pool: bool, now: dt.datetime):
    cid = Ownership.customer_id
    q = select(cid.label("customer_id"), cast(null(), Integer).label("lead_id"))
    conds = [_holder_clause(creator, Ownership, include_pool, "customer")]
    on_customer = [(Customer.province, "provinces"), (Customer.city, "cities"),
                   (Customer.industry, "industries"), (Customer.source, "sources")]
    if any(key in criteria for _, key in on_customer):
        q = q.join(Customer, Customer.id == cid)
        conds += [col.in_(criteria[key]) for col, key in on_customer if key in criteria]
    if "grades" in criteria:
        conds.append(Ownership.grade.in_(criteria["grades"]))
    if "categories" in criteria:
        conds.append(Ownership.category.in_(criteria["categories"]))
    if "won" in criteria:
        conds.append(Ownership.won == (criteria["won"] == "yes"))
    if "min_days_since_followup" in criteria:
        conds.append(_followup_clause(Ownership, criteria["min_days_since_followup"], now))
    if "tag_ids" in criteria:
        conds.append(exists().where(RecordTag.customer_id == cid,
                                    RecordTag.tag_id.in_(criteria["tag_ids"])))
    return q.select_from(Ownership).where(*conds)


def _leads(creator, criteria: dict, include_pool: bool, now: dt.datetime):
    lid = LeadOwnership.lead_id
    q = select(cast(null(), Integer).label("customer_id"), lid.label("lead_id")) \
        .select_from(LeadOwnership).join(Lead, Lead.id == lid)
    # A converted lead is represented by its customer: as a member too it would get the
    # same message twice (one person, two records).
    conds = [_holder_clause(creator, LeadOwnership, include_pool, "lead"),
             Lead.status.not_in(("invalid", "converted"))]
    if any(key in criteria for key in CUSTOMER_ONLY):
        conds.append(false())  # a lead has no grade or lifecycle
    for col, key in ((Lead.province, "provinces"), (Lead.city, "cities"),
                     (Lead.industry, "industries"), (Lead.source, "sources")):
        if key in criteria:
            conds.append(col.in_(criteria[key]))
    if "won" in criteria and criteria["won"] == "yes":
        conds.append(false())  # won = converted, and a converted lead is its customer
    if "min_days_since_followup" in criteria:
        conds.append(_followup_clause(LeadOwnership, criteria["min_days_since_followup"], now))
    if "tag_ids" in criteria:
        conds.append(exists().where(RecordTag.lead_id == lid,
                                    RecordTag.tag_id.in_(criteria["tag_ids"])))
    return q.where(*conds)


def members_select(segment: Segment, now: Optional[dt.datetime] = None):
    """ONE SELECT of (customer_id, lead_id), one NULL per row, of the segment's members now:
    usable as `insert(CampaignMember).from_select([...], members_select(s))`."""
    now = now or utcnow()
    creator = _creator(segment)
    criteria = criteria_of(segment)
    parts = []
    if segment.record_type in ("customer", "both"):
        parts.append(_customers(creator, criteria, bool(segment.include_pool), now))
    if segment.record_type in ("lead", "both"):
        parts.append(_leads(creator, criteria, bool(segment.include_pool), now))
    if len(parts) == 1:
        return parts[0]
    both = union_all(*parts).subquery("segment_members")
    return select(both.c.customer_id, both.c.lead_id)


def count(segment: Segment) -> int:
    members = members_select(segment).subquery()
    return db.session.execute(select(func.count()).select_from(members)).scalar_one()


def preview(segment: Segment, viewer: User, limit: int = 20) -> list[dict]:
    """The first `limit` members (customers by id, then leads by id) the viewer may read,
    with contact details as the viewer may see them (app.services.masking's rule)."""
    from app.security import customer_scope_clause
    from app.services import leads as lead_service
    from app.services.masking import rule_for, shown

    limit = max(1, min(int(limit), PREVIEW_MAX))
    members = members_select(segment).subquery()
    rows: list[dict] = []
    if segment.record_type in ("customer", "both"):
        rule = rule_for(viewer)
        found = db.session.execute(
            select(Customer.id, Customer.name, Customer.province, Customer.city,
                   Customer.industry, Customer.mobile, Customer.phone, Customer.email,
                   Ownership.owner_id, Ownership.pool_id, Ownership.grade, Ownership.category)
            .join(members, members.c.customer_id == Customer.id)
            .join(Ownership, Ownership.customer_id == Customer.id)
            .where(customer_scope_clause(viewer, Customer.id))
            .order_by(Customer.id).limit(limit)).all()
        for r in found:
            full = rule(r.owner_id, r.pool_id)
            rows.append({"record_type": "customer", "id": r.id, "name": r.name,
                         "province": r.province, "city": r.city, "industry": r.industry,
                         "grade": r.grade, "category": r.category,
                         "in_pool": r.pool_id is not None,
                         **{f: shown(f, getattr(r, f), full)
                            for f in ("mobile", "phone", "email")}})
    room = limit - len(rows)
    if room > 0 and segment.record_type in ("lead", "both"):
        rule = lead_service.contact_rule(viewer)
        found = db.session.execute(
            select(Lead.id, Lead.company_name, Lead.person_name, Lead.province, Lead.city,
                   Lead.industry, Lead.mobile, Lead.phone, Lead.email, Lead.status,
                   LeadOwnership.owner_id, LeadOwnership.pool_id)
            .join(members, members.c.lead_id == Lead.id)
            .join(LeadOwnership, LeadOwnership.lead_id == Lead.id)
            .where(lead_service.lead_scope_clause(viewer, Lead.id))
            .order_by(Lead.id).limit(room)).all()
        for r in found:
            full = rule(r.owner_id, r.pool_id)
            name = (f"{r.company_name}（{r.person_name}）" if r.company_name and r.person_name
                    else r.company_name or r.person_name)
            rows.append({"record_type": "lead", "id": r.id, "name": name,
                         "province": r.province, "city": r.city, "industry": r.industry,
                         "grade": None, "category": None, "in_pool": r.pool_id is not None,
                         **{f: shown(f, getattr(r, f), full)
                            for f in ("mobile", "phone", "email")}})
    return rows


def record_type_label(code: str) -> str:
    return str(SEGMENT_RECORD_TYPES.get(code, code))


# --- saved segments: who keeps them, and their CRUD ---------------------------------------
SEGMENT_FIELDS = ("name", "description", "record_type", "include_pool", "criteria")
NO_SUCH_SEGMENT = N_("The segment does not exist")


def may_manage(actor: Optional[User]) -> bool:
    """Marketing and admins keep segments (RES_SEGMENT); others see none."""
    from app.security import ROLE_ADMIN, ROLE_MARKETING, has_role

    return has_role(actor, ROLE_ADMIN, ROLE_MARKETING)


def _require_manager(actor: Optional[User]) -> None:
    from app.services.errors import PermissionDenied

    if not may_manage(actor):
        raise PermissionDenied(tr("Only admins and marketing keep segments"))


def get_segment(actor: Optional[User], segment_id: Any) -> Segment:
    from app.services.errors import NotFound
    from app.services.ids import parse_pk

    _require_manager(actor)
    pk = parse_pk(segment_id) if not isinstance(segment_id, bool) else None
    row = db.session.get(Segment, pk) if pk is not None else None
    if row is None:
        raise NotFound(tr(NO_SUCH_SEGMENT))
    return row


def clean_segment(data: Any, *, current: Optional[Segment] = None) -> dict:
    """Validated segment values (current: an edit, where missing keys keep their value)."""
    from app.services import limits
    from app.services.errors import UNKNOWN_FIELD

    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("Must be an object")})
    errors = {str(k)[:100]: str(UNKNOWN_FIELD) for k in data if k not in SEGMENT_FIELDS}
    out: dict[str, Any] = {}
    for name, limit in (("name", 100), ("description", 500)):
        if current is not None and name not in data:
            continue
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            errors[name] = tr("Must be text")
            continue
        if is_unclean(value):
            errors[name] = str(UNCLEAN_MESSAGE)
            continue
        value = (value or "").strip() or None
        message = limits.too_long(value, limit)
        if message:
            errors[name] = message
            continue
        out[name] = value
    if "name" in out and not out["name"]:
        errors["name"] = tr("A segment needs a name")
    if current is None or "record_type" in data:
        value = data.get("record_type", "customer")
        if value not in SEGMENT_RECORD_TYPES:
            errors["record_type"] = tr("The record type can only be customer, lead or both")
        else:
            out["record_type"] = value
    if current is None or "include_pool" in data:
        value = data.get("include_pool", False)
        if value in (None, ""):
            value = False
        if not isinstance(value, bool):
            errors["include_pool"] = tr("Must be true or false")
        else:
            out["include_pool"] = value
    record_type = out.get("record_type") or (current.record_type if current else "customer")
    if current is None or "criteria" in data or "record_type" in out:
        raw = data.get("criteria", json.loads(current.criteria) if current is not None
                       and "criteria" not in data else {})
        try:
            out["criteria"] = json.dumps(validate_criteria(raw or {}, record_type),
                                         ensure_ascii=False, sort_keys=True)
        except ValidationFailed as exc:
            errors.update({f"criteria.{k}" if k != "criteria" else k: v
                           for k, v in exc.fields.items()})
    if errors:
        raise ValidationFailed(errors)
    return out


def _name_taken(name: str, but: Optional[int] = None) -> bool:
    q = select(Segment.id).where(func.lower(Segment.name) == name.lower())
    if but is not None:
        q = q.where(Segment.id != but)
    return db.session.execute(q).first() is not None


def _save(fn):
    # The unique index on the name: someone may save the same name meanwhile.
    return commit_unique(fn, "name", tr("A segment with this name already exists"))


def create_segment(actor: User, data: Any) -> Segment:
    """A new segment, evaluated in `actor`'s scope from now on. Commits."""
    from app.services import audit

    _require_manager(actor)
    values = clean_segment(data)
    if _name_taken(values["name"]):
        raise ValidationFailed({"name": tr("A segment with this name already exists")})

    def go():
        row = Segment(created_by_id=actor.id, **values)
        audit.record_new(actor.id, "segment", row)
        return row

    return _save(go)


def update_segment(actor: User, segment_id: Any, data: Any) -> Segment:
    """Change a segment (its creator, whose scope it speaks for, stays). Commits."""
    from app.services import audit

    row = get_segment(actor, segment_id)
    values = clean_segment(data, current=row)
    if values.get("name") and _name_taken(values["name"], but=row.id):
        raise ValidationFailed({"name": tr("A segment with this name already exists")})

    def go():
        changes = audit.diff(row, values)
        for key, value in values.items():
            setattr(row, key, value)
        if changes:
            audit.record(actor.id, "update", "segment", row.id, changes)
        db.session.flush()
        return row

    return _save(go)


def campaigns_using(segment_id: int) -> list[str]:
    """Names of the planned or running campaigns built on the segment."""
    from app.models.marketing import Campaign

    return list(db.session.execute(select(Campaign.name).where(
        Campaign.segment_id == segment_id, Campaign.status.in_(("planned", "running")))
        .order_by(Campaign.name)).scalars())


def delete_segment(actor: User, segment_id: Any) -> None:
    """Delete a segment unless a planned or running campaign is built on it (a finished one
    keeps its frozen members and loses only the link). Commits."""
    from app.services import audit
    from app.services.errors import Conflict

    row = get_segment(actor, segment_id)
    using = campaigns_using(row.id)
    if using:
        raise Conflict(tr("Campaigns still use this segment: %(names)s",
                          names="、".join(using)))

    def go():
        audit.record(actor.id, "delete", "segment", row.id, {"name": (row.name, None)})
        db.session.delete(row)

    _save(go)
