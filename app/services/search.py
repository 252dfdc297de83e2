"""Quick search of customers: by name or a contact's name (any two characters or more of
it, Chinese or Latin), by phone in any format, by e-mail.

Names are found through a bigram key table (customer_search_gram: every two consecutive
characters of the folded name and of each contact's folded name, with the customer id), the
same on SQLite and PostgreSQL: pg_trgm needs three characters (two-character Chinese names,
华为 or 王芳, are the common case) and depends on the database's ctype. A query of n
characters is answered from the entries of one of its grams (the rarest of the first few),
checked against the folded text (customer_search_text) so that 华为 does not find 为华. Phones
are normalised (app.services.normalize) and matched exactly on the indexed E.164 columns of
customers and contacts; e-mails likewise on email_norm.

The keys are rewritten on every write path: an ORM flush that creates, renames or deletes a
customer or a contact (install_listeners), and explicit reindex() calls where rows are written
with Core SQL (import, merge and its undo). `flask crm search-rebuild` rewrites them all.
"""
from __future__ import annotations

import re
from typing import Iterable, Optional

from sqlalchemy import (Boolean, Integer, String, Text, column, delete, event, exists, func, insert,
                        literal, or_, select, table, union)
from sqlalchemy.orm import Session

from app.services.errors import ValidationFailed, N_, tr
from app.services.normalize import InvalidValue, fold_text, normalize_email, normalize_phone

MIN_CHARS = 2
MAX_CHARS = 100
# The rarest gram is looked for among the query's first few; counting stops at this many
# entries (a common gram such as 公司 is simply "common").
_GRAMS_COMPARED = 6
_COUNT_CAP = 2000

_gram = table("customer_search_gram", column("gram", String), column("customer_id", Integer),
              column("in_name", Boolean))
_text = table("customer_search_text", column("customer_id", Integer), column("name", Text),
               column("contacts", Text))
_customer = table("customer", column("id", Integer), column("name", String),
                  column("phone_e164", String), column("mobile_e164", String),
                  column("email_norm", String))
_contact = table("contact", column("id", Integer), column("customer_id", Integer),
                 column("name", String), column("phone_e164", String),
                 column("mobile_e164", String), column("email_norm", String))

TOO_SHORT = N_("Type at least %(n)s letters, digits or characters to search")
TOO_LONG = N_("Search text too long: at most %(n)s characters")
BAD_CHARS = N_("Search text contains characters that cannot be searched")


# --- keys ---------------------------------------------------------------------------------
def fold(text: Optional[str]) -> str:
    """A name as it is searched: width folded, simplified, lower-case, letters and digits only
    (the brackets and name dots fold_text keeps are dropped too)."""
    if not text:
        return ""
    return re.sub(r"[()·]", "", fold_text(text))


def grams_of(folded: str) -> set[str]:
    return {folded[i:i + 2] for i in range(len(folded) - 1)}


def _write(conn, customer_ids: Optional[list[int]], replace: bool,
           id_range: Optional[tuple[int, int]] = None) -> int:
    """(Re)write the keys of these customers (or of the ids in id_range, first < id <= last)
    from their current rows; gone ones lose theirs."""
    if not customer_ids and id_range is None:
        return 0

    def among(col):
        if id_range is not None:
            return (col > id_range[0]) & (col <= id_range[1])
        return col.in_(customer_ids)

    names: dict[int, str] = {}
    contacts: dict[int, list[str]] = {}
    for cid, name in conn.execute(select(_customer.c.id, _customer.c.name)
                                  .where(among(_customer.c.id))):
        names[cid] = fold(name)
    for cid, name in conn.execute(select(_contact.c.customer_id, _contact.c.name)
                                  .where(among(_contact.c.customer_id))
                                  .order_by(_contact.c.id)):
        folded = fold(name)
        if cid in names and folded:
            contacts.setdefault(cid, []).append(folded)
    if replace:
        conn.execute(delete(_gram).where(among(_gram.c.customer_id)))
        conn.execute(delete(_text).where(among(_text.c.customer_id)))
    grams, texts = [], []
    for cid, name in names.items():
        people = contacts.get(cid, [])
        texts.append({"customer_id": cid, "name": name, "contacts": "\n".join(people)})
        own = grams_of(name)
        keys = set(own)
        for person in people:
            keys |= grams_of(person)
        grams.extend({"gram": g, "customer_id": cid, "in_name": g in own}
                     for g in sorted(keys))
    _insert(conn, _text, texts)
    _insert(conn, _gram, grams)
    return len(texts)


