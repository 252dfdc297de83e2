"""The charts' numbers (app.services.stats) and their API (/api/v1/stats/): each stat in the
caller's data scope — a rep's own, a manager's team's, everyone's for the scope ALL — with the
date and department filters checked (400 naming the parameter), whole-organisation charts
refused to the narrower scopes, and the CSV / XLSX downloads holding the chart's table."""
from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest

from app.services.errors import NotFound, PermissionDenied, ValidationFailed


def numbers(user, name, **args):
    from app.services import stats

    chart = stats.evaluate(user, name, stats.parse_filters(args))
    return chart.categories, {n: v for n, v in chart.series}


def values(user, name, series=None, **args):
    cats, found = numbers(user, name, **args)
    data = found[series] if series else next(iter(found.values()))
    return dict(zip(cats, data))


@pytest.fixture
def activity(org, db):
    """rep1 follows up c_rep; rep2 wins 5,000 on c_rep2 and 1,000 more on it; rep3 follows
    up c_north twice."""
    from app.services import deals, followups

    followups.log_followup(org.rep, org.c_rep.id, {"channel": "visit", "content": "上门"})
    deals.record_deal(org.rep2, org.c_rep2.id, {"amount": "5000"})
    deals.record_deal(org.rep2, org.c_rep2.id, {"amount": "1000"})
    for _ in range(2):
        followups.log_followup(org.rep_north, org.c_north.id, {"channel": "call",
                                                                "content": "电话"})
    db.session.commit()
    return org


# --- scope -----------------------------------------------------------------------------------
STAGES = ("未联系", "跟进中", "已成交")


@pytest.mark.parametrize("role,expected", [
    ("rep", (0, 1, 0)),  # c_rep, followed up
    ("manager", (0, 1, 1)),  # the east team: c_rep and c_rep2 (won)
    ("manager_north", (0, 1, 0)),  # c_north
    ("admin", (0, 2, 1)),  # every owned customer (c_pool sits in the pool)
    ("auditor", (0, 2, 1)), ("staff", (0, 2, 1))])
def test_customers_by_stage_in_each_scope(activity, role, expected):
    cats, found = numbers(getattr(activity, role), "customers_by_stage")
    assert cats == list(STAGES)
    assert found == {"客户": list(expected)}


def test_a_department_filter_narrows_within_the_scope(activity):
    org = activity
    assert values(org.admin, "customers_by_stage", department=str(org.north.id)) == {
        "未联系": 0, "跟进中": 1, "已成交": 0}
    # the sales centre holds both regions
    assert values(org.admin, "customers_by_stage", department=str(org.centre.id)) == {
        "未联系": 0, "跟进中": 2, "已成交": 1}
    # outside the manager's scope: nothing, not the other team's numbers
    assert values(org.manager, "customers_by_stage", department=str(org.north.id)) == {
        "未联系": 0, "跟进中": 0, "已成交": 0}


def test_team_ranking_per_role(activity):
    org = activity
    # rep2 won 6,000; rep1 has a follow-up; both created one customer in the last 30 days
    ranking = numbers(org.manager, "team_ranking")
    names = ranking[0]
    assert [n.endswith("rep2") for n in names] == [True, False]
    assert ranking[1] == {"新增客户": [1, 1], "跟进记录": [0, 1],
                          "成交金额（元）": [Decimal("6000"), Decimal("0")]}
    rep_names, rep_found = numbers(org.rep, "team_ranking")
    assert len(rep_names) == 1 and rep_names[0].endswith("rep1")
    assert rep_found == {"新增客户": [1], "跟进记录": [1], "成交金额（元）": [Decimal("0")]}
    admin_names, admin_found = numbers(org.admin, "team_ranking")
    assert [n[-4:] for n in admin_names] == ["rep2", "rep3", "rep1"]
    assert admin_found["跟进记录"] == [0, 2, 1]


