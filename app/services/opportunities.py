"""Opportunities (商机) and the pipeline: stages as data, create / edit, the one stage change
used by the form, the kanban and the API, winning (a won deal through app.services.deals) and
losing (with a reason), the kanban and the weighted pipeline, and the reclaim exemption.

Ownership follows the customer. An open opportunity has no owner of its own: its owner is its
customer's current owner (customer_ownership), so transfers, handovers, claims and reclaims
move it with no code here and nothing to keep in sync. Closing stores the owner at that
moment (closed_owner_id). Scope is the customers' scope: an open opportunity is read and
written as its customer is (reps their own, managers their department tree, admins and staff
all, auditors read); a closed one is read by whoever sees its closing owner, and changes no
more.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Optional

from sqlalchemy import and_, case, exists, func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Customer, Opportunity, OpportunityStage, OpportunityStageChange, Ownership, User
from app.models.customer import utcnow
from app.models.opportunity import DEFAULT_STAGES, STAGE_KINDS
from app.security import (ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF, Scope,
                          can_write_customer, customer_scope_clause, has_role, scope_of,
                          visible_owner_ids)
from app.services import audit, limits
from app.services.errors import (N_, UNKNOWN_FIELD, Conflict, OutOfScope, PermissionDenied,
                                 ValidationFailed, lazy_tr, tr)
from app.services.ids import whole_number_text as _whole, parse_id, parse_optional_id
from app.services.text import UNCLEAN_MESSAGE, is_unclean

MAX_AMOUNT = Decimal("999999999999.99")  # Numeric(14, 2)
FIELDS = ("customer_id", "title", "amount", "expected_close_on", "product_line", "stage_id")
EDITABLE = ("title", "amount", "expected_close_on", "product_line")
MAX_LENGTHS = {"title": 200, "product_line": 100}
LOSS_REASON = 500
CARDS_PER_COLUMN = 100  # a kanban column shows this many cards; its totals count them all
CLOSED_DAYS = 90  # the won / lost columns: opportunities closed within these days
SMALL_BOARD = 2000  # up to this many cards a board reads them all at once (kanban)
NO_SUCH_OPPORTUNITY = lazy_tr("The opportunity does not exist or is outside your data scope")
STAGE_FIELDS = ("name", "probability", "position", "kind", "protects_from_reclaim")


# --- stages ---------------------------------------------------------------------------------
def ensure_stages() -> None:
    """The default stages on a database that has none (first run; migration 0027 seeds too)."""
    if db.session.execute(select(OpportunityStage.id).limit(1)).first() is not None:
        return
    for i, (name, prob, kind, protects) in enumerate(DEFAULT_STAGES):
        db.session.add(OpportunityStage(name=name, probability=prob, position=(i + 1) * 10,
                                        kind=kind, protects_from_reclaim=protects))
    db.session.commit()


def stages() -> list[OpportunityStage]:
    """Every stage: the open ones by position, then won, then lost."""
    order = case((OpportunityStage.kind == "open", 0), (OpportunityStage.kind == "won", 1),
                 else_=2)
    return list(db.session.execute(select(OpportunityStage).order_by(
        order, OpportunityStage.position, OpportunityStage.id)).scalars())


def stage_of_kind(kind: str) -> OpportunityStage:
    return db.session.execute(select(OpportunityStage).where(
        OpportunityStage.kind == kind)).scalars().one()


def _stage(stage_id: Any, field_name: str = "stage_id") -> OpportunityStage:
    pk = parse_id(stage_id, field_name)
    found = db.session.get(OpportunityStage, pk)
    if found is None:
        raise ValidationFailed({field_name: tr("No such stage")})
    return found


def _require_admin(actor: Optional[User]) -> None:
    if not has_role(actor, ROLE_ADMIN):
        raise PermissionDenied(tr("Only admins can change the pipeline stages"))


def clean_stage(data: dict[str, Any], partial: bool = False) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("Must be an object")})
    errors: dict[str, str] = {str(k): str(UNKNOWN_FIELD) for k in set(data) - set(STAGE_FIELDS)}
    out: dict[str, Any] = {}
    if not partial or "name" in data:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or is_unclean(name):
            errors["name"] = tr("Please name the stage")
        elif limits.too_long(name.strip(), 50):
            errors["name"] = limits.too_long(name.strip(), 50)
        else:
            out["name"] = name.strip()
    for key, low, high in (("probability", 0, 100), ("position", 0, 1_000_000)):
        if not partial or key in data:
            value = data.get(key)
            if isinstance(value, str) and _whole(value):
                value = int(value.strip())
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                errors[key] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                                 field=key, min=low, max=high)
            else:
                out[key] = value
    if not partial or "kind" in data:
        kind = data.get("kind") or "open"
        if kind not in STAGE_KINDS:
            errors["kind"] = tr("The stage kind can only be: %(choices)s",
                                choices=", ".join(STAGE_KINDS))
        out["kind"] = kind
    if not partial or "protects_from_reclaim" in data:
        out["protects_from_reclaim"] = bool(data.get("protects_from_reclaim"))
    if errors:
        raise ValidationFailed(errors)
    return out


def _check_unique_stage(values: dict, exclude_id: Optional[int] = None) -> None:
    name = values.get("name")
    if name is not None and db.session.execute(select(OpportunityStage.id).where(
            OpportunityStage.name == name, OpportunityStage.id != (exclude_id or 0))).first():
        raise ValidationFailed({"name": tr("A stage with this name exists")})


def create_stage(actor: User, data: dict[str, Any]) -> OpportunityStage:
    """A new open stage (there is exactly one won and one lost stage, always)."""
    _require_admin(actor)
    values = clean_stage(data)
    if values["kind"] != "open":
        raise ValidationFailed({"kind": tr("There is exactly one won stage and one lost "
                                           "stage; a new stage is an open one")})
    _check_unique_stage(values)
    stage = OpportunityStage(**values)
    audit.record_new(actor.id, "opportunity_stage", stage)
    db.session.commit()
    return stage


def update_stage(actor: User, stage_id: Any, data: dict[str, Any]) -> OpportunityStage:
    """Rename, re-weigh, move or flag a stage; its kind does not change (one won, one lost)."""
    _require_admin(actor)
    stage = _stage(stage_id, "id")
    values = clean_stage(data, partial=True)
    if "kind" in values and values["kind"] != stage.kind:
        raise ValidationFailed({"kind": tr("A stage's kind cannot change: there is exactly one "
                                           "won stage and one lost stage")})
    _check_unique_stage(values, stage.id)
    changes = audit.diff(stage, values)
    for key, (_old, new) in changes.items():
        setattr(stage, key, new)
    if changes:
        audit.record(actor.id, "update", "opportunity_stage", stage.id, changes)
    db.session.commit()
    return stage


def delete_stage(actor: User, stage_id: Any) -> None:
    """Remove an open stage no opportunity uses (history keeps the id it named)."""
    _require_admin(actor)
    stage = _stage(stage_id, "id")
    if stage.kind != "open":
        raise Conflict(tr("The won and the lost stage cannot be deleted"), code="stage_kept")
    used = db.session.execute(select(func.count()).select_from(Opportunity).where(
        Opportunity.stage_id == stage.id)).scalar_one()
    if used:
        raise Conflict(tr("%(n)s opportunities are at stage %(name)s; move them first",
                          n=used, name=stage.name), code="stage_in_use")
    if db.session.execute(select(func.count()).select_from(OpportunityStage).where(
            OpportunityStage.kind == "open")).scalar_one() <= 1:
        raise Conflict(tr("The pipeline needs at least one open stage"), code="stage_kept")
    audit.record(actor.id, "delete", "opportunity_stage", stage.id, {"name": (stage.name, None)})
    db.session.delete(stage)
    db.session.commit()


# --- scope ----------------------------------------------------------------------------------
def _require_writer(actor: Optional[User]) -> None:
    if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF):
        raise PermissionDenied(tr("Your role cannot add or change opportunities"))


def reach(actor: Optional[User]) -> Optional[frozenset[int]]:
    """The owners whose pipeline the actor sees; None: everyone's."""
    scope = scope_of(actor)
    if scope is None:
        return frozenset()
    if scope == Scope.ALL:
        return None
    return visible_owner_ids(actor, scope)


