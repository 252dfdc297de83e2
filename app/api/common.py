"""What every endpoint of app/api/ shares: reading the JSON body and its id fields, and one
mapping of a domain error to its JSON response ({"code": ..., "message": ...} with the
error's 4xx status)."""
from __future__ import annotations

import functools

from flask import jsonify, request

from app.services.errors import GuishuError, ValidationFailed


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


def json_body() -> dict:
    """The request's JSON object; ValidationFailed for anything else."""
    data = request.get_json(silent=True) if request.is_json else None
    if not isinstance(data, dict):
        raise ValidationFailed({"body": "请求体必须是 JSON 对象"})
    return data


def json_body_or_empty() -> dict:
    """The request's JSON object, or {} for an endpoint whose body is optional."""
    data = request.get_json(silent=True) if request.is_json else None
    return data if isinstance(data, dict) else {}


def optional_int(data: dict, key: str):
    """data[key] as a non-negative integer, None when absent or empty."""
    value = data.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise ValidationFailed({key: f"{key} 必须是正整数"})
    return int(value)
