"""What the campaign tests share: a marketing user (the shared organisation may not have one
yet), a segment, and a stand-in for the segment's evaluation and for queueing messages, so
launch is tested on its own (app.services.marketing_segments and campaign_sending are other
modules' work)."""
from __future__ import annotations

import pytest
from sqlalchemy import Integer, cast, select

MARKETING_USERNAME = "marketing1"


def marketing_user(db):
    """The organisation's marketing user, made here when the shared fixtures lack one."""
    from app.models import User
    from app.security import ROLE_MARKETING
    from tests.conftest import make_user

    found = db.session.execute(select(User).where(
        User.username == MARKETING_USERNAME)).scalar_one_or_none()
    return found or make_user(MARKETING_USERNAME, ROLE_MARKETING)


def make_segment(db, creator, name="华东客户", record_type="customer"):
    from app.models.marketing import Segment

    segment = Segment(name=name, record_type=record_type, criteria="{}",
                      created_by_id=creator.id)
    db.session.add(segment)
    db.session.commit()
    return segment


def customers_select(customer_ids):
    """A members_select stand-in: these customers (customer_id, lead_id NULL)."""
    from app.models import Customer

    return select(Customer.id.label("customer_id"), cast(None, Integer).label("lead_id")).where(
        Customer.id.in_(list(customer_ids)))


@pytest.fixture
def queued(monkeypatch):
    """The campaign ids launch handed to queueing (app.services.campaign_sending)."""
    from app.services import campaigns

    calls: list[int] = []

    def fake_queue(campaign):
        calls.append(campaign.id)
        return 7

    monkeypatch.setattr(campaigns, "_queue_pending", fake_queue)
    return calls


@pytest.fixture
def segment_of(monkeypatch):
    """segment_of(customer_ids): launch freezes exactly these customers for any segment."""
    from app.services import campaigns

    def use(customer_ids):
        monkeypatch.setattr(campaigns, "segment_members",
                            lambda segment: customers_select(customer_ids))
    return use
