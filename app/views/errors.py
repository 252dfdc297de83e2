"""The web UI's error pages (400, 403, 404, 405): inside the app's layout with its navbar,
in the user's language, with a way home. Registered before the APIs' handlers, which keep
answering JSON under /api/ and hand every other path here (app.api.common)."""
from __future__ import annotations

import logging

from flask import Flask, current_app, g, render_template
from flask_login import current_user
from flask_babel import lazy_gettext as _
from werkzeug.exceptions import HTTPException

from app.extensions import appbuilder

PAGES = {
    400: (_("Bad request"), _("The request could not be understood. Go back, check what was "
                              "entered and try again.")),
    403: (_("No access"), _("Your role does not allow this page or action. Ask an "
                            "administrator if you need it.")),
    404: (_("Not found"), _("There is nothing here: the record may have been removed, merged, "
                            "or moved out of what you may see.")),
    405: (_("Not available this way"), _("This page cannot be used this way. Open it from a "
                                         "link or button of the app.")),
}


def error_page(exc: HTTPException):
    title, text = PAGES[exc.code]
    # Werkzeug's description is English boilerplate unless a caller gave its own reason (the
    # request boundary's "<field> ..." 400): show that one.
    default = type(exc).description
    detail = exc.description if exc.description and exc.description != default else None
    # An error raised before FAB's own before_request (CSRF's 400) finds no g.user, which
    # the navbar reads.
    g.setdefault("user", current_user)
    try:
        html = render_template("guishu/error.html", code=exc.code, title=title, text=text,
                               detail=detail, base_template=appbuilder.base_template,
                               appbuilder=appbuilder, current_app=current_app)
    except Exception:  # the page must not turn a 4xx into a 500: Werkzeug's plain page
        logging.getLogger(__name__).exception("error page for %s failed", exc.code)
        return exc
    return html, exc.code


def register_error_pages(app: Flask) -> None:
    for status in PAGES:
        app.register_error_handler(status, error_page)
