"""Search filters on a list's customer and user columns that need no list of choices.

FAB's filter on a relation column offers a select of every related row: a follow-up list's
"customer" filter would read a million customers into the page (and two statements for any
users' column). Here such a column is searched by typing: "is" takes the id (the links of the
customer page use `_flt_0_customer=<id>`) and "contains" part of the name (a customer's name,
or a user's name or login). Used by every keyset list (app.paging.KeysetInterface).
"""
from __future__ import annotations

from flask_appbuilder.models.filters import BaseFilter
from flask_babel import lazy_gettext as _
from sqlalchemy import or_, select

from app.services.ids import parse_pk
from app.search_filters import SearchFilterConverter

MAX_TEXT = 200


def _text(value) -> str | None:
    """The typed text, or None when there is nothing usable to search for."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace("\x00", "")
    return text[:MAX_TEXT] or None


class _RelatedFilter(BaseFilter):
    def key_column(self):
        """The row's foreign key column of the relation (follow_up.customer_id)."""
        relation = getattr(self.model, self.column_name).property
        (column,) = relation.local_columns
        return getattr(self.model, column.key)


class RelatedIs(_RelatedFilter):
    name = _("Is (ID)")
    arg_name = "rel_id"

    def apply(self, query, value):
        pk = parse_pk(value) if isinstance(value, str) else None
        if pk is None:
            return query  # as FAB: a value that is no id leaves the list unfiltered
        return query.filter(self.key_column() == pk)


class CustomerNameContains(_RelatedFilter):
    name = _("Name contains")
    arg_name = "cust_name"

    def apply(self, query, value):
        from app.models import Customer

        text = _text(value)
        if text is None:
            return query
        return query.filter(self.key_column().in_(
            select(Customer.id).where(Customer.name.contains(text, autoescape=True))))


class UserNameContains(_RelatedFilter):
    name = _("Name contains")
    arg_name = "user_name"

    def apply(self, query, value):
        from app.models import User

        text = _text(value)
        if text is None:
            return query
        full = User.last_name + User.first_name
        return query.filter(self.key_column().in_(select(User.id).where(or_(
            User.username.contains(text, autoescape=True),
            full.contains(text, autoescape=True)))))


class KeysetFilterConverter(SearchFilterConverter):
    """Business-time filters on date-times, names through the search keys
    (app.search_filters), typed filters on customer and user columns."""

    conversion_table = (
        ("is_customer_relation", [RelatedIs, CustomerNameContains]),
        ("is_user_relation", [RelatedIs, UserNameContains]),
    ) + SearchFilterConverter.conversion_table
