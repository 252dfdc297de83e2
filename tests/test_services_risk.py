"""流失风险 (issue 20 §5): the numpy logistic regression against known optima, the rank AUC with
ties, features and labels rebuilt point in time from a hand-built history (a later follow-up
never changes them), the gate, the nightly training and its job."""
from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from sqlalchemy import delete, select, update

from app.models import FollowUp, Opportunity, Ownership, OwnershipEvent, RiskModel
from app.models.customer import utcnow
from app.services import customers, risk, risk_model
from app.services.opportunities import ensure_stages, stages

DAY = dt.timedelta(days=1)


# --- the arithmetic ------------------------------------------------------------------------------
def test_one_binary_feature_without_penalty_gives_each_group_its_own_rate():
    """The saturated model's maximum likelihood is the observed rate of each group."""
    x = np.array([[0.0]] * 10 + [[1.0]] * 10)
    y = np.array([1] * 2 + [0] * 8 + [1] * 7 + [0] * 3)
    m = risk_model.fit(x, y, l2=0.0)
    assert m.probability(np.array([[0.0], [1.0]])) == pytest.approx([0.2, 0.7], abs=1e-9)
    # In the original units: intercept logit(0.2), slope logit(0.7) - logit(0.2).
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    assert m.coef[0] / m.scale[0] == pytest.approx(logit(0.7) - logit(0.2), abs=1e-8)


def test_the_penalised_fit_is_the_optimum_and_shrinks():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 3)) * [1.0, 5.0, 0.1]
    y = rng.random(400) < risk_model.sigmoid(x @ [1.0, -0.3, 4.0])
    m = risk_model.fit(x, y, l2=1.0)
    assert np.abs(risk_model.gradient(m, x, y, l2=1.0)).max() < 1e-8
    free = risk_model.fit(x, y, l2=0.0)
    assert np.abs(risk_model.gradient(free, x, y, l2=0.0)).max() < 1e-8
    assert np.linalg.norm(m.coef) < np.linalg.norm(free.coef)
    # Reasons are coefficient × standardised value, summing to the log-odds.
    assert m.contributions(x[:5]).sum(axis=1) + m.intercept == pytest.approx(m.log_odds(x[:5]))


def test_a_constant_feature_gets_no_weight():
    x = np.column_stack([np.arange(20.0), np.ones(20)])
    y = np.arange(20) % 3 == 0
    m = risk_model.fit(x, y)
    assert m.coef[1] == 0.0 and m.scale[1] == 1.0


def test_auc_counts_ties_as_one_half():
    assert risk_model.auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    assert risk_model.auc([4, 3, 2, 1], [0, 0, 1, 1]) == 0.0
    assert risk_model.auc([5, 5, 5, 5], [0, 1, 0, 1]) == 0.5
    # Positives 2 and 3 against negatives 1 and 2: 1 + 0.5 + 1 + 1 of 4 pairs.
    assert risk_model.auc([1, 2, 2, 3], [0, 1, 0, 1]) == 0.875
    assert risk_model.auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert math.isnan(risk_model.auc([1, 2], [1, 1]))


def test_the_gate():
    assert risk.gate(0.80, 0.75, 500, 200, 50) == "shown"
    assert risk.gate(0.79, 0.75, 500, 200, 50) == "not_better"
    assert risk.gate(0.60, 0.75, 500, 200, 50) == "not_better"
    assert risk.gate(0.95, 0.50, 500, 99, 50) == "too_few"   # under MIN_TEST
    assert risk.gate(0.95, 0.50, 500, 200, 9) == "too_few"   # under MIN_CLASS positives
    assert risk.gate(0.95, 0.50, 500, 200, 191) == "too_few"  # ... or negatives
    assert risk.gate(0.95, 0.50, 199, 200, 50) == "too_few"  # under MIN_TRAIN


def test_reasons_are_the_largest_pushes_up_in_words():
    names = risk.LAPSE_FEATURES
    rest = np.zeros(len(names) - 4)
    m = risk_model.Fitted(0.0, np.r_[1.0, -0.5, 0.02, 0.3, rest],
                          np.r_[10.0, 3.0, 0.0, 30.0, rest], np.ones(len(names)), 0)
    # Standardised 3, -2, 4, -1: pushes +3, +1, +0.08 (under 0.1), -0.3.
    rs = risk.reasons(m, "lapse", np.r_[13.0, 1.0, 4.0, 29.0, rest])
    assert [(r["feature"], r["high"]) for r in rs] == [("days_since_touch", True),
                                                       ("followups_30", False)]
    assert [risk.reason_text(r) for r in rs] == ["距上次跟进天数 13（偏高）",
                                                 "近 30 天跟进次数 1（偏低）"]
    # Days left pushing up too (+2.7) is the same clock: said once, by the larger push.
    left = names.index("days_left")
    m.coef[left], m.mean[left] = -0.9, 30.0
    x = np.r_[13.0, 1.0, 4.0, 29.0, rest]
    x[left] = 27.0
    assert [r["feature"] for r in risk.reasons(m, "lapse", x)] == ["days_since_touch",
                                                                   "followups_30"]
    assert risk.reason_text({"feature": "mean_gap", "value": risk.UNKNOWN_GAP,
                             "high": True}) == "近 180 天跟进不足两次"
    assert risk.reason_text({"feature": "owner_load", "value": 1.84, "high": True}) == \
        "负责人客户数相对平均的倍数 1.8（偏高）"


