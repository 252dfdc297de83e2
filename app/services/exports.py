"""Customer export (CSV / XLSX): exactly the rows in the user's data scope, one definition for
web and CLI, with contact details masked where the user may not see them in full.

Who sees a row's mobile, phone and e-mail in full (the same as on screen):
  admins                       every row;
  auditors                     no row (they read, they do not call customers);
  everyone else                the rows they may edit: customers owned inside their scope.
                               Pool customers (the pool pages mask them too) and customers
                               only shared with them (read-only) are masked: 138****8000.
A pool admin's export of the pools they administer shows full details: they manage those.
Times are business time (GUISHU_TIMEZONE) to the second, as on the pages.
"""
from __future__ import annotations

import csv
import io
import re
from typing import Iterable, Iterator, Optional, TextIO

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Customer, Ownership, User
from app.security import customer_scope_clause
from app.services import masking
from app.services.times import local_naive

EXPORT_COLUMNS = ["id", "name", "customer_type", "industry", "province", "city", "address",
                  "mobile", "phone", "email", "source", "product_line", "owner", "pool",
                  "created_at"]
# The header row names the columns in the reader's language (the CLI: the default, Chinese).
# The import's mapping form recognises these names in both languages
# (app.services.import_mapping.HEADER_SYNONYMS) and the customer type's labels
# (CUSTOMER_TYPE_WORDS): an exported file imports again as it is.
EXPORT_HEADERS = {
    "id": _l("ID"), "name": _l("Name"), "customer_type": _l("Type"),
    "industry": _l("Industry"), "province": _l("Province"), "city": _l("City"),
    "address": _l("Address"), "mobile": _l("Mobile"), "phone": _l("Phone"),
    "email": _l("Email"), "source": _l("Source"), "product_line": _l("Product line"),
    "owner": _l("Owner"), "pool": _l("Pool"), "created_at": _l("Created at"),
}


def header_row() -> list[str]:
    return [str(EXPORT_HEADERS[c]) for c in EXPORT_COLUMNS]

# A leading sign Excel reads as a number, not a formula: digits and the spaces, brackets,
# dashes and dots of a phone number (+86 (21) 6234-5678, -1.5). "-2+3+cmd|…" is a formula.
_SIGNED_NUMBER = re.compile(r"[+-][\d\s().-]*")


def safe_cell(value):
    """A text cell Excel will not run as a formula (CSV / formula injection): a leading =,
    @, tab or carriage return, or + / - unless a plain number follows (+86 138… stays a
    number), gets a leading apostrophe, which Excel shows as text."""
    if isinstance(value, str) and value and (
            value[0] in "=@\t\r" or (value[0] in "+-" and not _SIGNED_NUMBER.fullmatch(value))):
        return "'" + value
    return value


class SafeCsvWriter:
    """csv.writer for every CSV the app writes (exports, the import error report, the scan
    output): each cell, header included, goes through safe_cell."""

    def __init__(self, out: TextIO):
        self._writer = csv.writer(out)

    def writerow(self, row: Iterable) -> None:
        self._writer.writerow([safe_cell(v) for v in row])


def customer_rows(user: User, batch: int = 1000) -> Iterator[list]:
    """Every customer in the user's data scope, masked by the contact details rule."""
    return _rows(customer_scope_clause(user), batch, masking.rule_for(user))


def pool_rows(pool_ids: set[int], batch: int = 1000) -> Iterator[list]:
    """Every customer sitting in one of these pools (a pool admin's export, in full)."""
    return _rows(Customer.id.in_(select(Ownership.customer_id).where(
        Ownership.pool_id.in_(pool_ids or {0}))), batch, lambda owner_id, pool_id: True)


def _rows(clause, batch: int, rule: masking.Rule) -> Iterator[list]:
    q = (select(Customer).where(clause).order_by(Customer.id)
         .options(selectinload(Customer.ownership).selectinload(Ownership.owner),
                  selectinload(Customer.ownership).selectinload(Ownership.pool))
         .execution_options(yield_per=batch))
    for c in db.session.execute(q).scalars():
        o = c.ownership
        full = rule(o.owner_id if o else None, o.pool_id if o else None)
        mobile, phone, email = (getattr(c, f) if full else masking.shown(f, getattr(c, f), False)
                                or "" for f in ("mobile", "phone", "email"))
        yield [c.id, c.name, str(c.type_label), c.industry, c.province, c.city, c.address,
               mobile, phone, email, c.source, c.product_line,
               o.owner.username if o and o.owner else "", o.pool.name if o and o.pool else "",
               local_naive(c.created_at)]  # business time, like the pages


def write_csv(user: User, out: TextIO, rows: Optional[Iterator[list]] = None) -> int:
    """Write the header and every row (the user's scope unless `rows` is given); returns the
    number of customers."""
    writer = SafeCsvWriter(out)
    writer.writerow(header_row())
    n = 0
    for row in customer_rows(user) if rows is None else rows:
        writer.writerow(row)
        n += 1
    return n


def xlsx_bytes(user: User, rows: Optional[Iterator[list]] = None) -> tuple[bytes, int]:
    """The same rows as an Excel workbook (write-only mode: rows are streamed, not held)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("customers")
    sheet.append(header_row())
    n = 0
    for row in customer_rows(user) if rows is None else rows:
        # Numbers stay text: Excel would show a mobile as 1.38E+10.
        sheet.append(["" if v is None else safe_cell(v) for v in row])
        n += 1
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue(), n


# --- any other table (the campaign effect table, …): the same safe cells ----------------------
def table_csv(header: list[str], rows: Iterable[list]) -> str:
    """A CSV of a small table, with the BOM Excel in China needs to read UTF-8."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = SafeCsvWriter(buf)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def table_xlsx(sheet_name: str, header: list[str], rows: Iterable[list]) -> bytes:
    """The same table as an Excel workbook (text cells through safe_cell)."""
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(sheet_name)
    sheet.append([safe_cell(v) for v in header])
    for row in rows:
        sheet.append(["" if v is None else safe_cell(v) for v in row])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()
