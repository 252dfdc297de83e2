"""/api/v1/leads/: list (scoped, keyset by id), get, post, put, and the operations claim,
release and convert; every write through app.services.leads."""
from __future__ import annotations

from typing import Optional

from flask import request
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect
from sqlalchemy import or_, select, tuple_
from sqlalchemy.orm import joinedload

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.extensions import db
from app.models import Lead, LeadOwnership
from app.models.lead import LEAD_SOURCES, LEAD_STATUSES
from app.security import RES_LEAD, current_user
from app.services import leads
from app.services.errors import ValidationFailed, tr
from app.services.ids import MAX_PK, parse_pk
from app.services.masking import shown
from app.services.text import is_unclean

MAX_PAGE_SIZE = 100
LIST_ARGS = ("after", "page_size", "status", "source", "search", "sort")
SORTS = ("newest", "priority")


def lead_dict(lead: Lead, rule) -> dict:
    """A lead as the API answers it, contact details by the caller's rule."""
    o = lead.ownership
    full = rule(o.owner_id if o else None, o.pool_id if o else None)
    return {
        **{f: getattr(lead, f) for f in ("id", "person_name", "company_name", "province",
                                         "city", "industry", "source", "campaign", "notes",
                                         "status", "invalid_reason", "converted_customer_id",
                                         "converted_at", "created_at", "updated_at")},
        **{f: shown(f, getattr(lead, f), full) for f in ("mobile", "phone", "email")},
        "owner": {"id": o.owner.id, "username": o.owner.username} if o and o.owner else None,
        "pool": {"id": o.pool.id, "name": o.pool.name} if o and o.pool else None,
        "last_followup_at": o.last_followup_at if o else None,
        "priority_score": lead.priority_score,
        "priority_parts": {"source": lead.priority_source,
                           "completeness": lead.priority_completeness,
                           "engagement": lead.priority_engagement, "age": lead.priority_age},
    }


def _answer(lead: Lead) -> dict:
    db.session.refresh(lead)
    return schemas.dump(schemas.LeadResult, {
        "id": lead.id, "result": lead_dict(lead, leads.contact_rule(current_user()))})


def _list_args() -> dict:
    """The list's query arguments, each checked (400 naming the field)."""
    unknown = sorted(set(request.args) - set(LIST_ARGS))
    errors: dict[str, str] = {k: tr("Unknown parameter") for k in unknown}
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
    for key, choices in (("status", LEAD_STATUSES), ("source", LEAD_SOURCES)):
        if key in request.args:
            if request.args[key] not in choices:
                errors[key] = tr("%(field)s can only be: %(choices)s", field=key,
                                 choices=", ".join(choices))
            out[key] = request.args[key]
    out["sort"] = request.args.get("sort", "newest")
    if out["sort"] not in SORTS:
        errors["sort"] = tr("%(field)s can only be: %(choices)s", field="sort",
                            choices=", ".join(SORTS))
    if "search" in request.args:
        text = request.args["search"].strip()
        if is_unclean(text) or len(text) > 100:
            errors["search"] = tr("Cannot exceed %(limit)s characters", limit=100) \
                if len(text) > 100 else tr("Must be text")
        out["search"] = text
    if errors:
        raise ValidationFailed(errors)
    return out


def _search(text: str):
    """Name contains the text, or a contact field equals it (normalised like the keys)."""
    from app.services.normalize import InvalidValue, normalize_mobile, normalize_phone

    clauses = [Lead.person_name.contains(text, autoescape=True),
               Lead.company_name.contains(text, autoescape=True),
               Lead.email_norm == text.lower()]
    for fn, column in ((normalize_mobile, Lead.mobile_e164), (normalize_phone, Lead.phone_e164)):
        try:
            key: Optional[str] = fn(text)
        except (InvalidValue, ValueError):
            key = None
        if key:
            clauses.append(column == key)
    return or_(*clauses)


