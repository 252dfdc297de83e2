"""Campaigns (市场活动): create / edit / delete, the members (added by hand, or the segment
frozen at launch), and the status line planned → running (launch) → finished (finish).

Who: Marketing and admins manage every campaign; every other role reads them (the list and the
page), and sees of the members only those in its own data scope, contacts masked (the views
and the API ask `members_page`). Rules kept here for every path (form, API, job):
- a launched campaign is not deleted: its members and messages are the record of what was
  sent (finish it instead); a planned one is, with its hand-added members;
- the segment is frozen once: launch claims the row with a conditional UPDATE (planned →
  running, a row lock on PostgreSQL, the write lock on SQLite), so of two launches at the same
  moment one freezes and the other is refused; the snapshot is one INSERT … SELECT;
- members are unique per campaign by the unique indexes; a duplicate is skipped by the
  database (ON CONFLICT DO NOTHING), so simultaneous adds cannot fail or double.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Optional

from sqlalchemy import and_, exists, func, literal, or_, select, true
from sqlalchemy import update as sa_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Customer, Lead, LeadOwnership, Ownership, User
from app.models.customer import utcnow
from app.models.marketing import (CAMPAIGN_KINDS, Campaign, CampaignMember, CampaignMessage,
                                  Segment)
from app.models.org import EMPLOYMENT_ACTIVE
from app.security import ROLE_ADMIN, ROLE_MARKETING, customer_scope_clause, has_role, scope_of
from app.services import audit, limits
from app.services.saving import commit_unique
from app.services.errors import (NO_SUCH_CUSTOMER, UNKNOWN_FIELD, Conflict, OutOfScope,
                                 PermissionDenied, ValidationFailed, lazy_tr, tr)
from app.services.ids import MAX_PK, parse_pk
from app.services.leads import NO_SUCH_LEAD, lead_scope_clause
from app.services.text import UNCLEAN_MESSAGE, is_unclean

MAX_MONEY = Decimal("999999999999.99")  # Numeric(14, 2)
MAX_MEMBERS_PER_CALL = 500  # ids in one add_members call (customers and leads together)
FIELDS = ("name", "kind", "starts_on", "ends_on", "budget", "actual_cost", "description",
          "owner_id", "segment_id")
NAME_LIMIT = 200
NO_SUCH_CAMPAIGN = lazy_tr("The campaign does not exist")
NO_SUCH_MEMBER = lazy_tr("The member does not exist or is outside your data scope")
NAME_TAKEN = lazy_tr("A campaign with this name exists")


# --- who ------------------------------------------------------------------------------------
def may_manage(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_MARKETING)


def _require_manager(actor: Optional[User]) -> None:
    if not may_manage(actor):
        raise PermissionDenied(tr("Only marketing and admins can change campaigns"))


def require_reader(actor: Optional[User]) -> None:
    if scope_of(actor) is None:
        raise PermissionDenied(tr("Your role cannot read campaigns"))


def get_campaign(actor: Optional[User], campaign_id: Any) -> Campaign:
    """The campaign (every role that reads campaigns reads them all); 404 for a bad id."""
    require_reader(actor)
    pk = parse_pk(campaign_id)
    campaign = db.session.execute(select(Campaign).where(Campaign.id == pk).options(
        joinedload(Campaign.owner), joinedload(Campaign.segment),
        joinedload(Campaign.launched_by))).scalar_one_or_none() if pk is not None else None
    if campaign is None:
        raise OutOfScope(tr(NO_SUCH_CAMPAIGN), code="not_found")
    return campaign


def _locked(campaign_id: Any) -> Campaign:
    """The campaign, its row locked until the transaction ends: a no-op UPDATE takes the row
    lock on PostgreSQL and the write lock on SQLite (before any read of this transaction, so
    SQLite never has to upgrade a read snapshot that another writer made stale)."""
    pk = parse_pk(campaign_id)
    campaign = None
    if pk is not None:
        db.session.execute(sa_update(Campaign).where(Campaign.id == pk).values(
            updated_at=Campaign.updated_at).execution_options(synchronize_session=False))
        campaign = db.session.get(Campaign, pk, populate_existing=True)
    if campaign is None:
        db.session.rollback()
        raise OutOfScope(tr(NO_SUCH_CAMPAIGN), code="not_found")
    return campaign


def lock_campaign(campaign_id: Any) -> Campaign:
    """The campaign with its row locked until the transaction ends (see _locked); for
    app.services.campaign_sending, whose queue runs must not overlap."""
    return _locked(campaign_id)


# --- validation -----------------------------------------------------------------------------
def _text(data: dict, key: str, limit: int, errors: dict, required: bool = False):
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            errors[key] = tr("Please name the campaign") if key == "name" else tr("Required")
        return None
    if not isinstance(value, str):
        errors[key] = tr("Must be text")
        return None
    if is_unclean(value):
        errors[key] = str(UNCLEAN_MESSAGE)
        return None
    value = value.strip()
    if limits.too_long(value, limit):
        errors[key] = limits.too_long(value, limit)
        return None
    return value


def _money(data: dict, key: str, errors: dict) -> Optional[Decimal]:
    value = data.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)) \
            or (isinstance(value, str) and (is_unclean(value) or len(value) > 40)):
        errors[key] = tr("%(field)s must be a number, e.g. 12800.00", field=key)
        return None
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        errors[key] = tr("%(field)s must be a number, e.g. 12800.00", field=key)
        return None
    if not amount.is_finite() or not Decimal(0) <= amount <= MAX_MONEY:
        errors[key] = tr("%(field)s must be between 0 and %(max)s", field=key, max=MAX_MONEY)
        return None
    if amount != amount.quantize(Decimal("0.01")):
        errors[key] = tr("%(field)s has at most 2 decimals", field=key)
        return None
    return amount.quantize(Decimal("0.01"))


def _date(data: dict, key: str, errors: dict) -> Optional[dt.date]:
    value = data.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str) and not is_unclean(value) and len(value) <= 20:
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    errors[key] = tr("A date is written YYYY-MM-DD")
    return None


def _owner(value: Any, errors: dict) -> Optional[int]:
    pk = parse_pk(value)
    if pk is None:
        errors["owner_id"] = tr("%(field)s must be an integer from 1 to %(max)s",
                                field="owner_id", max=MAX_PK)
        return None
    active = db.session.execute(select(User.id).where(
        User.id == pk, User.active.is_(True),
        User.employment_status == EMPLOYMENT_ACTIVE)).first()
    if active is None:
        errors["owner_id"] = tr("The owner must be an active user")
        return None
    return pk


def _segment(actor: User, value: Any, errors: dict) -> Optional[int]:
    """A segment the actor may use (app.services.marketing_segments.get_segment: marketing
    and admins, who alone manage campaigns, see every segment)."""
    from app.services import marketing_segments
    from app.services.errors import GuishuError

    if value in (None, ""):
        return None
    pk = parse_pk(value)
    if pk is None:
        errors["segment_id"] = tr("%(field)s must be an integer from 1 to %(max)s",
                                  field="segment_id", max=MAX_PK)
        return None
    try:
        return marketing_segments.get_segment(actor, pk).id
    except GuishuError as exc:
        errors["segment_id"] = exc.message
        return None


def clean(actor: User, data: Any, *, partial: bool = False) -> dict[str, Any]:
    """The campaign fields of `data`, checked; ValidationFailed naming each bad field."""
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("Must be an object")})
    errors: dict[str, str] = {str(k): str(UNKNOWN_FIELD) for k in set(data) - set(FIELDS)}
    out: dict[str, Any] = {}

    def given(key: str) -> bool:
        return not partial or key in data

    if given("name"):
        out["name"] = _text(data, "name", NAME_LIMIT, errors, required=True)
    if given("kind"):
        if data.get("kind") not in CAMPAIGN_KINDS:
            errors["kind"] = tr("The campaign type can only be: %(choices)s",
                                choices=", ".join(CAMPAIGN_KINDS))
        else:
            out["kind"] = data["kind"]
    for key in ("starts_on", "ends_on"):
        if given(key):
            out[key] = _date(data, key, errors)
    for key in ("budget", "actual_cost"):
        if given(key):
            out[key] = _money(data, key, errors)
    if given("description"):
        out["description"] = _text(data, "description", limits.NOTE, errors)
    if given("owner_id"):
        raw = data.get("owner_id")
        if raw not in (None, ""):
            out["owner_id"] = _owner(raw, errors)
        elif partial:  # an edit cannot leave a campaign without an owner
            errors["owner_id"] = tr("The owner must be an active user")
        else:
            out["owner_id"] = actor.id
    if given("segment_id"):
        out["segment_id"] = _segment(actor, data.get("segment_id"), errors)
    if errors:
        raise ValidationFailed(errors)
    return out


def _check_dates(starts_on: Optional[dt.date], ends_on: Optional[dt.date]) -> None:
    if starts_on and ends_on and ends_on < starts_on:
        raise ValidationFailed({"ends_on": tr("The end date cannot be before the start date")})


def _check_name_free(name: Optional[str], exclude_id: int = 0) -> None:
    if name is not None and db.session.execute(select(Campaign.id).where(
            Campaign.name == name, Campaign.id != exclude_id)).first():
        raise ValidationFailed({"name": tr(NAME_TAKEN)})


def _commit_named() -> None:
    """Commit; the unique index on the name decides a race the check above could not see."""
    commit_unique(None, "name", tr(NAME_TAKEN))


# --- create / edit / delete -----------------------------------------------------------------
def create(actor: User, data: Any) -> Campaign:
    """A planned campaign; its owner defaults to the actor."""
    _require_manager(actor)
    values = clean(actor, data)
    _check_dates(values.get("starts_on"), values.get("ends_on"))
    _check_name_free(values["name"])
    campaign = Campaign(status="planned", created_by_id=actor.id, **values)
    try:
        audit.record_new(actor.id, "campaign", campaign)
    except IntegrityError:
        raise ValidationFailed({"name": tr(NAME_TAKEN)}) from None
    _commit_named()
    return campaign


def update(actor: User, campaign_id: Any, data: Any) -> Campaign:
    """Edit the fields given. The segment changes only while planned (after launch the
    members are its snapshot); the status only through launch and finish."""
    _require_manager(actor)
    values = clean(actor, data, partial=True)
    campaign = _locked(campaign_id)
    if "segment_id" in values and values["segment_id"] != campaign.segment_id \
            and campaign.status != "planned":
        raise Conflict(tr("The segment was frozen at launch and cannot change"),
                       code="campaign_launched")
    _check_dates(values.get("starts_on", campaign.starts_on),
                 values.get("ends_on", campaign.ends_on))
    _check_name_free(values.get("name"), campaign.id)
    changes = audit.diff(campaign, values)
    for key, (_old, new) in changes.items():
        setattr(campaign, key, new)
    if changes:
        audit.record(actor.id, "update", "campaign", campaign.id, changes)
    _commit_named()
    return campaign


def delete(actor: User, campaign_id: Any) -> None:
    """Delete a planned campaign (with its hand-added members). A launched one is the record
    of what was sent and to whom: refused, finish it instead."""
    _require_manager(actor)
    campaign = _locked(campaign_id)
    if campaign.status != "planned":
        raise Conflict(tr("A launched campaign cannot be deleted; finish it instead"),
                       code="campaign_launched")
    audit.record(actor.id, "delete", "campaign", campaign.id, {"name": (campaign.name, None)})
    db.session.delete(campaign)
    db.session.commit()


# --- members --------------------------------------------------------------------------------
@dataclass
class Added:
    added: int      # new members
    skipped: int    # already members (by hand or from the segment)

    def to_dict(self) -> dict:
        return {"added": self.added, "skipped": self.skipped}


def _insert(dialect: str):
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def _insert_members(rows) -> int:
    """INSERT INTO campaign_member … SELECT `rows` (columns customer_id, lead_id, source,
    added_by_id), skipping any already there: the unique indexes decide, so two writers at
    once neither fail nor double."""
    dialect = db.session.get_bind().dialect.name
    columns = ["campaign_id", "customer_id", "lead_id", "source", "added_by_id", "added_at"]
    statement = _insert(dialect)(CampaignMember.__table__).from_select(columns, rows)
    # RETURNING counts what was inserted (psycopg reports no rowcount for INSERT … SELECT …
    # ON CONFLICT here); one small integer per new member.
    statement = statement.on_conflict_do_nothing().returning(CampaignMember.__table__.c.id)
    return len(db.session.connection().execute(statement).all())


def _ids(values: Any, key: str) -> list[int]:
    if values is None:
        return []
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise ValidationFailed({key: tr("%(field)s must be a list of ids", field=key)})
    out: dict[int, None] = {}
    for raw in values:
        pk = parse_pk(raw)
        if pk is None:
            raise ValidationFailed({key: tr("%(field)s must be a list of integers from 1 to "
                                            "%(max)s", field=key, max=MAX_PK)})
        out[pk] = None
    return list(out)


def add_members(campaign_id: Any, actor: User, customer_ids: Any = None,
                lead_ids: Any = None) -> Added:
    """Add customers and leads by hand (source manual): only records in the actor's data
    scope (any other id refuses the whole call, naming the ids), at most
    MAX_MEMBERS_PER_CALL ids, duplicates skipped. Not to a finished campaign."""
    _require_manager(actor)
    customers, leads = _ids(customer_ids, "customer_ids"), _ids(lead_ids, "lead_ids")
    if not customers and not leads:
        raise ValidationFailed({"customer_ids": tr("Choose at least one customer or lead")})
    if len(customers) + len(leads) > MAX_MEMBERS_PER_CALL:
        raise ValidationFailed({"customer_ids": tr(
            "At most %(limit)s customers and leads at a time", limit=MAX_MEMBERS_PER_CALL)})
    campaign = _locked(campaign_id)
    if campaign.status == "finished":
        raise Conflict(tr("The campaign has finished; no members can be added"),
                       code="campaign_finished")
    if customers:
        seen = set(db.session.execute(select(Customer.id).where(
            Customer.id.in_(customers), customer_scope_clause(actor))).scalars())
        missing = [c for c in customers if c not in seen]
        if missing:
            raise OutOfScope(tr(NO_SUCH_CUSTOMER), customer_ids=missing)
    if leads:
        seen = set(db.session.execute(select(Lead.id).where(
            Lead.id.in_(leads), lead_scope_clause(actor))).scalars())
        missing = [lead for lead in leads if lead not in seen]
        if missing:
            raise OutOfScope(tr(NO_SUCH_LEAD), lead_ids=missing)
    now = utcnow()
    added = 0
    if customers:
        added += _insert_members(select(
            literal(campaign.id), Customer.id, literal(None, Lead.id.type), literal("manual"),
            literal(actor.id), literal(now, CampaignMember.added_at.type))
            .where(Customer.id.in_(customers)))
    if leads:
        added += _insert_members(select(
            literal(campaign.id), literal(None, Customer.id.type), Lead.id, literal("manual"),
            literal(actor.id), literal(now, CampaignMember.added_at.type))
            .where(Lead.id.in_(leads)))
    result = Added(added, len(customers) + len(leads) - added)
    if campaign.status == "running" and added:
        # Added after launch: queued now, in this transaction (under the row lock above).
        _queue_pending(campaign)
    audit.record(actor.id, "add_members", "campaign", campaign.id, {
        "customer_ids": (None, ",".join(map(str, customers)) or None),
        "lead_ids": (None, ",".join(map(str, leads)) or None),
        "added": (None, added)})
    db.session.commit()
    return result


def remove_member(campaign_id: Any, actor: User, member_id: Any) -> None:
    """Take a member out of a campaign that has not finished, unless a message already went
    to it (sent or failed: the outbox keeps that record)."""
    _require_manager(actor)
    campaign = _locked(campaign_id)
    pk = parse_pk(member_id)
    member = db.session.execute(select(CampaignMember).where(
        CampaignMember.id == pk, CampaignMember.campaign_id == campaign.id)) \
        .scalar_one_or_none() if pk is not None else None
    if member is None:
        raise OutOfScope(tr(NO_SUCH_MEMBER), code="not_found")
    if campaign.status == "finished":
        raise Conflict(tr("The campaign has finished; its members stay"),
                       code="campaign_finished")
    if db.session.execute(select(CampaignMessage.id).where(
            CampaignMessage.member_id == member.id,
            CampaignMessage.status.in_(("sent", "failed")))).first():
        raise Conflict(tr("A message already went to this member; it stays in the campaign"),
                       code="member_contacted")
    audit.record(actor.id, "remove_member", "campaign", campaign.id, {
        "customer_id": (member.customer_id, None), "lead_id": (member.lead_id, None)})
    db.session.delete(member)
    db.session.commit()


# --- launch and finish ----------------------------------------------------------------------
@dataclass
class Launched:
    campaign_id: int
    from_segment: int  # members frozen from the segment now
    manual: int        # members added by hand before the launch
    total: int
    queued: int        # messages queued by app.services.campaign_sending

    def to_dict(self) -> dict:
        return {"campaign_id": self.campaign_id, "from_segment": self.from_segment,
                "manual": self.manual, "total": self.total, "queued": self.queued}


def segment_members(segment: Segment):
    """The segment's (customer_id, lead_id) rows, evaluated in its creator's data scope
    (app.services.marketing_segments owns the criteria)."""
    from app.services import marketing_segments

    return marketing_segments.members_select(segment)


def _queue_pending(campaign: Campaign) -> int:
    """Queue the running campaign's missing messages in the outbox
    (app.services.campaign_sending), in the caller's transaction."""
    from app.services import campaign_sending

    return campaign_sending.queue_pending(campaign)


