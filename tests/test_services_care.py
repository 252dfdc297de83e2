"""Birthday and holiday care: the calendar (solar, lunar, holidays), planning into the outbox
once per greeting, delivery over real SMTP and SMS gateways with retries, owners' tasks,
scoped retry / cancel, template and settings validation, and the jobs on a real worker."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.models import AuditLog, CareMessage, CareTemplate, Contact, Notification
from app.services import campaign_sending, care, care_calendar as cal, customers
from app.services.errors import ValidationFailed
from tests.care_fixtures import SENT_SMS, SmsEndpoint, SmtpServer, free_port

PLAN_DAY = dt.date(2027, 3, 10)  # no public holiday within three days


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    """Naive UTC for a Beijing wall-clock time (how `deliver(now=…)` takes it)."""
    return dt.datetime(day.year, day.month, day.day, hour, minute) - dt.timedelta(hours=8)


def activate(db, *channels):
    db.session.execute(update(CareTemplate).where(CareTemplate.channel.in_(channels))
                       .values(active=True))
    db.session.commit()


def outbox(db, **where) -> list[CareMessage]:
    db.session.expire_all()
    q = select(CareMessage).order_by(CareMessage.id)
    for key, value in where.items():
        q = q.where(getattr(CareMessage, key) == value)
    return list(db.session.execute(q).scalars())


def person(owner, name, birthday, lunar=False, **extra):
    return customers.create_customer(owner, {"name": name, "customer_type": "person",
                                             "birthday": birthday, "birthday_lunar": lunar,
                                             **extra})


@pytest.fixture
def smtp(app, monkeypatch):
    with SmtpServer() as server:
        monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(app.config, "SMTP_PORT", server.port)
        yield server.inbox


@pytest.fixture
def birthdays(db, org):
    """王芳 (rep's, e-mail and mobile) on 03-12; a contact of rep2's company on 03-11;
    a pool customer and a customer outside the window with birthdays too."""
    wang = person(org.rep, "王芳", "1985-03-12", email="WangFang@Example.com",
                  mobile="137 0013 7000")
    contact = customers.add_contact(org.rep2, org.c_rep2.id, {
        "name": "赵敏", "email": "zhaomin@hengxin.cn", "birthday": "03-11"})
    pooled = person(org.staff, "钱多多", "03-12", email="qian@example.com")
    later = person(org.rep, "李雷", "1990-03-20", email="lilei@example.com")
    return wang, contact, pooled, later


# --- calendar -----------------------------------------------------------------------------
def test_solar_birthdays_and_the_29th_of_february():
    assert (2, 29, False) in cal.birthdays_on(dt.date(2027, 2, 28))  # common year: kept on 28
    assert (2, 29, False) not in cal.birthdays_on(dt.date(2028, 2, 28))
    assert (2, 29, False) in cal.birthdays_on(dt.date(2028, 2, 29))
    assert cal.birthday_in(2027, 2, 29, False) == dt.date(2027, 2, 28)
    assert cal.birthdays_on(dt.date(2027, 3, 12))[(3, 12, False)].key == "birthday:2027"


def test_lunar_birthdays_land_on_the_right_solar_date():
    # Lunar 1/1 of 2027 is 春节, 2027-02-06 (the holidays package agrees, below).
    assert cal.birthday_in(2027, 1, 1, True) == dt.date(2027, 2, 6)
    occasion = cal.birthdays_on(dt.date(2027, 2, 6))[(1, 1, True)]
    assert (occasion.key, occasion.name) == ("birthday:lunar:2027", "农历生日")
    # A leap month is not a second birthday: 2025 has a leap 6th month from 2025-07-25.
    assert cal.birthday_in(2025, 6, 1, True) == dt.date(2025, 6, 25)
    assert not [k for k in cal.birthdays_on(dt.date(2025, 7, 25)) if k[2]]


def test_a_missing_lunar_12_30_falls_back_to_the_months_last_day():
    # Lunar 2026 has no 12/30: 12/29 (2027-02-05) is the month's last day, for both.
    assert cal.birthday_in(2026, 12, 30, True) == dt.date(2027, 2, 5)
    on_last_day = cal.birthdays_on(dt.date(2027, 2, 5))
    assert {(12, 29, True), (12, 30, True)} <= set(on_last_day)
    # Lunar 2023 has a 12/30 (2024-02-09): there 12/29 and 12/30 are different days.
    assert cal.birthday_in(2023, 12, 30, True) == dt.date(2024, 2, 9)
    assert (12, 30, True) not in cal.birthdays_on(dt.date(2024, 2, 8))
    assert (12, 30, True) in cal.birthdays_on(dt.date(2024, 2, 9))


def test_holidays_are_greeted_on_their_first_day_only():
    national = cal.holidays_between(dt.date(2027, 9, 28), dt.date(2027, 10, 5), {"国庆节"})
    assert [(o.key, o.date) for o in national] == [("holiday:国庆节:2027", dt.date(2027, 10, 1))]
    assert cal.holidays_between(dt.date(2027, 10, 2), dt.date(2027, 10, 7), {"国庆节"}) == []
    spring = cal.holidays_between(dt.date(2027, 2, 1), dt.date(2027, 2, 10), {"春节"})
    assert [o.date for o in spring] == [dt.date(2027, 2, 6)]
    names = cal.holiday_names(2027)
    assert "清明节" in names and not [n for n in names if "补假" in n or "调休" in n]


def test_default_settings_do_not_greet_on_qingming(db):
    assert "清明节" not in care.greeted_holidays()
    assert cal.holidays_between(dt.date(2027, 4, 1), dt.date(2027, 4, 7),
                                care.greeted_holidays()) == []


# --- planning -----------------------------------------------------------------------------
def test_plan_writes_one_message_per_recipient_and_channel(db, org, birthdays):
    wang, contact, pooled, later = birthdays
    activate(db, "email", "sms", "task")
    result = care.plan(PLAN_DAY)
    assert result.birthdays == 5
    got = {(m.recipient_key, m.channel): (m.address, m.send_on, m.owner_id, m.occasion_key)
           for m in outbox(db)}
    due = dt.date(2027, 3, 12)
    assert got == {
        (f"customer:{wang.id}", "email"): ("wangfang@example.com", due, org.rep.id,
                                           "birthday:2027"),
        (f"customer:{wang.id}", "sms"): ("+8613700137000", due, org.rep.id, "birthday:2027"),
        (f"customer:{wang.id}", "task"): (None, PLAN_DAY, org.rep.id, "birthday:2027"),
        (f"contact:{contact.id}", "email"): ("zhaomin@hengxin.cn", dt.date(2027, 3, 11),
                                             org.rep2.id, "birthday:2027"),
        (f"contact:{contact.id}", "task"): (None, PLAN_DAY, org.rep2.id, "birthday:2027"),
    }
    # Re-running, or tomorrow's overlapping window, greets nobody twice.
    assert care.plan(PLAN_DAY).birthdays == 0
    assert care.plan(PLAN_DAY + dt.timedelta(days=1)).birthdays == 0
    assert len(outbox(db)) == 5


def test_fresh_deployments_plan_only_the_owners_reminders(db, org, birthdays):
    care.plan(PLAN_DAY)  # mail and SMS templates start inactive
    assert {m.channel for m in outbox(db)} == {"task"}


def test_a_lunar_12_30_birthday_is_planned_on_the_last_day(db, org):
    customer = person(org.rep, "孙悦", "12-30", lunar=True, email="sunyue@example.com")
    activate(db, "email")
    care.plan(dt.date(2027, 2, 3))
    (message,) = outbox(db, channel="email", occasion="birthday")
    assert (message.customer_id, message.occasion_date, message.occasion_key) == (
        customer.id, dt.date(2027, 2, 5), "birthday:lunar:2026")


def test_holiday_greetings_go_to_every_owned_customer_once(db, org):
    db.session.add(Contact(customer_id=org.c_rep.id, name="周经理", email="zhou@yunfan.cn",
                           email_norm="zhou@yunfan.cn", is_primary=True))
    db.session.commit()
    activate(db, "email")
    result = care.plan(dt.date(2027, 2, 3))  # 春节 2027-02-06 is three days ahead
    assert result.occasions == ["春节 2027-02-06"]
    emails = {m.customer_id: (m.address, m.template.name) for m in outbox(db, channel="email")}
    # c_rep has no e-mail of its own: its primary contact's; c_rep2 has none at all; the pool
    # customer has nobody to greet on behalf of. 春节 has its own template.
    assert emails == {org.c_rep.id: ("zhou@yunfan.cn", "新春祝福邮件"),
                      org.c_north.id: ("contact@hualian.cn", "新春祝福邮件")}
    assert {m.customer_id for m in outbox(db, channel="task")} == {
        org.c_rep.id, org.c_rep2.id, org.c_north.id}
    assert care.plan(dt.date(2027, 2, 4)).holidays == 0


# --- delivery -----------------------------------------------------------------------------
def test_email_goes_out_over_smtp_on_the_day_from_the_send_hour(db, org, birthdays, smtp):
    activate(db, "email", "sms", "task")
    care.plan(PLAN_DAY)
    early = care.deliver(now=at(dt.date(2027, 3, 12), 8, 30))
    # 08:30 on the day: the owners' tasks and yesterday's contact mail, not today's mail yet.
    assert {(m.recipient_key.split(":")[0], m.channel) for m in outbox(db, status="sent")} == {
        ("customer", "task"), ("contact", "task"), ("contact", "email")}
    assert early.sent == 3 and len(smtp.messages) == 1
    result = care.deliver(now=at(dt.date(2027, 3, 12), 9, 5))
    assert result.sent == 1 and len(smtp.messages) == 2
    mail = smtp.messages[1]
    assert smtp.recipients[1] == ["wangfang@example.com"]
    assert mail["Subject"] == "王芳，生日快乐！"
    assert "王芳" in mail.get_body().get_content() and org.rep.display_name in \
        mail.get_body().get_content()
    sent = outbox(db, channel="email", recipient_key=f"customer:{birthdays[0].id}")[0]
    assert (sent.status, sent.attempts, sent.subject) == ("sent", 1, "王芳，生日快乐！")
    # No SMS gateway configured: refused for good, with the reason.
    (sms,) = outbox(db, channel="sms")
    assert (sms.status, sms.attempts) == ("failed", 1)
    assert "未配置短信网关" in sms.last_error
    # Nothing goes out twice.
    assert care.deliver(now=at(dt.date(2027, 3, 12), 12)).sent == 0
    assert len(smtp.messages) == 2


def test_an_unreachable_server_is_retried_with_backoff_then_failed(app, db, org, birthdays,
                                                                   monkeypatch):
    monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
    monkeypatch.setitem(app.config, "SMTP_PORT", free_port())  # nothing listens there
    care.settings().max_attempts = 3
    db.session.commit()
    activate(db, "email")
    care.plan(PLAN_DAY)
    t0 = at(dt.date(2027, 3, 12), 10)
    key = f"customer:{birthdays[0].id}"

    def state():
        m = outbox(db, channel="email", recipient_key=key)[0]
        return m.status, m.attempts, m.next_attempt_at

    care.deliver(now=t0)
    assert state() == ("pending", 1, t0 + dt.timedelta(minutes=5))
    assert "邮件服务器不可达" in outbox(db, recipient_key=key, channel="email")[0].last_error
    care.deliver(now=t0 + dt.timedelta(minutes=4))  # not yet due again
    assert state()[1] == 1
    care.deliver(now=t0 + dt.timedelta(minutes=6))
    assert state() == ("pending", 2, t0 + dt.timedelta(minutes=26))
    care.deliver(now=t0 + dt.timedelta(minutes=30))
    assert state()[:2] == ("failed", 3)
    # An admin retries once the server is back: it goes out, once.
    with SmtpServer() as server:
        monkeypatch.setitem(app.config, "SMTP_PORT", server.port)
        message = outbox(db, recipient_key=key, channel="email")[0]
        assert care.retry(org.admin, [message.id]) == 1
        care.deliver(now=t0 + dt.timedelta(minutes=31))
        assert state()[:2] == ("sent", 1) and len(server.inbox.messages) == 1


def test_a_refused_address_fails_at_once(app, db, org, birthdays, monkeypatch):
    activate(db, "email")
    care.plan(PLAN_DAY)
    with SmtpServer(refuse=True) as server:
        monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(app.config, "SMTP_PORT", server.port)
        care.deliver(now=at(dt.date(2027, 3, 12), 10))
    (message,) = outbox(db, channel="email", recipient_key=f"customer:{birthdays[0].id}")
    assert (message.status, message.attempts) == ("failed", 1)
    assert message.last_error == "邮件服务器拒收地址 wangfang@example.com：550 5.1.1 mailbox unavailable"


def test_sms_through_a_pluggable_gateway_class(app, db, org, birthdays, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_GATEWAY", "tests.care_fixtures:RecordingGateway")
    SENT_SMS.clear()
    activate(db, "sms")
    care.plan(PLAN_DAY)
    care.deliver(now=at(dt.date(2027, 3, 12), 10))
    assert SENT_SMS == [("+8613700137000", f"王芳您好，{org.rep.display_name}祝您生日快乐，万事如意！")]
    assert outbox(db, channel="sms")[0].status == "sent"


def test_sms_through_the_http_gateway(app, db, org, birthdays, monkeypatch):
    activate(db, "sms")
    care.plan(PLAN_DAY)
    monkeypatch.setitem(app.config, "SMS_GATEWAY", "http")
    monkeypatch.setitem(app.config, "SMS_TOKEN", "t0k")
    with SmsEndpoint() as endpoint:
        monkeypatch.setitem(app.config, "SMS_URL", endpoint.url)
        care.deliver(now=at(dt.date(2027, 3, 12), 10))
    ((body, auth),) = endpoint.received
    assert body["to"] == "+8613700137000" and "生日快乐" in body["text"]
    assert auth == "Bearer t0k"
    assert outbox(db, channel="sms")[0].status == "sent"


def test_a_gateway_refusal_is_not_retried(app, db, org, birthdays, monkeypatch):
    activate(db, "sms")
    care.plan(PLAN_DAY)
    monkeypatch.setitem(app.config, "SMS_GATEWAY", "http")
    with SmsEndpoint(status=400) as endpoint:
        monkeypatch.setitem(app.config, "SMS_URL", endpoint.url)
        care.deliver(now=at(dt.date(2027, 3, 12), 10))
    (message,) = outbox(db, channel="sms")
    assert (message.status, message.last_error) == ("failed", "短信网关拒绝：HTTP 400")


def test_owners_get_one_task_per_occasion_naming_their_customers(db, org):
    extra = customers.create_customer(org.rep, {"name": "宁波海联贸易有限公司"})
    care.plan(dt.date(2027, 2, 3))  # 春节 in three days; only tasks are active by default
    care.deliver(now=at(dt.date(2027, 2, 3), 7))
    notes = list(db.session.execute(select(Notification).where(
        Notification.user_id == org.rep.id, Notification.kind == "care")).scalars())
    assert len(notes) == 1
    assert notes[0].title.startswith("3 天后（2月6日）春节：请问候 ")
    assert org.c_rep.name in notes[0].title and extra.name in notes[0].title
    assert {m.status for m in outbox(db, owner_id=org.rep.id)} == {"sent"}


def test_a_message_is_claimed_by_one_sender_and_an_interrupted_send_is_not_repeated(
        db, org, birthdays):
    activate(db, "email")
    care.plan(PLAN_DAY)
    message = outbox(db, channel="email")[0]
    t0 = at(dt.date(2027, 3, 12), 10)
    assert care._claim(message.id, t0) is True
    assert care._claim(message.id, t0) is False  # a second worker does not get it
    result = care.deliver(now=t0 + dt.timedelta(minutes=20))  # the first one died mid-send
    assert result.interrupted == 1
    db.session.expire_all()
    message = db.session.get(CareMessage, message.id)
    assert (message.status, message.last_error) == (
        "failed", "发送中断（进程退出），无法确认是否送达；确认后可手动重试")


def test_retry_and_cancel_stay_within_the_data_scope(db, org, birthdays):
    activate(db, "email")
    care.plan(PLAN_DAY)
    wang_mail = outbox(db, channel="email", recipient_key=f"customer:{birthdays[0].id}")[0]
    assert care.cancel(org.rep2, [wang_mail.id]) == 0  # another rep's customer
    assert care.cancel(org.manager_north, [wang_mail.id]) == 0  # another department
    assert care.cancel(org.manager, [wang_mail.id]) == 1
    assert outbox(db, id=wang_mail.id)[0].status == "cancelled"
    assert care.cancel(org.rep, [wang_mail.id]) == 0  # no longer pending
    assert care.retry(org.rep, [wang_mail.id]) == 1
    assert outbox(db, id=wang_mail.id)[0].status == "pending"
    audits = db.session.execute(select(AuditLog.action, AuditLog.actor_id).where(
        AuditLog.object_type == "care_message").order_by(AuditLog.id)).all()
    assert [tuple(a) for a in audits] == [("cancel", org.manager.id), ("retry", org.rep.id)]


# --- validation ---------------------------------------------------------------------------
def template(**kw):
    base = dict(name="测试", occasion="birthday", channel="email", subject="你好 {contact}",
                body="{owner} 祝 {contact} 生日快乐", active=True)
    return CareTemplate(**{**base, **kw})


@pytest.mark.parametrize("changes, field, message", [
    ({"body": "{客户} 你好"}, "body", "未知占位符 {客户}"),
    ({"body": "{customer.__class__}"}, "body", "未知占位符 {customer.__class__}"),
    ({"subject": "{contact"}, "subject", "花括号不成对"),
    # a format spec renders 300 MB per message; a conversion is code in a template
    ({"body": "{contact:>300000000}"}, "body", "占位符 {contact} 不能带格式或转换；请写作 {contact}"),
    ({"subject": "{owner!r}"}, "subject", "占位符 {owner} 不能带格式或转换"),
    ({"subject": ""}, "subject", "邮件模板需要主题"),
    ({"holiday": "春节"}, "holiday", "生日模板不能指定节日"),
    ({"occasion": "holiday", "holiday": "情人节"}, "holiday", "未知节日：情人节"),
    ({"channel": "sms", "body": "祝" * 301}, "body", "短信内容不能超过 300 个字符"),
])
def test_template_validation_names_the_problem(db, changes, field, message):
    with pytest.raises(ValidationFailed) as err:
        care.validate_template(template(**changes))
    assert message in err.value.fields[field]


def test_a_valid_template_renders_every_placeholder(db):
    row = template(occasion="holiday", holiday="春节", body="{customer}/{contact}/{owner}/"
                   "{occasion}/{date} {{不是占位符}}")
    care.validate_template(row)
    assert care.render(row, {"customer": "甲公司", "contact": "张三", "owner": "李四",
                             "occasion": "春节", "date": "2月6日"})[1] == \
        "甲公司/张三/李四/春节/2月6日 {不是占位符}"


def test_a_stored_template_with_a_format_spec_renders_literally(db):
    """A row saved before the check (or edited in the database) cannot apply a format."""
    row = template(body="{contact:>300000000} / {contact}")
    assert care.render(row, {"contact": "张三", "owner": "李四"})[1] == \
        "{contact:>300000000} / 张三"


def test_settings_validation(db):
    conf = care.settings()
    conf.holidays, conf.days_ahead = "春节，情人节", 61
    with pytest.raises(ValidationFailed) as err:
        care.validate_settings(conf)
    assert err.value.fields["days_ahead"] == "提前天数必须在 0 到 60 之间"
    assert err.value.fields["holidays"].startswith("未知节日：情人节；可选：元旦、")
    db.session.rollback()
    conf = care.settings()
    conf.holidays = "国庆节，春节"
    care.validate_settings(conf)
    assert conf.holidays == "春节,国庆节"  # the calendar's order, ASCII commas


# --- jobs on a real worker ------------------------------------------------------------------
def test_the_care_jobs_plan_and_send_on_a_real_worker(db, org, redis_url, database_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    import uuid

    from app.queue import get_queue
    from jobs.care import care_deliver, care_plan
    from app.services.pool import local_today
    from tests.test_jobs import run_burst_worker

    today = local_today()
    wang = person(org.rep, "王芳", f"{today.month:02d}-{today.day:02d}", email="wf@example.com")
    care.settings().send_hour = 0  # whatever the hour the test runs at
    db.session.commit()
    activate(db, "email")
    queue = f"test-{uuid.uuid4().hex[:8]}"
    with SmtpServer() as server:
        plan_job = get_queue(queue).enqueue(care_plan)
        deliver_job = get_queue(queue).enqueue(care_deliver)
        result = run_burst_worker(redis_url, database_url, queue, {
            "GUISHU_SMTP_HOST": "127.0.0.1", "GUISHU_SMTP_PORT": str(server.port)})
    assert result.returncode == 0, result.stderr[-2000:]
    plan_job.refresh()
    deliver_job.refresh()
    assert plan_job.return_value()["birthday_messages"] == 2  # e-mail and the owner's task
    assert deliver_job.return_value()["sent"] == 2
    assert server.inbox.recipients == [["wf@example.com"]]
    assert {m.status for m in outbox(db, customer_id=wang.id)} == {"sent"}


def test_the_cli_plans_and_sends_without_redis(app, db, org, birthdays, smtp):
    activate(db, "email")
    runner = app.test_cli_runner()
    out = runner.invoke(args=["crm", "care", "--date", "2027-03-10", "--no-send"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("planned: 4 birthday and 0 holiday messages")
    assert {m.status for m in outbox(db)} == {"pending"}
    bad = runner.invoke(args=["crm", "care", "--date", "10/03/2027"])
    assert bad.exit_code == 2 and "date must be YYYY-MM-DD" in bad.output


# --- the marketing opt-out list (issue 16) ------------------------------------------------
def test_an_opted_out_address_gets_no_care_greeting(app, db, org, birthdays, smtp):
    activate(db, "email")
    campaign_sending.record_optout("email", "wangfang@example.com", "manual")
    db.session.commit()
    care.plan(PLAN_DAY)
    assert [m.address for m in outbox(db, channel="email")] == ["zhaomin@hengxin.cn"]


def test_an_opt_out_after_planning_cancels_the_greeting(app, db, org, birthdays, monkeypatch):
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
