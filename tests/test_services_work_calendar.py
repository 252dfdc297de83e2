"""The work calendar: working periods, working days seeded from `holidays` (春节 2026 with its
调休 Saturdays Feb 14 and Feb 28), admins' rows kept by re-seeds, and business-time
arithmetic across 春节, a 调休 Saturday and a normal weekend. Fixed dates; Beijing time."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import delete, select

from app.models import AuditLog
from app.models.service_desk import ServiceTeam, WorkCalendarDay
from app.services import work_calendar as wc
from app.services.errors import NotFound, ValidationFailed

D = dt.date


def bj(*args) -> dt.datetime:
    """A Beijing wall-clock time as stored (naive UTC)."""
    return dt.datetime(*args) - dt.timedelta(hours=8)


@pytest.fixture(autouse=True)
def beijing(app, monkeypatch):
    monkeypatch.setitem(app.config, "TIMEZONE", "Asia/Shanghai")


@pytest.fixture
def seeded(db, org):
    wc.seed_year(2026)
    wc.set_global_periods(org.admin, "09:00-12:00,13:30-18:00")


# --- working periods ------------------------------------------------------------------------
def test_periods_parse_in_order():
    assert wc.parse_periods("09:00-12:00, 13:30-18:00") == [
        (dt.time(9), dt.time(12)), (dt.time(13, 30), dt.time(18))]
    assert wc.format_periods(wc.parse_periods("0:00-24:00")) == "00:00-24:00"


@pytest.mark.parametrize("text,message", [
    ("", "请填写工作时段，例如 09:00-12:00,13:30-18:00"),
    (None, "请填写工作时段，例如 09:00-12:00,13:30-18:00"),
    ("9-12", "“9-12”不是时段（格式 HH:MM-HH:MM）"),
    ("09:00-25:00", "“09:00-25:00”不是有效的时刻"),
    ("09:61-10:00", "“09:61-10:00”不是有效的时刻"),
    ("12:00-09:00", "时段 12:00-09:00 的结束早于开始"),
    ("09:00-12:00,11:00-18:00", "时段 11:00-18:00 在上一时段结束前开始；请按顺序填写，时段不能重叠"),
    ("13:00-18:00,09:00-12:00", "时段 09:00-12:00 在上一时段结束前开始；请按顺序填写，时段不能重叠"),
    ("09:00-10:00," * 10, "最多 100 个字符"),
])
def test_bad_periods_are_refused_by_field(app, text, message):
    with app.app_context(), pytest.raises(ValidationFailed) as err:
        wc.parse_periods(text)
    assert err.value.fields == {"work_periods": message}


def test_global_periods_are_stored_normalised_and_audited(db, org):
    assert wc.global_periods_text() == "09:00-18:00"  # no settings row yet: the default
    assert wc.set_global_periods(org.service_manager, " 8:30-12:00 ,13:00-17:30") == \
        "08:30-12:00,13:00-17:30"
    assert wc.periods_text() == "08:30-12:00,13:00-17:30"
    assert db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "service_settings")).scalar() is not None


# --- working days ---------------------------------------------------------------------------
def test_seed_2026_knows_spring_festival_and_its_make_up_saturdays(db, org):
    db.session.execute(delete(WorkCalendarDay))  # the first start seeded this year's already
    # 19 holidays on weekdays (补假 and swapped days off included) and 6 调休 weekend days.
    assert wc.seed_year(2026) == {"added": 25, "updated": 0}
    days = {r.day: r for r in wc.days_between(D(2026, 2, 1), D(2026, 3, 1))}
    # 春节 Feb 15-23: the weekdays off have rows; the 调休 Saturdays are working days.
    assert sorted(d for d, r in days.items() if not r.is_workday) == [
        D(2026, 2, 16), D(2026, 2, 17), D(2026, 2, 18), D(2026, 2, 19), D(2026, 2, 20),
        D(2026, 2, 23)]
    assert sorted(d for d, r in days.items() if r.is_workday) == [D(2026, 2, 14), D(2026, 2, 28)]
    assert days[D(2026, 2, 17)].name == "春节" and days[D(2026, 2, 17)].source == "holidays"
    assert wc.is_workday(D(2026, 2, 14)) and wc.is_workday(D(2026, 2, 28))
    assert not wc.is_workday(D(2026, 2, 15)) and not wc.is_workday(D(2026, 2, 23))
    assert wc.is_workday(D(2026, 1, 4))            # a 调休 Sunday for 元旦
    assert not wc.is_workday(D(2026, 3, 7))        # a normal Saturday
    assert wc.is_workday(D(2026, 3, 9))            # a normal Monday


def test_reseed_changes_nothing_and_keeps_an_admins_row(db, org):
    wc.seed_year(2026)
    assert wc.seed_year(2026) == {"added": 0, "updated": 0}
    # An admin moves the make-up day: the next seed keeps the admin's word.
    row = db.session.execute(select(WorkCalendarDay).where(
        WorkCalendarDay.day == D(2026, 2, 28))).scalar()
    wc.update_day(org.admin, row.id, {"is_workday": False, "name": "公司另行安排"})
    assert wc.seed_year(2026) == {"added": 0, "updated": 0}
    assert not wc.is_workday(D(2026, 2, 28))
    assert db.session.get(WorkCalendarDay, row.id).source == "manual"
    # A deleted holiday row comes back with the next seed (it is the package's again).
    wc.delete_day(org.admin, D(2026, 2, 17))
    assert wc.is_workday(D(2026, 2, 17))
    assert wc.seed_year(2026) == {"added": 1, "updated": 0}


def test_put_day_and_refusals(db, org):
    row = wc.put_day(org.admin, {"day": "2027-02-20", "is_workday": True, "name": "调休上班"})
    assert (row.source, wc.is_workday(D(2027, 2, 20))) == ("manual", True)
    assert wc.put_day(org.admin, {"day": "2027-02-20", "is_workday": False}).id == row.id
    assert not wc.is_workday(D(2027, 2, 20))
    with pytest.raises(ValidationFailed) as err:
        wc.put_day(org.admin, {"day": "2027-13-01", "is_workday": "yes"})
    assert set(err.value.fields) == {"day", "is_workday"}
    with pytest.raises(ValidationFailed) as err:
        wc.seed_year(1800)
    assert list(err.value.fields) == ["year"]
    other = wc.put_day(org.admin, {"day": "2027-02-21", "is_workday": True})
    with pytest.raises(ValidationFailed) as err:
        wc.update_day(org.admin, other.id, {"day": "2027-02-20"})
    assert err.value.fields == {"day": "2027-02-20 在日历中已存在"}
    with pytest.raises(NotFound):
        wc.delete_day(org.admin, D(2030, 1, 1))
    with pytest.raises(NotFound):
        wc.get_day(2 ** 31 - 1)
    with pytest.raises(ValidationFailed) as err:
        wc.get_day(2 ** 40)
    assert err.value.fields == {"id": "id 必须是 1 到 2147483647 之间的整数"}


def test_add_workdays_skips_the_holiday_and_counts_make_up_days(seeded):
    assert wc.add_workdays(D(2026, 2, 13), 1) == D(2026, 2, 14)   # Fri -> 调休 Sat
    assert wc.add_workdays(D(2026, 2, 14), 1) == D(2026, 2, 24)   # over 春节
    assert wc.add_workdays(D(2026, 3, 6), 1) == D(2026, 3, 9)     # a normal weekend
    assert wc.add_workdays(D(2026, 2, 24), -1) == D(2026, 2, 14)
    assert wc.add_workdays(D(2026, 2, 24), 0) == D(2026, 2, 24)


# --- business-time arithmetic ---------------------------------------------------------------
HOUR = 3600


def test_business_add_over_a_make_up_saturday_and_spring_festival(seeded):
    # Friday 17:00 + 8 working hours: 1 h on Friday, 3 h on the 调休 Saturday morning, 4 h
    # from 13:30: Saturday Feb 14 17:30.
    assert wc.business_add(bj(2026, 2, 13, 17), 8 * HOUR) == bj(2026, 2, 14, 17, 30)
    # Saturday 17:30 + 2 h: half an hour that day, then nothing until Tuesday Feb 24.
    assert wc.business_add(bj(2026, 2, 14, 17, 30), 2 * HOUR) == bj(2026, 2, 24, 10, 30)
    assert wc.business_seconds(bj(2026, 2, 14, 17, 30), bj(2026, 2, 24, 10, 30)) == 2 * HOUR
    # Friday Feb 27 17:00 + 2 h: the 调休 Saturday Feb 28 10:00.
    assert wc.business_add(bj(2026, 2, 27, 17), 2 * HOUR) == bj(2026, 2, 28, 10)


def test_business_add_over_a_normal_weekend_and_the_lunch_break(seeded):
    assert wc.business_add(bj(2026, 3, 6, 17), 2 * HOUR) == bj(2026, 3, 9, 10)
    assert wc.business_add(bj(2026, 3, 9, 11), 2 * HOUR) == bj(2026, 3, 9, 14, 30)
    # Before hours and at a weekend the clock starts with the next period.
    assert wc.business_add(bj(2026, 3, 7, 3), 60) == bj(2026, 3, 9, 9, 1)
    assert wc.business_add(bj(2026, 3, 9, 12, 0), 0) == bj(2026, 3, 9, 12, 0)
    assert wc.business_seconds(bj(2026, 3, 6, 17), bj(2026, 3, 9, 10)) == 2 * HOUR
    assert wc.business_seconds(bj(2026, 3, 9, 10), bj(2026, 3, 6, 17)) == -2 * HOUR
    # Backwards: two working hours before Monday 10:00 is Friday 17:00.
    assert wc.business_add(bj(2026, 3, 9, 10), -2 * HOUR) == bj(2026, 3, 6, 17)


def test_a_team_counts_its_own_periods(db, seeded):
    team = ServiceTeam(name="夜班", work_periods="18:00-24:00")
    db.session.add(team)
    db.session.flush()
    assert wc.business_add(bj(2026, 3, 6, 17), 2 * HOUR, team.id) == bj(2026, 3, 6, 20)
    assert wc.business_add(bj(2026, 3, 6, 23), 2 * HOUR, team.id) == bj(2026, 3, 9, 19)
    assert wc.business_add(bj(2026, 3, 6, 17), 2 * HOUR) == bj(2026, 3, 9, 10)


def test_workdays_horizon(seeded):
    # From Thursday Feb 12 10:00: two working days on is the 调休 Saturday Feb 14, three is
    # Tuesday Feb 24 after 春节; over a normal weekend Friday + 1 is Monday.
    assert wc.workdays_horizon(bj(2026, 2, 12, 10), 2) == bj(2026, 2, 14, 10)
    assert wc.workdays_horizon(bj(2026, 2, 12, 10), 3) == bj(2026, 2, 24, 10)
    assert wc.workdays_horizon(bj(2026, 3, 6, 23, 30), 1) == bj(2026, 3, 9, 23, 30)
    assert wc.workdays_horizon(bj(2026, 2, 12, 10), 0) == bj(2026, 2, 12, 10)
    assert wc.workdays_horizons(bj(2026, 3, 6, 10), [1, 3]) == {
        1: bj(2026, 3, 9, 10), 3: bj(2026, 3, 11, 10)}


def test_the_cli_seeds_a_year_idempotently(app, db, org):
    runner = app.test_cli_runner()
    db.session.execute(delete(WorkCalendarDay).where(WorkCalendarDay.day >= D(2026, 1, 1),
                                                     WorkCalendarDay.day <= D(2026, 12, 31)))
    db.session.commit()
    result = runner.invoke(args=["crm", "calendar", "seed", "--year", "2026"])
    assert result.exit_code == 0 and result.output == "2026: 25 days added, 0 updated\n"
    result = runner.invoke(args=["crm", "calendar", "seed", "--year", "2026"])
    assert result.output == "2026: 0 days added, 0 updated\n"
    result = runner.invoke(args=["crm", "calendar", "seed", "--year", "1800"])
    assert result.exit_code == 2 and "年份须在 1990 到 2100 之间" in result.output
