"""Business time: the one place that turns stored times into GUISHU_TIMEZONE and back.

The database stores UTC without a zone (app.models.customer.utcnow). People read and type
business time (GUISHU_TIMEZONE, Asia/Shanghai by default): pages, forms, list filters,
exports and notifications go through to_local / local_text / from_local / parse_local here;
days that count for business (the daily claim limit, reminders, "won today") are
business-zone days (local_today, local_date, local_day_start). A reader elsewhere cannot know
any of that, so every timestamp an API answers carries its offset (rfc3339:
"2026-11-29T20:00:00+08:00")."""
from __future__ import annotations

import datetime as dt
import re
from typing import Optional, Union
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

DEFAULT_ZONE = "Asia/Shanghai"
UTC = dt.timezone.utc
TimeValue = Union[dt.datetime, str, None]


def business_zone() -> ZoneInfo:
    """GUISHU_TIMEZONE: the zone times are shown and typed in, where days start and end."""
    return ZoneInfo(current_app.config.get("TIMEZONE", DEFAULT_ZONE)
                    if has_app_context() else DEFAULT_ZONE)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(UTC).replace(tzinfo=None)


def to_local(value: TimeValue) -> Optional[dt.datetime]:
    """A stored time (naive UTC), an aware one or its ISO text, as an aware business time."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(business_zone())


def local_text(value: TimeValue, minutes: bool = True) -> str:
    """How a page, an export or a notification writes a time: "2026-11-29 23:32" in business
    time (with seconds when minutes=False); "" for no time."""
    local = to_local(value)
    if local is None:
        return ""
    return local.strftime("%Y-%m-%d %H:%M" if minutes else "%Y-%m-%d %H:%M:%S")


def local_date(value: TimeValue) -> Optional[dt.date]:
    """The business day a stored time falls on."""
    local = to_local(value)
    return local.date() if local is not None else None


def local_naive(value: TimeValue) -> Optional[dt.datetime]:
    """Business time without the zone, to the second (for an Excel cell, which has no zone)."""
    local = to_local(value)
    return local.replace(tzinfo=None, microsecond=0) if local is not None else None


def from_local(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """A time a user typed (naive: business time; aware: its own zone) as stored: naive UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=business_zone())
    return value.astimezone(UTC).replace(tzinfo=None)


def local_today() -> dt.date:
    return dt.datetime.now(business_zone()).date()


def local_day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a business day, as naive UTC (how times are stored)."""
    start = from_local(dt.datetime.combine(day, dt.time()))
    return start, from_local(dt.datetime.combine(day + dt.timedelta(days=1), dt.time()))


def local_day_start(now: Optional[dt.datetime] = None) -> dt.datetime:
    """Start of today (of the day `now`, stored time, falls on) in the business time zone, as
    naive UTC (how times are stored): local_day_bounds(local_date(now))[0], with the zone
    looked up once (every claim asks)."""
    zone = business_zone()
    now = now or _utcnow()
    day = (now if now.tzinfo else now.replace(tzinfo=UTC)).astimezone(zone).date()
    return dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


# What a person may type: a date, or a date and a time to the minute, second or beyond, with
# "T" or a space, optionally with its own offset ("Z", "+08:00").
_TYPED = re.compile(r"\s*(\d{4}-\d{1,2}-\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?"
                    r"\s*(Z|[+-]\d{2}:?\d{2})?\s*", re.IGNORECASE)


def typed_period(text: str) -> Optional[tuple[dt.datetime, dt.datetime]]:
    """What a typed time means, as a [start, end) period in stored time (naive UTC): a date is
    that business day, "23:00" that minute, "23:00:05" that second. None if it is no time.

    A list filter compares with the whole period: "equal to 2026-11-29" finds the day,
    "greater than 23:00" starts at 23:01, as the page (which shows minutes) reads."""
    m = _TYPED.fullmatch(text or "")
    if not m:
        return None
    day, hour, minute, second, fraction, offset = m.groups()
    try:
        date = dt.date(*(int(p) for p in day.split("-")))
        if hour is None:
            if offset:
                return None  # a day has no offset
            return local_day_bounds(date)
        start = dt.datetime.combine(date, dt.time(int(hour), int(minute), int(second or 0),
                                                  int(float(fraction or 0) * 1e6)))
    except ValueError:
        return None
    if offset:
        start = start.replace(tzinfo=dt.datetime.fromisoformat(
            "2000-01-01T00:00" + offset.upper().replace("Z", "+00:00")).tzinfo)
    step = (dt.timedelta(minutes=1) if second is None else
            dt.timedelta(seconds=1) if fraction is None else dt.timedelta(microseconds=1))
    start = from_local(start)
    return start, start + step


def parse_local(value: TimeValue) -> Optional[dt.datetime]:
    """A time from a form or a caller, as stored (naive UTC): text is business time unless it
    names its offset; an aware datetime is converted; a naive datetime is already stored time.
    None when empty; ValueError when it is no time."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value
    period = typed_period(str(value))
    if period is None:
        raise ValueError(f"not a time: {value!r}")
    return period[0]  # a date alone: the start of that business day


def rfc3339(value: TimeValue) -> Optional[str]:
    """`value` (a stored naive-UTC datetime, an aware one, or its ISO text) as RFC 3339 text
    in business time with the offset; None stays None."""
    local = to_local(value)
    return local.isoformat() if local is not None else None
