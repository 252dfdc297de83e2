"""app.database.rows_of: the hot path's statements (the rep lock, the claim) run by the driver
on PostgreSQL behave as SQLAlchemy's execution did: rows by column name, the parameters'
defaults and type processing, a missing parameter refused, driver errors handled as
SQLAlchemy handles them (so what catches a DataError still does, and the session goes on),
and whatever SQLAlchemy runs better itself (listeners on the statements, names the driver's
named tuples cannot carry) left to it."""
from __future__ import annotations

import pytest
from sqlalchemy import ARRAY, Integer, bindparam, event, exc, func, literal_column, select

from app import database
from app.models import User

CHAIN = bindparam("chain", type_=ARRAY(Integer))


def _postgres(db) -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def test_rows_answer_by_column_name_on_every_backend(db, org):
    statement = select(User.__table__.c.id, User.__table__.c.username.label("login")) \
        .where(User.__table__.c.id == bindparam("user_id")).order_by(User.__table__.c.id)
    rows = database.rows_of(db.session.connection(), statement, {"user_id": org.rep.id})
    assert [(r.id, r.login) for r in rows] == [(org.rep.id, org.rep.username)]
    assert rows[0][1] == org.rep.username
    assert database.rows_of(db.session.connection(), statement, {"user_id": 2**31 - 1}) == []


def test_defaults_and_type_processing_apply_as_sqlalchemy_would(db):
    if not _postgres(db):
        pytest.skip("SQLite runs the statement through SQLAlchemy itself")
    # A tuple for an ARRAY parameter (SQLAlchemy's processor makes it a list), and a bind
    # parameter with a value of its own that the caller does not pass.
    statement = select(func.cardinality(CHAIN).label("n"),
                       (bindparam("base", 40, type_=Integer) + 2).label("answer"))
    (row,) = database.rows_of(db.session.connection(), statement, {"chain": (3, 4, 5)})
    assert (row.n, row.answer) == (3, 42)


def test_postgresql_rows_come_from_the_driver_when_nothing_listens(db, org):
    if not _postgres(db):
        pytest.skip("SQLite runs the statement through SQLAlchemy itself")
    from sqlalchemy.engine import Row

    statement = select(User.__table__.c.id).where(User.__table__.c.id == bindparam("user_id"))
    (row,) = database.rows_of(db.session.connection(), statement, {"user_id": org.rep.id})
    assert row.id == org.rep.id and not isinstance(row, Row)
    # A listener that came and went (a test's statement counter) leaves the driver to it.
    engine = db.session.get_bind().engine

    def listener(*args):
        pass

    event.listen(engine, "before_cursor_execute", listener)
    (row,) = database.rows_of(db.session.connection(), statement, {"user_id": org.rep.id})
    assert isinstance(row, Row)  # SQLAlchemy ran it, for the listener
    event.remove(engine, "before_cursor_execute", listener)
    (row,) = database.rows_of(db.session.connection(), statement, {"user_id": org.rep.id})
    assert not isinstance(row, Row)


def test_a_missing_parameter_is_refused_as_sqlalchemy_refuses_it(db):
    statement = select(bindparam("wanted", type_=Integer).label("n"))
    with pytest.raises(exc.StatementError) as raised:
        database.rows_of(db.session.connection(), statement, {})
    assert "A value is required for bind parameter 'wanted'" in str(raised.value)
    db.session.rollback()


def test_names_the_driver_cannot_carry_are_left_to_sqlalchemy(db):
    # A keyword and a leading underscore: not names of a named tuple's fields.
    statement = select(literal_column("1").label("from"), literal_column("2").label("_n"))
    (row,) = database.rows_of(db.session.connection(), statement, {})
    assert tuple(row) == (1, 2) and row._mapping["from"] == 1


def test_the_engines_statement_listeners_see_it(db, org):
    seen = []

    def user_id(parameters):  # a dict on PostgreSQL, a tuple on SQLite (qmark)
        return parameters.get("user_id") if isinstance(parameters, dict) else parameters[0]

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(("before", statement.split()[0], user_id(parameters)))

    def after(conn, cursor, statement, parameters, context, executemany):
        seen.append(("after", statement.split()[0], user_id(parameters)))

    engine = db.session.get_bind().engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        database.rows_of(db.session.connection(),
                         select(User.__table__.c.id).where(
                             User.__table__.c.id == bindparam("user_id")),
                         {"user_id": org.rep.id})
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    assert seen == [("before", "SELECT", org.rep.id), ("after", "SELECT", org.rep.id)]


def test_a_driver_error_comes_wrapped_as_sqlalchemy_wraps_it(db):
    if not _postgres(db):
        pytest.skip("SQLite divides by zero into NULL")
    statement = select(literal_column("1") / bindparam("zero", type_=Integer))
    with pytest.raises(exc.DataError) as raised:
        database.rows_of(db.session.connection(), statement, {"zero": 0})
    assert "division by zero" in str(raised.value.orig)
    db.session.rollback()
    # The session goes on after the rollback, through the driver again.
    assert [tuple(r) for r in database.rows_of(db.session.connection(), statement,
                                               {"zero": 1})] == [(1,)]
