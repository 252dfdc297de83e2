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
    assert api("agent1")("GET", "/api/v1/stats/customers_by_stage").status_code == 403
    assert api("agent1")("GET", "/api/v1/stats/campaign_effect/csv").status_code == 403
    assert api("marketing1")("GET", "/api/v1/stats/tickets_per_day").status_code == 403
    assert api("rep1")("GET", "/api/v1/stats/tickets_per_day").status_code == 403
    assert api("rep1")("GET", "/api/v1/stats/campaign_effect").status_code == 403
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
    ("marketing", ["campaign_effect", "campaign_money", "campaign_totals",
                   "campaign_responses_per_day"]),
    ("agent", ["tickets_per_day", "ticket_backlog", "ticket_sla", "satisfaction_scores",
               "tickets_by_category"]),
    ("service_manager", ["tickets_per_day", "agent_workload", "satisfaction_by_agent",
                         "ticket_sla", "ticket_backlog", "satisfaction_scores",
                         "tickets_by_category"])])
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


# --- the service desk's charts (app.services.stats_desk) -----------------------------------------
DESK_STATS = {"tickets_per_day", "tickets_by_category", "ticket_sla", "ticket_backlog",
              "satisfaction_scores", "satisfaction_by_agent", "agent_workload"}
CAMPAIGN_STATS = {"campaign_effect", "campaign_money", "campaign_totals",
                  "campaign_responses_per_day"}


@pytest.fixture
def desk(org, db):
    """一线客服 (led by svcmgr1; agent1) and VIP 客服 (agent2, no lead). Relative to now:
    agent1's team has a P1 in time and rated 5 (1 d ago), a P1 that breached both targets and
    was rated 2 (2 d ago), an open P2 (2 d 1 h ago) and a new unassigned P3 (2 h ago); agent2's
    an open P2 (1 d ago), a P4 resolved and rated 1 (4 d ago) and an open P4 raised 40 days
    ago (outside the last 30 days)."""
    from sqlalchemy import select

    from app.models import (ServiceTeam, ServiceTeamMember, SlaPolicy, Ticket, TicketCategory)
    from app.models.customer import utcnow

    fault, complaint = (db.session.execute(select(TicketCategory).where(
        TicketCategory.name == name)).scalar_one() for name in ("故障", "投诉"))
    team_a = ServiceTeam(name="一线客服", lead_id=org.service_manager.id)
    team_b = ServiceTeam(name="VIP 客服")
    db.session.add_all([team_a, team_b])
    db.session.flush()
    db.session.add_all([ServiceTeamMember(team_id=team_a.id, user_id=org.agent.id),
                        ServiceTeamMember(team_id=team_b.id, user_id=org.agent2.id)])
    p1 = SlaPolicy(name="P1 全天", priority="P1", first_response_minutes=60,
                   resolution_minutes=480, clock="24x7")
    db.session.add(p1)
    db.session.flush()
    now = utcnow()
    H, D = dt.timedelta(hours=1), dt.timedelta(days=1)
    made = {}

    def ticket(key, created, team, **kw):
        values = dict(customer_id=org.c_rep.id, channel="phone", priority="P2", subject=key,
                      status="new", created_at=created, updated_at=created, team_id=team.id,
                      category_id=fault.id)
        values.update(kw)
        made[key] = Ticket(**values)
        db.session.add(made[key])

    t1, t2 = now - D, now - 2 * D
    ticket("t1", t1, team_a, priority="P1", status="resolved", agent_id=org.agent.id,
           sla_policy_id=p1.id, first_response_at=t1 + H / 2, first_response_due_at=t1 + H,
           resolved_at=t1 + 5 * H, resolution_due_at=t1 + 8 * H, satisfaction_score=5)
    ticket("t2", t2, team_a, priority="P1", status="closed", agent_id=org.agent.id,
           sla_policy_id=p1.id, first_response_at=t2 + 2 * H, first_response_due_at=t2 + H,
           resolved_at=t2 + 10 * H, resolution_due_at=t2 + 8 * H,
           response_breached_at=t2 + H, resolution_breached_at=t2 + 8 * H,
           satisfaction_score=2, closed_at=t2 + 11 * H)
    ticket("t3", t2 - H, team_a, status="in_progress", agent_id=org.agent.id,
           category_id=complaint.id)
    ticket("t4", now - 2 * H, team_a, priority="P3")
    ticket("t5", now - D, team_b, status="in_progress", agent_id=org.agent2.id,
           customer_id=org.c_north.id)
    ticket("t6", now - 4 * D, team_b, priority="P4", status="resolved", agent_id=org.agent2.id,
           resolved_at=now - 3 * D, satisfaction_score=1, customer_id=org.c_north.id)
    ticket("t7", now - 40 * D, team_b, priority="P4", status="assigned", agent_id=org.agent2.id,
           customer_id=org.c_north.id)
    db.session.commit()
    return made


