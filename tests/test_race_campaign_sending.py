"""Campaign sending under concurrency: parallel queue runs queue each member and channel once
(the unique index), parallel unsubscribes of one address record one opt-out, and parallel
deliveries send each message once (the claim)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models.marketing import Campaign, CampaignMember, CampaignMessage, MarketingOptOut
from app.services import campaign_sending as cs
from tests.care_fixtures import SmtpServer
from tests.helpers import in_threads

pytestmark = pytest.mark.real_db


def _campaign(db, org) -> int:
    campaign = Campaign(name="并发活动", kind="email", status="running", email_subject="s",
                        email_body="{name}", sms_body="{name}", send_from_hour=0,
                        send_to_hour=24)
    db.session.add(campaign)
    db.session.flush()
    for customer in (org.c_rep, org.c_rep2, org.c_north):
        db.session.add(CampaignMember(campaign_id=campaign.id, customer_id=customer.id))
    db.session.commit()
    return campaign.id


def test_parallel_queue_runs_queue_each_message_once(app, db, org):
    cid = _campaign(db, org)
    results = in_threads(app, 6, lambda i: cs.queue_messages(cid))
    # c_rep and c_rep2 have a mobile, c_north an e-mail.
    assert sum(results) == 3
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(CampaignMessage)).scalar_one() == 3


def test_people_added_at_once_to_a_running_campaign_get_one_message_per_address(app, db,
                                                                                org):
    """Six customers with one mobile (the dedupe check bypassed: imported before it), each
    added by its own request at the same moment: each add queues under the campaign's row
    lock, so the address gets one message, never six."""
    from sqlalchemy import update

    from app.models import Customer, User
    from app.security import ROLE_MARKETING
    from app.services import campaigns, customers
    from tests.conftest import make_user

    marketer = make_user("mkt-race", ROLE_MARKETING)
    cid = _campaign(db, org)
    cs.queue_messages(cid)
    ids = [customers.create_customer(org.rep, {"name": f"同号公司{i}"}).id for i in range(6)]
    db.session.execute(update(Customer).where(Customer.id.in_(ids)).values(
        mobile="13700137000", mobile_e164="+8613700137000"))
    db.session.commit()
    marketer_id = marketer.id

    def add(i):
        from app.extensions import db as tdb

        return campaigns.add_members(cid, tdb.session.get(User, marketer_id),
                                     customer_ids=[ids[i]]).added

    assert in_threads(app, 6, add) == [1] * 6
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(CampaignMessage).where(
        CampaignMessage.address == "+8613700137000")).scalar_one() == 1


def test_parallel_unsubscribes_record_one_opt_out(app, db, org):
    cid = _campaign(db, org)
    cs.queue_messages(cid)
    message = db.session.execute(select(CampaignMessage).where(
        CampaignMessage.channel == "email")).scalar_one()
    token = cs.unsubscribe_token(message)
    results = in_threads(app, 6, lambda i: cs.unsubscribe(token))
    assert sorted(results) == [False] * 5 + [True]
    db.session.expire_all()
    assert db.session.execute(select(MarketingOptOut.address)).scalars().all() == [
        "contact@hualian.cn"]


def test_parallel_deliveries_send_each_message_once(app, db, org, monkeypatch):
    cid = _campaign(db, org)
    db.session.execute(Campaign.__table__.update().values(sms_body=None))
    db.session.commit()
    for i in range(3, 9):  # more members with an e-mail
        from app.services import customers

        made = customers.create_customer(org.rep, {"name": f"并发客户{i}",
                                                   "email": f"c{i}@example.com"})
        db.session.add(CampaignMember(campaign_id=cid, customer_id=made.id))
    db.session.commit()
    cs.queue_messages(cid)
    with SmtpServer() as server:
        monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(app.config, "SMTP_PORT", server.port)
        results = in_threads(app, 3, lambda i: cs.deliver().sent)
        assert sum(results) == 7
        assert sorted(m["To"] for m in server.inbox.messages) == sorted(
            ["contact@hualian.cn"] + [f"c{i}@example.com" for i in range(3, 9)])
