"""Domain error -> JSON response: {"code": ..., "message": ...} with the error's 4xx status."""
from __future__ import annotations

from flask import jsonify

from app.services.errors import GuishuError


def error_response(exc: GuishuError):
    response = jsonify(exc.to_dict())
    response.status_code = exc.status
    return response
