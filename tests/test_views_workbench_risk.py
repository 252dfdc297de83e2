"""The workbench's 流失风险 panel per role: a rep sees their own customers riskiest first with
the reasons, never another rep's; a manager their own; admins and staff no panel; and when
the model did not beat the baseline, the sentence with both AUCs instead of a list."""
from __future__ import annotations

import datetime as dt
import json
import re
from html import unescape

import numpy as np
import pytest
from sqlalchemy import update

from app.models import Ownership, RiskModel
from app.models.customer import utcnow
from app.services import customers, risk

DAY = dt.timedelta(days=1)


def _model(db, kind="lapse", shown=True, model_auc=0.8123, baseline_auc=0.7011, coef=None,
           trained_at=None, **stored):
    """A stored run whose risk grows with the days since the last follow-up alone; `stored`:
    more of what the nightly run stores with it (average_holding)."""
    names = risk.FEATURES[kind]
    coef = coef or [0.2] + [0.0] * (len(names) - 1)
    db.session.add(RiskModel(
        kind=kind, trained_at=trained_at or utcnow(), model_auc=model_auc, baseline_auc=baseline_auc,
        params=json.dumps({"features": list(names), "coef": coef, "intercept": -3.0,
                           "mean": [0.0] * len(names), "scale": [1.0] * len(names),
                           **stored}),
        n_train=900, n_test=300, positives_train=200, positives_test=70, shown=shown,
        verdict="shown" if shown else "not_better"))
    db.session.commit()


@pytest.fixture
def book(db, org):
    """rep1: 杭州云帆 (acquired now) and 冷落客户 (25 days without a follow-up); the manager:
    经理的客户 (10 days)."""
    now = utcnow()
    stale = customers.create_customer(org.rep, {"name": "冷落客户"})
    mine = customers.create_customer(org.manager, {"name": "经理的客户"})
    for cid, days in ((stale.id, 25), (mine.id, 10), (org.c_rep2.id, 28)):
        db.session.execute(update(Ownership).where(Ownership.customer_id == cid)
                           .values(acquired_at=now - days * DAY))
    db.session.commit()
    return stale.id


def _rows(html):
    return re.findall(r'<tr class="risk-row" data-id="(\d+)">.*?risk-probability">(\d+)%</td>\s*'
                      r'<td class="risk-reasons">([^<]*)</td>', html, re.S)


def test_a_rep_sees_own_customers_riskiest_first_with_reasons(db, org, clients, book):
    _model(db)
    html = clients.rep.get("/workbench/").get_data(as_text=True)
    assert 'id="risk-lapse" data-shown="yes"' in html
    # sigmoid(-3 + 0.2 × 25) = 88 %, sigmoid(-3) = 5 %.
    assert _rows(html) == [(str(book), "88", "距上次跟进天数 25（偏高）"),
                           (str(org.c_rep.id), "5", "")]
    assert "苏州恒信电子有限公司" not in html  # rep2's, 28 days: never on rep1's page
    assert "检验 AUC 0.812，基线（距上次跟进天数）0.701" in html
    # No silent model stored: it says so.
    assert "流失风险模型尚未训练" in html


def test_a_customer_past_its_deadline_is_left_to_the_sweep(db, org, clients, book):
    _model(db)
    due = customers.create_customer(org.rep, {"name": "已到期客户"})
    db.session.execute(update(Ownership).where(Ownership.customer_id == due.id)
                       .values(acquired_at=utcnow() - 35 * DAY))
    db.session.commit()
    assert [r["id"] for r in risk.panel(org.rep)["lapse"]["rows"]] == [book, org.c_rep.id]


def test_a_manager_sees_own_customers_only(db, org, clients, book):
    _model(db)
    html = clients.manager.get("/workbench/").get_data(as_text=True)
    assert [r[:2] for r in _rows(html)] == [(str(db.session.execute(
        Ownership.__table__.select().where(Ownership.owner_id == org.manager.id))
        .first().customer_id), "27")]  # sigmoid(-3 + 2)
    assert "冷落客户" not in html and "杭州云帆" not in html


def test_admin_has_no_panel_and_staff_no_workbench(db, org, clients, book):
    _model(db)
    assert 'id="risk"' not in clients.admin.get("/workbench/").get_data(as_text=True)
    assert clients.staff.get("/workbench/").status_code == 403
    assert clients.auditor.get("/workbench/").status_code == 403


