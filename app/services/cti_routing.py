"""Who takes this call: the answer the telephony platform asks for when a number rings the
hotline (GET /api/v1/cti/route?caller=…), and the agent number (工号) that maps a seat to a user.

The decision, first that holds:
    dedicated_agent  the customer's dedicated service agent (CustomerServiceAgent) is present
    owner            else the customer's (or the lead's) owner is present
    team_queue       else the queue (技能组) of the owner's department, or of the nearest
                     department above it that has one (Department.path)
    default_queue    else CTI_DEFAULT_QUEUE (pool customers and leads: pools have no
                     department of their own)
    unknown_number   the number matches no customer, contact or open lead: CTI_DEFAULT_QUEUE
"Present" means: employed and active, not on leave today (app.services.absences), an agent
number set, and the last status the platform reported for it is `available`.

Cost: the number is matched by app.services.cti_numbers (one indexed lookup for a customer's
own number) and the holder, the dedicated agent, both users' presence and the department's
queue are read in one more statement; nothing else.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Optional

from flask import current_app, has_app_context
from sqlalchemy import Date, and_, bindparam, exists, func, literal, select
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import Absence, Department, Ownership, User
from app.models.lead import LeadOwnership
from app.models.org import EMPLOYMENT_ACTIVE
from app.models.service_desk import CustomerServiceAgent
from app.services import cti_numbers
from app.services.errors import ValidationFailed, tr
from app.services.text import is_unclean
from app.services.times import local_today

AGENT, QUEUE = "agent", "queue"
REASONS = ("dedicated_agent", "owner", "team_queue", "default_queue", "unknown_number")
AGENT_NO_MAX = 32
_AGENT_NO = re.compile(r"^[0-9A-Za-z_-]+$")
# What a caller id may look like before it is normalised: digits and the punctuation platforms
# and people write numbers with. Anything else (letters, NUL, emoji) is refused as input.
_CALLER = re.compile(r"^\+?[0-9 ()\-.]+$")


@dataclass(frozen=True)
class Route:
    target: str                 # agent | queue
    agent_no: Optional[str]
    queue: Optional[str]
    reason: str
    customer_id: Optional[int] = None
    lead_id: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_queue() -> str:
    if has_app_context():
        return str(current_app.config.get("CTI_DEFAULT_QUEUE") or "default")
    return "default"


def key_rate() -> int:
    """Uses per minute of a call_events key on the CTI endpoints (CTI_KEY_RATE_PER_MINUTE):
    a PBX asks once per call, far more often than a webhook is called."""
    if has_app_context():
        return int(current_app.config.get("CTI_KEY_RATE_PER_MINUTE") or 6000)
    return 6000


def clean_caller(raw: Any) -> Optional[str]:
    """The caller's E.164, None for a well-formed number that is no valid one (too short, a
    service number); ValidationFailed naming `caller` for anything that is no number at all."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValidationFailed({"caller": tr("Required")})
    if len(raw) > cti_numbers.MAX_RAW or not _CALLER.match(raw.strip()):
        raise ValidationFailed({"caller": tr(
            "caller must be a telephone number of at most %(max)s characters (digits, an "
            "optional leading +, spaces and dashes)", max=cti_numbers.MAX_RAW)})
    return cti_numbers.caller_e164(raw)


def _presence(user, day) -> tuple:
    """Columns telling whether `user` (an aliased Employee) is present, for one SELECT."""
    away = exists().where(Absence.user_id == user.id, Absence.cancelled_at.is_(None),
                          Absence.starts_on <= day, Absence.ends_on >= day)
    return (user.agent_no, and_(user.active.is_(True),
                                user.employment_status == EMPLOYMENT_ACTIVE,
                                user.agent_no.is_not(None),
                                user.agent_status == "available", ~away))


def _queue_of(department_id):
    """The queue of the department `department_id` or its nearest ancestor with one: a scalar
    subquery over the (small) department table, the deepest path that prefixes ours."""
    mine = aliased(Department)
    above = aliased(Department)
    return (select(above.cti_queue).select_from(mine)
            .join(above, mine.path.startswith(above.path, autoescape=False))
            .where(mine.id == department_id, above.cti_queue.is_not(None),
                   above.cti_queue != "")
            .order_by(func.length(above.path).desc()).limit(1).scalar_subquery())


_DECISIONS: dict[str, Any] = {}


