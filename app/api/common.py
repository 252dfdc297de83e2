"""What every endpoint of app/api/ shares: reading the JSON body and its id fields, and one
mapping of a domain error to its JSON response ({"code": ..., "message": ...} with the
error's 4xx status)."""
from __future__ import annotations

import functools
import json

from flask import Flask, jsonify, request
from flask_appbuilder.api import BaseApi
from werkzeug.exceptions import HTTPException, default_exceptions

from app.api import schemas, spec
from app.services.errors import N_, GuishuError, ValidationFailed, tr


class DocumentedApi(BaseApi):
    """Our APIs: the error responses are the Error schema, the schemas of app.api.schemas are
    the spec's components, and the endpoints' YAML docstrings name them in the shorthand of
    app.api.spec (body / answer / errors), expanded here."""
    allow_browser_login = True
    responses = schemas.ERROR_RESPONSES
    openapi_spec_component_schemas = schemas.COMPONENTS

    def operation_helper(self, path=None, operations=None, methods=None, func=None, **kwargs):
        super().operation_helper(path=path, operations=operations, methods=methods, func=func,
                                 **kwargs)
        for method in methods or ():
            if operations.get(method.lower()):
                spec.expand(operations[method.lower()], path)


def error_response(exc: GuishuError):
    response = jsonify(exc.to_dict())
    response.status_code = exc.status
    return response


def maps_domain_errors(endpoint):
    """An endpoint method whose domain errors answer as error_response, not a 500."""
    @functools.wraps(endpoint)
    def run(*args, **kwargs):
        try:
            return endpoint(*args, **kwargs)
        except GuishuError as exc:
            return error_response(exc)
    return run


def load_body(schema) -> dict:
    """The request's JSON object read by `schema` (app.api.schemas): the fields it declares,
    checked; ValidationFailed naming each bad or unknown field."""
    return schemas.load(schema, json_body())


def json_body() -> dict:
    """The request's JSON object; ValidationFailed for anything else."""
    data = request.get_json(silent=True) if request.is_json else None
    if not isinstance(data, dict):
        raise ValidationFailed({"body": tr("The request body must be a JSON object")})
    return data


# Errors raised outside the endpoints (routing, the request parser, an unexpected exception):
# under /api/ they answer the same {"code", "message"} JSON as a domain error, never HTML.
HTTP_ERRORS = {  # (code, msgid)
    400: ("invalid", N_("Invalid request")),
    401: ("unauthorized", N_("Please sign in first")),
    403: ("forbidden", N_("Not allowed")),
    404: ("not_found", N_("No such resource")),
    405: ("method_not_allowed", N_("Method not supported")),
    413: ("too_large", N_("The request body is too large")),
    500: ("server_error", N_("Internal server error")),
}


# Statuses FAB and flask-jwt-extended answer themselves, beside those above.
_OTHER_CODES = {409: "conflict", 422: "invalid"}


def register_json_errors(app: Flask) -> None:
    """JSON for HTTP errors under /api/; the pages keep their handler (or Flask's page)."""
    for status in HTTP_ERRORS:
        page = app.error_handler_spec[None].get(status, {}).get(default_exceptions[status])
        app.register_error_handler(status, functools.partial(_http_error, status, page))
    app.after_request(_give_error_a_code)


def _give_error_a_code(response):
    """FAB's own endpoints and its JWT checks answer {"message"} or {"msg"} (security/login,
    refresh, menu, a missing token): they gain the `code` of our error shape, and `message`
    where they only had `msg`, keeping what they said."""
    if response.status_code < 400 or not request.path.startswith("/api/") or \
            not response.is_json:
        return response
    body = response.get_json(silent=True)
    if not isinstance(body, dict) or "code" in body:
        return response
    status = response.status_code
    code = HTTP_ERRORS.get(status, (_OTHER_CODES.get(status, "error"),))[0]
    extra = {"code": code}
    if "message" not in body:
        extra["message"] = body.get("msg") or tr((HTTP_ERRORS.get(status)
                                                 or ("", N_("The request failed")))[1])
    elif not isinstance(body["message"], str):
        # FAB's schema errors ({"message": {"field": ["…"]}}): fields and one message text.
        body = dict(body)
        problems = schemas.flatten_messages(body["message"])
        body["message"] = (tr("; ").join(f"{k}: {v}" for k, v in problems.items())
                           or tr("Invalid request"))
        body.setdefault("fields", problems)
    response.set_data(json.dumps({**extra, **body}, ensure_ascii=False))
    return response


def _http_error(status: int, page, exc: HTTPException):
    if not request.path.startswith("/api/"):
        return page(exc) if page else exc
    code, message = HTTP_ERRORS[status]
    response = jsonify(code=code, message=tr(message))
    response.status_code = status
    if status == 405 and getattr(exc, "valid_methods", None):
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response