def scope_clause(actor: Optional[User], write: bool = False):
    """WHERE clause: the opportunities the actor may read (write: change). Open ones as their
    customer (customers' scope); closed ones by the owner who closed them, read only."""
    scope = scope_of(actor)
    if scope is None:
        return Opportunity.id != Opportunity.id
    if write:
        if not has_role(actor, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF):
            return Opportunity.id != Opportunity.id
        return and_(Opportunity.status == "open",
                    customer_scope_clause(actor, Opportunity.customer_id, include_shared=False))
    if scope == Scope.ALL:
        return true()
    owners = sorted(visible_owner_ids(actor, scope))
    return or_(and_(Opportunity.status == "open",
                    customer_scope_clause(actor, Opportunity.customer_id)),
               and_(Opportunity.status != "open", Opportunity.closed_owner_id.in_(owners)))


def get_opportunity(actor: User, opportunity_id: Any, write: bool = False) -> Opportunity:
    """The opportunity if the actor may read it (write: change it); one refusal for missing
    and out of scope."""
    if write:
        _require_writer(actor)
    pk = parse_id(opportunity_id, "id")
    opp = db.session.get(Opportunity, pk)
    if opp is None or db.session.execute(select(Opportunity.id).where(
            Opportunity.id == pk, scope_clause(actor))).first() is None:
        raise OutOfScope(tr(NO_SUCH_OPPORTUNITY))
    if write and opp.status != "open":
        raise Conflict(tr("This opportunity is closed (%(status)s); it cannot change any more",
                          status=opp.status_label), code="opportunity_closed")
    if write and not can_write_customer(actor, opp.customer_id):
        raise OutOfScope(tr(NO_SUCH_OPPORTUNITY))
    return opp


