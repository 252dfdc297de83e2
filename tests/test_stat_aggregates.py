"""The dashboards' aggregates (app.services.stat_aggregates, migration 0046): every chart that
sums stat_daily answers exactly what its live query answers (app.services.stats.RAW) on the
same data, for every role and filter, after increments and after a merge + rebuild; two
refreshes at once count each row once; read-only shares never enter; the home page says how
fresh the numbers are; and `pool_sizes_over_time` draws the pools' sizes per day."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.models.customer import utcnow

KINDS = ["created", "claimed", "assigned", "released", "reclaimed", "transferred",
         "rule-assigned", "moved", "claimed", "assigned", "merged"]
# Stored UTC times either side of midnight in Shanghai (16:00 UTC): the business day decides.
HOURS = [(15, 50), (16, 10), (3, 0), (23, 59)]


def _at(days_ago: int, i: int) -> dt.datetime:
    """A stored time `days_ago` days back at one of HOURS, never in the future."""
    hour, minute = HOURS[i % len(HOURS)]
    day = utcnow().date() - dt.timedelta(days=days_ago)
    at = dt.datetime.combine(day, dt.time(hour, minute))
    return at if at < utcnow() - dt.timedelta(hours=1) else at - dt.timedelta(days=1)


@pytest.fixture
def history(org, db):
    """Forty-five days of ownership events (repeated acquisitions of one customer by one
    owner, transfers inside and across teams, pool moves), follow-ups (one by nobody),
    deals with cents, customers created on past days, and a pool claim today."""
    from app.models import Customer, Deal, FollowUp, OwnershipEvent, PoolMember
    from app.services import customers, pool

    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    pool.claim_from_pool(org.rep2, [org.c_pool.id])
    db.session.commit()
    people = [org.rep, org.rep2, org.rep_north, None]
    made = [customers.create_customer(org.admin, {"name": f"历史客户{i}号贸易有限公司"},
                                      pool_id=org.pool.id) for i in range(3)]
    for i, c in enumerate(made):
        db.session.execute(update(Customer).where(Customer.id == c.id).values(
            created_at=_at(5 + 9 * i, i)))
    ids = [org.c_rep.id, org.c_rep2.id, org.c_north.id, org.c_pool.id] + [c.id for c in made]
    events = []
    for i in range(90):
        kind = KINDS[i % len(KINDS)]
        frm, to = people[(i + 1) % 4], people[i % 4]
        into_pool = kind in ("released", "reclaimed", "moved") or to is None
        events.append(OwnershipEvent(
            customer_id=ids[i % 3 if i % 2 else i % len(ids)], kind=kind,
            from_owner_id=frm.id if frm and kind != "created" else None,
            from_pool_id=org.pool.id if kind in ("claimed", "moved") else None,
            to_owner_id=None if into_pool else to.id,
            to_pool_id=org.pool.id if into_pool else None,
            reason="历史", created_at=_at((i * 7) % 45, i)))
    # appended as they happened: the log's ids follow its times
    db.session.add_all(sorted(events, key=lambda e: e.created_at))
    for i in range(40):
        who = people[i % 4]
        db.session.add(FollowUp(customer_id=ids[i % len(ids)], user_id=who.id if who else None,
                                channel="call", content="电话", happened_at=_at((i * 5) % 20, i)))
    for i in range(12):
        who = people[i % 3]
        db.session.add(Deal(customer_id=ids[i % 3], user_id=who.id,
                            amount=Decimal("1234.56") + i, won_on=_at(i * 4, i).date()))
    db.session.commit()
    return org


def evaluate(user, name, raw=False, **args):
    from app.services import stats

    chart = stats.evaluate(user, name, stats.parse_filters(args), raw=raw).to_dict()
    chart.pop("as_of")
    return chart


def _day(days_ago: int) -> str:
    from app.services.times import local_today

    return (local_today() - dt.timedelta(days=days_ago)).isoformat()


RANGES = [{}, {"from": _day(50), "to": _day(0)}, {"from": _day(20), "to": _day(10)},
          {"from": _day(3), "to": _day(3)}]


def assert_same_as_live(user, extra=()):
    from app.services import stats

    checked = 0
    for name in stats.RAW:
        for args in list(RANGES) + list(extra):
            try:
                live = evaluate(user, name, raw=True, **args)
            except Exception as refused:  # noqa: BLE001 - then both refuse alike
                with pytest.raises(type(refused)):
                    evaluate(user, name, **args)
                continue
            assert evaluate(user, name, **args) == live, (name, args)
            checked += 1
    return checked


def test_the_aggregated_stats_are_the_converted_ones():
    from app.services import stats

    assert sorted(stats.RAW) == sorted(s.name for s in stats.STATS.values() if s.aggregated) == [
        "customer_growth", "followups_week", "pool_flow", "pool_sizes_over_time",
        "reclaims_transfers", "team_conversion", "team_ranking"]


def test_acquired_is_the_targets_new_customer():
    from app.services import stat_aggregates, targets

    from app.models.ownership import ACQUIRED_KINDS_SQL

    assert stat_aggregates.ACQUIRED == targets.ACQUIRED
    assert ACQUIRED_KINDS_SQL == "kind IN (%s)" % ", ".join(f"'{k}'" for k in targets.ACQUIRED)


@pytest.mark.parametrize("role", ["admin", "auditor", "staff", "manager", "manager_north",
                                  "rep", "rep2", "rep_north"])
def test_each_converted_stat_answers_as_its_live_query(history, role):
    org = history
    extra = []
    if role in ("admin", "auditor", "staff"):
        extra = [{"department": str(org.north.id)}, {"department": str(org.centre.id),
                                                    "from": _day(40)}]
    elif role == "manager":
        extra = [{"department": str(org.east.id), "from": _day(44)},
                 {"department": str(org.north.id)}]
    assert assert_same_as_live(getattr(org, role), extra) >= 20


def test_the_comparison_is_not_of_empty_charts(history):
    org = history
    ranking = evaluate(org.admin, "team_ranking", **{"from": _day(50)})
    new, followed, won = (s["data"] for s in ranking["series"])
    assert sum(new) > 0 and sum(followed) > 0 and sum(won) > 0
    flow = evaluate(org.manager, "pool_flow", **{"from": _day(50)})
    assert all(sum(s["data"]) > 0 for s in flow["series"])
    moves = evaluate(org.admin, "reclaims_transfers", **{"from": _day(50)})
    assert all(sum(s["data"]) > 0 for s in moves["series"])
    growth = evaluate(org.admin, "customer_growth", **{"from": _day(50)})
    assert sum(growth["series"][0]["data"]) == 4 + 3  # the org's four, these three


def test_a_customer_acquired_twice_counts_once_per_range(org, db):
    """The targets' new customer is distinct: rep1 assigned c_pool on day -10 and day -3."""
    from app.models import OwnershipEvent

    for days_ago in (10, 3):
        db.session.add(OwnershipEvent(customer_id=org.c_pool.id, kind="assigned",
                                      to_owner_id=org.rep.id, created_at=_at(days_ago, 2)))
    db.session.commit()

    def new_of_rep1(**args):
        chart = evaluate(org.rep, "team_ranking", **args)
        return dict(zip(chart["categories"], chart["series"][0]["data"])).get("测试rep1", 0)

    # c_rep (created today) + c_pool once, though acquired twice in the range
    assert new_of_rep1(**{"from": _day(12)}) == 2
    assert new_of_rep1(**{"from": _day(5)}) == 2  # c_rep, c_pool's acquisition on day -3
    assert new_of_rep1(**{"from": _day(5), "to": _day(1)}) == 1
    assert new_of_rep1(**{"from": _day(12), "to": _day(1)}) == 1
    assert_same_as_live(org.rep)


