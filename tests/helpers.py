"""Fresh reads of the database state the tests assert on (each ends the test's transaction)."""
from __future__ import annotations

from sqlalchemy import select


def customers_now(db) -> dict[int, str]:
    """{id: name} of every customer."""
    from app.models import Customer

    db.session.commit()
    return dict(db.session.execute(select(Customer.id, Customer.name)).all())


def holder_of(db, customer_id):
    """(owner_id, pool_id) of a customer, or None if it has no ownership row."""
    from app.models import Ownership

    db.session.commit()
    row = db.session.execute(select(Ownership.owner_id, Ownership.pool_id)
                             .where(Ownership.customer_id == customer_id)).first()
    return tuple(row) if row else None


# FAB's own refusals under /api/, with the code of our error shape (app.api.common).
FAB_FORBIDDEN = {"code": "forbidden", "message": "Forbidden"}
FAB_NOT_FOUND = {"code": "not_found", "message": "Not found"}