def test_a_model_that_does_not_beat_the_baseline_is_not_shown(db, org, clients, book):
    _model(db, shown=False, model_auc=0.7123, baseline_auc=0.7011)
    html = clients.rep.get("/workbench/").get_data(as_text=True)
    assert 'id="risk-lapse" data-shown="no"' in html and _rows(html) == []
    assert ("未显示：在最近 60 天的数据上，模型 AUC 为 0.712，基线（距上次跟进天数）为 0.701；"
            "模型须至少高出 0.05 才显示。") in html


def test_the_panel_in_english(db, org, clients, book):
    _model(db, shown=False, model_auc=0.7123, baseline_auc=0.7011)
    client = clients.rep
    with client.session_transaction() as session:
        session["locale"] = "en"
    html = unescape(client.get("/workbench/").get_data(as_text=True))
    assert "Churn risk" in html and "No follow-up before the reclaim deadline" in html
    assert ("Not shown: on the last 60 days the model's AUC is 0.712, the baseline's (days since "
            "the last follow-up) 0.701; it must be at least 0.05 higher.") in html


def test_a_won_customer_is_scored_by_the_silent_model(db, org, clients, book):
    _model(db, kind="silent", coef=[0.0] * 7 + [1.0, 0.0, 0.0])  # grade alone
    db.session.execute(update(Ownership).where(Ownership.customer_id == book)
                       .values(won=True))
    db.session.commit()
    html = clients.rep.get("/workbench/").get_data(as_text=True)
    assert 'id="risk-silent" data-shown="yes"' in html
    assert [r[:2] for r in _rows(html)] == [(str(book), "5")]  # grade 0: sigmoid(-3)


def test_scoring_is_the_same_statements_whatever_the_rep_holds(db, org, book):
    from sqlalchemy import event

    from app.extensions import db as fdb

    _model(db)
    _model(db, kind="silent")

    def statements():
        seen = []
        rep = org.rep
        assert rep.id  # loaded before counting (a commit expires it)

        def count(conn, cursor, statement, *_):
            if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
                seen.append(statement)

        event.listen(fdb.engine, "before_cursor_execute", count)
        try:
            panel = risk.panel(rep)
        finally:
            event.remove(fdb.engine, "before_cursor_execute", count)
        return len(seen), panel

    risk.panel(org.rep)  # warm the policy and grading caches, if any
    few, _ = statements()
    for i in range(30):
        customers.create_customer(org.rep, {"name": f"风险语句{i}号有限公司"})
    many, panel = statements()
    assert many == few <= 11  # the names are read for the rows shown only
    assert len(panel["lapse"]["rows"]) == risk.PANEL_SIZE  # 32 held: the 20 riskiest


def test_the_training_day_is_the_business_day(db, org, clients, book):
    """A run stored at 20:00 UTC on 1 December was trained on 2 December in Shanghai."""
    _model(db, trained_at=dt.datetime(2026, 12, 1, 20, 0))
    html = unescape(clients.rep.get("/workbench/").get_data(as_text=True))
    assert "训练于 2026-12-02" in html
    assert "2026-12-01" not in re.search(r"检验 AUC[^<]*", html).group()


def _load_model(db, **stored):
    """A lapse model whose risk grows with the owner's load alone (its coefficient 1)."""
    names = risk.FEATURES["lapse"]
    _model(db, coef=[1.0 if n == "owner_load" else 0.0 for n in names], **stored)


def _probability(load: float) -> int:
    import math

    return round(100 / (1 + math.exp(3.0 - load)))


def test_the_owners_load_is_against_the_average_stored_with_the_model(db, org, book):
    """The nightly run stores the average holding with the model, so a page does not pass
    over every ownership row (at 1M customers most of the workbench's time); the load is
    the rep's customers over it."""
    from sqlalchemy import event

    from app.extensions import db as fdb

    _load_model(db, average_holding=0.5)
    held = len(risk._owned_rows(org.rep.id))
    seen = []

    def count(conn, cursor, statement, *_):
        seen.append(" ".join(statement.split()).lower())

    event.listen(fdb.engine, "before_cursor_execute", count)
    try:
        rows = risk.panel(org.rep)["lapse"]["rows"]
    finally:
        event.remove(fdb.engine, "before_cursor_execute", count)
    assert {round(r["probability"] * 100) for r in rows} == {_probability(held / 0.5)}
    assert not [s for s in seen if "count(distinct" in s]


