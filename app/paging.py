"""Keyset paging for every list: pages that cost the same at row 25 and at row 1,000,000.

FAB's `SQLAInterface.query()` counts every matching row and pages with OFFSET, so a deep page
reads (and a count scans) everything before it. `KeysetInterface` pages by the sort key
instead: a page is "the next `size` rows after this row" in the order (order column, primary
key), which an index on (column, id) answers by reading `size` entries, and which stays
stable when rows are added meanwhile. The total is counted exactly up to `COUNT_CAP`;
beyond that the list says "10,000+" (jumping far goes through the filters). On PostgreSQL
the list pages ask the planner first: when it expects more than COUNT_CAP rows the page
shows its estimate, marked "about" (约), instead of counting 10,001 rows of a search
intersected with a scope (~50 ms at 1M customers, more than the page itself).

A cursor is the sort key of the boundary row, with the order it belongs to, as URL-safe
base64 JSON; a cursor that does not decode, or belongs to another order, is ignored (the
list starts at its first page) rather than refused, as links keep it when the order changes.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Optional, Sequence

from flask_appbuilder.models.sqla.interface import SQLAInterface
from flask_babel import gettext
from sqlalchemy import Column, Table, and_, func, select, tuple_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import (BinaryExpression, BindParameter, BooleanClauseList,
                                       ColumnElement)
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlalchemy.sql.selectable import AliasedReturnsRows, ScalarSelect, Select, TableClause

COUNT_CAP = 10_000
MAX_CURSOR_CHARS = 600


def count_text(query_of_ids, session) -> str:
    """How many rows a SELECT of ids matches, as the lists show it: exact up to COUNT_CAP,
    then "10,000+" (counting a million rows in scope costs more than the page)."""
    limited = query_of_ids.limit(COUNT_CAP + 1).subquery()
    n = session.execute(select(func.count()).select_from(limited)).scalar_one()
    return f"{COUNT_CAP:,}+" if n > COUNT_CAP else f"{n:,}"


# --- cursors ------------------------------------------------------------------------------
def _dump(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"d": value.isoformat()}
    if isinstance(value, Decimal):
        return {"n": str(value)}
    return value


def _load(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        (tag, text), = value.items()
        if not isinstance(text, str):
            raise ValueError(text)
        if tag == "dt":
            return dt.datetime.fromisoformat(text)
        if tag == "d":
            return dt.date.fromisoformat(text)
        if tag == "n":
            return Decimal(text)
        raise ValueError(tag)
    if value is None or isinstance(value, (int, str)) and not isinstance(value, bool):
        return value
    raise ValueError(value)


def encode_cursor(values: Sequence[Any], order: str = "id", direction: str = "desc") -> str:
    """The cursor of a row whose sort key is `values` ([pk] when the order is the pk, else
    [order column value, pk]) in the order `order` `direction`."""
    body = json.dumps({"o": order, "d": direction, "v": [_dump(v) for v in values]},
                      separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(body.encode()).decode().rstrip("=")


def decode_cursor(text: Optional[str], order: str, direction: str, size: int) -> Optional[list]:
    """The sort key in cursor `text` if it is one of `size` values for this order; else None."""
    if not text or len(text) > MAX_CURSOR_CHARS:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        body = json.loads(raw.decode())
        if not isinstance(body, dict) or body.get("o") != order or body.get("d") != direction:
            return None
        values = body.get("v")
        if not isinstance(values, list) or len(values) != size:
            return None
        loaded = [_load(v) for v in values]
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, InvalidOperation):
        return None
    if any(isinstance(v, str) and "\x00" in v for v in loaded):
        return None
    # The primary key is last: an integer in range, as every id of the application.
    pk = loaded[-1]
    if not isinstance(pk, int) or not (0 <= pk < 2**63):
        return None
    return loaded


def _fits(column, value: Any) -> bool:
    """Whether a cursor's value has the sort column's type: a tampered cursor ("abc" for an
    integer column) is no cursor, not a database error (PostgreSQL refuses to compare)."""
    if value is None:
        return True
    try:
        kind = column.type.python_type
    except (AttributeError, NotImplementedError):
        return True
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool) \
            and -2**63 <= value < 2**63
    if kind is dt.datetime:
        return isinstance(value, dt.datetime)
    if kind is dt.date:
        return isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if kind in (Decimal, float):
        return isinstance(value, (int, Decimal)) and not isinstance(value, bool) \
            and (not isinstance(value, Decimal) or value.is_finite())
    if kind is str:
        return isinstance(value, str)
    return True


def cursor_key(text: Optional[str], order: str, direction: str, columns) -> Optional[list]:
    """decode_cursor for these sort columns, checking each value against its column."""
    key = decode_cursor(text, order, direction, len(columns))
    if key is None or not all(_fits(c, v) for c, v in zip(columns, key)):
        return None
    return key


# --- the planner's estimate ---------------------------------------------------------------
class _Explain(Executable, ClauseElement):
    """EXPLAIN (FORMAT JSON) of a SELECT, with the SELECT's own bound parameters."""

    inherit_cache = False

    def __init__(self, statement):
        self.statement = statement