def _insert(conn, target, rows: list[dict]) -> None:
    """COPY on PostgreSQL (a rebuild writes tens of millions of grams), one executemany
    elsewhere; in the connection's transaction."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        conn.execute(insert(target), rows)
        return
    columns = list(rows[0])
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {target.name} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def reindex(customer_ids: Iterable[int], conn=None) -> None:
    """Rewrite the keys of these customers (in the caller's transaction)."""
    from app.extensions import db

    ids = sorted({int(i) for i in customer_ids if i is not None})
    conn = conn if conn is not None else db.session.connection()
    for start in range(0, len(ids), 500):
        _write(conn, ids[start:start + 500], replace=True)


def rebuild_all(conn, batch: int = 5000, progress=None) -> int:
    """Every customer's keys from scratch, in id batches (the migration's backfill and
    `flask crm search-rebuild`)."""
    conn.execute(delete(_gram))
    conn.execute(delete(_text))
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
def _touched(session: Session) -> set[int]:
    from sqlalchemy import inspect

    from app.models import Contact, Customer

    ids: set[int] = set()
    for obj in session.new:
        if isinstance(obj, Customer):
            ids.add(obj.id)
        elif isinstance(obj, Contact):
            ids.add(obj.customer_id)
    for obj in session.dirty:
        if isinstance(obj, (Customer, Contact)):
            state = inspect(obj)
            if not state.attrs.name.history.has_changes() and not (
                    isinstance(obj, Contact) and state.attrs.customer_id.history.has_changes()):
                continue
            if isinstance(obj, Customer):
                ids.add(obj.id)
            else:
                hist = state.attrs.customer_id.history
                ids.update(i for i in (*hist.deleted, *hist.added, obj.customer_id) if i)
    for obj in session.deleted:
        if isinstance(obj, Contact):
            ids.add(obj.customer_id)
        elif isinstance(obj, Customer):
            ids.add(obj.id)
    ids.discard(None)
    return ids


def _after_flush(session: Session, _context) -> None:
    ids = _touched(session)
    if ids:
        reindex(ids, session.connection())


def install_listeners() -> None:
    """Rewrite the keys of every customer whose name or contacts an ORM flush changed."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


# --- queries --------------------------------------------------------------------------------
class Query:
    """A parsed search text: phone, e-mail or name (folded)."""

    def __init__(self, kind: str, value: str):
        self.kind, self.value = kind, value


_PHONE_SHAPE = re.compile(r"^[\d\s+\-().－（）＋]*$")


def _check(text) -> None:
    if not isinstance(text, str):
        raise ValidationFailed({"search": tr(BAD_CHARS)})
    if len(text) > MAX_CHARS:
        raise ValidationFailed({"search": tr(TOO_LONG, n=MAX_CHARS)})
    if "\x00" in text or any(0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise ValidationFailed({"search": tr(BAD_CHARS)})


def parse(text) -> Query:
    """The search text understood; ValidationFailed (field "search") naming the problem."""
    _check(text)
    raw = text.strip()
    if "@" in raw:
        try:
            email = normalize_email(raw)
        except InvalidValue:
            email = None
        if email:
            return Query("email", email)
    digits = re.sub(r"\D", "", raw)
    if len(digits) >= 7 and _PHONE_SHAPE.match(raw):
        try:
            phone = normalize_phone(raw)
        except InvalidValue:
            phone = None
        if phone:
            return Query("phone", phone)
    folded = fold(raw)
    if len(folded) < MIN_CHARS:
        raise ValidationFailed({"search": tr(TOO_SHORT, n=MIN_CHARS)})
    return Query("name", folded)


def _entries(gram: str, names_only: bool):
    """The key rows of one gram: in the customer's own name only, or anywhere."""
    where = [_gram.c.gram == gram]
    if names_only:
        where.append(_gram.c.in_name)
    return where


# The partial index of the keys from the customer's own name (gram, customer_id WHERE
# in_name), which answers a name search without reading the table. SQLite's planner takes
# the primary key's index instead (its statistics show fewer rows per gram there, as it
# holds every key) and then reads each row for in_name: 106 ms for a gram of 58,000 names at
# 1M customers, against 4 ms through this index.
_NAME_INDEX_HINT = "INDEXED BY ix_customer_search_gram_name"


def _gram_rows(column, gram: str, names_only: bool):
    """SELECT `column` FROM the key rows of one gram (see _entries)."""
    query = select(column).where(*_entries(gram, names_only))
    return query.with_hint(_gram, _NAME_INDEX_HINT, "sqlite") if names_only else query


def _driving_gram(conn, grams: list[str], names_only: bool) -> tuple[str, int]:
    """The rarest of the query's first grams and its number of entries (capped)."""
    best, best_n = grams[0], None
    for g in grams[:_GRAMS_COMPARED]:
        n = conn.execute(select(func.count()).select_from(
            _gram_rows(literal(1), g, names_only).limit(_COUNT_CAP).subquery())
        ).scalar_one()
        if best_n is None or n < best_n:
            best, best_n = g, n
        if n == 0:
            break
    return best, best_n


def customer_ids_matching(text, conn=None):
    """A SELECT of the ids of the customers the search text finds (all customers: the caller
    adds the user's scope). ValidationFailed for a text that cannot be searched."""
    return ids_for(parse(text), conn)


def ids_for(query: Query, conn=None, names_only: bool = False):
    """The ids `query` finds; `names_only`: by the customer's own name, not its contacts'."""
    if query.kind == "phone":
        p = query.value
        return union(
            select(_customer.c.id).where(or_(_customer.c.phone_e164 == p,
                                             _customer.c.mobile_e164 == p)),
            select(_contact.c.customer_id).where(or_(_contact.c.phone_e164 == p,
                                                     _contact.c.mobile_e164 == p)))
    if query.kind == "email":
        e = query.value
        return union(select(_customer.c.id).where(_customer.c.email_norm == e),
                     select(_contact.c.customer_id).where(_contact.c.email_norm == e))
    folded = query.value
    ordered = list(dict.fromkeys(folded[i:i + 2] for i in range(len(folded) - 1)))
    if len(folded) == 2:
        # The gram is the whole query: its entries are exactly the answer (names_only: those
        # from the customer's own name, a partial index).
        return _gram_rows(_gram.c.customer_id, folded, names_only)
    from app.extensions import db

    conn = conn if conn is not None else db.session.connection()
    drive, entries = _driving_gram(conn, ordered, names_only)
    # The folded text holds letters, digits and CJK only: no LIKE wildcard to escape.
    pattern = f"%{folded}%"
    found = _text.c.name.like(pattern)
    if not names_only:
        found = or_(found, _text.c.contacts.like(pattern))
    candidates = _gram_rows(_gram.c.customer_id, drive, names_only).where(
        exists().where(_text.c.customer_id == _gram.c.customer_id, found))
    if entries < _COUNT_CAP:
        # Few candidates: checked now, and the list query gets their ids. PostgreSQL cannot
        # estimate the LIKE check (it guessed one row and joined the scope by a nested loop
        # over every candidate, 2 s at 1M customers); a list of ids it counts exactly.
        ids = list(conn.execute(candidates).scalars())
        return select(_customer.c.id).where(_customer.c.id.in_(ids))
    return candidates


def parse_name(text) -> Query:
    """A name filter's text ("name contains"): folded, never read as a phone or e-mail."""
    _check(text)
    folded = fold(text)
    if len(folded) < MIN_CHARS:
        raise ValidationFailed({"search": tr(TOO_SHORT, n=MIN_CHARS)})
    return Query("name", folded)


def matching_clause(text, id_column):
    """WHERE clause: id_column (a customer id) among the customers the text finds."""
    return id_column.in_(customer_ids_matching(text))
