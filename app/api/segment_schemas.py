"""Request and response bodies of /api/v1/segments/ (客户分群), beside app.api.schemas (same
fields, same strictness). Named MarketingSegment… so as not to meet the reclaim policies'
segments (SegmentValue) in the spec's components."""
from __future__ import annotations

from marshmallow import fields, validate

from app.api.schemas import Answer, Body, Choice, Count, Flag, Text, Timestamp, UserRef
from app.models.marketing import SEGMENT_RECORD_TYPES
from app.services.errors import N_
from app.services.ids import MAX_PK
from app.services.marketing_segments import (CATEGORIES, GRADES, MAX_DAYS, MAX_ITEMS, MAX_TAGS,
                                             PREVIEW_MAX, TEXT_LISTS)


def _texts(key: str, description: str):
    return fields.List(Text(TEXT_LISTS[key]), allow_none=True,
                       validate=validate.Length(max=MAX_ITEMS),
                       metadata={"description": description})


class MarketingSegmentCriteria(Body):
    """Every criterion optional; all given must hold (a list: any of its values)."""
    provinces = _texts("provinces", "省份 (customer.province / lead.province)")
    cities = _texts("cities", "城市")
    industries = _texts("industries", "行业")
    sources = _texts("sources", "来源: a customer's source text or a lead's source code")
    grades = fields.List(fields.String(validate=validate.OneOf(GRADES)), allow_none=True,
                         validate=validate.Length(max=len(GRADES)),
                         metadata={"description": "等级 A / B / C (customers only)"})
    categories = fields.List(fields.String(validate=validate.OneOf(CATEGORIES)),
                             allow_none=True, validate=validate.Length(max=len(CATEGORIES)),
                             metadata={"description": "potential | active | silent "
                                                      "(customers only)"})
    tag_ids = fields.List(fields.Integer(validate=validate.Range(min=1, max=MAX_PK),
                                         strict=True),
                          allow_none=True, validate=validate.Length(max=MAX_TAGS),
                          metadata={"description": "标签: the record carries any of them"})
    min_days_since_followup = Count(0, MAX_DAYS, allow_none=True, metadata={
        "description": "no follow-up for at least this many days (never counts)"})
    won = Choice(("yes", "no"), N_("Can only be yes or no"), allow_none=True, metadata={
        "description": "a customer with a won deal / a converted lead (yes), or not (no)"})


_RECORD_TYPE = N_("The record type can only be customer, lead or both")


class MarketingSegmentCreate(Body):
    name = Text(100, required=True)
    description = Text(500, allow_none=True)
    record_type = Choice(tuple(SEGMENT_RECORD_TYPES), _RECORD_TYPE, metadata={
        "description": "customer (default) | lead | both"})
    include_pool = Flag(N_("Must be true or false"), metadata={
        "description": "pool customers and pool leads included (default false)"})
    criteria = fields.Nested(MarketingSegmentCriteria, allow_none=True)


class MarketingSegmentUpdate(Body):
    name = Text(100)
    description = Text(500, allow_none=True)
    record_type = Choice(tuple(SEGMENT_RECORD_TYPES), _RECORD_TYPE)
    include_pool = Flag(N_("Must be true or false"))
    criteria = fields.Nested(MarketingSegmentCriteria, allow_none=True, metadata={
        "description": "replaces the criteria whole"})


class MarketingSegment(Answer):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    description = fields.String(allow_none=True)
    record_type = fields.String(required=True, metadata={"description": "customer | lead | "
                                                                        "both"})
    include_pool = fields.Boolean(required=True)
    criteria = fields.Dict(required=True, metadata={"description": "MarketingSegmentCriteria"})
    created_by = fields.Nested(UserRef, allow_none=True, metadata={
        "description": "whose data scope the segment is evaluated in"})
    created_at = Timestamp(allow_none=True)
    updated_at = Timestamp(allow_none=True)


class MarketingSegmentResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(MarketingSegment, required=True)


class MarketingSegmentPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "the rows of this page"})
    next_after = fields.Integer(allow_none=True, metadata={
        "description": "pass as after for the next page (null: the last page)"})
    result = fields.List(fields.Nested(MarketingSegment), required=True)


class MarketingSegmentDeleted(Answer):
    id = fields.Integer(required=True)


class MarketingSegmentMember(Answer):
    """A member as the caller may see it (contact details by the masking rule)."""
    record_type = fields.String(required=True, metadata={"description": "customer | lead"})
    id = fields.Integer(required=True)
    name = fields.String(allow_none=True)
    province = fields.String(allow_none=True)
    city = fields.String(allow_none=True)
    industry = fields.String(allow_none=True)
    grade = fields.String(allow_none=True)
    category = fields.String(allow_none=True)
    in_pool = fields.Boolean(required=True)
    mobile = fields.String(allow_none=True)
    phone = fields.String(allow_none=True)
    email = fields.String(allow_none=True)


class MarketingSegmentPreview(Answer):
    count = fields.Integer(required=True, metadata={"description": "the segment's members now"})
    result = fields.List(fields.Nested(MarketingSegmentMember), required=True, metadata={
        "description": f"the first members (at most {PREVIEW_MAX}) the caller may read"})


COMPONENTS = (MarketingSegmentCriteria, MarketingSegmentCreate, MarketingSegmentUpdate,
              MarketingSegment, MarketingSegmentResult, MarketingSegmentPage,
              MarketingSegmentDeleted, MarketingSegmentMember, MarketingSegmentPreview)
