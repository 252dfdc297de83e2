"""Business time (GUISHU_TIMEZONE=Asia/Shanghai, UTC+8) on every path: a time stored as
15:32 UTC reads 23:32 on pages, in exports and notifications; what users type (follow-up
times, list filters, API filters) is taken as business time; the job page's schedules are
local; days are business days. Every time here is fixed: nothing depends on the wall clock."""
from __future__ import annotations

import csv
import datetime as dt
import io
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import select, update

from app.models import (AuditLog, Customer, FollowUp, Notification, Ownership, OwnershipEvent,
                        ReclaimWarning)
from app.services import deals, exports, followups, jobs_monitor, notifications, reclaim, \
    times, transfers
from app.services.errors import ValidationFailed
from tests.test_views_ownership import post

STORED = dt.datetime(2026, 11, 29, 15, 32)   # naive UTC, as the database holds it
SHOWN = "2026-11-29 23:32"                   # the same instant in Beijing
UTC_TEXT = "2026-11-29 15:32"


@pytest.fixture(autouse=True)
def beijing(app, monkeypatch):
    monkeypatch.setitem(app.config, "TIMEZONE", "Asia/Shanghai")


def frozen(monkeypatch, module, now: dt.datetime) -> None:
    """`module`'s utcnow answers `now` (the service's idea of the present)."""
    monkeypatch.setattr(module, "utcnow", lambda: now)


# --- the helper ------------------------------------------------------------------------------
def test_the_helper_converts_both_ways(app):
    with app.app_context():
        assert times.local_text(STORED) == SHOWN
        assert times.local_text(STORED, minutes=False) == SHOWN + ":00"
        assert times.local_text(None) == "" and times.to_local(None) is None
        assert times.to_local(STORED).utcoffset() == dt.timedelta(hours=8)
        assert times.local_text("2026-11-29T15:32:10") == SHOWN  # ISO text (job records)
        assert times.local_date(dt.datetime(2026, 11, 29, 16, 0)) == dt.date(2026, 11, 30)
        assert times.from_local(dt.datetime(2026, 11, 29, 23, 32)) == STORED
        assert times.parse_local("2026-11-29 23:32") == STORED
        assert times.parse_local("2026-11-29T23:32:00+08:00") == STORED
        assert times.parse_local("2026-11-29T15:32Z") == STORED
        assert times.parse_local(STORED) == STORED  # a datetime is already stored time
        assert times.parse_local("2026-11-29") == dt.datetime(2026, 11, 28, 16, 0)
        for bad in ("昨天", "2026-13-01 10:00", "2026-11-29 24:00", "2026-11-29+08:00"):
            with pytest.raises(ValueError):
                times.parse_local(bad)
        assert times.rfc3339(STORED) == "2026-11-29T23:32:00+08:00"
        assert times.local_day_start(STORED) == dt.datetime(2026, 11, 28, 16, 0)
        assert times.local_day_start(dt.datetime(2026, 11, 29, 16, 0)) == STORED.replace(
            hour=16, minute=0)


def test_the_zone_is_the_configured_one(app, monkeypatch):
    monkeypatch.setitem(app.config, "TIMEZONE", "Europe/Berlin")
    with app.app_context():
        assert times.local_text(STORED) == "2026-11-29 16:32"  # winter: UTC+1
        assert times.local_text(dt.datetime(2026, 7, 1, 15, 32)) == "2026-07-01 17:32"
        assert times.typed_period("2026-07-01") == (dt.datetime(2026, 6, 30, 22),
                                                    dt.datetime(2026, 7, 1, 22))


def test_typed_periods(app):
    with app.app_context():
        assert times.typed_period("2026-11-29") == (dt.datetime(2026, 11, 28, 16),
                                                    dt.datetime(2026, 11, 29, 16))
        assert times.typed_period(" 2026-11-29 23:00 ") == (dt.datetime(2026, 11, 29, 15),
                                                           dt.datetime(2026, 11, 29, 15, 1))
        assert times.typed_period("2026-11-29 23:00:05") == (
            dt.datetime(2026, 11, 29, 15, 0, 5), dt.datetime(2026, 11, 29, 15, 0, 6))
        assert times.typed_period("2026-11-29T23:00+0800")[0] == dt.datetime(2026, 11, 29, 15)
        for bad in ("", "tomorrow", "2026-11-31", "29/11/2026", "2026-11-29 7pm"):
            assert times.typed_period(bad) is None


