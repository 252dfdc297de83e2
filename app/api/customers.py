"""/api/v1/customers/: FAB ModelRestApi with the data scope, writes through the services."""
from __future__ import annotations

from flask_appbuilder.api import (ModelRestApi, expose, get_item_schema, get_list_schema, rison,
                                  safe)
from flask_appbuilder.const import (API_DESCRIPTION_COLUMNS_RIS_KEY, API_LABEL_COLUMNS_RIS_KEY,
                                    API_LIST_COLUMNS_RIS_KEY, API_LIST_TITLE_RIS_KEY,
                                    API_ORDER_COLUMNS_RIS_KEY, API_SHOW_COLUMNS_RIS_KEY,
                                    API_SHOW_TITLE_RIS_KEY)
from flask_appbuilder.api import merge_response_func
from flask_appbuilder.exceptions import FABException
from flask_appbuilder.security.decorators import permission_name, protect
from sqlalchemy import select

from app.api import schemas
from app.api.common import error_response, json_body, load_body, maps_domain_errors
from app.api.customers_spec import OPENAPI_SPEC_METHODS
from app.extensions import db
from app.models import Customer, Ownership, Pool, User
from app.paging import MAX_CURSOR_CHARS, KeysetInterface
from app.security import METHOD_PERMISSIONS, RES_CUSTOMER, current_user, scope_filters
from app.services import customers as customer_service, masking
from app.services.customers import CUSTOMER_FIELDS
from app.services.errors import NO_SUCH_CUSTOMER, GuishuError, OutOfScope, ValidationFailed, tr
from app.services.ids import MAX_PK, parse_pk
from app.services.times import rfc3339
from app.search_filters import QuickSearchFilter, name_filter_refusal, with_name_search
from app.services import search
from app.time_filters import in_business_time, read_in_business_time

_COLUMNS = ["id", "name", "customer_type", "industry", "province", "city", "address", "phone",
            "phone_e164", "mobile", "mobile_e164", "email", "email_norm", "source",
            "product_line", "birth_year", "birth_month", "birth_day", "birthday_lunar", "notes",
            "created_at", "updated_at"]


# FAB's `q` of a list, strict like the transfers' and policies' lists: an unknown key, a page
# size below 1 or a page past the keys is a 400, not ignored.
LIST_QUERY = {**get_list_schema, "additionalProperties": False, "properties": {
    **get_list_schema["properties"],
    "page": {"type": "integer", "minimum": 0, "maximum": MAX_PK},
    "page_size": {"type": "integer", "minimum": 1},
    # Keyset paging (app.paging): the `next` / `prev` of a previous answer.
    "after": {"type": "string", "maxLength": MAX_CURSOR_CHARS,
              "description": "The `next` cursor of a previous page: the page after it"},
    "before": {"type": "string", "maxLength": MAX_CURSOR_CHARS,
               "description": "The `prev` cursor of a previous page: the page before it"},
    # The quick search (app.services.search): name or contact name (2 characters or more),
    # phone in any format, or e-mail.
    "search": {"type": "string"}}}


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
            "acquired_at": rfc3339(own.acquired_at),
        }
    return out


# The orders a cursor can page by: NOT NULL columns with an index on (column, id).
KEYSET_ORDERS = ("id", "name", "created_at")