# --- point in time --------------------------------------------------------------------------------
@pytest.fixture
def history(db, org):
    """A customer of rep1's held since T0 = now - 100 days, followed up at T0 + 10, 20, 40 and
    70 days, with an opportunity open from T0 + 30 to T0 + 60."""
    now = utcnow().replace(microsecond=0)
    t0 = now - 100 * DAY
    c = customers.create_customer(org.rep, {"name": "节奏客户"})
    db.session.execute(update(Ownership).where(Ownership.customer_id == c.id)
                       .values(acquired_at=t0, last_followup_at=t0 + 70 * DAY))
    db.session.execute(update(OwnershipEvent).where(OwnershipEvent.customer_id == c.id)
                       .values(created_at=t0))
    for d in (10, 20, 40, 70):
        db.session.add(FollowUp(customer_id=c.id, user_id=org.rep.id, channel="call",
                                content="电话", happened_at=t0 + d * DAY))
    ensure_stages()
    db.session.add(Opportunity(customer_id=c.id, title="扩容", stage_id=stages()[0].id,
                               status="lost", loss_reason="预算取消", created_at=t0 + 30 * DAY,
                               closed_at=t0 + 60 * DAY))
    db.session.commit()
    return now, t0, c.id


def _features_at(cid, t):
    hold = risk.holdings([cid])
    h = risk.load_history([cid], {cid: 0})
    return dict(zip(risk.LAPSE_FEATURES, risk.features(
        h, "lapse", [0], [risk._days(t)], hold.start, [1.0], [30.0], [90.0])[0]))


def test_features_are_read_as_of_the_snapshot(db, org, history):
    now, t0, cid = history
    f = _features_at(cid, t0 + 50 * DAY)
    assert f == {"days_since_touch": pytest.approx(10), "followups_30": 1,  # (T0+20, T0+50]
                 "followups_90": 3, "mean_gap": pytest.approx(15),          # (40 - 10) / 2
                 "owner_load": 1.0, "open_opportunities": 1, "open_tickets": 0,
                 # min(last touch + 30, acquired + 90) - t = min(T0+70, T0+90) - (T0+50)
                 "days_left": pytest.approx(20)}
    assert _features_at(cid, t0 + 65 * DAY)["open_opportunities"] == 0  # closed at T0+60
    assert _features_at(cid, t0 + 5 * DAY)["mean_gap"] == risk.UNKNOWN_GAP


def test_a_later_follow_up_changes_the_label_never_the_features(db, org, history):
    now, t0, cid = history
    # Snapshots at now - 100 (T0) and now - 50 (T0 + 50).
    ex = risk.examples("lapse", now, customer_ids=[cid], history_days=100, step_days=50)
    assert [round(risk._days(now) - a) for a in ex.at] == [100, 50]
    assert ex.y.tolist() == [False, False]  # followed up at T0+10, then at T0+70 (deadline)
    db.session.execute(delete(FollowUp).where(FollowUp.customer_id == cid,
                                              FollowUp.happened_at == t0 + 70 * DAY))
    db.session.commit()
    after = risk.examples("lapse", now, customer_ids=[cid], history_days=100, step_days=50)
    assert np.array_equal(after.x, ex.x)
    assert after.y.tolist() == [False, True]  # nothing between T0+50 and its deadline T0+70
    assert risk._days(now) - after.window_end[1] == pytest.approx(30)


