"""/api/v1/campaigns/ (市场活动): list (keyset by id, filters by status and type), get, post,
put, delete; GET / POST <id>/members, DELETE <id>/members/<member_id>, POST <id>/launch and
<id>/finish. Every write through app.services.campaigns."""
from __future__ import annotations

from flask import request
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect
from sqlalchemy import select

from app.api import campaign_schemas as cs, schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.extensions import db
from app.models.marketing import CAMPAIGN_KINDS, CAMPAIGN_STATUSES, Campaign
from app.security import RES_CAMPAIGN, current_user
from app.services import campaigns
from app.services.errors import ValidationFailed, tr
from app.services.ids import MAX_PK, parse_pk

MAX_PAGE_SIZE = 100


def _answer(campaign: Campaign) -> dict:
    return schemas.dump(cs.CampaignResult, {"id": campaign.id,
                                            "result": campaigns.to_dict(campaign)})


def _page_args(allowed: tuple[str, ...]) -> dict:
    """The list's query arguments, each checked (400 naming the field)."""
    errors: dict[str, str] = {k: tr("Unknown parameter")
                              for k in sorted(set(request.args) - set(allowed))}
    out: dict = {"page_size": 50}
    if "after" in request.args:
        out["after"] = parse_pk(request.args["after"])
        if out["after"] is None:
            errors["after"] = tr("%(field)s must be an integer from 1 to %(max)s",
                                 field="after", max=MAX_PK)
    if "page_size" in request.args:
        raw = request.args["page_size"]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            errors["page_size"] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                                     field="page_size", min=1, max=MAX_PAGE_SIZE)
        else:
            out["page_size"] = int(raw)
    for key, choices in (("status", CAMPAIGN_STATUSES), ("kind", CAMPAIGN_KINDS)):
        if key in allowed and key in request.args:
            if request.args[key] not in choices:
                errors[key] = tr("%(field)s can only be: %(choices)s", field=key,
                                 choices=", ".join(choices))
            out[key] = request.args[key]
    if errors:
        raise ValidationFailed(errors)
    return out


