"""The rep's workbench and the manager's team view: read models over ownership and policy."""
from __future__ import annotations

import datetime as dt
import math
from typing import Any, Optional

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, tuple_, union_all
from sqlalchemy.orm import joinedload

from app import paging
from app.extensions import db
from app.models import (Customer, Department, Ownership, OwnershipEvent, Policy, TransferRequest,
                        User)
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.security import Scope, scope_of, visible_owner_ids_select
from app.services import (absences, caps, masking, opportunities, policies, reclaim,
                          segments, tally)
from app.services.pool import claimed_today_select, member_pool_ids
from app.services.times import local_day_start

# The workbench shows pages, not books: a rep holding 35,000 customers read 200 rows of a
# tab and 100 due ones, and rendering those 300 rows was a third of the page at 1M. A tab
# pages on by a cursor; the due list shows the soonest and links to the due-soon page.
TAB_ROWS = 50
SOON_LIMIT = 20
TABS = {"new": _l("Not contacted"), "following": _l("Following up"), "won": _l("Won")}


# What days_left() reads of an ownership row (columns, not the ORM object: a rep's page of
# 200 rows is read without building 400 objects).
_OWN_CLOCK = (Ownership.acquired_at, Ownership.last_followup_at, Ownership.locked,
              Ownership.won, Ownership.grade)
_TAB_ORDER = (Ownership.acquired_at, Ownership.customer_id)  # a tab's keyset (owner's index)
_CLOCK = (*_OWN_CLOCK,
          opportunities.protecting_since(Ownership.customer_id).label("protected_since"))


def days_left(own, policy: dict, now: Optional[dt.datetime] = None,
              protected_since: Optional[dt.datetime] = None) -> Optional[int]:
    """Whole days (rounded up) until the reclaim sweep's rule (reclaim.deadline) would return
    this customer to the pool; None when it is exempt (locked or won). A row carrying its own
    resolved no_followup_days / no_deal_days (segment policies) uses them, and its
    protected_since (an opportunity at a protecting stage: opportunities.protecting_since)."""
    if own.locked or own.won:
        return None
    nf = getattr(own, "no_followup_days", None)
    nd = getattr(own, "no_deal_days", None)
    when, _ = reclaim.deadline(
        own.acquired_at, own.last_followup_at,
        int(nf if nf is not None else policy["reclaim_no_followup_days"].value),
        int(nd if nd is not None else policy["reclaim_no_deal_days"].value),
        protected_since or getattr(own, "protected_since", None))
    return math.ceil((when - (now or utcnow())) / dt.timedelta(days=1))


_UNSET: Any = object()  # a page's rule not given: resolved by the panel itself


def segment_rule(user: User, now: Optional[dt.datetime] = None):
    """The reclaim rule resolved per customer (reclaim.customer_rule) for a page about the
    user's own customers when segment policies apply to some of them, else None (the user's
    plain policy is every customer's). The workbench builds it once for its panels: reading
    the policies and building the statement's CASE twice was 3 ms of the page."""
    if not segments.apply_to_some(user.id, reclaim.CUSTOMER_FIELDS):
        return None
    return reclaim.customer_rule(now or utcnow(), owner_ids=[user.id])


def my_customers(user: User, tab: str = "new", limit: Optional[int] = TAB_ROWS,
                 policy: Optional[dict] = None, after: Optional[list] = None) -> list[dict]:
    """The user's customers of a tab (not contacted / following up / won), the `limit`
    acquired longest ago after the key `after` ([acquired_at, id]), soonest reclaimed first."""
    rows = _tab_rows(user, tab, limit, policy, after)
    rows.sort(key=lambda r: (r["days_left"] is None, r["days_left"] or 0))
    return rows


