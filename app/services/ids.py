"""Record ids and counts that arrive from outside (URL segments, query strings, form fields,
JSON bodies): one reading for the pages, the API and the services, so "abc", 1.5, true, 0 or a
number past the INTEGER keys is "not found" or a 400 naming the field, never a DB error."""
from __future__ import annotations

from typing import Any, Iterable, Optional

from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from app.services.errors import N_, ValidationFailed, tr

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


def whole_number_text(text: str, signed: bool = False) -> bool:
    """Whether form text is a whole number int() reads: ASCII digits (str.isdigit also takes
    '²', which int() refuses), at most 18 of them (int() refuses thousands), an optional
    leading '-' when `signed`. Surrounding blanks are allowed."""
    text = text.strip()
    if signed and text.startswith("-"):
        text = text[1:]
    return text.isascii() and text.isdigit() and len(text) <= 18


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
        raise ValidationFailed({field: tr("%(field)s must be an integer from 1 to %(max)s",
                                          field=field, max=MAX_PK)})
    return number


def parse_int(value: Any, field: str, minimum: int = 0, maximum: int = MAX_PK) -> int:
    """A count or a page number: an integer in minimum..maximum, else ValidationFailed."""
    number = _as_int(value)
    if number is None or not minimum <= number <= maximum:
        raise ValidationFailed({field: tr("%(field)s must be an integer from %(min)s to %(max)s",
                                          field=field, min=minimum, max=maximum)})
    return number


def parse_optional_id(value: Any, field: str) -> Optional[int]:
    """parse_id, with None or "" meaning "not given"."""
    return None if value in (None, "") else parse_id(value, field)


# What a list of ids names, and its refusals (msgids): not a list, empty, too long.
CUSTOMER, REP, LEAD = "customer", "rep", "lead"
LIST_REFUSALS = {
    CUSTOMER: (N_("The customer ids must be a list of positive integers"),
               N_("Select at least one customer"), N_("At most %(limit)s customers at a time")),
    REP: (N_("The sales rep ids must be a list of positive integers"),
          N_("Select at least one rep"), N_("At most %(limit)s sales reps at a time")),
    LEAD: (N_("The lead ids must be a list of positive integers"),
           N_("Select at least one lead"), N_("At most %(limit)s leads at a time")),
}


def parse_ids(values: Any, field: str, limit: int, noun: str = CUSTOMER) -> list[int]:
    """Distinct ids in the given order; ValidationFailed({field: …}) for anything that is not
    a non-empty list of at most `limit` ids (`noun`, CUSTOMER or REP, names them)."""
    not_a_list, empty, too_many = LIST_REFUSALS[noun]
    if values is None:
        values = []
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Iterable):
        raise ValidationFailed({field: tr(not_a_list)})
    out: dict[int, None] = {}  # an insertion-ordered set: 100k ids dedupe in linear time
    for raw in values:
        number = parse_pk(raw)
        if number is None:
            raise ValidationFailed({field: tr(not_a_list)})
        out[number] = None
    if not out:
        raise ValidationFailed({field: tr(empty)})
    if len(out) > limit:
        raise ValidationFailed({field: tr(too_many, limit=limit)})
    return list(out)


def check_paging(page: Any, page_size: Any, max_page_size: int) -> None:
    """A list's page (from 0) and page size (1..max_page_size); ValidationFailed naming each."""
    errors = {}
    if isinstance(page, bool) or not isinstance(page, int) or not 0 <= page <= MAX_PK:
        errors["page"] = tr("page must be an integer not below 0")
    if isinstance(page_size, bool) or not isinstance(page_size, int) \
            or not 1 <= page_size <= max_page_size:
        errors["page_size"] = tr("page_size must be within 1–%(max)s", max=max_page_size)
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