def test_team_conversion_per_person(activity):
    org = activity
    cats, found = numbers(org.manager, "team_conversion")
    # rep2 acquired c_rep2 and won it; rep1 acquired c_rep, not won
    assert [c[-4:] for c in cats] == ["rep2", "rep1"]
    assert found == {"新增客户": [1, 1], "其中已成交": [1, 0], "转化率（%）": [100.0, 0.0]}
    cats, found = numbers(org.rep, "team_conversion")
    assert [c[-4:] for c in cats] == ["rep1"] and found["转化率（%）"] == [0.0]
    cats, found = numbers(org.admin, "team_conversion")
    assert [c[-4:] for c in cats] == ["rep2", "rep1", "rep3"]


def test_team_ranking_counts_only_the_dates_asked(activity):
    org = activity
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    assert numbers(org.manager, "team_ranking", **{"from": tomorrow, "to": tomorrow}) == (
        [], {"新增客户": [], "跟进记录": [], "成交金额（元）": []})


def test_pool_flow_counts_releases_and_claims_per_person(org, db):
    from app.models import PoolMember
    from app.services import pool

    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    pool.release_to_pool(org.rep, [org.c_rep.id], "客户没有需求")
    pool.claim_from_pool(org.rep2, [org.c_rep.id, org.c_pool.id])
    db.session.commit()
    cats, found = numbers(org.manager, "pool_flow")
    assert [c[-4:] for c in cats] == ["rep1", "rep2"]
    assert found == {"退回": [1, 0], "回收": [0, 0], "领取": [0, 2]}
    cats, found = numbers(org.rep, "pool_flow")
    assert [c[-4:] for c in cats] == ["rep1"] and found == {"退回": [1], "回收": [0],
                                                            "领取": [0]}
    assert numbers(org.manager_north, "pool_flow") == ([], {"退回": [], "回收": [], "领取": []})


def test_own_charts_are_the_callers_own(activity):
    org = activity
    # c_rep, acquired now, followed up now: 30 days before the no-follow-up rule takes it
    assert values(org.rep, "reclaim_days") == {
        "今天到期或已逾期": 0, "1–3 天": 0, "4–7 天": 0, "8–14 天": 0, "15–30 天": 1,
        "30 天以上": 0, "不会回收（锁定或已成交）": 0}
    assert values(org.rep2, "reclaim_days")["不会回收（锁定或已成交）"] == 1
    assert sum(values(org.manager, "reclaim_days").values()) == 0  # owns none himself
    assert values(org.rep, "claims_today") == {"今天已领取": 0, "今天还可领取": 20}


def test_followups_this_week_per_weekday(activity):
    from app.services.times import local_today

    org = activity
    weekday = local_today().weekday()
    _, found = numbers(org.rep, "followups_week")
    assert found["本周"] == [1 if i == weekday else 0 for i in range(7)]
    assert found["上周"] == [0] * 7
    assert sum(numbers(org.manager_north, "followups_week")[1]["本周"]) == 2
    assert sum(numbers(org.admin, "followups_week")[1]["本周"]) == 3


def test_pipeline_in_the_opportunities_scope(org, db):
    from app.services import opportunities

    opportunities.create(org.rep, {"customer_id": org.c_rep.id, "title": "一期", "amount": "800"})
    opportunities.create(org.rep_north, {"customer_id": org.c_north.id, "title": "二期",
                                         "amount": "200"})
    db.session.commit()
    first = opportunities.stages()[0].name
    assert values(org.rep, "pipeline", "商机")[first] == 1
    assert values(org.rep, "pipeline", "金额（元）")[first] == Decimal("800")
    assert values(org.manager_north, "pipeline", "商机")[first] == 1
    assert values(org.admin, "pipeline", "商机")[first] == 2
    assert values(org.admin, "pipeline", "金额（元）", department=str(org.north.id))[first] == \
        Decimal("200")


