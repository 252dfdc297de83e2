"""The work calendar (工作日历): which business days are working days, which hours of a
working day count, and time arithmetic in those hours (SLA clocks, reclaim warnings).

A working day is Monday to Friday unless a work_calendar_day row says otherwise: a public
holiday on a weekday (not working) or a make-up working day at a weekend (调休, working).
Rows are seeded from the `holidays` package for China (seed_year); a row an admin edited
(source 'manual') is never overwritten by a re-seed, because next year's schedule is
announced late and admins type it in before the package knows it.

The working periods of a working day are the global ServiceSettings.work_periods, or a
team's own ServiceTeam.work_periods. All arithmetic is done in business time (wall clock of
app.services.times.business_zone) and answered as stored time (naive UTC). One Calendar
object holds every row (a few dozen a year), so a caller with many instants to compute loads
it once.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import holidays
from sqlalchemy import select

from app.extensions import db
from app.models.customer import utcnow
from app.models.service_desk import ServiceSettings, ServiceTeam, WorkCalendarDay
from app.services import audit
from app.services.errors import N_, NotFound, ValidationFailed, tr
from app.services.ids import parse_id
from app.services.saving import commit_unique
from app.services.times import UTC, business_zone, local_today

DEFAULT_PERIODS = "09:00-18:00"
PERIODS_FIELD = "work_periods"
NAME = 100  # the name column
# How far ahead arithmetic looks for working time before it calls the calendar empty.
MAX_DAYS = 3660
_PERIOD = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
# The package's day-off entries name the weekend day worked in their place
# ("休息日（由 2026-02-14 调休）"): the only way it exposes 调休 working days.
_SWAPPED_FROM = re.compile(r"(\d{4})-(\d{2})-(\d{2})")
NO_SUCH_DAY = N_("The calendar day does not exist")  # msgid


# --- working periods ------------------------------------------------------------------------
def parse_periods(text: Any, field: str = PERIODS_FIELD) -> list[tuple[dt.time, dt.time]]:
    """ "09:00-12:00,13:30-18:00" as [(09:00, 12:00), (13:30, 18:00)]: HH:MM-HH:MM periods,
    comma-separated, each ending after it starts, in order and not overlapping (24:00 may
    end the last). ValidationFailed naming `field` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed({field: tr("Give the working periods, e.g. 09:00-12:00,13:30-18:00")})
    if len(text) > 100:
        raise ValidationFailed({field: tr("At most %(n)d characters", n=100)})
    periods: list[tuple[dt.time, dt.time]] = []
    previous_end: Optional[int] = None
    for part in text.split(","):
        m = _PERIOD.fullmatch(part)
        if not m:
            raise ValidationFailed({field: tr(
                "\"%(part)s\" is not a period HH:MM-HH:MM", part=part.strip()[:20])})
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if h1 > 23 or m1 > 59 or m2 > 59 or end > 24 * 60:
            raise ValidationFailed({field: tr(
                "\"%(part)s\" is not a time of day", part=part.strip()[:20])})
        if end <= start:
            raise ValidationFailed({field: tr(
                "The period %(part)s ends before it starts", part=part.strip())})
        if previous_end is not None and start < previous_end:
            raise ValidationFailed({field: tr(
                "The period %(part)s starts before the previous one ends; give the periods "
                "in order, without overlaps", part=part.strip())})
        previous_end = end
        periods.append((_minutes_time(start), _minutes_time(end)))
    return periods


def _minutes_time(minutes: int) -> dt.time:
    # 24:00 is kept as the last representable instant of the day; _period_bounds maps it back.
    return dt.time.max if minutes == 24 * 60 else dt.time(minutes // 60, minutes % 60)


def _period_bounds(day: dt.date, start: dt.time, end: dt.time) -> tuple[dt.datetime, dt.datetime]:
    stop = dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) if end == dt.time.max \
        else dt.datetime.combine(day, end)
    return dt.datetime.combine(day, start), stop


def format_periods(periods: Iterable[tuple[dt.time, dt.time]]) -> str:
    return ",".join(f"{s:%H:%M}-{'24:00' if e == dt.time.max else format(e, '%H:%M')}"
                    for s, e in periods)