class CampaignApi(DocumentedApi):
    resource_name = "campaigns"
    class_permission_name = RES_CAMPAIGN
    openapi_spec_tag = "Campaigns"
    openapi_spec_component_schemas = schemas.COMPONENTS + cs.COMPONENTS

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_campaigns(self):
        """Campaigns, newest first.
        ---
        get:
          summary: 市场活动列表 — every campaign (all who read campaigns read them all), keyset
            pages by id
          parameters:
          - {in: query, name: after, schema: {type: integer, minimum: 1, maximum: 2147483647},
             description: the next_after of the previous page}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100}}
          - {in: query, name: status, schema: {type: string, enum: [planned, running,
             finished]}}
          - {in: query, name: kind, schema: {type: string, enum: [exhibition, online_ad, email,
             sms, seminar, telemarketing]}}
          answer: CampaignPage
          errors: [400, 401, 403]
        """
        args = _page_args(("after", "page_size", "status", "kind"))
        campaigns.require_reader(current_user())
        q = select(Campaign).order_by(Campaign.id.desc()).limit(args["page_size"] + 1)
        if "after" in args:
            q = q.where(Campaign.id < args["after"])
        for key in ("status", "kind"):
            if key in args:
                q = q.where(getattr(Campaign, key) == args[key])
        rows = list(db.session.execute(q).scalars())
        more = len(rows) > args["page_size"]
        rows = rows[:args["page_size"]]
        return self.response(200, **schemas.dump(cs.CampaignPage, {
            "count": len(rows), "next_after": rows[-1].id if more and rows else None,
            "result": [campaigns.to_dict(r) for r in rows]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def get_campaign(self, pk: int):
        """One campaign.
        ---
        get:
          summary: 市场活动 — one campaign
          answer: CampaignResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(campaigns.get_campaign(current_user(), pk)))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Add a campaign.
        ---
        post:
          summary: 新建市场活动 — planned; marketing and admins
          body: CampaignCreate
          answer: CampaignResult
          errors: [400, 401, 403]
        """
        data = load_body(cs.CampaignCreate)
        return self.response(200, **_answer(campaigns.create(current_user(), data)))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def update(self, pk: int):
        """Edit a campaign.
        ---
        put:
          summary: 编辑市场活动 — the fields given; the segment only while planned, the status
            only through launch and finish
          body: CampaignUpdate
          answer: CampaignResult
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(cs.CampaignUpdate)
        return self.response(200, **_answer(campaigns.update(current_user(), pk, data)))

    @expose("/<int:pk>", methods=["DELETE"])
    @protect()
    @permission_name("delete")
    @maps_domain_errors
    def delete(self, pk: int):
        """Delete a planned campaign.
        ---
        delete:
          summary: 删除市场活动 — only a planned one (a launched campaign is finished instead)
          answer: CampaignDeleted
          errors: [401, 403, 404, 409]
        """
        campaigns.delete(current_user(), pk)
        return self.response(200, **schemas.dump(cs.CampaignDeleted, {"id": pk}))

    @expose("/<int:pk>/members", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_members(self, pk: int):
        """A campaign's members the caller may see.
        ---
        get:
          summary: 活动成员 — the members in the caller's data scope, newest first, contacts
            masked by the one rule
          parameters:
          - {in: query, name: after, schema: {type: integer, minimum: 1, maximum: 2147483647}}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100}}
          answer: CampaignMemberPage
          errors: [400, 401, 403, 404]
        """
        args = _page_args(("after", "page_size"))
        actor = current_user()
        campaign = campaigns.get_campaign(actor, pk)
        rows, next_after = campaigns.members_page(actor, campaign.id, after=args.get("after"),
                                                  page_size=args["page_size"])
        return self.response(200, **schemas.dump(cs.CampaignMemberPage, {
            "count": len(rows), "next_after": next_after, "result": rows}))

    @expose("/<int:pk>/members", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def add_members(self, pk: int):
        """Add members by hand.
        ---
        post:
          summary: 添加活动成员 — customers and leads in the caller's scope (at most 500 ids),
            those already members skipped
          body: CampaignMembersRequest
          answer: CampaignMembersAdded
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(cs.CampaignMembersRequest)
        added = campaigns.add_members(pk, current_user(), customer_ids=data.get("customer_ids"),
                                      lead_ids=data.get("lead_ids"))
        return self.response(200, **schemas.dump(cs.CampaignMembersAdded, added.to_dict()))

    @expose("/<int:pk>/members/<int:member_id>", methods=["DELETE"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def remove_member(self, pk: int, member_id: int):
        """Remove a member.
        ---
        delete:
          summary: 移除活动成员 — not after the campaign finished, nor once a message went to
            the member
          answer: CampaignDeleted
          errors: [401, 403, 404, 409]
        """
        campaigns.remove_member(pk, current_user(), member_id)
        return self.response(200, **schemas.dump(cs.CampaignDeleted, {"id": member_id}))

    @expose("/<int:pk>/launch", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def launch(self, pk: int):
        """Launch a planned campaign.
        ---
        post:
          summary: 启动活动 — freezes the segment into the members, status running, queues the
            messages; once
          answer: CampaignLaunched
          errors: [401, 403, 404, 409]
        """
        launched = campaigns.launch(pk, current_user())
        return self.response(200, **schemas.dump(cs.CampaignLaunched, launched.to_dict()))

    @expose("/<int:pk>/finish", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def finish(self, pk: int):
        """Finish a running campaign.
        ---
        post:
          summary: 结束活动 — running → finished
          answer: CampaignResult
          errors: [401, 403, 404, 409]
        """
        return self.response(200, **_answer(campaigns.finish(pk, current_user())))