@compiles(_Explain, "postgresql")
def _compile_explain(element, compiler, **kw):
    return "EXPLAIN (FORMAT JSON) " + compiler.process(element.statement, **kw)


def estimated_rows(session, statement) -> Optional[int]:
    """How many rows PostgreSQL's planner expects `statement` to return (planning only, no
    execution); None on other databases."""
    if session.get_bind().dialect.name != "postgresql":
        return None
    plan = session.execute(_Explain(statement)).scalar_one()
    if isinstance(plan, str):
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def rounded(n: int) -> int:
    """An estimate shown to two significant digits (14,314 -> 14,000), so that it reads as
    one."""
    if n < 100:
        return n
    unit = 10 ** (len(str(n)) - 2)
    return round(n / unit) * unit


# --- a range on the key, into its IN-subqueries ---------------------------------------------
def _in_select(element, pk) -> Optional[Select]:
    """The one-column SELECT of `pk IN (SELECT col FROM …)` (the pk itself, not an alias's),
    else None: a scope's or a search's key subquery."""
    if isinstance(element, BinaryExpression) and element.operator is operators.in_op \
            and isinstance(element.right, ScalarSelect) \
            and isinstance(element.left, ColumnElement) and element.left.shares_lineage(pk) \
            and not isinstance(getattr(element.left, "table", None), AliasedReturnsRows):
        inner = element.right.element
        if isinstance(inner, Select) and len(inner.selected_columns) == 1:
            return inner
    return None


def _bounded_subqueries(statement, pk, bound, descending: bool):
    """`statement` with `pk < bound` (or >) also inside every `pk IN (SELECT one column …)`.

    The page reads `pk < bound` backwards; a scope or a search is `pk IN (SELECT customer_id
    FROM …)`. PostgreSQL does not carry an inequality across the semi-join, so it merged the
    page with the pool's whole ownership range from the top (500,000 rows skipped for a deep
    page of the pool). The same bound inside the subquery is redundant to the result and lets
    its index start at the bound."""

    def bounded(element):
        inner = _in_select(element, pk)
        if inner is None:
            return None
        col = inner.selected_columns[0]
        return element.left.in_(inner.where(col < bound if descending else col > bound))

    return visitors.replacement_traverse(statement, {}, bounded)


# --- a count without the listed table -------------------------------------------------------
def _registered(col, pk):
    """`col` as a column of its table registered with the models (a service may select from a
    lightweight `table()` of the same name, which carries no keys), else None."""
    col = col._deannotate() if hasattr(col, "_deannotate") else col
    if isinstance(col, Column) and isinstance(col.table, Table):
        return col
    table = pk.table.metadata.tables.get(getattr(getattr(col, "table", None), "name", None))
    return table.c.get(col.name) if table is not None else None