def test_after_a_merge_the_nightly_rebuild_agrees_again(history, db):
    from app.services import merge, stat_aggregates

    org = history
    survivor, merged = org.c_rep.id, org.c_rep2.id
    before = evaluate(org.admin, "customer_growth")["series"][0]["data"][-1]
    merge.merge(org.admin, survivor, [merged])
    stat_aggregates.refresh()
    # the merged record is gone from the customers; the increments cannot see that
    assert evaluate(org.admin, "customer_growth", raw=True)["series"][0]["data"][-1] == \
        before - 1
    assert evaluate(org.admin, "customer_growth")["series"][0]["data"][-1] == before
    stat_aggregates.rebuild()
    assert evaluate(org.admin, "customer_growth")["series"][0]["data"][-1] == before - 1
    for role in ("admin", "manager", "rep", "rep2"):
        assert_same_as_live(getattr(org, role))
    record = merge.recent_merges(1)[0]
    merge.undo(org.admin, record.id)
    stat_aggregates.rebuild()
    assert evaluate(org.admin, "customer_growth")["series"][0]["data"][-1] == before
    for role in ("admin", "manager", "rep2"):
        assert_same_as_live(getattr(org, role))


def test_increments_add_up_to_a_rebuild(history, db):
    from app.models import FollowUp, OwnershipEvent, StatDaily
    from app.services import stat_aggregates

    org = history

    def table():
        return sorted(tuple(r) for r in db.session.execute(select(
            StatDaily.kind, StatDaily.owner_id, StatDaily.day, StatDaily.peer_id,
            StatDaily.since, StatDaily.n, StatDaily.amount)).all())

    stat_aggregates.refresh()
    for i in range(3):  # more rows, each batch counted by an increment of its own
        db.session.add(OwnershipEvent(customer_id=org.c_north.id, kind="assigned",
                                      to_owner_id=org.rep_north.id,
                                      created_at=utcnow() + dt.timedelta(seconds=i)))
        db.session.add(FollowUp(customer_id=org.c_north.id, user_id=org.rep_north.id,
                                channel="call", content="电话", happened_at=_at(2 - i, i)))
        db.session.commit()
        counted = stat_aggregates.refresh()
        assert counted["ownership_event"] == 1 and counted["follow_up"] == 1
        assert stat_aggregates.refresh() == {"ownership_event": 0, "follow_up": 0, "deal": 0,
                                             "customer": 0}
    incremental = table()
    stat_aggregates.rebuild()
    assert table() == incremental


