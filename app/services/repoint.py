"""Re-point every row that references a customer id to another customer, and put it back.

The rows are found by introspecting the metadata's foreign keys to customer.id, so a table
added later is not forgotten, plus the tables that keep a customer id without a foreign key
(SOFT_REFERENCES). Where a unique key would then hold twice (a share for the same user, a
reclaim warning of the same cycle, a care greeting for the same occasion), the old id's row is
dropped instead. What was moved, dropped and rewritten comes back as plain JSON (Moves), to be
stored and handed to move_back() later: app.services.merge stores it with each merge and
undoes it.
"""
from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from flask_appbuilder import Model
from sqlalchemy import Date, DateTime, Numeric, Table, and_, delete, insert, select, update

from app.extensions import db
from app.models import Customer, Ownership

# Customer ids kept without a foreign key (rows that outlive a customer): moved too. Not
# ownership_event: history stays where it was written (app.services.merge.history_clause).
SOFT_REFERENCES = (("transfer_item", "customer_id"),)
# Keys derived from the customer's own rows (app.services.search and match_keys): rewritten
# after a merge or its undo, never moved.
DERIVED = frozenset({"customer_search_gram", "customer_search_text", "customer_match_key"})


# --- rows as JSON (stored, then put back) ------------------------------------------------
def plain(value: Any) -> Any:
    """A column value as JSON can hold it."""
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def typed(table: Table, values: dict) -> dict:
    """plain() values back as the table's column types."""
    out = {}
    for key, value in values.items():
        column = table.c[key]
        if isinstance(value, str) and isinstance(column.type, DateTime):
            value = dt.datetime.fromisoformat(value)
        elif isinstance(value, str) and isinstance(column.type, Date):
            value = dt.date.fromisoformat(value)
        elif isinstance(value, str) and isinstance(column.type, Numeric):
            value = decimal.Decimal(value)
        out[key] = value
    return out


def row_json(table: Table, where) -> Optional[dict]:
    """The row matching `where`, as plain() values (None if there is none)."""
    row = db.session.execute(select(table).where(where)).mappings().first()
    return {k: plain(v) for k, v in row.items()} if row else None


# --- references to customer.id ------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    table: Table
    column: str
    uniques: tuple[tuple[str, ...], ...]  # unique keys that would hold twice after a move

    @property
    def key(self) -> str:
        return f"{self.table.name}.{self.column}"


def _unique_keys(table: Table, column: str) -> tuple[tuple[str, ...], ...]:
    from sqlalchemy import Index, UniqueConstraint

    keys = [tuple(c.name for c in con.columns) for con in table.constraints
            if isinstance(con, UniqueConstraint)]
    keys += [tuple(c.name for c in ix.columns) for ix in table.indexes
             if isinstance(ix, Index) and ix.unique]
    rewritten = set(REWRITES.get(table.name, {}).keys())
    return tuple(k for k in keys if column in k or rewritten & set(k))


def references() -> list[Reference]:
    """Every (table, column) that holds a customer id, except the ownership row."""
    import app.models  # noqa: F401  (every table registered)

    customer_id = Customer.__table__.c.id
    found = []
    for table in Model.metadata.sorted_tables:
        if table is Ownership.__table__ or table.name in DERIVED:
            continue
        for fk in table.foreign_keys:
            if fk.column is customer_id:
                found.append((table, fk.parent.name))
    for name, column in SOFT_REFERENCES:
        found.append((Model.metadata.tables[name], column))
    return [Reference(t, c, _unique_keys(t, c)) for t, c in found]


def _care_recipient(row: dict, old_id: int, new_id: int) -> dict:
    """A greeting addressed to the customer itself is keyed "customer:<id>"."""
    if row.get("recipient_key") == f"customer:{old_id}":
        return {"recipient_key": f"customer:{new_id}"}
    return {}


# Columns besides the customer id whose value names the customer (table -> column -> how).
REWRITES = {"care_message": {"recipient_key": _care_recipient}}


def _keep_stamps(table: Table) -> dict:
    """SET col = col for columns with an onupdate default (updated_at): re-pointing a row
    is not an edit of it, and undo must find it as it was."""
    return {c.name: c for c in table.c if c.onupdate is not None}


