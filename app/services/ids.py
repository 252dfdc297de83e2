"""Record ids and counts that arrive from outside (URL segments, query strings, form fields,
JSON bodies): one reading for the pages, the API and the services, so "abc", 1.5, true, 0 or a
number past the INTEGER keys is "not found" or a 400 naming the field, never a DB error."""
from __future__ import annotations

from typing import Any, Iterable, Optional

from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from app.services.errors import ValidationFailed

MAX_PK = 2**31 - 1  # the largest value of the tables' INTEGER primary keys


def _as_int(value: Any) -> Optional[int]:
    """An integer written as an int or as a string of digits; None for anything else
    (bools, floats such as 1.5 or 1e308, "1.0", " 7 ", "-1")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        return int(value)
    return None


def parse_pk(value: Any) -> Optional[int]:
    """The id `value` names, or None when it is not an integer in 1..MAX_PK."""
    number = _as_int(value)
    return number if number is not None and 0 < number <= MAX_PK else None


def parse_page(value: Any) -> Optional[int]:
    """A page number (from 0) of a web list, or None when it is not one: past MAX_PK the
    OFFSET it makes would overflow the database's 64-bit integers."""
    number = _as_int(value)
    return number if number is not None and number <= MAX_PK else None


def parse_id(value: Any, field: str) -> int:
    """The id `value` names; ValidationFailed({field: …}) unless an integer in 1..MAX_PK."""
    number = parse_pk(value)
    if number is None:
        raise ValidationFailed({field: f"{field} 必须是 1 到 {MAX_PK} 之间的整数"})
    return number


def parse_int(value: Any, field: str, minimum: int = 0, maximum: int = MAX_PK) -> int:
    """A count or a page number: an integer in minimum..maximum, else ValidationFailed."""
    number = _as_int(value)
    if number is None or not minimum <= number <= maximum:
        raise ValidationFailed({field: f"{field} 必须是 {minimum} 到 {maximum} 之间的整数"})
    return number


def parse_optional_id(value: Any, field: str) -> Optional[int]:
    """parse_id, with None or "" meaning "not given"."""
    return None if value in (None, "") else parse_id(value, field)


def parse_ids(values: Any, field: str, limit: int, noun: str = "客户") -> list[int]:
    """Distinct ids in the given order; ValidationFailed({field: …}) for anything that is not
    a non-empty list of at most `limit` ids (`noun` names what they are in the message)."""
    if values is None:
        values = []
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise ValidationFailed({field: f"{noun}编号必须是正整数列表"})
    out: dict[int, None] = {}  # an insertion-ordered set: 100k ids dedupe in linear time
    for raw in values:
        number = parse_pk(raw)
        if number is None:
            raise ValidationFailed({field: f"{noun}编号必须是正整数列表"})
        out[number] = None
    if not out:
        raise ValidationFailed({field: f"请至少选择一个{noun}"})
    if len(out) > limit:
        raise ValidationFailed({field: f"一次最多处理 {limit} 个{noun}"})
    return list(out)


def check_paging(page: Any, page_size: Any, max_page_size: int) -> None:
    """A list's page (from 0) and page size (1..max_page_size); ValidationFailed naming each."""
    errors = {}
    if isinstance(page, bool) or not isinstance(page, int) or not 0 <= page <= MAX_PK:
        errors["page"] = "page 必须是不小于 0 的整数"
    if isinstance(page_size, bool) or not isinstance(page_size, int) \
            or not 1 <= page_size <= max_page_size:
        errors["page_size"] = f"page_size 应在 1–{max_page_size} 之间"
    if errors:
        raise ValidationFailed(errors)


class BoundedIntConverter(IntegerConverter):
    """The `<int:…>` route converter, bounded by the keys: a segment past MAX_PK answers 404
    (routing stops there) instead of reaching a query that overflows INTEGER."""

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > MAX_PK:
            raise NotFound()
        return number
