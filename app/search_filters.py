"""FAB filters answered from the quick-search keys (app.services.search) instead of a
`LIKE '%…%'` that reads every row.

- QuickSearchFilter: the `?search=` box of the customer and pool lists, a base filter that
  reads the request itself, so it joins FAB's own filters, ordering and paging (their links
  keep the argument).
- NameContains: FAB's "Contains" (`ct`) for a customer's or a contact's name; on any other
  column it is FAB's FilterContains. FAB's REST list finds a filter class by its operator
  name in one process-wide table (see app.time_filters), so the REST APIs put it back on the
  name with with_name_search().

Used through SearchFilterConverter (the business-time filters plus NameContains), set on a
view's datamodel by with_name_search().
"""
from __future__ import annotations

from typing import Optional

from flask import flash, has_request_context, request
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.filters import FilterContains
from sqlalchemy import false

from app.models import Contact, Customer
from app.services import search
from app.services.errors import ValidationFailed
from app.time_filters import BusinessTimeFilterConverter

SEARCH_ARG = "search"


def quick_search_text() -> Optional[str]:
    """The list page's search box, if filled in."""
    if not has_request_context():
        return None
    text = request.args.get(SEARCH_ARG)
    return text if text is not None and text.strip() else None


def quick_search_refusal() -> Optional[str]:
    """Why the page's search text cannot be searched (shown to the user), or None."""
    text = quick_search_text()
    if text is None:
        return None
    try:
        search.parse(text)
    except ValidationFailed as exc:
        return exc.message
    return None


class QuickSearchFilter(BaseFilter):
    """Customers the list page's `?search=` finds (name, contact name, phone, e-mail); the
    view's scope filter still applies. On the list pages only."""

    name = "quick search"
    arg_name = None

    def apply(self, query, value):
        if isinstance(value, str):  # given (the REST list's `search`)
            text = value
        else:  # a base filter: the page's box
            text = quick_search_text()
            # The list and its total (/count/, fetched by the page) only: not a row's pages.
            if text is None or not (request.endpoint or "").endswith((".list", ".count")):
                return query
        try:
            ids = search.customer_ids_matching(text)
        except ValidationFailed:
            return query.filter(false())  # the view refused it before the query
        return query.filter(getattr(self.model, self.column_name).in_(ids))


def quick_search_filters(column: str = "id") -> list:
    """`base_filters` entry for a view whose `column` holds a customer id."""
    return [[column, QuickSearchFilter, lambda: None]]


class NameContains(FilterContains):
    """'Contains' on a customer's or contact's name through the search keys (two characters
    at least); FAB's own filter on any other column."""

    def apply(self, query, value):
        if self.column_name != "name" or self.model not in (Customer, Contact):
            return super().apply(query, value)
        try:
            wanted = search.parse_name(value)
        except ValidationFailed as exc:
            # Said on the page; not by the API, nor by a list's /count/ (JSON, no page: the
            # message would wait for the user's next page).
            if has_request_context() and not request.path.startswith("/api/") \
                    and not (request.endpoint or "").endswith(".count"):
                flash(exc.message, "warning")
            return query.filter(false())
        if self.model is Customer:
            return query.filter(Customer.id.in_(search.ids_for(wanted, names_only=True)))
        # The contact's customer first (by its keys), then the contact among its few.
        return query.filter(Contact.customer_id.in_(search.ids_for(wanted)),
                            Contact.name.ilike(f"%{value.strip()}%"))


class SearchFilterConverter(BusinessTimeFilterConverter):
    conversion_table = tuple(
        (kind, [NameContains if f is FilterContains else f for f in filters])
        for kind, filters in BusinessTimeFilterConverter.conversion_table)


def with_name_search(datamodel):
    """`datamodel` (an SQLAInterface) whose name "Contains" filter uses the search keys, with
    the business-time filters (app.time_filters.in_business_time keeps this converter)."""
    if not issubclass(datamodel.filter_converter_class, SearchFilterConverter):
        datamodel.filter_converter_class = SearchFilterConverter  # a subclass of it stays
    return datamodel


def name_filter_refusal(filters) -> Optional[str]:
    """A REST list's filters (FAB's Filters): NameContains put back on the name column; the
    refusal of a name text that cannot be searched, or None."""
    for i, (f, value) in enumerate(zip(filters.filters, filters.values)):
        if f.arg_name == "ct" and f.column_name == "name" \
                and filters.datamodel.obj in (Customer, Contact):
            if not isinstance(f, NameContains):
                filters.filters[i] = NameContains(f.column_name, filters.datamodel)
            try:
                search.parse_name(value)
            except ValidationFailed as exc:
                return exc.message
    return None
