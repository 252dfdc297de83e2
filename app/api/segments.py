"""/api/v1/segments/ (客户分群): list, get, create, edit, delete and a masked preview of the
members; every rule in app.services.marketing_segments."""
from __future__ import annotations

import json

from flask import request
from flask_appbuilder.api import expose
from flask_appbuilder.security.decorators import permission_name, protect
from sqlalchemy import select

from app.api import schemas, segment_schemas as ss
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.extensions import db
from app.models.marketing import Segment
from app.security import RES_SEGMENT, current_user
from app.services import marketing_segments as segments
from app.services.errors import ValidationFailed, tr
from app.services.ids import MAX_PK

MAX_PAGE_SIZE = 100


def segment_dict(row: Segment) -> dict:
    try:
        criteria = json.loads(row.criteria or "{}")
    except ValueError:
        criteria = {}
    creator = row.created_by
    return {"id": row.id, "name": row.name, "description": row.description,
            "record_type": row.record_type, "include_pool": bool(row.include_pool),
            "criteria": criteria if isinstance(criteria, dict) else {},
            "created_by": {"id": creator.id, "username": creator.username} if creator else None,
            "created_at": row.created_at, "updated_at": row.updated_at}


def _answer(row: Segment) -> dict:
    return schemas.dump(ss.MarketingSegmentResult, {"id": row.id, "result": segment_dict(row)})


def _int_arg(name: str, minimum: int, maximum: int, default: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise ValidationFailed({name: tr("%(field)s must be an integer from %(min)s to %(max)s",
                                         field=name, min=minimum, max=maximum)})
    return int(raw)


def _refuse_unknown_args(*known: str) -> None:
    unknown = sorted(set(request.args) - set(known))
    if unknown:
        raise ValidationFailed({k[:100]: tr("Unknown parameter") for k in unknown})


def _body(schema) -> dict:
    data = load_body(schema)
    if "criteria" in data:
        data["criteria"] = data["criteria"] or {}
    return data


class SegmentApi(DocumentedApi):
    resource_name = "segments"
    class_permission_name = RES_SEGMENT
    openapi_spec_tag = "Segments"
    openapi_spec_component_schemas = schemas.COMPONENTS + ss.COMPONENTS

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def list_segments(self):
        """The segments.
        ---
        get:
          summary: 客户分群列表 — every segment (admins and marketing), newest first, keyset
            pages by id
          parameters:
          - {in: query, name: after, schema: {type: integer, minimum: 1, maximum: 2147483647},
             description: the next_after of the previous page}
          - {in: query, name: page_size, schema: {type: integer, minimum: 1, maximum: 100}}
          answer: MarketingSegmentPage
          errors: [400, 401, 403]
        """
        _refuse_unknown_args("after", "page_size")
        actor = current_user()
        segments._require_manager(actor)
        size = _int_arg("page_size", 1, MAX_PAGE_SIZE, 50)
        after = _int_arg("after", 1, MAX_PK, 0) or None
        q = select(Segment).order_by(Segment.id.desc()).limit(size + 1)
        if after is not None:
            q = q.where(Segment.id < after)
        from sqlalchemy.orm import joinedload

        rows = list(db.session.execute(q.options(joinedload(Segment.created_by))).scalars())
        more = len(rows) > size
        rows = rows[:size]
        return self.response(200, **schemas.dump(ss.MarketingSegmentPage, {
            "count": len(rows), "next_after": rows[-1].id if more and rows else None,
            "result": [segment_dict(r) for r in rows]}))

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def get_segment(self, pk: int):
        """One segment.
        ---
        get:
          summary: 客户分群 — its criteria and whose scope it is evaluated in
          answer: MarketingSegmentResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(segments.get_segment(current_user(), pk)))

    @expose("/<int:pk>/preview", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def preview(self, pk: int):
        """The segment's members now: how many, and the first ones, masked.
        ---
        get:
          summary: 分群预览 — the member count and the first members the caller may read,
            contact details masked by the caller's rule
          parameters:
          - {in: query, name: limit, schema: {type: integer, minimum: 1, maximum: 100}}
          answer: MarketingSegmentPreview
          errors: [400, 401, 403, 404]
        """
        _refuse_unknown_args("limit")
        actor = current_user()
        row = segments.get_segment(actor, pk)
        limit = _int_arg("limit", 1, segments.PREVIEW_MAX, 20)
        return self.response(200, **schemas.dump(ss.MarketingSegmentPreview, {
            "count": segments.count(row), "result": segments.preview(row, actor, limit)}))

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def create(self):
        """Add a segment.
        ---
        post:
          summary: 新增客户分群 — evaluated in the caller's data scope
          body: MarketingSegmentCreate
          answer: MarketingSegmentResult
          errors: [400, 401, 403]
        """
        return self.response(200, **_answer(segments.create_segment(
            current_user(), _body(ss.MarketingSegmentCreate))))

    @expose("/<int:pk>", methods=["PUT"])
    @protect()
    @permission_name("write")
    @maps_domain_errors
    def update(self, pk: int):
        """Edit a segment.
        ---
        put:
          summary: 编辑客户分群 — the fields given; criteria replaced whole
          body: MarketingSegmentUpdate
          answer: MarketingSegmentResult
          errors: [400, 401, 403, 404]
        """
        return self.response(200, **_answer(segments.update_segment(
            current_user(), pk, _body(ss.MarketingSegmentUpdate))))

    @expose("/<int:pk>", methods=["DELETE"])
    @protect()
    @permission_name("delete")
    @maps_domain_errors
    def delete(self, pk: int):
        """Delete a segment.
        ---
        delete:
          summary: 删除客户分群 — refused while a planned or running campaign uses it
          answer: MarketingSegmentDeleted
          errors: [401, 403, 404, 409]
        """
        segments.delete_segment(current_user(), pk)
        return self.response(200, **schemas.dump(ss.MarketingSegmentDeleted, {"id": pk}))