def test_a_holding_ended_by_a_transfer_is_not_a_label_but_a_reclaim_is(db, org, history):
    now, t0, cid = history
    db.session.execute(delete(FollowUp).where(FollowUp.customer_id == cid,
                                              FollowUp.happened_at > t0 + 40 * DAY))
    db.session.add(OwnershipEvent(customer_id=cid, kind="transferred", from_owner_id=org.rep.id,
                                  to_owner_id=org.rep2.id, created_at=t0 + 55 * DAY))
    db.session.execute(update(Ownership).where(Ownership.customer_id == cid)
                       .values(owner_id=org.rep2.id))
    db.session.commit()
    ex = risk.examples("lapse", now, customer_ids=[cid], history_days=100, step_days=50)
    # T0+50: rep1 let it go to rep2 before its deadline: censored, not a lapse.
    assert [round(risk._days(now) - a) for a in ex.at] == [100]
    db.session.execute(update(OwnershipEvent).where(OwnershipEvent.kind == "transferred",
                                                    OwnershipEvent.customer_id == cid)
                       .values(kind="reclaimed", to_owner_id=None, to_pool_id=org.pool.id))
    db.session.execute(update(Ownership).where(Ownership.customer_id == cid)
                       .values(owner_id=None, pool_id=org.pool.id))
    db.session.commit()
    ex = risk.examples("lapse", now, customer_ids=[cid], history_days=100, step_days=50)
    assert ex.y.tolist() == [False, True]


def test_silent_examples_need_a_deal_by_the_snapshot(db, org, history):
    from decimal import Decimal

    from app.models import Deal

    now, t0, cid = history
    db.session.add(Deal(customer_id=cid, user_id=org.rep.id, amount=Decimal("600000"),
                        won_on=(t0 + 2 * DAY).date()))
    db.session.commit()
    db.session.execute(delete(FollowUp).where(FollowUp.customer_id == cid,
                                              FollowUp.happened_at == t0 + 70 * DAY))
    db.session.commit()
    # As of now, T0 and T0 + 50 (no deal before T0; T0 + 50 + 90 days is still to come).
    assert len(risk.examples("silent", now, customer_ids=[cid], history_days=100,
                             step_days=50).y) == 0
    # Sixty days on: snapshots T0 + 10 and T0 + 60 are observed; T0 + 110 is not yet.
    ex = risk.examples("silent", now + 60 * DAY, customer_ids=[cid], history_days=160,
                       step_days=50)
    got = dict(zip([round(risk._days(now) - a) for a in ex.at], ex.y.tolist()))
    assert got == {90: False, 40: True}  # T0+10: a follow-up at T0+20; T0+60: none after
    grade = ex.x[:, risk.SILENT_FEATURES.index("grade")]
    assert grade.tolist() == [2.0, 2.0]  # 600,000 won in the trailing 12 months: A
    since_deal = ex.x[:, risk.SILENT_FEATURES.index("days_since_deal")]
    assert since_deal[0] == pytest.approx(8, abs=1)  # won on T0+2's date


# --- the nightly training ------------------------------------------------------------------------
def test_training_with_too_little_history_stores_why_it_is_not_shown(db, org, history):
    runs = risk.train()
    assert [(bt.kind, bt.verdict) for bt in runs] == [("lapse", "too_few"), ("silent", "too_few")]
    rows = db.session.execute(select(RiskModel).order_by(RiskModel.id)).scalars().all()
    assert [(r.kind, r.shown, r.verdict) for r in rows] == [("lapse", False, "too_few"),
                                                            ("silent", False, "too_few")]
    assert set(risk.latest_models()) == {"lapse", "silent"}
    panel = risk.panel(org.rep)
    assert panel["lapse"]["rows"] == [] and not panel["lapse"]["shown"]
    assert panel["lapse"]["note"].startswith("未显示：历史数据太少")


def test_the_job_is_scheduled_nightly():
    from app.queue import PERIODIC

    job = next(j for j in PERIODIC if j.name == "risk_train")
    assert job.timeout == 3600  # training, then scoring every held customer
    assert (job.func, job.env, job.default_cron) == ("jobs.ownership.risk_train",
                                                     "GUISHU_CRON_RISK", "50 2 * * *")


def test_the_cli_prints_both_aucs(app, db, org):
    out = app.test_cli_runner().invoke(args=["crm", "risk-train"])
    assert out.exit_code == 0, out.output
    lines = out.output.strip().splitlines()
    assert lines[0].startswith("回收期限前无跟进: AUC nan / 基线 nan; train 0 (0+)")
    assert lines[0].endswith("→ too_few") and len(lines) == 2


def test_a_worker_runs_the_training(app, db, org, redis_url, database_url):
    from app.queue import get_queue
    from jobs.ownership import risk_train
    from tests.test_jobs import run_burst_worker

    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    queue = "test-risk"
    job = get_queue(queue).enqueue(risk_train)
    result = run_burst_worker(redis_url, database_url, queue)
    assert result.returncode == 0, result.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "finished", result.stderr[-2000:]
    assert {k: v["verdict"] for k, v in job.return_value().items()} == {
        "lapse": "too_few", "silent": "too_few"}
    db.session.rollback()
    assert db.session.execute(select(RiskModel.kind).order_by(RiskModel.id)).scalars().all() \
        == ["lapse", "silent"]