def owner_of_customer(customer_id: int) -> Optional[int]:
    return db.session.execute(select(Ownership.owner_id).where(
        Ownership.customer_id == customer_id)).scalar()


def _owned_customer_for_write(actor: User, customer_id: Any) -> Customer:
    pk = parse_id(customer_id, "customer_id")
    customer = db.session.get(Customer, pk)
    if customer is None or not can_write_customer(actor, pk):
        raise ValidationFailed({"customer_id": tr(
            "The customer does not exist or is outside your data scope")})
    if owner_of_customer(pk) is None:
        raise ValidationFailed({"customer_id": tr(
            "A pool customer cannot have an opportunity; claim or assign it first")})
    return customer


# --- input ----------------------------------------------------------------------------------
def parse_amount(value: Any, errors: dict, field_name: str = "amount") -> Optional[Decimal]:
    if value is None or value == "":
        errors[field_name] = tr("Please give the amount, e.g. 12800.00")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)) \
            or (isinstance(value, str) and (is_unclean(value) or len(value) > 40)):
        errors[field_name] = tr("The amount must be a number, e.g. 12800.00")
        return None
    try:
        amount = Decimal(str(value).strip().replace(",", "")).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        errors[field_name] = tr("The amount must be a number, e.g. 12800.00")
        return None
    if not amount.is_finite() or not Decimal(0) <= amount <= MAX_AMOUNT:
        errors[field_name] = tr("The amount must be between 0 and %(max)s", max=MAX_AMOUNT)
        return None
    return amount


def _date(value: Any, errors: dict, field_name: str) -> Optional[dt.date]:
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
    errors[field_name] = tr("A date is written YYYY-MM-DD")
    return None


def clean(data: Any, partial: bool = False) -> dict[str, Any]:
    """The opportunity's fields from a form or a body, checked; ValidationFailed naming each
    bad field. `partial` (an edit): the fields given, never the customer or the stage."""
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("Must be an object")})
    allowed = EDITABLE if partial else FIELDS
    errors: dict[str, str] = {str(k): str(UNKNOWN_FIELD) for k in data if k not in allowed}
    out: dict[str, Any] = {}
    for name, limit in MAX_LENGTHS.items():
        if partial and name not in data:
            continue
        value = data.get(name)
        if value is not None and not isinstance(value, str):
            errors[name] = tr("Must be text")
            continue
        value = (value or "").strip()
        if is_unclean(value):
            errors[name] = str(UNCLEAN_MESSAGE)
        elif limits.too_long(value, limit):
            errors[name] = limits.too_long(value, limit)
        elif name == "title" and not value:
            errors[name] = tr("Please give the opportunity a title")
        out[name] = value or None
    if not partial or "amount" in data:
        out["amount"] = parse_amount(data.get("amount"), errors)
    if not partial or "expected_close_on" in data:
        out["expected_close_on"] = _date(data.get("expected_close_on"), errors,
                                         "expected_close_on")
    if not partial:
        for key in ("customer_id", "stage_id"):
            try:
                out[key] = parse_optional_id(data.get(key), key)
            except ValidationFailed as exc:
                errors.update(exc.fields)
        if "customer_id" not in errors and out.get("customer_id") is None:
            errors["customer_id"] = tr("Please choose the customer")
    if errors:
        raise ValidationFailed(errors)
    return out