def test_a_model_stored_before_the_average_reads_it_live(db, org, book):
    _load_model(db)  # no average_holding: a run stored by an earlier release
    held = len(risk._owned_rows(org.rep.id))
    average = risk.average_holding()
    assert average and average > 0
    rows = risk.panel(org.rep)["lapse"]["rows"]
    assert {round(r["probability"] * 100) for r in rows} == {_probability(held / average)}


def test_the_nightly_run_stores_the_average_holding(db, org, book, monkeypatch):
    from app.models import RiskModel as Stored
    from app.services import risk_model

    names = risk.FEATURES["lapse"]
    fitted = risk_model.Fitted(-3.0, np.zeros(len(names)), np.zeros(len(names)),
                               np.ones(len(names)), 1)
    monkeypatch.setattr(risk, "backtest", lambda kind, now: risk.Backtest(
        kind, fitted, 0.8, 0.7, 900, 300, 200, 70, utcnow(), risk.VERDICT_SHOWN))
    risk.train(kinds=("lapse",))
    row = db.session.query(Stored).order_by(Stored.id.desc()).first()
    assert json.loads(row.params)["average_holding"] == pytest.approx(risk.average_holding())
    # ...and then scores every held customer with it: the panel's candidates.
    assert row.scored_at is not None
    assert book in {r.customer_id for r in _stored(db, org.rep.id)}


# --- the nightly scores: the page scores the stored riskiest and what changed since ----------
def _stored(db, owner_id=None):
    from sqlalchemy import select

    from app.models import RiskScore

    q = select(RiskScore.owner_id, RiskScore.customer_id, RiskScore.probability)
    if owner_id is not None:
        q = q.where(RiskScore.owner_id == owner_id)
    return db.session.execute(q.order_by(RiskScore.owner_id,
                                         RiskScore.probability.desc())).all()


def test_the_nightly_run_stores_each_owners_riskiest(db, org, book):
    _model(db)
    assert risk.score_all(keep=1) == len({r.owner_id for r in _stored(db)})
    mine = _stored(db, org.rep.id)
    assert [(r.customer_id, round(r.probability * 100)) for r in mine] == [(book, 88)]
    assert db.session.query(RiskModel).one().scored_at is not None
    # A second run replaces the first run's scores, it does not add to them.
    before = len(_stored(db))
    risk.score_all(keep=1)
    assert len(_stored(db)) == before
    # A model that is not shown has nothing stored (its panel says why instead).
    _model(db, shown=False)
    assert risk.score_all() == 0 and _stored(db) == []


def test_the_page_scores_the_stored_and_what_changed_since(db, org, clients, book):
    from app.services import followups

    _model(db)
    risk.score_all(keep=1)
    # 杭州云帆 (5 %) is neither among rep1's stored riskiest nor changed since: not a candidate.
    assert [r["id"] for r in risk.panel(org.rep)["lapse"]["rows"]] == [book]
    # Acquired after the run: scored by the page.
    new = customers.create_customer(org.rep, {"name": "夜间评分后新客户"})
    assert [r["id"] for r in risk.panel(org.rep)["lapse"]["rows"]] == [book, new.id]
    # Followed up after the run: scored again as of now, its stored 88 % is out of date.
    followups.log_followup(org.rep, book, {"channel": "call", "content": "电话回访，客户仍有意向"})
    rows = risk.panel(org.rep)["lapse"]["rows"]
    assert {r["id"]: round(r["probability"] * 100) for r in rows} == {book: 5, new.id: 5}
    html = clients.rep.get("/workbench/").get_data(as_text=True)
    assert sorted(r[0] for r in _rows(html)) == sorted([str(book), str(new.id)])


def test_a_stored_score_leaves_with_its_customer(db, org, book):
    _model(db)
    risk.score_all()
    assert book in {r.customer_id for r in _stored(db, org.rep.id)}
    db.session.execute(update(Ownership).where(Ownership.customer_id == book)
                       .values(owner_id=org.rep2.id))
    db.session.commit()
    assert book not in [r["id"] for r in risk.panel(org.rep)["lapse"]["rows"]]


