"""Ownership primitives: where a new customer goes, the rep lock, and the event log.

Every change of owner or pool goes through `_record_event`; nothing edits or deletes events.
The claim / release / transfer engine builds on these.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

from sqlalchemy import ARRAY, Integer, any_, bindparam, insert, literal_column, select, update

from app.database import rows_of
from app.extensions import db
from app.models import Department, Ownership, OwnershipEvent, Pool, User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.services import caps
from app.services.errors import N_, NotFound, ValidationFailed, tr

# 客服 own nothing, as marketing (msgid): a dedicated service agent sits beside the owner.
SERVICE_OWNS_NOTHING = N_("%(name)s works in customer service and cannot own customers or "
                          "leads")


def default_pool() -> Pool:
    """The default customer pool (lead pools have their own, app.services.leads)."""
    pool = db.session.execute(select(Pool).where(
        Pool.is_default.is_(True), Pool.record_type == "customer")).scalars().first()
    if pool is None:
        raise NotFound(tr("No default pool is set up; run flask crm init first"),
                       code="no_default_pool")
    return pool


def customer_pool(pool_id: Optional[int], field: str = "pool") -> Pool:
    """The customer pool `pool_id`; ValidationFailed naming `field` if there is none (a lead
    pool never holds customers)."""
    pool = db.session.get(Pool, pool_id) if pool_id is not None else None
    if pool is None or pool.record_type != "customer":
        raise ValidationFailed({field: tr("The pool does not exist")})
    return pool


def lock_rep(user_id: int) -> None:
    """Serialise every ownership change for one rep until the transaction ends.

    An UPDATE of the rep's row takes a row lock on PostgreSQL and the write lock on SQLite,
    so two requests cannot both count the rep's customers and both squeeze in under the cap
    (app.services.caps counts them).
    """
    db.session.execute(update(User).where(User.id == user_id).values(changed_on=User.changed_on))


_USER = User.__table__


@lru_cache(maxsize=1)
def _lock_active_rep():
    # Built once (lazily: app.security's role tables): the claim path runs it on every
    # request, and building it cost more than running it. RETURNING brings the department
    # path and the marketing-only flag along, saving their queries.
    from app.security import (ROLE_ADMIN, ROLE_MANAGER, ROLE_MARKETING, ROLE_REP,
                              ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER, ROLE_STAFF)

    def holds(*names: str) -> str:
        # Written out: SQLite's RETURNING drops the table names SQLAlchemy would write, which
        # makes ab_role.id and ab_user_role.id ambiguous. The names are our constants.
        quoted = ", ".join("'" + n.replace("'", "''") + "'" for n in names)
        return ("EXISTS (SELECT 1 FROM ab_user_role ur JOIN ab_role r ON r.id = ur.role_id "
                f"WHERE ur.user_id = ab_user.id AND r.name IN ({quoted}))")

    marketing_only = literal_column(
        f"({holds(ROLE_MARKETING)} AND NOT {holds(ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF)})")
    service_only = literal_column(
        f"({holds(ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER)} AND NOT "
        f"{holds(ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF)})")
    return (
        update(_USER).where(_USER.c.id == bindparam("user_id"))
        .values(changed_on=_USER.c.changed_on)
        .returning(_USER.c.active, _USER.c.employment_status, _USER.c.department_id,
                   _USER.c.username,
                   select(Department.__table__.c.path)
                   .where(Department.__table__.c.id == _USER.c.department_id)
                   .scalar_subquery().label("department_path"),
                   marketing_only.label("marketing_only"),
                   service_only.label("service_only")))


def lock_active_rep(user_id: int, connection=None):
    """lock_rep and fetch (active, employment_status, department_id, username,
    department_path, marketing_only, service_only) in one statement; ValidationFailed if the user cannot
    own customers or leads (deactivated, departed, or marketing only: the same rule as
    ensure_active_owner, here for every path that locks its owner — lead create, assign,
    import, handover, claims; service only likewise). `connection`: the session's, if the caller already has it."""
    connection = connection if connection is not None else db.session.connection()
    rows = rows_of(connection, _lock_active_rep(), {"user_id": user_id})
    row = rows[0] if rows else None
    if row is None:
        raise ValidationFailed({"owner": tr("The owner does not exist")})
    if not row.active or row.employment_status != EMPLOYMENT_ACTIVE:
        raise ValidationFailed({"owner": tr("%(name)s is deactivated or departed and cannot be an "
                                          "owner", name=row.username)})
    if row.marketing_only:
        raise ValidationFailed({"owner": tr("%(name)s works in marketing and cannot own "
                                            "customers or leads", name=row.username)})
    if row.service_only:
        raise ValidationFailed({"owner": tr(SERVICE_OWNS_NOTHING, name=row.username)})
    return row


