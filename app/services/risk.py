"""流失风险 (issue 20 §5): per owned customer, the probability that it gets no follow-up before
its reclaim deadline ("lapse"), and for a won customer that it goes silent — no follow-up and
no deal — in the next 90 days ("silent"). Honestly:

- Examples are rebuilt point in time from the deployment's own history: every STEP_DAYS over
  the last HISTORY_DAYS, each customer then held (holdings replayed from the append-only
  ownership event log), its features from what had happened by then only, and its outcome
  from what happened after. A follow-up after the snapshot never changes its features.
- Time split: examples whose outcome window ends in the last TEST_DAYS are the test set, the
  earlier ones train the model (app.services.risk_model: logistic regression, numpy).
- The baseline is the obvious one: days since the last follow-up alone. The model is shown
  only when its test AUC beats the baseline's by MARGIN, on at least MIN_TEST examples with
  MIN_CLASS of each outcome; otherwise the workbench says that it is not shown, and why.

Approximations (said in docs/features.md): the reclaim periods are each owner's current
policy (policies are not versioned; segment policies are not applied to history), a customer
locked now is left out (locks have no history), and an opportunity's protection is not
replayed — the label is about follow-ups, which it does not change.
"""
from __future__ import annotations

import datetime as dt
import heapq
import json
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from sqlalchemy import delete, func, insert, select, text, union

from app.extensions import db
from app.models import (Customer, Deal, FollowUp, Opportunity, Ownership, OwnershipEvent,
                        RiskModel, RiskScore, Ticket, User)
from app.models.customer import utcnow
from app.models.ownership import last_touch_of
from app.services import classification, ownership, policies, risk_model, tally
from app.services.errors import N_, tr
from app.services.times import local_date

HISTORY_DAYS = 365       # how far back the examples go
STEP_DAYS = 5            # one snapshot every STEP_DAYS
TEST_DAYS = 60           # outcomes in the last TEST_DAYS: the test set
SILENT_DAYS = 90         # the silent model's horizon
MARGIN = 0.05            # AUC the model must gain over the baseline to be shown
MIN_TRAIN = 200
MIN_TEST = 100           # test examples, with at least MIN_CLASS of each outcome
MIN_CLASS = 10
MAX_CUSTOMERS = 50_000   # a larger deployment trains on an id-stratified sample of this size
PANEL_SIZE = 20          # the workbench lists this many, riskiest first
MAX_SCORED = 5_000       # customers of one owner scored per page (per batch at night)
STORED_PER_OWNER = 100   # the nightly run keeps this many riskiest per owner and kind
SCORE_LOCK_KEY = 4_242_031  # pg_advisory_xact_lock key of the nightly scoring
REASONS = 3              # top reasons shown per customer, each pushing the log-odds up by
MIN_PUSH = 0.1           # at least this much
UNKNOWN_GAP = 60.0       # the rhythm of a customer with fewer than two follow-ups in 180 days
DAY = 86400.0

# The features, in the models' order; the baseline is the first one.
LAPSE_FEATURES = ("days_since_touch", "followups_30", "followups_90", "mean_gap",
                  "owner_load", "open_opportunities", "open_tickets", "days_left")
SILENT_FEATURES = ("days_since_touch", "followups_30", "followups_90", "mean_gap",
                   "owner_load", "open_opportunities", "open_tickets", "grade",
                   "days_since_deal", "deals_365")
FEATURES = {"lapse": LAPSE_FEATURES, "silent": SILENT_FEATURES}
BASELINE = "days_since_touch"
# Days since the last touch and days left before the deadline are one clock under one policy.
CLOCK = ("days_since_touch", "days_left")

FEATURE_LABELS = {
    "days_since_touch": N_("days since the last follow-up"),
    "followups_30": N_("follow-ups in the last 30 days"),
    "followups_90": N_("follow-ups in the last 90 days"),
    "mean_gap": N_("usual days between follow-ups"),
    "owner_load": N_("owner's customers against the average owner's"),
    "open_opportunities": N_("open opportunities"),
    "open_tickets": N_("open tickets"),
    "days_left": N_("days before the reclaim deadline"),
    "grade": N_("grade (by the last 12 months' deals)"),
    "days_since_deal": N_("days since the last deal"),
    "deals_365": N_("deals in the last 12 months"),
}
KIND_LABELS = {"lapse": N_("No follow-up before the reclaim deadline"),
               "silent": N_("Won customer silent for the next 90 days")}
VERDICT_SHOWN, VERDICT_NOT_BETTER, VERDICT_TOO_FEW = "shown", "not_better", "too_few"


def _days(when) -> float:
    """A time as float days since the epoch (naive UTC); a date as its midnight."""
    if isinstance(when, dt.datetime):
        if when.tzinfo is not None:
            return when.timestamp() / DAY
        return (when - dt.datetime(1970, 1, 1)).total_seconds() / DAY
    return (dt.datetime.combine(when, dt.time()) - dt.datetime(1970, 1, 1)).total_seconds() / DAY


