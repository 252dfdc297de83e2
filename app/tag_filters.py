"""The lists' `?tag=<id>` argument (a tag chip's link): a FAB base filter that keeps the
records carrying the tag, through record_tag's (tag_id) index — a semi-join, cheap beside
the scope's. A value that is not an id filters nothing (the list as it was)."""
from __future__ import annotations

from flask import has_request_context, request
from flask_appbuilder.models.filters import BaseFilter
from sqlalchemy import select

from app.models.marketing import RecordTag
from app.services.ids import parse_pk

TAG_ARG = "tag"
_COLUMNS = {"customer": RecordTag.customer_id, "contact": RecordTag.contact_id,
            "lead": RecordTag.lead_id}


def tag_arg():
    return parse_pk(request.args.get(TAG_ARG)) if has_request_context() else None


def tag_filter(record_type: str) -> list:
    """`base_filters` for a list of `record_type` whose `id` column is the record id."""

    class TagArgFilter(BaseFilter):
        name = "tag"
        arg_name = None

        def apply(self, query, value):
            tag_id = tag_arg()
            if tag_id is None:
                return query
            column = getattr(self.datamodel.obj, self.column_name)
            return query.filter(column.in_(select(_COLUMNS[record_type]).where(
                RecordTag.tag_id == tag_id)))

    return [["id", TagArgFilter, lambda: None]]