def test_pool_keeps_its_names_for_the_helper():
    from app.services import pool

    assert pool.local_today is times.local_today and pool.business_zone is times.business_zone
    assert pool.local_day_start is times.local_day_start


# --- pages ---------------------------------------------------------------------------------
def _stamp_everything(db, org):
    """Every time the pages below show is STORED."""
    db.session.execute(update(Customer).values(created_at=STORED, updated_at=STORED))
    db.session.execute(update(OwnershipEvent).values(created_at=STORED))
    db.session.execute(update(AuditLog).values(created_at=STORED))
    db.session.commit()


def test_every_model_view_shows_its_date_times_in_business_time(app):
    """Every list and show page of every ModelView (customers, contacts, follow-ups, deals,
    ownership history, audit log, care outbox, settings, users, …) formats each date-time
    column it shows in business time."""
    from flask_appbuilder.baseviews import BaseCRUDView

    from app.views.users import server_clock_minutes

    checked = set()
    with app.test_request_context():
        for view in app.appbuilder.baseviews:
            if not isinstance(view, BaseCRUDView):
                continue
            for column in set(view.list_columns) | set(view.show_columns):
                if not view.datamodel.is_datetime(column):
                    continue
                formatter = view.formatters_columns.get(column)
                assert formatter is not None, (type(view).__name__, column)
                if formatter is server_clock_minutes:  # FAB's own last_login clock
                    continue
                assert formatter(STORED) == SHOWN, (type(view).__name__, column)
                assert formatter(None) == ""
                checked.add((type(view).__name__, column))
    assert {("CustomerView", "created_at"), ("CustomerView", "updated_at"),
            ("FollowUpView", "happened_at"), ("FollowUpView", "created_at"),
            ("DealView", "created_at"), ("CustomerEventView", "created_at"),
            ("AuditLogView", "created_at"), ("CareMessageView", "sent_at"),
            ("CareMessageView", "next_attempt_at"), ("GuishuUserDBModelView", "departed_at"),
            ("DedupeRuleView", "updated_at")} <= checked