class Timeline:
    """Instants per customer (compact index), sorted, with counts and neighbours by binary
    search: the history the features are read from, as of any instant."""

    SPAN = 1e6  # days; keys are index * SPAN + day (float64 keeps ~1e-5 day at 1e6 customers)

    def __init__(self, index: np.ndarray, days: np.ndarray, weight: Optional[np.ndarray] = None):
        key = np.asarray(index, dtype=float) * self.SPAN + np.asarray(days, dtype=float)
        order = np.argsort(key, kind="mergesort")
        self.key = key[order]
        self.days = np.asarray(days, dtype=float)[order]
        self.weight = None if weight is None else np.asarray(weight, dtype=float)[order]

    def _pos(self, ci, t, side="right"):
        return np.searchsorted(self.key, np.asarray(ci) * self.SPAN + np.asarray(t), side=side)

    def count(self, ci, lo, hi) -> np.ndarray:
        """How many in (lo, hi]."""
        return self._pos(ci, hi) - self._pos(ci, lo)

    def last_at_or_before(self, ci, t) -> np.ndarray:
        """The latest instant <= t, NaN when none."""
        p = self._pos(ci, t) - 1
        ok = (p >= 0) & (p < len(self.key))
        ok[ok] &= np.floor(self.key[p[ok]] / self.SPAN + 1e-9) == np.asarray(ci)[ok]
        out = np.full(len(p), np.nan)
        out[ok] = self.days[p[ok]]
        return out

    def first_after(self, ci, t) -> np.ndarray:
        """The earliest instant > t, NaN when none."""
        p = self._pos(ci, t)
        ok = p < len(self.key)
        ok[ok] &= np.floor(self.key[p[ok]] / self.SPAN + 1e-9) == np.asarray(ci)[ok]
        out = np.full(len(p), np.nan)
        out[ok] = self.days[p[ok]]
        return out

    def total(self, ci, lo, hi) -> np.ndarray:
        """Sum of the weights in (lo, hi]."""
        if self.weight is None:
            return self.count(ci, lo, hi).astype(float)
        cum = np.r_[0.0, np.cumsum(self.weight)]
        return cum[self._pos(ci, hi)] - cum[self._pos(ci, lo)]


@dataclass
class History:
    """What the features read: follow-ups, deals, opportunities and tickets per customer."""
    follow_ups: Timeline
    deals: Timeline
    opps_opened: Timeline
    opps_closed: Timeline
    tickets_opened: Timeline
    tickets_closed: Timeline
    grade_a: float
    grade_b: float


def _timeline(rows, index: dict[int, int], weighted: bool = False) -> Timeline:
    rows = [r for r in rows if r[1] is not None and r[0] in index]
    ci = np.array([index[r[0]] for r in rows], dtype=float)
    days = np.array([_days(r[1]) for r in rows], dtype=float)
    weight = np.array([float(r[2]) for r in rows], dtype=float) if weighted else None
    return Timeline(ci, days, weight)


def load_history(customer_ids: Optional[list[int]], index: dict[int, int],
                 since: Optional[dt.datetime] = None,
                 extra_follow_ups: Optional[list[tuple]] = None) -> History:
    """Five statements: follow-ups (since `since`, when given), deals, opportunities, tickets
    of those customers (all of them when None), and the grading thresholds."""
    postgres = db.session.get_bind().dialect.name == "postgresql"

    def only(col):
        # One array parameter on PostgreSQL: an IN list of the panel's 5,000 ids was 5,000
        # placeholders to compile and parse in each of four statements (0.3 s at 1M).
        return [] if customer_ids is None else [ownership.in_ids(col, customer_ids, postgres)]

    # Plain rows through the session's connection: the ORM's row building was most of the
    # panel's time for tens of thousands of history rows.
    run = db.session.connection().execute
    fu_q = select(FollowUp.customer_id, FollowUp.happened_at).where(*only(FollowUp.customer_id))
    if since is not None:
        fu_q = fu_q.where(FollowUp.happened_at >= since)
    follow_ups = run(fu_q).all() + list(extra_follow_ups or [])
    deals = run(select(Deal.customer_id, Deal.won_on, Deal.amount)
                .where(*only(Deal.customer_id))).all()
    opps = run(select(Opportunity.customer_id, Opportunity.created_at, Opportunity.closed_at)
               .where(*only(Opportunity.customer_id))).all()
    tickets = run(select(Ticket.customer_id, Ticket.created_at, Ticket.resolved_at)
                  .where(Ticket.customer_id.is_not(None), *only(Ticket.customer_id))).all()
    conf = classification.settings()
    return History(_timeline(follow_ups, index), _timeline(deals, index, weighted=True),
                   _timeline([(o[0], o[1]) for o in opps], index),
                   _timeline([(o[0], o[2]) for o in opps], index),
                   _timeline([(t[0], t[1]) for t in tickets], index),
                   _timeline([(t[0], t[2]) for t in tickets], index),
                   float(conf.grade_a_min), float(conf.grade_b_min))