class CustomerApi(ModelRestApi):
    resource_name = "customers"
    # A `q` filter on created_at takes business time, or RFC 3339 with its offset.
    datamodel = in_business_time(with_name_search(KeysetInterface(Customer)))
    class_permission_name = RES_CUSTOMER
    method_permission_name = METHOD_PERMISSIONS
    allow_browser_login = True
    # The bodies and answers of app.api.schemas; FAB's generated docs are corrected where
    # they differ from what the endpoints answer (ids are integers, the ownership fields).
    responses = schemas.ERROR_RESPONSES
    openapi_spec_component_schemas = schemas.COMPONENTS
    openapi_spec_methods = OPENAPI_SPEC_METHODS
    apispec_parameter_schemas = {"customer_list_query": LIST_QUERY}
    list_model_schema = schemas.CustomerListItem()
    show_model_schema = schemas.CustomerShown()
    add_model_schema = schemas.CustomerPost()
    edit_model_schema = schemas.CustomerPut()
    base_filters = scope_filters("id")
    base_order = ("id", "desc")
    list_columns = show_columns = _COLUMNS
    search_columns = ["name", "customer_type", "industry", "province", "city", "source",
                      "product_line", "mobile_e164", "phone_e164", "email_norm", "created_at"]
    order_columns = ["id", "name", "created_at", "updated_at", "province", "city"]
    # _info describes the model columns; the body (app.api.schemas.CustomerPost) also takes
    # "birthday" (parsed into its parts) and the ownership of a new customer.
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
    def _handle_filters_args(self, rison_args):
        filters = read_in_business_time(super()._handle_filters_args(rison_args))
        name_filter_refusal(filters)  # "name ct" through the search keys
        if rison_args.get("search") is not None:
            filters.add_filter("id", QuickSearchFilter, rison_args["search"])
        return filters

    @staticmethod
    def _unsearchable(args):
        """The 400 for a search text that cannot be searched (naming the field), or None;
        before any query."""
        try:
            if args.get("search") is not None:
                search.parse(args["search"])
            for f in args.get("filters") or []:
                if isinstance(f, dict) and f.get("col") == "name" and f.get("opr") == "ct":
                    search.parse_name(f.get("value"))
        except ValidationFailed as exc:
            return error_response(exc)
        return None

    def pre_get(self, data):
        item = data.get("result") or {}
        extra = ownership_fields([int(data["id"])]) if "id" in data else {}
        item.update(extra.get(int(data["id"]), {}))
        _with_offsets(item)
        _as_the_reader_may_see(item)

    def pre_get_list(self, data):
        extra = ownership_fields([int(i) for i in data.get("ids", [])])
        for pk, item in zip(data.get("ids", []), data.get("result", [])):
            item.update(extra.get(int(pk), {}))
            _with_offsets(item)
            _as_the_reader_may_see(item)

    # -- writes go through app.services.customers ------------------------------------------
    def _dump(self, customer: Customer) -> dict:
        item = schemas.dump(schemas.Customer, customer)
        item.update(ownership_fields([customer.id]).get(customer.id, {}))
        _as_the_reader_may_see(item)
        return schemas.dump(schemas.CustomerResult, {"id": customer.id, "result": item})

    def post_headless(self):
        try:
            data = _load_customer(schemas.CustomerPost, partial=False)
            owner_id = data.pop("owner_id", None)
            pool_id = data.pop("pool_id", None)
            confirm = data.pop("confirm_duplicates", False)
            customer = customer_service.create_customer(
                current_user(), data, owner_id=owner_id, pool_id=pool_id,
                confirm_duplicates=confirm)
        except GuishuError as exc:
            return error_response(exc)
        return self.response(201, **self._dump(customer))

    def _pk(self, pk) -> int:
        value = parse_pk(pk)
        if value is None:
            raise OutOfScope(tr(NO_SUCH_CUSTOMER))
        return value

    @expose("/", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    @rison(LIST_QUERY)
    @merge_response_func(ModelRestApi.merge_order_columns, API_ORDER_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_list_label_columns, API_LABEL_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_description_columns,
                         API_DESCRIPTION_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_list_columns, API_LIST_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_list_title, API_LIST_TITLE_RIS_KEY)
    def get_list(self, **kwargs):
        """The customers in scope; the rest of its doc is OPENAPI_SPEC_METHODS["get_list"].
        ---
        get:
          summary: 客户列表
        """
        return self.get_list_headless(**kwargs)

    def get_list_headless(self, **kwargs):
        """FAB's list, plus keyset paging: every answer carries `next` (and, past the first
        page, `prev`) cursors; a `q` with `after` or `before` pages by them, at the same cost
        at any depth, and its `count` is exact up to 10,000 (`count_capped` says when it
        stopped there). Without a cursor, `page` pages as before with the exact count."""
        args = kwargs.get("rison", {}) or {}
        refused = self._unsearchable(args)
        if refused is not None:
            return refused
        if "after" not in args and "before" not in args:
            return self._list_with_cursors(super().get_list_headless(**kwargs), args)
        if "page" in args:
            return self.response_400(message=tr("Give either page or a cursor (after / "
                                                "before), not both"))
        response = {}
        self.set_response_key_mappings(response, self.get_list, args)
        try:
            joined_filters = self._handle_filters_args(args)
            order_column, order_direction = self._handle_order_args(args)
        except FABException as exc:
            return self.response_400(message=str(exc))
        if (order_column or "id") not in KEYSET_ORDERS:
            return self.response_400(message=tr(
                "Cursor paging orders by %(columns)s", columns=", ".join(KEYSET_ORDERS)))
        _page, page_size = self._handle_page_args(args)
        page = self.datamodel.page(joined_filters, order_column, order_direction or "asc",
                                   page_size, after=args.get("after"),
                                   before=args.get("before"))
        response["result"] = self.list_model_schema.dump(page.rows, many=True)
        response["ids"] = self.datamodel.get_keys(page.rows)
        response["count"], response["count_capped"] = page.total, page.more_than
        response["next"], response["prev"] = page.next_cursor, page.prev_cursor
        self.pre_get_list(response)
        return self.response(200, **response)

    def _list_with_cursors(self, answer, args):
        """An OFFSET page's answer with the cursor of its last row as `next` (so a client
        can go on by keyset), when there are more rows."""
        body = answer.get_json(silent=True) if answer.status_code == 200 else None
        if not body or not body.get("ids"):
            return answer
        order_column, order_direction = self._handle_order_args(args)
        _page, page_size = self._handle_page_args(args)
        last = db.session.get(Customer, body["ids"][-1])
        page_index = args.get("page", 0) or 0
        more = body["count"] > (page_index + 1) * page_size \
            and (order_column or "id") in KEYSET_ORDERS
        body["next"] = self.datamodel.cursor_of(last, order_column, order_direction or "asc") \
            if more and last is not None else None
        body["prev"] = None
        return self.response(200, **body)

    # FAB routes GET as /<int:pk> but PUT and DELETE as /<pk>: GET /customers/abc answered
    # 405. Every method takes any segment here, and an id that is not one answers 404.
    @expose("/<pk>", methods=["GET"])
    @protect()
    @safe
    @permission_name("get")
    @rison(get_item_schema)
    @merge_response_func(ModelRestApi.merge_show_label_columns, API_LABEL_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_show_columns, API_SHOW_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_description_columns,
                         API_DESCRIPTION_COLUMNS_RIS_KEY)
    @merge_response_func(ModelRestApi.merge_show_title, API_SHOW_TITLE_RIS_KEY)
    def get(self, pk, **kwargs):
        """One customer; the rest of its doc is OPENAPI_SPEC_METHODS["get"].
        ---
        get:
          summary: 客户
        """
        return self.get_headless(pk, **kwargs)

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
                               message=tr("Customer #%(id)s was merged into #%(survivor)s",
                                          id=value, survivor=survivor))
            response.status_code = 308
            response.headers["Location"] = f"/api/v1/customers/{survivor}"
            return response
        return super().get_headless(value, **kwargs)

    @maps_domain_errors
    def put_headless(self, pk):
        customer_id = self._pk(pk)
        data = _load_customer(schemas.CustomerPut, partial=True)
        confirm = data.pop("confirm_duplicates", False)
        customer = customer_service.update_customer(current_user(), customer_id, data,
                                                    confirm_duplicates=confirm)
        return self.response(200, **self._dump(customer))

    @maps_domain_errors
    def delete_headless(self, pk):
        customer_id = self._pk(pk)
        customer_service.delete_customer(current_user(), customer_id)
        return self.response(200, **schemas.dump(schemas.CustomerDeleted,
                                                 {"id": customer_id, "message": "OK"}))


