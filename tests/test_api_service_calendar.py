"""/api/v1/sla-policies/ and /api/v1/work-calendar/: the same rules as the pages (the service
functions), by role, with the exact refusals."""
from __future__ import annotations

import pytest

from app.services import work_calendar


@pytest.fixture
def calls(api, org):
    return {r: api(getattr(org, r).username) for r in ("admin", "service_manager", "agent",
                                                          "rep", "manager")}


def test_sla_policy_crud_by_role(calls):
    body = {"name": "接口策略", "priority": "P1", "first_response_minutes": 30,
            "resolution_minutes": 240, "clock": "24x7"}
    for role in ("agent", "rep", "manager"):
        assert calls[role]("POST", "/api/v1/sla-policies/", json=body).status_code == 403
    made = calls["service_manager"]("POST", "/api/v1/sla-policies/", json=body)
    assert made.status_code == 201, made.get_data(as_text=True)
    pk = made.get_json()["id"]
    assert made.get_json()["result"]["warn_before_minutes"] == 60
    assert calls["agent"]("GET", f"/api/v1/sla-policies/{pk}").get_json()["result"]["clock"] \
        == "24x7"
    assert calls["rep"]("GET", "/api/v1/sla-policies/").status_code == 403
    bad = calls["admin"]("PUT", f"/api/v1/sla-policies/{pk}", json={"resolution_minutes": 10})
    assert bad.status_code == 400
    assert bad.get_json()["fields"] == {
        "resolution_minutes": "解决时限（10 分钟）短于首次响应时限（30 分钟）"}
    bad = calls["admin"]("POST", "/api/v1/sla-policies/", json=dict(body, grade="Z"))
    assert bad.get_json()["fields"] == {"grade": "请填写 A, B, C 之一，留空表示不限"}
    assert calls["admin"]("GET", "/api/v1/sla-policies/99999").status_code == 404
    assert calls["admin"]("GET", f"/api/v1/sla-policies/{2 ** 40}").status_code in (400, 404)
    second = calls["admin"]("POST", "/api/v1/sla-policies/", json=dict(body, name="第二"))
    page = calls["agent"]("GET", "/api/v1/sla-policies/?q=(page_size:1)").get_json()
    assert [p["id"] for p in page["result"]] == [pk] and page["next_after"] == pk
    page = calls["agent"]("GET", f"/api/v1/sla-policies/?q=(after:{pk},page_size:1)").get_json()
    assert [p["id"] for p in page["result"]] == [second.get_json()["id"]]
    assert page["next_after"] is None
    assert calls["agent"]("DELETE", f"/api/v1/sla-policies/{pk}").status_code == 403
    assert calls["service_manager"]("DELETE", f"/api/v1/sla-policies/{pk}").status_code == 200


def test_work_calendar_by_year_range_and_day(calls, db):
    work_calendar.seed_year(2026)
    got = calls["service_manager"]("GET", "/api/v1/work-calendar/?q=(year:2026)").get_json()
    days = {d["day"]: d for d in got["result"]}
    assert days["2026-02-14"]["is_workday"] is True and days["2026-02-17"]["name"] == "春节"
    got = calls["admin"](
        "GET", "/api/v1/work-calendar/?q=(start:'2026-02-14',end:'2026-02-20')").get_json()
    assert [d["day"] for d in got["result"]] == [
        "2026-02-14", "2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20"]
    bad = calls["admin"]("GET", "/api/v1/work-calendar/?q=(start:'2026-02-14',end:'2020-01-01')")
    assert bad.status_code == 400 and bad.get_json()["fields"] == {"end": "结束日期早于开始日期"}
    put = calls["service_manager"]("PUT", "/api/v1/work-calendar/2027-02-20",
                                   json={"is_workday": True, "name": "调休上班"})
    assert put.status_code == 200 and put.get_json()["result"]["source"] == "manual"
    assert work_calendar.is_workday(__import__("datetime").date(2027, 2, 20))
    bad = calls["admin"]("PUT", "/api/v1/work-calendar/2027-02-30", json={"is_workday": True})
    assert bad.status_code == 400 and list(bad.get_json()["fields"]) == ["day"]
    assert calls["agent"]("PUT", "/api/v1/work-calendar/2027-02-21",
                          json={"is_workday": True}).status_code == 403
    assert calls["admin"]("DELETE", "/api/v1/work-calendar/2027-02-20").status_code == 200
    assert calls["admin"]("DELETE", "/api/v1/work-calendar/2027-02-20").status_code == 404
    periods = calls["service_manager"]("GET", "/api/v1/work-calendar/working-periods").get_json()
    assert periods == {"work_periods": "09:00-18:00",
                       "periods": [{"start": "09:00", "end": "18:00"}]}
    assert calls["rep"]("GET", "/api/v1/work-calendar/working-periods").status_code == 403
