"""Ownership-effect evaluation (归属效果评估): which way of giving customers to reps converts.

The unit is a **receipt**: one ownership event that gave a customer to a rep (kinds created
with an owner, assigned, claimed, transferred, rule-assigned; merges are not acquisitions).
A customer received twice counts twice, once per holding. A holding ends at the next event
that moves the customer away from that rep (released, reclaimed, transferred, merged…).

Per receipt, all in SQL (correlated subqueries over the indexed event, follow-up and deal
tables, then GROUP BY; the medians by window functions), on SQLite and PostgreSQL:
- the first follow-up the receiving rep logged during the holding, in hours after receipt;
- the first deal the receiving rep won on the customer from the day of receipt to the day the
  holding ended (deal dates are business days, and so is the receipt's day: its stored UTC
  time shifted by the business zone's offset);
- whether the holding ended in a reclaim, and if so whether someone else won the customer
  afterwards (re-capture).

Rates and their denominators: "followed up within N days" and "won within 30 / 90 / 180
days" count only the receipts at least N (30, 90, 180) days old at the time of the report
— a cohort too young to be judged is left out of the denominator, not counted as a failure.
The reclaim rate is over every receipt (reclaimed so far); the re-capture rate over the
reclaimed ones; "won after a transfer" is the 90-day rate of the transferred receipts.
Every proportion has a 95 % Wilson score interval. A rule or strategy is "above / below
average" only when its interval excludes the rate of all receipts in the report; otherwise
there is no clear difference (12 customers prove little against 1,200).

Grouped per rep (the receiving rep), department (the rep's department now: events do not
record it), acquisition channel, assignment rule (the event's `rule:<name>`), distribution
strategy (the rule's strategy now, "fixed rep" for a rule that names one rep, and the
managers' even distribution), transfer trigger, and cohort month (business time).

Who: admins and auditors read every receipt; a sales manager the receipts of the reps in
their scope (the customer list's owners, app.security.visible_owner_ids); a rep only their
own receipts (their own row: how their customers came to them and what became of them).
Back-office staff, marketing and the service roles do not get it.
"""
from __future__ import annotations

import datetime as dt
import io
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from sqlalchemy import (Date, String, and_, case, cast, exists, func, literal, or_, select,
                        union_all)
from sqlalchemy.orm import aliased

from app.extensions import db
from app.models import AssignmentRule, Deal, Department, FollowUp, OwnershipEvent, User
from app.models.customer import utcnow
from app.models.rule import RULE_STRATEGIES
from app.security import (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_REP, Scope, has_role,
                          scope_of, visible_owner_ids)
from app.services.periods import parse_period
from app.services.errors import PermissionDenied, ValidationFailed, lazy_tr, tr
from app.services.event_labels import rule_label
from app.services.import_run import IMPORT_REASON_PREFIX
from app.services.times import business_zone, from_local, local_date

DEFAULT_DAYS, MAX_DAYS = 365, 1100
DEFAULT_FOLLOWUP_DAYS, MAX_FOLLOWUP_DAYS = 7, 90
WON_WINDOWS = (30, 90, 180)
VERDICT_DAYS = 90  # the window the plain-language lines compare
Z = 1.959964  # 95 %
READERS = (ROLE_ADMIN, ROLE_AUDITOR, ROLE_MANAGER, ROLE_REP)
RECEIVING_KINDS = ("created", "assigned", "claimed", "transferred", "rule-assigned")
EVEN_DISTRIBUTION = "even distribution"  # app.services.assignment's manual split

TABLES = ("rule", "strategy", "channel", "rep", "department", "cohort", "transfer")
TABLE_TITLES = {
    "rule": lazy_tr("By assignment rule"), "strategy": lazy_tr("By distribution strategy"),
    "channel": lazy_tr("By acquisition channel"), "rep": lazy_tr("By rep"),
    "department": lazy_tr("By department"), "cohort": lazy_tr("By month received"),
    "transfer": lazy_tr("After a transfer, by trigger")}
CHANNELS = {"claimed": lazy_tr("Claimed from a pool"), "assigned": lazy_tr("Assigned"),
            "distributed": lazy_tr("Distributed evenly"),
            "rule-assigned": lazy_tr("Assigned by rule"), "transferred": lazy_tr("Transferred"),
            "imported": lazy_tr("Imported from a file"), "created": lazy_tr("Created by the rep")}
