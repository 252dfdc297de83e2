"""/api/v1/_openapi: the spec of every API, readable by every signed-in user.

FAB's own OpenApi view, with two differences: the error responses every operation names
(#/components/responses/4xx) are the API's Error schema ({code, message, fields?}), whichever
API is described first; and FAB's built-in endpoints (menu, JWT login and refresh) are
described as they answer, so the whole spec holds when a client or schemathesis checks
every answer against it.
"""
from __future__ import annotations

from flask import current_app
from flask_appbuilder.api import BaseApi, expose, protect, safe
from flask_appbuilder.api.manager import OpenApi

from app.api.schemas import ERROR_RESPONSES


class GuishuOpenApi(OpenApi):
    class_permission_name = "OpenApi"  # the permission FAB's view had: can_get on OpenApi

    @expose("/<version>/_openapi")
    @protect()
    @safe
    def get(self, version):
        """The OpenAPI spec.
        ---
        get:
          summary: The OpenAPI 3 spec of every API of a version (v1)
          parameters:
          - in: path
            schema:
              type: string
            name: version
            required: true
          responses:
            200:
              description: The OpenAPI spec
              content:
                application/json:
                  schema:
                    type: object
            401:
              $ref: '#/components/responses/401'
            404:
              $ref: '#/components/responses/404'
        """
        api_spec = self._create_api_spec(version)
        for status, response in ERROR_RESPONSES.items():
            api_spec.components.response(status, response)
        found = False
        for base_api in current_app.appbuilder.baseviews:
            if isinstance(base_api, BaseApi) and base_api.version == version:
                base_api.add_api_spec(api_spec)
                found = True
        if not found:
            return self.response_404()
        spec = api_spec.to_dict()
        _describe_fab_endpoints(spec)
        return self.response(200, **spec)


_MENU_ITEM = {"type": "object", "properties": {
    "name": {"type": "string"}, "label": {"type": "string"}, "icon": {"type": "string"},
    "url": {"type": "string"},
    "childs": {"type": "array", "items": {"oneOf": [
        {"type": "object"},
        {"type": "string", "description": "\"-\": a separator"}]}}}}


def _describe_fab_endpoints(spec: dict) -> None:
    """FAB's docstrings for its own endpoints, corrected to what they answer."""
    paths = spec.get("paths", {})
    menu = paths.get("/api/v1/menu/", {}).get("get")
    if menu:
        menu["responses"]["200"]["content"]["application/json"]["schema"] = {
            "type": "object", "properties": {"result": {"type": "array", "items": _MENU_ITEM}}}
    # JWT login and refresh also answer 400 (a bad body) and 422 (the wrong kind of token).
    for path in ("/api/v1/security/login", "/api/v1/security/refresh"):
        operation = paths.get(path, {}).get("post")
        if operation:
            for status in ("400", "401", "422"):
                operation["responses"].setdefault(
                    status, {"$ref": f"#/components/responses/{status}"})
    version = paths.get("/api/{version}/_openapi", {}).get("get")
    if version:
        for parameter in version.get("parameters", []):
            parameter["required"] = True
