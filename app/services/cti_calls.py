"""Reading calls (通话记录): which calls a user may read, the far side's number as they may see
it, the recording link, the call log's pages and the per-rep table.

Which calls (`scope_clause`), one rule for the log, the REST list, the timeline and the
screen pop:
  * admins, back-office staff and auditors: every call (auditors read-only, as everywhere);
  * everyone else: calls whose customer is in their data scope (app.security, shares and a
    service agent's ticket customers included), calls whose lead they may see
    (app.services.leads), and calls they took or dialled themselves; a sales manager also
    the unmatched calls (unknown numbers) taken by the people whose customers they see;
  * marketing only: only calls they took or dialled (they have no call log page).

The number (`number_shown`): a customer's call follows the contact details rule of that
customer (app.services.masking.rule_for), a lead's call the leads' rule; an unknown number is
shown in full to admins, staff and to the user who took or dialled the call, masked to
everyone else. The recording link (`recording_link`): only to those who may read the
customer (or lead), only before the expiry the platform gave.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from sqlalchemy import and_, false, or_, select, true
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import joinedload

from app.extensions import db
from app.models import Customer, Lead, Ownership, User
from app.models.cti import CALL_RESULTS, DIRECTIONS, CtiCall
from app.models.customer import utcnow
from app.models.lead import LeadOwnership
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_STAFF, Scope,
                          has_role, marketing_only, scope_of, visible_customer_ids_select,
                          visible_owner_ids)
from app.services import masking
from app.services.errors import NotFound, PermissionDenied, ValidationFailed, lazy_tr, tr
from app.services.ids import MAX_PK, parse_pk
from app.services.normalize import mask_phone
from app.services.times import from_local, local_date, rfc3339
from app.paging import decode_cursor, encode_cursor

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
NO_SUCH_CALL = "No such call"


# --- which calls -------------------------------------------------------------------------------
def _reads_all(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_STAFF, ROLE_AUDITOR)


def scope_clause(actor: Optional[User]):
    """A WHERE clause on CtiCall: the calls `actor` may read (see the module's rules)."""
    if actor is None or getattr(actor, "id", None) is None:
        return false()
    if _reads_all(actor):
        return true()
    mine = or_(CtiCall.agent_id == actor.id, CtiCall.dialed_by_id == actor.id)
    if marketing_only(actor):
        return mine
    from app.services.leads import visible_lead_ids_select

    parts = [mine]
    customers = visible_customer_ids_select(actor)
    parts.append(CtiCall.customer_id.is_not(None) if customers is None
                 else CtiCall.customer_id.in_(customers))
    leads = visible_lead_ids_select(actor)
    parts.append(CtiCall.lead_id.is_not(None) if leads is None else CtiCall.lead_id.in_(leads))
    scope = scope_of(actor)
    if has_role(actor, ROLE_MANAGER) and scope is not None and scope != Scope.ALL:
        team = sorted(visible_owner_ids(actor, scope))
        parts.append(and_(CtiCall.customer_id.is_(None), CtiCall.lead_id.is_(None),
                          CtiCall.agent_id.in_(team)))
    return or_(*parts)


def can_read(actor: Optional[User], call_id: Any) -> bool:
    pk = parse_pk(call_id)
    return pk is not None and db.session.execute(
        select(CtiCall.id).where(CtiCall.id == pk, scope_clause(actor))).first() is not None


def get_call(actor: Optional[User], call_id: Any) -> CtiCall:
    """One call the actor may read; NotFound otherwise (the same answer as no such call)."""
    pk = parse_pk(call_id)
    call = db.session.execute(select(CtiCall).where(CtiCall.id == pk, scope_clause(actor))
                              ).scalar_one_or_none() if pk is not None else None
    if call is None:
        raise NotFound(tr(NO_SUCH_CALL))
    return call


# --- the number, as the reader may see it -------------------------------------------------------
def national(e164: Optional[str]) -> Optional[str]:
    """A Chinese E.164 number as people write it (13800138000, 02162345678); others as is."""
    if not e164 or not e164.startswith("+86"):
        return e164
    rest = e164[3:]
    return rest if rest.startswith("1") and len(rest) == 11 else "0" + rest


def far_number(call: CtiCall) -> Optional[str]:
    """The far side's number of the call in full: normalised when it could be, else raw."""
    if call.number_e164:
        return national(call.number_e164)
    return call.caller if call.direction == "in" else call.callee


class _Rules:
    """The masking rules of one reader, read once for many calls."""

    def __init__(self, actor: Optional[User]):
        self.actor = actor
        self._customer = self._lead = None
        self.everything = has_role(actor, ROLE_ADMIN, ROLE_STAFF)

    # Each rule read when a call of its kind first needs it (a page of customers' calls
    # reads no lead rule).
    def customer(self, *args) -> bool:
        if self._customer is None:
            self._customer = masking.rule_for(self.actor)
        return self._customer(*args)

    def lead(self, *args) -> bool:
        if self._lead is None:
            from app.services.leads import contact_rule

            self._lead = contact_rule(self.actor)
        return self._lead(*args)

    def full(self, call: CtiCall, holders: dict, lead_holders: dict) -> bool:
        if call.customer_id is not None:
            owner_id, pool_id = holders.get(call.customer_id, (None, None))
            return self.customer(owner_id, pool_id, call.customer_id)
        if call.lead_id is not None:
            owner_id, pool_id = lead_holders.get(call.lead_id, (None, None))
            return self.lead(owner_id, pool_id)
        actor_id = getattr(self.actor, "id", None)
        return self.everything or (actor_id is not None
                                   and actor_id in (call.agent_id, call.dialed_by_id))


def _loaded_holder(call: CtiCall, relation: str):
    """(owner_id, pool_id) of the call's customer or lead when the page loaded it with its
    ownership row (no statement); else None."""
    state = sa_inspect(call)
    if relation in state.unloaded:
        return None
    record = getattr(call, relation)
    if record is None or "ownership" in sa_inspect(record).unloaded:
        return None
    row = record.ownership
    return (row.owner_id, row.pool_id) if row is not None else (None, None)


def _holders(calls: list[CtiCall]) -> tuple[dict, dict]:
    """{customer id: (owner_id, pool_id)} and the same for leads: from what the page loaded,
    else one statement per record type."""
    holders, lead_holders = {}, {}
    for c in calls:
        if c.customer_id is not None:
            found = _loaded_holder(c, "customer")
            if found is not None:
                holders[c.customer_id] = found
        if c.lead_id is not None:
            found = _loaded_holder(c, "lead")
            if found is not None:
                lead_holders[c.lead_id] = found
    customer_ids = sorted({c.customer_id for c in calls
                           if c.customer_id is not None and c.customer_id not in holders})
    lead_ids = sorted({c.lead_id for c in calls
                       if c.lead_id is not None and c.lead_id not in lead_holders})
    if customer_ids:
        holders.update({r.customer_id: (r.owner_id, r.pool_id) for r in db.session.execute(
            select(Ownership.customer_id, Ownership.owner_id, Ownership.pool_id)
            .where(Ownership.customer_id.in_(customer_ids)))})
    if lead_ids:
        lead_holders.update({r.lead_id: (r.owner_id, r.pool_id) for r in db.session.execute(
            select(LeadOwnership.lead_id, LeadOwnership.owner_id, LeadOwnership.pool_id)
            .where(LeadOwnership.lead_id.in_(lead_ids)))})
    return holders, lead_holders


def numbers_shown(actor: Optional[User], calls: Iterable[CtiCall]) -> dict[int, Optional[str]]:
    """{call id: the far side's number as `actor` may see it} for many calls: the rules read
    once, the holders in one statement per record type."""
    calls = list(calls)
    rules = _Rules(actor)
    holders, lead_holders = _holders(calls)
    out = {}
    for call in calls:
        number = far_number(call)
        out[call.id] = number if not number or rules.full(call, holders, lead_holders) \
            else mask_phone(number)
    return out


def number_shown(actor: Optional[User], call: CtiCall) -> Optional[str]:
    """The far side's number of `call` as `actor` may see it: in full or 138****8000."""
    return numbers_shown(actor, [call])[call.id]


# --- the recording ------------------------------------------------------------------------------
def _readable_records(actor: Optional[User], calls: list[CtiCall]) -> tuple[set, set]:
    """The customers and leads of `calls` the actor may read (not just their calls): for a
    sales role from the holders and the scope's owners and shares (read once per request),
    otherwise one statement per record type."""
    from app.security import _service_reader, customer_scope_clause, shared_customer_ids
    from app.services.leads import lead_scope_clause

    customer_ids = sorted({c.customer_id for c in calls if c.customer_id is not None})
    lead_ids = sorted({c.lead_id for c in calls if c.lead_id is not None})
    if actor is None or not (customer_ids or lead_ids):
        return set(), set()
    scope = scope_of(actor)
    if scope == Scope.ALL:
        return set(customer_ids), set(lead_ids)
    customers, leads = set(), set()
    if customer_ids and scope is not None and not _service_reader(actor):
        holders, _ = _holders([c for c in calls if c.customer_id is not None])
        owners = visible_owner_ids(actor, scope)
        shared = shared_customer_ids(actor)
        customers = {cid for cid in customer_ids
                     if holders.get(cid, (None, None))[0] in owners or cid in shared}
    elif customer_ids:
        customers = set(db.session.execute(select(Customer.id).where(
            Customer.id.in_(customer_ids), customer_scope_clause(actor))).scalars())
    if lead_ids:
        leads = set(db.session.execute(select(Lead.id).where(
            Lead.id.in_(lead_ids), lead_scope_clause(actor))).scalars())
    return customers, leads


def records_hidden(actor: Optional[User], calls: Iterable[CtiCall],
                   readable: Optional[tuple[set, set]] = None) -> dict[int, set[str]]:
    """{call id: {"customer", "lead"} whose names the actor may not read}: a call the actor
    took for someone else's customer stays in their log, but like the screen pop it shows
    only that a record exists, not its name. `readable`: _readable_records of these calls,
    when the caller has it already."""
    calls = list(calls)
    customers, leads = readable if readable is not None else _readable_records(actor, calls)
    out: dict[int, set[str]] = {}
    for call in calls:
        hidden = set()
        if call.customer_id is not None and call.customer_id not in customers:
            hidden.add("customer")
        if call.lead_id is not None and call.lead_id not in leads:
            hidden.add("lead")
        out[call.id] = hidden
    return out


OUTSIDE_SCOPE = lazy_tr("(outside your scope)")


def page_of_calls(actor: Optional[User], calls: Iterable[CtiCall]) -> tuple[dict, dict, dict]:
    """What a page of calls shows the actor: (numbers_shown, recording_links,
    records_hidden), the readable records read once for all three."""
    from app.security import _service_reader

    calls = list(calls)
    if _service_reader(actor):
        # The desk (客服) answers the hotline for every customer: the calls it took keep
        # their names (its scope query would cost the page a statement); recordings and
        # numbers still follow its rules.
        return (numbers_shown(actor, calls), recording_links(actor, calls),
                {c.id: set() for c in calls})
    readable = _readable_records(actor, calls)
    return (numbers_shown(actor, calls), recording_links(actor, calls, readable=readable),
            records_hidden(actor, calls, readable))


def recording_links(actor: Optional[User], calls: Iterable[CtiCall],
                    now: Optional[dt.datetime] = None,
                    readable: Optional[tuple[set, set]] = None) -> dict[int, Optional[str]]:
    """{call id: its recording link, or None} as `actor` may follow it: only to those who may
    read the call's customer (or lead; an unknown number's: admins, staff, auditors and who
    took it), and only before the expiry the platform gave."""
    calls = list(calls)
    now = now or utcnow()
    # Only web links are links: a vendor's value of another scheme (javascript:…) is none.
    live = [c for c in calls if c.recording_url
            and c.recording_url.lower().startswith(("https://", "http://")) and (
                c.recording_expires_at is None or c.recording_expires_at > now)]
    customers, leads = readable if readable is not None else _readable_records(actor, live)
    actor_id = getattr(actor, "id", None)
    out: dict[int, Optional[str]] = {c.id: None for c in calls}
    for c in live:
        if c.customer_id is not None:
            ok = c.customer_id in customers
        elif c.lead_id is not None:
            ok = c.lead_id in leads
        else:
            ok = _reads_all(actor) or (actor_id is not None
                                       and actor_id in (c.agent_id, c.dialed_by_id))
        out[c.id] = c.recording_url if ok else None
    return out


def recording_link(actor: Optional[User], call: CtiCall,
                   now: Optional[dt.datetime] = None) -> Optional[str]:
    return recording_links(actor, [call], now)[call.id]


# --- the call log (REST) ------------------------------------------------------------------------
@dataclass
class CallPage:
    items: list[dict]
    next_cursor: Optional[str]


LIST_KEYS = ("cursor", "page_size", "customer_id", "agent", "start", "end", "result",
             "direction")


def _day(value: str, name: str, errors: dict) -> Optional[dt.date]:
    try:
        return dt.date.fromisoformat(value)
    except (TypeError, ValueError):
        errors[name] = tr("%(field)s must be a date YYYY-MM-DD", field=name)
        return None


def parse_list_args(args) -> dict:
    """The call log's query arguments (a mapping of strings), each checked: ValidationFailed
    naming each bad or unknown one."""
    errors: dict[str, str] = {k: tr("Unknown parameter") for k in sorted(set(args) - set(LIST_KEYS))}
    out: dict[str, Any] = {"page_size": PAGE_SIZE}
    for key, value in args.items():
        if isinstance(value, str) and ("\x00" in value or len(value) > 600):
            errors[key] = tr("%(field)s is not valid", field=key)
    if errors:
        raise ValidationFailed(errors)
    if "page_size" in args:
        raw = args["page_size"]
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
            errors["page_size"] = tr("%(field)s must be an integer from %(min)s to %(max)s",
                                     field="page_size", min=1, max=MAX_PAGE_SIZE)
        else:
            out["page_size"] = int(raw)
    for key in ("customer_id", "agent"):
        if key in args:
            out[key] = parse_pk(args[key])
            if out[key] is None:
                errors[key] = tr("%(field)s must be an integer from 1 to %(max)s", field=key,
                                 max=MAX_PK)
    for key in ("start", "end"):
        if key in args:
            out[key] = _day(args[key], key, errors)
    if out.get("start") and out.get("end") and out["start"] > out["end"]:
        errors["start"] = tr("The period must start on or before its end")
    for key, choices in (("result", CALL_RESULTS), ("direction", DIRECTIONS)):
        if key in args:
            if args[key] not in choices:
                errors[key] = tr("%(field)s can only be: %(choices)s", field=key,
                                 choices=", ".join(choices))
            out[key] = args[key]
    if "cursor" in args:
        out["cursor"] = decode_cursor(args["cursor"], "started_at", "desc", 2)
        if out["cursor"] is None or not isinstance(out["cursor"][0], dt.datetime):
            errors["cursor"] = tr("cursor is not one this list gave")
    if errors:
        raise ValidationFailed(errors)
    return out


def _filtered(q, args: dict):
    if args.get("customer_id"):
        q = q.where(CtiCall.customer_id == args["customer_id"])
    if args.get("agent"):
        q = q.where(CtiCall.agent_id == args["agent"])
    if args.get("start"):
        q = q.where(CtiCall.started_at >= from_local(dt.datetime.combine(args["start"],
                                                                          dt.time())))
    if args.get("end"):
        q = q.where(CtiCall.started_at < from_local(dt.datetime.combine(
            args["end"] + dt.timedelta(days=1), dt.time())))
    if args.get("result"):
        q = q.where(CtiCall.result == args["result"])
    if args.get("direction"):
        q = q.where(CtiCall.direction == args["direction"])
    return q


def to_dict(call: CtiCall, number: Optional[str], recording: Optional[str]) -> dict:
    return {"id": call.id, "direction": call.direction, "state": call.state,
            "result": call.result, "number": number, "customer_id": call.customer_id,
            "contact_id": call.contact_id, "lead_id": call.lead_id, "agent_no": call.agent_no,
            "agent_id": call.agent_id, "dialed_by_id": call.dialed_by_id, "queue": call.queue,
            "started_at": rfc3339(call.started_at), "answered_at": rfc3339(call.answered_at),
            "ended_at": rfc3339(call.ended_at), "talk_seconds": call.talk_seconds,
            "recording_url": recording,
            "recording_expires_at": rfc3339(call.recording_expires_at) if recording else None,
            "followup_id": call.followup_id, "callback_task_id": call.callback_task_id}


def require_reader(actor: Optional[User]) -> None:
    if actor is None or marketing_only(actor):
        raise PermissionDenied(tr("You may not read the call log"))


def list_calls(actor: Optional[User], args: dict) -> CallPage:
    """One page of the calls the actor may read, newest first (keyset by (started_at, id),
    the index ix_cti_call_started_id); `args` as parse_list_args gives them."""
    require_reader(actor)
    size = args.get("page_size", PAGE_SIZE)
    q = _filtered(select(CtiCall).where(scope_clause(actor)), args)
    cursor = args.get("cursor")
    if cursor:
        at, pk = cursor
        q = q.where(or_(CtiCall.started_at < at, and_(CtiCall.started_at == at,
                                                       CtiCall.id < pk)))
    rows = list(db.session.execute(q.order_by(CtiCall.started_at.desc(), CtiCall.id.desc())
                                   .limit(size + 1)).scalars())
    more = len(rows) > size
    rows = rows[:size]
    shown = numbers_shown(actor, rows)
    links = recording_links(actor, rows)
    nxt = encode_cursor([rows[-1].started_at, rows[-1].id], "started_at", "desc") \
        if more and rows else None
    return CallPage([to_dict(c, shown[c.id], links[c.id]) for c in rows], nxt)


# --- the customer's timeline --------------------------------------------------------------------
def _register_timeline() -> None:
    from flask_babel import gettext

    from app.services import timeline

    @timeline.source("calls")
    class Calls:
        """通话: the customer's calls (merged-in customers' too) that the reader may read; the
        number as the reader may see it, the recording linked while it lasts (page_of drops
        links for a reader outside the customer's scope, e.g. a pool member)."""

        @staticmethod
        def _query(history):
            return select(CtiCall).where(CtiCall.customer_id.in_(history.ids),
                                         scope_clause(history.reader))

        @staticmethod
        def count(history) -> int:
            from sqlalchemy import func

            return db.session.execute(select(func.count()).select_from(
                Calls._query(history).subquery())).scalar_one()

        @staticmethod
        def newest(history, limit: int) -> list:
            rows = list(db.session.execute(Calls._query(history).options(
                joinedload(CtiCall.agent), joinedload(CtiCall.dialed_by)).order_by(
                CtiCall.started_at.desc(), CtiCall.id.desc()).limit(limit)).scalars())
            shown = numbers_shown(history.reader, rows)
            links = recording_links(history.reader, rows)
            out = []
            for c in rows:
                summary = gettext("%(direction)s call %(number)s: %(result)s",
                                  direction=c.direction_label, number=shown[c.id] or "",
                                  result=c.result_label or c.state_label)
                if c.talk_seconds:
                    summary += " " + gettext("(talk %(time)s)", time=talk_text(c.talk_seconds))
                who = c.agent or c.dialed_by
                out.append(timeline.Entry(c.started_at, "call", summary,
                                          who.display_name if who is not None else "",
                                          links[c.id]))
            return out


def talk_text(seconds: Optional[int]) -> str:
    """12:05 (minutes:seconds), 1:02:03 past an hour; empty for none."""
    if seconds is None:
        return ""
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


_register_timeline()


# --- the per-rep table (通话统计) -----------------------------------------------------------------
@dataclass
class RepRow:
    user_id: int
    name: str
    day: Optional[dt.date]        # None: the period's total
    calls: int = 0
    inbound: int = 0
    outbound: int = 0
    answered: int = 0
    talk_seconds: int = 0
    missed: int = 0
    callback_seconds: list = field(default_factory=list)

    @property
    def answered_rate(self) -> Optional[float]:
        return round(100.0 * self.answered / self.calls, 1) if self.calls else None

    @property
    def average_talk(self) -> Optional[int]:
        return round(self.talk_seconds / self.answered) if self.answered else None

    @property
    def average_callback(self) -> Optional[int]:
        s = self.callback_seconds
        return round(sum(s) / len(s)) if s else None


@dataclass
class RepStats:
    period: Any
    totals: list[RepRow]
    days: list[RepRow]

    def calls_per_day(self, row: RepRow) -> float:
        return round(row.calls / ((self.period.end - self.period.start).days + 1), 1)


MISSED = ("missed", "no_answer", "busy", "failed")


def can_read_stats(actor: Optional[User]) -> bool:
    return has_role(actor, ROLE_ADMIN, ROLE_MANAGER)


def rep_stats(actor: Optional[User], start: Any = None, end: Any = None) -> RepStats:
    """Per rep (the user who took or dialled each call) and per business day of the period:
    calls, answered rate, average talk time, and the call-back delay of missed inbound calls
    (to the next answered or outbound call with the same number, or the call-back task being
    done, whichever came first; calls never called back are not averaged). Admins: every
    user; sales managers: the people whose customers they see (their team)."""
    from app.services.service_analysis import parse_period

    if not can_read_stats(actor):
        raise PermissionDenied(tr("Only managers and admins read the call statistics"))
    period = parse_period(start, end)
    since, until = period.bounds
    who = CtiCall.agent_id
    q = select(CtiCall.id, CtiCall.agent_id, CtiCall.dialed_by_id, CtiCall.started_at,
               CtiCall.direction, CtiCall.result, CtiCall.talk_seconds, CtiCall.number_e164,
               CtiCall.callback_task_id).where(
        CtiCall.started_at >= since, CtiCall.started_at < until,
        or_(who.is_not(None), CtiCall.dialed_by_id.is_not(None)))
    if not has_role(actor, ROLE_ADMIN):
        team = sorted(visible_owner_ids(actor, scope_of(actor) or Scope.OWN))
        q = q.where(or_(CtiCall.agent_id.in_(team),
                        and_(CtiCall.agent_id.is_(None), CtiCall.dialed_by_id.in_(team))))
    rows = db.session.execute(q).all()
    missed = [r for r in rows if r.direction == "in" and r.result in MISSED and r.number_e164]
    delays = _callback_delays(missed, since)
    names = {u.id: u.display_name for u in db.session.execute(select(User).where(
        User.id.in_({r.agent_id or r.dialed_by_id for r in rows}))).scalars()} if rows else {}
    totals: dict[int, RepRow] = {}
    days: dict[tuple, RepRow] = {}
    for r in rows:
        uid = r.agent_id or r.dialed_by_id
        day = local_date(r.started_at)
        for row in (totals.setdefault(uid, RepRow(uid, names.get(uid, ""), None)),
                    days.setdefault((uid, day), RepRow(uid, names.get(uid, ""), day))):
            row.calls += 1
            row.inbound += r.direction == "in"
            row.outbound += r.direction == "out"
            if r.result == "answered":
                row.answered += 1
                row.talk_seconds += r.talk_seconds or 0
            if r.direction == "in" and r.result in MISSED:
                row.missed += 1
                if delays.get(r.id) is not None:
                    row.callback_seconds.append(delays[r.id])
    return RepStats(period, sorted(totals.values(), key=lambda x: (x.name, x.user_id)),
                    sorted(days.values(), key=lambda x: (x.name, x.user_id, x.day)))


def _callback_delays(missed: list, since: dt.datetime) -> dict[int, Optional[int]]:
    """{missed call id: seconds until it was called back, or None}: one statement for the
    later calls with those numbers, one for the call-back tasks."""
    if not missed:
        return {}
    from app.models import Task

    numbers = sorted({r.number_e164 for r in missed})
    later: dict[str, list[dt.datetime]] = {}
    for r in db.session.execute(select(CtiCall.number_e164, CtiCall.started_at,
                                       CtiCall.answered_at).where(
            CtiCall.number_e164.in_(numbers), CtiCall.started_at >= since,
            or_(CtiCall.result == "answered", CtiCall.direction == "out"))
            .order_by(CtiCall.started_at)):
        later.setdefault(r.number_e164, []).append(r.started_at)
    task_ids = sorted({r.callback_task_id for r in missed if r.callback_task_id})
    done = dict(db.session.execute(select(Task.id, Task.done_at).where(
        Task.id.in_(task_ids), Task.done_at.is_not(None))).all()) if task_ids else {}
    out: dict[int, Optional[int]] = {}
    for r in missed:
        candidates = [t for t in later.get(r.number_e164, ()) if t > r.started_at][:1]
        if r.callback_task_id in done and done[r.callback_task_id] > r.started_at:
            candidates.append(done[r.callback_task_id])
        out[r.id] = int((min(candidates) - r.started_at).total_seconds()) if candidates else None
    return out