def settings_row(lock: bool = False) -> Optional[ServiceSettings]:
    q = select(ServiceSettings).order_by(ServiceSettings.id).limit(1)
    return db.session.execute(q.with_for_update() if lock else q).scalar()


def global_periods_text() -> str:
    row = settings_row()
    return (row.work_periods if row is not None and row.work_periods else DEFAULT_PERIODS)


def periods_text(team_id: Optional[int] = None) -> str:
    """The working periods that count for a team: its own, else the global ones."""
    if team_id is not None:
        own = db.session.execute(select(ServiceTeam.work_periods).where(
            ServiceTeam.id == team_id)).scalar()
        if own:
            return own
    return global_periods_text()


def set_global_periods(actor, text: Any) -> str:
    """Admins / service managers set the global working periods ("Working hours" form, the
    API). Validated by parse_periods, stored normalised, audited; commits."""
    _require_editor(actor)
    normalised = format_periods(parse_periods(text))
    row = settings_row(lock=True)
    if row is None:
        row = ServiceSettings(work_periods=normalised)
        audit.record_new(actor.id if actor else None, "service_settings", row)
    elif row.work_periods != normalised:
        audit.record(actor.id if actor else None, "update", "service_settings", row.id,
                     {PERIODS_FIELD: (row.work_periods, normalised)})
        row.work_periods = normalised
        row.updated_at = utcnow()
    db.session.commit()
    return normalised


# --- the calendar ---------------------------------------------------------------------------
def _overrides() -> dict[dt.date, bool]:
    return dict(db.session.execute(select(WorkCalendarDay.day, WorkCalendarDay.is_workday)).all())


@dataclass
class Calendar:
    """The calendar rows and one set of working periods, loaded once; pure arithmetic."""

    overrides: dict[dt.date, bool]
    periods: list[tuple[dt.time, dt.time]]

    def is_workday(self, day: dt.date) -> bool:
        found = self.overrides.get(day)
        return found if found is not None else day.weekday() < 5

    def add_workdays(self, day: dt.date, n: int) -> dt.date:
        """The n-th working day after `day` (before it for n < 0); `day` itself for 0."""
        step = dt.timedelta(days=1 if n >= 0 else -1)
        left = abs(n)
        for _ in range(MAX_DAYS + left * 7):
            if left == 0:
                return day
            day += step
            if self.is_workday(day):
                left -= 1
        raise ValidationFailed({"work_calendar": tr(
            "The work calendar has no working day within %(n)d days", n=MAX_DAYS)})

    def add(self, start_utc: dt.datetime, seconds: int) -> dt.datetime:
        """`seconds` of working time after start_utc (stored time in, stored time out); before
        it for negative seconds. The answer is the instant the last second is used up, so it
        falls in a period (0 seconds: start_utc itself)."""
        if seconds == 0:
            return start_utc
        if seconds < 0:
            return self._back(start_utc, -seconds)
        zone = business_zone()
        cursor = start_utc.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        left = dt.timedelta(seconds=seconds)
        day = cursor.date()
        for _ in range(MAX_DAYS):
            if self.is_workday(day):
                for start, end in self.periods:
                    begin, stop = _period_bounds(day, start, end)
                    begin = max(begin, cursor)
                    if stop <= begin:
                        continue
                    if stop - begin >= left:
                        return _stored(begin + left, zone)
                    left -= stop - begin
            day += dt.timedelta(days=1)
        raise ValidationFailed({"work_calendar": tr(
            "The work calendar has no working day within %(n)d days", n=MAX_DAYS)})

    def _back(self, end_utc: dt.datetime, seconds: int) -> dt.datetime:
        zone = business_zone()
        cursor = end_utc.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        left = dt.timedelta(seconds=seconds)
        day = cursor.date()
        for _ in range(MAX_DAYS):
            if self.is_workday(day):
                for start, end in reversed(self.periods):
                    begin, stop = _period_bounds(day, start, end)
                    stop = min(stop, cursor)
                    if stop <= begin:
                        continue
                    if stop - begin >= left:
                        return _stored(stop - left, zone)
                    left -= stop - begin
            day -= dt.timedelta(days=1)
        raise ValidationFailed({"work_calendar": tr(
            "The work calendar has no working day within %(n)d days", n=MAX_DAYS)})

    def seconds(self, a_utc: dt.datetime, b_utc: dt.datetime) -> int:
        """Working seconds from a to b (negative when b is before a)."""
        if b_utc < a_utc:
            return -self.seconds(b_utc, a_utc)
        zone = business_zone()
        a = a_utc.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        b = b_utc.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
        total = dt.timedelta()
        day = a.date()
        while day <= b.date():
            if self.is_workday(day):
                for start, end in self.periods:
                    begin, stop = _period_bounds(day, start, end)
                    begin, stop = max(begin, a), min(stop, b)
                    if stop > begin:
                        total += stop - begin
            day += dt.timedelta(days=1)
        return int(total.total_seconds())