def _per_day(times) -> dict[str, int]:
    from app.services.times import local_date

    out: dict[str, int] = {}
    for at in times:
        day = local_date(at).isoformat()
        out[day] = out.get(day, 0) + 1
    return out


@pytest.mark.parametrize("role,raised,resolved", [
    ("agent", ("t1", "t2", "t3", "t4"), ("t1", "t2")),  # its team's: never agent2's
    ("agent2", ("t5", "t6"), ("t6",)),
    ("service_manager", ("t1", "t2", "t3", "t4"), ("t1", "t2")),  # the team it leads
    ("admin", ("t1", "t2", "t3", "t4", "t5", "t6"), ("t1", "t2", "t6"))])
def test_tickets_per_day_in_each_desk_scope(org, desk, role, raised, resolved):
    cats, found = numbers(getattr(org, role), "tickets_per_day")
    assert len(cats) == 30 and list(found) == ["创建", "已解决"]
    got = {name: {d: n for d, n in zip(cats, values) if n} for name, values in found.items()}
    assert got == {"创建": _per_day(desk[k].created_at for k in raised),
                   "已解决": _per_day(desk[k].resolved_at for k in resolved)}


def test_the_desk_charts_numbers_per_role(org, desk):
    # SLA: agent1's two P1 (one in time, one breached both targets), no SLA on the others.
    cats, found = numbers(org.agent, "ticket_sla")
    assert cats == ["P1", "P2", "P3", "全部"]
    assert found == {"有 SLA": [2, 0, 0, 2], "已超时": [1, 0, 0, 1],
                     "按时响应 %": [50.0, None, None, 50.0],
                     "按时解决 %": [50.0, None, None, 50.0],
                     "超时率 %": [50.0, None, None, 50.0]}
    # agent2's side: one P2 and one P4 raised in the period, no SLA
    assert numbers(org.agent2, "ticket_sla")[0] == ["P2", "P4", "全部"]
    # backlog now: agent1's team has the P3 raised 2 h ago and the P2 of 2 days
    cats, found = numbers(org.agent, "ticket_backlog")
    assert cats == ["0–1 天", "1–3 天", "3–7 天", "7 天以上"]
    assert found == {"P1": [0, 0, 0, 0], "P2": [0, 1, 0, 0], "P3": [1, 0, 0, 0],
                     "P4": [0, 0, 0, 0]}
    assert numbers(org.admin, "ticket_backlog")[1]["P4"] == [0, 0, 0, 1]  # t7, 40 days old
    # satisfaction: scores 1..5
    assert values(org.agent, "satisfaction_scores") == {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1}
    assert values(org.agent2, "satisfaction_scores") == {"1": 1, "2": 0, "3": 0, "4": 0, "5": 0}
    assert values(org.admin, "satisfaction_scores") == {"1": 1, "2": 1, "3": 0, "4": 0, "5": 1}
    cats, found = numbers(org.service_manager, "satisfaction_by_agent")
    assert cats == [org.agent.display_name]
    assert found == {"已评分": [2], "低分数": [1], "平均分": [3.5]}
    assert values(org.agent, "tickets_by_category") == {"故障": 3, "投诉": 1}


def test_agent_workload_is_the_managers_team_now(org, desk):
    cats, found = numbers(org.service_manager, "agent_workload")
    assert cats == [org.agent.display_name, "（无）"]  # unassigned last
    assert found == {"新建": [0, 1], "已分派": [0, 0], "处理中": [1, 0], "待客户确认": [0, 0]}
    cats, found = numbers(org.admin, "agent_workload")
    assert cats == [org.agent2.display_name, org.agent.display_name, "（无）"]
    assert found["已分派"] == [1, 0, 0] and found["处理中"] == [1, 1, 0]


