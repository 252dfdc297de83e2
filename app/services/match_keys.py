"""The matcher's blocking entries of every customer (customer_match_key), so that the entry
check, the import and the batch scan put the same candidate pairs before the scorer.

A record's entries (entries()) are (block, sort) pairs: one per blocking key of each pass
(app.services.matching.blocking) and per order that pass is read in, plus one per type-wide
sorted-neighbourhood order. Two customers are a candidate pair when they share a block and
sit fewer than the block's window apart when its members are sorted by (sort, id). The scan
computes that over the whole table in memory; the entry check asks the table, per entry of
the new record, for the window−1 members just before and just after it in that order: one
indexed range read each, in one statement, whatever the size of the block. A new record
sorts after every member with the same sort value (it will have the highest id), which is
where the scan would find it once saved, so the check sees exactly the pairs the scan will.

The rows are rewritten on every write path, like the quick-search keys (app.services.search):
an ORM flush that creates a customer or changes a column the matcher reads
(install_listeners), and explicit reindex() calls where customers are written with Core SQL
(import, merge and its undo). `flask crm match-keys-rebuild` rewrites them all.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from itertools import chain
from typing import Any, Iterable, Mapping, Optional, Sequence

import numpy as np
from numpy.dtypes import StringDType
from sqlalchemy import (Integer, String, bindparam, column, delete, event, func, insert, select,
                        table, tuple_, union_all)
from sqlalchemy.orm import Session

from app.services.matching.blocking import (NAME_WINDOW, NEIGHBOURS, WINDOW, column_keys,
                                            distinct_codes, rank_of, record_keys, window_pairs)
from app.services.matching.records import RECORD_FIELDS, Columns, record_of

BLOCK_MAX = 120   # characters of a block kept as they are; longer ones are hashed
SORT_MAX = 60     # characters of a sort value (beyond them, ties go by id)
LAST = 2 ** 62    # the id a record not saved yet sorts with: after every saved one

_key = table("customer_match_key", column("block", String), column("sort_key", String),
             column("customer_id", Integer))
_customer = table("customer", *(column(c) for c in RECORD_FIELDS))

# The orders each pass is read in (blocking.candidate_pairs pairs within windows of them).
_PASS_ORDERS = {"name": ("core", "reversed"), "pinyin": ("pinyin",)}
_DEFAULT_ORDERS = ("core",)
# The type-wide sorted-neighbourhood orders (no key: every customer of the type).
_NEIGHBOURHOOD_ORDERS = ("pinyin", "reversed", "address")


def sort_values(c: Mapping[str, Sequence], order: str) -> list[str]:
    """Each record's position in one order, from derived columns (records.derive), bounded."""
    if order == "core":
        values: Iterable = c["_core"]
    elif order == "reversed":
        values = (v[::-1] for v in c["_core"])
    elif order == "pinyin":
        values = c["_pinyin"]
    else:  # address
        values = (f"{a}|{w}|{d}" for a, w, d in zip(c["_city"], c["_words"], c["_digits"]))
    return [(v or "")[:SORT_MAX] for v in values]


def sort_value(rec: Mapping[str, Any], order: str) -> str:
    """A record's position in one order (record_of's derived fields), bounded."""
    return sort_values({k: [rec[k]] for k in _SORTED_BY}, order)[0]


_SORTED_BY = ("_core", "_pinyin", "_city", "_words", "_digits")


def _block(text: str) -> str:
    if len(text) <= BLOCK_MAX:
        return text
    return text[:BLOCK_MAX - 41] + "#" + hashlib.sha1(text.encode()).hexdigest()


def window_of(block: str) -> int:
    """Members a record is paired with on each side in its block, itself included: the
    blocking's windows (app.services.matching.blocking), read when asked so that one change
    there changes both."""
    if block.startswith("~"):
        return NEIGHBOURS
    return NAME_WINDOW if block.startswith("name/") else WINDOW


