"""Dashboard aggregates (统计汇总): stat_daily, counted set-based from the event tables.

The heavy charts (app.services.stats) sum stat_daily over a scope's owners and a day range
instead of reading millions of events per request. It is kept in step two ways:

- increment (`refresh`, the RQ job every few minutes, and on read when small): per source
  table, the rows with an id above the source's watermark, counted by INSERT … SELECT …
  GROUP BY with an upsert (ON CONFLICT … DO UPDATE SET n = n + excluded.n, on PostgreSQL
  and SQLite alike), the watermark moved in the same transaction. The watermark row is
  locked first (SELECT … FOR UPDATE on PostgreSQL; on SQLite the first write takes the
  database's one write lock), so two refreshes at once count each row once.
- rebuild (`rebuild`, nightly): every row deleted and counted again from the sources in one
  transaction. Merges delete the merged customer, undos put it back, users and deals go:
  the past changes under the watermark, and only a rebuild sees it.

Known gap, repaired by the nightly rebuild: a row whose transaction commits after a row
with a higher id was already counted is skipped by the increments (ids are handed out at
insert, not at commit).

Read-only shares never enter: the rows are by owner (and by the person who logged the
follow-up or won the deal), and a share changes no owner.
"""
from __future__ import annotations

import datetime as dt
from contextlib import contextmanager
from typing import Iterator, Optional

from flask import current_app
from sqlalchemy import (Date, and_, case, cast, delete, func, literal, select, update)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import Customer, Deal, FollowUp, OwnershipEvent
from app.models.customer import utcnow
from app.models.stat_aggregate import NO_DAY, NOBODY, StatDaily, StatWatermark
from app.services.times import business_zone

# The targets' "new customer" (app.services.targets.ACQUIRED), repeated here so this module
# does not import the targets' rules; tests/test_stat_aggregates.py checks they agree.
ACQUIRED = ("created", "claimed", "assigned", "rule-assigned")
MOVES = ("claimed", "released", "reclaimed", "transferred")
SOURCES = {"ownership_event": OwnershipEvent, "follow_up": FollowUp, "deal": Deal,
           "customer": Customer}
# On read, a source this many rows behind is caught up before the chart is computed (a few
# milliseconds); further behind, the chart shows the aggregates as the last job left them.
READ_CATCH_UP_MAX = 20_000
_T = StatDaily.__table__


# --- SQL pieces --------------------------------------------------------------------------------
def _dialect() -> str:
    return db.session.get_bind().dialect.name