STRATEGIES = dict(RULE_STRATEGIES, fixed=lazy_tr("One named rep"),
                  manual_even=lazy_tr("Manual even distribution"))
# The columns of every table, in order (CSV / XLSX headers, the CLI); rates are fractions.
COLUMNS = ["name", "received", "followup_median_hours", "followup_n", "followup_rate",
           "followup_low", "followup_high"]
for _d in WON_WINDOWS:
    COLUMNS += [f"won{_d}_n", f"won{_d}_rate", f"won{_d}_low", f"won{_d}_high"]
COLUMNS += ["reclaimed", "reclaim_rate", "recaptured", "recapture_rate", "transfer_n",
            "transfer_won_rate"]


def column_title(key: str, followup_days: int = DEFAULT_FOLLOWUP_DAYS) -> str:
    fixed = {"name": tr("Name"), "received": tr("Customers received"),
             "followup_median_hours": tr("Median hours to first follow-up"),
             "followup_n": tr("Judged for follow-up (%(n)s days old)", n=followup_days),
             "followup_rate": tr("Followed up within %(n)s days", n=followup_days),
             "followup_low": tr("Follow-up rate low (%(level)s)", level="95%"),
             "followup_high": tr("Follow-up rate high (%(level)s)", level="95%"),
             "reclaimed": tr("Reclaimed"), "reclaim_rate": tr("Reclaim rate"),
             "recaptured": tr("Won by someone else after reclaim"),
             "recapture_rate": tr("Re-capture rate"),
             "transfer_n": tr("Transferred in (90 days old)"),
             "transfer_won_rate": tr("Won within 90 days after a transfer")}
    if key in fixed:
        return fixed[key]
    days, what = key[3:].split("_")
    return {"n": tr("Judged for %(d)s-day win (%(d)s days old)", d=days),
            "rate": tr("Won within %(d)s days", d=days),
            "low": tr("Won within %(d)s days low (%(level)s)", d=days, level="95%"),
            "high": tr("Won within %(d)s days high (%(level)s)", d=days, level="95%")}[what]


def can_read(actor: Optional[User]) -> bool:
    return has_role(actor, *READERS)


# --- statistics ---------------------------------------------------------------------------------
def wilson(k: int, n: int, z: float = Z) -> tuple[Optional[float], Optional[float]]:
    """The Wilson score interval of k successes in n (None, None when n is 0)."""
    if not n:
        return None, None
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _rate(k: int, n: int) -> Optional[float]:
    return round(k / n, 3) if n else None


# --- filters ------------------------------------------------------------------------------------
@dataclass
class Filters:
    start: dt.date
    end: dt.date
    department_id: Optional[int] = None
    followup_days: int = DEFAULT_FOLLOWUP_DAYS

    @property
    def bounds(self) -> tuple[dt.datetime, dt.datetime]:
        return (from_local(dt.datetime.combine(self.start, dt.time())),
                from_local(dt.datetime.combine(self.end + dt.timedelta(days=1), dt.time())))

    def query(self) -> dict[str, str]:
        out = {"start": str(self.start), "end": str(self.end), "days": str(self.followup_days)}
        if self.department_id:
            out["dept"] = str(self.department_id)
        return out


def _int(value: Any, name: str, errors: dict, lo: int, hi: int) -> Optional[int]:
    try:
        if isinstance(value, bool) or (isinstance(value, str) and len(value) > 12):
            raise ValueError(value)
        number = int(str(value).strip())
    except (TypeError, ValueError):
        errors[name] = tr("Give a whole number")
        return None
    if not lo <= number <= hi:
        errors[name] = tr("Give a number from %(lo)s to %(hi)s", lo=lo, hi=hi)
        return None
    return number


def parse_filters(actor: User, start: Any = None, end: Any = None, dept: Any = None,
                  days: Any = None, today: Optional[dt.date] = None) -> Filters:
    """Received from `start` to `end` (YYYY-MM-DD, business dates, both included; default the
    last DEFAULT_DAYS days), `dept` a department id in the reader's scope (its sub-departments
    included), `days` the N of "followed up within N days". One error per bad parameter."""
    today = today or local_date(utcnow())
    errors: dict[str, str] = {}

    frm, to = parse_period(start, end, today, DEFAULT_DAYS, MAX_DAYS, errors)
    n = DEFAULT_FOLLOWUP_DAYS if days in (None, "") else _int(days, "days", errors, 1,
                                                               MAX_FOLLOWUP_DAYS)
    dept_id = None if dept in (None, "") else _int(dept, "dept", errors, 1, 2**31 - 1)
    if dept_id is not None:
        department = db.session.get(Department, dept_id)
        if department is None:
            errors["dept"] = tr("There is no such department")
        elif _owner_filter(actor) is not None and not db.session.execute(
                select(User.id).where(User.id.in_(_owner_filter(actor)),
                                      User.department_id.in_(_subtree(department)))
                .limit(1)).first():
            errors["dept"] = tr("The department is outside your data scope")
    if errors:
        raise ValidationFailed(errors)
    return Filters(frm, to, dept_id, n or DEFAULT_FOLLOWUP_DAYS)


