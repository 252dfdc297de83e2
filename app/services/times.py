"""Timestamps leaving the application: RFC 3339 with the offset, in business time.

The database stores UTC without a zone (app.models.customer.utcnow); a reader elsewhere
cannot know that, so every timestamp an API answers carries its offset
("2026-11-29T20:00:00+08:00" for GUISHU_TIMEZONE=Asia/Shanghai)."""
from __future__ import annotations

import datetime as dt
from typing import Optional, Union


def rfc3339(value: Union[dt.datetime, str, None]) -> Optional[str]:
    """`value` (a stored naive-UTC datetime, an aware one, or its ISO text) as RFC 3339 text
    in business time with the offset; None stays None."""
    from app.services.pool import business_zone

    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(business_zone()).isoformat()
