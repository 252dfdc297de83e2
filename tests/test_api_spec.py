"""The OpenAPI spec describes the API as it answers: every operation declares its path
parameters, its body and its responses; every body is read with the schema the spec names
(a declared field is accepted, an undeclared one refused, naming it); errors are the Error
schema; timestamps carry their offset; list ids are integers; every signed-in user reads the
spec."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from tests.conftest import api_token

ROLES = ["admin", "manager", "rep", "staff", "auditor", "marketing"]
WRITES = ("post", "put", "patch")
# The only writes without a body: withdrawing one's own request names nothing else.
NO_BODY = {("post", "/api/v1/transfers/{pk}/cancel"), ("post", "/api/v1/security/refresh"),
           ("post", "/api/v1/tasks/{pk}/done"), ("post", "/api/v1/tasks/{pk}/cancel"),
           ("post", "/api/v1/tasks/{pk}/reopen"),
           # a campaign's launch and finish name nothing but the campaign
           ("post", "/api/v1/campaigns/{pk}/launch"), ("post", "/api/v1/campaigns/{pk}/finish")}
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


@pytest.fixture
def spec(api):
    resp = api("admin")("GET", "/api/v1/_openapi")
    assert resp.status_code == 200
    return resp.get_json()


def _operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def _resolve(spec, node):
    while isinstance(node, dict) and "$ref" in node:
        kind, name = node["$ref"].split("/")[-2:]
        node = spec["components"][kind][name]
    return node


@pytest.mark.parametrize("role", ROLES)
def test_every_signed_in_user_reads_the_spec(app, org, role):
    client = app.test_client()
    token = api_token(client, getattr(org, role).username)
    resp = client.get("/api/v1/_openapi", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    assert "/api/v1/pool/claim" in resp.get_json()["paths"]


@pytest.mark.parametrize("role", ROLES)
def test_every_signed_in_user_opens_the_swagger_ui(clients, role):
    resp = getattr(clients, role).get("/swagger/v1")
    assert resp.status_code == 200
    assert "/api/v1/_openapi" in resp.get_data(as_text=True)


def test_the_spec_needs_a_sign_in(app, org):
    resp = app.test_client().get("/api/v1/_openapi")
    assert resp.status_code == 401
    assert resp.get_json()["code"] == "unauthorized"


def test_every_operation_declares_parameters_body_and_responses(spec):
    operations = list(_operations(spec))
    assert len(operations) >= 32
    for path, method, operation in operations:
        label = f"{method.upper()} {path}"
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), label
        assert all(p["required"] for p in operation.get("parameters", [])
                   if p["in"] == "path"), label
        if method in WRITES and (method, path) not in NO_BODY:
            assert "requestBody" in operation, label
        responses = operation["responses"]
        assert any(code.startswith("2") for code in responses), label
        assert any(code.startswith("4") for code in responses), label
        for code, response in responses.items():
            if code[0] in "45":
                schema = _resolve(spec, response)["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}, (label, code)


def test_error_schema_is_code_message_fields(spec):
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["code", "message"]
    assert error["properties"]["fields"]["additionalProperties"] == {"type": "string"}


def _body_schemas(spec):
    """(method, path, the resolved body schema) of every operation with a JSON body."""
    for path, method, operation in _operations(spec):
        body = operation.get("requestBody")
        # The webhooks authenticate by API key, so a JWT caller is refused before the body
        # is read (tests/test_api_hooks.py and test_services_campaign_sending.py check their
        # bodies).
        # The call events (tests/test_api_cti_events.py, test_cti_vendors.py) likewise.
        # A file upload is multipart (tests/test_ticket_attachments.py reads it).
        if body and path.startswith("/api/v1/") and "/security/" not in path \
                and "/hooks/" not in path and path != "/api/v1/sms/inbound" \
                and path != "/api/v1/tickets/inbound-mail" \
                and path != "/api/v1/cti/events" and "/api/v1/cti/vendors/" not in path \
                and "application/json" in body["content"]:
            yield method, path, _resolve(spec, body["content"]["application/json"]["schema"])


@pytest.fixture
def pk_of(api, org):
    """A path with {pk} filled by a record the admin may act on."""
    resp = api("rep1")("POST", "/api/v1/transfers/", json={
        "customer_ids": [org.c_rep.id], "to_owner_id": org.rep2.id, "reason": "客户要求"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    transfer_id = resp.get_json()["id"]
    resp = api("admin")("POST", "/api/v1/tasks/", json={"subject": "规格测试",
                                                       "due_at": "2026-12-01 15:00"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    task_id = resp.get_json()["id"]
    resp = api("admin")("POST", "/api/v1/targets/", json={
        "user_id": org.rep.id, "period_kind": "month", "period_start": "2026-10",
        "won_amount": "1000"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    target_id = resp.get_json()["id"]

    def fill(path):
        pk = transfer_id if path.startswith("/api/v1/transfers/") else (
            task_id if path.startswith("/api/v1/tasks/") else (
                target_id if path.startswith("/api/v1/targets/") else (
                    org.c_rep.id if path.startswith("/api/v1/customers/") else 1)))
        return path.replace("{pk}", str(pk))
    return fill


def test_every_body_refuses_an_undeclared_field_naming_it(api, spec, pk_of):
    call = api("admin")
    checked = 0
    for method, path, schema in _body_schemas(spec):
        assert "zz_undeclared" not in schema.get("properties", {})
        url = pk_of(path)
        resp = call(method.upper(), url, json={"zz_undeclared": 1})
        assert resp.status_code == 400, (method, path, resp.get_data(as_text=True))
        assert resp.get_json()["fields"].get("zz_undeclared") == "不能修改或不存在的字段", path
        checked += 1
    assert checked >= 16


def test_every_declared_body_field_is_read_not_refused_as_unknown(api, spec, pk_of):
    """The code reads each field the spec declares (a field the spec names but the loader
    does not know would be refused as unknown)."""
    call = api("admin")
    for method, path, schema in _body_schemas(spec):
        url = pk_of(path)
        for name in schema.get("properties", {}):
            if schema["properties"][name].get("readOnly"):
                continue
            resp = call(method.upper(), url, json={name: None})
            if resp.status_code == 400:
                assert resp.get_json().get("fields", {}).get(name) != "不能修改或不存在的字段", \
                    (method, path, name)


def _assert_rfc3339(value):
    assert RFC3339.match(value), value
    assert dt.datetime.fromisoformat(value).utcoffset() is not None


def test_timestamps_carry_their_offset_in_business_time(api, org, app):
    call = api("rep1")
    listing = call("GET", "/api/v1/customers/").get_json()
    item = listing["result"][0]
    _assert_rfc3339(item["created_at"])
    assert item["created_at"].endswith("+08:00")  # GUISHU_TIMEZONE=Asia/Shanghai
    shown = call("GET", f"/api/v1/customers/{org.c_rep.id}").get_json()["result"]
    _assert_rfc3339(shown["updated_at"])
    _assert_rfc3339(shown["acquired_at"])
    chosen = call("GET", "/api/v1/customers/?q=(columns:!(id,created_at))").get_json()
    _assert_rfc3339(chosen["result"][0]["created_at"])
    made = call("POST", "/api/v1/customers/", json={"name": "偏移时间测试有限公司"})
    assert made.status_code == 201
    _assert_rfc3339(made.get_json()["result"]["created_at"])


def test_transfer_timestamps_carry_their_offset(api, org):
    resp = api("rep1")("POST", "/api/v1/transfers/", json={
        "customer_ids": [org.c_rep.id], "to_owner_id": org.rep2.id, "reason": "客户要求"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    _assert_rfc3339(resp.get_json()["result"]["created_at"])


def test_task_timestamps_carry_their_offset(api, org):
    call = api("rep1")
    made = call("POST", "/api/v1/tasks/", json={"subject": "偏移", "due_at": "2026-12-01 15:00"})
    assert made.status_code == 200, made.get_data(as_text=True)
    task = made.get_json()["result"]
    _assert_rfc3339(task["created_at"])
    assert task["due_at"] == "2026-12-01T15:00:00+08:00"
    done = call("POST", f"/api/v1/tasks/{task['id']}/done").get_json()["result"]
    _assert_rfc3339(done["done_at"])
    listed = call("GET", "/api/v1/tasks/").get_json()["result"]
    _assert_rfc3339(listed[0]["due_at"])


def test_the_task_operations_are_in_the_spec(spec):
    paths = spec["paths"]
    assert set(paths["/api/v1/tasks/"]) == {"get", "post"}
    assert set(paths["/api/v1/tasks/{pk}"]) == {"get", "put"}
    for verb in ("done", "cancel", "reopen"):
        assert set(paths[f"/api/v1/tasks/{{pk}}/{verb}"]) == {"post"}
    body = paths["/api/v1/tasks/"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/TaskCreate"}


def test_the_target_operations_are_in_the_spec(spec):
    paths = spec["paths"]
    assert set(paths["/api/v1/targets/"]) == {"get", "post"}
    assert set(paths["/api/v1/targets/{pk}"]) == {"get", "put", "delete"}
    assert set(paths["/api/v1/targets/attainment"]) == {"get"}
    body = paths["/api/v1/targets/"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/TargetCreate"}
    target = spec["components"]["schemas"]["Target"]["properties"]
    assert {"attainment", "period_start", "period_end", "won_amount", "new_customers"} <= \
        set(target)


def test_target_timestamps_carry_their_offset(api, org):
    made = api("admin")("POST", "/api/v1/targets/", json={
        "department_id": org.east.id, "period_kind": "quarter", "period_start": "2026-Q4",
        "new_customers": 10})
    assert made.status_code == 200, made.get_data(as_text=True)
    _assert_rfc3339(made.get_json()["result"]["created_at"])
    _assert_rfc3339(made.get_json()["result"]["updated_at"])


def test_list_ids_are_integers_as_declared(api, spec):
    body = api("rep1")("GET", "/api/v1/customers/").get_json()
    assert body["ids"] and all(isinstance(i, int) for i in body["ids"])
    schema = _resolve(spec, spec["paths"]["/api/v1/customers/"]["get"]["responses"]["200"])
    declared = schema["content"]["application/json"]["schema"]["properties"]["ids"]
    assert declared["items"] == {"type": "integer"}


def test_customer_answers_declare_their_ownership_fields(spec):
    shown = spec["components"]["schemas"]["CustomerApi.get"]["properties"]
    for name in ("owner", "pool", "locked", "won", "category", "grade", "acquired_at"):
        assert name in shown


@pytest.mark.parametrize("path", ["/api/v1/customers/", "/api/v1/transfers/",
                                  "/api/v1/policies/", "/api/v1/tasks/",
                                  "/api/v1/targets/"])
@pytest.mark.parametrize("q", ["(page:x)", "(page_size:0)", "(colour:red)", "(page:-1)",
                               "not-rison("])
def test_every_list_answers_an_invalid_q_with_400(api, path, q):
    resp = api("manager1")("GET", f"{path}?q={q}")
    assert resp.status_code == 400, (path, q, resp.get_data(as_text=True))
    assert resp.get_json()["code"] == "invalid"


def test_policies_list_pages(api):
    call = api("admin")
    everything = call("GET", "/api/v1/policies/").get_json()
    first = call("GET", "/api/v1/policies/?q=(page:0,page_size:1)").get_json()
    assert first["count"] == everything["count"] >= 1
    assert first["result"] == everything["result"][:1]


def test_fab_schema_errors_answer_the_error_shape(app, org):
    resp = app.test_client().post("/api/v1/security/login", json={
        "username": "x", "password": "y", "provider": "ldap"})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "invalid"
    assert isinstance(body["message"], str) and "provider" in body["fields"]


def test_the_sms_inbound_webhook_is_in_the_spec(spec):
    """Issue 16 names /api/v1/sms/inbound: API key auth, the SmsReply body, 200 / 202."""
    op = spec["paths"]["/api/v1/sms/inbound"]["post"]
    assert op["security"] == [{"machine_key_bearer": []}, {"machine_key_header": []}]
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/SmsReply")
    assert {"200", "202", "400", "401", "403", "413", "429"} <= set(op["responses"])
    answer = spec["components"]["schemas"]["SmsReplyResult"]["properties"]
    assert set(answer) == {"matched", "customer_id", "opted_out"}


def test_the_ticket_operations_are_in_the_spec(spec):
    """Issue 17 names /api/v1/tickets/ (CRUD, assign, reply, note, status) and
    /api/v1/tickets/inbound-mail (API key); attachments upload as multipart."""
    paths = spec["paths"]
    assert set(paths["/api/v1/tickets/"]) == {"get", "post"}
    assert set(paths["/api/v1/tickets/{pk}"]) == {"get", "patch"}
    for verb in ("assign", "reply", "note", "status"):
        assert set(paths[f"/api/v1/tickets/{{pk}}/{verb}"]) == {"post"}
    assert set(paths["/api/v1/tickets/{pk}/attachments"]) == {"get", "post"}
    upload = paths["/api/v1/tickets/{pk}/attachments"]["post"]["requestBody"]["content"]
    assert list(upload) == ["multipart/form-data"]
    download = paths["/api/v1/tickets/{pk}/attachments/{aid}"]["get"]["responses"]["200"]
    assert list(download["content"]) == ["application/octet-stream"]
    mail = paths["/api/v1/tickets/inbound-mail"]["post"]
    assert mail["security"] == [{"machine_key_bearer": []}, {"machine_key_header": []}]
    body = _resolve(spec, mail["requestBody"]["content"]["application/json"]["schema"])
    assert set(body["properties"]) == {"from", "to", "subject", "text", "message_id",
                                       "in_reply_to"}


def test_the_call_event_operations_are_in_the_spec(spec):
    """Issue 18 names /api/v1/cti/events (signed) and the vendors' pushes: API key auth, their
    bodies, the errors of a webhook."""
    paths = spec["paths"]
    op = paths["/api/v1/cti/events"]["post"]
    assert op["security"][0] == {"machine_key_bearer": [], "guishu_signature": [],
                                 "guishu_timestamp": []}
    assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CtiEvent")
    assert {"200", "400", "401", "403", "413", "429"} <= set(op["responses"])
    event = spec["components"]["schemas"]["CtiEvent"]
    assert {"event_id", "vendor", "type", "occurred_at", "crm_ref", "status"} <= \
        set(event["properties"])
    assert set(event["required"]) == {"event_id", "vendor", "type", "occurred_at"}
    tinet = paths["/api/v1/cti/vendors/tinet"]["post"]
    assert {p["name"] for p in tinet["parameters"]} == {"enterpriseId", "timestamp", "sign"}
    tencent = paths["/api/v1/cti/vendors/tencent"]["post"]
    assert tencent["security"] == [{"tccc_basic": []}]
    assert tencent["responses"]["200"]["content"]["application/json"]["schema"][
        "$ref"].endswith("/TencentPushResult")
    schemes = spec["components"]["securitySchemes"]
    assert {"guishu_signature", "guishu_timestamp", "tccc_basic"} <= set(schemes)