def local_date(column):
    """The business day of a stored (naive UTC) time, as a DATE, in SQL (the zone's offset
    today, like app.services.stats.local_day)."""
    minutes = int(dt.datetime.now(business_zone()).utcoffset().total_seconds() // 60)
    if _dialect() == "sqlite":
        return func.date(column, f"{minutes:+d} minutes")
    return cast(column + dt.timedelta(minutes=minutes), Date)


def _upsert(rows):
    """INSERT INTO stat_daily SELECT `rows` (kind, owner_id, day, peer_id, since, n, amount,
    one row per key) adding to the rows already there."""
    dialect = postgresql if _dialect() == "postgresql" else sqlite
    stmt = dialect.insert(_T).from_select(
        ["kind", "owner_id", "day", "peer_id", "since", "n", "amount"], rows)
    return stmt.on_conflict_do_update(
        index_elements=["kind", "owner_id", "day", "peer_id", "since"],
        set_={"n": _T.c.n + stmt.excluded.n, "amount": _T.c.amount + stmt.excluded.amount})


def _grouped(inner):
    """The per-row SELECT `inner` (kind, owner_id, day, peer_id, since, n, amount) summed per
    key; the WHERE keeps SQLite's upsert parser from reading ON CONFLICT as a join clause."""
    sub = inner.subquery()
    keys = [sub.c.kind, sub.c.owner_id, sub.c.day, sub.c.peer_id, sub.c.since]
    return select(*keys, func.sum(sub.c.n), func.sum(sub.c.amount)).where(
        sub.c.kind.is_not(None)).group_by(*keys)


def _row(kind, owner, day, peer=None, since=None, n=None, amount=None):
    return select(kind.label("kind") if not isinstance(kind, str) else
                  literal(kind).label("kind"),
                  func.coalesce(owner, NOBODY).label("owner_id") if owner is not None else
                  literal(NOBODY).label("owner_id"),
                  day.label("day"),
                  (func.coalesce(peer, NOBODY) if peer is not None else
                   literal(NOBODY)).label("peer_id"),
                  (since if since is not None else literal(NO_DAY, Date)).label("since"),
                  (n if n is not None else literal(1)).label("n"),
                  (amount if amount is not None else literal(0)).label("amount"))


def _event_rows(lo: int, hi: int) -> list:
    """The SELECTs counting ownership events lo < id <= hi."""
    e = OwnershipEvent
    ids = and_(e.id > lo, e.id <= hi)
    day = local_date(e.created_at)
    moves = _row(e.kind, case((e.kind == "claimed", e.to_owner_id), else_=e.from_owner_id), day,
                 peer=case((e.kind == "transferred", e.to_owner_id), else_=None)
                 ).where(ids, e.kind.in_(MOVES))
    pool_in = _row("pool_in", None, day, peer=e.to_pool_id).where(ids, e.to_pool_id.is_not(None))
    pool_out = _row("pool_out", None, day, peer=e.from_pool_id).where(
        ids, e.from_pool_id.is_not(None))
    # A customer counts once per range for the owner who acquired it: each acquisition
    # carries the day the same owner last acquired the same customer before (in time), and a
    # range [from, to] sums those acquired in it whose previous one was before `from`
    # (app.services.stats). Events are appended in time order, so an increment never changes
    # the previous acquisition of a row already counted.
    acq = select(e.id, e.to_owner_id, e.created_at,
                 func.lag(e.created_at).over(partition_by=[e.customer_id, e.to_owner_id],
                                             order_by=[e.created_at, e.id]).label("previous")
                 ).where(
        e.kind.in_(ACQUIRED), e.to_owner_id.is_not(None))
    if lo:  # the customers acquired in the increment, with their whole history
        new = aliased(OwnershipEvent)
        acq = acq.where(e.customer_id.in_(select(new.customer_id).where(
            new.id > lo, new.id <= hi, new.kind.in_(ACQUIRED), new.to_owner_id.is_not(None))))
    acq = acq.subquery()
    acquired = _row("acquired", acq.c.to_owner_id, local_date(acq.c.created_at),
                    since=func.coalesce(local_date(acq.c.previous), literal(NO_DAY, Date))
                    ).where(acq.c.id > lo, acq.c.id <= hi)
    return [moves, pool_in, pool_out, acquired]


def _source_rows(source: str, lo: int, hi: int) -> list:
    if source == "ownership_event":
        return _event_rows(lo, hi)
    if source == "follow_up":
        f = FollowUp
        return [_row("followup", f.user_id, local_date(f.happened_at)).where(f.id > lo,
                                                                           f.id <= hi)]
    if source == "deal":
        return [_row("won", Deal.user_id, Deal.won_on, amount=Deal.amount).where(
            Deal.id > lo, Deal.id <= hi)]
    return [_row("customer_new", None, local_date(Customer.created_at)).where(
        Customer.id > lo, Customer.id <= hi)]


# --- watermarks --------------------------------------------------------------------------------
def _ensure_watermarks() -> None:
    """The watermark rows (the migration writes them; a wiped database may not have them)."""
    dialect = postgresql if _dialect() == "postgresql" else sqlite
    db.session.execute(dialect.insert(StatWatermark.__table__).values(
        [{"source": s, "last_id": 0} for s in SOURCES]).on_conflict_do_nothing())


def _lock(source: str, wait: bool = True) -> Optional[int]:
    """Lock the source's watermark row until the transaction ends and answer its last id;
    None when `wait` is false and another refresh holds it (PostgreSQL)."""
    w = StatWatermark
    if _dialect() == "postgresql":
        return db.session.execute(select(w.last_id).where(w.source == source).with_for_update(
            skip_locked=not wait)).scalar()
    # SQLite: a write takes the database's write lock first, so the read below is current.
    db.session.execute(update(w).where(w.source == source).values(last_id=w.last_id))
    return db.session.execute(select(w.last_id).where(w.source == source)).scalar()


def _count(source: str, lo: int, hi: int) -> None:
    for rows in _source_rows(source, lo, hi):
        db.session.execute(_upsert(_grouped(rows)))


@contextmanager
def _sqlite_not_waiting(wait: bool) -> Iterator[None]:
    """Without `wait` on SQLite, the first write of the refresh does not wait for the
    database's write lock (the connection's busy timeout is 30 s): a page's catch-up beside a
    long writer — the nightly rebuild, an import — gives up at once and the page shows the
    counts it has, instead of hanging and then failing."""
    if wait or _dialect() != "sqlite":
        yield
        return
    raw = db.session.connection().connection.dbapi_connection
    before = raw.execute("PRAGMA busy_timeout").fetchone()[0]
    raw.execute("PRAGMA busy_timeout=0")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA busy_timeout={int(before)}")


def refresh_source(source: str, wait: bool = True) -> int:
    """Count the source's rows above its watermark and move it, in one transaction; the rows
    counted (0 also when another refresh or writer holds the lock and `wait` is false)."""
    table = SOURCES[source]
    try:
        try:
            with _sqlite_not_waiting(wait):
                _ensure_watermarks()
                lo = _lock(source, wait)
        except OperationalError:
            if wait or _dialect() != "sqlite":
                raise
            lo = None  # SQLite's write lock is another writer's: the job counts it later
        if lo is None:
            db.session.rollback()
            return 0
        hi = db.session.execute(select(func.coalesce(func.max(table.id), 0))).scalar_one()
        if hi > lo:
            _count(source, lo, hi)
        db.session.execute(update(StatWatermark).where(StatWatermark.source == source).values(
            last_id=max(hi, lo), updated_at=utcnow()))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return max(hi - lo, 0)


def refresh(wait: bool = True) -> dict[str, int]:
    """The increment of every source, each in its own transaction: {source: ids covered}."""
    return {source: refresh_source(source, wait) for source in SOURCES}


def rebuild() -> dict[str, int]:
    """Delete every aggregate and count every source again, in one transaction (the
    watermarks locked throughout, so no increment runs beside it): {source: ids covered}."""
    done = {}
    try:
        _ensure_watermarks()
        for source in SOURCES:
            _lock(source)
        db.session.execute(delete(StatDaily))
        now = utcnow()
        for source, table in SOURCES.items():
            hi = db.session.execute(select(func.coalesce(func.max(table.id), 0))).scalar_one()
            if hi:
                _count(source, 0, hi)
            db.session.execute(update(StatWatermark).where(StatWatermark.source == source)
                               .values(last_id=hi, updated_at=now, rebuilt_at=now))
            done[source] = hi
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return done


def catch_up(sources=tuple(SOURCES)) -> None:
    """On read: bring each source up to date when it is only a little behind (never waiting
    for a refresh another process runs); a source far behind waits for the job."""
    limit = current_app.config.get("STATS_READ_CATCH_UP_MAX", READ_CATCH_UP_MAX)
    marks = {source: (last_id, at) for source, last_id, at in db.session.execute(
        select(StatWatermark.source, StatWatermark.last_id, StatWatermark.updated_at))}
    for source in sources:
        table = SOURCES[source]
        top = db.session.execute(select(func.coalesce(func.max(table.id), 0))).scalar_one()
        last_id, at = marks.get(source, (0, None))
        behind = top - last_id
        if 0 < behind <= limit or (at is None and behind <= limit):
            refresh_source(source, wait=False)


def fresh_as_of() -> Optional[dt.datetime]:
    """When the aggregates were last brought up to date (the oldest source's; stored UTC),
    None before the first refresh."""
    rows = db.session.execute(select(StatWatermark.updated_at)).scalars().all()
    if not rows or any(r is None for r in rows):
        return None
    return min(rows)
