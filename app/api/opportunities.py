"""/api/v1/opportunities/: list (scoped, keyset by id), get, post, put and POST <id>/stage;
every write through app.services.opportunities."""
from __future__ import annotations

from flask import request
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.extensions import db
from app.models import Customer, Opportunity, Ownership
from app.models.opportunity import OPPORTUNITY_STATUSES
from app.security import RES_OPPORTUNITY, current_user
from app.services import opportunities
from app.services.errors import ValidationFailed, tr
from app.services.ids import MAX_PK, parse_pk

MAX_PAGE_SIZE = 100
LIST_ARGS = ("after", "page_size", "status", "customer_id", "stage_id")


def _answer(opp: Opportunity) -> dict:
    return schemas.dump(schemas.OpportunityResult,
                        {"id": opp.id, "result": opportunities.to_dict(opp)})


def _list_args() -> dict:
    """The list's query arguments, each checked (400 naming the field)."""
    unknown = sorted(set(request.args) - set(LIST_ARGS))
    errors: dict[str, str] = {k: tr("Unknown parameter") for k in unknown}
    out: dict = {"page_size": 50}
    for key in ("after", "customer_id", "stage_id"):
        if key in request.args:
            out[key] = parse_pk(request.args[key])
            if out[key] is None:
                errors[key] = tr("%(field)s must be an integer from 1 to %(max)s",
                                 field=key, max=MAX_PK)
    if "page_size" in request.args:
        raw = request.args["page_size"]
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            errors["page_size"] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                                     field="page_size", min=1, max=MAX_PAGE_SIZE)
        else:
            out["page_size"] = int(raw)
    if "status" in request.args:
        if request.args["status"] not in OPPORTUNITY_STATUSES:
            errors["status"] = tr("%(field)s can only be: %(choices)s", field="status",
                                  choices=", ".join(OPPORTUNITY_STATUSES))
        out["status"] = request.args["status"]
    if errors:
        raise ValidationFailed(errors)
    return out


class OpportunityApi(DocumentedApi):
    resource_name = "opportunities"
    class_permission_name = RES_OPPORTUNITY
    openapi_spec_tag = "Opportunities"

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_opportunities(self):
        """Opportunities in the caller's scope.
        ---
        get:
          summary: 商机列表 — the caller's opportunities in scope, newest first, keyset pages
            by id
          parameters:
          - {in: query, name: after, schema: {type: integer, minimum: 1, maximum: 2147483647},
             description: the next_after of the previous page}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100}}
          - {in: query, name: status, schema: {type: string, enum: [open, won, lost]}}
          - {in: query, name: customer_id, schema: {type: integer, minimum: 1,
             maximum: 2147483647}}
          - {in: query, name: stage_id, schema: {type: integer, minimum: 1,
             maximum: 2147483647}}
          answer: OpportunityPage
          errors: [400, 401, 403]
        """
        args = _list_args()
        q = (select(Opportunity)
             .options(joinedload(Opportunity.stage), joinedload(Opportunity.closed_owner),
                      joinedload(Opportunity.customer).joinedload(Customer.ownership)
                      .joinedload(Ownership.owner))
             .where(opportunities.scope_clause(current_user()))
             .order_by(Opportunity.id.desc()).limit(args["page_size"] + 1))
        if "after" in args:
            q = q.where(Opportunity.id < args["after"])
        for key in ("status", "customer_id", "stage_id"):
            if key in args:
                q = q.where(getattr(Opportunity, key) == args[key])
        rows = list(db.session.execute(q).unique().scalars())
        more = len(rows) > args["page_size"]
        rows = rows[:args["page_size"]]
        return self.response(200, **schemas.dump(schemas.OpportunityPage, {
            "count": len(rows), "next_after": rows[-1].id if more and rows else None,
            "result": [opportunities.to_dict(r) for r in rows]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def get_opportunity(self, pk: int):
        """One opportunity.
        ---
        get:
          summary: 商机 — one opportunity in the caller's scope
          answer: OpportunityResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(opportunities.get_opportunity(current_user(), pk)))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Add an opportunity.
        ---
        post:
          summary: 新建商机 — on an owned customer the caller may write; its owner is the
            customer's owner
          body: OpportunityCreate
          answer: OpportunityResult
          errors: [400, 401, 403, 404, 409]
        """
        opp = opportunities.create(current_user(), load_body(schemas.OpportunityCreate))
        return self.response(200, **_answer(opp))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def update(self, pk: int):
        """Edit an open opportunity.
        ---
        put:
          summary: 编辑商机 — title, amount, expected close date, product line of an open
            opportunity (the stage changes through /stage)
          body: OpportunityUpdate
          answer: OpportunityResult
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.OpportunityUpdate)
        opp = opportunities.update_opportunity(current_user(), pk, data)
        return self.response(200, **_answer(opp))

    @expose("/<int:pk>/stage", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def stage(self, pk: int):
        """Move an opportunity to a stage.
        ---
        post:
          summary: 推进阶段 — the same change as the kanban's drag; the won stage records the
            won deal, the lost stage needs loss_reason
          body: OpportunityStageRequest
          answer: OpportunityResult
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.OpportunityStageRequest)
        opp = opportunities.change_stage(current_user(), pk, data["stage_id"],
                                         loss_reason=data.get("loss_reason"),
                                         won_on=data.get("won_on"),
                                         expected_stage_id=data.get("expected_stage_id"))
        return self.response(200, **_answer(opp))
