"""Vendor adapters: a telephony platform's own push format mapped onto the neutral call
event of app.services.cti_events, each with that platform's own authentication.

    tinet    天润融通 (Tinet / Clink) CDR push: epoch seconds, numeric status codes; signed
             with Tinet's scheme sign = md5(enterpriseId + timestamp + token)
    tencent  腾讯云联络中心 (TCCC) data push, ?action=cdr and ?action=record; HTTP basic
             authentication, deduplicated by the X-TCCC-PUSH-UUID header

An adapter is pure: `events(payload, ...)` answers the neutral events (ValidationFailed
naming the vendor's field when the payload is not of its format); the endpoint
(app.api.cti_events) authenticates and hands each event to cti_events.ingest with the raw
body.
"""
from __future__ import annotations

from typing import Any, Optional

from app.services.errors import ValidationFailed, tr

MAX_INT = 10**13  # epoch seconds or milliseconds, durations, codes: nothing larger


def integer(payload: dict, field: str, errors: dict, required: bool = False
            ) -> Optional[int]:
    """A vendor's number (JSON number or its digits as text), or None when absent."""
    value = payload.get(field)
    if value is None or value == "":
        if required:
            errors[field] = tr("Required")
        return None
    digits = value.strip().lstrip("-") if isinstance(value, str) else ""
    if digits.isascii() and digits.isdigit() and len(value) < 20:  # not '²' (isdigit, no int)
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not -1 < value < MAX_INT:
        errors[field] = tr("%(field)s must be a whole number", field=field)
        return None
    return value


def text(payload: dict, field: str, errors: dict, limit: int, required: bool = False
         ) -> Optional[str]:
    value = payload.get(field)
    if value is None or value == "":
        if required:
            errors[field] = tr("Required")
        return None
    if isinstance(value, (int,)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        errors[field] = tr("Must be text")
        return None
    if len(value) > limit:
        errors[field] = tr("Cannot exceed %(limit)s characters", limit=limit)
        return None
    return value.strip() or None


def check(errors: dict) -> None:
    if errors:
        raise ValidationFailed(errors)


# Unix seconds up to the year 9999 (later ones cannot be a datetime: the neutral event's
# check then refuses them by name, as it does any time out of range).
MAX_EPOCH = 253_402_300_799


def epoch(value: Optional[int]) -> Optional[int]:
    """A vendor's time in unix seconds; 0 (the vendors' "never") is None."""
    return value or None


def is_url(value: Any) -> bool:
    return isinstance(value, str) and value.lower().startswith(("http://", "https://"))