def ensure_active_owner(user_id: int) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise ValidationFailed({"owner": tr("The owner does not exist")})
    if not user.active or user.employment_status != EMPLOYMENT_ACTIVE:
        raise ValidationFailed({"owner": tr("%(name)s is deactivated or departed and cannot be an "
                                          "owner", name=user.display_name)})
    from app.security import marketing_only, service_only

    if marketing_only(user):
        raise ValidationFailed({"owner": tr("%(name)s works in marketing and cannot own "
                                            "customers or leads", name=user.display_name)})
    if service_only(user):
        raise ValidationFailed({"owner": tr(SERVICE_OWNS_NOTHING, name=user.display_name)})
    return user


def _record_event(customer_id: int, kind: str, *, actor_id: Optional[int],
                  from_owner_id: Optional[int] = None, from_pool_id: Optional[int] = None,
                  to_owner_id: Optional[int] = None, to_pool_id: Optional[int] = None,
                  reason: Optional[str] = None, rule: Optional[str] = None) -> OwnershipEvent:
    event = OwnershipEvent(
        customer_id=customer_id, kind=kind, actor_id=actor_id,
        from_owner_id=from_owner_id, from_pool_id=from_pool_id,
        to_owner_id=to_owner_id, to_pool_id=to_pool_id, reason=reason, rule=rule,
        created_at=utcnow())
    db.session.add(event)
    return event


def place_new_customer(customer, *, actor_id: Optional[int], owner_id: Optional[int],
                       pool_id: Optional[int], how: str = "created",
                       reason: Optional[str] = None, rule: Optional[str] = None) -> Ownership:
    """Attach the ownership row and the 'created' event to a customer being inserted.

    Exactly one of owner_id / pool_id. The owner is locked and cap-checked here; the caller
    commits the customer, its ownership and the event in one transaction.
    """
    if (owner_id is None) == (pool_id is None):
        raise ValueError("exactly one of owner_id, pool_id")
    if owner_id is not None:
        ensure_active_owner(owner_id)
        lock_rep(owner_id)
        caps.check_cap(owner_id, 1)
    else:
        customer_pool(pool_id)
    now = utcnow()
    ownership = Ownership(owner_id=owner_id, pool_id=pool_id, acquired_at=now, acquired_how=how,
                          first_owner_id=owner_id, locked=False, won=False)
    customer.ownership = ownership
    db.session.flush()  # gives the customer its id for the event
    _record_event(customer.id, "created", actor_id=actor_id, to_owner_id=owner_id,
                  to_pool_id=pool_id, reason=reason or "新建客户", rule=rule)
    return ownership


def record_deletion(customer_id: int, ownership: Optional[Ownership], actor_id: Optional[int],
                    reason: str) -> None:
    _record_event(customer_id, "deleted", actor_id=actor_id,
                  from_owner_id=ownership.owner_id if ownership else None,
                  from_pool_id=ownership.pool_id if ownership else None, reason=reason)


def move_from_pool(customer_ids: list[int], owner_id: int, *, now, how: str = "claimed") -> int:
    """Give pool customers to owner_id; returns how many were still in a pool (the WHERE
    re-checks it, so a concurrent claim makes this count fall short)."""
    return db.session.execute(
        update(Ownership)
        .where(Ownership.customer_id.in_(customer_ids), Ownership.pool_id.is_not(None))
        .values(owner_id=owner_id, pool_id=None, acquired_at=now, acquired_how=how,
                last_followup_at=None, locked=False)).rowcount


_OWNERSHIP = Ownership.__table__
_EVENT = OwnershipEvent.__table__


def _typed(name: str, column):
    return bindparam(name, type_=column.type)


def _on_postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def ids_param(postgres: bool, value: Optional[list[int]] = None):
    """The bind parameter "ids" for ids_match: on PostgreSQL one array, elsewhere an expanding
    IN list. As an IN list, thousands of ids become thousands of placeholders that the
    driver and the planner parse on every call."""
    if postgres:
        return bindparam("ids", value, type_=ARRAY(Integer))
    return bindparam("ids", value, expanding=True)


def ids_match(column, ids, postgres: bool):
    """`column IN ids` for an ids_param()."""
    return column == any_(ids) if postgres else column.in_(ids)


def in_ids(column, values: list[int], postgres: bool):
    """`column IN values` with the values bound now (ids_param binds them at execution): on
    PostgreSQL one array parameter of its own, so several can stand in one statement."""
    if postgres:
        return column == any_(bindparam("ids", values, type_=ARRAY(Integer), unique=True))
    return column.in_(values)


