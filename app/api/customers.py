"""/api/v1/customers/: FAB ModelRestApi with the data scope, writes through the services."""
from __future__ import annotations

from flask_appbuilder.api import ModelRestApi
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import select

from app.api.common import error_response, json_body, maps_domain_errors
from app.extensions import db
from app.models import Customer, Ownership, Pool, User
from app.security import METHOD_PERMISSIONS, RES_CUSTOMER, current_user, scope_filters
from app.services import customers as customer_service
from app.services.customers import CUSTOMER_FIELDS
from app.services.errors import GuishuError, OutOfScope
from app.services.ids import parse_optional_id, parse_pk

_COLUMNS = ["id", "name", "customer_type", "industry", "province", "city", "address", "phone",
            "phone_e164", "mobile", "mobile_e164", "email", "email_norm", "source",
            "product_line", "birth_year", "birth_month", "birth_day", "birthday_lunar", "notes",
            "created_at", "updated_at"]


def ownership_fields(customer_ids: list[int]) -> dict[int, dict]:
    """owner / pool / locked / won / category / grade for each id, in one query."""
    rows = db.session.execute(
        select(Ownership, User.username, Pool.name)
        .outerjoin(User, User.id == Ownership.owner_id)
        .outerjoin(Pool, Pool.id == Ownership.pool_id)
        .where(Ownership.customer_id.in_(customer_ids))).all()
    out = {}
    for own, username, pool_name in rows:
        out[own.customer_id] = {
            "owner": {"id": own.owner_id, "username": username} if own.owner_id else None,
            "pool": {"id": own.pool_id, "name": pool_name} if own.pool_id else None,
            "locked": own.locked, "won": own.won, "category": own.category, "grade": own.grade,
            "acquired_at": own.acquired_at.isoformat() if own.acquired_at else None,
        }
    return out


class CustomerApi(ModelRestApi):
    resource_name = "customers"
    datamodel = SQLAInterface(Customer)
    class_permission_name = RES_CUSTOMER
    method_permission_name = METHOD_PERMISSIONS
    allow_browser_login = True
    base_filters = scope_filters("id")
    base_order = ("id", "desc")
    list_columns = show_columns = _COLUMNS
    search_columns = ["name", "customer_type", "industry", "province", "city", "source",
                      "product_line", "mobile_e164", "phone_e164", "email_norm", "created_at"]
    order_columns = ["id", "name", "created_at", "updated_at", "province", "city"]
    # The schema documents the body; writes are parsed by the service (which also takes "birthday").
    add_columns = edit_columns = [f for f in CUSTOMER_FIELDS if f != "birthday"]
    openapi_spec_tag = "Customers"
    # Every column gets a description: FAB translates a missing one as gettext(""), which
    # returns the catalogue header.
    description_columns = {
        "name": "客户名称 (company or person name)",
        "customer_type": "company | person",
        "industry": "行业", "province": "省份", "city": "城市", "address": "地址",
        "phone": "电话, any format; stored with its E.164 form in phone_e164",
        "mobile": "手机, must be a mobile number; E.164 form in mobile_e164",
        "email": "邮箱; lower-cased form in email_norm",
        "source": "来源", "product_line": "产品线",
        "birthday_lunar": "true if the birthday (write it as \"birthday\": \"YYYY-MM-DD\" or "
                          "\"MM-DD\") is a lunar date",
        "notes": "备注",
    }

    # -- reads: add the ownership fields integrations rely on -------------------------------
    def pre_get(self, data):
        item = data.get("result") or {}
        extra = ownership_fields([int(data["id"])]) if "id" in data else {}
        item.update(extra.get(int(data["id"]), {}))

    def pre_get_list(self, data):
        extra = ownership_fields([int(i) for i in data.get("ids", [])])
        for pk, item in zip(data.get("ids", []), data.get("result", [])):
            item.update(extra.get(int(pk), {}))

    # -- writes go through app.services.customers ------------------------------------------
    def _dump(self, customer: Customer) -> dict:
        item = {c: getattr(customer, c) for c in _COLUMNS}
        for key in ("created_at", "updated_at"):
            item[key] = item[key].isoformat() if item[key] else None
        item.update(ownership_fields([customer.id]).get(customer.id, {}))
        return item

    def post_headless(self):
        try:
            data = dict(json_body())
            owner_id = data.pop("owner_id", None)
            pool_id = data.pop("pool_id", None)
            confirm = data.pop("confirm_duplicates", False) is True
            customer = customer_service.create_customer(
                current_user(), data,
                owner_id=parse_optional_id(owner_id, "owner_id"),
                pool_id=parse_optional_id(pool_id, "pool_id"),
                confirm_duplicates=confirm)
        except GuishuError as exc:
            return error_response(exc)
        return self.response(201, id=customer.id, result=self._dump(customer))

    def _pk(self, pk) -> int:
        value = parse_pk(pk)
        if value is None:
            raise OutOfScope("客户不存在或不在您的数据权限内")
        return value

    def get_headless(self, pk, **kwargs):
        try:
            value = self._pk(pk)
        except OutOfScope:
            return self.response_404()
        from app.services.merge import visible_survivor

        survivor = visible_survivor(current_user(), value)
        if survivor is not None:
            # 308: a merged customer's id answers with the survivor's URL.
            from flask import jsonify

            response = jsonify(code="merged", survivor_id=survivor,
                               message=f"客户 #{value} 已合并到 #{survivor}")
            response.status_code = 308
            response.headers["Location"] = f"/api/v1/customers/{survivor}"
            return response
        return super().get_headless(pk, **kwargs)

    @maps_domain_errors
    def put_headless(self, pk):
        data = dict(json_body())
        confirm = data.pop("confirm_duplicates", False) is True
        customer = customer_service.update_customer(current_user(), self._pk(pk), data,
                                                    confirm_duplicates=confirm)
        return self.response(200, id=customer.id, result=self._dump(customer))

    @maps_domain_errors
    def delete_headless(self, pk):
        customer_service.delete_customer(current_user(), self._pk(pk))
        return self.response(200, message="OK", id=int(pk))
