"""How much a user may write, named once: the forms, the API and the import all refuse more
with ValidationFailed naming the field (a 2 MB note is a mistake or an attack, not a note).

Single-line customer and contact fields are bounded by their column (app.services.customers
_MAX_LEN); the free texts and the policy numbers by the limits below."""
from __future__ import annotations

from typing import Any, Optional

from app.services.errors import tr

NAME = 200            # customer and contact names
REASON = 2_000        # release / transfer reasons, decision notes, handover notes
NOTE = 10_000         # customer notes, follow-up contents, descriptions
MAX_COUNT = 100_000   # policy caps and limits (customers held, locked, claimed a day)
MAX_DAYS = 3_650      # policy periods in days (ten years)
MAX_SECONDS = 86_400  # policy durations in seconds (a day: a call's minimum talk time)


def too_long(value: Any, limit: int) -> Optional[str]:
    """The refusal for a text longer than `limit` characters; None when it fits."""
    if isinstance(value, str) and len(value) > limit:
        return tr("Cannot exceed %(limit)s characters", limit=limit)
    return None


def check_length(errors: dict[str, str], field: str, value: Any, limit: int) -> None:
    """Add the field's refusal to `errors` when `value` is longer than `limit`."""
    message = too_long(value, limit)
    if message and field not in errors:
        errors[field] = message


def maximum_of(policy_field: str) -> int:
    """The largest value a numeric policy field takes: periods in days, durations in seconds,
    counts."""
    if policy_field.endswith("_days"):
        return MAX_DAYS
    if policy_field.endswith("_seconds"):
        return MAX_SECONDS
    return MAX_COUNT
