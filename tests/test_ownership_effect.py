"""Ownership-effect evaluation (issue 20 §3): a fixed event log, exact rates, Wilson bounds,
the verdicts, the scope per role, the filters."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from app.models import AssignmentRule, Deal, FollowUp, OwnershipEvent
from app.services import ownership_effect as oe
from app.services.errors import PermissionDenied, ValidationFailed

NOW = dt.datetime(2026, 11, 20, 6, 0)  # 14:00 in Shanghai
D = dt.timedelta(days=1)
RULE_A, RULE_B, RULE_C = "上海客户归上海团队", "北京客户归华北", "小规则"


@pytest.fixture
def history(db, org):
    """23 receipts judged at 90 days: rule A 10 to rep (9 won in 30 days), rule B 10 to
    rep_north (1 won on day 60; one reclaimed on day 50 and won by rep on day 70), rule C 2 to
    rep2 (1 won on day 100), a transfer to rep2 100 days ago (won on day 20), a manual even
    distribution to rep 100 days ago, and two claims by rep 40 days ago (one followed up after
    2 days, one after 10)."""
    from app.services import customers

    db.session.add_all([
        AssignmentRule(position=1, name=RULE_A, province="上海", target_type="department",
                       target_department_id=org.east.id, strategy="round_robin"),
        AssignmentRule(position=2, name=RULE_B, province="北京", target_type="department",
                       target_department_id=org.north.id, strategy="least_loaded"),
        AssignmentRule(position=3, name=RULE_C, city="苏州", target_type="user",
                       target_user_id=org.rep2.id)])
    db.session.commit()
    made = iter([customers.create_customer(org.staff, {"name": f"效果评估客户{i:02d}"}).id
                 for i in range(30)])
    log = []

    def receive(owner, when, kind="rule-assigned", rule=None, reason=None):
        cid = next(made)
        log.append(OwnershipEvent(customer_id=cid, kind=kind, to_owner_id=owner.id,
                                  from_pool_id=org.pool.id, rule=rule, reason=reason,
                                  created_at=when))
        return cid

    def won(cid, user, day):
        db.session.add(Deal(customer_id=cid, user_id=user.id, amount=Decimal("1000"),
                            won_on=day))

    def followed(cid, user, when):
        db.session.add(FollowUp(customer_id=cid, user_id=user.id, channel="call",
                                content="电话", happened_at=when))

    start = NOW - 200 * D
    for i in range(10):
        cid = receive(org.rep, start, rule=f"rule:{RULE_A}")
        followed(cid, org.rep, start + (i + 1) * dt.timedelta(hours=6))
        if i < 9:
            won(cid, org.rep, (start + 10 * D).date())
    for i in range(10):
        cid = receive(org.rep_north, start, rule=f"rule:{RULE_B}")
        if i == 0:
            won(cid, org.rep_north, (start + 60 * D).date())
        if i == 1:
            log.append(OwnershipEvent(customer_id=cid, kind="reclaimed",
                                      from_owner_id=org.rep_north.id, to_pool_id=org.pool.id,
                                      rule="reclaim:no_followup:30d", created_at=start + 50 * D))
            log.append(OwnershipEvent(customer_id=cid, kind="claimed", from_pool_id=org.pool.id,
                                      to_owner_id=org.rep.id, created_at=start + 60 * D))
            won(cid, org.rep, (start + 70 * D).date())
            # a follow-up by rep_north after the reclaim is not theirs to count
            followed(cid, org.rep_north, start + 55 * D)
    for i in range(2):
        cid = receive(org.rep2, start, rule=f"rule:{RULE_C}")
        if i == 0:
            won(cid, org.rep2, (start + 100 * D).date())
    cid = receive(org.rep2, NOW - 100 * D, kind="transferred", rule="transfer:customer_request")
    won(cid, org.rep2, (NOW - 80 * D).date())
    receive(org.rep, NOW - 100 * D, kind="assigned", rule="even distribution")
    c1 = receive(org.rep, NOW - 40 * D, kind="claimed")
    followed(c1, org.rep, NOW - 38 * D)
    c2 = receive(org.rep, NOW - 40 * D, kind="claimed")
    followed(c2, org.rep, NOW - 30 * D)
    db.session.add_all(log)
    db.session.commit()
    return log


def by_name(rows):
    return {r["name"]: r for r in rows}


def test_exact_rates_bounds_and_verdicts(db, org, history):
    report = oe.report(org.admin, now=NOW)
    overall = report.overall
    # 27 receipts (the customers staff created went to the pool: no receipt); at 90 days the
    # two 40-day-old claims are too young to judge: 12 won of 25 (rule A's 9, rule B's 1, the
    # transfer, and rep's claim of rule B's reclaimed customer, won 10 days after).
    assert overall["received"] == 27
    assert (overall["won90_k"], overall["won90_n"], overall["won90_rate"]) == (12, 25, 0.48)
    assert (overall["won30_k"], overall["won30_n"]) == (11, 27)
    assert (overall["followup_k"], overall["followup_n"]) == (11, 27)
    rules = by_name(report.tables["rule"])
    a, b, c = rules[RULE_A], rules[RULE_B], rules[RULE_C]
    assert (a["received"], a["won90_k"], a["won90_n"], a["won90_rate"]) == (10, 9, 10, 0.9)
    assert (a["won90_low"], a["won90_high"]) == (0.596, 0.982)
    assert (b["won90_k"], b["won90_n"], b["won90_low"], b["won90_high"]) == (1, 10, 0.018, 0.404)
    assert (b["reclaimed"], b["reclaim_rate"], b["recaptured"], b["recapture_rate"]) == (
        1, 0.1, 1, 1.0)
    assert (c["won90_k"], c["won90_n"], c["won180_k"], c["won90_low"], c["won90_high"]) == (
        0, 2, 1, 0.0, 0.658)
    # the median of 6, 12, …, 60 hours after receipt: 33
    assert a["followup_median_hours"] == 33.0
    assert (a["followup_k"], a["followup_n"]) == (10, 10)
    assert report.lines[:3] == [
        f"规则 {RULE_A}：90 天成交率 90%（±19%，10 个客户），高于平均",
        f"规则 {RULE_B}：90 天成交率 10%（±19%，10 个客户），低于平均",
        f"规则 {RULE_C}：90 天成交率 0%（±33%，2 个客户），与平均无明显差别"]
    strategies = by_name(report.tables["strategy"])
    assert {k: v["received"] for k, v in strategies.items()} == {
        "轮流分配": 10, "最少客户优先": 10, "指定一人": 2, "手工平均分配": 1}
    channels = by_name(report.tables["channel"])
    assert {k: v["received"] for k, v in channels.items()} == {
        "按规则分配": 22, "转移": 1, "平均分配": 1, "从公海领取": 3}
    claimed = channels["从公海领取"]
    # two claims 40 days old: one followed up within 7 days; the third claim (day 60 of rule
    # B's reclaimed customer) 140 days ago, never followed up by rep
    assert (claimed["followup_k"], claimed["followup_n"], claimed["followup_rate"]) == (1, 3, 0.333)
    transfer = by_name(report.tables["transfer"])
    assert list(transfer) == ["转移申请（客户要求）"]
    assert transfer["转移申请（客户要求）"]["won30_k"] == 1
    reps = by_name(report.tables["rep"])
    assert reps[org.rep.display_name]["transfer_n"] == 0
    assert reps[org.rep2.display_name]["transfer_won_rate"] == 1.0
    assert [r["name"] for r in report.tables["cohort"]] == ["2026-05", "2026-07", "2026-08",
                                                           "2026-10"]


def test_wilson_matches_the_formula():
    assert [round(x, 3) for x in oe.wilson(9, 10)] == [0.596, 0.982]
    assert [round(x, 3) for x in oe.wilson(0, 2)] == [0.0, 0.658]
    assert oe.wilson(0, 0) == (None, None)


def test_a_manager_sees_only_the_reps_in_scope(db, org, history):
    east = oe.report(org.manager, now=NOW)
    assert {r["name"] for r in east.tables["rep"]} == {org.rep.display_name,
                                                       org.rep2.display_name}
    assert RULE_B not in by_name(east.tables["rule"])
    north = oe.report(org.manager_north, now=NOW)
    assert [r["name"] for r in north.tables["rep"]] == [org.rep_north.display_name]


def test_a_rep_sees_only_their_own_row(db, org, history):
    mine = oe.report(org.rep2, now=NOW)
    assert [r["name"] for r in mine.tables["rep"]] == [org.rep2.display_name]
    assert mine.overall["received"] == 3


def test_auditor_sees_all_and_staff_is_refused(db, org, history):
    assert oe.report(org.auditor, now=NOW).overall["received"] == 27
    with pytest.raises(PermissionDenied):
        oe.report(org.staff, now=NOW)
    with pytest.raises(PermissionDenied):
        oe.report(org.marketing, now=NOW)


def test_the_department_filter(db, org, history):
    north = oe.report(org.admin, dept=str(org.north.id), now=NOW)
    assert north.overall["received"] == 10
    with pytest.raises(ValidationFailed) as exc:
        oe.report(org.manager, dept=str(org.north.id), now=NOW)
    assert list(exc.value.fields) == ["dept"]


@pytest.mark.parametrize("args, field", [
    (dict(start="2026-13-01"), "start"), (dict(end="yesterday"), "end"),
    (dict(start="2026-11-20", end="2026-11-01"), "start"),
    (dict(start="2020-01-01", end="2026-11-01"), "start"),
    (dict(dept="abc"), "dept"), (dict(dept="999999"), "dept"),
    (dict(days="0"), "days"), (dict(days="x"), "days")])
def test_bad_filters_name_the_parameter(db, org, args, field):
    with pytest.raises(ValidationFailed) as exc:
        oe.report(org.admin, now=NOW, **args)
    assert list(exc.value.fields) == [field]


def test_the_period_selects_receipts_by_day_received(db, org, history):
    report = oe.report(org.admin, start="2026-07-01", end="2026-08-31", now=NOW)
    assert report.overall["received"] == 3  # the transfer, the distribution, rule B's claim


# --- the page, the downloads, the CLI, the monthly mail ------------------------------------------
PAGE_ROLES = {"admin": 200, "manager": 200, "rep": 200, "auditor": 200, "staff": 403,
              "marketing": 403}


@pytest.mark.parametrize("role", sorted(PAGE_ROLES))
@pytest.mark.parametrize("path, ok", [
    ("/ownership-effect/", 200), ("/ownership-effect/rule.csv", 200),
    ("/ownership-effect/rep.xlsx", 200), ("/ownership-effect/nope.csv", 404),
    ("/ownership-effect/rule.pdf", 404),
    ("/ownership-effect/rule.csv?start=2026-12-01&end=2026-11-01", 400),
    ("/ownership-effect/?days=abc", 400)])
def test_the_page_by_role(app, org, role, path, ok):
    from tests.conftest import login

    client = login(app.test_client(), getattr(org, role).username)
    resp = client.get(path)
    assert resp.status_code == (ok if PAGE_ROLES[role] == 200 else 403), (role, path)
    if resp.status_code == 400 and path.startswith("/ownership-effect/?"):
        assert "days: " in resp.get_data(as_text=True)


def test_the_page_answers_which_rule_converts_best(app, org, history):
    from tests.conftest import login

    client = login(app.test_client(), org.admin.username)
    html = client.get("/ownership-effect/?start=2026-01-01&end=2026-11-30").get_data(as_text=True)
    assert f"{RULE_A}：90 天成交率" in html and "高于平均" in html
    csv = client.get("/ownership-effect/rule.csv?start=2026-01-01&end=2026-11-30") \
        .get_data(as_text=True)
    header, first = csv.lstrip("\ufeff").splitlines()[:2]
    assert header.startswith("名称,收到的客户数")
    assert "跟进率下限（95%）" in header and "90 天成交率上限（95%）" in header
    assert "括号内为 95% 置信区间" in html and "%%" not in html
    assert first.startswith(f"{RULE_A},10,")


def test_the_cli_prints_the_tables(app, org, history):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "ownership-effect", "--from", "2026-01-01",
                                 "--to", "2026-11-30", "--dept", "华北大区"])
    assert result.exit_code == 0, result.output
    assert f"规则 {RULE_B}：90 天成交率 10%" in result.output
    assert RULE_A not in result.output
    bad = runner.invoke(args=["crm", "ownership-effect", "--from", "2026-02-30"])
    assert bad.exit_code == 1 and "start: " in bad.output


@pytest.fixture
def smtp(app, monkeypatch):
    from tests.care_fixtures import SmtpServer

    with SmtpServer() as server:
        monkeypatch.setitem(app.config, "SMTP_HOST", "127.0.0.1")
        monkeypatch.setitem(app.config, "SMTP_PORT", server.port)
        yield server.inbox


def test_the_monthly_mail_gives_each_manager_their_scope(db, org, history, smtp):
    from app.services import ownership_effect_mail

    run = ownership_effect_mail.send_monthly(NOW + 12 * D)  # 2026-12-02: Dec 2025 – Nov 2026
    assert sorted(run.sent) == ["manager1", "manager2"] and run.failed == []
    mails = {m["To"]: m for m in smtp.messages}
    east = mails[org.manager.email]
    assert east["Subject"] == "归属效果评估 2025-12-01 至 2026-11-30"
    html = east.get_body(("html",)).get_content()
    assert f"规则 {RULE_A}：90 天成交率 90%" in html and RULE_B not in html
    assert "/ownership-effect/?start=2025-12-01&amp;end=2026-11-30" in html
    north = mails[org.manager_north.email].get_body(("html",)).get_content()
    assert RULE_B in north and RULE_A not in north


def test_the_job_is_scheduled_monthly():
    from app.queue import PERIODIC

    job = next(j for j in PERIODIC if j.name == "ownership_effect_mail")
    assert (job.func, job.default_cron) == ("jobs.ownership.ownership_effect_mail", "0 1 1 * *")


def test_a_win_after_the_holding_ended_is_not_the_first_holdings(db, org):
    """rep claims a customer, releases it, claims it again and wins it: the win belongs to the
    second holding only."""
    from app.services import customers

    cid = customers.create_customer(org.staff, {"name": "两次领取的客户"}).id
    t0 = NOW - 200 * D
    db.session.add_all([
        OwnershipEvent(customer_id=cid, kind="claimed", from_pool_id=org.pool.id,
                       to_owner_id=org.rep.id, created_at=t0),
        OwnershipEvent(customer_id=cid, kind="released", from_owner_id=org.rep.id,
                       to_pool_id=org.pool.id, created_at=t0 + 5 * D),
        OwnershipEvent(customer_id=cid, kind="claimed", from_pool_id=org.pool.id,
                       to_owner_id=org.rep.id, created_at=t0 + 40 * D),
        Deal(customer_id=cid, user_id=org.rep.id, amount=Decimal("500"),
             won_on=(t0 + 50 * D).date())])
    db.session.commit()
    claimed = by_name(oe.report(org.admin, now=NOW).tables["channel"])["从公海领取"]
    assert (claimed["received"], claimed["won30_k"], claimed["won90_k"], claimed["won90_n"]) == (
        2, 1, 1, 2)
    assert (claimed["reclaimed"], claimed["reclaim_rate"]) == (0, 0.0)


def test_the_receipts_day_is_its_business_day(db, org):
    """A customer received at 20:00 UTC on the 1st is received on the 2nd in Shanghai: a deal
    the rep won on the 1st (business day) came before it and is not the holding's win; one
    won on the 2nd is, on day 0."""
    from app.services import customers

    received = dt.datetime(2026, 6, 1, 20, 0)      # 2026-06-02 04:00 in Shanghai
    before, same = (customers.create_customer(org.staff, {"name": f"时区客户{i}"}).id
                    for i in range(2))
    db.session.add_all([
        OwnershipEvent(customer_id=cid, kind="claimed", to_owner_id=org.rep.id,
                       from_pool_id=org.pool.id, created_at=received) for cid in (before, same)])
    db.session.add_all([
        Deal(customer_id=before, user_id=org.rep.id, amount=Decimal("1"),
             won_on=dt.date(2026, 6, 1)),
        Deal(customer_id=same, user_id=org.rep.id, amount=Decimal("1"),
             won_on=dt.date(2026, 6, 2))])
    db.session.commit()
    report = oe.report(org.admin, start="2026-06-01", end="2026-06-03", now=NOW)
    assert (report.overall["received"], report.overall["won30_k"]) == (2, 1)