def my_customers_page(user: User, tab: str = "new", after: Optional[str] = None,
                      policy: Optional[dict] = None, size: int = TAB_ROWS, rule: Any = _UNSET
                      ) -> tuple[list[dict], Optional[str]]:
    """A page of my_customers after cursor `after` (one that does not decode starts at the
    first page), and the next page's cursor (None on the last). `rule`: segment_rule's,
    when the page has it."""
    key = paging.cursor_key(after, "acquired_at", "asc", _TAB_ORDER)
    rows = _tab_rows(user, tab, size + 1, policy, key, rule)
    more = len(rows) > size
    rows = rows[:size]
    cursor = paging.encode_cursor([rows[-1]["acquired_at"], rows[-1]["id"]], "acquired_at",
                                  "asc") if more else None
    rows.sort(key=lambda r: (r["days_left"] is None, r["days_left"] or 0))
    return rows, cursor


def _tab_rows(user: User, tab: str, limit: Optional[int], policy: Optional[dict],
              after: Optional[list], rule: Any = _UNSET) -> list[dict]:
    if tab not in TABS:
        tab = "new"
    q = select(Customer.id, Customer.name, Customer.city, *_CLOCK).join(
        Ownership, Ownership.customer_id == Customer.id).where(Ownership.owner_id == user.id)
    if tab == "won":
        q = q.where(Ownership.won.is_(True))
    elif tab == "following":
        q = q.where(Ownership.won.is_(False), Ownership.last_followup_at.is_not(None))
    else:
        q = q.where(Ownership.won.is_(False), Ownership.last_followup_at.is_(None))
    if after is not None:
        q = q.where(tuple_(*_TAB_ORDER) > tuple_(*after))
    policy = policy or policies.effective_policy(user.id)
    rule = segment_rule(user) if rule is _UNSET else rule
    if rule is not None:
        # Some of my customers fall under segment policies: each row's own periods.
        q = q.add_columns(rule.no_followup_days.label("no_followup_days"),
                          rule.no_deal_days.label("no_deal_days")).where(*rule.joins)
    return [{"id": r.id, "name": r.name, "city": r.city or "",
             "acquired_at": r.acquired_at, "last_followup_at": r.last_followup_at,
             "locked": r.locked, "grade": r.grade or "", "days_left": days_left(r, policy)}
            for r in db.session.execute(q.order_by(*_TAB_ORDER).limit(limit))]


def about_to_be_reclaimed(user: User, limit: int = SOON_LIMIT,
                          now: Optional[dt.datetime] = None,
                          policy: Optional[dict] = None, rule: Any = _UNSET) -> list[dict]:
    """My customers that the sweep takes within my warn-before days, soonest first (at most
    `limit`). Selected in the database, one rule at a time: the `limit` soonest by either
    deadline (plus one row per protected customer, whose deadline an opportunity moves
    later) hold the `limit` soonest overall, so a rep with tens of thousands of customers
    reads two short index ranges, not every customer. `rule`: segment_rule's, when the page
    has it."""
    now = now or utcnow()
    policy = policy or policies.effective_policy(user.id)
    rule = segment_rule(user, now) if rule is _UNSET else rule
    if rule is not None:
        return _soon_by_segment(user, limit, now, rule)
    window = dt.timedelta(days=int(policy["warn_before_days"].value or 0) + 1)
    no_followup = dt.timedelta(days=int(policy["reclaim_no_followup_days"].value))
    no_deal = dt.timedelta(days=int(policy["reclaim_no_deal_days"].value))
    touch = reclaim.last_touch()
    mine = select(Customer.id, Customer.name, *_CLOCK).join(
        Ownership, Ownership.customer_id == Customer.id).where(
        Ownership.owner_id == user.id, Ownership.locked.is_(False), Ownership.won.is_(False))
    if no_followup:
        # Still protected by an opportunity when the window ends: not about to go.
        mine = mine.where(~opportunities.protected_customers_clause(
            Ownership.customer_id, now + window - no_followup))
    # A customer whose opportunity protects it until within the window keeps its place in
    # either range while its deadline is later: each range reads as many more rows as the
    # owner has protected customers, which holds the `limit` soonest with the protection.
    protected = db.session.execute(select(func.count()).select_from(
        opportunities.protecting_since_of_owner(user.id))).scalar_one()
    # Both short ranges in one statement (each part a subquery: SQLite takes no ORDER BY /
    # LIMIT on a UNION's own members).
    parts = [mine.where(clause).order_by(order, Ownership.customer_id)
             .limit(limit + protected).subquery()
             for clause, order in ((touch < now + window - no_followup, touch),
                                   (Ownership.acquired_at < now + window - no_deal,
                                    Ownership.acquired_at))]
    found = {}
    for r in db.session.execute(union_all(*(select(p) for p in parts))):
        left = days_left(r, policy, now)
        if left is not None and left <= window.days - 1:
            # Ordered by the exact deadline, then the id, as under segment policies: whole
            # days alone would let the cut between two "2 days left" follow the ids.
            when, _ = reclaim.deadline(r.acquired_at, r.last_followup_at, no_followup.days,
                                       no_deal.days, r.protected_since)
            found[r.id] = (when, r.id, {"id": r.id, "name": r.name, "days_left": left})
    return [row for _, _, row in sorted(found.values(), key=lambda v: v[:2])][:limit]