def _key_column(inner: Select, pk):
    """The column `inner` selects when it is a foreign key to `pk` (every value names a row
    of the listed table) and unique among `inner`'s rows: its table's primary key, or part of
    it with the rest fixed by `=` in `inner`'s WHERE (a search gram's (gram, customer)).
    Returned as `inner` selects it."""
    selected = inner.selected_columns[0]
    col = _registered(selected, pk)
    if col is None or not col.references(pk) or col.nullable \
            or col not in set(col.table.primary_key.columns):
        return None
    froms = inner.get_final_froms()
    if len(froms) != 1 or getattr(froms[0], "name", None) != col.table.name \
            or inner._group_by_clauses or inner._having_criteria or inner._distinct \
            or inner._limit_clause is not None or inner._offset_clause is not None \
            or inner._fetch_clause is not None:
        return None
    rest = {c.name for c in col.table.primary_key.columns if c is not col}
    where = inner.whereclause
    terms = [] if where is None else list(where.clauses) if isinstance(
        where, BooleanClauseList) and where.operator is operators.and_ else [where]
    for term in terms:
        if isinstance(term, BinaryExpression) and term.operator is operators.eq \
                and isinstance(term.right, BindParameter):
            left = _registered(term.left, pk)
            if left is not None and left.table is col.table:
                rest.discard(left.name)
    return None if rest else selected


def keys_only(statement, pk) -> Optional[Select]:
    """The ids `statement` (SELECT pk FROM the listed table WHERE …) matches, read without the
    listed table when its WHERE is only `pk IN (SELECT …)` terms (a scope, a name search):
    from the one of those subqueries whose column is a unique foreign key to `pk`, with the
    others as IN terms on that column. The same ids (each names one row, once), without a
    probe of the table per id: a name search in the pools counted 10,000 customers through
    10,000 primary-key lookups, two thirds of the count. None for any other shape."""
    froms = statement.get_final_froms()
    where = statement.whereclause
    if len(froms) != 1 or froms[0] is not pk.table or where is None \
            or statement._group_by_clauses or statement._having_criteria:
        return None
    terms = list(where.clauses) if isinstance(where, BooleanClauseList) \
        and where.operator is operators.and_ else [where]
    inners = [_in_select(t, pk) for t in terms]
    if not inners or any(i is None for i in inners):
        return None
    # A subquery correlated to the listed table would lose that table, or read it
    # uncorrelated, once the listed table is gone.
    if any(_correlates(inner, pk.table.name) for inner in inners):
        return None
    for n, inner in enumerate(inners):
        col = _key_column(inner, pk)
        if col is None:
            continue
        others = [other for m, other in enumerate(inners) if m != n]
        # Under the key subquery, another one that also reads the key's table (not as its
        # own only table) would be correlated to the key's row instead of reading its own.
        if any(_correlates(other, col.table.name) for other in others):
            continue
        return inner.where(*(col.in_(other) for other in others))
    return None


def _correlates(inner: Select, name: str) -> bool:
    """Whether `inner`, under a statement reading table `name`, would be correlated to it:
    it reads `name` anywhere within it, other than as its only table (SQLAlchemy correlates
    a FROM the enclosing statement has unless that would leave the subquery none; a nested
    subquery correlates to the nearest enclosing reader of the table)."""
    if name not in _tables_in(inner):
        return False
    froms = inner.get_final_froms()
    return not (len(froms) == 1 and getattr(froms[0], "name", None) == name)


def _tables_in(element) -> set:
    """The names of the tables `element` reads anywhere within it (nested subqueries too)."""
    names = set()
    for node in visitors.iterate(element):
        table = node if isinstance(node, TableClause) else getattr(node, "table", None)
        name = getattr(table, "name", None)
        if isinstance(table, TableClause) and name:
            names.add(name)
    return names


