"""A report's period as typed (start / end, business dates, both included): one parser for
every report page, so one bad value reads the same everywhere."""
from __future__ import annotations

import datetime as dt
from typing import Any

from app.services.errors import tr


def parse_period(start: Any, end: Any, today: dt.date, default_days: int, max_days: int,
                 errors: dict[str, str]) -> tuple[dt.date, dt.date]:
    """(first, last) day; empty: the last `default_days` days up to `today` (or to `end`). A
    bad value is named in `errors` (start / end) and its default used, so the caller can
    report every bad parameter at once."""
    def day(value: Any, name: str, default: dt.date) -> dt.date:
        if value in (None, ""):
            return default
        try:
            if not isinstance(value, str) or len(value) > 20:
                raise ValueError(value)
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            errors[name] = tr("Give a date as YYYY-MM-DD")
            return default

    last = day(end, "end", today)
    first = day(start, "start", last - dt.timedelta(days=default_days - 1))
    if "start" not in errors and "end" not in errors:
        if first > last:
            errors["start"] = tr("The period must start on or before its end")
        elif (last - first).days + 1 > max_days:
            errors["start"] = tr("The period may be at most %(max)s days, this one has "
                                 "%(days)s", max=max_days, days=(last - first).days + 1)
    return first, last