def test_the_stored_path_is_the_same_statements_whatever_the_rep_holds(db, org, book):
    from sqlalchemy import event

    from app.extensions import db as fdb

    _model(db)
    _model(db, kind="silent")

    def statements() -> int:
        seen = []

        def count(conn, cursor, statement, *_):
            if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
                seen.append(statement)

        rep = org.rep
        assert rep.id
        event.listen(fdb.engine, "before_cursor_execute", count)
        try:
            risk.panel(rep)
        finally:
            event.remove(fdb.engine, "before_cursor_execute", count)
        return len(seen)

    for i in range(30):
        customers.create_customer(org.rep, {"name": f"夜间评分{i}号有限公司"})
    risk.score_all(keep=5)
    risk.panel(org.rep)
    few = statements()
    for i in range(30):
        customers.create_customer(org.rep, {"name": f"夜间评分后{i}号有限公司"})
    assert statements() == few <= 11
    assert len(risk.panel(org.rep)["lapse"]["rows"]) == risk.PANEL_SIZE


@pytest.mark.real_db
def test_two_scoring_runs_at_once_store_one_set(app, db, org, book):
    """The CLI beside the nightly job: the second waits for the first (PostgreSQL's advisory
    lock, SQLite's write lock), neither fails on the other's rows."""
    from tests.helpers import in_threads

    _model(db)
    for i in range(20):
        customers.create_customer(org.rep, {"name": f"并发评分{i}号有限公司"})

    def work(i: int) -> int:
        return risk.score_all(keep=10)

    results = in_threads(app, 3, work)
    db.session.expire_all()
    assert len(set(results)) == 1
    assert len(_stored(db)) == results[0]
    assert len(_stored(db, org.rep.id)) == 10


def _aged(db, owner, name, days):
    c = customers.create_customer(owner, {"name": name})
    db.session.execute(update(Ownership).where(Ownership.customer_id == c.id)
                       .values(acquired_at=utcnow() - dt.timedelta(days=days)))
    db.session.commit()
    return c.id


def test_the_night_keeps_the_riskiest_of_tomorrow_too(db, org, book, monkeypatch):
    """The lapse model's riskiest are the customers whose deadline comes first; by the
    afternoon they are past it and off the panel. The night also keeps the riskiest as of
    the next run, and when the stored candidates still run short the page scores the book."""
    monkeypatch.setattr(risk, "STORED_PER_OWNER", 1)
    _model(db)
    edge = _aged(db, org.rep, "今天到期的客户", 29.8)      # deadline (30 days) in 0.2 day
    _aged(db, org.rep, "也快到期的客户", 29.7)
    twenty = _aged(db, org.rep, "二十天的客户", 20)
    risk.score_all()
    # As of now the riskiest is `edge`; as of tomorrow (both near ones past their deadline)
    # 冷落客户 (25 days): both are kept.
    assert {r.customer_id for r in _stored(db, org.rep.id)} == {edge, book}
    later = utcnow() + dt.timedelta(days=0.3)
    models = {m.kind: m for m in [db.session.query(RiskModel).one()]}
    assert [r["id"] for r in risk.score_owner(org.rep.id, models, later, limit=1)
            ["lapse"]] == [book]
    # Twenty rows wanted, one stored candidate still applies: the book is scored instead.
    rows = [r["id"] for r in risk.score_owner(org.rep.id, models, later)["lapse"]]
    assert rows[:2] == [book, twenty] and edge not in rows


def test_the_nightly_batches_keep_the_same_riskiest(db, org, book):
    _model(db)
    _model(db, kind="silent")
    for i, days in enumerate([0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 29.5, 29.6]):
        _aged(db, org.rep, f"分批评分{i}号有限公司", days)
    now = utcnow()
    risk.score_all(now, keep=5)
    whole = _stored(db)
    assert len(_stored(db, org.rep.id)) > 5  # the riskiest now and tomorrow differ
    risk.score_all(now, keep=5, batch=2)  # rep1's book in batches of two
    assert _stored(db) == whole


def test_a_model_trained_after_the_scores_is_scored_by_the_page(db, org, book):
    _model(db)
    risk.score_all(keep=1)
    assert [r["id"] for r in risk.panel(org.rep)["lapse"]["rows"]] == [book]
    _model(db)  # the next night's training, its scoring not run yet
    assert [r["id"] for r in risk.panel(org.rep)["lapse"]["rows"]] == [book, org.c_rep.id]
