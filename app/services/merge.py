"""Merge duplicate customers (合并) and undo a merge within 30 days.

A merge folds one customer (the merged record) into another (the survivor), one pair at a
time, all pairs of one review in one transaction:

- fields: the reviewer picks, per field, whose value wins; the survivor's overwritten
  values are kept for undo, and its dedupe keys are recomputed.
- related rows: every row that references customer.id is re-pointed to the survivor
  (app.services.repoint); where a unique key would then hold twice, the merged record's
  row is dropped and kept in the snapshot. History is never edited (DESIGN.md
  invariant 2): ownership events stay under the merged id, and a survivor's history is read
  through the redirects (history_clause); audit_log rows stay under their object id too,
  and the merge's own audit rows link the two ids.
- ownership, by this rule: the owners of the two records are candidates; the owner of a
  locked record comes first, then the owner of a won record (their key account and their
  deal decide), then the owner with the earliest first contact (the earliest 'created',
  'claimed', 'assigned' or 'rule-assigned' event that gave them the record, else the
  record's created_at). The first candidate that may be given the survivor keeps it: the
  survivor's own owner always may (their count does not rise); anyone else only within
  their caps, checked as for a claim with the merged record still counted. If none fits,
  the survivor goes to the pool. A 'merged' event is written on both records.
- the merged id stays findable: customer_redirect maps it to the survivor, and the pages
  and the REST API redirect there.

Undo (admins and staff, within UNDO_DAYS, newest merge of a survivor first) puts back the
merged customer under its original id, exactly the rows that were moved or dropped, the
survivor's fields and ownership, and writes 'unmerged' events.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from sqlalchemy import delete, exists, func, insert, or_, select, true, update

from app.extensions import db
from app.models import (Customer, CustomerMerge, CustomerRedirect, DedupeCluster, Ownership,
                        OwnershipEvent, User)
from app.models.customer import utcnow
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_STAFF, can_see_customer, has_role,
                          visible_customer_ids_select)
from app.services import (audit, caps, followups, match_keys,
                          ownership as ownership_service, repoint, search)
from app.services.errors import (Conflict, NotFound, OutOfScope, PermissionDenied, ValidationFailed,
                                 tr)
from app.services.times import local_text

UNDO_DAYS = 30
# The fields a reviewer picks a winner for; "birthday" is its parts, taken together.
MERGE_FIELDS = ("name", "industry", "province", "city", "address", "phone", "mobile", "email",
                "source", "product_line", "birthday", "notes")
FIELD_COLUMNS = {"birthday": ("birth_year", "birth_month", "birth_day", "birthday_lunar")}
FIRST_CONTACT_KINDS = ("created", "claimed", "assigned", "rule-assigned")


def columns_of(field: str) -> tuple[str, ...]:
    return FIELD_COLUMNS.get(field, (field,))


# --- who may ------------------------------------------------------------------------------
def may_review(actor: Optional[User]) -> bool:
    """Scan, merge, dismiss and undo: admins and back-office staff."""
    return has_role(actor, ROLE_ADMIN, ROLE_STAFF)


def require_reviewer(actor: Optional[User]) -> None:
    if not may_review(actor):
        raise PermissionDenied(tr("Only admins and back-office staff can review and merge "
                                  "duplicates"))


def require_reader(actor: Optional[User]) -> None:
    if not has_role(actor, ROLE_ADMIN, ROLE_STAFF, ROLE_AUDITOR):
        raise PermissionDenied(tr("Your role cannot see dedupe results"))


# --- ownership of the survivor ------------------------------------------------------------
@dataclass
class Holding:
    customer_id: int
    owner_id: Optional[int]
    pool_id: Optional[int]
    locked: bool
    won: bool
    first_contact: dt.datetime


def _holding(customer: Customer) -> Holding:
    own = customer.ownership
    first = None
    if own.owner_id is not None:
        first = db.session.execute(select(func.min(OwnershipEvent.created_at)).where(
            history_clause(OwnershipEvent.customer_id, customer.id),
            OwnershipEvent.to_owner_id == own.owner_id,
            OwnershipEvent.kind.in_(FIRST_CONTACT_KINDS))).scalar()
    return Holding(customer.id, own.owner_id, own.pool_id, bool(own.locked), bool(own.won),
                   first or customer.created_at)


def candidates(holdings: list[Holding]) -> list[Holding]:
    """Owned records in the order their owners are offered the survivor: locked first, then
    won, then earliest first contact (then the survivor, then the lower id)."""
    owned = [h for h in holdings if h.owner_id is not None]
    survivor = holdings[0].customer_id
    return sorted(owned, key=lambda h: (not h.locked, not h.won, h.first_contact,
                                        h.customer_id != survivor, h.customer_id))


def _fits(owner_id: int, survivor: Holding, locked: bool, won: bool) -> bool:
    """May the owner be given the survivor (locked/won as it will be)? The survivor already
    theirs always fits (their count does not rise). Otherwise the caps are checked as for a
    claim, with the merged record still counted: a merge never lets an owner at the cap
    take a record away from its holder."""
    if survivor.owner_id == owner_id:
        return True
    ownership_service.lock_rep(owner_id)
    return caps.fits(owner_id, locked=locked, won=won)


def resolve_owner(holdings: list[Holding]) -> tuple[Optional[int], bool]:
    """(owner id or None for the pool, locked) of the survivor; holdings[0] is the survivor."""
    won = any(h.won for h in holdings)
    for h in candidates(holdings):
        locked = any(x.locked for x in holdings if x.owner_id == h.owner_id)
        if _fits(h.owner_id, holdings[0], locked, won):
            return h.owner_id, locked
    return None, False


def _pool_for(holdings: list[Holding]) -> int:
    for h in holdings:
        if h.pool_id is not None:
            return h.pool_id
    return ownership_service.default_pool().id


# --- merge --------------------------------------------------------------------------------
def _load(actor: User, customer_id: int) -> Customer:
    customer = db.session.get(Customer, customer_id)
    if customer is None or not can_see_customer(actor, customer_id):
        raise OutOfScope(tr("Customer #%(id)s does not exist or is outside your data scope",
                            id=customer_id))
    return customer


def _merge_pair(actor: User, survivor: Customer, merged: Customer, fields: Iterable[str],
                cluster_id: Optional[int]) -> CustomerMerge:
    s_id, m_id = survivor.id, merged.id
    c_table, o_table = Customer.__table__, Ownership.__table__
    snapshot: dict[str, Any] = {
        "customer": repoint.row_json(c_table, c_table.c.id == m_id),
        "ownership": repoint.row_json(o_table, o_table.c.customer_id == m_id),
        "survivor_ownership": repoint.row_json(o_table, o_table.c.customer_id == s_id),
        "survivor_fields": {}, "dropped": {}, "rewritten": {}, "redirects": []}
    holdings = [_holding(survivor), _holding(merged)]
    changes = {}
    for field in fields:
        for column in columns_of(field):
            old, new = getattr(survivor, column), getattr(merged, column)
            snapshot["survivor_fields"][column] = repoint.plain(old)
            if old != new:
                changes[column] = (old, new)
                setattr(survivor, column, new)
    record = CustomerMerge(survivor_id=s_id, merged_id=m_id, cluster_id=cluster_id,
                           actor_id=actor.id, created_at=utcnow(), snapshot={}, moved={})
    db.session.add(record)
    db.session.flush()
    moves = repoint.move_references(m_id, s_id)
    snapshot["dropped"], snapshot["rewritten"] = moves.dropped, moves.rewritten
    redirects = db.session.execute(select(CustomerRedirect.old_id).where(
        CustomerRedirect.survivor_id == m_id)).scalars().all()
    if redirects:  # one hop: ids merged into the merged record now lead to the survivor
        db.session.execute(update(CustomerRedirect).where(
            CustomerRedirect.old_id.in_(redirects)).values(survivor_id=s_id))
        snapshot["redirects"] = list(redirects)
    _settle_ownership(actor, survivor, merged, holdings, record)
    db.session.execute(delete(Ownership).where(Ownership.customer_id == m_id))
    db.session.execute(delete(Customer).where(Customer.id == m_id))
    db.session.expunge(merged)
    # SQLite hands the highest id out again after its row is deleted: a redirect left by an
    # earlier merge of a record that had this id yields to the newer one.
    db.session.execute(delete(CustomerRedirect).where(CustomerRedirect.old_id == m_id))
    db.session.add(CustomerRedirect(old_id=m_id, survivor_id=s_id, merge_id=record.id,
                                    created_at=record.created_at))
    record.snapshot, record.moved = snapshot, moves.moved
    audit.record(actor.id, "merge", "customer", s_id,
                 dict({"merged_id": (None, m_id), "merge_id": (None, record.id)}, **changes))
    audit.record(actor.id, "merged_into", "customer", m_id,
                 {"survivor_id": (None, s_id), "merge_id": (None, record.id)})
    return record


def _settle_ownership(actor: User, survivor: Customer, merged: Customer,
                      holdings: list[Holding], record: CustomerMerge) -> None:
    s_own, m_own = survivor.ownership, merged.ownership
    before = (s_own.owner_id, s_own.pool_id)
    owner_id, locked = resolve_owner(holdings)
    now = utcnow()
    if owner_id is None:
        pool_id = _pool_for(holdings)
        if s_own.owner_id is not None:
            s_own.previous_owner_id, s_own.released_at = s_own.owner_id, now
        s_own.owner_id, s_own.pool_id = None, pool_id
        if before != (None, pool_id):
            s_own.acquired_at, s_own.acquired_how = now, "merged"
    elif owner_id != s_own.owner_id:
        # The merged record's owner keeps their holding's start (their reclaim clock).
        s_own.acquired_at = m_own.acquired_at if m_own.owner_id == owner_id else now
        s_own.previous_owner_id = s_own.owner_id or s_own.previous_owner_id
        s_own.owner_id, s_own.pool_id, s_own.acquired_how = owner_id, None, "merged"
    s_own.locked = locked
    s_own.won = any(h.won for h in holdings)
    rank = {"active": 0, "silent": 1, "potential": 2}
    s_own.category = min((s_own.category, m_own.category), key=lambda c: rank.get(c, 3))
    grades = [g for g in (s_own.grade, m_own.grade) if g]
    s_own.grade = min(grades) if grades else None
    s_own.grade_override = s_own.grade_override or m_own.grade_override
    follow = [t for t in (s_own.last_followup_at, m_own.last_followup_at) if t]
    s_own.last_followup_at = max(follow) if follow else None
    rule = f"merge:{record.id}"
    after = dict(to_owner_id=s_own.owner_id, to_pool_id=s_own.pool_id)
    ownership_service._record_event(
        survivor.id, "merged", actor_id=actor.id, from_owner_id=before[0],
        from_pool_id=before[1], reason=f"合并客户 #{merged.id}（{merged.name}）", rule=rule,
        **after)
    ownership_service._record_event(
        merged.id, "merged", actor_id=actor.id, from_owner_id=m_own.owner_id,
        from_pool_id=m_own.pool_id, reason=f"并入客户 #{survivor.id}（{survivor.name}）",
        rule=rule, **after)


def merge(actor: User, survivor_id: int, merged_ids: Iterable[int],
          choices: Optional[dict[str, int]] = None, cluster_id: Optional[int] = None
          ) -> list[CustomerMerge]:
    """Merge `merged_ids` into `survivor_id`; `choices` maps a field (MERGE_FIELDS) to the id
    whose value wins (the survivor's when absent). Commits; one record per merged customer."""
    require_reviewer(actor)
    merged_ids = [int(i) for i in dict.fromkeys(merged_ids) if int(i) != survivor_id]
    if not merged_ids:
        raise ValidationFailed({"merged": tr("Select at least one customer to merge")})
    choices = dict(choices or {})
    unknown = set(choices) - set(MERGE_FIELDS)
    bad = {f: i for f, i in choices.items() if i not in [survivor_id, *merged_ids]}
    if unknown or bad:
        raise ValidationFailed({f: tr("The chosen value is not one of the merged customers'")
                                for f in [*unknown, *bad]})
    try:
        survivor = _load(actor, survivor_id)
        merged = [_load(actor, i) for i in merged_ids]
        records = []
        for customer in merged:
            fields = [f for f, source in choices.items() if source == customer.id]
            records.append(_merge_pair(actor, survivor, customer, fields, cluster_id))
        from app.services.customers import refresh_row_keys

        refresh_row_keys(survivor)
        db.session.flush()
        # The merged customers' contacts moved by Core SQL: the survivor's search keys now
        # hold their names.
        search.reindex([survivor_id, *merged_ids])
        match_keys.reindex([survivor_id])
        followups.refresh_next_contact([survivor_id])  # its latest follow-up may be theirs
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return records


# --- redirects ----------------------------------------------------------------------------
def survivor_of(old_id: int) -> Optional[int]:
    """The survivor a merged id now lives on (None if the id is not a merged one)."""
    if db.session.get(Customer, old_id) is not None:
        return None
    return db.session.execute(select(CustomerRedirect.survivor_id).where(
        CustomerRedirect.old_id == old_id)).scalar_one_or_none()


def visible_survivor(actor: Optional[User], old_id: int) -> Optional[int]:
    survivor = survivor_of(old_id)
    if survivor is not None and can_see_customer(actor, survivor):
        return survivor
    return None


# A survivor's history is its own events and those of every customer merged into it, at any
# depth (a redirect is always one hop): events stay under the id they were written for.
def _in_effect():
    """The redirect's old id is free, as in survivor_of: on SQLite a new customer may be given
    it, and the events under it are then that customer's."""
    return ~exists().where(Customer.id == CustomerRedirect.old_id)


def merged_into(survivor_ids: list[int]) -> dict[int, int]:
    """{old id: survivor id} of the customers merged into these."""
    r = CustomerRedirect
    postgres = db.session.get_bind().dialect.name == "postgresql"
    return dict(db.session.execute(select(r.old_id, r.survivor_id).where(
        ownership_service.in_ids(r.survivor_id, survivor_ids, postgres), _in_effect())).all())


def history_clause(column, customer_id: int):
    """`column` (the customer id of an ownership event) is in the customer's history."""
    r = CustomerRedirect
    return or_(column == customer_id, column.in_(
        select(r.old_id).where(r.survivor_id == customer_id, _in_effect())))


def _merged_in_scope(visible) -> list[int]:
    """The merged-away ids whose survivor is in `visible` (a SELECT of Ownership.customer_id):
    each redirect (few) probes its survivor, rather than the scope's ids being gathered
    first (SQLite materialises an IN subquery: 0.4 s for 700,000 visible customers)."""
    r = CustomerRedirect
    in_scope = visible.where(Ownership.customer_id == r.survivor_id).exists()
    return db.session.execute(select(r.old_id).where(in_scope, _in_effect())).scalars().all()


def history_scope_joined(query, actor: Optional[User], column):
    """history_scope_clause for SQLite, as a join (app.security.scope_joined says why)."""
    from app.security import scope_joined

    visible = visible_customer_ids_select(actor)
    if visible is None:
        return query
    return scope_joined(query, actor, column, also_ids=_merged_in_scope(visible))


def history_scope_clause(actor: Optional[User], column):
    """`column` (the customer id of an ownership event) is in the actor's data scope: its
    customer is, or the survivor it was merged into is."""
    visible = visible_customer_ids_select(actor)
    if visible is None:
        return true()
    # The merged-away ids in scope are few: read them first, so that the usual case (none)
    # is a plain semi-join the planner estimates from its statistics. Written as one
    # subquery (an OR of two, or a UNION ALL), PostgreSQL hashed every visible customer or
    # guessed 200 of 700,000 and read every event of them: minutes at 10M events.
    merged = _merged_in_scope(visible)
    if not merged:
        return column.in_(visible)
    return or_(column.in_(visible), column.in_(sorted(set(merged))))


# --- undo ---------------------------------------------------------------------------------
def undo_refusal(record: CustomerMerge, now: Optional[dt.datetime] = None) -> Optional[str]:
    """Why this merge cannot be undone, or None."""
    now = now or utcnow()
    if record.undone_at is not None:
        return tr("Merge #%(id)s was undone at %(at)s", id=record.id,
                  at=local_text(record.undone_at))
    if now - record.created_at > dt.timedelta(days=UNDO_DAYS):
        return tr("Merge #%(id)s is more than %(days)s days old and cannot be undone",
                  id=record.id, days=UNDO_DAYS)
    later = db.session.execute(select(CustomerMerge.id).where(
        CustomerMerge.id > record.id, CustomerMerge.undone_at.is_(None),
        (CustomerMerge.survivor_id == record.survivor_id)
        | (CustomerMerge.merged_id == record.survivor_id)).order_by(
        CustomerMerge.id.desc()).limit(1)).scalar()
    if later is not None:
        return tr("Customer #%(id)s took part in merge #%(later)s since; undo that merge first",
                  id=record.survivor_id, later=later)
    if db.session.get(Customer, record.survivor_id) is None:
        return tr("The kept customer #%(id)s no longer exists; cannot undo",
                  id=record.survivor_id)
    reused = db.session.execute(select(CustomerRedirect.merge_id).where(
        CustomerRedirect.old_id == record.merged_id)).scalar_one_or_none()
    if db.session.get(Customer, record.merged_id) is not None or reused != record.id:
        return tr("Customer id #%(id)s is taken by another customer; cannot restore",
                  id=record.merged_id)
    return None


def undo(actor: User, merge_id: int) -> CustomerMerge:
    """Put the merged customer back under its id with exactly what it had. Commits."""
    require_reviewer(actor)
    record = db.session.get(CustomerMerge, merge_id)
    if record is None:
        raise NotFound(tr("The merge record does not exist"))
    why = undo_refusal(record)
    if why:
        raise Conflict(why)
    _load(actor, record.survivor_id)
    try:
        _undo(actor, record)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return record


def _standings(owner_ids: set[int]) -> dict[int, tuple[caps.Room, caps.Room]]:
    """caps.standing of each owner, locked in id order (two undos cannot deadlock)."""
    out = {}
    for owner_id in sorted(owner_ids):
        ownership_service.lock_rep(owner_id)
        out[owner_id] = caps.standing(owner_id)
    return out


def _undo(actor: User, record: CustomerMerge) -> None:
    snap, s_id, m_id = record.snapshot, record.survivor_id, record.merged_id
    c_table, o_table = Customer.__table__, Ownership.__table__
    s_own = db.session.get(Ownership, s_id)
    now_holder = (s_own.owner_id, s_own.pool_id)
    owners = {o for o in (s_own.owner_id, snap["ownership"]["owner_id"],
                          snap["survivor_ownership"]["owner_id"]) if o}
    before = _standings(owners)
    db.session.execute(insert(c_table).values(repoint.typed(c_table, snap["customer"])))
    db.session.execute(insert(o_table).values(repoint.typed(o_table, snap["ownership"])))
    restored = {k: v for k, v in snap["survivor_ownership"].items() if k != "customer_id"}
    db.session.execute(update(o_table).where(o_table.c.customer_id == s_id)
                       .values(repoint.typed(o_table, restored)))
    moves = repoint.Moves(record.moved, snap.get("dropped", {}), snap.get("rewritten", {}))
    # Merges made before history stayed in place moved the merged record's events too.
    repoint.move_back(moves, m_id, s_id,
                      also=[repoint.Reference(OwnershipEvent.__table__, "customer_id", ())])
    if snap.get("redirects"):
        db.session.execute(update(CustomerRedirect).where(
            CustomerRedirect.old_id.in_(snap["redirects"])).values(survivor_id=m_id))
    db.session.execute(delete(CustomerRedirect).where(CustomerRedirect.old_id == m_id))
    survivor = db.session.get(Customer, s_id)
    db.session.refresh(survivor)
    for column, value in repoint.typed(c_table, snap["survivor_fields"]).items():
        setattr(survivor, column, value)
    from app.services.customers import refresh_row_keys

    refresh_row_keys(survivor)
    db.session.flush()
    search.reindex([s_id, m_id])  # the contacts went back by Core SQL
    match_keys.reindex([s_id, m_id])  # and the merged customer's row
    followups.refresh_next_contact([s_id, m_id])  # and the follow-ups
    for owner_id, after in _standings(owners).items():
        caps.check_undo(owner_id, before[owner_id], after)
    m_own = snap["ownership"]
    s_back = snap["survivor_ownership"]
    rule = f"unmerge:{record.id}"
    ownership_service._record_event(
        s_id, "unmerged", actor_id=actor.id, from_owner_id=now_holder[0],
        from_pool_id=now_holder[1], to_owner_id=s_back["owner_id"],
        to_pool_id=s_back["pool_id"], reason=f"撤销合并 #{record.id}：拆出客户 #{m_id}",
        rule=rule)
    ownership_service._record_event(
        m_id, "unmerged", actor_id=actor.id, from_owner_id=now_holder[0],
        from_pool_id=now_holder[1], to_owner_id=m_own["owner_id"], to_pool_id=m_own["pool_id"],
        reason=f"撤销合并 #{record.id}：从客户 #{s_id} 恢复", rule=rule)
    record.undone_at, record.undone_by_id = utcnow(), actor.id
    if record.cluster_id is not None:
        still = db.session.execute(select(func.count()).select_from(CustomerMerge).where(
            CustomerMerge.cluster_id == record.cluster_id,
            CustomerMerge.undone_at.is_(None))).scalar_one()
        if not still:
            db.session.execute(update(DedupeCluster).where(
                DedupeCluster.id == record.cluster_id).values(status="open"))
    audit.record(actor.id, "unmerge", "customer", s_id,
                 {"merged_id": (m_id, None), "merge_id": (None, record.id)})
    audit.record(actor.id, "unmerged", "customer", m_id,
                 {"survivor_id": (s_id, None), "merge_id": (None, record.id)})


def recent_merges(limit: int = 100) -> list[CustomerMerge]:
    return db.session.execute(select(CustomerMerge).order_by(CustomerMerge.id.desc())
                              .limit(limit)).scalars().all()

