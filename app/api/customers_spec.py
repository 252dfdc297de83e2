"""The OpenAPI of /api/v1/customers/ where FAB's generated docs differ from what the
endpoints answer: ids are integers, a customer carries its ownership, writes answer the whole
customer, errors are the Error schema, a merged id answers 308. FAB merges these over its
docstrings (ModelRestApi.openapi_spec_methods)."""
from __future__ import annotations

from app.api.spec import error_refs, id_parameter, json_answer, json_content, schema_ref


def _errors(*statuses: int) -> dict:
    return error_refs(400, 401, 403, *statuses)


def _obj(**properties) -> dict:
    return {"type": "object", "additionalProperties": False, "properties": properties}


_STRINGS = {"type": "array", "items": {"type": "string"}}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_PK = id_parameter("pk")
_FIELD_INFO = {"type": "array", "items": _obj(
    name={"type": "string"}, label={"type": "string"}, description={"type": "string"},
    type={"type": "string"}, required={"type": "boolean"}, unique={"type": "boolean"},
    validate=_STRINGS)}


def _q(schema: str) -> dict:
    return {"in": "query", "name": "q", "content": json_content(schema_ref(schema))}


OPENAPI_SPEC_METHODS = {
    "get_list": {"get": {
        "summary": "客户列表 — the customers in the caller's data scope, newest first",
        "description": "`q` takes FAB's filters, order and paging, plus `search`: a quick "
                       "search by name or contact name (2 characters or more, any part of "
                       "it: 华为, 王芳), phone in any format (138 0013 8000, "
                       "+86 138-0013-8000) or e-mail (any case). A text that cannot be "
                       "searched (1 character, over 100, a NUL) answers 400 naming `search`. "
                       "The `name` filter `ct` (contains) uses the same keys and the same "
                       "2-character minimum.",
        "parameters": [_q("customer_list_query")],
        "responses": {
            "200": json_answer("One page of customers", _obj(
                label_columns=_LABELS, description_columns=_LABELS, list_columns=_STRINGS,
                list_title={"type": "string"}, order_columns=_STRINGS,
                ids={"description": "The customers' ids, in the order of result",
                     "type": "array", "items": {"type": "integer"}},
                count={"description": "The total over every page; with a cursor (after / "
                                      "before) exact up to 10,000, see count_capped",
                       "type": "integer"},
                count_capped={"description": "With a cursor: true when there are more than "
                                             "count (10,000) rows", "type": "boolean"},
                next={"description": "Cursor of the page after this one (q=(after:…)); null "
                                     "on the last page", "type": "string", "nullable": True},
                prev={"description": "Cursor of the page before this one (q=(before:…)); "
                                     "null on the first page", "type": "string",
                      "nullable": True},
                result={"type": "array", "items": schema_ref("CustomerApi.get_list")})),
            **_errors()}}},
    "get": {"get": {
        "summary": "客户 — one customer in the caller's data scope; a merged customer's id "
                   "answers 308 with the survivor's URL",
        "parameters": [_PK, _q("get_item_schema")],
        "responses": {
            "200": json_answer("The customer", _obj(
                label_columns=_LABELS, description_columns=_LABELS, show_columns=_STRINGS,
                show_title={"type": "string"}, id={"type": "integer"},
                result=schema_ref("CustomerApi.get"))),
            "308": json_answer("Merged into another customer (Location names it)", schema_ref("Merged")),
            **_errors(404)}}},
    "post": {"post": {
        "summary": "新建客户 — through the dedupe check; owner_id or pool_id places it "
                   "(default: the creator)",
        "requestBody": {"required": True, "content": json_content(schema_ref("CustomerApi.post"))},
        "responses": {"201": json_answer("The new customer", schema_ref("CustomerResult")),
                      **_errors(404, 409)}}},
    "put": {"put": {
        "summary": "修改客户 — the fields given, through the dedupe check",
        "parameters": [_PK],
        "requestBody": {"required": True, "content": json_content(schema_ref("CustomerApi.put"))},
        "responses": {"200": json_answer("The customer after the change", schema_ref("CustomerResult")),
                      **_errors(404, 409)}}},
    "delete": {"delete": {
        "summary": "删除客户 — for those who may delete it; audited",
        "parameters": [_PK],
        "responses": {"200": json_answer("Deleted", schema_ref("CustomerDeleted")), **_errors(404, 409)}}},
    "info": {"get": {
        "summary": "The fields a client may write and the list's filters (FAB metadata)",
        "parameters": [_q("get_info_schema")],
        "responses": {
            "200": json_answer("Metadata", _obj(
                add_columns=_FIELD_INFO, edit_columns=_FIELD_INFO,
                add_title={"type": "string"}, edit_title={"type": "string"},
                filters={"type": "object", "additionalProperties": {
                    "type": "array", "items": _obj(name={"type": "string"},
                                                   operator={"type": "string"})}},
                permissions=_STRINGS)),
            **_errors()}}},
}
