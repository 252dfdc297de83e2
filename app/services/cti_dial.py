"""Click-to-call (点击拨号): the actor's phone rings, then the customer's.

`dial` checks that the actor may call the record (a customer in its scope, a pool customer
for a member of that pool — its number masked on the page: the number goes to the dialer,
never back to the browser —, a contact of such a customer, a lead in its scope) and has an
agent number, writes the call (direction out, state dialing, a random `crm_ref` the vendor's
events carry back so they link to this row), audits it and hands (agent_no, number, crm_ref)
to the dialer configured in CTI_DIALER:

- ``fake``: records what it was asked (a Redis list, else memory): the demo and the tests;
- ``http``: POST JSON {agent_no, number, crm_ref} to CTI_DIALER_URL (CTI_DIALER_TIMEOUT s);
- ``package.module:Class``: an object whose ``dial(agent_no, number, crm_ref)`` places it.

A dialer that fails marks the call failed and answers DialerFailed (502).
"""
from __future__ import annotations

import collections
import importlib
import json
import logging
import secrets
import time
from typing import Any, Optional, Protocol

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import Contact, Customer, Lead, Ownership, User
from app.models.cti import CtiCall
from app.models.customer import utcnow
from app.security import (RES_CTI_DIAL, ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_SERVICE_AGENT,
                          ROLE_SERVICE_MANAGER, ROLE_STAFF, can_see_customer, has_role)
from app.services import audit
from app.services.errors import (GuishuError, OutOfScope, PermissionDenied, TooManyRequests,
                                 ValidationFailed, tr)
from app.services.ids import parse_id

log = logging.getLogger(__name__)

TARGETS = ("customer_id", "contact_id", "lead_id")
NUMBERS = ("mobile", "phone")
FAKE_KEY = "guishu:cti:dialer:fake"
FAKE_KEPT = 200
RATE_KEY = "guishu:cti:dial:rate:"
DIALING_ROLES = (ROLE_ADMIN, ROLE_MANAGER, ROLE_REP, ROLE_STAFF, ROLE_SERVICE_AGENT,
                 ROLE_SERVICE_MANAGER)


class DialerFailed(GuishuError):
    """502: the telephony platform did not take the call (down, refused, timed out)."""

    code = "dialer_failed"
    status = 502


class Dialer(Protocol):
    def dial(self, agent_no: str, number: str, crm_ref: str) -> None:
        """Place the call, or raise."""


# --- dialers -------------------------------------------------------------------------------
_memory: collections.deque = collections.deque(maxlen=FAKE_KEPT)


class FakeDialer:
    """Records what it was asked, newest first: in Redis (any web node's request is seen by
    the demo's simulator and the tests), in memory when Redis is away."""

    def dial(self, agent_no: str, number: str, crm_ref: str) -> None:
        entry = json.dumps({"agent_no": agent_no, "number": number, "crm_ref": crm_ref,
                            "at": time.time()})
        try:
            from app.redis_conn import get_redis

            pipe = get_redis().pipeline()
            pipe.lpush(FAKE_KEY, entry)
            pipe.ltrim(FAKE_KEY, 0, FAKE_KEPT - 1)
            pipe.execute()
        except Exception:  # noqa: BLE001 - the fake must work without Redis too
            _memory.appendleft(entry)


def fake_requests() -> list[dict]:
    """What the fake dialer was asked, newest first (Redis, then memory)."""
    out = []
    try:
        from app.redis_conn import get_redis

        out = [json.loads(x) for x in get_redis().lrange(FAKE_KEY, 0, FAKE_KEPT - 1)]
    except Exception:  # noqa: BLE001
        pass
    return out + [json.loads(x) for x in _memory]


class HttpDialer:
    """POSTs {agent_no, number, crm_ref} as JSON to the vendor's (or a bridge's) URL."""

    def __init__(self, url: str, timeout: float = 5.0):
        self.url, self.timeout = url, timeout

    def dial(self, agent_no: str, number: str, crm_ref: str) -> None:
        import requests

        if not self.url:
            raise RuntimeError("CTI_DIALER_URL is not configured")
        response = requests.post(self.url, json={"agent_no": agent_no, "number": number,
                                                 "crm_ref": crm_ref}, timeout=self.timeout)
        if response.status_code >= 300:
            raise RuntimeError(f"the dialer answered HTTP {response.status_code}")


def configured_dialer() -> Dialer:
    name = str(current_app.config.get("CTI_DIALER") or "fake").strip()
    if name == "fake":
        return FakeDialer()
    if name == "http":
        return HttpDialer(str(current_app.config.get("CTI_DIALER_URL") or ""),
                          float(current_app.config.get("CTI_DIALER_TIMEOUT", 5)))
    module, _, cls = name.partition(":")
    if not module or not cls:
        raise DialerFailed(tr("The click-to-call dialer is misconfigured (CTI_DIALER: fake, "
                              "http or package.module:Class)"))
    return getattr(importlib.import_module(module), cls)()


# --- the rule ------------------------------------------------------------------------------
def may_dial(actor: Optional[User]) -> bool:
    """Roles that call customers (not auditors, not marketing)."""
    return has_role(actor, *DIALING_ROLES)


def offers_calls(actor: Optional[User], permitted) -> bool:
    """Whether the pages show the actor 📞 buttons at all: a dialling role with the
    permission and an agent number (without one the API answers 400 naming agent_no)."""
    return (actor is not None and may_dial(actor) and permitted("can_dial", RES_CTI_DIAL)
            and bool((getattr(actor, "agent_no", None) or "").strip()))