def _stored(local: dt.datetime, zone) -> dt.datetime:
    return local.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


def calendar(team_id: Optional[int] = None) -> Calendar:
    """The calendar for a team's working periods (else the global ones): two small reads."""
    return Calendar(_overrides(), parse_periods(periods_text(team_id)))


def is_workday(day: dt.date) -> bool:
    row = db.session.execute(select(WorkCalendarDay.is_workday).where(
        WorkCalendarDay.day == day)).scalar()
    return row if row is not None else day.weekday() < 5


def add_workdays(day: dt.date, n: int) -> dt.date:
    return Calendar(_overrides(), []).add_workdays(day, n)


def business_add(start_utc: dt.datetime, seconds: int, team_id: Optional[int] = None) -> dt.datetime:
    return calendar(team_id).add(start_utc, seconds)


def business_seconds(a_utc: dt.datetime, b_utc: dt.datetime, team_id: Optional[int] = None) -> int:
    return calendar(team_id).seconds(a_utc, b_utc)


def workdays_horizon(now_utc: dt.datetime, workdays: int,
                     cal: Optional[Calendar] = None) -> dt.datetime:
    """`now` moved `workdays` working days ahead at the same time of day (stored time): what
    falls due before it falls due "within the next N working days". With no weekend or
    holiday in between it is now + N days, as the warnings counted before the calendar."""
    if workdays <= 0:
        return now_utc
    zone = business_zone()
    local = now_utc.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)
    cal = cal if cal is not None else Calendar(_overrides(), [])
    return _stored(dt.datetime.combine(cal.add_workdays(local.date(), workdays), local.time()),
                   zone)


def workdays_horizons(now_utc: dt.datetime, values: Iterable[int]) -> dict[int, dt.datetime]:
    """workdays_horizon for several day counts, the calendar read once."""
    cal = Calendar(_overrides(), [])
    return {int(v): workdays_horizon(now_utc, int(v), cal) for v in set(values)}


def _require_editor(actor) -> None:
    from app.services.sla_policies import require_editor

    require_editor(actor)


# --- calendar rows --------------------------------------------------------------------------
def china_departures(year: int) -> dict[dt.date, tuple[bool, str]]:
    """What `holidays` says departs from Monday-Friday in `year`: holidays on weekdays (not
    working) and the 调休 weekend days worked in place of a day off (working)."""
    found: dict[dt.date, tuple[bool, str]] = {}
    for day, name in sorted(holidays.China(years=year, language="zh_CN").items()):
        m = _SWAPPED_FROM.search(name)
        if m:
            worked = dt.date(*(int(g) for g in m.groups()))
            if worked.weekday() >= 5:
                found[worked] = (True, tr("Make-up working day for %(day)s",
                                          day=day.isoformat())[:NAME])
        if day.weekday() < 5:
            found[day] = (False, name[:NAME])
    return found