def test_a_desk_chart_agrees_with_the_service_analysis_page(org, desk):
    from app.services import service_analysis

    report = service_analysis.report(org.service_manager)
    cats, found = numbers(org.service_manager, "ticket_sla")
    assert cats == [r["priority"] for r in report.tables["sla"]]
    assert found["已超时"] == [r["breached"] for r in report.tables["sla"]]
    assert values(org.service_manager, "tickets_by_category") == {
        r["category"]: r["tickets"] for r in report.tables["by_category"]}


@pytest.mark.parametrize("role", ["rep", "marketing"])
def test_the_desk_charts_are_refused_to_who_does_not_read_the_analysis(org, role):
    with pytest.raises(PermissionDenied) as caught:
        numbers(getattr(org, role), "tickets_per_day")
    assert caught.value.message == "您的角色不能查看此图表"


# --- marketing's charts (app.services.stats_campaigns) -------------------------------------------
@pytest.fixture
def campaigns(org, db):
    """春季展会 (10 days ago, cost 1,000): c_rep and c_rep2, both delivered; c_rep clicked
    (2 days ago) and responded (yesterday), then won 3,000 today. 夏季邮件 (5 days ago, cost
    500): c_north, one delivered and one failed message, clicked today."""
    from app.models import CampaignMember, CampaignMessage, CampaignTouch
    from app.models.customer import utcnow
    from app.models.marketing import Campaign
    from app.services import deals
    from app.services.times import local_today

    today, now, D = local_today(), utcnow(), dt.timedelta(days=1)
    spring = Campaign(name="春季展会", kind="exhibition", status="finished",
                      starts_on=today - 10 * D, actual_cost=Decimal("1000"))
    summer = Campaign(name="夏季邮件", kind="email", status="running",
                      starts_on=today - 5 * D, actual_cost=Decimal("500"))
    db.session.add_all([spring, summer])
    db.session.flush()
    members = {}
    for campaign, customer in ((spring, org.c_rep), (spring, org.c_rep2), (summer, org.c_north)):
        members[customer.id] = CampaignMember(campaign_id=campaign.id, customer_id=customer.id)
        db.session.add(members[customer.id])
    db.session.flush()
    for customer, channel, status in ((org.c_rep, "email", "sent"), (org.c_rep2, "email", "sent"),
                                      (org.c_north, "email", "sent"),
                                      (org.c_north, "sms", "failed")):
        m = members[customer.id]
        db.session.add(CampaignMessage(campaign_id=m.campaign_id, member_id=m.id, channel=channel,
                                       address="x@test.local", status=status))
    touches = [(spring, org.c_rep, "click", now - 2 * D), (spring, org.c_rep, "response", now - D),
               (summer, org.c_north, "click", now)]
    for campaign, customer, kind, at in touches:
        db.session.add(CampaignTouch(campaign_id=campaign.id, member_id=members[customer.id].id,
                                     customer_id=customer.id, kind=kind, occurred_at=at))
    db.session.commit()
    deals.record_deal(org.rep, org.c_rep.id, {"amount": "3000"})
    db.session.commit()
    return touches


def test_campaign_effect_as_charts(org, campaigns):
    cats, found = numbers(org.marketing, "campaign_effect")
    assert cats == ["夏季邮件", "春季展会"]  # the effect table's order: newest first
    assert found == {"活动成员": [1, 2], "已送达": [1, 2], "点击": [1, 1], "已响应": [0, 1],
                     "线索": [0, 0], "转化客户": [0, 0], "商机": [0, 0]}
    cats, found = numbers(org.marketing, "campaign_money")
    assert found == {"实际费用": [Decimal("500.00"), Decimal("1000.00")],
                     "成交金额（首次接触）": [Decimal("0.00"), Decimal("3000.00")],
                     "成交金额（末次接触）": [Decimal("0.00"), Decimal("3000.00")],
                     "单条线索成本": [None, None]}  # no lead yet
    assert values(org.marketing, "campaign_totals") == {
        "活动成员": 3, "已送达": 3, "点击": 2, "已响应": 1, "线索": 0, "转化客户": 0, "商机": 0}
    cats, found = numbers(org.marketing, "campaign_responses_per_day")
    got = {name: {d: n for d, n in zip(cats, v) if n} for name, v in found.items()}
    assert got == {"点击": _per_day([campaigns[0][3], campaigns[2][3]]),
                   "已报名": {}, "标记为已响应": _per_day([campaigns[1][3]])}


