"""Schemathesis over the whole OpenAPI spec (/api/v1/_openapi): every operation, as an admin
and as a rep, must never answer 5xx, answer only the statuses and content types it
declares, and match its declared response schema. Derandomized with a bounded number of
examples per operation so `make test` is deterministic; `make fuzz` runs the long random
version (GUISHU_FUZZ_EXAMPLES, GUISHU_FUZZ_SEED)."""
from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance,
                                               response_schema_conformance,
                                               status_code_conformance)

from tests.conftest import api_token

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES = int(os.environ.get("GUISHU_FUZZ_EXAMPLES", "12"))
SEED = os.environ.get("GUISHU_FUZZ_SEED")  # unset: derandomized (the same cases every run)


def _fresh_context_wsgi(app):
    """Each request in its own app context, as in production (see FreshContextClient)."""
    def wsgi(environ, start_response):
        with app.app_context():
            return app.wsgi_app(environ, start_response)
    return wsgi


def _spec(app, token) -> dict:
    client = app.test_client()
    resp = client.get("/api/v1/_openapi", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def _run(app, username, modes):
    token = api_token(app.test_client(), username)
    schema = schemathesis.openapi.from_dict(_spec(app, token))
    schema.app = _fresh_context_wsgi(app)
    headers = {"Authorization": f"Bearer {token}"}
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 32
    for operation in operations:
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=mode)

            @settings(max_examples=EXAMPLES, derandomize=SEED is None, database=None,
                      deadline=None, suppress_health_check=list(HealthCheck),
                      print_blob=False)
            @given(case=strategy)
            def check(case):
                case.call_and_validate(headers=headers, checks=CHECKS)

            if SEED is not None:
                check = seed(int(SEED))(check)
            try:
                check()
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure
                failures.append(f"{operation.label} [{mode.value}]: {_summary(exc)}")
    assert not failures, "\n\n".join(failures)


def _summary(exc: BaseException) -> str:
    """Each distinct failure's first lines and its curl line, not the whole report."""
    parts = getattr(exc, "exceptions", None) or [exc]
    out = []
    for part in parts:
        lines = [l for l in str(part).splitlines() if l.strip()]
        curl = [l.strip() for l in str(exc).splitlines() if l.strip().startswith("curl ")]
        out.append(" | ".join(lines[:8] + curl[:1]))
    return "\n    ".join(out)


@pytest.mark.parametrize("role", ["admin", "rep"])
def test_every_operation_conforms(app, org, role, db):
    username = getattr(org, role).username
    _run(app, username, [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