def _decision(kind: str):
    """The one SELECT deciding for a customer ("customer": with its dedicated agent) or a
    lead, built once per process: building it (two aliased users, the absence and queue
    subqueries) costs more than running it, so only its parameters change per call."""
    if kind in _DECISIONS:
        return _DECISIONS[kind]
    holder_model, key_column = ((Ownership, Ownership.customer_id) if kind == "customer"
                                else (LeadOwnership, LeadOwnership.lead_id))
    owner = aliased(User)
    agent = aliased(User)
    day = bindparam("day", type_=Date)
    owner_no, owner_ok = _presence(owner, day)
    q = select(owner_no.label("owner_no"), owner_ok.label("owner_ok"),
               _queue_of(owner.department_id).label("queue")).select_from(
        holder_model).outerjoin(owner, owner.id == holder_model.owner_id)
    if kind == "customer":
        agent_no, agent_ok = _presence(agent, day)
        q = q.add_columns(agent_no.label("agent_no"), agent_ok.label("agent_ok")).outerjoin(
            CustomerServiceAgent, CustomerServiceAgent.customer_id == key_column).outerjoin(
            agent, agent.id == CustomerServiceAgent.agent_id)
    else:
        q = q.add_columns(literal(None).label("agent_no"), literal(False).label("agent_ok"))
    _DECISIONS[kind] = q.where(key_column == bindparam("record_id"))
    return _DECISIONS[kind]


def _route_holder(kind: str, record_id: int) -> Optional[Route]:
    row = db.session.execute(_decision(kind), {"record_id": record_id,
                                               "day": local_today()}).first()
    if row is None:
        return None
    ids = {"customer_id": record_id} if kind == "customer" else {"lead_id": record_id}
    if row.agent_ok:
        return Route(AGENT, row.agent_no, None, "dedicated_agent", **ids)
    if row.owner_ok:
        return Route(AGENT, row.owner_no, None, "owner", **ids)
    if row.queue:
        return Route(QUEUE, None, row.queue, "team_queue", **ids)
    return Route(QUEUE, None, default_queue(), "default_queue", **ids)


def route(caller: Any) -> Route:
    """Where the platform should send a call from `caller` (see the module's table)."""
    e164 = clean_caller(caller)
    match = cti_numbers.match_number(e164)
    found = None
    if match.customer_id is not None:
        found = _route_holder("customer", match.customer_id)
    elif match.lead_id is not None:
        found = _route_holder("lead", match.lead_id)
    if found is not None:
        return found
    return Route(QUEUE, None, default_queue(), "unknown_number")


# --- agent numbers (工号) --------------------------------------------------------------------
def clean_agent_no(value: Any, user_id: Optional[int] = None) -> Optional[str]:
    """A user's agent number as it is stored: None when blank; else at most 32 of
    [0-9A-Za-z_-] and no other user's. ValidationFailed naming `agent_no` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or is_unclean(value):
        raise ValidationFailed({"agent_no": tr("The agent number can only hold letters, digits, "
                                               "_ and -")})
    value = value.strip()
    if len(value) > AGENT_NO_MAX:
        raise ValidationFailed({"agent_no": tr("The agent number may have at most %(max)s "
                                               "characters", max=AGENT_NO_MAX)})
    if not _AGENT_NO.match(value):
        raise ValidationFailed({"agent_no": tr("The agent number can only hold letters, digits, "
                                               "_ and -")})
    taken = select(User.id).where(User.agent_no == value)
    if user_id is not None:
        taken = taken.where(User.id != user_id)
    with db.session.no_autoflush:  # the form's row already holds the new value
        held = db.session.execute(taken.limit(1)).first()
    if held is not None:
        raise ValidationFailed({"agent_no": tr("The agent number %(no)s belongs to another "
                                               "user", no=value)})
    return value


QUEUE_MAX = 64
_QUEUE = re.compile(r"^[0-9A-Za-z_.-]+$")


def clean_queue(value: Any) -> Optional[str]:
    """A department's call queue as stored: None when blank; else at most 64 of
    [0-9A-Za-z_.-]. ValidationFailed naming `cti_queue` otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    value = value.strip() if isinstance(value, str) else value
    if not isinstance(value, str) or len(value) > QUEUE_MAX or not _QUEUE.match(value):
        raise ValidationFailed({"cti_queue": tr(
            "The call queue can only hold at most %(max)s letters, digits, _, - and .",
            max=QUEUE_MAX)})
    return value


def agent_status_label(user: User) -> str:
    from app.models.cti import AGENT_STATUSES

    status = getattr(user, "agent_status", None)
    return str(AGENT_STATUSES.get(status, status or ""))