def customer_dialable(actor: User, customer_id: int, pool_id: Optional[int] = None) -> bool:
    """A customer in the actor's scope, or in a pool the actor belongs to."""
    from app.services.pool import member_pool_ids

    if can_see_customer(actor, customer_id):
        return True
    if pool_id is None:
        pool_id = db.session.execute(select(Ownership.pool_id).where(
            Ownership.customer_id == customer_id)).scalar()
    return pool_id is not None and pool_id in member_pool_ids(actor)


def lead_dialable(actor: User, lead_id: int) -> bool:
    from app.services.leads import lead_scope_clause

    return db.session.execute(select(Lead.id).where(
        Lead.id == lead_id, lead_scope_clause(actor))).first() is not None


def _target(actor: User, data: dict) -> tuple[dict, Any]:
    """(the call's record ids, the record holding the numbers); refusals name the field."""
    given = [f for f in TARGETS if data.get(f) not in (None, "")]
    if len(given) != 1:
        raise ValidationFailed({given[1] if len(given) > 1 else "customer_id": tr(
            "Give exactly one of customer_id, contact_id or lead_id")})
    name = given[0]
    pk = parse_id(data[name], name)
    why = tr("%(field)s: no such record, or outside your data scope", field=name)
    missing = OutOfScope(why, fields={name: why})
    if name == "lead_id":
        lead = db.session.get(Lead, pk)
        if lead is None or not lead_dialable(actor, pk):
            raise missing
        return {"lead_id": pk}, lead
    if name == "contact_id":
        contact = db.session.get(Contact, pk)
        if contact is None or not customer_dialable(actor, contact.customer_id):
            raise missing
        return {"customer_id": contact.customer_id, "contact_id": pk}, contact
    customer = db.session.get(Customer, pk)
    if customer is None or not customer_dialable(actor, pk):
        raise missing
    return {"customer_id": pk}, customer


def _number_of(record, which: Optional[str]) -> str:
    if which not in (None, "") and which not in NUMBERS:
        raise ValidationFailed({"number": tr("number can only be: %(choices)s",
                                             choices=tr(", ").join(NUMBERS))})
    order = (which,) if which else NUMBERS
    for kind in order:
        value = getattr(record, f"{kind}_e164", None) or getattr(record, kind, None)
        if value:
            return value
    raise ValidationFailed({"number": tr("This record has no number to call")})


def _rate_limited(actor: User) -> None:
    limit = int(current_app.config.get("CTI_DIAL_PER_MINUTE", 10) or 0)
    if limit <= 0:
        return
    key = f"{RATE_KEY}{actor.id}:{int(time.time() // 60)}"
    try:
        from app.redis_conn import get_redis

        pipe = get_redis().pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        used = pipe.execute()[0]
    except Exception:  # noqa: BLE001 - without Redis no limit, rather than no calls
        return
    if int(used) > limit:
        raise TooManyRequests(tr("At most %(n)s calls a minute: wait a moment and dial again",
                                 n=limit), limit=limit)


def dial(actor: Optional[User], data: dict) -> CtiCall:
    """Place a click-to-call for `actor`; `data` holds one of customer_id, contact_id,
    lead_id and optionally number ("mobile" or "phone"; else the mobile, then the phone).
    Returns the committed call (its crm_ref went to the dialer)."""
    if actor is None or not may_dial(actor):
        raise PermissionDenied(tr("Your role may not place calls"))
    ids, record = _target(actor, data)
    agent_no = (getattr(actor, "agent_no", None) or "").strip()
    if not agent_no:
        raise ValidationFailed({"agent_no": tr(
            "You have no agent number (agent_no): an admin sets it on your user form before "
            "you can place calls")})
    number = _number_of(record, data.get("number"))
    _rate_limited(actor)
    call = CtiCall(direction="out", state="dialing", dialed_by_id=actor.id, agent_id=actor.id,
                   agent_no=agent_no, crm_ref=secrets.token_hex(16), number_e164=number,
                   started_at=utcnow(), **ids)
    db.session.add(call)
    db.session.flush()
    audit.record(actor.id, "cti_dial", "cti_call", call.id,
                 {k: (None, v) for k, v in dict(ids, crm_ref=call.crm_ref).items()})
    db.session.commit()
    call_id, crm_ref = call.id, call.crm_ref
    try:
        # After the commit: a slow vendor holds no transaction, and its events can already
        # find the row by crm_ref.
        configured_dialer().dial(agent_no, number, crm_ref)
    except Exception as exc:  # noqa: BLE001 - any dialer failure is the same 502
        log.warning("click-to-call %s failed: %s", call_id, exc)
        db.session.rollback()
        failed = db.session.get(CtiCall, call_id)
        failed.state, failed.result, failed.ended_at = "ended", "failed", utcnow()
        audit.record(actor.id, "cti_dial_failed", "cti_call", call_id,
                     {"result": ("dialing", "failed")})
        db.session.commit()
        raise DialerFailed(tr("The telephony platform did not take the call (%(why)s); try "
                              "again or dial by hand", why=_why(exc, number))) from None
    return call


def _why(exc: Exception, number: str) -> str:
    """The failure in a few words, never with the number in it (it may be a masked one)."""
    text = (exc.message if isinstance(exc, DialerFailed) else str(exc)) or type(exc).__name__
    for form in {number, number.lstrip("+"), number.replace("+86", "")}:
        if form:
            text = text.replace(form, "…")
    return text[:200]
