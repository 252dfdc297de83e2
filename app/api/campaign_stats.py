"""/api/v1/campaigns/<id>/stats (the effect of one campaign) and /api/v1/campaigns/<id>/responses
(a response marked by hand): beside the campaign CRUD under the same route base, in classes of
their own; every answer from app.services.campaign_responses."""
from __future__ import annotations

from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect
from marshmallow import fields

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.models.marketing import CAMPAIGN_KINDS, CAMPAIGN_STATUSES
from app.security import RES_CAMPAIGN_EFFECT, RES_CAMPAIGN_RESPONSE, current_user
from app.services import campaign_responses
from app.services.errors import ValidationFailed, tr
from app.services.leads import MAX_LENGTHS

ROUTE_BASE = "/api/v1/campaigns"


class CampaignStats(schemas.Answer):
    """The effect of one campaign (活动效果): counts, attributed won amounts, cost per lead
    and ROI."""
    __component_name__ = "CampaignStats"

    campaign_id = fields.Integer(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True, metadata={"description": " | ".join(CAMPAIGN_KINDS)})
    status = fields.String(required=True, metadata={
        "description": " | ".join(CAMPAIGN_STATUSES)})
    starts_on = fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD"})
    ends_on = fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD"})
    budget = fields.String(allow_none=True, metadata={"description": "yuan, two decimals"})
    actual_cost = fields.String(allow_none=True, metadata={"description": "yuan, two decimals"})
    members = fields.Integer(required=True)
    delivered = fields.Integer(required=True, metadata={"description": "messages sent"})
    failed = fields.Integer(required=True, metadata={"description": "messages failed"})
    unsubscribed = fields.Integer(required=True, metadata={
        "description": "opt-outs that came through this campaign"})
    clicked = fields.Integer(required=True, metadata={
        "description": "distinct members who clicked a tracked link"})
    responded = fields.Integer(required=True, metadata={
        "description": "distinct records with a sign-up or a marked response"})
    leads = fields.Integer(required=True, metadata={
        "description": "leads its sign-ups and responses created"})
    converted = fields.Integer(required=True, metadata={
        "description": "customers those leads were converted into"})
    opportunities = fields.Integer(required=True, metadata={
        "description": "opportunities opened on a customer it touched, after the first touch"})
    won_first_touch = fields.String(required=True, metadata={
        "description": "won amount of deals whose first touch in the window is this campaign"})
    won_last_touch = fields.String(required=True, metadata={
        "description": "won amount of deals whose last touch in the window is this campaign"})
    cost_per_lead = fields.String(allow_none=True, metadata={
        "description": "actual cost / leads (null: no cost or no leads)"})
    roi_first_touch = fields.Float(allow_none=True, metadata={
        "description": "(won first-touch − cost) / cost; 1.0 = 100 % (null: no cost)"})
    roi_last_touch = fields.Float(allow_none=True, metadata={
        "description": "(won last-touch − cost) / cost; 1.0 = 100 % (null: no cost)"})
    attribution_days = fields.Integer(required=True, metadata={
        "description": "the attribution window in days (marketing settings)"})


CampaignResponseRequest = schemas.Body.from_dict({
    "member_id": schemas.RecordId(allow_none=True, metadata={
        "description": "a member of this campaign who responded; else the respondent's fields"}),
    "note": schemas.Text(campaign_responses.NOTE_MAX, allow_none=True),
    **{name: schemas.Text(MAX_LENGTHS[name], allow_none=True)
       for name in ("person_name", "company_name", "mobile", "phone", "email", "province",
                    "city", "industry", "notes")},
}, name="CampaignResponseRequest")


class CampaignResponseResult(schemas.Answer):
    __component_name__ = "CampaignResponseResult"

    touch_id = fields.Integer(required=True)
    record = fields.String(required=True, metadata={"description": "customer | lead"})
    record_id = fields.Integer(required=True)
    lead_created = fields.Boolean(required=True, metadata={
        "description": "a new lead was made (no customer or lead matched)"})


COMPONENTS = schemas.COMPONENTS + (CampaignStats, CampaignResponseRequest,
                                   CampaignResponseResult)


class CampaignStatsApi(DocumentedApi):
    route_base = ROUTE_BASE
    class_permission_name = RES_CAMPAIGN_EFFECT
    openapi_spec_tag = "Campaigns"
    openapi_spec_component_schemas = COMPONENTS

    @expose("/<int:pk>/stats", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def stats(self, pk: int):
        """The effect of one campaign.
        ---
        get:
          summary: 活动效果 — members, delivered, failed, unsubscribed, clicked, responded,
            leads, converted customers, opportunities, won amount first-touch and last-touch,
            cost per lead and ROI (marketing, admins; sales managers and auditors read)
          answer: CampaignStats
          errors: [401, 403, 404]
        """
        row = campaign_responses.effect_of(pk, current_user())
        return self.response(200, **schemas.dump(CampaignStats, {
            **row.to_dict(), "attribution_days": campaign_responses.attribution_days()}))


class CampaignResponseApi(DocumentedApi):
    route_base = ROUTE_BASE
    class_permission_name = RES_CAMPAIGN_RESPONSE
    openapi_spec_tag = "Campaigns"
    openapi_spec_component_schemas = COMPONENTS

    @expose("/<int:pk>/responses", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def respond(self, pk: int):
        """Record a response to a campaign by hand.
        ---
        post:
          summary: 标记响应 — with member_id, that member responded (marketing and admins any
            member, an owner their own customer); else a new respondent (marketing and admins)
            deduped against customers and leads, a new lead when nothing matches
          body: CampaignResponseRequest
          answer: CampaignResponseResult
          errors: [400, 401, 403, 404]
        """
        data = load_body(CampaignResponseRequest)
        actor = current_user()
        member_id, note = data.pop("member_id", None), data.pop("note", None)
        if member_id is not None:
            if any(v not in (None, "") for v in data.values()):
                raise ValidationFailed({"member_id": tr(
                    "Give a member or a respondent's details, not both")})
            touch = campaign_responses.mark_member_response(actor, member_id, note,
                                                            campaign_id=pk)
            answer = {"touch_id": touch.id,
                      "record": "customer" if touch.customer_id is not None else "lead",
                      "record_id": touch.customer_id or touch.lead_id, "lead_created": False}
        else:
            done = campaign_responses.record_response(
                actor, pk, {k: v for k, v in data.items() if v is not None}, note)
            answer = {"touch_id": done.touch_id, "record": done.record,
                      "record_id": done.record_id, "lead_created": done.lead_created}
        return self.response(200, **schemas.dump(CampaignResponseResult, answer))