def features(h: History, kind: str, ci, t, start, load, nf=None, nd=None) -> np.ndarray:
    """The features of `kind` for customers `ci` held since `start` by owners whose `load` is
    their number of customers over the average owner's, as of instants `t` (all float days, arrays of one length): only what happened
    at or before t is read."""
    ci, t, start = (np.asarray(a, dtype=float) for a in (ci, t, start))
    last_fu = h.follow_ups.last_at_or_before(ci, t)
    touch = np.fmax(start, np.nan_to_num(last_fu, nan=-np.inf))
    n180 = h.follow_ups.count(ci, t - 180, t)
    first180 = h.follow_ups.first_after(ci, t - 180)
    # Fewer than two follow-ups in 180 days: no rhythm to read, a fixed "rarely".
    gap = np.where(n180 >= 2, (np.nan_to_num(last_fu) - np.nan_to_num(first180))
                   / np.maximum(n180 - 1, 1), UNKNOWN_GAP)
    cols = {
        "days_since_touch": t - touch,
        "followups_30": h.follow_ups.count(ci, t - 30, t),
        "followups_90": h.follow_ups.count(ci, t - 90, t),
        "mean_gap": gap,
        "owner_load": np.asarray(load, dtype=float),
        "open_opportunities": (h.opps_opened.count(ci, 0.0, t)
                               - h.opps_closed.count(ci, 0.0, t)),
        "open_tickets": (h.tickets_opened.count(ci, 0.0, t)
                         - h.tickets_closed.count(ci, 0.0, t)),
    }
    if kind == "lapse":
        nf, nd = np.asarray(nf, dtype=float), np.asarray(nd, dtype=float)
        cols["days_left"] = np.minimum(touch + nf, start + nd) - t
    else:
        won_365 = h.deals.total(ci, t - 365, t)
        cols["grade"] = np.where(won_365 >= h.grade_a, 2.0,
                                 np.where(won_365 >= h.grade_b, 1.0, 0.0))
        last_deal = h.deals.last_at_or_before(ci, t)
        cols["days_since_deal"] = np.minimum(np.nan_to_num(t - last_deal, nan=3650.0), 3650.0)
        cols["deals_365"] = h.deals.count(ci, t - 365, t)
    return np.column_stack([cols[name] for name in FEATURES[kind]]).astype(float)


# --- holdings: who held which customer when, replayed from the event log ---------------------
@dataclass
class Holdings:
    customer: np.ndarray   # customer ids
    owner: np.ndarray
    start: np.ndarray      # float days
    end: np.ndarray        # float days; inf while still held
    reclaimed: np.ndarray  # bool: ended by the reclaim sweep


def holdings(customer_ids: Optional[list[int]]) -> Holdings:
    """Each stretch of a customer with one owner: from an event that gives it to an owner to
    the next event of that customer (a reclaim, a release, a transfer, a merge...); still
    open when it is the last and the ownership row names that owner. One statement for the
    events, one for the current owners."""
    e = OwnershipEvent
    q = select(e.customer_id, e.kind, e.to_owner_id, e.created_at).order_by(e.customer_id, e.id)
    if customer_ids is not None:
        q = q.where(e.customer_id.in_(customer_ids))
    current = dict(db.session.execute(
        select(Ownership.customer_id, Ownership.owner_id).where(Ownership.owner_id.is_not(None),
                                                                *([Ownership.customer_id.in_(
                                                                    customer_ids)]
                                                                  if customer_ids is not None
                                                                  else []))).all())
    cust, owner, start, end, reclaimed = [], [], [], [], []
    open_at: Optional[int] = None  # index of the open stretch of the customer being read
    prev_customer = None
    for customer_id, kind, to_owner, when in db.session.execute(q):
        if customer_id != prev_customer:
            if open_at is not None and current.get(prev_customer) != owner[open_at]:
                end[open_at], open_at = start[open_at], None  # history disagrees: drop it
            open_at, prev_customer = None, customer_id
        day = _days(when)
        if open_at is not None:
            end[open_at] = day
            reclaimed[open_at] = kind == "reclaimed"
            open_at = None
        if to_owner is not None:
            cust.append(customer_id), owner.append(to_owner), start.append(day)
            end.append(np.inf), reclaimed.append(False)
            open_at = len(cust) - 1
    if open_at is not None and current.get(prev_customer) != owner[open_at]:
        end[open_at] = start[open_at]
    return Holdings(np.array(cust, dtype=np.int64), np.array(owner, dtype=np.int64),
                    np.array(start, dtype=float), np.array(end, dtype=float),
                    np.array(reclaimed, dtype=bool))