def seed_year(year: int, actor=None) -> dict[str, int]:
    """Write `year`'s departures from `holidays` (idempotent: a re-seed changes nothing it
    wrote already, and never a 'manual' row); commits. Returns counts added / updated."""
    if actor is not None:  # the CLI and the first start seed as the system
        _require_editor(actor)
    if not isinstance(year, int) or isinstance(year, bool) or not 1990 <= year <= 2100:
        raise ValidationFailed({"year": tr("A year from %(low)d to %(high)d", low=1990, high=2100)})
    wanted = china_departures(year)
    start, end = dt.date(year, 1, 1), dt.date(year, 12, 31)
    existing = {row.day: row for row in db.session.execute(
        select(WorkCalendarDay).where(WorkCalendarDay.day.between(start, end))
        .with_for_update()).scalars()}
    added = updated = 0
    actor_id = actor.id if actor is not None else None
    for day, (working, name) in sorted(wanted.items()):
        row = existing.get(day)
        if row is None:
            db.session.add(WorkCalendarDay(day=day, is_workday=working, name=name,
                                           source="holidays", updated_by_id=actor_id,
                                           updated_at=utcnow()))
            added += 1
        elif row.source == "holidays" and (row.is_workday, row.name) != (working, name):
            row.is_workday, row.name, row.updated_at = working, name, utcnow()
            updated += 1
    if added or updated:
        audit.record(actor_id, "seed", "work_calendar_day", None,
                     {"year": (None, year), "added": (None, added), "updated": (None, updated)})
    db.session.commit()
    return {"added": added, "updated": updated}


def seed_default_years(today: Optional[dt.date] = None) -> dict[int, dict[str, int]]:
    """This year and next (bootstrap, `flask crm calendar seed`)."""
    today = today or local_today()
    return {y: seed_year(y) for y in (today.year, today.year + 1)}


def _clean_day(data: dict, errors: dict, partial: bool) -> dict:
    out: dict[str, Any] = {}
    if "day" in data or not partial:
        value = data.get("day")
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value.strip())
            except ValueError:
                value = None
        if not isinstance(value, dt.date) or not 1990 <= value.year <= 2100:
            errors["day"] = tr("Give a date (YYYY-MM-DD) from %(low)d to %(high)d",
                               low=1990, high=2100)
        else:
            out["day"] = value
    if "is_workday" in data or not partial:
        value = data.get("is_workday")
        if not isinstance(value, bool):
            errors["is_workday"] = tr("Say whether the day is a working day (true or false)")
        else:
            out["is_workday"] = value
    if "name" in data:
        value = data.get("name")
        if value is not None and not isinstance(value, str):
            errors["name"] = tr("Give a text")
        elif value is not None and ("\x00" in value or len(value) > NAME):
            errors["name"] = tr("At most %(n)d characters, no NUL bytes", n=NAME)
        else:
            out["name"] = (value or "").strip() or None
    return out


def put_day(actor, data: Any) -> WorkCalendarDay:
    """Set how one day counts (an admin's row: source 'manual', kept by re-seeds). Creates
    the day's row or updates it (one row a day: the unique day). Commits."""
    _require_editor(actor)
    if not isinstance(data, dict):
        raise ValidationFailed({"day": tr("Give a date (YYYY-MM-DD) from %(low)d to %(high)d",
                                          low=1990, high=2100)})
    errors: dict[str, str] = {}
    values = _clean_day(data, errors, partial=False)
    if errors:
        raise ValidationFailed(errors)
    row = db.session.execute(select(WorkCalendarDay).where(
        WorkCalendarDay.day == values["day"]).with_for_update()).scalar()
    if row is None:
        row = WorkCalendarDay(day=values["day"], is_workday=values["is_workday"],
                              name=values.get("name"), source="manual",
                              updated_by_id=actor.id, updated_at=utcnow())
        day_text = values["day"].isoformat()
        commit_unique(lambda: audit.record_new(actor.id, "work_calendar_day", row), "day",
                      tr("%(day)s is in the calendar already", day=day_text))
        return row
    else:
        changes = audit.diff(row, {"is_workday": values["is_workday"],
                                   "name": values.get("name", row.name), "source": "manual"})
        for key, (_old, new) in changes.items():
            setattr(row, key, new)
        row.updated_by_id, row.updated_at = actor.id, utcnow()
        if changes:
            audit.record(actor.id, "update", "work_calendar_day", row.id, changes)
    db.session.commit()
    return row


