"""CSRF on the JSON API: a state-changing call authenticated by the browser's session cookie
must carry the page's CSRF token in the X-CSRFToken header (DESIGN.md "CSRF").

The API blueprints are exempt from CSRFProtect's own check, which would answer an HTML page
and refuse JWT clients too; this hook applies the same token check to the session's calls
only and answers in the API's error shape. A request with a bearer token is left to the JWT
check: browsers never attach one on their own, and a cross-site page cannot add the header
without CORS, which the app does not grant.
"""
from __future__ import annotations

from flask import request
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from app.api.common import error_response
from app.extensions import csrf
from app.services.errors import N_, GuishuError, tr

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# FAB's JWT login and refresh: no session signs them in, so there is no session to ride.
# The webhooks (app.api.hooks) authenticate by API key only and never read the session.
NO_SESSION_BLUEPRINTS = frozenset({"SecurityApi", "HooksApi", "SmsApi", "TicketMailApi",
                                   "CtiEventsApi"})
REFUSED = N_("Missing or invalid CSRF token: an API call that changes data with a browser "
             "session must carry the page's csrf_token in the X-CSRFToken header; programs use "
             "JWT (Authorization: Bearer)")


def require_csrf_token_with_the_session():
    """400 {"code": "csrf"} for a state-changing /api/ call that the session cookie
    authenticates and that lacks a valid X-CSRFToken header."""
    if (request.method not in STATE_CHANGING or not request.path.startswith("/api/")
            or request.endpoint is None  # no such route: routing answers 404 / 405
            or request.blueprint in NO_SESSION_BLUEPRINTS
            or request.headers.get("Authorization", "").startswith("Bearer ")
            or not current_user.is_authenticated):  # no session: @protect answers 401
        return None
    try:
        csrf.protect()
    except CSRFError:
        return error_response(GuishuError(tr(REFUSED), code="csrf"))
    return None