def _periods(owner_ids) -> dict[int, tuple[float, float]]:
    """Each owner's current no-follow-up and no-deal days (one policy read per owner)."""
    out = {}
    for uid in sorted({int(o) for o in owner_ids}):
        pol = policies.effective_policy(uid)
        out[uid] = (float(pol["reclaim_no_followup_days"].value),
                    float(pol["reclaim_no_deal_days"].value))
    return out


# --- the examples --------------------------------------------------------------------------------
@dataclass
class Examples:
    x: np.ndarray
    y: np.ndarray
    window_end: np.ndarray   # float days: when the outcome was known at the latest
    customer: np.ndarray
    at: np.ndarray


def _sample(now: dt.datetime) -> Optional[list[int]]:
    """None (every customer) or an id-stratified sample of MAX_CUSTOMERS of them."""
    total = db.session.execute(select(func.count()).select_from(Customer)).scalar_one()
    if total <= MAX_CUSTOMERS:
        return None
    step = -(-total // MAX_CUSTOMERS)
    return list(db.session.execute(select(Customer.id).where(Customer.id % step == 0)).scalars())


def examples(kind: str, now: dt.datetime, customer_ids: Optional[list[int]] = None,
             history_days: int = HISTORY_DAYS, step_days: int = STEP_DAYS) -> Examples:
    """Every (snapshot, held customer) pair with an observed outcome, point in time."""
    hold = holdings(customer_ids)
    ids = sorted(set(hold.customer.tolist()))
    index = {cid: i for i, cid in enumerate(ids)}
    h = load_history(customer_ids, index)
    locked = set(db.session.execute(select(Ownership.customer_id).where(
        Ownership.locked.is_(True))).scalars()) if kind == "lapse" else set()
    today = _days(now)
    snaps = today - np.arange(step_days, history_days + 1, step_days, dtype=float)[::-1]
    periods = _periods(hold.owner) if len(hold.owner) else {}
    nf_of = np.array([periods[o][0] for o in hold.owner.tolist()]) if len(hold.owner) else \
        np.zeros(0)
    nd_of = np.array([periods[o][1] for o in hold.owner.tolist()]) if len(hold.owner) else \
        np.zeros(0)
    keep_locked = np.array([c not in locked for c in hold.customer.tolist()], dtype=bool)
    ci_of = np.array([index[c] for c in hold.customer.tolist()], dtype=float)
    parts = []
    for t in snaps:
        active = (hold.start <= t) & (t < hold.end) & keep_locked
        if not active.any():
            continue
        counts = np.bincount(hold.owner[active])
        load = counts / counts[counts > 0].mean()  # against the average owner, then
        rows = np.flatnonzero(active)
        ci, st = ci_of[rows], hold.start[rows]
        tt = np.full(len(rows), t)
        won = ~np.isnan(h.deals.last_at_or_before(ci, tt))
        rows_load = load[hold.owner[rows]].astype(float)
        if kind == "lapse":
            sel = ~won
            rows, ci, st, tt, rows_load = rows[sel], ci[sel], st[sel], tt[sel], rows_load[sel]
            x = features(h, kind, ci, tt, st, rows_load, nf_of[rows], nd_of[rows])
            deadline = tt + x[:, LAPSE_FEATURES.index("days_left")]
            nxt = h.follow_ups.first_after(ci, tt)
            ends = hold.end[rows]
            followed = ~np.isnan(nxt) & (np.nan_to_num(nxt, nan=np.inf) <= deadline)
            taken_first = ends < np.fmin(np.nan_to_num(nxt, nan=np.inf), deadline)
            y = np.where(taken_first, hold.reclaimed[rows], ~followed)
            usable = (deadline > tt) & (deadline <= today) & (~taken_first | hold.reclaimed[rows])
            window = deadline
        else:
            sel = won
            rows, ci, st, tt, rows_load = rows[sel], ci[sel], st[sel], tt[sel], rows_load[sel]
            x = features(h, kind, ci, tt, st, rows_load)
            window = tt + SILENT_DAYS
            y = (h.follow_ups.count(ci, tt, window) + h.deals.count(ci, tt, window)) == 0
            usable = window <= today
        parts.append((x[usable], y[usable], window[usable], hold.customer[rows][usable],
                      tt[usable]))
    if not parts:
        k = len(FEATURES[kind])
        return Examples(np.zeros((0, k)), np.zeros(0, bool), np.zeros(0), np.zeros(0, np.int64),
                        np.zeros(0))
    return Examples(*(np.concatenate([p[i] for p in parts]) for i in range(5)))


# --- training ----------------------------------------------------------------------------------
@dataclass
class Backtest:
    kind: str
    model: Optional[risk_model.Fitted]
    model_auc: float
    baseline_auc: float
    n_train: int
    n_test: int
    positives_train: int
    positives_test: int
    test_from: dt.datetime
    verdict: str
    seconds: float = 0.0
    coefficients: dict = field(default_factory=dict)

    @property
    def shown(self) -> bool:
        return self.verdict == VERDICT_SHOWN


def gate(model_auc: float, baseline_auc: float, n_train: int, n_test: int,
         positives_test: int) -> str:
    """shown only with enough examples and a model that beats the baseline by MARGIN."""
    negatives = n_test - positives_test
    if (n_train < MIN_TRAIN or n_test < MIN_TEST or min(positives_test, negatives) < MIN_CLASS
            or not np.isfinite(model_auc) or not np.isfinite(baseline_auc)):
        return VERDICT_TOO_FEW
    return VERDICT_SHOWN if model_auc >= baseline_auc + MARGIN - 1e-12 else VERDICT_NOT_BETTER


def backtest(kind: str, now: Optional[dt.datetime] = None, **kw) -> Backtest:
    """Fit on the past, score the last TEST_DAYS: both AUCs and the gate's verdict."""
    started = time.perf_counter()
    now = now or utcnow()
    ex = examples(kind, now, customer_ids=kw.pop("customer_ids", None) or _sample(now), **kw)
    test_from = now - dt.timedelta(days=TEST_DAYS)
    test = ex.window_end > _days(test_from)
    train = ~test
    n_train, n_test = int(train.sum()), int(test.sum())
    p_train, p_test = int(ex.y[train].sum()), int(ex.y[test].sum())
    fitted, m_auc, b_auc = None, float("nan"), float("nan")
    if n_train >= MIN_TRAIN and 0 < p_train < n_train:
        fitted = risk_model.fit(ex.x[train], ex.y[train])
        if n_test:
            m_auc = risk_model.auc(fitted.log_odds(ex.x[test]), ex.y[test])
            b_auc = risk_model.auc(ex.x[test][:, FEATURES[kind].index(BASELINE)], ex.y[test])
    verdict = gate(m_auc, b_auc, n_train, n_test, p_test) if fitted else VERDICT_TOO_FEW
    coefficients = dict(zip(FEATURES[kind], fitted.coef.round(4).tolist())) if fitted else {}
    return Backtest(kind, fitted, m_auc, b_auc, n_train, n_test, p_train, p_test,
                    test_from, verdict, time.perf_counter() - started, coefficients)


def train(now: Optional[dt.datetime] = None, kinds=("lapse", "silent")) -> list[Backtest]:
    """The nightly run: backtest each kind and store it as the one pages score with (a new row
    per run; earlier runs stay as the model's history), then score every held customer with
    it (score_all). Owns its commits."""
    now = now or utcnow()
    out = []
    average = average_holding()
    for kind in kinds:
        bt = backtest(kind, now)
        m = bt.model
        params = None if m is None else json.dumps({
            "features": list(FEATURES[kind]), "coef": m.coef.tolist(),
            "intercept": m.intercept, "mean": m.mean.tolist(), "scale": m.scale.tolist(),
            "average_holding": average})
        db.session.add(RiskModel(
            kind=kind, trained_at=now, params=params,
            model_auc=None if not np.isfinite(bt.model_auc) else bt.model_auc,
            baseline_auc=None if not np.isfinite(bt.baseline_auc) else bt.baseline_auc,
            n_train=bt.n_train, n_test=bt.n_test, positives_train=bt.positives_train,
            positives_test=bt.positives_test, test_from=bt.test_from, shown=bt.shown,
            verdict=bt.verdict, seconds=bt.seconds))
        out.append(bt)
    db.session.commit()
    score_all()
    return out


# --- scoring (web requests) ----------------------------------------------------------------------
def latest_models() -> dict[str, RiskModel]:
    """The latest run of each kind, one statement."""
    last = select(func.max(RiskModel.id)).group_by(RiskModel.kind)
    return {m.kind: m for m in db.session.execute(
        select(RiskModel).where(RiskModel.id.in_(last))).scalars()}


def average_holding() -> Optional[float]:
    """Customers held per owner that holds any (the owner_load feature's denominator); None
    when nobody holds one. A pass over every ownership row (at 1M customers most of the
    workbench's time): the nightly run stores it with the model, pages read it from there."""
    owners, held = db.session.execute(
        select(func.count(func.distinct(Ownership.owner_id)), func.count(Ownership.owner_id))
    ).one()
    return held / owners if owners else None


def _average_holding_of(row: RiskModel) -> Optional[float]:
    """The average holding stored with a model (None for a model stored before it was)."""
    value = json.loads(row.params).get("average_holding") if row.params else None
    return float(value) if value else None


def _fitted(row: RiskModel) -> Optional[risk_model.Fitted]:
    if not row.params:
        return None
    p = json.loads(row.params)
    if tuple(p["features"]) != FEATURES[row.kind]:
        return None  # trained with another feature set: wait for the next run
    return risk_model.Fitted(float(p["intercept"]), np.array(p["coef"]), np.array(p["mean"]),
                             np.array(p["scale"]), 0)


def reasons(model: risk_model.Fitted, kind: str, x_row: np.ndarray) -> list[dict]:
    """The features that push this customer's risk up most (positive coefficient × standardised
    value), largest first, with the value and whether it is above or below the usual."""
    contrib = model.contributions(x_row[None, :])[0]
    z = model.standardise(x_row[None, :])[0]
    out, clock_said = [], False
    for i in np.argsort(-contrib):
        if contrib[i] < MIN_PUSH or len(out) == REASONS:
            break
        name = FEATURES[kind][i]
        if name in CLOCK:
            if clock_said:
                continue  # the two clocks move together: one of them says it
            clock_said = True
        out.append({"feature": name, "value": float(x_row[i]), "high": bool(z[i] > 0),
                    "weight": float(contrib[i])})
    return out


def reason_text(reason: dict) -> str:
    value = reason["value"]
    if reason["feature"] == "mean_gap" and value == UNKNOWN_GAP:
        return tr("fewer than two follow-ups in the last 180 days")
    # Days and counts in whole numbers; the load is a ratio ("1.8" times the average).
    shown = f"{value:.1f}" if reason["feature"] == "owner_load" else f"{round(value):.0f}"
    return tr("%(what)s: %(value)s (above usual)" if reason["high"]
              else "%(what)s: %(value)s (below usual)",
              what=tr(FEATURE_LABELS[reason["feature"]]), value=shown)


_OWNED_COLUMNS = (Ownership.customer_id, Ownership.acquired_at, Ownership.last_followup_at,
                  Ownership.locked, Ownership.won)


def _owned(owner_id: int):
    """The ownership rows' columns scoring reads, and the owner's customers (the load's
    numerator) from the owner tally: the whole book, not the rows scored."""
    return select(*_OWNED_COLUMNS, tally.count_select(owner_id, "held").label("held"))


def _owned_rows(owner_id: int, after: int = 0, limit: int = MAX_SCORED):
    # The ownership rows alone: the names of the few shown are read at the end (joining
    # the customer table for 5,000 rows cost a third of the panel at 1M customers).
    db.session.flush()  # the tally counts what reached the database
    return db.session.connection().execute(
        _owned(owner_id).where(Ownership.owner_id == owner_id, Ownership.customer_id > after)
        .order_by(Ownership.customer_id).limit(limit)).all()


@dataclass
class Scored:
    """One kind's scores of some rows: `which` indexes the rows scored, `p` and `x` their
    probabilities and features."""
    which: np.ndarray
    p: np.ndarray
    x: np.ndarray


def _score_rows(owner_id: int, rows, fitted: dict, average: Optional[float], held: int,
                now: dt.datetime, policy: Optional[dict] = None) -> dict[str, Scored]:
    """Score `rows` of one owner (ownership rows: _OWNED_COLUMNS) with each fitted model
    (lapse: unlocked, not won, before its deadline; silent: won). Five statements for the
    history, whatever the number of rows."""
    out: dict[str, Scored] = {}
    if not rows or not any(fitted.values()):
        return out
    ids = [r.customer_id for r in rows]
    index = {cid: i for i, cid in enumerate(ids)}
    since = now - dt.timedelta(days=181)
    # The last follow-up older than the window still sets the clock.
    extra = [(r.customer_id, r.last_followup_at) for r in rows
             if r.last_followup_at is not None and r.last_followup_at < since]
    h = load_history(ids, index, since=since, extra_follow_ups=extra)
    t = _days(now)
    ci = np.arange(len(rows), dtype=float)
    start = np.array([_days(r.acquired_at) for r in rows])
    load = np.full(len(rows), held / (average or held or 1))
    tt = np.full(len(rows), t)
    won = np.array([r.won for r in rows], dtype=bool)
    locked = np.array([r.locked for r in rows], dtype=bool)
    for kind, model in fitted.items():
        if model is None:
            continue
        if kind == "lapse":
            pol = policy or policies.effective_policy(owner_id)
            nf = np.full(len(rows), float(pol["reclaim_no_followup_days"].value))
            nd = np.full(len(rows), float(pol["reclaim_no_deal_days"].value))
            sel = ~won & ~locked
            x = features(h, kind, ci[sel], tt[sel], start[sel], load[sel], nf[sel], nd[sel])
            # Past its deadline it is the sweep's already (the workbench's "about to be
            # reclaimed" says so); the model was trained on customers before theirs.
            before = x[:, LAPSE_FEATURES.index("days_left")] > 0
            sel[sel] = before
            x = x[before]
        else:
            sel = won
            x = features(h, kind, ci[sel], tt[sel], start[sel], load[sel])
        which = np.flatnonzero(sel)
        if len(which):
            out[kind] = Scored(which, model.probability(x), x)
    return out


def _average(models: dict) -> Optional[float]:
    return next((a for a in (_average_holding_of(m) for m in models.values()) if a), None) \
        or average_holding()


def _candidates(owner_id: int, models: dict):
    """The rows worth scoring for the panel when the nightly run stored scores with every
    model on the page: its riskiest of the owner's customers, and whatever the owner
    acquired or followed up since (their stored scores, if any, are out of date). One
    statement; None when a model has no stored scores (then the page scores the owner's
    customers itself)."""
    if not models or any(m.scored_at is None for m in models.values()):
        return None
    since = min(m.scored_at for m in models.values())
    stored = select(RiskScore.customer_id).where(
        RiskScore.model_id.in_([m.id for m in models.values()]),
        RiskScore.owner_id == owner_id)
    # The owner's (owner, touch) index, newest first: a rep handed thousands today has
    # the newest scored, as many as a page without stored scores would score.
    changed = (select(Ownership.customer_id)
               .where(Ownership.owner_id == owner_id, last_touch_of(Ownership) > since)
               .order_by(last_touch_of(Ownership).desc()).limit(MAX_SCORED))
    # Each part a subquery: SQLite takes no ORDER BY / LIMIT on a UNION's own members.
    wanted = union(*(select(part.subquery()) for part in (stored, changed))).subquery()
    # How many the night stored of each kind for the owner: fewer than STORED_PER_OWNER
    # means it kept every one it scored, so a short list is the whole list.
    stored_counts = [select(func.count()).where(RiskScore.model_id == m.id,
                                                RiskScore.owner_id == owner_id)
                     .scalar_subquery().label(f"stored_{kind}") for kind, m in models.items()]
    db.session.flush()
    return db.session.connection().execute(
        _owned(owner_id).add_columns(*stored_counts)
        .where(Ownership.owner_id == owner_id, Ownership.customer_id.in_(select(wanted.c[0])))
        .order_by(Ownership.customer_id)).all()


def _ran_short(rows, scored: dict, kinds, limit: int) -> bool:
    """Whether the stored candidates leave fewer than `limit` of a kind although the night
    kept only the riskiest of more (their deadlines passed since, or they were followed up
    and are no longer risky): then the page scores the book instead."""
    return any((len(scored[k].p) if k in scored else 0) < limit
               and (rows[0]._mapping[f"stored_{k}"] or 0) >= STORED_PER_OWNER for k in kinds)


def score_owner(owner_id: int, models: dict, now: Optional[dt.datetime] = None,
                limit: int = PANEL_SIZE, policy: Optional[dict] = None
                ) -> dict[str, list[dict]]:
    """The owner's customers scored by each stored model (lapse: held, unlocked, not won;
    silent: won), riskiest first, at most `limit` each, scored as of now. The candidates
    are the nightly run's riskiest and what changed since (_candidates); without stored
    scores, or when they ran short (_ran_short), the owner's first MAX_SCORED customers.
    Ten statements whatever the size (eleven with a model stored before the average
    holding was stored with it; six more when the page scores the book)."""
    now = now or utcnow()
    out: dict[str, list[dict]] = {"lapse": [], "silent": []}
    fitted = {k: _fitted(m) for k, m in models.items()}
    usable = {k: m for k, m in models.items() if fitted[k] is not None}
    if not usable:
        return out
    rows = _candidates(owner_id, usable)
    scored = _score_rows(owner_id, rows, fitted, _average(models),
                         int(rows[0].held or 0), now, policy) if rows else {}
    if not rows or _ran_short(rows, scored, usable, limit):
        # No stored scores (or none of them still the owner's), or too few still apply:
        # score the book as a page without stored scores does.
        rows = _owned_rows(owner_id)
        scored = _score_rows(owner_id, rows, fitted, _average(models),
                             int(rows[0].held or 0) if rows else 0, now, policy) if rows else {}
    for kind, sc in scored.items():
        for j in np.argsort(-sc.p, kind="mergesort")[:limit]:
            r = rows[sc.which[j]]
            out[kind].append({"id": r.customer_id, "probability": float(sc.p[j]),
                              "days_since_touch": round(float(sc.x[j, 0])),
                              "reasons": [reason_text(rs)
                                          for rs in reasons(fitted[kind], kind, sc.x[j])]})
    shown = {row["id"] for kind_rows in out.values() for row in kind_rows}
    names = dict(db.session.execute(select(Customer.id, Customer.name).where(
        Customer.id.in_(sorted(shown)))).all()) if shown else {}
    for kind_rows in out.values():
        for row in kind_rows:
            row["name"] = names.get(row["id"], "")
    return out


def score_all(now: Optional[dt.datetime] = None, keep: Optional[int] = None,
              batch: int = MAX_SCORED) -> int:
    """The nightly scoring: every held customer of every owner scored by each latest model
    that is shown, the `keep` riskiest of each owner and kind stored (RiskScore), replacing
    the scores of earlier runs. Pages then score those and what changed since (`scored_at`,
    the instant the scoring started: a follow-up during the run counts as a change).

    The lapse model's riskiest are mostly the customers whose deadline comes soonest, and a
    customer past its deadline leaves the panel: by the afternoon the night's riskiest would
    be gone. So the lapse ranking is taken twice, as of now and as of the next run a day
    later, and both sets are kept. Owns its commit; returns how many scores it stored."""
    postgres = db.session.get_bind().dialect.name == "postgresql"
    if postgres:
        # First, before reading the models: a second run (the CLI beside the nightly job)
        # waits, then scores with the newest model rather than replacing its scores with an
        # older one's. SQLite's write lock is taken at the end only (below).
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SCORE_LOCK_KEY})
    now = now or utcnow()
    keep = keep or STORED_PER_OWNER
    models = {k: m for k, m in latest_models().items() if m.shown and _fitted(m)}
    fitted = {k: _fitted(m) for k, m in models.items()}
    average = _average(models) if models else None
    owners = db.session.execute(select(Ownership.owner_id).where(
        Ownership.owner_id.is_not(None)).distinct()).scalars().all() if models else []
    tomorrow = now + dt.timedelta(days=1)
    values = []
    for owner_id in sorted(owners):
        # The `keep` riskiest of each (kind, ranking) so far, over the owner's batches.
        best: dict[tuple[str, int], dict[int, float]] = {}
        after = 0
        while rows := _owned_rows(owner_id, after, batch):
            after = rows[-1].customer_id
            held = int(rows[0].held or 0)
            rankings = [_score_rows(owner_id, rows, fitted, average, held, now)]
            if "lapse" in fitted:
                rankings.append(_score_rows(owner_id, rows, {"lapse": fitted["lapse"]},
                                            average, held, tomorrow))
            for r, ranking in enumerate(rankings):
                for kind, sc in ranking.items():
                    top = np.argsort(-sc.p, kind="mergesort")[:keep]
                    merged = best.get((kind, r), {}) | {
                        rows[sc.which[j]].customer_id: float(sc.p[j]) for j in top}
                    best[(kind, r)] = dict(heapq.nlargest(
                        keep, merged.items(), key=lambda kv: (kv[1], -kv[0])))
        kept: dict[str, dict[int, float]] = {}
        for (kind, _), ranked in sorted(best.items()):
            for cid, p in ranked.items():
                # In both rankings: the probability as of now (ranking 0) is stored.
                kept.setdefault(kind, {}).setdefault(cid, p)
        values += [{"model_id": models[kind].id, "owner_id": owner_id, "customer_id": cid,
                    "probability": p}
                   for kind, ranked in kept.items() for cid, p in ranked.items()]
    # One short write at the end (on SQLite every other writer waits while it is open).
    db.session.execute(delete(RiskScore))
    for i in range(0, len(values), 10_000):
        db.session.execute(insert(RiskScore), values[i:i + 10_000])
    for m in models.values():
        m.scored_at = now
    db.session.commit()
    return len(values)