def test_no_template_formats_a_time_itself():
    """Templates print times through |local_time / |local_date (business time), never with
    their own strftime (which would print UTC)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "app" / "templates"
    offenders = [str(p) for p in root.rglob("*.html") if "strftime" in p.read_text("utf-8")]
    assert offenders == []


@pytest.mark.parametrize("role", ["admin", "manager", "rep", "staff", "auditor"])
def test_customer_list_and_show_page(role, clients, db, org):
    _stamp_everything(db, org)
    client = getattr(clients, role)
    for path in ("/customers/list/", f"/customers/show/{org.c_rep.id}"):
        html = client.get(path).get_data(as_text=True)
        assert SHOWN in html and UTC_TEXT not in html, (role, path)


def test_history_audit_and_followup_pages(clients, db, org):
    _stamp_everything(db, org)
    f = FollowUp(customer_id=org.c_rep.id, user_id=org.rep.id, channel="call", content="电话",
                 happened_at=STORED, created_at=STORED)
    db.session.add(f)
    db.session.commit()
    for client, path in [(clients.rep, "/followups/list/"), (clients.rep, f"/followups/show/{f.id}"),
                         (clients.admin, "/ownership-events/list/"),
                         (clients.admin, "/audit/list/")]:
        html = client.get(path).get_data(as_text=True)
        assert SHOWN in html and UTC_TEXT not in html, path


def test_notification_and_transfer_pages(clients, db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    db.session.execute(update(Notification).values(created_at=STORED))
    t.created_at = STORED
    db.session.commit()
    for path in ("/notifications/", "/transfers/", f"/transfers/{t.id}"):
        html = clients.manager.get(path).get_data(as_text=True)
        assert SHOWN in html and UTC_TEXT not in html, path


def test_workbench_shows_business_days(clients, db, org):
    # Acquired 16:10 UTC on the 29th: the 30th in Beijing.
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep.id)
                       .values(acquired_at=dt.datetime(2026, 11, 29, 16, 10)))
    db.session.commit()
    html = clients.rep.get("/workbench/").get_data(as_text=True)
    assert "<td>2026-11-30</td>" in html and "<td>2026-11-29</td>" not in html


# --- forms ---------------------------------------------------------------------------------
def test_a_followup_typed_in_local_time_is_stored_in_utc(db, org, monkeypatch):
    frozen(monkeypatch, followups, STORED)   # 23:32 in Beijing
    f = followups.log_followup(org.rep, org.c_rep.id, {
        "channel": "call", "content": "五分钟前的电话", "happened_at": "2026-11-29 23:27"})
    assert f.happened_at == dt.datetime(2026, 11, 29, 15, 27)
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).last_followup_at == f.happened_at
    # One hour ahead of Beijing's clock is "in the future".
    with pytest.raises(ValidationFailed) as exc:
        followups.log_followup(org.rep, org.c_rep.id, {
            "channel": "call", "content": "x", "happened_at": "2026-11-30 00:32"})
    assert exc.value.fields == {"happened_at": "跟进时间不能晚于现在"}


def test_next_contact_is_compared_with_the_local_day_of_the_followup(db, org, monkeypatch):
    frozen(monkeypatch, followups, dt.datetime(2026, 11, 30, 0, 0))   # 08:00 on the 30th
    # 07:00 on the 30th in Beijing (23:00 UTC on the 29th): the 29th is before it.
    with pytest.raises(ValidationFailed) as exc:
        followups.log_followup(org.rep, org.c_rep.id, {
            "channel": "call", "content": "x", "happened_at": "2026-11-30 07:00",
            "next_contact_on": "2026-11-29"})
    assert exc.value.fields == {"next_contact_on": "下次联系日期不能早于本次跟进"}
    f = followups.log_followup(org.rep, org.c_rep.id, {
        "channel": "call", "content": "x", "happened_at": "2026-11-30 07:00",
        "next_contact_on": "2026-11-30"})
    assert f.happened_at == dt.datetime(2026, 11, 29, 23, 0)


def test_the_followup_form_prefills_and_accepts_local_time(clients, db, org, monkeypatch):
    from app.views import activity

    frozen(monkeypatch, activity, STORED)
    frozen(monkeypatch, followups, STORED)
    form = clients.rep.get(f"/followups/add?_flt_0_customer={org.c_rep.id}").get_data(
        as_text=True)
    assert re.search(r'name="happened_at"[^>]*value="2026-11-29 23:32"', form) or \
        re.search(r'value="2026-11-29 23:32"[^>]*name="happened_at"', form)
    resp = post(clients.rep, "/followups/add", {
        "customer": str(org.c_rep.id), "channel": "call", "content": "电话确认需求",
        "happened_at": "2026-11-29 23:27", "next_contact_on": ""})
    assert resp.status_code == 302
    assert db.session.execute(select(FollowUp.happened_at)).scalar_one() == \
        dt.datetime(2026, 11, 29, 15, 27)
    resp = post(clients.rep, "/followups/add", {
        "customer": str(org.c_rep.id), "channel": "call", "content": "一小时后",
        "happened_at": "2026-11-30 00:32", "next_contact_on": ""})
    assert resp.status_code == 200 and "跟进时间不能晚于现在" in resp.get_data(as_text=True)
    assert len(db.session.execute(select(FollowUp)).all()) == 1


def test_a_deal_won_today_means_the_business_day(db, org, monkeypatch):
    frozen(monkeypatch, deals, dt.datetime(2026, 11, 29, 17, 0))   # 01:00 on the 30th
    d = deals.record_deal(org.rep, org.c_rep.id, {"amount": "100", "won_on": "2026-11-30"})
    assert d.won_on == dt.date(2026, 11, 30)
    with pytest.raises(ValidationFailed) as exc:
        deals.record_deal(org.rep, org.c_rep.id, {"amount": "100", "won_on": "2026-12-01"})
    assert exc.value.fields == {"won_on": "成交日期不能晚于今天"}


# --- list filters --------------------------------------------------------------------------
@pytest.fixture
def two_stamped(db, org):
    """c_rep created 23:30 on the 29th in Beijing (15:30 UTC), c_rep2 01:00 on the 30th
    (17:00 UTC on the 29th); the other customers long before."""
    db.session.execute(update(Customer).values(created_at=dt.datetime(2026, 1, 1)))
    db.session.execute(update(Customer).where(Customer.id == org.c_rep.id)
                       .values(created_at=dt.datetime(2026, 11, 29, 15, 30)))
    db.session.execute(update(Customer).where(Customer.id == org.c_rep2.id)
                       .values(created_at=dt.datetime(2026, 11, 29, 17, 0)))
    db.session.commit()
    return org


# FAB's datetime filters, by position: equal, greater, smaller, not equal.
@pytest.mark.parametrize("flt,value,found", [
    (1, "2026-11-29 23:00", {"c_rep", "c_rep2"}),     # as UTC it would find only c_rep2
    (1, "2026-11-29 23:30", {"c_rep2"}),               # after the minute shown
    (1, "2026-11-29 23:40", {"c_rep2"}),
    (2, "2026-11-29 16:00", {"c_north", "c_pool"}),    # 08:00 local; as UTC: also c_rep
    (2, "2026-11-29 23:40", {"c_rep", "c_north", "c_pool"}),
    (0, "2026-11-29", {"c_rep"}),                      # the local day; as UTC: both
    (0, "2026-11-30", {"c_rep2"}),
    (0, "2026-11-29 23:30", {"c_rep"}),                # the minute shown
    (3, "2026-11-30", {"c_rep", "c_north", "c_pool"}),
    (1, "2026-11-29", {"c_rep2"}),                     # after that local day
    (1, "2026-11-29T15:00:00Z", {"c_rep", "c_rep2"}),  # an explicit offset is kept
    (1, "不是时间", {"c_rep", "c_rep2", "c_north", "c_pool"}),  # ignored, no error
])
def test_list_filters_read_typed_times_as_business_time(clients, two_stamped, flt, value,
                                                        found):
    org = two_stamped
    resp = clients.admin.get("/customers/list/", query_string={f"_flt_{flt}_created_at": value,
                                                              "psize_CustomerView": 100})
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    names = {k: getattr(org, k).name for k in ("c_rep", "c_rep2", "c_north", "c_pool")}
    assert {k for k, name in names.items() if name in html} == found


def test_api_list_filters_read_business_time(api, two_stamped):
    org = two_stamped
    call = api("admin")

    def ids(value, opr="gt", col="created_at"):
        resp = call("GET", "/api/v1/customers/", query_string={
            "q": f"(filters:!((col:{col},opr:{opr},value:'{value}')))"})
        assert resp.status_code == 200
        return set(resp.get_json()["ids"])

    assert ids("2026-11-29 23:00") == {org.c_rep.id, org.c_rep2.id}
    # FAB's REST picks a filter class by operator from one process-wide table, written by
    # whichever filter was made last: FAB's own "gt" there changes nothing here...
    from flask_appbuilder.models.sqla.filters import FilterEqual, FilterGreater
    from flask_appbuilder.models.sqla.interface import SQLAInterface

    from app.time_filters import BusinessTimeEqual

    FilterGreater("created_at", SQLAInterface(Customer))
    assert ids("2026-11-29 23:00") == {org.c_rep.id, org.c_rep2.id}
    # ...and ours there filters a text column as FAB's does.
    BusinessTimeEqual("name", SQLAInterface(Customer))
    assert ids(org.c_north.name, "eq", "name") == {org.c_north.id}
    FilterEqual("name", SQLAInterface(Customer))
    assert ids("2026-11-29T23:00:00+08:00") == {org.c_rep.id, org.c_rep2.id}
    assert ids("2026-11-30T00:00:00+08:00") == {org.c_rep2.id}
    assert ids("2026-11-29", "eq") == {org.c_rep.id}
    item = call("GET", f"/api/v1/customers/{org.c_rep.id}").get_json()["result"]
    assert item["created_at"] == "2026-11-29T23:30:00+08:00"


# --- exports and notifications -------------------------------------------------------------
def test_exports_write_business_time(db, org):
    _stamp_everything(db, org)
    buf = io.StringIO()
    exports.write_csv(org.admin, buf)
    rows = list(csv.reader(io.StringIO(buf.getvalue())))
    at = rows[0].index("创建时间")
    assert {r[at] for r in rows[1:]} == {SHOWN + ":00"}
    data, n = exports.xlsx_bytes(org.admin)
    sheet = load_workbook(io.BytesIO(data)).active
    values = list(sheet.iter_rows(values_only=True))
    assert n == 4 and {r[at] for r in values[1:]} == {dt.datetime(2026, 11, 29, 23, 32)}


def test_reclaim_warning_names_the_local_day(db, org):
    now = dt.datetime(2026, 11, 29, 18, 0)
    db.session.execute(update(Ownership).where(Ownership.owner_id.is_not(None))
                       .values(acquired_at=now - dt.timedelta(days=1)))
    # 30 days without a follow-up (the global policy) end at 17:00 UTC on the 30th: the 1st
    # of December in Beijing.
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep.id)
                       .values(acquired_at=dt.datetime(2026, 10, 31, 17, 0)))
    db.session.commit()
    assert reclaim.warn(now=now) == 1
    assert db.session.execute(select(ReclaimWarning.due_at)).scalar_one() == \
        dt.datetime(2026, 11, 30, 17, 0)
    title = db.session.execute(select(Notification.title).where(
        Notification.kind == "reclaim_warning")).scalar_one()
    assert title == f"客户「{org.c_rep.name}」将于 2026-12-01 被自动回收"


def test_the_notification_page_shows_local_time(clients, db, org):
    notifications.notify([org.rep.id], "test", "时间测试")
    db.session.execute(update(Notification).values(created_at=STORED))
    db.session.commit()
    html = clients.rep.get("/notifications/").get_data(as_text=True)
    assert f"<td>{SHOWN}</td>" in html


# --- the job page --------------------------------------------------------------------------
def test_cron_schedules_in_business_time(app):
    now = dt.datetime(2026, 11, 29, 21, 0)   # 05:00 on the 30th in Beijing
    with app.app_context():
        assert jobs_monitor.schedule_times("0 0 * * *", now) == {
            "next_run": dt.datetime(2026, 11, 30, 0, 0), "daily_at": "08:00",
            "every_minutes": None}
        assert jobs_monitor.schedule_times("30 22 * * *", now)["daily_at"] == "06:30"
        assert jobs_monitor.schedule_times("*/10 * * * *", now) == {
            "next_run": dt.datetime(2026, 11, 29, 21, 10), "daily_at": None,
            "every_minutes": 10}
        assert jobs_monitor.schedule_times("* * * * *", now) == {  # the owner tally's fold
            "next_run": dt.datetime(2026, 11, 29, 21, 1), "daily_at": None,
            "every_minutes": 1}
        weekly = jobs_monitor.schedule_times("0 3 * * 1", now)
        assert weekly["next_run"] == dt.datetime(2026, 11, 30, 3, 0)
        assert (weekly["daily_at"], weekly["every_minutes"]) == (None, None)
        assert jobs_monitor.schedule_times("every day", now) == {
            "next_run": None, "daily_at": None, "every_minutes": None}


def test_job_page_shows_schedules_and_runs_in_local_time(clients, redis_url, monkeypatch):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from app.redis_conn import get_redis

    monkeypatch.delenv("GUISHU_CRON_FOLLOWUP_DIGEST", raising=False)
    monkeypatch.delenv("GUISHU_CRON_CARE_DELIVER", raising=False)
    jobs_monitor.record_run("followup_digest", STORED, {"sent": 0})
    try:
        html = clients.admin.get("/jobs/").get_data(as_text=True)
    finally:
        get_redis().hdel(jobs_monitor.LAST_RUN_KEY, "followup_digest")
    row = re.search(r'<tr data-job="followup_digest">(.*?)</tr>', html, re.S).group(1)
    assert "每天 08:00" in row and "<code>0 0 * * *</code> (UTC)" in row
    assert re.search(r'class="next-run">\d{4}-\d{2}-\d{2} 08:00<', row)
    assert f'class="last-run">{SHOWN}:00<' in row
    care = re.search(r'<tr data-job="care_deliver">(.*?)</tr>', html, re.S).group(1)
    assert "每 10 分钟" in care
