"""REST API under /api/v1/: load input, call a service, map domain errors to 4xx JSON."""
from __future__ import annotations


def register_apis(appbuilder, csrf) -> None:
    from app.api.customers import CustomerApi

    for api in (CustomerApi,):
        appbuilder.add_api(api)
    # JWT bearer tokens are not sent by browsers on their own, and every write endpoint
    # requires a JSON body (no cross-site form can send one without CORS): no CSRF token here.
    from flask import current_app

    for name, blueprint in current_app.blueprints.items():
        if name in ("CustomerApi", "SecurityApi"):
            csrf.exempt(blueprint)