def not_shown_text(row: Optional[RiskModel]) -> str:
    """Why a model is not on the page, with both AUCs when there are any."""
    if row is None:
        return tr("The risk model has not been trained yet (it is retrained nightly).")
    if row.verdict == VERDICT_TOO_FEW:
        return tr("Not shown: too little history to test the model (%(n)s test examples, "
                  "%(p)s of them lost; at least %(min)s with %(c)s of each are needed).",
                  n=row.n_test, p=row.positives_test, min=MIN_TEST, c=MIN_CLASS)
    return tr("Not shown: on the last %(days)s days the model's AUC is %(model)s, the baseline's "
              "(days since the last follow-up) %(baseline)s; it must be at least %(margin)s "
              "higher.", days=TEST_DAYS, model=f"{row.model_auc:.3f}",
              baseline=f"{row.baseline_auc:.3f}", margin=f"{MARGIN:.2f}")


def shown_text(row: RiskModel) -> str:
    return tr("Test AUC %(model)s against %(baseline)s for days since the last follow-up "
              "(last %(days)s days, %(n)s examples), trained %(when)s.",
              model=f"{row.model_auc:.3f}", baseline=f"{row.baseline_auc:.3f}", days=TEST_DAYS,
              n=row.n_test, when=local_date(row.trained_at).isoformat())


def panel(user: User, now: Optional[dt.datetime] = None,
          policy: Optional[dict] = None) -> dict:
    """The workbench's 流失风险 panel of the user's own customers: per kind, the list when the
    model passed its gate, else the sentence that says why it is not shown. `policy`: the
    user's effective policy when the page has read it already."""
    models = latest_models()
    shown = {k: m for k, m in models.items() if m.shown}
    scored = score_owner(user.id, shown, now, policy=policy) if shown else {
        "lapse": [], "silent": []}
    out = {}
    for kind in FEATURES:
        row = models.get(kind)
        out[kind] = {"title": tr(KIND_LABELS[kind]), "shown": bool(row and row.shown),
                     "rows": scored.get(kind, []) if row and row.shown else [],
                     "note": shown_text(row) if row and row.shown else not_shown_text(row)}
    return out
