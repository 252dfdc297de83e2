"""The campaign API's bodies (市场活动), declared as in app.api.schemas: each request body is
read with the class the spec names, each answer dumped through its class."""
from __future__ import annotations

from marshmallow import fields, validate

from app.api.schemas import Answer, Body, Choice, RecordId, Text, Timestamp
from app.models.marketing import CAMPAIGN_KINDS, CAMPAIGN_STATUSES, MEMBER_SOURCES
from app.services import limits
from app.services.campaigns import MAX_MEMBERS_PER_CALL
from app.services.errors import tr

_MONEY_HELP = "a decimal 0 … 999999999999.99 with at most 2 decimals, e.g. \"12800.00\""
_KINDS = "exhibition (展会) | online_ad (线上广告) | email (邮件营销) | sms (短信营销) | " \
         "seminar (研讨会) | telemarketing (电话营销)"


def _kind_refusal() -> str:
    return tr("The campaign type can only be: %(choices)s", choices=", ".join(CAMPAIGN_KINDS))


class CampaignCreate(Body):
    name = Text(200, required=True, metadata={"description": "unique"})
    kind = Choice(CAMPAIGN_KINDS, _kind_refusal, required=True,
                  metadata={"description": _KINDS})
    starts_on = Text(20, allow_none=True, metadata={"description": "YYYY-MM-DD"})
    ends_on = Text(20, allow_none=True, metadata={"description": "YYYY-MM-DD, not before "
                                                                 "starts_on"})
    budget = Text(40, allow_none=True, metadata={"description": _MONEY_HELP})
    actual_cost = Text(40, allow_none=True, metadata={"description": _MONEY_HELP})
    description = Text(limits.NOTE, allow_none=True)
    owner_id = RecordId(allow_none=True, metadata={
        "description": "an active user; default: the caller"})
    segment_id = RecordId(allow_none=True, metadata={
        "description": "the segment frozen into the members at launch"})


class CampaignUpdate(Body):
    name = Text(200)
    kind = Choice(CAMPAIGN_KINDS, _kind_refusal, metadata={"description": _KINDS})
    starts_on = Text(20, allow_none=True, metadata={"description": "YYYY-MM-DD"})
    ends_on = Text(20, allow_none=True, metadata={"description": "YYYY-MM-DD"})
    budget = Text(40, allow_none=True, metadata={"description": _MONEY_HELP})
    actual_cost = Text(40, allow_none=True, metadata={"description": _MONEY_HELP})
    description = Text(limits.NOTE, allow_none=True)
    owner_id = RecordId(allow_none=True, metadata={"description": "an active user"})
    segment_id = RecordId(allow_none=True, metadata={
        "description": "changes only while the campaign is planned"})


class Campaign(Answer):
    id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": _KINDS})
    status = fields.String(required=True, metadata={
        "description": " | ".join(CAMPAIGN_STATUSES)})
    starts_on = fields.String(allow_none=True)
    ends_on = fields.String(allow_none=True)
    budget = fields.String(allow_none=True, metadata={"description": "decimal as text"})
    actual_cost = fields.String(allow_none=True, metadata={"description": "decimal as text"})
    description = fields.String(allow_none=True)
    owner_id = fields.Integer(allow_none=True)
    segment_id = fields.Integer(allow_none=True)
    launched_at = Timestamp(allow_none=True)
    launched_by_id = fields.Integer(allow_none=True)
    created_at = Timestamp(allow_none=True)
    updated_at = Timestamp(allow_none=True)


class CampaignResult(Answer):
    id = fields.Integer(required=True)
    result = fields.Nested(Campaign, required=True)


class CampaignPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "the rows of this page"})
    next_after = fields.Integer(allow_none=True, metadata={
        "description": "pass as after for the next page (null: the last page)"})
    result = fields.List(fields.Nested(Campaign), required=True)


class CampaignDeleted(Answer):
    id = fields.Integer(required=True)


class CampaignMembersRequest(Body):
    customer_ids = fields.List(RecordId(), validate=validate.Length(max=MAX_MEMBERS_PER_CALL),
                               allow_none=True, metadata={
                                   "description": "customers in the caller's data scope"})
    lead_ids = fields.List(RecordId(), validate=validate.Length(max=MAX_MEMBERS_PER_CALL),
                           allow_none=True, metadata={
                               "description": "leads in the caller's data scope"})


class CampaignMembersAdded(Answer):
    added = fields.Integer(required=True)
    skipped = fields.Integer(required=True, metadata={"description": "already members"})


class CampaignMember(Answer):
    id = fields.Integer(required=True)
    record_type = fields.String(required=True, metadata={"description": "customer | lead"})
    customer_id = fields.Integer(allow_none=True)
    lead_id = fields.Integer(allow_none=True)
    name = fields.String(allow_none=True)
    source = fields.String(required=True, metadata={"description": " | ".join(MEMBER_SOURCES)})
    mobile = fields.String(allow_none=True, metadata={"description": "masked unless the "
                                                                     "caller may see it"})
    email = fields.String(allow_none=True, metadata={"description": "masked unless the caller "
                                                                    "may see it"})
    added_at = Timestamp(allow_none=True)


class CampaignMemberPage(Answer):
    count = fields.Integer(required=True, metadata={"description": "the rows of this page"})
    next_after = fields.Integer(allow_none=True)
    result = fields.List(fields.Nested(CampaignMember), required=True)


class CampaignLaunched(Answer):
    campaign_id = fields.Integer(required=True)
    from_segment = fields.Integer(required=True, metadata={
        "description": "members frozen from the segment"})
    manual = fields.Integer(required=True, metadata={"description": "members added by hand"})
    total = fields.Integer(required=True)
    queued = fields.Integer(required=True, metadata={"description": "messages queued"})


COMPONENTS = (CampaignCreate, CampaignUpdate, Campaign, CampaignResult, CampaignPage,
              CampaignDeleted, CampaignMembersRequest, CampaignMembersAdded, CampaignMember,
              CampaignMemberPage, CampaignLaunched)