def launch(campaign_id: Any, actor: User) -> Launched:
    """Freeze the segment into the members (one INSERT … SELECT, skipping those already
    added by hand), mark the campaign running (launched at / by) and queue its messages, all
    in one transaction.

    The conditional UPDATE planned → running is the lock: on PostgreSQL a second launch waits
    on the row and then finds it running; on SQLite the write lock serialises them. Either
    way the loser changes nothing and is refused."""
    _require_manager(actor)
    pk = parse_pk(campaign_id)
    if pk is None:
        raise OutOfScope(tr(NO_SUCH_CAMPAIGN), code="not_found")
    now = utcnow()
    claimed = db.session.execute(sa_update(Campaign).where(
        Campaign.id == pk, Campaign.status == "planned").values(
        status="running", launched_at=now, launched_by_id=actor.id, updated_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        db.session.rollback()
        if db.session.get(Campaign, pk) is None:
            raise OutOfScope(tr(NO_SUCH_CAMPAIGN), code="not_found")
        raise Conflict(tr("The campaign has already been launched"), code="campaign_launched")
    campaign = db.session.get(Campaign, pk, populate_existing=True)
    frozen = 0
    if campaign.segment_id is not None:
        segment = db.session.get(Segment, campaign.segment_id)
        found = segment_members(segment).subquery("segment_members")
        already = exists().where(
            CampaignMember.campaign_id == pk,
            or_(and_(found.c.customer_id.is_not(None),
                     CampaignMember.customer_id == found.c.customer_id),
                and_(found.c.lead_id.is_not(None), CampaignMember.lead_id == found.c.lead_id)))
        rows = select(literal(pk), found.c.customer_id, found.c.lead_id, literal("segment"),
                      literal(actor.id), literal(now, CampaignMember.added_at.type)) \
            .where(true(), ~already)
        frozen = _insert_members(rows)
    manual, total = db.session.execute(select(
        func.count().filter(CampaignMember.source == "manual"), func.count())
        .where(CampaignMember.campaign_id == pk)).one()
    # One transaction with the claim and the snapshot: if queueing fails, nothing of the
    # launch stays (the campaign is still planned, it can be launched again).
    try:
        queued = _queue_pending(campaign)
    except Exception:
        db.session.rollback()
        raise
    audit.record(actor.id, "launch", "campaign", pk, {
        "status": ("planned", "running"), "members": (None, total),
        "from_segment": (None, frozen), "queued": (None, queued)})
    db.session.commit()
    return Launched(pk, frozen, manual, total, queued)


def finish(campaign_id: Any, actor: User) -> Campaign:
    """Running → finished (its members and messages stay, read only)."""
    _require_manager(actor)
    campaign = _locked(campaign_id)
    if campaign.status != "running":
        raise Conflict(tr("Only a running campaign can be finished"),
                       code="campaign_not_running")
    campaign.status = "finished"
    audit.record(actor.id, "finish", "campaign", campaign.id, {"status": ("running",
                                                                          "finished")})
    db.session.commit()
    return campaign


# --- reading --------------------------------------------------------------------------------
def member_counts(campaign_id: int) -> dict[str, int]:
    """Members by source (all of them: a count reveals no record)."""
    rows = db.session.execute(select(CampaignMember.source, func.count()).where(
        CampaignMember.campaign_id == campaign_id).group_by(CampaignMember.source)).all()
    out = {"segment": 0, "manual": 0}
    out.update({source: n for source, n in rows})
    out["total"] = out["segment"] + out["manual"]
    return out


def members_page(actor: User, campaign_id: int, *, after: Optional[int] = None,
                 page_size: int = 50) -> tuple[list[dict], Optional[int]]:
    """The members the reader may see (customers in their data scope, leads in their lead
    scope), newest first, keyset by member id, contacts masked by the one rule; one
    statement. Returns (rows, next_after)."""
    from app.services import masking
    from app.services.leads import contact_rule

    require_reader(actor)
    q = (select(CampaignMember, Customer, Ownership, Lead, LeadOwnership)
         .outerjoin(Customer, Customer.id == CampaignMember.customer_id)
         .outerjoin(Ownership, Ownership.customer_id == CampaignMember.customer_id)
         .outerjoin(Lead, Lead.id == CampaignMember.lead_id)
         .outerjoin(LeadOwnership, LeadOwnership.lead_id == CampaignMember.lead_id)
         .where(CampaignMember.campaign_id == campaign_id,
                or_(and_(CampaignMember.customer_id.is_not(None),
                         customer_scope_clause(actor, CampaignMember.customer_id)),
                    and_(CampaignMember.lead_id.is_not(None),
                         lead_scope_clause(actor, CampaignMember.lead_id))))
         .order_by(CampaignMember.id.desc()).limit(page_size + 1))
    if after is not None:
        q = q.where(CampaignMember.id < after)
    rows = db.session.execute(q).all()
    more = len(rows) > page_size
    rows = rows[:page_size]
    customer_rule, lead_rule = masking.rule_for(actor), contact_rule(actor)
    out = []
    for member, customer, own, lead, lead_own in rows:
        if customer is not None:
            full = customer_rule(own.owner_id if own else None, own.pool_id if own else None)
            record, kind = customer, "customer"
        else:
            full = lead_rule(lead_own.owner_id if lead_own else None,
                             lead_own.pool_id if lead_own else None)
            record, kind = lead, "lead"
        name = customer.name if customer is not None else (
            lead.company_name or lead.person_name or "")
        out.append({
            "id": member.id, "record_type": kind, "customer_id": member.customer_id,
            "lead_id": member.lead_id, "name": name, "source": member.source,
            "mobile": masking.shown("mobile", getattr(record, "mobile", None), full),
            "email": masking.shown("email", getattr(record, "email", None), full),
            "added_at": member.added_at})
    return out, (rows[-1][0].id if more and rows else None)


def to_dict(campaign: Campaign) -> dict:
    return {
        "id": campaign.id, "name": campaign.name, "kind": campaign.kind,
        "status": campaign.status, "starts_on": campaign.starts_on.isoformat()
        if campaign.starts_on else None,
        "ends_on": campaign.ends_on.isoformat() if campaign.ends_on else None,
        "budget": str(campaign.budget) if campaign.budget is not None else None,
        "actual_cost": str(campaign.actual_cost) if campaign.actual_cost is not None else None,
        "description": campaign.description, "owner_id": campaign.owner_id,
        "segment_id": campaign.segment_id, "launched_at": campaign.launched_at,
        "launched_by_id": campaign.launched_by_id, "created_at": campaign.created_at,
        "updated_at": campaign.updated_at,
    }
