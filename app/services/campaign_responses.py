"""Campaign responses (活动响应) and attribution: tracked links, sign-ups with a campaign's
token, responses marked by hand, won deals traced back to campaigns, and the effect table.

A touch (campaign_touch) is a recorded response — a click, a sign-up, a marked response —
never mere membership. Each lands on exactly one record: the member's customer or lead, or the
record a sign-up or a new respondent's dedupe found (a customer before a lead), else a new
lead (`lead_created`: the effect table's "leads").

Tracked links: every http(s) URL of an e-mail body becomes PUBLIC_URL/c/<token>, the
token signed (itsdangerous, the app's secret, salt 'campaign-click') over [member id, target].
Only a signed target redirects, so /c/ is no open redirect; a forged, altered or oversized
token is a 404. Each click is recorded (the touch log is the history attribution reads), but
a repeat of the same member and link within CLICK_REPEAT is not: mail scanners and double
clicks open a link several times, and a hammering client fills no table. "Clicked" counts
distinct members.

Attribution: a won deal's touches are those on its customer and on the leads converted into
it (lead.converted_customer_id) that occurred within [deal day − window, deal day] (business
days; marketing_settings.attribution_days, 180 without a row). The earliest is the first touch,
the latest the last; the deal's amount goes to each one's campaign. One statement for every
deal and campaign (window functions), whatever their number.
"""
from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Iterable, Optional

from flask import current_app
from flask_babel import lazy_gettext as _l
from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import (DateTime, Numeric, and_, case, cast, func, literal_column, or_, select,
                        type_coerce, union, union_all)

from app.extensions import db
from app.models import (CampaignMember, CampaignMessage, CampaignTouch, CaptureForm, Customer,
                        Deal, Lead, MarketingOptOut, MarketingSettings, Opportunity, Ownership,
                        User)
from app.models.marketing import Campaign
from app.models.customer import utcnow
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_MARKETING, ROLE_REP,
                          has_role)
from app.services import audit, limits
from app.services import leads as lead_service
from app.services.errors import NotFound, OutOfScope, PermissionDenied, ValidationFailed, tr
from app.services.ids import parse_pk
from app.services.text import UNCLEAN_MESSAGE, is_unclean
from app.services.times import business_zone

CLICK_SALT = "campaign-click"
URL_MAX = 500            # campaign_touch.url: a longer link stays as written, untracked
TOKEN_MAX = 1024         # a signed [member id, ≤500-character URL] is well below this
CLICK_REPEAT = dt.timedelta(minutes=10)
NOTE_MAX = 500
DEFAULT_ATTRIBUTION_DAYS = 180
# A link as e-mail text writes it: ASCII up to a space, quote or angle bracket (Chinese text
# right after a link is not part of it); trailing sentence punctuation is trimmed after.
_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&()*+,;=%]+", re.IGNORECASE)
_TRAILING = ".,;:!?"
_CAMPAIGN_TOKEN = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
NO_SUCH_MEMBER = _l("The campaign member does not exist or is outside your data scope")


# --- who may do what ------------------------------------------------------------------------
def may_manage(actor: Optional[User]) -> bool:
    """Marketing and admins: every campaign's responses, tokens and respondents."""
    return has_role(actor, ROLE_ADMIN, ROLE_MARKETING)


def may_read_effect(actor: Optional[User]) -> bool:
    """The effect table: marketing and admins, and read-only sales managers (they answer for
    the won revenue it attributes) and auditors (they read everything). Aggregates only: no
    record or contact detail is in it."""
    return has_role(actor, ROLE_ADMIN, ROLE_MARKETING, ROLE_MANAGER, ROLE_AUDITOR)


def _require_manager_of_campaigns(actor: Optional[User]) -> None:
    if not may_manage(actor):
        raise PermissionDenied(tr("Only marketing and admins manage campaign responses"))


def get_campaign(campaign_id: Any) -> Campaign:
    pk = parse_pk(campaign_id)
    campaign = db.session.get(Campaign, pk) if pk is not None else None
    if campaign is None:
        raise NotFound(tr("The campaign does not exist"))
    return campaign


def _commit(fn):
    try:
        result = fn()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return result


# --- tracked links --------------------------------------------------------------------------
def public_base_url() -> str:
    """Where links in messages point: PUBLIC_URL (GUISHU_PUBLIC_URL); empty gives relative
    links."""
    return (current_app.config.get("PUBLIC_URL") or "").rstrip("/")


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=CLICK_SALT)


def click_token(member_id: int, url: str) -> str:
    return _serializer().dumps([int(member_id), url])


def _trim(url: str) -> tuple[str, str]:
    """The link and the punctuation after it that belongs to the sentence."""
    tail = ""
    while url and (url[-1] in _TRAILING
                   or (url[-1] == ")" and url.count(")") > url.count("("))):
        tail, url = url[-1] + tail, url[:-1]
    return url, tail


