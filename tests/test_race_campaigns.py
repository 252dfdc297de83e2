"""Campaigns under concurrency: two launches at the same moment freeze the segment once (one
launch, one refusal, no member twice, queueing asked once), and many hands adding the same
customers at once neither fail nor double a member (the unique indexes decide)."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.models import User
from app.models.marketing import Campaign, CampaignMember
from app.services import campaigns
from app.services.errors import GuishuError
from tests.campaign_fixtures import customers_select, make_segment, marketing_user

pytestmark = pytest.mark.real_db


def _run(app, n, work):
    errors: list[BaseException] = []
    results: list = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def body(i):
        with app.app_context():
            from app.extensions import db as tdb

            try:
                barrier.wait(timeout=30)
                out = work(tdb, i)
                with lock:
                    results.append(out)
            except GuishuError as exc:
                with lock:
                    results.append(exc.code)
            except BaseException as exc:  # noqa: BLE001 - any other error fails the test
                with lock:
                    errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors[:3]
    return results


def test_two_launches_at_once_freeze_the_segment_once(app, db, org, monkeypatch):
    mkt = marketing_user(db)
    segment = make_segment(db, mkt, "并发分群")
    campaign = campaigns.create(mkt, {"name": "并发启动", "kind": "email",
                                      "segment_id": segment.id})
    campaigns.add_members(campaign.id, mkt, customer_ids=[org.c_rep.id])
    ids = [org.c_rep.id, org.c_rep2.id, org.c_north.id, org.c_pool.id]
    queued: list[int] = []
    monkeypatch.setattr(campaigns, "segment_members", lambda s: customers_select(ids))
    monkeypatch.setattr(campaigns, "_queue_pending", lambda c: queued.append(c.id) or 0)
    mkt_id, campaign_id = mkt.id, campaign.id

    def work(tdb, i):
        return campaigns.launch(campaign_id, tdb.session.get(User, mkt_id)).to_dict()

    results = _run(app, 4, work)
    launched = [r for r in results if isinstance(r, dict)]
    assert len(launched) == 1 and sorted(r for r in results if isinstance(r, str)) == \
        ["campaign_launched"] * 3
    assert launched[0]["from_segment"] == 3 and launched[0]["total"] == 4
    assert queued == [campaign_id]
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(CampaignMember).where(
        CampaignMember.campaign_id == campaign_id)).scalar_one() == 4
    assert db.session.get(Campaign, campaign_id).status == "running"


def test_the_same_customers_added_at_once_become_members_once(app, db, org):
    mkt = marketing_user(db)
    campaign = campaigns.create(mkt, {"name": "并发加人", "kind": "seminar"})
    ids = [org.c_rep.id, org.c_rep2.id, org.c_north.id, org.c_pool.id]
    users = [mkt.id, org.admin.id]
    campaign_id = campaign.id

    def work(tdb, i):
        actor = tdb.session.get(User, users[i % 2])
        return campaigns.add_members(campaign_id, actor, customer_ids=ids[i % 2:]).to_dict()

    results = _run(app, 6, work)
    assert all(isinstance(r, dict) for r in results), results
    assert sum(r["added"] for r in results) == 4
    db.session.expire_all()
    rows = db.session.execute(select(CampaignMember.customer_id).where(
        CampaignMember.campaign_id == campaign_id)).scalars().all()
    assert sorted(rows) == sorted(ids)


def test_two_campaigns_of_one_name_at_once_make_one(app, db, org):
    mkt = marketing_user(db)
    mkt_id = mkt.id

    def work(tdb, i):
        return campaigns.create(tdb.session.get(User, mkt_id), {"name": "同名并发",
                                                                "kind": "sms"}).id

    results = _run(app, 4, work)
    assert len([r for r in results if isinstance(r, int)]) == 1
    assert sorted(r for r in results if isinstance(r, str)) == ["invalid"] * 3