def test_read_only_shares_do_not_enter_the_aggregates(history, db):
    """rep1 reads c_north through a share: still only rep1's own numbers."""
    from app.models import CustomerShare, FollowUp

    org = history
    db.session.add(CustomerShare(customer_id=org.c_north.id, user_id=org.rep.id))
    db.session.add(FollowUp(customer_id=org.c_north.id, user_id=org.rep_north.id,
                            channel="visit", content="上门", happened_at=utcnow()))
    db.session.commit()
    mine = evaluate(org.rep, "followups_week")
    theirs = evaluate(org.rep_north, "followups_week")
    assert sum(theirs["series"][1]["data"]) >= 1
    from app.models import StatDaily

    rep1_rows = db.session.execute(select(func.sum(StatDaily.n)).where(
        StatDaily.kind == "followup", StatDaily.owner_id == org.rep.id,
        StatDaily.day >= dt.date.fromisoformat(_day(6)))).scalar() or 0
    assert sum(mine["series"][1]["data"]) <= rep1_rows
    assert_same_as_live(org.rep)


def test_pool_sizes_over_time(org, db):
    """c_pool entered the default pool three days ago; rep2 claims it today."""
    from app.models import OwnershipEvent, PoolMember
    from app.services import pool

    from app.services.times import local_today

    # 03:00 UTC on the business day three days back is 11:00 that day in Shanghai (the UTC
    # date is a day behind from 16:00 UTC, and a time from it fell on the wrong day then).
    three_days_back = dt.datetime.combine(local_today() - dt.timedelta(days=3), dt.time(3, 0))
    db.session.execute(update(OwnershipEvent).where(
        OwnershipEvent.customer_id == org.c_pool.id, OwnershipEvent.kind == "created")
        .values(created_at=three_days_back))
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    before = evaluate(org.admin, "pool_sizes_over_time", **{"from": _day(4)})
    assert before["series"] == [{"name": org.pool.name, "data": [0, 1, 1, 1, 1]}]
    pool.claim_from_pool(org.rep2, [org.c_pool.id])
    db.session.commit()
    chart = evaluate(org.admin, "pool_sizes_over_time", **{"from": _day(4)})
    assert chart["title"] == "公海规模变化" and chart["kind"] == "line"
    assert chart["categories"] == [_day(i) for i in (4, 3, 2, 1, 0)]
    assert chart["series"] == [{"name": org.pool.name, "data": [0, 1, 1, 1, 0]}]
    assert chart == evaluate(org.admin, "pool_sizes_over_time", raw=True, **{"from": _day(4)})


@pytest.mark.parametrize("role", ["rep", "manager"])
def test_pool_sizes_over_time_is_the_whole_organisations(org, role):
    from app.services import stats
    from app.services.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        stats.evaluate(getattr(org, role), "pool_sizes_over_time", stats.parse_filters({}))


def test_far_behind_the_chart_waits_for_the_job(history, app, db):
    """Beyond the catch-up limit a read does not count (the job will); the answer says as of
    when it is counted."""
    from app.models import FollowUp
    from app.services import stat_aggregates, stats

    org = history
    stat_aggregates.refresh()
    counted_at = stat_aggregates.fresh_as_of()
    for _ in range(3):
        db.session.add(FollowUp(customer_id=org.c_rep.id, user_id=org.rep.id, channel="call",
                                content="电话", happened_at=utcnow()))
    db.session.commit()
    live = evaluate(org.rep, "followups_week", raw=True)
    app.config["STATS_READ_CATCH_UP_MAX"] = 2
    try:
        chart = stats.evaluate(org.rep, "followups_week", stats.parse_filters({}))
        assert sum(chart.series[1][1]) == sum(live["series"][1]["data"]) - 3
        assert chart.as_of == counted_at
    finally:
        app.config.pop("STATS_READ_CATCH_UP_MAX")
    assert evaluate(org.rep, "followups_week") == live  # 3 behind: caught up on read
    assert stats.evaluate(org.rep, "customers_by_stage", stats.parse_filters({})).as_of is None