# --- the page -----------------------------------------------------------------------------
@dataclass
class Page:
    rows: list
    total: Optional[int]           # exact when not `more_than`, else COUNT_CAP (or the
    more_than: bool = False        # estimate): the total exceeds COUNT_CAP ("10,000+")
    next_cursor: Optional[str] = None
    prev_cursor: Optional[str] = None
    first: bool = True             # this is the first page of the order
    extra: dict = field(default_factory=dict)
    estimated: bool = False        # `total` is PostgreSQL's estimate (more than COUNT_CAP)
    # total None: not counted with the page (capped_count's defer_from)

    @property
    def deferred(self) -> bool:
        """The total was left out of the page (fetched from the list's /count/ once shown)."""
        return self.total is None

    @property
    def total_text(self) -> str:
        if self.deferred:
            return "…"
        if self.estimated:
            return gettext("about %(n)s", n=f"{rounded(self.total):,}")
        return f"{COUNT_CAP:,}+" if self.more_than else f"{self.total:,}"


class KeysetInterface(SQLAInterface):
    """SQLAInterface with keyset paging (`page`) and a capped count; `load` are the loader
    options (joinedload…) a list needs for its label columns, so a page is one statement
    whatever its size."""

    def __init__(self, obj, session=None, load: Sequence = ()):
        from app.relation_filters import KeysetFilterConverter

        super().__init__(obj, session=session)
        self.list_load = tuple(load)
        self.filter_converter_class = KeysetFilterConverter

    # Relation columns searched by typing (app.relation_filters), not from a list of rows.
    def _related_model_name(self, column: str) -> Optional[str]:
        if not self.is_relation_many_to_one(column):
            return None
        return self.get_related_model(column).__name__

    def is_customer_relation(self, column: str) -> bool:
        return self._related_model_name(column) == "Customer"

    def is_user_relation(self, column: str) -> bool:
        return self._related_model_name(column) in ("User", "Employee")

    # The sort key of a list ordered by `order_column`: (column, pk), or (pk) alone.
    def sort_key(self, order_column: str):
        pk = self.get_pk()
        if not order_column or order_column == self.get_pk_name():
            return [pk], self.get_pk_name()
        column = getattr(self.obj, order_column, None)
        if column is None or not hasattr(column, "property") or \
                not hasattr(column.property, "columns"):
            return [pk], self.get_pk_name()
        return [column, pk], order_column

    def keyset_safe(self, order_column: str) -> bool:
        """Whether a list can page by keyset in this order: the pk, or a NOT NULL column
        (a NULL sort key has no place in a range)."""
        if not order_column or order_column == self.get_pk_name():
            return True
        column = getattr(self.obj, order_column, None)
        columns = getattr(getattr(column, "property", None), "columns", None)
        return bool(columns) and len(columns) == 1 and not columns[0].nullable

    def filtered(self, filters):
        """The model's query with `filters` applied (FAB's filter machinery, no order/page)."""
        return self._apply_inner_all(self.session.query(self.obj), filters, aliases_mapping={})

    def capped_count(self, query, estimate: bool = False,
                     defer_from: Optional[int] = None) -> tuple[Optional[int], bool, bool]:
        """How many rows `query` matches: (n, False, False) counted exactly up to COUNT_CAP,
        (COUNT_CAP, True, False) beyond; with `estimate`, on PostgreSQL, (estimate, True,
        True) when the planner expects more than COUNT_CAP (then nothing is counted), and
        with `defer_from` too, (None, False, False) when it expects at least that many: the
        count is left to a request of its own (the list's /count/)."""
        ids = query.with_entities(self.get_pk()).order_by(None)
        if estimate:
            expected = estimated_rows(self.session, ids.statement)
            if expected is not None and expected > COUNT_CAP:
                return expected, True, True
            if expected is not None and defer_from is not None and expected >= defer_from:
                return None, False, False
        keys = keys_only(ids.statement, self.get_pk())
        limited = (keys if keys is not None else ids).limit(COUNT_CAP + 1).subquery()
        n = self.session.execute(select(func.count()).select_from(limited)).scalar_one()
        return (COUNT_CAP, True, False) if n > COUNT_CAP else (n, False, False)

    def page(self, filters, order_column: str = "", order_direction: str = "desc",
             page_size: int = 25, after: Optional[str] = None,
             before: Optional[str] = None, estimate: bool = False,
             defer_from: Optional[int] = None) -> Page:
        """One page of the filtered rows in (order column, pk) order: the first page, the one
        after cursor `after`, or the one before cursor `before`. `estimate`: a total beyond
        COUNT_CAP may be PostgreSQL's estimate (the list pages; the REST count stays exact up
        to the cap); `defer_from`: see capped_count (the page's total is then None)."""
        direction = "asc" if order_direction == "asc" else "desc"
        columns, order_name = self.sort_key(order_column)
        query = self.filtered(filters)
        total, more_than, estimated = self.capped_count(query, estimate, defer_from)

        going_back = False
        key = cursor_key(after, order_name, direction, columns)
        if key is None:
            key = cursor_key(before, order_name, direction, columns)
            going_back = key is not None
        forward_desc = direction == "desc"
        # Reading backwards flips the direction; the rows are put back in order afterwards.
        read_desc = forward_desc != going_back
        rows_query = query
        if key is not None:
            rows_query = rows_query.filter(self._beyond(columns, key, read_desc))
        ordering = [c.desc() if read_desc else c.asc() for c in columns]
        rows_query = rows_query.order_by(*ordering).limit(page_size + 1)
        bounded = key is not None and len(columns) == 1
        if self.list_load and self.session.get_bind().dialect.name == "sqlite":
            # SQLite joins the labels (list_load) onto every matching row and sorts them all,
            # joined columns included, before LIMIT: rep1's ownership history at 10M events
            # sorted 350,000 rows of six tables (750 ms). The page's keys first, in the same
            # statement, and the labels joined onto those rows alone (the keys: 35 ms).
            pk = self.get_pk()
            keys = rows_query.with_entities(pk).statement
            if bounded:
                keys = _bounded_subqueries(keys, columns[0], key[0], read_desc)
            rows = self.session.execute(
                select(self.obj).where(pk.in_(select(keys.subquery().c[0])))
                .options(*self.list_load).order_by(*ordering)).unique().scalars().all()
        elif bounded:
            rows = self.session.execute(_bounded_subqueries(
                rows_query.options(*self.list_load).statement, columns[0], key[0],
                read_desc)).unique().scalars().all()
        else:
            rows = rows_query.options(*self.list_load).all()
        more = len(rows) > page_size
        rows = rows[:page_size]
        if going_back:
            rows.reverse()
            if not more:
                # Back at the start of the list: show its true first page (full, if it was
                # not already), and no "previous".
                return self.page(filters, order_column, direction, page_size,
                                 estimate=estimate, defer_from=defer_from) \
                    if len(rows) < page_size else Page(
                        rows, total, more_than, self._cursor(rows[-1], columns, order_name,
                                                             direction), None, True,
                        estimated=estimated)
            return Page(rows, total, more_than,
                        self._cursor(rows[-1], columns, order_name, direction) if rows else None,
                        self._cursor(rows[0], columns, order_name, direction) if rows else None,
                        False, estimated=estimated)
        first = key is None
        return Page(rows, total, more_than,
                    self._cursor(rows[-1], columns, order_name, direction) if more else None,
                    None if first or not rows else
                    self._cursor(rows[0], columns, order_name, direction),
                    first, estimated=estimated)

    @staticmethod
    def _beyond(columns, key, descending: bool):
        """Rows past `key` in the reading direction: a row-value comparison, which both
        PostgreSQL and SQLite answer as a range of the (column, id) index; the plain bound
        on the column alone helps a planner that would not see it."""
        if len(columns) == 1:
            return columns[0] < key[0] if descending else columns[0] > key[0]
        column = columns[0]
        if descending:
            return and_(column <= key[0], tuple_(*columns) < tuple_(*key))
        return and_(column >= key[0], tuple_(*columns) > tuple_(*key))

    def cursor_of(self, row, order_column: str = "", order_direction: str = "desc") -> str:
        """The cursor of `row` in the order (order column, pk) `order_direction`."""
        columns, order_name = self.sort_key(order_column)
        return self._cursor(row, columns, order_name,
                            "asc" if order_direction == "asc" else "desc")

    def _cursor(self, row, columns, order_name: str, direction: str) -> str:
        values = [getattr(row, c.key) for c in columns]
        return encode_cursor(values, order_name, direction)
