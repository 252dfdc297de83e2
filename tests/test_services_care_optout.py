"""Birthday and holiday care honour the marketing opt-out list: an opted-out address is not
planned, and one that opts out after planning is cancelled when due (not sent)."""
from __future__ import annotations

import datetime as dt

from app.services import campaign_sending, care
from tests.care_fixtures import SENT_SMS
from tests.test_services_care import PLAN_DAY, activate, at, birthdays, outbox, smtp  # noqa: F401


def test_an_opted_out_address_gets_no_care_greeting(app, db, org, birthdays, smtp):  # noqa: F811
    activate(db, "email")
    campaign_sending.record_optout("email", "wangfang@example.com", "manual")
    db.session.commit()
    care.plan(PLAN_DAY)
    assert [m.address for m in outbox(db, channel="email")] == ["zhaomin@hengxin.cn"]


def test_an_opt_out_after_planning_cancels_the_greeting(app, db, org, birthdays,  # noqa: F811
                                                          monkeypatch):
    monkeypatch.setitem(app.config, "SMS_GATEWAY", "tests.care_fixtures:RecordingGateway")
    SENT_SMS.clear()
    activate(db, "sms")
    care.plan(PLAN_DAY)
    assert [m.status for m in outbox(db, channel="sms")] == ["pending"]
    campaign_sending.record_optout("sms", "+8613700137000", "sms_reply")
    db.session.commit()
    result = care.deliver(now=at(dt.date(2027, 3, 12), 10))
    assert SENT_SMS == []
    # Only the owners' in-app reminders (two, active by default) went out.
    assert (result.sent, result.opted_out) == (2, 1)
    message = outbox(db, channel="sms")[0]
    assert (message.status, message.last_error) == ("cancelled", "地址已退订")