def entries(mapping: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The (block, sort) entries of a customer's stored values (or a record_of dict)."""
    rec = record_of(mapping)
    out: set[tuple[str, str]] = set()
    for pass_name, key in record_keys(rec):
        for order in _PASS_ORDERS.get(pass_name, _DEFAULT_ORDERS):
            out.add((_block(f"{pass_name}/{order}:{key}"), sort_value(rec, order)))
    kind = "p" if rec["customer_type"] == "person" else "c"
    for order in _NEIGHBOURHOOD_ORDERS:
        # A leading "~" marks the type-wide orders: their window is NEIGHBOURS.
        out.add((f"~{order}:{kind}", sort_value(rec, order)))
    return out


# --- the whole table in memory (the batch scan) ---------------------------------------------
# The derived columns entries() reads (with customer_type).
_KEYED_BY = ("_core", "_surname", "_given", "_pinyin", "_surname_py", "_given_py", "_by", "_bm",
             "_bd", "_mobile_tail", "_phone_tail", "_email", "_email_local", "_city", "_digits",
             "_words")


def column_pairs(cols: Columns) -> np.ndarray:
    """The candidate pairs of the whole table worked out from every customer's columns instead
    of read back from customer_match_key (at 1M that is 12M rows in (block, sort, id) order):
    in each block, every member with the next window−1 members in (sort, id) order — the
    pairs the table's rows give, which the entry check reads. Distinct rows a < b, encoded
    a * len(cols) + b. `cols` must be in id order: a sort value's ties go by id.

    The entries are entries()'s, a pass at a time (blocking.column_keys over the columns is
    record_keys over each record). A block is numbered by its key within its pass and read
    in each of the pass's orders: its text is made of (pass, order, key) and nothing else,
    so two entries share a block exactly when these are equal. A member's place in an order
    is its row's rank by the bounded sort value, ties by row, that is by id."""
    n = len(cols)
    if n > 1 and not bool((cols.ids[1:] > cols.ids[:-1]).all()):
        raise ValueError("the columns are not in id order")
    c: dict[str, list] = {k: cols.cols[k].tolist() for k in _KEYED_BY}
    c["customer_type"] = ["person" if p else "company" for p in cols.person.tolist()]
    ranks: dict[str, np.ndarray] = {}

    def rank(order: str) -> np.ndarray:
        if order not in ranks:
            # numpy's own strings (UTF-8, compared byte by byte: by code point, as the table's
            # key orders them) sort faster than an array of Python strings
            ranks[order] = rank_of(np.array(sort_values(c, order), dtype=StringDType()))
        return ranks[order]

    chunks: list[np.ndarray] = []
    for pass_name, row_keys in column_keys(c):
        blocks, rows = _numbered(row_keys, n)
        chunks.append(distinct_codes([
            a * n + b for order in _PASS_ORDERS.get(pass_name, _DEFAULT_ORDERS)
            for a, b in window_pairs(blocks, rows, rank(order),
                                     window_of(f"{pass_name}/{order}:"))]))
    kind = cols.person.astype(np.int64)
    everyone = np.arange(n, dtype=np.int64)
    for order in _NEIGHBOURHOOD_ORDERS:
        chunks.extend(a * n + b for a, b in window_pairs(kind, everyone, rank(order),
                                                          window_of(f"~{order}:")))
    return distinct_codes(chunks)


_hash = hash  # (a test makes every key collide)


def _numbered(row_keys: list[list[str]], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(block number, row) of each distinct key of each row: a row holds an entry once however
    often its keys repeat it (a mobile whose last 8 digits are the landline's), as the
    table's primary key holds it. Keys are numbered by their hash (a sort of integers, not a
    dictionary of strings), checked against the number of distinct keys: two keys sharing a
    hash are numbered one by one instead."""
    counts = np.fromiter(map(len, row_keys), dtype=np.int64, count=n)
    keys = list(chain.from_iterable(row_keys))
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    hashes = np.fromiter(map(_hash, keys), dtype=np.int64, count=len(keys))
    distinct, blocks = np.unique(hashes, return_inverse=True)
    if len(distinct) != len(set(keys)):
        numbers: dict[str, int] = {}
        blocks = np.fromiter((numbers.setdefault(k, len(numbers)) for k in keys),
                             dtype=np.int64, count=len(keys))
    both = distinct_codes([blocks.astype(np.int64) * n + rows])
    return both // n, both % n


# --- writing --------------------------------------------------------------------------------
def _write(conn, customer_ids: Optional[list[int]], replace: bool,
           id_range: Optional[tuple[int, int]] = None) -> int:
    """(Re)write the entries of these customers (or of the ids in id_range, first < id <=
    last) from their current rows; gone ones lose theirs."""
    if not customer_ids and id_range is None:
        return 0

    def among(col):
        if id_range is not None:
            return (col > id_range[0]) & (col <= id_range[1])
        return col.in_(customer_ids)

    rows = conn.execute(select(*_customer.c).where(among(_customer.c.id))).mappings().all()
    if replace:
        conn.execute(delete(_key).where(among(_key.c.customer_id)))
    out = [{"block": block, "sort_key": sort, "customer_id": row["id"]}
           for row in rows for block, sort in sorted(entries(row))]
    _insert(conn, out)
    return len(rows)


def _insert(conn, rows: list[dict]) -> None:
    """COPY on PostgreSQL (a rebuild writes about ten rows per customer), one executemany
    elsewhere; in the connection's transaction."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(_key), rows)
        return
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy("COPY customer_match_key (block, sort_key, customer_id) FROM STDIN") as cp:
        for row in rows:
            cp.write_row((row["block"], row["sort_key"], row["customer_id"]))


def reindex(customer_ids: Iterable[int], conn=None) -> None:
    """Rewrite the entries of these customers (in the caller's transaction)."""
    from app.extensions import db

    ids = sorted({int(i) for i in customer_ids if i is not None})
    conn = conn if conn is not None else db.session.connection()
    for start in range(0, len(ids), 500):
        _write(conn, ids[start:start + 500], replace=True)


def rebuild_all(conn, batch: int = 5000, progress=None) -> int:
    """Every customer's entries from scratch, in id batches (the migration's backfill and
    `flask crm match-keys-rebuild`)."""
    conn.execute(delete(_key))
    done, last = 0, 0
    while True:
        upto = conn.execute(select(func.max(column("id"))).select_from(
            select(_customer.c.id).where(_customer.c.id > last).order_by(_customer.c.id)
            .limit(batch).subquery())).scalar()
        if upto is None:
            return done
        done += _write(conn, None, replace=False, id_range=(last, upto))
        last = upto
        if progress:
            progress(done)


# --- keeping them right on ORM writes -------------------------------------------------------
# The Customer attributes entries() reads: a flush that changes none of them keeps the rows.
_READ = tuple(f for f in RECORD_FIELDS if f != "id")


def _touched(session: Session) -> set[int]:
    from sqlalchemy import inspect

    from app.models import Customer

    ids: set[int] = {obj.id for obj in session.new if isinstance(obj, Customer)}
    for obj in session.dirty:
        if isinstance(obj, Customer):
            state = inspect(obj)
            if any(state.attrs[f].history.has_changes() for f in _READ):
                ids.add(obj.id)
    ids.discard(None)
    return ids


def _after_flush(session: Session, _context) -> None:
    ids = _touched(session)
    if ids:
        reindex(ids, session.connection())


def install_listeners() -> None:
    """Rewrite the entries of every customer an ORM flush created or changed (a deleted
    customer's go with it: ON DELETE CASCADE)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


def records(ids: Iterable[int], conn=None) -> list[dict[str, Any]]:
    """The stored columns the matcher reads (app.services.matching.RECORD_FIELDS) of these
    customers, in id order: one statement per 1,000 ids."""
    from app.extensions import db

    conn = conn if conn is not None else db.session.connection()
    ids = sorted({int(i) for i in ids})
    out: list[dict[str, Any]] = []
    for start in range(0, len(ids), 1000):
        out.extend(dict(zip(RECORD_FIELDS, r)) for r in conn.execute(
            _records_statement(), {"ids": ids[start:start + 1000]}))
    return out


@lru_cache(maxsize=None)
def _records_statement():
    return (select(*(_customer.c[f] for f in RECORD_FIELDS))
            .where(_customer.c.id.in_(bindparam("ids", expanding=True)))
            .order_by(_customer.c.id))


# --- candidates -----------------------------------------------------------------------------
def _side(index: int, n: int, before: bool):
    """The n members just before (or after) position (:s<index>, :i<index>) in block
    :b<index>: one range read of the primary key (block, sort_key, customer_id)."""
    position = tuple_(_key.c.sort_key, _key.c.customer_id)
    at = tuple_(bindparam(f"s{index}"), bindparam(f"i{index}"))
    q = select(_key.c.customer_id).where(_key.c.block == bindparam(f"b{index}"))
    if before:
        q = q.where(position < at).order_by(_key.c.sort_key.desc(), _key.c.customer_id.desc())
    else:
        q = q.where(position > at).order_by(_key.c.sort_key, _key.c.customer_id)
    return select(q.limit(n).subquery())


@lru_cache(maxsize=256)
def _statement(windows: tuple[int, ...]):
    """One statement for a record whose entries have these windows (built once per shape:
    building it costs more than running it)."""
    return union_all(*(_side(i, n - 1, before) for i, n in enumerate(windows)
                       for before in (True, False)))


def _candidate_params(mapping: Mapping[str, Any], customer_id: Optional[int]
                      ) -> Optional[tuple[tuple[int, ...], dict[str, Any]]]:
    """(the windows of the record's entries, the statement's parameters), None without any."""
    found_entries = sorted(entries(mapping))
    if not found_entries:
        return None
    at = LAST if customer_id is None else int(customer_id)
    params: dict[str, Any] = {}
    for i, (block, sort) in enumerate(found_entries):
        params.update({f"b{i}": block, f"s{i}": sort, f"i{i}": at})
    return tuple(window_of(block) for block, _ in found_entries), params


def candidate_ids(mapping: Mapping[str, Any], customer_id: Optional[int] = None,
                  conn=None) -> set[int]:
    """The saved customers the scan would pair with this record: in each of its blocks, the
    window−1 members before and after it in (sort, id) order. `customer_id`: the record's own
    id when it is saved already (a re-check); it is never its own candidate."""
    from app.extensions import db

    asked = _candidate_params(mapping, customer_id)
    if asked is None:
        return set()
    conn = conn if conn is not None else db.session.connection()
    found = set(conn.execute(_statement(asked[0]), asked[1]).scalars())
    found.discard(customer_id)
    return found


@lru_cache(maxsize=256)
def _records_of_statement(windows: tuple[int, ...]):
    """The candidates' stored columns in the statement that finds them: one round trip, and
    one statement text per shape (the server keeps it prepared), where reading the ids and
    then their rows took two, the second with a list of ids of another length every time."""
    return (select(*(_customer.c[f] for f in RECORD_FIELDS))
            .where(_customer.c.id.in_(_statement(windows)))
            .order_by(_customer.c.id))


def candidate_records(mapping: Mapping[str, Any], customer_id: Optional[int] = None,
                      conn=None) -> list[dict[str, Any]]:
    """The stored columns (records()) of candidate_ids(mapping, customer_id), in id order."""
    from app.extensions import db

    asked = _candidate_params(mapping, customer_id)
    if asked is None:
        return []
    conn = conn if conn is not None else db.session.connection()
    return [dict(zip(RECORD_FIELDS, r))
            for r in conn.execute(_records_of_statement(asked[0]), asked[1])
            if r[0] != customer_id]