def rewrite_links(text: Optional[str], member_id: int) -> Optional[str]:
    """Every http(s) URL of an e-mail body as a tracked link for one member. Links longer
    than URL_MAX and our own /c/ and /u/ links (unsubscribe) stay as written."""
    if not text:
        return text
    base = public_base_url()
    own = tuple(f"{base}/{p}/" for p in ("c", "u")) if base else ()

    def one(match: re.Match) -> str:
        url, tail = _trim(match.group(0))
        if len(url) <= len("https://") or len(url) > URL_MAX or (own and url.startswith(own)):
            return match.group(0)
        return f"{base}/c/{click_token(member_id, url)}{tail}"

    return _URL.sub(one, text)


def read_click_token(token: Any) -> tuple[int, str]:
    """(member id, target) of a token we signed; NotFound for anything else."""
    gone = NotFound(tr("This link does not exist"))
    if not isinstance(token, str) or not token or len(token) > TOKEN_MAX:
        raise gone
    try:
        payload = _serializer().loads(token)
    except (BadData, ValueError, UnicodeError):
        raise gone from None
    if not (isinstance(payload, list) and len(payload) == 2
            and isinstance(payload[0], int) and not isinstance(payload[0], bool)
            and isinstance(payload[1], str)):
        raise gone
    member_id, url = payload
    if parse_pk(member_id) is None or len(url) > URL_MAX \
            or not re.match(r"^https?://", url, re.IGNORECASE):
        raise gone
    return member_id, url


def record_click(token: Any, now: Optional[dt.datetime] = None) -> str:
    """A click on a tracked link: the 'click' touch (not a repeat within CLICK_REPEAT), and
    the target to redirect to. A member removed since (its campaign deleted) still reaches
    the target; nothing is recorded then."""
    member_id, url = read_click_token(token)
    now = now or utcnow()

    def go() -> str:
        member = db.session.get(CampaignMember, member_id)
        if member is None:
            return url
        repeat = db.session.execute(select(CampaignTouch.id).where(
            CampaignTouch.member_id == member.id, CampaignTouch.kind == "click",
            CampaignTouch.url == url, CampaignTouch.occurred_at > now - CLICK_REPEAT)
            .limit(1)).first()
        if repeat is None:
            db.session.add(CampaignTouch(
                campaign_id=member.campaign_id, member_id=member.id,
                customer_id=member.customer_id, lead_id=member.lead_id, kind="click", url=url,
                occurred_at=now))
        return url

    return _commit(go)


# --- the campaign's sign-up token -------------------------------------------------------------
def new_campaign_token() -> str:
    return secrets.token_urlsafe(24)  # 32 characters, 192 bits


def rotate_campaign_token(actor: User, campaign_id: Any) -> Campaign:
    """Give the campaign a sign-up token, or a new one: links with the old token still reach
    the form, but their sign-ups count for no campaign."""
    _require_manager_of_campaigns(actor)
    campaign = get_campaign(campaign_id)

    def go() -> Campaign:
        old = campaign.token
        campaign.token = new_campaign_token()
        # The token itself is a secret of the links: the audit says that it changed.
        audit.record(actor.id, "rotate_token" if old else "issue_token", "campaign",
                     campaign.id, {"token": ("…" if old else None, "…")})
        return campaign

    return _commit(go)


def campaign_by_token(token: Any) -> Optional[Campaign]:
    """The campaign a sign-up link names, or None (unknown, rotated, malformed)."""
    if not isinstance(token, str) or not _CAMPAIGN_TOKEN.match(token):
        return None
    return db.session.execute(select(Campaign).where(Campaign.token == token)
                              ).scalar_one_or_none()


def signup_links(campaign: Campaign) -> list[tuple[str, str]]:
    """(form name, path) of every active capture form with the campaign's token."""
    if not campaign.token:
        return []
    forms = db.session.execute(select(CaptureForm.name, CaptureForm.token).where(
        CaptureForm.is_active.is_(True)).order_by(CaptureForm.name)).all()
    return [(name, f"/forms/{token}?c={campaign.token}") for name, token in forms]


# --- touches ----------------------------------------------------------------------------------
def _member_id(campaign_id: int, customer_id: Optional[int],
               lead_id: Optional[int]) -> Optional[int]:
    column, value = ((CampaignMember.customer_id, customer_id) if customer_id is not None
                     else (CampaignMember.lead_id, lead_id))
    return db.session.execute(select(CampaignMember.id).where(
        CampaignMember.campaign_id == campaign_id, column == value)).scalar()


def _touch(campaign_id: int, kind: str, *, actor_id: Optional[int],
           customer_id: Optional[int] = None, lead_id: Optional[int] = None,
           member_id: Optional[int] = None, note: Optional[str] = None,
           lead_created: bool = False, now: Optional[dt.datetime] = None) -> CampaignTouch:
    """Add one touch and its audit row (no commit)."""
    if member_id is None:
        member_id = _member_id(campaign_id, customer_id, lead_id)
    touch = CampaignTouch(campaign_id=campaign_id, member_id=member_id, customer_id=customer_id,
                          lead_id=lead_id, kind=kind, note=note, recorded_by_id=actor_id,
                          lead_created=lead_created, occurred_at=now or utcnow())
    db.session.add(touch)
    db.session.flush()
    audit.record(actor_id, kind, "campaign_touch", touch.id, {
        k: (None, v) for k, v in (("campaign_id", campaign_id), ("customer_id", customer_id),
                                  ("lead_id", lead_id), ("member_id", member_id),
                                  ("lead_created", lead_created or None), ("note", note))
        if v is not None})
    return touch


