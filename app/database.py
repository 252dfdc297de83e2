"""PostgreSQL connections: psycopg's, keeping prepared statements across a rollback.

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

import psycopg
from sqlalchemy import event
from sqlalchemy.engine import Engine


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