def _load_customer(schema, *, partial: bool) -> dict:
    """The body read by its schema. When the schema refuses, the answer still names every
    bad field, as the form does: the service's checks run over the fields that were read."""
    body = json_body()
    try:
        return load_body(schema)
    except ValidationFailed as refused:
        rest = {k: v for k, v in body.items()
                if k in CUSTOMER_FIELDS and k not in refused.fields}
        try:
            customer_service.clean_customer_data(rest, partial=partial)
        except ValidationFailed as also:
            raise ValidationFailed({**also.fields, **refused.fields}) from None
        raise


def _as_the_reader_may_see(item: dict) -> None:
    """Contact details (and their normalised keys) masked unless the reader may see them in
    full: the one rule of app.services.masking."""
    owner, pool = item.get("owner"), item.get("pool")
    full = masking.current_rule()(owner["id"] if owner else None, pool["id"] if pool else None,
                                  item.get("id"))
    masking.mask_item(item, full)


_TIMESTAMPS = ("created_at", "updated_at", "acquired_at")


def _with_offsets(item: dict) -> None:
    """FAB dumps a list's or a chosen column set's timestamps itself, without the offset:
    they are given theirs (RFC 3339, business time) here."""
    for key in _TIMESTAMPS:
        if item.get(key):
            item[key] = rfc3339(item[key])
