"""What each owner holds, without counting their book on every read.

Triggers on customer_ownership (migration 0047) append one change row (+1 / -1 per count)
to owner_tally for every ownership row that enters, leaves or changes state under an owner:
every write path is covered, the services' and a raw UPDATE alike. An owner's counts are
the sum of their rows there (the base row, and the change rows since the last `fold`,
every minute), read in one statement, so in one snapshot: a claim checks its cap against a
few rows, not against the 35,000 customers a large book holds, and the team view reads its
counts the same way.

The counts: held, locked, won, unlocked_unwon (the cap without won customers) and fresh
(not won, never followed up); the rest are differences (`unlocked` = held - locked,
`following` = held - won - fresh).
"""
from __future__ import annotations

from typing import Iterable

from sqlalchemy import BigInteger, cast, func, select, text, true

from app.extensions import db
from app.models import Ownership, owner_tally
from app.models.ownership import TALLY_COLUMNS

# The counts that are differences: name -> (count, counts taken away from it).
_DERIVED = {"unlocked": ("held", ("locked",)), "following": ("held", ("won", "fresh"))}


def _sum(part, name: str):
    """The sum of count `name` over an owner's rows, an integer on every database
    (PostgreSQL's sum of bigints is a numeric)."""
    expr = part.c[name] if name not in _DERIVED else part.c[_DERIVED[name][0]]
    for n in _DERIVED.get(name, (None, ()))[1]:
        expr = expr - part.c[n]
    return cast(func.coalesce(func.sum(expr), 0), BigInteger)


def count_select(owner_id, name: str):
    """One owner's count `name` (a TALLY_COLUMNS name, "unlocked" or "following") as a
    scalar subquery; `owner_id` may be a bind parameter or a column, for statements built
    once."""
    return select(_sum(owner_tally, name)).where(owner_tally.c.owner_id == owner_id) \
        .scalar_subquery()


def one_owner_select(owner_id, names: Iterable[str]):
    """One row: one owner's counts `names` (0 for an owner holding nothing); more columns
    can be added to it (`.add_columns`), read in the same snapshot."""
    return select(*(_sum(owner_tally, n).label(n) for n in names)).where(
        owner_tally.c.owner_id == owner_id)


def counts_select(owner_ids_clause, names: Iterable[str] = ("held", "unlocked", "locked",
                                                              "won", "unlocked_unwon",
                                                              "fresh")):
    """(owner_id, *names) of the owners `owner_ids_clause(column)` selects, grouped: one row
    per owner that holds or held anything."""
    t = owner_tally
    return select(t.c.owner_id, *(_sum(t, n).label(n) for n in names)) \
        .where(owner_ids_clause(t.c.owner_id)).group_by(t.c.owner_id)


def read(statement):
    """Execute a statement over the tally, after writing the session's pending ORM changes:
    the tally is a Core table, so the session would not flush them by itself, and the
    triggers count only what reached the database."""
    db.session.flush()
    return db.session.execute(statement)


def counts_of(owner_ids: list[int]) -> dict[int, dict[str, int]]:
    """{owner id: {count: n}} for the given owners (those holding nothing have no entry)."""
    if not owner_ids:
        return {}
    rows = read(counts_select(lambda col: col.in_(sorted(set(owner_ids))))).all()
    return {r.owner_id: {k: int(v) for k, v in r._mapping.items() if k != "owner_id"}
            for r in rows}


def fold() -> int:
    """Add the change rows into each owner's base row and drop them; how many were folded. Safe beside
    writers and beside another fold: on PostgreSQL one statement deletes the rows it sees and
    adds exactly those (a row committed meanwhile waits for the next fold; a row another fold
    deleted first is skipped); on SQLite the insert takes the write lock, so nothing is
    written between the sum and the delete."""
    cols = ", ".join(TALLY_COLUMNS)
    sums = ", ".join(f"sum({c})" for c in TALLY_COLUMNS)
    upsert = ("ON CONFLICT (owner_id) WHERE base DO UPDATE SET "
              + ", ".join(f"{c} = owner_tally.{c} + excluded.{c}" for c in TALLY_COLUMNS))
    if db.session.get_bind().dialect.name == "postgresql":
        # Owners in id order: two folds lock the base rows in the same order.
        n = db.session.execute(text(
            f"WITH moved AS (DELETE FROM owner_tally WHERE NOT base RETURNING owner_id, {cols}), "
            f"added AS (INSERT INTO owner_tally (owner_id, base, {cols}) "
            f"SELECT owner_id, true, {sums} FROM moved GROUP BY owner_id ORDER BY owner_id "
            f"{upsert} RETURNING 1) "
            "SELECT (SELECT count(*) FROM moved)")).scalar_one()
    else:
        n = db.session.execute(text(
            f"INSERT INTO owner_tally (owner_id, base, {cols}) SELECT owner_id, true, {sums} "
            f"FROM owner_tally WHERE NOT base GROUP BY owner_id {upsert}")).rowcount
        n = db.session.execute(owner_tally.delete().where(~owner_tally.c.base)).rowcount \
            if n else 0
    db.session.commit()
    return int(n or 0)


def recount_select():
    """The counts from the ownership rows themselves (what the tally must equal)."""
    o = Ownership
    unwon = o.won.is_(False)
    return select(o.owner_id,
                  func.count().label("held"),
                  func.count().filter(o.locked.is_(True)).label("locked"),
                  func.count().filter(o.won.is_(True)).label("won"),
                  func.count().filter(o.locked.is_(False), unwon).label("unlocked_unwon"),
                  func.count().filter(unwon, o.last_followup_at.is_(None)).label("fresh"),
                  ).where(o.owner_id.is_not(None)).group_by(o.owner_id)


def drift() -> dict[int, tuple[dict, dict]]:
    """Owners whose tally differs from a recount: {owner id: (tally, recount)}; empty when
    the tally is right (the tests check it after every test)."""
    names = list(TALLY_COLUMNS)
    tallied = {r.owner_id: {n: int(getattr(r, n)) for n in names}
               for r in read(counts_select(lambda col: true(), names))}
    counted = {r.owner_id: {n: int(getattr(r, n)) for n in names}
               for r in db.session.execute(recount_select())}
    zero = dict.fromkeys(names, 0)
    return {o: (tallied.get(o, zero), counted.get(o, zero))
            for o in set(tallied) | set(counted)
            if tallied.get(o, zero) != counted.get(o, zero)}