@lru_cache(maxsize=None)
def _take_statements(postgres: bool) -> tuple:
    """(move, log) for take_from_pool, built once per backend. On PostgreSQL one statement
    moves and logs (the UPDATE's RETURNING feeds the INSERT; its ids are returned because the
    rowcount of such a statement is not reported) and log is None. Elsewhere (SQLite) the log
    reads back the rows the move just took: this owner, this acquired_at, which no earlier
    holding can share."""
    o = _OWNERSHIP
    ids = ids_param(postgres)
    move = (update(o).where(ids_match(o.c.customer_id, ids, postgres),
                            o.c.pool_id == bindparam("from_pool"))
            .values(owner_id=bindparam("to_owner"), pool_id=None, acquired_at=bindparam("now"),
                    acquired_how=bindparam("how"), last_followup_at=None, locked=False))
    if postgres:
        moved = move.returning(o.c.customer_id).cte("moved")
        return log_moves_select(moved).add_cte(moved).returning(_EVENT.c.customer_id), None
    taken = select(o.c.customer_id).where(ids_match(o.c.customer_id, ids, postgres),
                                          o.c.owner_id == bindparam("to_owner"),
                                          o.c.acquired_at == bindparam("now"))
    return move, log_moves_select(taken.subquery())


def log_moves_select(moved, **values):
    """INSERT of one event per row of `moved` (anything with a customer_id column; its
    from_pool column, if it has one, names the pool each came from, else the bind parameter
    from_pool does), the rest from bind parameters: kind, to_owner, actor_id, reason, rule,
    now; `values` puts SQL expressions in place of any of them (a statement built for one
    kind of move writes its constants into the SQL: fewer parameters to send each time)."""
    e = _EVENT.c
    from_pool = (moved.c.from_pool if "from_pool" in moved.c
                 else _typed("from_pool", e.from_pool_id))

    def value(name, column):
        return values[name] if name in values else _typed(name, column)

    return insert(_EVENT).from_select(
        ["customer_id", "kind", "from_pool_id", "to_owner_id", "actor_id", "reason", "rule",
         "created_at"],
        select(moved.c.customer_id, value("kind", e.kind), from_pool,
               value("to_owner", e.to_owner_id), value("actor_id", e.actor_id),
               value("reason", e.reason), value("rule", e.rule), value("now", e.created_at)))


def sql_text(value: str, column):
    """`value` written into the SQL as a string literal of `column`'s type (for constants of
    statements built once; never for what users type)."""
    return literal_column("'" + value.replace("'", "''") + "'", column.type)


def take_from_pool(by_pool: dict[int, list[int]], owner_id: int, *, now, how: str,
                   event: dict) -> int:
    """Give pool customers to owner_id and log an event for each (`event`: kind, actor_id,
    reason, rule), each customer only if it is still in the pool it was checked in
    (`by_pool` maps that pool to its customers). Returns how many moved: a concurrent claim
    or move makes it fall short, and the caller then rolls back (all or nothing)."""
    conn = db.session.connection()
    move, log = _take_statements(conn.dialect.name == "postgresql")
    params = {"to_owner": owner_id, "now": now, "how": how, "rule": None, **event}
    moved = 0
    for pool_id, customer_ids in by_pool.items():
        for chunk in chunks(customer_ids):
            args = dict(params, ids=chunk, from_pool=pool_id)
            if log is None:
                moved += len(conn.execute(move, args).all())
            else:
                moved += conn.execute(move, args).rowcount
                conn.execute(log, args)
    return moved


_EVENT_COLUMNS = ("from_owner_id", "from_pool_id", "to_owner_id", "to_pool_id", "reason", "rule")


def record_events(rows: list[dict], now) -> None:
    """Append many ownership events at once (COPY on PostgreSQL, see app.services.bulk)."""
    from app.services import bulk

    for row in rows:
        row.setdefault("created_at", now)
        row.setdefault("actor_id", None)
        for key in _EVENT_COLUMNS:
            row.setdefault(key, None)
    bulk.insert_rows(OwnershipEvent.__table__, rows)


CHUNK = 5000  # ids per IN list: large batches stay well under driver parameter limits


def chunks(ids: list[int], size: int = CHUNK):
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def snapshot(customer_ids: list[int]) -> dict:
    """Plain rows (not ORM objects, which a bulk UPDATE would rewrite in place) of the
    ownership of these customers, keyed by customer id."""
    postgres = _on_postgres()
    out = {}
    for chunk in chunks(customer_ids):
        rows = db.session.execute(
            select(Ownership.customer_id, Ownership.owner_id, Ownership.pool_id,
                   Ownership.previous_owner_id, Ownership.released_at, Ownership.locked)
            .where(ids_match(Ownership.customer_id, ids_param(postgres, chunk), postgres))).all()
        out.update((r.customer_id, r) for r in rows)
    return out


def move_between_pools(customer_ids: list[int], pool_id: int) -> int:
    return db.session.execute(
        update(Ownership)
        .where(Ownership.customer_id.in_(customer_ids), Ownership.pool_id.is_not(None))
        .values(pool_id=pool_id)).rowcount
