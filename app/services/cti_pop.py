"""Screen pop (来电弹屏): the card an agent's browser shows while the phone rings.

A ringing call is announced on a Redis pub/sub channel of its agent (`publish_ringing`), so
whichever web node holds the agent's Server-Sent Events stream hears it; the message carries
the call's id only, never customer data. The browser then asks for its cards (`recent_pops`
→ `card_for`), read in the agent's own data scope and masked by the one contact details rule
(app.services.masking). When Redis is away nothing is lost: the browser polls the same cards.

Who may read what on a card:
- the customer in the agent's scope (or in a pool the agent belongs to): name, holder, grade,
  category, the last follow-ups, open tickets and opportunities (each list in its own scope),
  and the links 记跟进 / 新建工单 where the agent may use them;
- a customer outside that scope: only that it exists and who holds it (owner or pool name);
- a lead: the same split by the lead scope;
- an unknown number: the number and 新建线索 (the lead form prefilled with it, whose save
  runs the lead dedupe check).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Callable, Iterator, Optional

from flask import url_for
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from app.extensions import db
from app.models import Contact, Customer, Lead, Ownership, User
from app.models.activity import FOLLOWUP_CHANNELS, FollowUp
from app.models.cti import CtiCall
from app.models.customer import utcnow
from app.security import (RES_FOLLOWUP, RES_LEAD, RES_TICKET, can_see_customer,
                          can_write_customer, cannot_own)
from app.services.masking import rule_for, shown

log = logging.getLogger(__name__)

CHANNEL_PREFIX = "guishu:cti:pop:"
POP_STATES = ("ringing", "answered")
POP_WINDOW = timedelta(minutes=2)   # how far back the polling fallback looks
MAX_POPS = 10                       # cards per poll
FOLLOWUPS_SHOWN = 3
TITLES_SHOWN = 3

# (permission, resource) -> whether the actor's roles grant it (the security manager's
# has_access in a request; tests pass their own).
Permitted = Callable[[str, str], bool]


def channel_of(user_id: int, client=None) -> str:
    """The user's channel. Pub/sub ignores Redis's database numbers: the channel names the
    database, so two deployments (or test runs) sharing one server on different databases
    never hear each other's pops."""
    db_number = 0
    if client is not None:
        db_number = int(client.connection_pool.connection_kwargs.get("db", 0) or 0)
    return f"{CHANNEL_PREFIX}{db_number}:{int(user_id)}"


def publish_ringing(call: CtiCall) -> bool:
    """Announce a committed ringing call to its agent's browsers. Never raises: with Redis
    away the browsers' polling finds the call (logged, False)."""
    if call is None or not call.agent_id or not call.id:
        return False
    message = json.dumps({"call_id": int(call.id), "agent_id": int(call.agent_id)})
    try:
        from app.redis_conn import get_redis

        client = get_redis()
        client.publish(channel_of(call.agent_id, client), message)
    except Exception as exc:  # noqa: BLE001 - a pop is a convenience, the event is stored
        log.warning("screen pop for call %s not published (Redis: %s); polling will show it",
                    call.id, exc)
        return False
    return True


def pop_events(redis_client, user_id: int, max_seconds: float, heartbeat: float = 15.0,
               wait: float = 1.0) -> Iterator[str]:
    """The Server-Sent Events of one stream: `pop` (data {"call_id"}) for each ringing call
    published for `user_id`, a comment every `heartbeat` seconds (proxies keep the
    connection), and the end after `max_seconds` so a worker is never held forever (the
    browser's EventSource reconnects by itself). Subscribed before the first chunk is
    yielded; the subscription is closed however the stream ends. Without Redis: one
    `unavailable` event, and the browser polls."""
    pubsub = None
    try:
        pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel_of(user_id, redis_client))
    except Exception as exc:  # noqa: BLE001 - no Redis: tell the browser to poll
        log.warning("screen pop stream without Redis (%s): the browser polls", exc)
        if pubsub is not None:
            _close(pubsub)
        yield "retry: 30000\nevent: unavailable\ndata: {}\n\n"
        return
    try:
        yield "retry: 3000\n: connected\n\n"
        deadline = time.monotonic() + max_seconds
        beat = time.monotonic() + heartbeat
        while True:
            now = time.monotonic()
            if now >= deadline:
                yield "event: bye\ndata: {}\n\n"
                return
            try:
                message = pubsub.get_message(timeout=max(0.0, min(wait, deadline - now)))
            except Exception as exc:  # noqa: BLE001 - Redis went away mid-stream
                log.warning("screen pop stream lost Redis (%s): the browser polls", exc)
                yield "event: unavailable\ndata: {}\n\n"
                return
            if message and message.get("type") == "message":
                call_id = _call_id(message.get("data"))
                if call_id is not None:
                    yield f"event: pop\ndata: {json.dumps({'call_id': call_id})}\n\n"
                    beat = time.monotonic() + heartbeat
                    continue
            if time.monotonic() >= beat:
                yield ": heartbeat\n\n"
                beat = time.monotonic() + heartbeat
    finally:
        _close(pubsub)


