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


# Names url_for takes for itself: FAB's sort and page links pass a page's query arguments to
# url_for as keywords, so a link built on a page called with ?endpoint=… raised TypeError (500).
# No Guishu page reads an argument of these names.
URL_FOR_NAMES = ("endpoint", "_method", "_external", "_anchor", "_scheme")
RESERVED_MESSAGE = "is not a query argument any page takes"


def reject_reserved_args():
    if request.path.startswith("/api/"):
        return None  # the APIs read their own arguments and build no such links
    for name in URL_FOR_NAMES:
        if name in request.args:
            abort(400, description=f"{name} {RESERVED_MESSAGE}")
    return None


def register_boundary(app: Flask) -> None:
    app.before_request(reject_unclean_text)
    app.before_request(reject_reserved_args)