class LeadApi(DocumentedApi):
    resource_name = "leads"
    class_permission_name = RES_LEAD
    openapi_spec_tag = "Leads"

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_leads(self):
        """Leads in the caller's scope.
        ---
        get:
          summary: 线索列表 — the caller's leads in scope, newest first, keyset pages by id
          parameters:
          - {in: query, name: after, schema: {type: integer, minimum: 1, maximum: 2147483647},
             description: the next_after of the previous page}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100}}
          - {in: query, name: status, schema: {type: string,
             enum: [new, working, converted, invalid]}}
          - {in: query, name: source, schema: {type: string,
             enum: [web_form, phone, exhibition, referral, advertising, campaign, other]}}
          - {in: query, name: search, schema: {type: string, maxLength: 100},
             description: part of a name, or a whole mobile / phone / e-mail}
          - {in: query, name: sort, schema: {type: string, enum: [newest, priority]},
             description: "newest first (default) or highest priority score first; after
               pages on in either order"}
          answer: LeadPage
          errors: [400, 401, 403]
        """
        args = _list_args()
        actor = current_user()
        q = (select(Lead).options(joinedload(Lead.ownership).joinedload(LeadOwnership.owner),
                                  joinedload(Lead.ownership).joinedload(LeadOwnership.pool))
             .where(leads.lead_scope_clause(actor)).limit(args["page_size"] + 1))
        if args["sort"] == "priority":
            q = q.order_by(Lead.priority_score.desc(), Lead.id.desc())
            if "after" in args:
                # The cursor lead's score, read in the caller's scope (another's lead tells
                # nothing, not even its score through the order of the page).
                last = db.session.execute(select(Lead.priority_score).where(
                    Lead.id == args["after"], leads.lead_scope_clause(actor))
                ).scalar_one_or_none()
                q = q.where(tuple_(Lead.priority_score, Lead.id) < tuple_(last, args["after"])
                            if last is not None else Lead.id < args["after"])
        else:
            q = q.order_by(Lead.id.desc())
            if "after" in args:
                q = q.where(Lead.id < args["after"])
        for key in ("status", "source"):
            if key in args:
                q = q.where(getattr(Lead, key) == args[key])
        if args.get("search"):
            q = q.where(_search(args["search"]))
        rows = list(db.session.execute(q).unique().scalars())
        more = len(rows) > args["page_size"]
        rows = rows[:args["page_size"]]
        rule = leads.contact_rule(actor)
        return self.response(200, **schemas.dump(schemas.LeadPage, {
            "count": len(rows), "next_after": rows[-1].id if more and rows else None,
            "result": [lead_dict(r, rule) for r in rows]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def get_lead(self, pk: int):
        """One lead.
        ---
        get:
          summary: 线索 — one lead in the caller's scope
          answer: LeadResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(leads.get_lead(current_user(), pk)))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Add a lead.
        ---
        post:
          summary: 新增线索 — dedupe-checked against customers and leads; owned by the
            creator (reps, managers) or put in a lead pool (staff, admins)
          body: LeadCreate
          answer: LeadResult
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.LeadCreate)
        owner_id, pool_id = data.pop("owner_id", None), data.pop("pool_id", None)
        confirm = data.pop("confirm_duplicates", False)
        lead = leads.create_lead(current_user(), data, owner_id=owner_id, pool_id=pool_id,
                                 confirm_duplicates=confirm)
        return self.response(200, **_answer(lead))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def update(self, pk: int):
        """Edit a lead's fields.
        ---
        put:
          summary: 编辑线索 — the fields given (not its holder or status)
          body: LeadUpdate
          answer: LeadResult
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.LeadUpdate)
        confirm = data.pop("confirm_duplicates", False)
        return self.response(200, **_answer(leads.update_lead(current_user(), pk, data,
                                                              confirm_duplicates=confirm)))

    @expose("/claim", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def claim(self):
        """Claim pool leads.
        ---
        post:
          summary: 领取线索 — from lead pools the caller belongs to, all or nothing, within the
            lead cap and the daily lead claim limit
          body: LeadClaimRequest
          answer: LeadIds
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.LeadClaimRequest)
        ids = leads.claim_leads(current_user(), data["lead_ids"], data.get("pool_id"))
        return self.response(200, **schemas.dump(schemas.LeadIds, {"lead_ids": ids}))

    @expose("/release", methods=["POST"])
    @protect()
    @permission_name("release")
    @maps_domain_errors
    def release(self):
        """Release leads to a lead pool.
        ---
        post:
          summary: 退回线索 — owners, their managers and admins, with a reason
          body: LeadReleaseRequest
          answer: LeadIds
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.LeadReleaseRequest)
        ids = leads.release_leads(current_user(), data["lead_ids"], data["reason"],
                                  data.get("pool_id"))
        return self.response(200, **schemas.dump(schemas.LeadIds, {"lead_ids": ids}))

    @expose("/convert", methods=["POST"])
    @protect()
    @permission_name("convert")
    @maps_domain_errors
    def convert(self):
        """Convert a lead into a customer.
        ---
        post:
          summary: 线索转化 — a new customer (or the matching one, linked or claimed) under the
            customer dedupe and ownership rules
          body: LeadConvertRequest
          answer: LeadConverted
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.LeadConvertRequest)
        result = leads.convert_lead(current_user(), data["lead_id"],
                                    into_pool=data.get("into_pool", False),
                                    pool_id=data.get("pool_id"),
                                    confirm_duplicates=data.get("confirm_duplicates", False),
                                    opportunity=data.get("opportunity"))
        return self.response(200, **schemas.dump(schemas.LeadConverted, result))
