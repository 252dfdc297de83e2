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

import time

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
    (lru_cache), on the session's `connection`; rows answer by column name (row.pool_id) on every backend.

    On PostgreSQL psycopg runs it directly, with the SQL compiled once per statement. The
    claim (bench/claims.py) is two such statements per request, and SQLAlchemy's execution
    of each cost about as much client CPU again as the driver's: the cache key walked over
    the whole statement, the result's metadata was built anew, and every row became a Row.
    Listeners of before/after_cursor_execute still see each statement; a driver error comes
    wrapped as SQLAlchemy would wrap it. Elsewhere (SQLite: expanding IN lists are rendered
    per call) it is connection.execute."""
    if connection.dialect.name != "postgresql":
        return connection.execute(statement, params).all()
    sql, defaults, processors = _compiled(statement, connection.dialect)
    params = {**defaults, **params}
    for name, process in processors.items():
        params[name] = process(params[name])
    cursor = connection.connection.driver_connection.cursor(row_factory=namedtuple_row)
    try:
        listeners = connection.dispatch.before_cursor_execute
        for fn in listeners:
            fn(connection, cursor, sql, params, None, False)
        try:
            cursor.execute(sql, params)
        except psycopg.Error as error:
            raise exc.DBAPIError.instance(sql, params, error, psycopg.Error) from error
        for fn in connection.dispatch.after_cursor_execute:
            fn(connection, cursor, sql, params, None, False)
        return cursor.fetchall()
    finally:
        cursor.close()


_COMPILED: dict[int, tuple] = {}


def _compiled(statement, dialect) -> tuple[str, dict, dict]:
    """(SQL, the bind parameters' defaults, their processors) of a kept statement; the entry
    holds the statement too, so its id cannot be reused by another while it is cached."""
    entry = _COMPILED.get(id(statement))
    if entry is None or entry[0] is not statement or entry[1] is not dialect:
        compiled = statement.compile(dialect=dialect)
        # The type processors SQLAlchemy would apply (an ARRAY's turns a tuple into a list).
        processors = dict(compiled._bind_processors)
        entry = (statement, dialect, str(compiled), dict(compiled.params), processors)
        _COMPILED[id(statement)] = entry
    return entry[2], entry[3], entry[4]


def sqlite_index_hints() -> None:
    """Let `Select.with_hint(table, "INDEXED BY <index>", "sqlite")` reach SQLite (written
    after the table's name, as SQLite's grammar has it); SQLAlchemy's SQLite compiler drops
    every FROM hint. Only statements that give a SQLite hint change."""
    from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

    SQLiteCompiler.get_from_hint_text = _hint_as_written


def _hint_as_written(compiler, table, text):
    return text