def test_the_home_page_and_the_api_say_how_fresh(clients, api, org):
    html = clients.admin.get("/").get_data(as_text=True)
    assert 'id="dashboard-freshness"' in html and "数据更新于" in html
    assert "数据更新于" in clients.manager.get("/").get_data(as_text=True)
    body = api("admin")("GET", "/api/v1/stats/pool_sizes_over_time").get_json()
    assert body["as_of"] and "+08:00" in body["as_of"]
    assert api("admin")("GET", "/api/v1/stats/pool_sizes").get_json()["as_of"] is None


def test_cli_and_jobs(app, org, db):
    from jobs.stats import stats_rebuild, stats_refresh

    out = app.test_cli_runner().invoke(args=["crm", "stats-refresh", "--rebuild"])
    assert out.exit_code == 0 and out.output.startswith("rebuilt (ownership_event ")
    out = app.test_cli_runner().invoke(args=["crm", "stats-refresh"])
    assert out.exit_code == 0 and out.output.startswith(
        "refreshed (ownership_event 0, follow_up 0, deal 0, customer 0 ids) in ")
    assert set(stats_refresh()) == set(stats_rebuild()) == {"ownership_event", "follow_up",
                                                            "deal", "customer"}


@pytest.mark.real_db
def test_two_refreshes_at_once_count_each_row_once(app, org, db):
    from app.models import FollowUp, OwnershipEvent, StatDaily, User
    from app.services import stat_aggregates
    from tests.helpers import in_threads

    stat_aggregates.rebuild()
    manager_id = org.manager.id
    for i in range(60):
        db.session.add(FollowUp(customer_id=org.c_rep.id, user_id=org.rep.id, channel="call",
                                content="电话", happened_at=_at(i % 9, i)))
        db.session.add(OwnershipEvent(customer_id=org.c_rep.id, kind="claimed",
                                      to_owner_id=org.rep.id, from_pool_id=org.pool.id,
                                      created_at=utcnow() + dt.timedelta(seconds=i)))
    db.session.commit()
    db.session.remove()
    results = in_threads(app, 4, lambda i: stat_aggregates.refresh())
    for source in ("follow_up", "ownership_event"):  # one counted them, the others found none
        covered = sorted(r[source] for r in results)
        assert covered[:3] == [0, 0, 0] and covered[3] >= 60

    def total(kind):
        return db.session.execute(select(func.sum(StatDaily.n)).where(
            StatDaily.kind == kind)).scalar()

    followups = db.session.execute(select(func.count()).select_from(FollowUp)).scalar()
    assert total("followup") == followups
    claims = db.session.execute(select(func.count()).where(
        OwnershipEvent.kind == "claimed")).scalar()
    assert total("claimed") == claims
    assert_same_as_live(db.session.get(User, manager_id))


@pytest.mark.real_db
def test_a_read_does_not_wait_for_a_long_writer(app, org, db, clients):
    """While another transaction holds what a refresh must lock — the database's write lock
    on SQLite (the nightly rebuild, an import), the watermark rows on PostgreSQL — the home
    page's catch-up gives up at once: the page answers from the counts it has, no error."""
    import time

    from app.models import FollowUp
    from app.services import stat_aggregates

    admin = clients.admin  # signed in before the writer arrives
    assert admin.get("/").status_code == 200
    stat_aggregates.rebuild()
    db.session.add(FollowUp(customer_id=org.c_rep.id, user_id=org.rep.id, channel="call",
                            content="电话", happened_at=utcnow()))
    db.session.commit()
    db.session.remove()
    writer = db.engine.connect()
    try:
        if writer.dialect.name == "sqlite":
            writer.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            writer.exec_driver_sql("BEGIN")
            writer.exec_driver_sql("SELECT 1 FROM stat_watermark FOR UPDATE")
        started = time.monotonic()
        page = admin.get("/")
        elapsed = time.monotonic() - started
        assert page.status_code == 200 and "数据更新于" in page.get_data(as_text=True)
        assert elapsed < 20, elapsed  # not the 30 s busy timeout (the old code failed after it)
        with app.app_context():
            assert stat_aggregates.refresh_source("follow_up", wait=False) == 0
            db.session.remove()
    finally:
        writer.rollback()
        writer.close()
    with app.app_context():  # once the writer is gone the read catches up
        assert stat_aggregates.refresh_source("follow_up", wait=False) == 1
        db.session.remove()
