"""Which birthdays and holidays fall on which solar dates (pure functions, no database).

Birthdays are stored as (month, day, lunar). A solar 02-29 is kept on 02-28 in common years.
A lunar birthday is kept in the regular month, not in a leap month of the same number, and a
lunar day 30 falls back to day 29 in a year whose month has only 29 days (the month's last
day). Holidays are China's public holidays from the `holidays` package (chinese-calendar has
no data after 2026); a holiday of several days is greeted on its first day only.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import holidays
from lunardate import LunarDate

# Day-off entries the package adds around the holidays ("国庆节（补假）", "休息日（由…调休）").
_NOT_A_HOLIDAY = ("补假", "调休", "休息日")


@dataclass(frozen=True)
class Occasion:
    """One occasion on one solar date: what it is called and the key of its cycle (a greeting
    goes out once per key)."""

    key: str
    name: str
    date: dt.date


def _lunar_month_days(year: int, month: int) -> int:
    try:
        LunarDate(year, month, 30).to_solar_date()  # the constructor alone checks nothing
    except ValueError:
        return 29
    return 30


def birthdays_on(day: dt.date) -> dict[tuple[int, int, bool], Occasion]:
    """Every stored birthday (month, day, lunar) that is celebrated on `day`."""
    found: dict[tuple[int, int, bool], Occasion] = {}
    solar = Occasion(f"birthday:{day.year}", "生日", day)
    found[(day.month, day.day, False)] = solar
    if day.month == 2 and day.day == 28 and not _is_leap(day.year):
        found[(2, 29, False)] = solar
    lunar = LunarDate.from_solar_date(day.year, day.month, day.day)
    if not lunar.is_leap_month:
        occasion = Occasion(f"birthday:lunar:{lunar.year}", "农历生日", day)
        found[(lunar.month, lunar.day, True)] = occasion
        if lunar.day == 29 and _lunar_month_days(lunar.year, lunar.month) == 29:
            found[(lunar.month, 30, True)] = occasion
    return found


def birthdays_between(start: dt.date, end: dt.date) -> dict[tuple[int, int, bool], Occasion]:
    """Birthdays celebrated from start to end inclusive (a window of at most a few weeks, so a
    (month, day, lunar) key occurs at most once)."""
    found: dict[tuple[int, int, bool], Occasion] = {}
    day = start
    while day <= end:
        for key, occasion in birthdays_on(day).items():
            found.setdefault(key, occasion)
        day += dt.timedelta(days=1)
    return found


def birthday_in(year: int, month: int, day: int, lunar: bool) -> dt.date:
    """The solar date a birthday is celebrated on in solar year `year` (for a lunar birthday:
    in lunar year `year`)."""
    if not lunar:
        if month == 2 and day == 29 and not _is_leap(year):
            return dt.date(year, 2, 28)
        return dt.date(year, month, day)
    last = _lunar_month_days(year, month)
    return LunarDate(year, month, min(day, last)).to_solar_date()


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


@lru_cache(maxsize=16)
def _china(year: int) -> dict[dt.date, str]:
    return dict(holidays.China(years=year, language="zh_CN").items())


def holiday_names(year: int) -> list[str]:
    """The public holidays of a year, by the name admins pick them with (e.g. 春节)."""
    names: list[str] = []
    for _, name in sorted(_china(year).items()):
        if not any(mark in name for mark in _NOT_A_HOLIDAY) and name not in names:
            names.append(name)
    return names


def holidays_between(start: dt.date, end: dt.date, wanted: set[str]) -> list[Occasion]:
    """The wanted holidays whose first day falls from start to end inclusive."""
    found: list[Occasion] = []
    for year in range(start.year, end.year + 1):
        first: dict[str, dt.date] = {}
        for day, name in sorted(_china(year).items()):
            if name in wanted and name not in first:
                first[name] = day
        found += [Occasion(f"holiday:{name}:{year}", name, day)
                  for name, day in first.items() if start <= day <= end]
    return sorted(found, key=lambda o: o.date)