def departments(actor: User) -> list[tuple[int, str]]:
    """The departments the reader may filter by: every one for admins and auditors, else the
    departments of the reps in their scope."""
    q = select(Department.id, Department.name).order_by(Department.path, Department.name)
    owners = _owner_filter(actor)
    if owners is not None:
        q = q.where(Department.id.in_(select(User.department_id).where(
            User.id.in_(sorted(owners)))))
    return [tuple(r) for r in db.session.execute(q).all()]


def _subtree(department: Department):
    return select(Department.id).where(Department.path.startswith(department.path,
                                                                  autoescape=True))


def _owner_filter(actor: User) -> Optional[frozenset[int]]:
    """The receiving reps the actor may evaluate; None for everyone (admins, auditors, and the
    CLI, which reads as the operator: report(None, unscoped=True))."""
    if actor is None or has_role(actor, ROLE_ADMIN, ROLE_AUDITOR):
        return None
    if has_role(actor, ROLE_MANAGER):
        scope = scope_of(actor) or Scope.OWN
        return None if scope == Scope.ALL else visible_owner_ids(actor, scope)
    return frozenset({actor.id})


# --- the SQL --------------------------------------------------------------------------------
class _Dialect:
    """The few expressions SQLite and PostgreSQL spell differently."""

    def __init__(self):
        self.name = db.session.get_bind().dialect.name
        offset = business_zone().utcoffset(dt.datetime.now()) or dt.timedelta()
        self.offset = offset

    def day(self, col):
        """The business day of a stored UTC time (deal dates are business days): shifted by
        the zone's offset today (Asia/Shanghai keeps one all year)."""
        minutes = int(self.offset.total_seconds() // 60)
        if self.name == "sqlite":
            return func.date(col, f"{minutes:+d} minutes")
        return cast(col + dt.timedelta(minutes=minutes), Date)

    def days_between(self, later_date, earlier_date):
        if self.name == "sqlite":
            return func.julianday(later_date) - func.julianday(earlier_date)
        return later_date - earlier_date  # date - date: whole days

    def hours_between(self, later, earlier):
        if self.name == "sqlite":
            return (func.julianday(later) - func.julianday(earlier)) * 24.0
        return func.extract("epoch", later - earlier) / 3600.0

    def month(self, col):
        """The business-time month (YYYY-MM): the zone's offset now (Asia/Shanghai has none
        other)."""
        minutes = int(self.offset.total_seconds() // 60)
        if self.name == "sqlite":
            return func.strftime("%Y-%m", col, f"{minutes:+d} minutes")
        return func.to_char(col + self.offset, "YYYY-MM")


def _facts(actor: User, filters: Filters, now: dt.datetime):
    """One row per receipt in the reader's scope and the period, with its outcome."""
    d = _Dialect()
    e = OwnershipEvent
    lo, hi = filters.bounds
    later = aliased(OwnershipEvent)
    end_id = (select(func.min(later.id)).where(
        later.customer_id == e.customer_id, later.id > e.id,
        later.from_owner_id == e.to_owner_id).correlate(e).scalar_subquery())
    imported = and_(e.kind == "created", e.reason.startswith(IMPORT_REASON_PREFIX,
                                                             autoescape=True))
    channel = case(
        (e.kind == "claimed", "claimed"),
        (and_(e.kind == "assigned", e.rule == EVEN_DISTRIBUTION), "distributed"),
        (e.kind == "assigned", "assigned"),
        (e.kind == "transferred", "transferred"),
        (e.kind == "rule-assigned", "rule-assigned"),
        (imported, "imported"),
        (e.rule.startswith("rule:"), "rule-assigned"),
        else_="created")
    q = select(e.id.label("rid"), e.customer_id.label("cid"), e.to_owner_id.label("owner_id"),
               e.created_at.label("received_at"), e.rule.label("rule"),
               channel.label("channel"), end_id.label("end_id")).where(
        e.kind.in_(RECEIVING_KINDS), e.to_owner_id.is_not(None),
        e.created_at >= lo, e.created_at < hi)
    owners = _owner_filter(actor)
    if owners is not None:
        q = q.where(e.to_owner_id.in_(sorted(owners)))
    if filters.department_id:
        department = db.session.get(Department, filters.department_id)
        q = q.where(e.to_owner_id.in_(select(User.id).where(
            User.department_id.in_(_subtree(department)))))
    r = q.subquery("receipt")

    ended = aliased(OwnershipEvent)
    rule_row = aliased(AssignmentRule)
    fu = (select(func.min(FollowUp.happened_at)).where(
        FollowUp.customer_id == r.c.cid, FollowUp.user_id == r.c.owner_id,
        FollowUp.happened_at >= r.c.received_at,
        or_(ended.created_at.is_(None), FollowUp.happened_at < ended.created_at))
        .correlate(r, ended).scalar_subquery())
    won = (select(func.min(Deal.won_on)).where(
        Deal.customer_id == r.c.cid, Deal.user_id == r.c.owner_id,
        Deal.won_on >= d.day(r.c.received_at),
        or_(ended.created_at.is_(None), Deal.won_on <= d.day(ended.created_at)))
        .correlate(r, ended).scalar_subquery())
    recaptured = and_(ended.kind == "reclaimed", exists().where(
        Deal.customer_id == r.c.cid, or_(Deal.user_id.is_(None), Deal.user_id != r.c.owner_id),
        Deal.won_on >= d.day(ended.created_at)).correlate(r, ended))
    strategy = case(
        (r.c.rule == EVEN_DISTRIBUTION, "manual_even"),
        (rule_row.target_type == "user", "fixed"),
        else_=rule_row.strategy)
    facts = (select(
        r.c.rid, r.c.owner_id, User.department_id.label("dept_id"), r.c.channel, r.c.rule,
        r.c.received_at, strategy.label("strategy"), d.month(r.c.received_at).label("month"),
        d.hours_between(fu, r.c.received_at).label("fu_hours"),
        d.days_between(won, d.day(r.c.received_at)).label("won_days"),
        case((ended.kind == "reclaimed", 1), else_=0).label("reclaimed"),
        case((recaptured, 1), else_=0).label("recaptured"))
        .select_from(r)
        .outerjoin(ended, ended.id == r.c.end_id)
        .outerjoin(User, User.id == r.c.owner_id)
        .outerjoin(rule_row, and_(r.c.rule.startswith("rule:"),
                                  rule_row.name == func.substr(r.c.rule, 6),
                                  rule_row.record_type == "customer")))
    # Computed once per statement (MATERIALIZED, SQLite ≥ 3.35 and PostgreSQL ≥ 12): every
    # table's GROUP BY reads the same receipts, and each receipt's subqueries run once.
    return facts.cte("facts").prefix_with("MATERIALIZED")


def _grouped(f, specs: list[tuple[str, Any, Any]], filters: Filters,
             now: dt.datetime) -> dict[str, list[dict]]:
    """Every metric's counts per value of each (table, key, where) in `specs`: one statement of
    GROUP BYs joined by UNION ALL, and one for the median hours to the first follow-up (window
    functions), both over the receipts computed once."""
    def mature(days: int):
        return f.c.received_at <= now - dt.timedelta(days=days)

    def count(cond):
        return func.sum(case((cond, 1), else_=0))

    n = filters.followup_days
    aggregates = [func.count().label("received"),
                  count(mature(n)).label("followup_n"),
                  count(and_(mature(n), f.c.fu_hours <= n * 24.0)).label("followup_k")]
    for days in WON_WINDOWS:
        aggregates += [count(mature(days)).label(f"won{days}_n"),
                       count(and_(mature(days), f.c.won_days <= days)).label(f"won{days}_k")]
    aggregates += [func.sum(f.c.reclaimed).label("reclaimed"),
                   func.sum(f.c.recaptured).label("recaptured"),
                   count(and_(f.c.channel == "transferred", mature(90))).label("transfer_n"),
                   count(and_(f.c.channel == "transferred", mature(90), f.c.won_days <= 90))
                   .label("transfer_k")]
    counts, ranks = [], []
    for table, key, where in specs:
        q = select(literal(table).label("t"), cast(key, String).label("k"), *aggregates) \
            .select_from(f).group_by(key)
        r = select(literal(table).label("t"), cast(key, String).label("k"),
                   f.c.fu_hours.label("h"),
                   func.row_number().over(partition_by=key, order_by=f.c.fu_hours).label("rn"),
                   func.count().over(partition_by=key).label("cnt")).where(
            f.c.fu_hours.is_not(None))
        if where is not None:
            q, r = q.where(where), r.where(where)
        counts.append(q)
        ranks.append(r)
    ranked = union_all(*ranks).subquery("ranked")
    medians = {(t, k): m for t, k, m in db.session.execute(
        select(ranked.c.t, ranked.c.k, func.avg(ranked.c.h)).where(
            ranked.c.rn.in_([(ranked.c.cnt + 1) // 2, (ranked.c.cnt + 2) // 2]))
        .group_by(ranked.c.t, ranked.c.k))}
    out: dict[str, list[dict]] = {table: [] for table, _k, _w in specs}
    for row in db.session.execute(union_all(*counts)):
        c = row._asdict()
        med = medians.get((c["t"], c["k"]))
        out[c["t"]].append(_row(c["k"], c, None if med is None else round(float(med), 1)))
    return out


def _row(k, c: dict, median: Optional[float]) -> dict:
    row = {"key": k, "name": k, "received": int(c["received"]),
           "followup_median_hours": median}
    for prefix, num, den in [("followup", c["followup_k"], c["followup_n"])] + [
            (f"won{d}", c[f"won{d}_k"], c[f"won{d}_n"]) for d in WON_WINDOWS]:
        num, den = int(num or 0), int(den or 0)
        low, high = wilson(num, den)
        row.update({f"{prefix}_n": den, f"{prefix}_k": num, f"{prefix}_rate": _rate(num, den),
                    f"{prefix}_low": None if low is None else round(low, 3),
                    f"{prefix}_high": None if high is None else round(high, 3)})
    reclaimed, recaptured = int(c["reclaimed"] or 0), int(c["recaptured"] or 0)
    tn, tk = int(c["transfer_n"] or 0), int(c["transfer_k"] or 0)
    row.update(reclaimed=reclaimed, reclaim_rate=_rate(reclaimed, row["received"]),
               recaptured=recaptured, recapture_rate=_rate(recaptured, reclaimed),
               transfer_n=tn, transfer_won_rate=_rate(tk, tn))
    return row


# --- the report -----------------------------------------------------------------------------
@dataclass
class Report:
    filters: Filters
    overall: Optional[dict]
    tables: dict[str, list[dict]] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # the plain-language verdict per rule


def report(actor: Optional[User], start: Any = None, end: Any = None, dept: Any = None,
           days: Any = None, now: Optional[dt.datetime] = None,
           unscoped: bool = False) -> Report:
    """The evaluation in `actor`'s scope; `unscoped` (the CLI, actor None) over everyone."""
    if not (unscoped and actor is None) and not can_read(actor):
        raise PermissionDenied(tr("You may not read the ownership-effect evaluation"))
    now = now or utcnow()
    filters = parse_filters(actor, start, end, dept, days, local_date(now))
    f = _facts(actor, filters, now)
    tables = _grouped(f, [
        ("overall", literal("all"), None),
        ("rule", f.c.rule, f.c.rule.startswith("rule:")),
        ("strategy", f.c.strategy, f.c.strategy.is_not(None)),
        ("channel", f.c.channel, None),
        ("rep", f.c.owner_id, None),
        ("department", f.c.dept_id, None),
        ("cohort", f.c.month, None),
        ("transfer", f.c.rule, f.c.channel == "transferred")], filters, now)
    overall = tables.pop("overall")
    out = Report(filters, overall[0] if overall else None)
    _name(tables)
    order = {"cohort": lambda r: r["key"]}
    for name, rows in tables.items():
        rows.sort(key=order.get(name, lambda r: (-r["received"], str(r["name"]))))
        for row in rows:
            row.pop("key")
        out.tables[name] = rows
    if out.overall:
        out.overall.pop("key")
        out.overall["name"] = tr("All customers received")
        base = out.overall[f"won{VERDICT_DAYS}_rate"]
        out.lines = ([verdict(tr("Rule %(name)s", name=r["name"]), r, base)
                      for r in out.tables["rule"]] +
                     [verdict(tr("Strategy %(name)s", name=r["name"]), r, base)
                      for r in out.tables["strategy"]])
    return out


def _name(tables: dict[str, list[dict]]) -> None:
    for r in tables["rep"] + tables["department"]:
        r["key"] = None if r["key"] is None else int(r["key"])
    users = {r["key"] for r in tables["rep"]}
    names = {u.id: u.display_name for u in db.session.execute(
        select(User).where(User.id.in_(users))).scalars()} if users else {}
    for r in tables["rep"]:
        r["name"] = names.get(r["key"], f"#{r['key']}")
    depts = {r["key"] for r in tables["department"] if r["key"] is not None}
    dnames = dict(db.session.execute(select(Department.id, Department.name).where(
        Department.id.in_(depts))).all()) if depts else {}
    for r in tables["department"]:
        r["name"] = dnames.get(r["key"], tr("(none)"))
    for r in tables["rule"]:
        r["name"] = r["key"][len("rule:"):]
    for r in tables["strategy"]:
        r["name"] = str(STRATEGIES.get(r["key"], r["key"]))
    for r in tables["channel"]:
        r["name"] = str(CHANNELS.get(r["key"], r["key"]))
    for r in tables["transfer"]:
        r["name"] = rule_label(r["key"]) or tr("(none)")


def verdict(subject: str, row: dict, base: Optional[float], days: int = VERDICT_DAYS) -> str:
    """"规则 X：90 天成交率 18%（±3%，120 个客户），高于平均" — above / below only when the
    Wilson interval excludes the rate of every receipt in the report."""
    n, rate = row[f"won{days}_n"], row[f"won{days}_rate"]
    if not n or rate is None:
        return tr("%(subject)s: no customer received long enough ago to judge its "
                  "%(days)s-day win rate", subject=subject, days=days)
    low, high = row[f"won{days}_low"], row[f"won{days}_high"]
    margin = round((high - low) / 2 * 100)
    if base is not None and low > base:
        how = tr("above average")
    elif base is not None and high < base:
        how = tr("below average")
    else:
        how = tr("no clear difference from average")
    return tr("%(subject)s: won within %(days)s days %(rate)s%% (±%(margin)s%%, %(n)s "
              "customers), %(how)s", subject=subject, days=days, rate=round(rate * 100),
              margin=margin, n=n, how=how)


# --- downloads and text ---------------------------------------------------------------------
def table_rows(result: Report, table: str) -> tuple[list[str], list[list]]:
    """(header, rows) of one table for CSV / XLSX / the CLI."""
    if table not in TABLES and table != "overall":
        raise ValidationFailed({"table": tr("The table can only be: %(choices)s",
                                            choices=", ".join(("overall",) + TABLES))})
    rows = ([result.overall] if result.overall else []) if table == "overall" \
        else result.tables.get(table, [])
    header = [column_title(k, result.filters.followup_days) for k in COLUMNS]
    return header, [[row.get(k) for k in COLUMNS] for row in rows]


def percent(value: Optional[float]) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def shown_rate(row: dict, prefix: str) -> str:
    """"18.0% (12.1–25.3%, n=120)" for the page and the mail."""
    if not row.get(f"{prefix}_n"):
        return "—"
    return (f"{percent(row[f'{prefix}_rate'])} ({row[f'{prefix}_low'] * 100:.1f}–"
            f"{row[f'{prefix}_high'] * 100:.1f}%, n={row[f'{prefix}_n']})")


def text_table(result: Report, table: str) -> str:
    """A table as aligned text (the CLI): name, received, the key rates with intervals."""
    rows = ([result.overall] if result.overall else []) if table == "overall" \
        else result.tables.get(table, [])
    header = [tr("Name"), tr("Customers received"), tr("Median hours to first follow-up"),
              tr("Followed up within %(n)s days", n=result.filters.followup_days)] + [
        tr("Won within %(d)s days", d=d) for d in WON_WINDOWS] + [tr("Reclaim rate"),
                                                                  tr("Re-capture rate")]
    lines = [header] + [[str(r["name"]), str(r["received"]),
                         "—" if r["followup_median_hours"] is None
                         else str(r["followup_median_hours"]),
                         shown_rate(r, "followup")] +
                        [shown_rate(r, f"won{d}") for d in WON_WINDOWS] +
                        [percent(r["reclaim_rate"]), percent(r["recapture_rate"])]
                        for r in rows]
    buf = io.StringIO()
    for line in lines:
        buf.write(" | ".join(line) + "\n")
    return buf.getvalue()