def _soon_by_segment(user: User, limit: int, now: dt.datetime, rule) -> list[dict]:
    """about_to_be_reclaimed when segment policies apply to some of the user's customers: the
    warnings' own selection (reclaim.due_within_warning, each customer's periods and
    warn-before days), the soonest picked in the same statement (a rep holding tens of
    thousands read every one that was due, and computed its days left in Python). Ties in
    whole days at the cut-off are decided by the exact deadline, then the id.

    An opportunity's protection only moves a deadline later, or removes a customer from the
    warning, and few customers have one: the statement orders by the deadline without it
    and keeps `limit` more rows than the owner has protected customers, which holds the
    `limit` soonest with it; the protection is then asked of those rows alone."""
    protecting = opportunities.protecting_since_of_owner(user.id)
    protected = dict(db.session.execute(
        select(protecting.c.customer_id, protecting.c.since)).all())
    # Each held customer's periods resolved once, in a subquery the planner keeps as such
    # (OFFSET 0): flattened, PostgreSQL evaluated the segment CASE of the periods about ten
    # times per row (the warning test, its cuts, the protection, the order), 23,000 rows.
    resolved = (select(Ownership.customer_id.label("id"), *_OWN_CLOCK,
                       reclaim.last_touch().label("touch"),
                       rule.no_followup_days.label("no_followup_days"),
                       rule.no_deal_days.label("no_deal_days"),
                       rule.warn_before_days.label("warn_before_days"))
                .where(Ownership.owner_id == user.id, rule.base_eligible)
                .offset(0).subquery())
    c, values, snap = resolved.c, rule.snap.values, rule.snap
    horizons = reclaim.warning_horizons(now, snap)
    due = reclaim.warning_due(snap, horizons, c.no_followup_days, c.no_deal_days,
                              c.warn_before_days, c.touch, c.acquired_at)
    soonest = reclaim.days_to_deadline(
        c.acquired_at, c.touch,
        segments.cut_of(c.no_followup_days, values["reclaim_no_followup_days"], now),
        segments.cut_of(c.no_deal_days, values["reclaim_no_deal_days"], now))
    page = (select(resolved).where(due).order_by(soonest, c.id)
            .limit(limit + len(protected)).subquery())
    # The warning's other half, the opportunity's protection, asked of the page's rows
    # alone: it removes at most the owner's protected customers, which the page holds
    # more rows than (asked of all 23,000 due rows, it was a fifth of the statement). The
    # names of the page's rows alone too.
    unprotected = reclaim.warning_unprotected(snap, horizons, page.c.no_followup_days,
                                              page.c.warn_before_days, page.c.id)
    rows = db.session.execute(select(page, Customer.name)
                              .join(Customer, Customer.id == page.c.id)
                              .where(unprotected)).all()
    # The cut in the order the statement picked by: the exact deadline (with the protection
    # now), then the id; whole days alone would let an unrelated protected customer, by
    # adding a row, change which of two customers "3 days left" makes a list of one.
    exact = {r.id: reclaim.deadline(r.acquired_at, r.last_followup_at, int(r.no_followup_days),
                                    int(r.no_deal_days), protected.get(r.id))[0] for r in rows}
    return [{"id": r.id, "name": r.name,
             "days_left": days_left(r, {}, now, protected_since=protected.get(r.id))}
            for r in sorted(rows, key=lambda r: (exact[r.id], r.id))[:limit]]


