"""FAB's search filters on date-time columns, reading the typed value as business time.

FAB compares the typed text, parsed as it is, with the stored value, which is UTC: in Beijing
"created after 2026-11-29 23:00" would start eight hours late. Here a typed value means what
the page shows (app.services.times.typed_period): "2026-11-29" is that business day,
"2026-11-29 23:00" that minute, and a filter compares with the whole period. A value that is
no time leaves the list unfiltered (FAB does the same for "greater than" and "smaller than").
Used by every ScopedModelView and by the REST list filters (`q`).

FAB's REST list picks a filter class by its operator name ("eq", "gt") from one process-wide
table that every filter object writes itself into when made: a class of ours may be found
there for a text column, and FAB's for a date-time one. So each class of ours filters any
other column exactly as FAB's does, and read_in_business_time puts ours back on the date-time
columns of a REST query.
"""
from __future__ import annotations

from flask_appbuilder.models.sqla.filters import (FilterEqual, FilterGreater, FilterNotEqual,
                                                  FilterSmaller, SQLAFilterConverter,
                                                  get_field_setup_query)
from sqlalchemy import and_, or_

from app.services.times import typed_period


class _BusinessTimeFilter:
    def apply(self, query, value):
        if not self.datamodel.is_datetime(self.column_name):
            return super().apply(query, value)  # FAB's own filter of that name
        period = typed_period(value) if isinstance(value, str) else None
        if period is None:
            return query
        query, field = get_field_setup_query(query, self.model, self.column_name)
        return query.filter(self.compare(field, *period))


class BusinessTimeEqual(_BusinessTimeFilter, FilterEqual):
    @staticmethod
    def compare(field, start, end):
        return and_(field >= start, field < end)


class BusinessTimeNotEqual(_BusinessTimeFilter, FilterNotEqual):
    @staticmethod
    def compare(field, start, end):
        return or_(field < start, field >= end)


class BusinessTimeGreater(_BusinessTimeFilter, FilterGreater):
    @staticmethod
    def compare(field, start, end):
        return field >= end


class BusinessTimeSmaller(_BusinessTimeFilter, FilterSmaller):
    @staticmethod
    def compare(field, start, end):
        return field < start


class BusinessTimeFilterConverter(SQLAFilterConverter):
    conversion_table = tuple(
        (kind, [BusinessTimeEqual, BusinessTimeGreater, BusinessTimeSmaller,
                BusinessTimeNotEqual]) if kind == "is_datetime" else (kind, filters)
        for kind, filters in SQLAFilterConverter.conversion_table)


BY_OPERATOR = {cls.arg_name: cls for cls in (BusinessTimeEqual, BusinessTimeNotEqual,
                                             BusinessTimeGreater, BusinessTimeSmaller)}


def read_in_business_time(filters):
    """A REST list's filters (FAB's Filters) with ours on every date-time column."""
    for i, f in enumerate(filters.filters):
        if f.arg_name in BY_OPERATOR and not isinstance(f, _BusinessTimeFilter) \
                and filters.datamodel.is_datetime(f.column_name):
            filters.filters[i] = BY_OPERATOR[f.arg_name](f.column_name, filters.datamodel)
    return filters


def in_business_time(datamodel):
    """`datamodel` (an SQLAInterface) with the business-time filters; call before the view
    or API builds its search filters (its __init__)."""
    if not issubclass(datamodel.filter_converter_class, BusinessTimeFilterConverter):
        # (a subclass, app.search_filters.SearchFilterConverter, stays)
        datamodel.filter_converter_class = BusinessTimeFilterConverter
    return datamodel
