"""/api/v1/transfers/: apply, list, show, approve, reject, cancel."""
from __future__ import annotations

from flask_appbuilder.api import expose, rison
from flask_appbuilder.security.decorators import permission_name, protect

from app.api import schemas
from app.api.common import DocumentedApi, load_body, maps_domain_errors
from app.extensions import db
from app.models import TransferRequest
from app.security import RES_TRANSFER, current_user
from app.services import transfers
from app.services.errors import NotFound


def _answer(t: TransferRequest, **extra) -> dict:
    return schemas.dump(schemas.TransferResult, {**extra, "result": transfers.to_dict(t)})


class TransferApi(DocumentedApi):
    resource_name = "transfers"
    class_permission_name = RES_TRANSFER
    openapi_spec_tag = "Transfers"
    apispec_parameter_schemas = {
        "TransferPageQuery": schemas.page_query(transfers.MAX_PAGE_SIZE)}

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("request")
    @maps_domain_errors
    def create(self):
        """Apply for a transfer.
        ---
        post:
          summary: 转移申请 — ask to move customers to another owner (reviewed, then handed over)
          body: TransferRequestBody
          answer: TransferResult
          errors: [400, 401, 403, 404, 409]
        """
        data = load_body(schemas.TransferRequestBody)
        t = transfers.create_transfer(
            current_user(), data["customer_ids"], data["to_owner_id"], data.get("reason") or "",
            data["trigger"], data.get("handover_note") or "", data.get("keep_read_days") or 0)
        return self.response(200, **_answer(t, id=t.id))

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @rison(schemas.PAGE_KEYS)
    @maps_domain_errors
    def list_mine(self, **kwargs):
        """The requests the user is party to or approves.
        ---
        get:
          summary: 转移申请列表 — the requests the user is party to or approves (all for admins and auditors),
            newest first; count is the total over every page
          parameters:
          - in: query
            name: q
            description: 'rison: (page:0,page_size:50)'
            content:
              application/json:
                schema: {$ref: '#/components/schemas/TransferPageQuery'}
          answer: TransferPage
          errors: [400, 401, 403]
        """
        args = kwargs.get("rison") or {}
        page = transfers.requests_for(current_user(), None, args.get("page", 0),
                                      args.get("page_size", transfers.PAGE_SIZE))
        return self.response(200, **schemas.dump(schemas.TransferPage, {
            "count": page.total, "page": page.page, "page_size": page.page_size,
            "result": [transfers.to_dict(t) for t in page.items]}))

    def _visible(self, pk: int) -> TransferRequest:
        t = db.session.get(TransferRequest, pk)
        if t is None or not transfers.visible_to(current_user(), t):
            raise NotFound("转移申请不存在")
        return t

    @expose("/<int:pk>", methods=["GET"])
    @protect()
    @permission_name("read")
    @maps_domain_errors
    def show(self, pk: int):
        """One request.
        ---
        get:
          summary: 转移申请 — one request the user may see
          answer: TransferResult
          errors: [401, 403, 404]
        """
        return self.response(200, **_answer(self._visible(pk)))

    @expose("/<int:pk>/approve", methods=["POST"])
    @protect()
    @permission_name("approve")
    @maps_domain_errors
    def approve(self, pk: int):
        """Approve a request.
        ---
        post:
          summary: 审批通过 — the first or second approval; the last one hands over
          optional_body: DecisionRequest
          answer: TransferResult
          errors: [400, 401, 403, 404, 409]
        """
        self._visible(pk)
        data = load_body(schemas.DecisionRequest) if _has_body() else {}
        t = transfers.approve(current_user(), pk, data.get("note") or "")
        return self.response(200, **_answer(t))

    @expose("/<int:pk>/reject", methods=["POST"])
    @protect()
    @permission_name("approve")
    @maps_domain_errors
    def reject(self, pk: int):
        """Reject a request.
        ---
        post:
          summary: 驳回 — reject with a note
          body: DecisionRequest
          answer: TransferResult
          errors: [400, 401, 403, 404, 409]
        """
        self._visible(pk)
        data = load_body(schemas.DecisionRequest)
        t = transfers.reject(current_user(), pk, data.get("note") or "")
        return self.response(200, **_answer(t))

    @expose("/<int:pk>/cancel", methods=["POST"])
    @protect()
    @permission_name("request")
    @maps_domain_errors
    def cancel(self, pk: int):
        """Cancel one's own request.
        ---
        post:
          summary: 撤回 — the applicant withdraws a pending request
          answer: TransferResult
          errors: [401, 403, 404, 409]
        """
        self._visible(pk)
        return self.response(200, **_answer(transfers.cancel(current_user(), pk)))


def _has_body() -> bool:
    """An optional body: absent or empty is none; anything sent is read (and checked)."""
    from flask import request

    return bool(request.get_data(cache=True))