def pool_customers(user: User, limit: int = 50) -> list[dict]:
    """The newest customers of the pools the user belongs to, with the phone masked (full
    details once claimed), for the workbench's claim buttons."""
    from app.models import Pool

    pools = member_pool_ids(user)
    rows = db.session.execute(
        select(Customer.id, Customer.name, Customer.city, Customer.industry, Customer.mobile,
               Customer.phone, Pool.name.label("pool"), Ownership.pool_id)
        .join(Ownership, Ownership.customer_id == Customer.id)
        .join(Pool, Pool.id == Ownership.pool_id)
        .where(Ownership.pool_id.in_(pools or {0}))
        .order_by(Customer.id.desc()).limit(limit)).all()
    rule = masking.rule_for(user)
    return [{"id": r.id, "name": r.name, "city": r.city or "", "industry": r.industry or "",
             "pool": r.pool, "contact": masking.shown(
                 "mobile", r.mobile or r.phone or "", rule(None, r.pool_id)) or ""}
            for r in rows]


def standing(user_id: int) -> dict[str, int]:
    """Where the user stands, in one statement: the workbench tabs (new / following / won),
    what counts against the cap (unlocked; unlocked and not won), the locked ones (all from
    the owner tally, app.services.tally), today's claims, and the leave they are on today
    (away_starts_on / away_ends_on, None when at work)."""
    row = tally.read(tally.one_owner_select(
        user_id, ("fresh", "following", "won", "unlocked", "unlocked_unwon", "locked"))
        .add_columns(claimed_today_select(user_id).label("claimed_today"),
                     *(absences.current_select(user_id, column).label(f"away_{column}")
                       for column in ("starts_on", "ends_on")))).one()
    out = dict(row._mapping)
    out["new"] = out.pop("fresh")
    return {k: int(v) if k in _STANDING_COUNTS else v for k, v in out.items()}


_STANDING_COUNTS = {"new", "following", "won", "unlocked", "unlocked_unwon", "locked",
                    "claimed_today"}


def tab_counts(user: User, counts: Optional[dict] = None) -> dict[str, int]:
    """The workbench tabs' counts (from standing(), read now unless given)."""
    counts = counts or standing(user.id)
    return {tab: counts[tab] for tab in TABS}


def limits(user_id: int, policy: Optional[dict] = None,
           counts: Optional[dict] = None) -> dict:
    """The user's effective rules with where each comes from, and where they stand today
    (pass the policy and standing() when the caller already read them)."""
    policy = policy or policies.effective_policy(user_id)
    counts = counts or standing(user_id)
    owned = caps.room_of(policy, counts["unlocked"], counts["unlocked_unwon"])
    return {"policy": {k: {"value": v.value, "source": v.source} for k, v in policy.items()},
            "owned": owned.have, "locked": counts["locked"],
            "claimed_today": counts["claimed_today"]}