def update_day(actor, day_id: Any, data: Any) -> WorkCalendarDay:
    """Edit one row by id (the form): whatever it was, it becomes 'manual'. Commits."""
    _require_editor(actor)
    row = get_day(day_id, lock=True)
    errors: dict[str, str] = {}
    values = _clean_day(data if isinstance(data, dict) else {}, errors, partial=True)
    if errors:
        raise ValidationFailed(errors)
    if "day" in values and values["day"] != row.day:
        other = db.session.execute(select(WorkCalendarDay.id).where(
            WorkCalendarDay.day == values["day"])).scalar()
        if other is not None:
            raise ValidationFailed({"day": tr("%(day)s is in the calendar already",
                                              day=values["day"].isoformat())})
    changes = audit.diff(row, {**values, "source": "manual"})
    for key, (_old, new) in changes.items():
        setattr(row, key, new)
    row.updated_by_id, row.updated_at = actor.id, utcnow()
    if changes:
        audit.record(actor.id, "update", "work_calendar_day", row.id, changes)
    commit_unique(None, "day", tr("%(day)s is in the calendar already", day=row.day.isoformat()))
    return row


def get_day(day_id: Any, lock: bool = False) -> WorkCalendarDay:
    pk = parse_id(day_id, "id")
    q = select(WorkCalendarDay).where(WorkCalendarDay.id == pk)
    row = db.session.execute(q.with_for_update() if lock else q).scalar()
    if row is None:
        raise NotFound(tr(NO_SUCH_DAY))
    return row


def delete_day(actor, day: dt.date) -> None:
    """The day counts by the weekly pattern again. Commits."""
    _require_editor(actor)
    row = db.session.execute(select(WorkCalendarDay).where(
        WorkCalendarDay.day == day).with_for_update()).scalar()
    if row is None:
        raise NotFound(tr(NO_SUCH_DAY))
    audit.record(actor.id, "delete", "work_calendar_day", row.id,
                 {"day": (row.day, None), "is_workday": (row.is_workday, None)})
    db.session.delete(row)
    db.session.commit()


def days_between(start: dt.date, end: dt.date) -> list[WorkCalendarDay]:
    return list(db.session.execute(select(WorkCalendarDay).where(
        WorkCalendarDay.day.between(start, end)).order_by(WorkCalendarDay.day)).scalars())


def to_dict(row: WorkCalendarDay) -> dict:
    return {"id": row.id, "day": row.day.isoformat(), "is_workday": row.is_workday,
            "name": row.name, "source": row.source}


MAX_RANGE_DAYS = 3 * 366  # a listed range: at most about three years


def parse_day(value: Any, field: str = "day") -> dt.date:
    """A YYYY-MM-DD text (or a date) from 1990 to 2100; ValidationFailed naming `field`."""
    errors: dict[str, str] = {}
    found = _clean_day({"day": value}, errors, partial=True).get("day")
    if found is None:
        raise ValidationFailed({field: errors.get("day") or tr(
            "Give a date (YYYY-MM-DD) from %(low)d to %(high)d", low=1990, high=2100)})
    return found


def days_in(year: Any = None, start: Any = None, end: Any = None
            ) -> tuple[dt.date, dt.date, list[WorkCalendarDay]]:
    """The calendar rows of a year, or of start..end (both given, at most MAX_RANGE_DAYS)."""
    if start is not None or end is not None:
        first, last = parse_day(start, "start"), parse_day(end, "end")
        if last < first:
            raise ValidationFailed({"end": tr("The end comes before the start")})
        if (last - first).days > MAX_RANGE_DAYS:
            raise ValidationFailed({"end": tr("At most %(n)d days at once", n=MAX_RANGE_DAYS)})
    else:
        if year is None:
            year = local_today().year
        if isinstance(year, bool) or not isinstance(year, int) or not 1990 <= year <= 2100:
            raise ValidationFailed({"year": tr("A year from %(low)d to %(high)d",
                                               low=1990, high=2100)})
        first, last = dt.date(year, 1, 1), dt.date(year, 12, 31)
    return first, last, days_between(first, last)


def periods_dict(text: str) -> list[dict]:
    return [{"start": f"{s:%H:%M}", "end": "24:00" if e == dt.time.max else f"{e:%H:%M}"}
            for s, e in parse_periods(text)]