def record_signup(campaign: Campaign, *, lead_id: Optional[int] = None,
                  customer_id: Optional[int] = None, lead_created: bool = False,
                  now: Optional[dt.datetime] = None) -> Optional[CampaignTouch]:
    """A capture form's sign-up with the campaign's token, on the lead it created or the
    record its dedupe found (app.services.lead_capture; its transaction, no commit). None for
    a finished campaign: a link still circulating after the end is not the campaign's effect
    (the lead is created all the same)."""
    if campaign.status == "finished":
        return None
    return _touch(campaign.id, "signup", actor_id=None, customer_id=customer_id,
                  lead_id=lead_id, lead_created=lead_created, now=now)


def _clean_note(note: Any) -> Optional[str]:
    if note is None or note == "":
        return None
    if not isinstance(note, str):
        raise ValidationFailed({"note": tr("Must be text")})
    if is_unclean(note):
        raise ValidationFailed({"note": str(UNCLEAN_MESSAGE)})
    note = note.strip()
    message = limits.too_long(note, NOTE_MAX)
    if message:
        raise ValidationFailed({"note": message})
    return note or None


def mark_member_response(actor: User, member_id: Any, note: Any = None,
                         now: Optional[dt.datetime] = None,
                         campaign_id: Optional[int] = None) -> CampaignTouch:
    """"Responded", marked by hand on a member: a 'response' touch on the member's record — a
    customer's shows on its timeline (no lead is made: it is a customer already), a lead's on
    the lead. Marketing and admins for any member; a customer's owner for their own."""
    if not has_role(actor, ROLE_ADMIN, ROLE_MARKETING, ROLE_MANAGER, ROLE_REP):
        raise PermissionDenied(tr("Your role cannot mark campaign responses"))
    note = _clean_note(note)
    pk = parse_pk(member_id)
    member = db.session.get(CampaignMember, pk) if pk is not None else None
    if member is not None and campaign_id is not None and member.campaign_id != campaign_id:
        member = None  # the API names the campaign: a member of another is not this one's
    if member is None or not (may_manage(actor) or (
            member.customer_id is not None and db.session.execute(select(Ownership.owner_id)
            .where(Ownership.customer_id == member.customer_id)).scalar() == actor.id)):
        raise OutOfScope(str(NO_SUCH_MEMBER))
    return _commit(lambda: _touch(member.campaign_id, "response", actor_id=actor.id,
                                  customer_id=member.customer_id, lead_id=member.lead_id,
                                  member_id=member.id, note=note, now=now))


@dataclass
class Response:
    """Where a respondent recorded by hand landed."""
    touch_id: int
    record: str              # "customer" or "lead"
    record_id: int
    lead_created: bool


def record_response(actor: User, campaign_id: Any, data: dict[str, Any], note: Any = None,
                    now: Optional[dt.datetime] = None) -> Response:
    """A respondent who is not (yet) anyone's record — a visitor at the stand, a caller —
    recorded by marketing or an admin: dedupe (the lead rules') against customers and leads;
    a blocking match on a customer gets the response (on its timeline), else one on an open
    lead, else a new lead placed by the lead rules (the default lead pool when none matches),
    its source 'campaign', with the response on it."""
    _require_manager_of_campaigns(actor)
    campaign = get_campaign(campaign_id)
    note = _clean_note(note)
    data = dict(data or {})
    data.setdefault("source", "campaign")
    data.setdefault("campaign", campaign.name[:200])
    values = lead_service.clean_lead_data(data)
    if not any(values.get(k) for k in ("mobile", "phone", "email")):
        raise ValidationFailed({"mobile": tr("Give a mobile, a phone or an e-mail of the "
                                             "respondent")})
    now = now or utcnow()

    def go() -> Response:
        matches = lead_service.find_duplicates(values)
        blocking = [m for m in matches if m.action == "block"]
        found = next((m for m in blocking if m.record == "customer"), None) or next(
            (m for m in blocking if m.record == "lead"), None)
        if found is not None:
            touch = _touch(campaign.id, "response", actor_id=actor.id, note=note, now=now,
                           **{f"{found.record}_id": found.id})
            return Response(touch.id, found.record, found.id, False)
        placed = lead_service.place_by_rules([values])[0]
        lead = lead_service.insert_lead(values, actor_id=actor.id, owner_id=placed.owner_id,
                                        pool_id=placed.pool_id,
                                        reason=placed.reason or f"市场活动：{campaign.name}",
                                        rule=placed.rule, how=placed.how)
        if matches:
            audit.record(actor.id, "dedupe_warning", "lead", lead.id,
                         {"matches": (None, ",".join(f"{m.record}:{m.id}" for m in matches))})
        touch = _touch(campaign.id, "response", actor_id=actor.id, lead_id=lead.id, note=note,
                       lead_created=True, now=now)
        return Response(touch.id, "lead", lead.id, True)

    return _commit(go)