def _history(opp_id: int, from_stage: Optional[int], to_stage: int, amount, actor_id,
             now: dt.datetime) -> None:
    db.session.add(OpportunityStageChange(opportunity_id=opp_id, from_stage_id=from_stage,
                                          to_stage_id=to_stage, amount=amount,
                                          actor_id=actor_id, created_at=now))


def _commit(fn):
    try:
        result = fn()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return result


# --- create and edit ------------------------------------------------------------------------
def create(actor: User, data: Any) -> Opportunity:
    """A new open opportunity on a customer the actor may write and that someone owns; at the
    first open stage unless named."""
    _require_writer(actor)
    values = clean(data)
    customer = _owned_customer_for_write(actor, values.pop("customer_id"))
    stage_id = values.pop("stage_id")
    stage = _stage(stage_id) if stage_id is not None else stages()[0]
    if stage.kind != "open":
        raise ValidationFailed({"stage_id": tr("A new opportunity starts at an open stage; "
                                               "win or lose it afterwards")})

    def go() -> Opportunity:
        now = utcnow()
        opp = Opportunity(customer_id=customer.id, stage_id=stage.id, status="open",
                          created_by_id=actor.id, created_at=now, updated_at=now, **values)
        audit.record_new(actor.id, "opportunity", opp)
        _history(opp.id, None, stage.id, opp.amount, actor.id, now)
        return opp

    return _commit(go)


def update_opportunity(actor: User, opportunity_id: Any, data: Any) -> Opportunity:
    """Edit an open opportunity's title, amount, expected close date or product line."""
    opp = get_opportunity(actor, opportunity_id, write=True)
    values = clean(data, partial=True)
    changes = audit.diff(opp, values)
    if not changes:
        return opp

    def go() -> Opportunity:
        moved = db.session.execute(
            update_stmt(opp).values(updated_at=utcnow(), **values)).rowcount
        if moved != 1:
            raise Conflict(tr("This opportunity was closed meanwhile"), code="opportunity_closed")
        audit.record(actor.id, "update", "opportunity", opp.id, changes)
        return opp

    result = _commit(go)
    db.session.refresh(result)
    return result


def update_stmt(opp: Opportunity):
    """An UPDATE of one opportunity while it is still open (of two writers one wins)."""
    return (update(Opportunity).where(Opportunity.id == opp.id, Opportunity.status == "open")
            .execution_options(synchronize_session=False))


