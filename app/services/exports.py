"""Customer export: exactly the rows in the user's data scope, one definition for web and CLI."""
from __future__ import annotations

import csv
from typing import Iterator, Optional, TextIO

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.models import Customer, Ownership, User
from app.security import customer_scope_clause

EXPORT_COLUMNS = ["id", "name", "customer_type", "industry", "province", "city", "address",
                  "mobile", "phone", "email", "source", "product_line", "owner", "pool",
                  "created_at"]


def customer_rows(user: User, batch: int = 1000) -> Iterator[list]:
    """Every customer in the user's data scope."""
    return _rows(customer_scope_clause(user), batch)


def pool_rows(pool_ids: set[int], batch: int = 1000) -> Iterator[list]:
    """Every customer sitting in one of these pools (a pool admin's export)."""
    return _rows(Customer.id.in_(select(Ownership.customer_id).where(
        Ownership.pool_id.in_(pool_ids or {0}))), batch)


def _rows(clause, batch: int) -> Iterator[list]:
    q = (select(Customer).where(clause).order_by(Customer.id)
         .options(selectinload(Customer.ownership).selectinload(Ownership.owner),
                  selectinload(Customer.ownership).selectinload(Ownership.pool))
         .execution_options(yield_per=batch))
    for c in db.session.execute(q).scalars():
        o = c.ownership
        yield [c.id, c.name, c.customer_type, c.industry, c.province, c.city, c.address,
               c.mobile, c.phone, c.email, c.source, c.product_line,
               o.owner.username if o and o.owner else "", o.pool.name if o and o.pool else "",
               c.created_at]


def write_csv(user: User, out: TextIO, rows: Optional[Iterator[list]] = None) -> int:
    """Write the header and every row (the user's scope unless `rows` is given); returns the
    number of customers."""
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    n = 0
    for row in customer_rows(user) if rows is None else rows:
        writer.writerow(row)
        n += 1
    return n