def test_target_attainment_in_the_targets_scope(activity):
    from app.services import targets

    org = activity
    start = targets.period_containing("month").isoformat()
    for holder, won, new in ((org.rep, "1000", 2), (org.rep2, "3000", None),
                             (org.rep_north, "500", 1)):
        targets.create_target(org.admin, {"user_id": holder.id, "period_kind": "month",
                                          "period_start": start, "won_amount": won,
                                          "new_customers": new})
    cats, found = numbers(org.rep, "target_attainment")
    assert len(cats) == 1 and cats[0].endswith("rep1")
    # rep1: nothing won of 1,000; 1 new customer (c_rep, created this month) of 2
    assert found == {"成交金额达成率（%）": [0.0], "新增客户达成率（%）": [50.0]}
    cats, found = numbers(org.manager, "target_attainment")
    assert [c[-4:] for c in cats] == ["rep1", "rep2"]
    # rep2: 6,000 won of 3,000; no new-customer target
    assert found == {"成交金额达成率（%）": [0.0, 200.0], "新增客户达成率（%）": [50.0, None]}
    assert len(numbers(org.admin, "target_attainment")[0]) == 3


def test_my_tasks_by_due_date(org, db):
    from app.models import Task
    from app.models.customer import utcnow

    now = utcnow()
    for owner, due in ((org.rep, now - dt.timedelta(days=2)), (org.rep, now + dt.timedelta(days=30)),
                       (org.rep2, now - dt.timedelta(days=1))):
        db.session.add(Task(owner_id=owner.id, subject="回访", due_at=due))
    db.session.add(Task(owner_id=org.rep.id, subject="已完成", due_at=now, status="done",
                        done_at=now))
    db.session.commit()
    assert values(org.rep, "my_tasks") == {"已逾期": 1, "今天到期": 0, "本周到期": 0,
                                           "以后到期": 1}
    assert values(org.manager, "my_tasks") == {"已逾期": 0, "今天到期": 0, "本周到期": 0,
                                               "以后到期": 0}


def test_the_organisations_charts(activity):
    from app.services.times import local_today

    org = activity
    today = local_today().isoformat()
    growth = values(org.admin, "customer_growth")
    assert len(growth) == 30 and growth[today] == 4 and sum(growth.values()) == 4
    assert values(org.manager, "customer_growth")[today] == 2
    assert values(org.admin, "customers_by_region") == {"浙江": 1, "无省份": 3}
    assert values(org.rep2, "customers_by_region") == {"无省份": 1}
    assert values(org.admin, "customers_by_grade") == {"A": 0, "B": 0, "C": 1, "未定级": 3}  # the deal graded c_rep2
    category = values(org.admin, "customers_by_category")
    assert sum(category.values()) == 4 and category["活跃客户"] == 1
    assert values(org.admin, "pool_sizes") == {org.pool.name: 1}
    assert values(org.auditor, "duplicates") == {
        "发现的重复组": 0, "已合并的组": 0, "已驳回的组": 0, "被合并的客户": 0, "待审核的组": 0}
    assert sum(sum(v) for v in numbers(org.staff, "imports")[1].values()) == 0


@pytest.mark.parametrize("name", ["pool_sizes", "duplicates", "imports"])
@pytest.mark.parametrize("role", ["rep", "manager"])
def test_whole_organisation_charts_are_refused_to_narrower_scopes(org, name, role):
    with pytest.raises(PermissionDenied):
        numbers(getattr(org, role), name)


def test_no_such_chart(org):
    with pytest.raises(NotFound):
        numbers(org.admin, "nothing")


@pytest.mark.parametrize("args,field", [
    ({"from": "2026-13-01"}, "from"), ({"to": "yesterday"}, "to"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "from"),
    ({"from": "2024-01-01", "to": "2026-01-01"}, "from"),
    ({"department": "abc"}, "department"), ({"department": "-1"}, "department"),
    ({"department": "99999999999"}, "department"), ({"department": "999999"}, "department")])
def test_bad_filters_name_the_parameter(org, args, field):
    from app.services import stats

    with pytest.raises(ValidationFailed) as caught:
        stats.parse_filters(args)
    assert list(caught.value.fields) == [field]


