"""Value re-evaluation under concurrency: simultaneous review runs file one open proposal per
customer and kind (the partial unique index; the loser reads again and files nothing)."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.models import Ownership
from app.models.customer import utcnow
from app.models.value_review import ValueProposal
from app.services import value_review
from tests.helpers import in_threads

pytestmark = pytest.mark.real_db


def test_simultaneous_runs_file_one_proposal(app, db, org):
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep.id)
                       .values(category="silent", grade="A", last_followup_at=utcnow()))
    db.session.commit()
    results = in_threads(app, 4, lambda i: value_review.review())
    assert sum(r["reactivate"] for r in results) == 1
    db.session.expire_all()
    assert len(db.session.execute(select(ValueProposal).where(
        ValueProposal.status == "open")).scalars().all()) == 1