# --- the stage change -----------------------------------------------------------------------
def change_stage(actor: User, opportunity_id: Any, stage_id: Any,
                 loss_reason: Optional[str] = None, won_on: Any = None,
                 expected_stage_id: Any = None) -> Opportunity:
    """Move an open opportunity to `stage_id` (the form, the kanban's drop and the API all call
    this). To the lost stage: a loss reason is required. To the won stage: the won deal is
    recorded on the customer (app.services.deals.record_deal: the deal, the customer won, its
    category and grade now) with the opportunity's amount and product line, in the same
    transaction. Closing stores the customer's owner at that moment. `expected_stage_id` (the
    kanban's card) refuses the move if someone moved it meanwhile."""
    from app.services import deals

    opp = get_opportunity(actor, opportunity_id, write=True)
    target = _stage(stage_id)
    if expected_stage_id not in (None, "") and parse_id(expected_stage_id,
                                                        "expected_stage_id") != opp.stage_id:
        raise Conflict(tr("Someone moved this opportunity meanwhile; refresh and try again"),
                       code="conflict")
    if target.id == opp.stage_id:
        return opp
    reason = None
    if target.kind == "lost":
        if loss_reason is not None and not isinstance(loss_reason, str):
            raise ValidationFailed({"loss_reason": tr("Must be text")})
        reason = (loss_reason or "").strip()
        if not reason:
            raise ValidationFailed({"loss_reason": tr("Losing an opportunity needs a reason")})
        if is_unclean(reason):
            raise ValidationFailed({"loss_reason": str(UNCLEAN_MESSAGE)})
        if limits.too_long(reason, LOSS_REASON):
            raise ValidationFailed({"loss_reason": limits.too_long(reason, LOSS_REASON)})
    now = utcnow()
    old_stage = opp.stage_id
    values: dict[str, Any] = {"stage_id": target.id, "status": target.kind, "updated_at": now}
    if target.kind != "open":
        owner = owner_of_customer(opp.customer_id)
        if owner is None:
            raise ValidationFailed({"stage_id": tr(
                "The customer is in a pool: claim or assign it before closing its opportunity")})
        values.update(closed_owner_id=owner, closed_at=now, loss_reason=reason)
    try:
        moved = db.session.execute(update_stmt(opp).where(
            Opportunity.stage_id == old_stage).values(**values)).rowcount
        if moved != 1:
            raise Conflict(tr("Someone moved this opportunity meanwhile; refresh and try again"),
                           code="conflict")
        # The row as it is now, under the UPDATE's lock: an edit committed after the page was
        # read (a new amount) is what the history and the won deal record.
        amount, product_line, title = db.session.execute(
            select(Opportunity.amount, Opportunity.product_line, Opportunity.title)
            .where(Opportunity.id == opp.id)).one()
        _history(opp.id, old_stage, target.id, amount, actor.id, now)
        audit.record(actor.id, "stage", "opportunity", opp.id,
                     {"stage_id": (old_stage, target.id), "status": (opp.status, target.kind),
                      **({"loss_reason": (None, reason)} if reason else {})})
        deal = None
        if target.kind == "won":
            # The move, its history, the deal and the link commit together; the deal's
            # refusals (an amount of 0, a date after today) roll the move back.
            deal = deals.record_deal(actor, opp.customer_id, {
                "amount": amount, "product_line": product_line,
                "won_on": won_on, "notes": tr("Opportunity: %(title)s", title=title)},
                commit=False)
            db.session.execute(update(Opportunity).where(Opportunity.id == opp.id)
                               .values(deal_id=deal.id))
        db.session.commit()
    except IntegrityError:
        # The stage was deleted by an admin while this move was on its way.
        db.session.rollback()
        raise Conflict(tr("Someone moved this opportunity meanwhile; refresh and try again"),
                       code="conflict")
    except Exception:
        db.session.rollback()
        raise
    if deal is not None:
        deals.classify_won(opp.customer_id)
    db.session.refresh(opp)
    return opp


def win(actor: User, opportunity_id: Any, won_on: Any = None) -> Opportunity:
    return change_stage(actor, opportunity_id, stage_of_kind("won").id, won_on=won_on)


def lose(actor: User, opportunity_id: Any, loss_reason: str) -> Opportunity:
    return change_stage(actor, opportunity_id, stage_of_kind("lost").id,
                        loss_reason=loss_reason)


def history(opportunity_id: int) -> list[OpportunityStageChange]:
    return list(db.session.execute(select(OpportunityStageChange).where(
        OpportunityStageChange.opportunity_id == opportunity_id)
        .order_by(OpportunityStageChange.id)).scalars())


def for_customer(actor: User, customer_id: int, limit: int = 50) -> list[Opportunity]:
    """The customer page's opportunities the actor may read: open first, newest first."""
    return list(db.session.execute(
        select(Opportunity).where(Opportunity.customer_id == customer_id, scope_clause(actor))
        .options(joinedload(Opportunity.stage))
        .order_by(Opportunity.status != "open", Opportunity.id.desc()).limit(limit)).scalars())


# --- owner, kanban and pipeline -------------------------------------------------------------
def owner_column():
    """An opportunity's owner as a column (needs the join with customer_ownership)."""
    return case((Opportunity.status == "open", Ownership.owner_id),
                else_=Opportunity.closed_owner_id)


def owners_for_board(actor: User, owner_id: Any = None, team: bool = False
                     ) -> Optional[list[int]]:
    """The owners a kanban shows: one owner (the actor by default) or the actor's team (None:
    everyone, for those who see every record). OutOfScope for an owner out of reach."""
    owners = reach(actor)
    if team:
        return None if owners is None else sorted(owners)
    pk = parse_optional_id(owner_id, "owner_id") or actor.id
    if owners is not None and pk not in owners:
        raise OutOfScope(tr("The user does not exist or is outside your data scope"))
    return [pk]