# --- the API ---------------------------------------------------------------------------------
def test_api_answers_the_chart_in_the_callers_scope(api, activity):
    resp = api("rep1")("GET", "/api/v1/stats/customers_by_stage")
    assert resp.status_code == 200
    assert resp.get_json() == {
        "name": "customers_by_stage", "title": "客户阶段分布", "kind": "pie",
        "categories": list(STAGES), "series": [{"name": "客户", "data": [0, 1, 0]}],
        "filters": {"from": None, "to": None, "department": None}, "as_of": None}
    body = api("manager1")("GET", "/api/v1/stats/team_ranking?from=2026-01-01&to=2026-01-31") \
        .get_json()
    assert body["filters"] == {"from": "2026-01-01", "to": "2026-01-31", "department": None}


def test_api_lists_the_charts_each_role_may_read(api, org):
    names = {s["name"] for s in api("rep1")("GET", "/api/v1/stats/").get_json()["result"]}
    assert "pool_sizes" not in names and {"customers_by_stage", "team_ranking"} <= names
    names = {s["name"] for s in api("auditor1")("GET", "/api/v1/stats/").get_json()["result"]}
    assert {"pool_sizes", "duplicates", "imports"} <= names


@pytest.mark.parametrize("query,field", [
    ("from=2026-02-30", "from"), ("to=x", "to"), ("department=abc", "department"),
    ("department=999999", "department"), ("from=2026-02-01&to=2026-01-01", "from"),
    ("colour=red", "colour")])
@pytest.mark.parametrize("suffix", ["", "/csv", "/xlsx"])
def test_api_bad_filters_are_400_naming_the_parameter(api, org, query, field, suffix):
    resp = api("admin")("GET", f"/api/v1/stats/team_ranking{suffix}?{query}")
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "invalid" and list(body["fields"]) == [field]


def test_api_refusals(api, app, org):
    assert api("rep1")("GET", "/api/v1/stats/pool_sizes").status_code == 403
    assert api("manager1")("GET", "/api/v1/stats/imports/csv").status_code == 403
    assert api("rep1")("GET", "/api/v1/stats/nothing").get_json()["code"] == "not_found"
    assert api("marketing1")("GET", "/api/v1/stats/customers_by_stage").status_code == 403
    assert api("agent1")("GET", "/api/v1/stats/").status_code == 403
    resp = app.test_client().get("/api/v1/stats/customers_by_stage")
    assert (resp.status_code, resp.get_json()["code"]) == (401, "unauthorized")


def test_csv_and_xlsx_hold_the_charts_table(api, activity):
    from openpyxl import load_workbook

    call = api("manager1")
    resp = call("GET", "/api/v1/stats/customers_by_stage/csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"] == "attachment; filename=customers_by_stage.csv"
    assert resp.get_data(as_text=True) == \
        "\ufeff阶段,客户\r\n未联系,0\r\n跟进中,1\r\n已成交,1\r\n"
    resp = call("GET", "/api/v1/stats/team_ranking/xlsx")
    assert resp.status_code == 200
    sheet = load_workbook(io.BytesIO(resp.get_data())).active
    rows = [[c.value for c in row] for row in sheet.iter_rows()]
    assert rows[0] == ["人员", "新增客户", "跟进记录", "成交金额（元）"]
    assert [r[1:] for r in rows[1:]] == [[1, 0, 6000], [1, 1, 0]]
    assert rows[1][0].endswith("rep2")


def test_a_name_excel_would_run_is_written_as_text(api, org, db):
    from app.services import customers

    customers.create_customer(org.rep, {"name": "公式客户", "province": "=cmd|' /C calc'!A0"})
    db.session.commit()
    text = api("rep1")("GET", "/api/v1/stats/customers_by_region/csv").get_data(as_text=True)
    assert "'=cmd|' /C calc'!A0,1" in text


def test_english_titles_and_labels(clients):
    client = clients.rep
    with client.session_transaction() as session:
        session["locale"] = "en"
    body = client.get("/api/v1/stats/customers_by_stage").get_json()
    assert (body["title"], body["categories"], body["series"][0]["name"]) == (
        "Customers by stage", ["Not contacted", "Following up", "Won"], "Customers")