def _call_id(data) -> Optional[int]:
    try:
        value = json.loads(data).get("call_id")
    except (TypeError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _close(pubsub) -> None:
    try:
        pubsub.close()
    except Exception:  # noqa: BLE001 - closing a dead connection
        pass


# --- the cards -----------------------------------------------------------------------------
def recent_pops(actor: User, since: int = 0, limit: int = MAX_POPS) -> list[CtiCall]:
    """The actor's own calls ringing or in conversation, started in the last two minutes,
    after call id `since` (a pop is the agent's own: agent_id is the actor)."""
    return list(db.session.execute(
        select(CtiCall).where(CtiCall.agent_id == actor.id, CtiCall.id > since,
                              CtiCall.state.in_(POP_STATES),
                              CtiCall.started_at >= utcnow() - POP_WINDOW)
        .order_by(CtiCall.id).limit(limit)).scalars())


@dataclass
class Card:
    """What the pop shows. kind: customer | lead | unknown | hidden (a record outside the
    agent's scope: its kind in `record`, its holder, nothing else)."""

    call_id: int
    state: str
    state_label: str
    direction: str
    number: str
    started_at: object
    kind: str
    record: str = ""                 # customer | lead
    record_id: Optional[int] = None  # only when the agent may read it
    name: str = ""
    url: str = ""
    contact_name: str = ""
    holder: str = ""                 # the owner's name, or the pool's
    holder_kind: str = ""            # owner | pool
    grade: str = ""
    category: str = ""
    status_label: str = ""           # a lead's status
    followups: list = field(default_factory=list)
    tickets: dict = field(default_factory=lambda: {"count": 0, "items": []})
    opportunities: dict = field(default_factory=lambda: {"count": 0, "items": []})
    links: list = field(default_factory=list)   # [{"key", "label", "url"}]

    def to_dict(self) -> dict:
        out = dict(self.__dict__)
        out["started_at"] = self.started_at.isoformat() if self.started_at else None
        return out


def card_for(actor: User, call: CtiCall, permitted: Permitted) -> Card:
    """The card of `call` as `actor` may read it (see the module's docstring)."""
    card = Card(call_id=call.id, state=call.state, state_label=call.state_label,
                direction=call.direction, number="", started_at=call.started_at,
                kind="unknown")
    if call.customer_id:
        _customer_card(actor, call, card, permitted)
    elif call.lead_id:
        _lead_card(actor, call, card)
    else:
        # No record holds the number: nothing to mask; the agent needs it for the lead.
        card.number = national(call.number_e164) or call.caller or ""
        if permitted("can_write", RES_LEAD) and not cannot_own(actor):
            card.links.append({"key": "lead", "label": _t("Create a lead"),
                               "url": url_for("LeadView.add", **{_number_field(card.number):
                                                                 card.number})})
    return card


def _customer_card(actor: User, call: CtiCall, card: Card, permitted: Permitted) -> None:
    from app.services.pool import member_pool_ids

    row = db.session.execute(
        select(Customer.id, Customer.name, Ownership.grade, Ownership.category,
               Ownership.owner_id, Ownership.pool_id)
        .outerjoin(Ownership, Ownership.customer_id == Customer.id)
        .where(Customer.id == call.customer_id)).first()
    if row is None:
        card.kind = "unknown"
        return
    card.record = "customer"
    card.holder, card.holder_kind = _holder(row.owner_id, row.pool_id)
    card.number = _shown_number(call.number_e164,
                                rule_for(actor)(row.owner_id, row.pool_id, row.id))
    in_scope = can_see_customer(actor, row.id)
    pool_member = row.pool_id is not None and row.pool_id in member_pool_ids(actor)
    if not (in_scope or pool_member):
        card.kind = "hidden"
        return
    card.kind = "customer"
    card.record_id, card.name = row.id, row.name
    card.grade, card.category = row.grade or "", _category_label(row.category)
    card.url = (url_for("CustomerView.show", pk=row.id) if in_scope
                else url_for("PoolCustomerView.show", pk=row.id))
    if call.contact_id:
        card.contact_name = db.session.execute(select(Contact.name).where(
            Contact.id == call.contact_id)).scalar() or ""
    card.followups = _followups(row.id)
    card.tickets = _open_tickets(actor, row.id)
    card.opportunities = _open_opportunities(actor, row.id)
    if permitted("can_write", RES_FOLLOWUP) and can_write_customer(actor, row.id):
        card.links.append({"key": "followup", "label": _t("Log follow-up"),
                           "url": url_for("FollowUpView.add", _flt_0_customer=row.id)})
    if permitted("can_write", RES_TICKET) and in_scope:
        card.links.append({"key": "ticket", "label": _t("New ticket"),
                           "url": url_for("TicketView.add", customer_id=row.id)})


def _lead_card(actor: User, call: CtiCall, card: Card) -> None:
    from app.services.leads import contact_rule, lead_scope_clause

    lead = db.session.get(Lead, call.lead_id)
    if lead is None:
        card.kind = "unknown"
        return
    card.record = "lead"
    o = lead.ownership
    owner_id, pool_id = (o.owner_id, o.pool_id) if o else (None, None)
    if o is not None and o.owner is not None:
        card.holder, card.holder_kind = o.owner.display_name, "owner"
    elif o is not None and o.pool is not None:
        card.holder, card.holder_kind = o.pool.name, "pool"
    # A lead's number as the lead pages show it (lead pools' admins read it in full).
    card.number = _shown_number(call.number_e164, contact_rule(actor)(owner_id, pool_id))
    visible = db.session.execute(select(Lead.id).where(
        Lead.id == lead.id, lead_scope_clause(actor))).first() is not None
    if not visible:
        card.kind = "hidden"
        return
    card.kind = "lead"
    card.record_id, card.name, card.status_label = lead.id, lead.name, lead.status_label
    card.url = url_for("LeadView.show", pk=lead.id)


def _number_field(number: str) -> str:
    """The lead form's field for a number: a mainland mobile, else the phone."""
    return "mobile" if len(number) == 11 and number.startswith("1") else "phone"


def _holder(owner_id: Optional[int], pool_id: Optional[int]) -> tuple[str, str]:
    from app.models import Pool

    if owner_id is not None:
        user = db.session.get(User, owner_id)
        return (user.display_name if user else ""), "owner"
    if pool_id is not None:
        return (db.session.execute(select(Pool.name).where(Pool.id == pool_id)).scalar()
                or ""), "pool"
    return "", ""


def national(e164: Optional[str]) -> str:
    """A Chinese E.164 number as the pages write it (13800138000, 02162345678), so that
    masked it reads 138****8000 like everywhere else; other countries stay E.164."""
    if not e164:
        return ""
    if e164.startswith("+86"):
        rest = e164[3:]
        return rest if rest.startswith("1") else "0" + rest
    return e164


def _shown_number(e164: Optional[str], full: bool) -> str:
    return shown("mobile", national(e164), full) or ""


CATEGORY_LABELS = {"potential": _l("Potential customer"), "active": _l("Active customer"),
                   "silent": _l("Silent customer")}


def _category_label(category: Optional[str]) -> str:
    return str(CATEGORY_LABELS.get(category, category or ""))


def _followups(customer_id: int) -> list[dict]:
    rows = db.session.execute(
        select(FollowUp.happened_at, FollowUp.channel, FollowUp.content, User)
        .outerjoin(User, User.id == FollowUp.user_id)
        .where(FollowUp.customer_id == customer_id)
        .order_by(FollowUp.happened_at.desc(), FollowUp.id.desc())
        .limit(FOLLOWUPS_SHOWN)).all()
    return [{"at": r.happened_at, "channel": str(FOLLOWUP_CHANNELS.get(r.channel, r.channel)),
             "content": _short(r.content), "by": r[3].display_name if r[3] else ""}
            for r in rows]


def _open_tickets(actor: User, customer_id: int) -> dict:
    from app.models.service_desk import OPEN_TICKET_STATUSES, Ticket
    from app.services.tickets import scope_clause

    where = (Ticket.customer_id == customer_id, Ticket.status.in_(OPEN_TICKET_STATUSES),
             scope_clause(actor))
    count = db.session.execute(select(func.count()).select_from(Ticket).where(*where)).scalar()
    items = db.session.execute(select(Ticket.id, Ticket.subject).where(*where)
                               .order_by(Ticket.id.desc()).limit(TITLES_SHOWN)).all()
    return {"count": int(count or 0),
            "items": [{"title": r.subject, "url": url_for("TicketView.show", pk=r.id)}
                      for r in items]}


def _open_opportunities(actor: User, customer_id: int) -> dict:
    from app.models import Opportunity
    from app.services.opportunities import scope_clause

    where = (Opportunity.customer_id == customer_id, Opportunity.status == "open",
             scope_clause(actor))
    count = db.session.execute(select(func.count()).select_from(Opportunity)
                               .where(*where)).scalar()
    items = db.session.execute(select(Opportunity.id, Opportunity.title).where(*where)
                               .order_by(Opportunity.id.desc()).limit(TITLES_SHOWN)).all()
    return {"count": int(count or 0),
            "items": [{"title": r.title, "url": url_for("OpportunityView.show", pk=r.id)}
                      for r in items]}


def _short(text: Optional[str], limit: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _t(msgid: str) -> str:
    from app.services.errors import tr

    return tr(msgid)
