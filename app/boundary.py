"""What every request passes before any view: text that cannot be stored is refused at the
door, naming the field, as a 400 (JSON under /api/, Flask's 400 page elsewhere)."""
from __future__ import annotations

from typing import Optional

from flask import Flask, abort, request

from app.services.errors import ValidationFailed
from app.services.text import UNCLEAN_MESSAGE, first_unclean_field, is_unclean


def unclean_request_field() -> Optional[str]:
    """The first query argument, form field or JSON value holding a NUL byte or a lone
    surrogate; None when the request is clean. Uploaded files are the import's to read."""
    for source in (request.args, request.form):
        for key, values in source.lists():
            if is_unclean(key) or any(is_unclean(v) for v in values):
                return key
    if request.is_json:
        return first_unclean_field(request.get_json(silent=True))
    return None


def reject_unclean_text():
    field = unclean_request_field()
    if field is None:
        return None
    if request.path.startswith("/api/"):
        from app.api.common import error_response

        return error_response(ValidationFailed({field: f"{field} {UNCLEAN_MESSAGE}"}))
    abort(400, description=f"{field} {UNCLEAN_MESSAGE}")


def register_boundary(app: Flask) -> None:
    app.before_request(reject_unclean_text)