@dataclass
class Column:
    stage: OpportunityStage
    cards: list = field(default_factory=list)
    count: int = 0
    total: Decimal = Decimal(0)

    @property
    def weighted(self) -> Decimal:
        return (self.total * self.stage.probability / 100).quantize(Decimal("0.01"))


@dataclass
class Board:
    columns: list[Column]
    owners: Optional[list[int]]

    @property
    def open_total(self) -> Decimal:
        return sum((c.total for c in self.columns if c.stage.kind == "open"), Decimal(0))

    @property
    def weighted_pipeline(self) -> Decimal:
        return sum((c.weighted for c in self.columns if c.stage.kind == "open"), Decimal(0))


def _owned_by(owners: Optional[list[int]], closed: bool):
    """Opportunities of `owners` (None: everyone's): open ones through their customer's
    owner, closed ones by their closing owner within CLOSED_DAYS."""
    if closed:
        since = utcnow() - dt.timedelta(days=CLOSED_DAYS)
        where = [Opportunity.status != "open", Opportunity.closed_at >= since]
        if owners is not None:
            where.append(Opportunity.closed_owner_id.in_(owners))
        return select(Opportunity).where(*where)
    q = select(Opportunity).where(Opportunity.status == "open")
    if owners is not None:
        q = q.join(Ownership, Ownership.customer_id == Opportunity.customer_id).where(
            Ownership.owner_id.in_(owners))
    return q


def pipeline_sums(owners: Optional[list[int]]) -> dict[int, tuple[int, Decimal]]:
    """{stage id: (count, Σ amount)} of the owners' open opportunities and those closed within
    CLOSED_DAYS: two grouped statements."""
    out: dict[int, tuple[int, Decimal]] = {}
    for closed in (False, True):
        base = _owned_by(owners, closed).subquery()
        for stage_id, n, total in db.session.execute(
                select(base.c.stage_id, func.count(), func.coalesce(func.sum(base.c.amount), 0))
                .group_by(base.c.stage_id)):
            out[stage_id] = (n, Decimal(total))
    return out


def kanban(actor: User, owner_id: Any = None, team: bool = False,
           per_column: int = CARDS_PER_COLUMN) -> Board:
    """The kanban of one owner or a team: a column per open stage (then won and lost, closed
    within CLOSED_DAYS), at most `per_column` cards each (largest amount first), with each
    column's count and Σ amount over all its cards, and the weighted pipeline
    Σ amount × probability of the open stages."""
    owners = owners_for_board(actor, owner_id, team)
    all_stages = stages()
    sums = pipeline_sums(owners)
    columns = []
    for stage in all_stages:
        n, total = sums.get(stage.id, (0, Decimal(0)))
        columns.append(Column(stage, [], n, total))
    order = (Opportunity.amount.desc(), Opportunity.id.desc())
    by_stage: dict[int, list] = {}
    if sum(c.count for c in columns) <= SMALL_BOARD:
        # A rep's board: every card in two statements (open, closed) through the owner's
        # customers, cut per column here. (Per column, the planner would walk the stage's
        # amount index past everyone else's cards.)
        for closed in (False, True):
            for row in db.session.execute(_card_rows(owners, closed).order_by(*order)):
                by_stage.setdefault(row.stage_id, []).append(row)
    else:
        # A team's board: one statement per column, walking the stage's (stage, amount)
        # index largest first and stopping after a column's cards.
        for col in columns:
            if col.count:
                by_stage[col.stage.id] = list(db.session.execute(
                    _card_rows(owners, col.stage.kind != "open")
                    .where(Opportunity.stage_id == col.stage.id)
                    .order_by(*order).limit(per_column)))
    names = _user_names({r.owner_id for rows in by_stage.values() for r in rows})
    for col in columns:
        col.cards = [Card(r.id, r.title, r.amount, r.stage_id, r.status, r.customer_id,
                          r.customer_name, names.get(r.owner_id, "—"))
                     for r in by_stage.get(col.stage.id, [])[:per_column]]
    return Board(columns, owners)


@dataclass(frozen=True)
class Card:
    """What a kanban card shows (plain values: a board of a thousand cards builds no ORM
    objects)."""

    id: int
    title: str
    amount: Decimal
    stage_id: int
    status: str
    customer_id: int
    customer_name: str
    owner_label: str