# --- attribution ------------------------------------------------------------------------------
def attribution_days() -> int:
    """The window (marketing_settings.attribution_days); 180 while no settings row exists."""
    days = db.session.execute(select(MarketingSettings.attribution_days).order_by(
        MarketingSettings.id).limit(1)).scalar()
    return int(days) if days else DEFAULT_ATTRIBUTION_DAYS


def _shifted(day_column, minutes: int):
    """The UTC instant `minutes` after the start of a date column's day (a naive UTC
    timestamp, comparable with occurred_at). `minutes` is an int we compute, never input."""
    minutes = int(minutes)
    if db.session.get_bind().dialect.name == "postgresql":
        return cast(day_column, DateTime) + literal_column(f"interval '{minutes} minutes'")
    return func.datetime(day_column, f"{minutes:+d} minutes")


def window_bounds(day_column, days: int) -> tuple[Any, Any]:
    """[start of business day (day − days), start of business day (day + 1)) in UTC. The
    business zone's offset is today's (exact for Asia/Shanghai; a zone with summer time is
    off by its hour at the window's edges twice a year)."""
    offset = business_zone().utcoffset(dt.datetime.now())
    offset_min = int(offset.total_seconds() // 60) if offset else 0
    return (_shifted(day_column, -days * 1440 - offset_min),
            _shifted(day_column, 1440 - offset_min))


def _touched_customers(campaign_ids: Optional[list[int]]):
    """Customers with a touch of these campaigns, directly or on a lead converted into them."""
    t, lead = CampaignTouch.__table__, Lead.__table__
    direct = select(t.c.customer_id.label("customer_id")).where(t.c.customer_id.isnot(None))
    via = (select(lead.c.converted_customer_id.label("customer_id"))
           .select_from(t.join(lead, lead.c.id == t.c.lead_id))
           .where(lead.c.converted_customer_id.isnot(None)))
    if campaign_ids is not None:
        direct = direct.where(t.c.campaign_id.in_(campaign_ids))
        via = via.where(t.c.campaign_id.in_(campaign_ids))
    return union(direct, via)


def _deal_touches(campaign_ids: Optional[list[int]], days: int):
    """(deal, its amount, touch campaign, time, touch id) of every touch inside a won deal's
    window: on its customer, or on a lead converted into it (counted once)."""
    d, t, lead = Deal.__table__, CampaignTouch.__table__, Lead.__table__
    start, end = window_bounds(d.c.won_on, days)
    cols = (d.c.id.label("deal_id"), d.c.amount.label("amount"), t.c.campaign_id,
            t.c.occurred_at, t.c.id.label("touch_id"))
    inside = and_(t.c.occurred_at >= start, t.c.occurred_at < end)
    direct = select(*cols).select_from(d.join(t, t.c.customer_id == d.c.customer_id)).where(
        inside)
    via = (select(*cols).select_from(
        d.join(lead, lead.c.converted_customer_id == d.c.customer_id)
        .join(t, t.c.lead_id == lead.c.id))
        .where(inside, or_(t.c.customer_id.is_(None), t.c.customer_id != d.c.customer_id)))
    if campaign_ids is not None:
        # Only deals some of these campaigns touched; their other touches still compete.
        touched = _touched_customers(campaign_ids).subquery()
        direct = direct.where(d.c.customer_id.in_(select(touched.c.customer_id)))
        via = via.where(d.c.customer_id.in_(select(touched.c.customer_id)))
    return union_all(direct, via).subquery()


@dataclass
class Attributed:
    won_first: Decimal = Decimal("0.00")
    won_last: Decimal = Decimal("0.00")
    deals_first: int = 0
    deals_last: int = 0


def attribution(campaign_ids: Optional[Iterable[int]] = None,
                days: Optional[int] = None) -> dict[int, Attributed]:
    """{campaign id: its first-touch and last-touch won amounts and deals} — one statement."""
    ids = None if campaign_ids is None else sorted(set(campaign_ids))
    if ids == []:
        return {}
    days = attribution_days() if days is None else days
    pairs = _deal_touches(ids, days)
    first = func.row_number().over(partition_by=pairs.c.deal_id,
                                   order_by=(pairs.c.occurred_at, pairs.c.touch_id))
    last = func.row_number().over(partition_by=pairs.c.deal_id,
                                  order_by=(pairs.c.occurred_at.desc(), pairs.c.touch_id.desc()))
    ranked = select(pairs.c.campaign_id, pairs.c.amount, first.label("first_rank"),
                    last.label("last_rank")).subquery()
    money = Numeric(16, 2)
    q = (select(ranked.c.campaign_id,
                type_coerce(func.sum(case((ranked.c.first_rank == 1, ranked.c.amount),
                                          else_=0)), money),
                type_coerce(func.sum(case((ranked.c.last_rank == 1, ranked.c.amount),
                                          else_=0)), money),
                func.sum(case((ranked.c.first_rank == 1, 1), else_=0)),
                func.sum(case((ranked.c.last_rank == 1, 1), else_=0)))
         .where(or_(ranked.c.first_rank == 1, ranked.c.last_rank == 1))
         .group_by(ranked.c.campaign_id))
    if ids is not None:
        q = q.where(ranked.c.campaign_id.in_(ids))
    return {cid: Attributed(_money(wf), _money(wl), int(df or 0), int(dl or 0))
            for cid, wf, wl, df, dl in db.session.execute(q)}


def _money(value: Any) -> Decimal:
    return Decimal(str(value or 0)).quantize(Decimal("0.01"))


# --- the effect table ---------------------------------------------------------------------------
@dataclass
class Effect:
    campaign_id: int
    name: str
    kind: str
    status: str
    starts_on: Optional[dt.date]
    ends_on: Optional[dt.date]
    budget: Optional[Decimal]
    cost: Optional[Decimal]
    members: int = 0
    delivered: int = 0
    failed: int = 0
    unsubscribed: int = 0
    clicked: int = 0
    responded: int = 0
    leads: int = 0
    converted: int = 0
    opportunities: int = 0
    won_first: Decimal = field(default_factory=lambda: Decimal("0.00"))
    won_last: Decimal = field(default_factory=lambda: Decimal("0.00"))

    @property
    def kind_label(self) -> str:
        from app.models.marketing import CAMPAIGN_KINDS
        return str(CAMPAIGN_KINDS.get(self.kind, self.kind))

    @property
    def status_label(self) -> str:
        from app.models.marketing import CAMPAIGN_STATUSES
        return str(CAMPAIGN_STATUSES.get(self.status, self.status))

    @property
    def cost_per_lead(self) -> Optional[Decimal]:
        """actual cost / leads; None without a cost or without leads."""
        if self.cost is None or not self.leads:
            return None
        return (Decimal(self.cost) / self.leads).quantize(Decimal("0.01"))

    def roi(self, won: Decimal) -> Optional[Decimal]:
        """(won − cost) / cost, 1.0 = 100 %; None without a positive cost."""
        if not self.cost:
            return None
        cost = Decimal(self.cost)
        return ((won - cost) / cost).quantize(Decimal("0.0001"))

    @property
    def roi_first(self) -> Optional[Decimal]:
        return self.roi(self.won_first)

    @property
    def roi_last(self) -> Optional[Decimal]:
        return self.roi(self.won_last)

    def to_dict(self) -> dict[str, Any]:
        def money(v):
            return None if v is None else f"{Decimal(v):.2f}"

        def rate(v):
            return None if v is None else float(v)

        return {"campaign_id": self.campaign_id, "name": self.name, "kind": self.kind,
                "status": self.status,
                "starts_on": self.starts_on.isoformat() if self.starts_on else None,
                "ends_on": self.ends_on.isoformat() if self.ends_on else None,
                "budget": money(self.budget), "actual_cost": money(self.cost),
                "members": self.members, "delivered": self.delivered, "failed": self.failed,
                "unsubscribed": self.unsubscribed, "clicked": self.clicked,
                "responded": self.responded, "leads": self.leads, "converted": self.converted,
                "opportunities": self.opportunities, "won_first_touch": money(self.won_first),
                "won_last_touch": money(self.won_last),
                "cost_per_lead": money(self.cost_per_lead), "roi_first_touch":
                rate(self.roi_first), "roi_last_touch": rate(self.roi_last)}


NEWEST_FIRST = (Campaign.starts_on.desc(), Campaign.id.desc())  # the effect table's order


def newest_campaign_ids(limit: int) -> list[int]:
    """The first `limit` campaigns of the effect table (its order: newest start first)."""
    return list(db.session.execute(select(Campaign.id).order_by(*NEWEST_FIRST)
                                   .limit(limit)).scalars())


def touches_per_day(since: dt.datetime, until: dt.datetime) -> dict[tuple[str, str], int]:
    """{('YYYY-MM-DD' business day, kind): touches} recorded in [since, until) over every
    campaign: the responses (clicks, sign-ups, marked responses) as they came in, counted in
    the database. Aggregates only, for the effect table's readers (may_read_effect)."""
    from app.services.stats import local_day

    day = local_day(CampaignTouch.occurred_at)
    return {(str(d), kind): n for d, kind, n in db.session.execute(
        select(day, CampaignTouch.kind, func.count())
        .where(CampaignTouch.occurred_at >= since, CampaignTouch.occurred_at < until)
        .group_by(day, CampaignTouch.kind))}


def _grouped(statement) -> dict[int, Any]:
    return {row[0]: row[1:] for row in db.session.execute(statement)}


def effect(campaign_ids: Optional[Iterable[int]], actor: Optional[User]) -> list[Effect]:
    """The effect of these campaigns (None: every campaign), newest first — eight statements
    whatever the number of campaigns, members and deals."""
    if not may_read_effect(actor):
        raise PermissionDenied(tr("Your role cannot read campaign effects"))
    q = select(Campaign).order_by(*NEWEST_FIRST)
    if campaign_ids is not None:
        q = q.where(Campaign.id.in_(sorted({int(i) for i in campaign_ids}) or [0]))
    campaigns = list(db.session.execute(q).scalars())
    if not campaigns:
        return []
    ids = None if campaign_ids is None else [c.id for c in campaigns]

    def scoped(statement, column):
        return statement if ids is None else statement.where(column.in_(ids))

    m, msg, opt = CampaignMember, CampaignMessage, MarketingOptOut
    members = _grouped(scoped(select(m.campaign_id, func.count()), m.campaign_id)
                       .group_by(m.campaign_id))
    sent = {}
    for cid, status, n in db.session.execute(scoped(
            select(msg.campaign_id, msg.status, func.count())
            .where(msg.status.in_(("sent", "failed"))), msg.campaign_id)
            .group_by(msg.campaign_id, msg.status)):
        sent[(cid, status)] = n
    optouts = _grouped(scoped(select(opt.campaign_id, func.count()), opt.campaign_id)
                       .group_by(opt.campaign_id))
    t, lead = CampaignTouch.__table__, Lead.__table__
    answered = t.c.kind.in_(("signup", "response"))
    created = t.c.lead_created.is_(True)
    touches = _grouped(scoped(select(
        t.c.campaign_id,
        func.count(func.distinct(case((t.c.kind == "click", t.c.member_id)))),
        func.count(func.distinct(case((answered, t.c.customer_id))))
        + func.count(func.distinct(case((answered, t.c.lead_id)))),
        func.count(func.distinct(case((created, t.c.lead_id)))),
        func.count(func.distinct(case((created, lead.c.converted_customer_id)))))
        .select_from(t.outerjoin(lead, lead.c.id == t.c.lead_id)), t.c.campaign_id)
        .group_by(t.c.campaign_id))
    opportunities = _grouped(_opportunities(ids))
    won = attribution(ids)
    out = []
    for c in campaigns:
        e = Effect(c.id, c.name, c.kind, c.status, c.starts_on, c.ends_on, c.budget,
                   c.actual_cost, members=int((members.get(c.id) or (0,))[0]),
                   delivered=sent.get((c.id, "sent"), 0), failed=sent.get((c.id, "failed"), 0),
                   unsubscribed=int((optouts.get(c.id) or (0,))[0]),
                   opportunities=int((opportunities.get(c.id) or (0,))[0]))
        if c.id in touches:
            e.clicked, e.responded, e.leads, e.converted = (int(v or 0) for v in touches[c.id])
        if c.id in won:
            e.won_first, e.won_last = won[c.id].won_first, won[c.id].won_last
        out.append(e)
    return out


def _opportunities(ids: Optional[list[int]]):
    """(campaign, opportunities opened on a customer it touched — directly or through a lead
    converted into it — at or after its first touch of that customer)."""
    t, lead, o = CampaignTouch.__table__, Lead.__table__, Opportunity.__table__
    direct = select(t.c.campaign_id, t.c.customer_id.label("customer_id"), t.c.occurred_at) \
        .where(t.c.customer_id.isnot(None))
    via = (select(t.c.campaign_id, lead.c.converted_customer_id.label("customer_id"),
                  t.c.occurred_at)
           .select_from(t.join(lead, lead.c.id == t.c.lead_id))
           .where(lead.c.converted_customer_id.isnot(None)))
    if ids is not None:
        direct = direct.where(t.c.campaign_id.in_(ids))
        via = via.where(t.c.campaign_id.in_(ids))
    both = union_all(direct, via).subquery()
    firsts = (select(both.c.campaign_id, both.c.customer_id,
                     func.min(both.c.occurred_at).label("first_at"))
              .group_by(both.c.campaign_id, both.c.customer_id).subquery())
    return (select(firsts.c.campaign_id, func.count(o.c.id))
            .select_from(firsts.join(o, and_(o.c.customer_id == firsts.c.customer_id,
                                             o.c.created_at >= firsts.c.first_at)))
            .group_by(firsts.c.campaign_id))


def effect_of(campaign_id: Any, actor: Optional[User]) -> Effect:
    """One campaign's effect (the API's stats); NotFound for a campaign that does not exist."""
    if not may_read_effect(actor):
        raise PermissionDenied(tr("Your role cannot read campaign effects"))
    campaign = get_campaign(campaign_id)
    return effect([campaign.id], actor)[0]


# The export's columns: (key of Effect.to_dict, header).
EFFECT_COLUMNS = [
    ("campaign_id", _l("ID")), ("name", _l("Campaign")), ("kind_label", _l("Type")),
    ("status_label", _l("Status")), ("starts_on", _l("Starts on")), ("ends_on", _l("Ends on")),
    ("members", _l("Campaign members")), ("delivered", _l("Delivered")), ("failed", _l("Failed")),
    ("unsubscribed", _l("Unsubscribed")), ("clicked", _l("Clicked")),
    ("responded", _l("Responded")), ("leads", _l("Leads")),
    ("converted", _l("Converted customers")), ("opportunities", _l("Opportunities")),
    ("budget", _l("Budget")), ("actual_cost", _l("Actual cost")),
    ("won_first_touch", _l("Won amount (first touch)")),
    ("won_last_touch", _l("Won amount (last touch)")), ("cost_per_lead", _l("Cost per lead")),
    ("roi_first_touch", _l("ROI (first touch)")), ("roi_last_touch", _l("ROI (last touch)")),
]


def effect_header() -> list[str]:
    return [str(label) for _key, label in EFFECT_COLUMNS]


def effect_rows(effects: list[Effect]) -> list[list]:
    """The table as export rows (money as text with two decimals, ROI as a percentage)."""
    out = []
    for e in effects:
        d = e.to_dict()
        d["kind_label"], d["status_label"] = e.kind_label, e.status_label
        for key in ("roi_first_touch", "roi_last_touch"):
            d[key] = None if d[key] is None else f"{Decimal(str(d[key])) * 100:.2f}%"
        out.append(["" if d[key] is None else d[key] for key, _label in EFFECT_COLUMNS])
    return out


# --- lists on the campaign's responses page -----------------------------------------------------
PAGE_SIZE = 50


@dataclass
class MemberRow:
    id: int
    record: str              # "customer" or "lead"
    record_id: int
    name: str
    mobile: Optional[str]
    email: Optional[str]
    responded: bool = False
    # a touch's
    kind: str = ""
    kind_label: str = ""
    url: Optional[str] = None
    note: Optional[str] = None
    occurred_at: Optional[dt.datetime] = None
    recorded_by: str = ""


def _record_columns(customer_id_col, lead_id_col):
    """The outer joins and columns of the customer or lead a row points at, with its holder
    (the masking rule's input), read in the row's own statement."""
    from sqlalchemy.orm import aliased

    from app.models import LeadOwnership

    c, lo, o, lead = aliased(Customer), aliased(LeadOwnership), aliased(Ownership), aliased(Lead)
    cols = (c.id.label("c_id"), c.name.label("c_name"), c.mobile.label("c_mobile"),
            c.email.label("c_email"), o.owner_id.label("c_owner"), o.pool_id.label("c_pool"),
            lead.id.label("l_id"), lead.person_name, lead.company_name,
            lead.mobile.label("l_mobile"), lead.email.label("l_email"),
            lo.owner_id.label("l_owner"), lo.pool_id.label("l_pool"))

    def joins(q):
        return (q.outerjoin(c, c.id == customer_id_col).outerjoin(o, o.customer_id == c.id)
                .outerjoin(lead, lead.id == lead_id_col).outerjoin(lo, lo.lead_id == lead.id))

    return cols, joins


def _shown_record(row, customer_rule, lead_rule) -> dict[str, Any]:
    from app.services import masking

    if row.c_id is not None:
        full = customer_rule(row.c_owner, row.c_pool)
        return {"record": "customer", "record_id": row.c_id, "name": row.c_name,
                "mobile": masking.shown("mobile", row.c_mobile, full),
                "email": masking.shown("email", row.c_email, full)}
    if row.l_id is not None:
        full = lead_rule(row.l_owner, row.l_pool)
        name = (f"{row.company_name}（{row.person_name}）" if row.company_name and row.person_name
                else row.company_name or row.person_name or f"#{row.l_id}")
        return {"record": "lead", "record_id": row.l_id, "name": name,
                "mobile": masking.shown("mobile", row.l_mobile, full),
                "email": masking.shown("email", row.l_email, full)}
    return {"record": "", "record_id": 0, "name": "", "mobile": None, "email": None}


def _page(q, key, after: Any, size: int):
    cursor = parse_pk(after) if after not in (None, "") else None
    if cursor is not None:
        q = q.where(key < cursor)
    rows = db.session.execute(q.order_by(key.desc()).limit(size + 1)).all()
    return rows[:size], (rows[size - 1].id if len(rows) > size else None)


def member_page(actor: User, campaign_id: int, after: Any = None,
                size: int = PAGE_SIZE) -> tuple[list[MemberRow], Optional[int]]:
    """A page of the campaign's members, newest first (keyset by id), contact details masked
    by the rule, and whether each responded: two statements (and the rules' own reads)."""
    from app.services import masking

    _require_manager_of_campaigns(actor)
    m = CampaignMember
    cols, joins = _record_columns(m.customer_id, m.lead_id)
    rows, next_after = _page(joins(select(m.id, *cols).select_from(m))
                             .where(m.campaign_id == campaign_id), m.id, after, size)
    answered = set(db.session.execute(select(CampaignTouch.member_id).where(
        CampaignTouch.member_id.in_([r.id for r in rows] or [0]),
        CampaignTouch.kind.in_(("signup", "response")))).scalars())
    customer_rule, lead_rule = masking.rule_for(actor), lead_service.contact_rule(actor)
    return ([MemberRow(id=r.id, responded=r.id in answered,
                       **_shown_record(r, customer_rule, lead_rule)) for r in rows], next_after)


def touch_page(actor: User, campaign_id: int, after: Any = None,
               size: int = PAGE_SIZE) -> tuple[list[MemberRow], Optional[int]]:
    """A page of the campaign's touches, newest first (keyset by id), with the record each
    landed on, contact details masked by the rule: one statement (and the rules' reads)."""
    from app.models.marketing import TOUCH_KINDS
    from app.services import masking
    from sqlalchemy.orm import aliased

    from app.models import Employee

    _require_manager_of_campaigns(actor)
    t = CampaignTouch
    by = aliased(Employee)
    cols, joins = _record_columns(t.customer_id, t.lead_id)
    q = joins(select(t.id, t.kind, t.url, t.note, t.occurred_at, by.first_name, by.last_name,
                     by.username, *cols).select_from(t)).outerjoin(by, by.id == t.recorded_by_id)
    rows, next_after = _page(q.where(t.campaign_id == campaign_id), t.id, after, size)
    customer_rule, lead_rule = masking.rule_for(actor), lead_service.contact_rule(actor)
    out = []
    for r in rows:
        who = f"{r.last_name or ''}{r.first_name or ''}".strip() or (r.username or "")
        out.append(MemberRow(id=r.id, kind=r.kind, kind_label=str(TOUCH_KINDS.get(r.kind, r.kind)),
                             url=r.url, note=r.note, occurred_at=r.occurred_at, recorded_by=who,
                             **_shown_record(r, customer_rule, lead_rule)))
    return out, next_after


# --- the customer's timeline ------------------------------------------------------------------
def _register_timeline() -> None:
    from flask_babel import gettext

    from app.services import timeline

    @timeline.source("campaign_touch")
    class CampaignTouches:
        """Responses to campaigns: on the customer, and on the leads converted into it."""

        @staticmethod
        def _query(history):
            converted = select(Lead.id).where(Lead.converted_customer_id.in_(history.ids))
            return select(CampaignTouch).where(or_(
                CampaignTouch.customer_id.in_(history.ids),
                CampaignTouch.lead_id.in_(converted)))

        @staticmethod
        def count(history) -> int:
            return db.session.execute(select(func.count()).select_from(
                CampaignTouches._query(history).subquery())).scalar_one()

        @staticmethod
        def newest(history, limit: int) -> list:
            from sqlalchemy.orm import selectinload

            rows = db.session.execute(CampaignTouches._query(history).options(
                selectinload(CampaignTouch.campaign), selectinload(CampaignTouch.recorded_by))
                .order_by(CampaignTouch.occurred_at.desc(), CampaignTouch.id.desc())
                .limit(limit)).scalars()
            out = []
            for t in rows:
                summary = gettext("Campaign %(campaign)s: %(kind)s",
                                  campaign=t.campaign.name if t.campaign else "",
                                  kind=t.kind_label)
                if t.note:
                    summary += " — " + t.note
                actor = t.recorded_by.display_name if t.recorded_by is not None else ""
                out.append(timeline.Entry(t.occurred_at, "campaign_touch", summary, actor))
            return out


_register_timeline()


@dataclass
class OwnMemberRow:
    id: int
    campaign_id: int
    campaign: str
    customer_id: int
    customer: str
    responded: bool


def own_member_page(actor: User, after: Any = None,
                    size: int = PAGE_SIZE) -> tuple[list[OwnMemberRow], Optional[int]]:
    """The campaign memberships of the customers the actor owns (where an owner marks
    "responded"), newest first, keyset by member id. Two statements a page."""
    if actor is None:
        raise PermissionDenied(tr("Your role cannot mark campaign responses"))
    m = CampaignMember
    q = (select(m.id, m.campaign_id, Campaign.name, m.customer_id, Customer.name)
         .join(Campaign, Campaign.id == m.campaign_id)
         .join(Customer, Customer.id == m.customer_id)
         .join(Ownership, Ownership.customer_id == m.customer_id)
         .where(Ownership.owner_id == actor.id)
         .order_by(m.id.desc()).limit(size + 1))
    cursor = parse_pk(after) if after not in (None, "") else None
    if cursor is not None:
        q = q.where(m.id < cursor)
    rows = db.session.execute(q).all()
    more = len(rows) > size
    rows = rows[:size]
    answered = set(db.session.execute(select(CampaignTouch.member_id).where(
        CampaignTouch.member_id.in_([r[0] for r in rows] or [0]),
        CampaignTouch.kind.in_(("signup", "response")))).scalars())
    return ([OwnMemberRow(r[0], r[1], r[2], r[3], r[4], r[0] in answered) for r in rows],
            rows[-1][0] if more else None)