def my_requests(user: User) -> list[TransferRequest]:
    return list(db.session.execute(select(TransferRequest).where(
        (TransferRequest.applicant_id == user.id) | (TransferRequest.from_owner_id == user.id)
        | (TransferRequest.to_owner_id == user.id)).order_by(TransferRequest.id.desc())
        .limit(100).options(joinedload(TransferRequest.from_owner),
                            joinedload(TransferRequest.to_owner))).scalars())


def team(manager: User) -> list[dict]:
    """Each active user in the manager's scope with their counts against their caps: what
    limits() gives one user, for the whole team in five statements (the users with their
    departments, every policy row, the owned / locked counts from the owner tally, today's
    claims grouped by rep, who is on leave today), whatever the team's size."""
    scope = scope_of(manager) or Scope.OWN
    users_q = select(User).options(joinedload(User.department)) \
        .where(User.employment_status == EMPLOYMENT_ACTIVE).order_by(User.username)
    if scope != Scope.ALL:
        users_q = users_q.where(User.id.in_(visible_owner_ids_select(manager, scope)))
    users = db.session.execute(users_q).scalars().all()
    if not users:
        return []
    ids = [u.id for u in users]
    policy_rows = db.session.execute(
        select(*policies.LAYER_COLUMNS, Policy.user_id.label("policy_user_id")).select_from(
            Policy.__table__.outerjoin(Department.__table__,
                                       Department.id == Policy.department_id))).all()
    counts = tally.counts_of(ids)
    claims = dict(db.session.execute(
        select(OwnershipEvent.to_owner_id, func.count()).where(
            OwnershipEvent.to_owner_id.in_(ids), OwnershipEvent.kind == "claimed",
            OwnershipEvent.created_at >= local_day_start())
        .group_by(OwnershipEvent.to_owner_id)).all())
    away = absences.current_absences(ids)
    out = []
    for user in users:
        chain = policies.chain_from_path(user.department.path if user.department else None)
        rows = [r for r in policy_rows if r.scope == "global"
                or r.scope == "user" and r.policy_user_id == user.id
                or r.scope == "department" and r.department_id in chain]
        policy = policies.resolve(rows, chain)
        c = counts.get(user.id, {})
        owned = caps.room_of(policy, c.get("unlocked", 0), c.get("unlocked_unwon", 0))
        out.append({"id": user.id, "username": user.username, "name": user.display_name,
                    "department": user.department.name if user.department else "",
                    "policy": {k: {"value": v.value, "source": v.source}
                               for k, v in policy.items()},
                    "owned": owned.have, "locked": c.get("locked", 0),
                    "claimed_today": claims.get(user.id, 0),
                    "absence": absences.on_leave_text(*away[user.id])
                    if user.id in away else ""})
    return out


def my_absence(user: User, counts: Optional[dict] = None) -> str:
    """"On leave from–to" when the user is away today, else "" (the workbench's banner;
    from standing() when given)."""
    if counts is not None:
        away = (counts["away_starts_on"], counts["away_ends_on"]) \
            if counts["away_starts_on"] is not None else None
    else:
        away = absences.current_absences([user.id]).get(user.id)
    return absences.on_leave_text(*away) if away else ""


# --- 客户服务 (issue 17): the ticket panels ---------------------------------------------------
def ticket_panels(user: User, now: dt.datetime) -> dict:
    """Agents: their open tickets, nearest SLA due first, with the time left; reps and
    managers: the open tickets of their customers (app.services.service_panels). Empty lists
    for a user the panel is not for (the page then shows no panel)."""
    from app.security import ROLE_MANAGER, ROLE_REP, has_role
    from app.services import service_panels, tickets

    agent = tickets.is_service_user(user)
    owner = not agent and has_role(user, ROLE_REP, ROLE_MANAGER)
    return {"mine": service_panels.my_open_tickets(user, now) if agent else [],
            "customers": service_panels.open_tickets_of_my_customers(user) if owner else [],
            "for_agent": agent, "for_owner": owner,
            "duration": service_panels.duration_text}
