"""Pooled connections are checked with a round trip only after sitting idle
(app.database.ping_idle_connections): none for a connection in steady use (pool_pre_ping's
extra round trip per request is gone), and one idle past the window that the server dropped
is replaced before the request sees it."""
from __future__ import annotations

import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.pool import QueuePool

from app import database


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(database, "time", fake)
    return fake


@pytest.fixture
def engine(app):
    """An engine of one pooled connection, checked after 10 idle seconds."""
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    made = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0)
    database.ping_idle_connections(made, 10)
    yield made
    made.dispose()


def test_only_a_connection_idle_past_the_window_is_pinged(engine, clock, monkeypatch):
    pings = []
    real_ping = database._ping
    monkeypatch.setattr(database, "_ping", lambda e, c: (pings.append(1), real_ping(e, c)))
    with engine.connect() as conn:  # a new connection: no check
        conn.execute(text("SELECT 1"))
    clock.now += 9
    with engine.connect() as conn:  # 9 s idle: in steady use, no round trip
        conn.execute(text("SELECT 1"))
    assert pings == []
    clock.now += 11
    with engine.connect() as conn:  # 11 s idle: checked once
        assert conn.execute(text("SELECT 2")).scalar() == 2
    assert pings == [1]
    # The check leaves no transaction open: a connection checked out after it can still
    # take another isolation level (VACUUM, CHECKPOINT need AUTOCOMMIT).
    clock.now += 11
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        assert conn.execute(text("SELECT 3")).scalar() == 3
    assert pings == [1, 1]


def test_an_idle_connection_the_server_dropped_is_replaced(engine, clock, app):
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no server to drop a connection")
    import psycopg

    def backend(conn):
        return conn.execute(text("SELECT pg_backend_pid()")).scalar()

    def kill(pid):
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

    with engine.connect() as conn:
        first = backend(conn)
    kill(first)
    clock.now += 60  # idle past the window: the check finds it dead, the pool opens another
    with engine.connect() as conn:
        second = backend(conn)
        assert second != first and conn.execute(text("SELECT 1")).scalar() == 1
    # Within the window there is no check: a connection dropped a moment after its last use
    # fails that one request (and the pool is invalidated), the trade for no round trip.
    kill(second)
    clock.now += 1
    with pytest.raises(exc.OperationalError):
        with engine.connect() as conn:
            backend(conn)
    with engine.connect() as conn:
        assert backend(conn) not in (first, second)
