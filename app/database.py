"""Database connections: a liveness check only for pooled connections that sat idle,
(PostgreSQL) psycopg's connection keeping prepared statements across a rollback, and
rows_of, which runs the claim's statements through the driver itself.

psycopg prepares a statement once a connection has run it a few times, and PostgreSQL then
plans it once instead of on every execution (for the claim's statement, planning cost more
than running it). But psycopg forgets every prepared statement whenever a transaction rolls
back, and sends DEALLOCATE ALL, in case the rollback undid a table they use. A refused claim
rolls back, and so does every request that ends without a commit (the session's close), so
the next requests on that connection parsed and planned their statements afresh. PostgreSQL
itself keeps prepared statements across a rollback, and re-plans one whose tables changed,
so here they are kept.
"""
from __future__ import annotations

import keyword
import time
import weakref
from typing import Optional

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import event, exc
from sqlalchemy.engine import Connection as SAConnection, Engine


class Connection(psycopg.Connection):
    """psycopg's connection, keeping its prepared statements when a transaction rolls back."""

    def rollback(self) -> None:
        if self.pgconn.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            return super().rollback()  # nothing to roll back (the pool's reset after a commit)
        prepared = self._prepared
        prepared.clear = _nothing_to_clear  # for this rollback only (see the docstring)
        try:
            super().rollback()
        finally:
            del prepared.clear


def _nothing_to_clear() -> bool:
    return False


def use_connection_class(engine: Engine) -> None:
    """The engine's new connections are Connection."""

    @event.listens_for(engine, "do_connect")
    def connect(dialect, connection_record, cargs, cparams):
        return Connection.connect(*cargs, **cparams)


def ping_idle_connections(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection with a round trip ("SELECT 1") when it is checked out after
    sitting idle more than `idle_seconds`; a dead one is replaced (the pool retries on
    DisconnectionError). SQLAlchemy's pool_pre_ping pings on every checkout: one more round
    trip per request, which under load cost the claim path more than its own statements. A
    connection in steady use was alive a moment ago; the one that sat idle through a database
    restart or a firewall's timeout is the one to check. (A restart catches the connections
    used within the window once: that request fails and the pool is invalidated.)"""

    @event.listens_for(engine, "checkin")
    def checked_in(dbapi_connection, record):
        record.info["guishu_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checked_out(dbapi_connection, record, proxy):
        since = record.info.pop("guishu_idle_since", None)
        if since is None or time.monotonic() - since <= idle_seconds:
            return  # a new connection, or one in use a moment ago
        try:
            _ping(engine, dbapi_connection)
        except Exception as error:  # any failure: let the pool open a new one
            raise exc.DisconnectionError(f"idle connection failed its check: {error}")


def _ping(engine: Engine, dbapi_connection) -> None:
    # The dialect's own ping, as pool_pre_ping uses: psycopg's runs in autocommit, so the
    # connection is not handed out inside a transaction the ping began (which would refuse
    # a later isolation level, e.g. AUTOCOMMIT for VACUUM).
    engine.dialect.do_ping(dbapi_connection)


def rows_of(connection: SAConnection, statement, params: dict) -> list:
    """The rows of `statement`, a Core statement that returns rows, built once and kept
    (lru_cache), on the session's `connection`; rows answer by column name (row.pool_id) on
    every backend.

    On PostgreSQL (psycopg) the driver runs it directly, with the SQL compiled once per
    statement. The claim (bench/claims.py) is two such statements per request, and
    SQLAlchemy's execution of each cost about as much client CPU again as the driver's: the
    cache key walked over the whole statement, the result's metadata was built anew, and
    every row became a Row. The parameters get SQLAlchemy's defaults and type processing, a
    missing required one is refused, and a driver error goes through SQLAlchemy's handling
    (wrapped as it wraps them; a lost connection invalidated). SQLAlchemy runs it itself
    when something listens to the connection's statements (a statement counter, tracing:
    they get their full execution context), on other backends (SQLite renders its expanding
    IN lists per call), and for statements the driver cannot run as compiled once
    (_compiled says which)."""
    entry = None
    if connection.dialect.driver == "psycopg" and not _listened(connection):
        entry = _compiled(statement, connection.dialect)
    if entry is None:
        return connection.execute(statement, params).all()
    sql, defaults, processors, required = entry
    missing = required.difference(params)
    if missing:  # as SQLAlchemy refuses it
        why = f"A value is required for bind parameter {sorted(missing)[0]!r}"
        raise exc.StatementError(why, sql, params, exc.InvalidRequestError(why))
    params = {**defaults, **params}
    for name, process in processors.items():
        params[name] = process(params[name])
    cursor = connection.connection.driver_connection.cursor(row_factory=namedtuple_row)
    try:
        try:
            cursor.execute(sql, params)
        except psycopg.Error as error:
            connection._handle_dbapi_exception(error, sql, params, cursor, None)
        return cursor.fetchall()
    finally:
        cursor.close()


# (handle_error listeners are the dialect's: _handle_dbapi_exception calls them.)
_STATEMENT_EVENTS = ("before_execute", "after_execute", "before_cursor_execute",
                     "after_cursor_execute")


def _listened(connection: SAConnection) -> bool:
    """Does anything listen to this connection's statements? (SQLAlchemy's own flag stays
    set once a listener was ever added, so the listeners themselves are asked.)"""
    if not (connection._has_events or connection.engine._has_events):
        return False
    return any(getattr(connection.dispatch, name) for name in _STATEMENT_EVENTS)


# statement → {dialect: (sql, defaults, processors, required names) or None}; weak keys: a
# statement nobody keeps (built per call) leaves with its entry.
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _compiled(statement, dialect) -> Optional[tuple[str, dict, dict, frozenset]]:
    """What rows_of needs to run `statement` through the driver, compiled once; None when
    the compiled SQL alone is not the statement: Python-side defaults (prefetch), literal or
    expanding parameters rendered per call, escaped parameter names, or result column names
    that are not plain attribute names (the driver's named tuples)."""
    by_dialect = _COMPILED.get(statement)
    if by_dialect is None:
        by_dialect = _COMPILED.setdefault(statement, {})
    if dialect in by_dialect:
        return by_dialect[dialect]
    compiled = statement.compile(dialect=dialect)
    names = [c.key for c in statement.exported_columns]
    plain = len(set(names)) == len(names) and all(
        isinstance(n, str) and n.isidentifier() and not keyword.iskeyword(n)
        and not n.startswith("_") for n in names)
    entry = None
    if plain and not (compiled.insert_prefetch or compiled.update_prefetch
                      or compiled.literal_execute_params or compiled.post_compile_params
                      or compiled.escaped_bind_names):
        # The type processors SQLAlchemy would apply (an ARRAY's turns a tuple into a list).
        entry = (str(compiled), dict(compiled.params), dict(compiled._bind_processors),
                 frozenset(n for n, b in compiled.binds.items()
                           if b.required and b.value is None and b.callable is None))
    by_dialect[dialect] = entry
    return entry


def sqlite_index_hints() -> None:
    """Let `Select.with_hint(table, "INDEXED BY <index>", "sqlite")` reach SQLite (written
    after the table's name, as SQLite's grammar has it); SQLAlchemy's SQLite compiler drops
    every FROM hint. Only statements that give a SQLite hint change."""
    from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

    SQLiteCompiler.get_from_hint_text = _hint_as_written


def _hint_as_written(compiler, table, text):
    return text