# --- the home page ---------------------------------------------------------------------------
@pytest.mark.parametrize("role,charts", [
    ("rep", ["customers_by_stage", "reclaim_days", "followups_week", "claims_today",
             "pipeline", "target_attainment", "my_tasks"]),
    ("manager", ["team_ranking", "team_conversion", "pool_flow", "reclaims_transfers",
                 "pipeline", "target_attainment", "customers_by_stage"]),
    ("admin", ["customer_growth", "customers_by_category", "customers_by_grade",
               "customers_by_region", "pool_sizes", "pool_sizes_over_time", "duplicates",
               "imports"]),
    ("auditor", ["customer_growth", "customers_by_category", "customers_by_grade",
                 "customers_by_region", "pool_sizes", "pool_sizes_over_time", "duplicates",
               "imports"]),
    ("marketing", [])])
def test_each_roles_home_page_has_its_dashboard(clients, role, charts):
    import re

    html = getattr(clients, role).get("/").get_data(as_text=True)
    assert re.findall(r'data-stat="(\w+)"', html) == charts
    assert ("vendor/echarts/5.6.0/echarts.min.js" in html) == bool(charts)


def test_the_stats_operations_are_in_the_spec(api, org):
    spec = api("admin")("GET", "/api/v1/_openapi").get_json()
    chart = spec["paths"]["/api/v1/stats/{name}"]["get"]
    assert {p["name"] for p in chart["parameters"]} == {"name", "from", "to", "department"}
    assert chart["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/StatChart"}
    assert set(spec["paths"]["/api/v1/stats/{name}/csv"]["get"]["responses"]["200"]
               ["content"]) == {"text/csv"}
    assert "/api/v1/stats/{name}/xlsx" in spec["paths"] and "/api/v1/stats/" in spec["paths"]
    assert set(spec["components"]["schemas"]["StatFilters"]["properties"]) == {
        "from", "to", "department"}


def _chart_queries(html: str) -> dict[str, str]:
    import html as html_lib
    import re

    return {name: html_lib.unescape(query) for name, query in
            re.findall(r'data-stat="(\w+)" data-kind="\w+"\s+data-query="([^"]*)"', html)}


def test_the_home_pages_filters_reach_the_charts(clients, org):
    html = clients.admin.get(f"/?from=2026-01-01&to=2026-01-31&department={org.north.id}") \
        .get_data(as_text=True)
    queries = _chart_queries(html)
    assert queries["customer_growth"] == \
        f"from=2026-01-01&to=2026-01-31&department={org.north.id}"
    assert queries["customers_by_grade"] == f"department={org.north.id}"  # a snapshot
    assert queries["pool_sizes"] == ""  # the whole organisation's, no filter applies
    assert f'<option value="{org.north.id}" selected>华北大区</option>' in html
    assert 'href="/api/v1/stats/customer_growth/csv?from=2026-01-01&amp;to=2026-01-31' in html


def test_the_home_pages_bad_filters_are_flashed_not_a_500(clients):
    resp = clients.manager.get("/?from=2026-02-30")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "from 须为日期，如 2026-01-31" in html
    assert _chart_queries(html)["team_ranking"] == ""  # the defaults: the last 30 days


def test_the_department_filter_offers_the_scopes_departments(clients, org):
    import re

    def offered(client):
        html = client.get("/").get_data(as_text=True)
        return re.findall(r'<option value="(\d+)"', html)

    assert offered(clients.manager) == [str(org.east.id)]
    assert offered(clients.rep) == []  # a rep's numbers are their own: nothing to pick
    assert str(org.north.id) in offered(clients.auditor)
    # a manager naming another region's department: left out, not its numbers
    html = clients.manager.get(f"/?department={org.north.id}").get_data(as_text=True)
    assert _chart_queries(html)["customers_by_stage"] == ""
