"""Record ids that arrive as text (URL segments, form fields): one reading for the pages and
the API, so "abc", 0 or a number past the INTEGER keys is "not found", never a DB error."""
from __future__ import annotations

from typing import Any, Optional

MAX_PK = 2**31 - 1  # the largest value of the tables' INTEGER primary keys


def parse_pk(value: Any) -> Optional[int]:
    """The id `value` names, or None when it is not an integer in 1..MAX_PK."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= MAX_PK else None