def _card_rows(owners: Optional[list[int]], closed: bool):
    """The cards' columns of the owners' open (or recently closed) opportunities."""
    cols = (Opportunity.id, Opportunity.title, Opportunity.amount, Opportunity.stage_id,
            Opportunity.status, Opportunity.customer_id, Customer.name.label("customer_name"))
    if closed:
        since = utcnow() - dt.timedelta(days=CLOSED_DAYS)
        q = select(*cols, Opportunity.closed_owner_id.label("owner_id")).join(
            Customer, Customer.id == Opportunity.customer_id).where(
            Opportunity.status != "open", Opportunity.closed_at >= since)
        return q if owners is None else q.where(Opportunity.closed_owner_id.in_(owners))
    q = select(*cols, Ownership.owner_id.label("owner_id")).join(
        Customer, Customer.id == Opportunity.customer_id).join(
        Ownership, Ownership.customer_id == Opportunity.customer_id).where(
        Opportunity.status == "open")
    return q if owners is None else q.where(Ownership.owner_id.in_(owners))


def _user_names(ids: set) -> dict[int, str]:
    ids = sorted(i for i in ids if i is not None)
    if not ids:
        return {}
    return {u.id: u.display_name for u in db.session.execute(
        select(User).where(User.id.in_(ids))).scalars()}


# --- reclaim exemption ----------------------------------------------------------------------
def _protecting(*columns):
    """SELECT `columns` FROM the open opportunities at a stage that protects from reclaim:
    the rule, once, for each form below."""
    return (select(*columns)
            .join(OpportunityStage, OpportunityStage.id == Opportunity.stage_id)
            .where(Opportunity.status == "open",
                   OpportunityStage.protects_from_reclaim.is_(True)))


def protected_customers_clause(customer_id_column, no_followup_cut):
    """True for a customer with an open opportunity at a stage that protects from reclaim,
    updated since `no_followup_cut` (now − the owner's no-follow-up days; a datetime or a SQL
    expression): the reclaim sweep and its warnings leave such a customer with its owner."""
    return exists(_protecting(Opportunity.id).where(
        Opportunity.customer_id == customer_id_column,
        Opportunity.updated_at >= no_followup_cut))


def protecting_since(customer_id_column):
    """The latest update of the customer's open opportunities at a protecting stage (NULL
    without one), as a scalar subquery: the protection lasts the owner's no-follow-up days
    from it, so the customer's reclaim moves to then at the earliest (reclaim.deadline)."""
    return _protecting(func.max(Opportunity.updated_at)).where(
        Opportunity.customer_id == customer_id_column).scalar_subquery()


def protecting_since_of_owner(owner_id):
    """protecting_since for every customer of one owner at once: (customer_id, since) of
    those with a protecting opportunity, as a subquery to outer-join. A list over tens of
    thousands of the owner's customers joins it once instead of running protecting_since
    per row (23,000 subplans were 165 ms of the workbench at 1M)."""
    return (_protecting(Opportunity.customer_id,
                        func.max(Opportunity.updated_at).label("since"))
            .join(Ownership, Ownership.customer_id == Opportunity.customer_id)
            .where(Ownership.owner_id == owner_id)
            .group_by(Opportunity.customer_id).subquery("protecting"))


# --- API shape ------------------------------------------------------------------------------
def to_dict(opp: Opportunity) -> dict:
    from app.services.times import rfc3339

    owner = opp.owner
    return {"id": opp.id, "customer_id": opp.customer_id,
            "customer_name": opp.customer.name if opp.customer else None,
            "title": opp.title, "amount": str(opp.amount),
            "weighted_amount": str(opp.weighted_amount),
            "expected_close_on": opp.expected_close_on.isoformat()
            if opp.expected_close_on else None,
            "product_line": opp.product_line, "stage_id": opp.stage_id,
            "stage": opp.stage.name if opp.stage else None,
            "probability": opp.stage.probability if opp.stage else None,
            "status": opp.status, "loss_reason": opp.loss_reason,
            "owner": {"id": owner.id, "username": owner.username} if owner else None,
            "deal_id": opp.deal_id, "closed_at": rfc3339(opp.closed_at),
            "created_at": rfc3339(opp.created_at), "updated_at": rfc3339(opp.updated_at)}


def parse_ids(values: Iterable) -> list[int]:
    return [parse_id(v, "id") for v in values]
