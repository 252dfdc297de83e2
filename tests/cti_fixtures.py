"""Helpers for the call-event tests: neutral events, a call_events key, signed requests, the
vendors' sample payloads (tests/fixtures/cti/)."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from pathlib import Path

from app.models.customer import utcnow

FIXTURES = Path(__file__).parent / "fixtures" / "cti"
HOTLINE = "4008001234"
_ids = itertools.count(1)


def iso(when: dt.datetime) -> str:
    """A stored (naive UTC) time as RFC 3339 text."""
    return when.replace(microsecond=0).isoformat() + "Z"


def at(seconds_ago: int = 0) -> dt.datetime:
    return (utcnow() - dt.timedelta(seconds=seconds_ago)).replace(microsecond=0)


def event(type_: str, call_id: str = "c1", **fields) -> dict:
    """A neutral event, inbound from the customer's number unless told otherwise."""
    out = {"event_id": f"e{next(_ids)}", "vendor": "acme", "call_id": call_id, "type": type_,
           "direction": "in", "occurred_at": iso(at()), "caller": "13800138000",
           "callee": HOTLINE}
    for key, value in fields.items():
        out[key] = iso(value) if isinstance(value, dt.datetime) else value
    return {k: v for k, v in out.items() if v is not None}


def call_key(org, name: str = "话务平台", purpose: str = "call_events"):
    from app.services import api_keys

    return api_keys.create_key(org.admin, name, purpose)


def signed_headers(key, raw: str, body: bytes, timestamp=None) -> dict:
    from app.services import api_keys

    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"Authorization": f"Bearer {raw}", "Content-Type": "application/json",
            "X-Guishu-Timestamp": stamp,
            "X-Guishu-Signature": api_keys.sign(api_keys.signing_secret(key), stamp, body)}


def post_event(client, key, raw: str, payload, timestamp=None, headers=None):
    body = payload if isinstance(payload, bytes) else json.dumps(
        payload, ensure_ascii=False).encode("utf-8")
    sent = signed_headers(key, raw, body, timestamp)
    sent.update(headers or {})
    return client.post("/api/v1/cti/events", data=body, headers=sent)


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))
