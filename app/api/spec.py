"""The pieces of the OpenAPI every operation repeats, written once: a JSON body or answer
naming a component schema, the error responses (the Error schema), the id path parameters.

The endpoints' YAML docstrings say what is particular to them in three short keys, which
`expand` turns into OpenAPI before FAB adds the operation to the spec:

    post:
      summary: 领取 — …
      body: ClaimRequest          # requestBody: #/components/schemas/ClaimRequest, required
      answer: CustomerIds         # 200: that schema (answer_status: 201 for another status)
      errors: [400, 401, 403, 404, 409]

`optional_body:` is a body that may be left out. Path parameters ({pk}, {user_id}) are record
ids (1..MAX_PK) unless the docstring declares them.
"""
from __future__ import annotations

import re
from typing import Any

from app.services.ids import MAX_PK

ID_SCHEMA = {"type": "integer", "minimum": 1, "maximum": MAX_PK}


def schema_ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def json_content(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


def json_answer(description: str, schema: dict) -> dict:
    return {"description": description, "content": json_content(schema)}


def error_refs(*statuses: int) -> dict:
    """The responses of these statuses, each the Error schema (#/components/responses/…)."""
    return {str(s): {"$ref": f"#/components/responses/{s}"} for s in statuses}


def id_parameter(name: str) -> dict:
    return {"in": "path", "name": name, "required": True, "schema": dict(ID_SCHEMA)}


def expand(operation: dict[str, Any], path: str) -> None:
    """Turn the docstring's shorthand keys into OpenAPI, in place."""
    for key, required in (("body", True), ("optional_body", False)):
        if key in operation:
            operation["requestBody"] = {"required": required,
                                        "content": json_content(schema_ref(operation.pop(key)))}
    responses = operation.setdefault("responses", {})
    if "answer" in operation:
        name = operation.pop("answer")
        status = str(operation.pop("answer_status", 200))
        responses[status] = json_answer(operation.get("summary", name), schema_ref(name))
    for status, ref in error_refs(*operation.pop("errors", ())).items():
        responses.setdefault(status, ref)
    declared = {p.get("name") for p in operation.get("parameters", []) if p.get("in") == "path"}
    for name in re.findall(r"{(\w+)}", path):
        if name not in declared:
            operation.setdefault("parameters", []).append(id_parameter(name))
