"""/api/v1/transfers/: apply, list, show, approve, reject, cancel."""
from __future__ import annotations

from flask_appbuilder.api import BaseApi, expose, rison
from flask_appbuilder.security.decorators import permission_name, protect

from app.api.common import (json_body, json_body_or_empty, maps_domain_errors, optional_id,
                             optional_int)
from app.extensions import db
from app.models import TransferRequest
from app.security import RES_TRANSFER, current_user
from app.services import transfers
from app.services.errors import NotFound, ValidationFailed


class TransferApi(BaseApi):
    resource_name = "transfers"
    class_permission_name = RES_TRANSFER
    allow_browser_login = True
    openapi_spec_tag = "Transfers"

    @expose("/", methods=["POST"])
    @protect()
    @permission_name("request")
    @maps_domain_errors
    def create(self):
        """Apply: {customer_ids, to_owner_id, reason, trigger, handover_note, keep_read_days?}."""
        data = json_body()
        to_owner = optional_id(data, "to_owner_id")
        if to_owner is None:
            raise ValidationFailed({"to_owner_id": "请选择接收人"})
        keep = optional_int(data, "keep_read_days") or 0
        t = transfers.create_transfer(
            current_user(), data.get("customer_ids"), to_owner, str(data.get("reason") or ""),
            str(data.get("trigger") or "other"), str(data.get("handover_note") or ""), keep)
        return self.response(200, id=t.id, result=transfers.to_dict(t))

    @expose("/", methods=["GET"])
    @protect()
    @permission_name("read")
    @rison({"type": "object"})
    @maps_domain_errors
    def list_mine(self, **kwargs):
        """Requests the user is party to or approves (all for admins and auditors), newest
        first: ?q=(page:0,page_size:50); count is the total over every page."""
        args = kwargs["rison"]
        page = transfers.requests_for(current_user(), None, args.get("page", 0),
                                      args.get("page_size", transfers.PAGE_SIZE))
        return self.response(200, count=page.total, page=page.page, page_size=page.page_size,
                             result=[transfers.to_dict(t) for t in page.items])

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
        return self.response(200, result=transfers.to_dict(self._visible(pk)))

    @expose("/<int:pk>/approve", methods=["POST"])
    @protect()
    @permission_name("approve")
    @maps_domain_errors
    def approve(self, pk: int):
        self._visible(pk)
        note = (json_body_or_empty().get("note") or "")
        t = transfers.approve(current_user(), pk, str(note))
        return self.response(200, result=transfers.to_dict(t))

    @expose("/<int:pk>/reject", methods=["POST"])
    @protect()
    @permission_name("approve")
    @maps_domain_errors
    def reject(self, pk: int):
        self._visible(pk)
        t = transfers.reject(current_user(), pk, str(json_body().get("note") or ""))
        return self.response(200, result=transfers.to_dict(t))

    @expose("/<int:pk>/cancel", methods=["POST"])
    @protect()
    @permission_name("request")
    @maps_domain_errors
    def cancel(self, pk: int):
        self._visible(pk)
        return self.response(200, result=transfers.to_dict(transfers.cancel(current_user(), pk)))