def test_campaign_charts_agree_with_the_effect_table_for_a_sales_manager(org, campaigns):
    from app.services import campaign_responses

    table = campaign_responses.effect(None, org.manager)
    cats, found = numbers(org.manager, "campaign_effect")
    assert cats == [e.name for e in table]
    assert found["点击"] == [e.clicked for e in table]


@pytest.mark.parametrize("role", ["rep", "staff", "agent", "service_manager"])
def test_campaign_charts_are_refused_to_who_does_not_read_the_effect_table(org, role):
    with pytest.raises(PermissionDenied):
        numbers(getattr(org, role), "campaign_effect")


# --- who reads which charts, and whose dashboard ----------------------------------------------------
def test_each_role_reads_its_own_charts_only(org):
    from app.services import stats

    def names(user):
        return {s.name for s in stats.readable(user)}

    sales = {n for n, s in stats.STATS.items() if s.readers is stats.reads_sales}
    whole = {n for n, s in stats.STATS.items() if s.whole_org}
    assert names(org.marketing) == CAMPAIGN_STATS  # scope ALL, but no customer chart
    assert names(org.agent) == names(org.service_manager) == DESK_STATS
    assert names(org.rep) == sales - whole
    assert names(org.staff) == sales | DESK_STATS
    assert names(org.manager) == (sales - whole) | DESK_STATS | CAMPAIGN_STATS
    assert names(org.admin) == names(org.auditor) == set(stats.STATS)
    for name in ("customers_by_stage", "pool_sizes", "team_ranking"):
        with pytest.raises(PermissionDenied):
            numbers(org.marketing, name)
        with pytest.raises(PermissionDenied):
            numbers(org.agent, name)


def test_api_lists_the_desks_and_marketings_charts(api, org):
    for username, expected in (("agent1", DESK_STATS), ("svcmgr1", DESK_STATS),
                               ("marketing1", CAMPAIGN_STATS)):
        resp = api(username)("GET", "/api/v1/stats/")
        assert resp.status_code == 200
        assert {s["name"] for s in resp.get_json()["result"]} == expected
    body = api("agent1")("GET", "/api/v1/stats/tickets_per_day?department=1").get_json()
    assert body["filters"]["department"] is None  # tickets belong to teams


def test_desk_and_campaign_charts_download(api, org, desk, campaigns):
    text = api("svcmgr1")("GET", "/api/v1/stats/agent_workload/csv").get_data(as_text=True)
    assert text.splitlines()[0] == "\ufeff客服,新建,已分派,处理中,待客户确认"
    text = api("marketing1")("GET", "/api/v1/stats/campaign_totals/csv").get_data(as_text=True)
    assert text.splitlines()[1:3] == ["活动成员,3", "已送达,3"]


@pytest.mark.parametrize("roles,dashboard", [
    (("Sales Rep", "Service Manager"), "SERVICE_MANAGER_DASHBOARD"),
    (("Sales Manager", "Service Manager"), "MANAGER_DASHBOARD"),
    (("Sales Rep", "Marketing"), "REP_DASHBOARD"),
    (("Service Agent", "Marketing"), "MARKETING_DASHBOARD"),
    (("Service Agent",), "SERVICE_DASHBOARD"),
    (("Service Manager", "Service Agent"), "SERVICE_MANAGER_DASHBOARD"),
    (("Admin", "Marketing"), "ORG_DASHBOARD"), (("Back-office Staff", "Service Agent"),
                                                "ORG_DASHBOARD")])
def test_a_user_with_several_roles_gets_the_first_dashboard_that_applies(org, db, roles,
                                                                         dashboard):
    from app.extensions import appbuilder
    from app.services import stats
    from tests.conftest import make_user

    user = make_user("multi1", roles[0])
    user.roles = [appbuilder.sm.find_role(r) for r in roles]
    db.session.commit()
    assert stats.dashboard_for(user) == getattr(stats, dashboard)


def test_marketings_home_page_draws_the_last_90_days_and_offers_no_department(clients):
    from app.services.times import local_today

    html = clients.marketing.get("/").get_data(as_text=True)
    since = (local_today() - dt.timedelta(days=89)).isoformat()
    assert _chart_queries(html) == {"campaign_effect": "", "campaign_money": "",
                                    "campaign_totals": "",
                                    "campaign_responses_per_day": f"from={since}"}
    assert 'name="department"' not in html  # no chart of theirs has a department axis