def _pk_columns(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def _where_pk(table: Table, values: list) -> Any:
    return and_(*(table.c[c] == v for c, v in zip(_pk_columns(table), values)))


def _move_rows(ref: Reference, old_id: int, new_id: int) -> tuple[list, list, list]:
    """Re-point ref's rows from old_id to new_id: (moved primary keys as they were,
    dropped rows, [primary key as it was, {column: old value}] of rewritten columns)."""
    table, col = ref.table, ref.table.c[ref.column]
    pk = _pk_columns(table)
    rewrites = REWRITES.get(table.name, {})
    if not ref.uniques and not rewrites and ref.column not in pk:
        moved = [list(r) for r in db.session.execute(
            select(*(table.c[c] for c in pk)).where(col == old_id)).all()]
        if moved:
            db.session.execute(update(table).where(col == old_id).values(
                {ref.column: new_id, **_keep_stamps(table)}))
        return moved, [], []
    moved, dropped, rewritten = [], [], []
    rows = db.session.execute(select(table).where(col == old_id)).mappings().all()
    for row in rows:
        row = dict(row)
        changes = {ref.column: new_id}
        for column, how in rewrites.items():
            changes.update(how(row, old_id, new_id))
        after = dict(row, **changes)
        key = [row[c] for c in pk]
        if any(_taken(table, unique, after, key) for unique in ref.uniques):
            dropped.append({k: plain(v) for k, v in row.items()})
            db.session.execute(delete(table).where(_where_pk(table, key)))
            continue
        db.session.execute(update(table).where(_where_pk(table, key))
                           .values(dict(_keep_stamps(table), **changes)))
        moved.append(key)
        old = {c: row[c] for c in changes if c != ref.column}
        if old:
            rewritten.append([key, old])
    return moved, dropped, rewritten


def _taken(table: Table, unique: tuple[str, ...], values: dict, own_key: list) -> bool:
    """Another row already holds these values of a unique key."""
    if any(values.get(c) is None for c in unique):
        return False  # NULLs never collide
    conds = [table.c[c] == values[c] for c in unique]
    pk = _pk_columns(table)
    conds.append(~and_(*(table.c[c] == v for c, v in zip(pk, own_key))))
    return db.session.execute(select(table.c[pk[0]]).where(*conds).limit(1)).first() is not None


@dataclass
class Moves:
    """What move_references() did, by Reference.key, as JSON."""
    moved: dict[str, list] = field(default_factory=dict)      # primary keys as they were
    dropped: dict[str, list] = field(default_factory=dict)    # whole rows
    rewritten: dict[str, list] = field(default_factory=dict)  # [primary key, {column: old}]


def move_references(old_id: int, new_id: int) -> Moves:
    """Re-point every row that references old_id to new_id."""
    moves = Moves()
    for ref in references():
        rows, dropped, rewritten = _move_rows(ref, old_id, new_id)
        if rows:
            moves.moved[ref.key] = rows
        if dropped:
            moves.dropped[ref.key] = dropped
        if rewritten:
            moves.rewritten[ref.key] = rewritten
    return moves


def move_back(moves: Moves, old_id: int, new_id: int, also: Iterable[Reference] = ()) -> None:
    """Undo move_references(old_id, new_id): exactly the rows it moved go back to old_id,
    rewritten columns get their old values, dropped rows come back. `also`: references no
    longer re-pointed that older stored Moves may still hold."""
    refs = {ref.key: ref for ref in [*references(), *also]}
    for key, keys in moves.moved.items():
        ref = refs.get(key)
        if ref is None:
            continue  # a table dropped since: nothing to move back
        for pk_values in keys:
            where = [ref.table.c[c] == (new_id if c == ref.column else v)
                     for c, v in zip(_pk_columns(ref.table), pk_values)]
            db.session.execute(update(ref.table).where(*where, ref.table.c[ref.column] == new_id)
                               .values({ref.column: old_id, **_keep_stamps(ref.table)}))
    for key, rows in moves.rewritten.items():
        ref = refs.get(key)
        for pk_values, old in rows if ref else []:
            db.session.execute(update(ref.table).where(_where_pk(ref.table, pk_values))
                               .values(dict(_keep_stamps(ref.table), **old)))
    for key, rows in moves.dropped.items():
        ref = refs.get(key)
        for row in rows if ref else []:
            db.session.execute(insert(ref.table).values(typed(ref.table, row)))
