"""Service analysis (issue 17 §6): fixed tickets, exact tables, the scope, the period."""
from __future__ import annotations

import datetime as dt

import pytest

from app.models import (ServiceTeam, ServiceTeamMember, SlaPolicy, Ticket, TicketCategory)
from app.services import service_analysis
from app.services.errors import PermissionDenied, ValidationFailed

NOW = dt.datetime(2026, 11, 20, 6, 0)  # 14:00 in Shanghai, a Friday
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)
D = dt.timedelta(days=1)


@pytest.fixture
def desk(db, org):
    from sqlalchemy import select

    fault, complaint = (db.session.execute(select(TicketCategory).where(
        TicketCategory.name == name)).scalar_one() for name in ("故障", "投诉"))  # bootstrap's
    team = ServiceTeam(name="一线客服", lead_id=org.service_manager.id)
    db.session.add(team)
    db.session.flush()
    db.session.add(ServiceTeamMember(team_id=team.id, user_id=org.agent.id))
    p1 = SlaPolicy(name="P1 全天", priority="P1", first_response_minutes=60,
                   resolution_minutes=480, clock="24x7")
    db.session.add(p1)
    db.session.flush()

    def ticket(created, **kw):
        values = dict(customer_id=org.c_rep.id, channel="phone", priority="P2",
                      subject="问题", status="new", created_at=created, updated_at=created,
                      team_id=team.id)
        values.update(kw)
        row = Ticket(**values)
        db.session.add(row)
        return row

    t1 = NOW - D
    ticket(t1, category_id=fault.id, priority="P1", subject="打印机无法连接", status="resolved",
           agent_id=org.agent.id, sla_policy_id=p1.id, first_response_at=t1 + 30 * M,
           first_response_due_at=t1 + H, resolved_at=t1 + 5 * H, resolution_due_at=t1 + 8 * H,
           satisfaction_score=5, rated_at=t1 + 6 * H)
    t2 = NOW - 2 * D
    ticket(t2, category_id=fault.id, priority="P1", channel="email", subject="打印机无法连接!!",
           status="closed", agent_id=org.agent.id, sla_policy_id=p1.id,
           first_response_at=t2 + 90 * M, first_response_due_at=t2 + H,
           resolved_at=t2 + 10 * H, resolution_due_at=t2 + 8 * H,
           response_breached_at=t2 + H, resolution_breached_at=t2 + 8 * H,
           satisfaction_score=2, rated_at=t2 + 11 * H)
    t3 = NOW - 5 * D
    ticket(t3, category_id=complaint.id, subject="服务态度差", status="in_progress",
           agent_id=org.agent.id, first_response_at=t3 + 20 * M)
    ticket(NOW - 10 * D, category_id=fault.id, channel="online", subject="打印机 无法连接 3")
    ticket(NOW - 40 * D, category_id=fault.id, priority="P4", status="assigned",
           subject="很久以前的问题")
    ticket(NOW - 12 * H, customer_id=org.c_north.id, channel="wechat", priority="P3",
           subject="发票开错了", team_id=None)
    db.session.commit()
    return team


def rows(report, table, *keys):
    return [tuple(r[k] for k in keys) for r in report.tables[table]]


def test_every_table_exact(db, org, desk):
    report = service_analysis.report(org.admin, now=NOW)
    assert (report.period.start, report.period.end, report.total) == (
        dt.date(2026, 10, 22), dt.date(2026, 11, 20), 5)
    assert rows(report, "by_category", "category", "tickets") == [
        ("故障", 3), ("投诉", 1), ("（无）", 1)]
    assert rows(report, "by_channel", "channel", "tickets") == [
        ("电话", 2), ("在线", 1), ("微信", 1), ("邮件", 1)]
    assert rows(report, "by_day", "day", "tickets") == [
        ("2026-11-10", 1), ("2026-11-15", 1), ("2026-11-18", 1), ("2026-11-19", 1),
        ("2026-11-20", 1)]
    sla = {r["priority"]: r for r in report.tables["sla"]}
    assert list(sla) == ["P1", "P2", "P3", "全部"]
    assert sla["P1"] == {
        "priority": "P1", "tickets": 2, "with_sla": 2, "breached": 1, "breach_rate": 50.0,
        "responded": 2, "response_met": 50.0, "response_p50": 30, "response_p90": 90,
        "resolved": 2, "resolution_met": 50.0, "resolution_p50": 300, "resolution_p90": 600}
    assert sla["P2"] == {
        "priority": "P2", "tickets": 2, "with_sla": 0, "breached": 0, "breach_rate": None,
        "responded": 1, "response_met": None, "response_p50": 20, "response_p90": 20,
        "resolved": 0, "resolution_met": None, "resolution_p50": None, "resolution_p90": None}
    assert (sla["全部"]["tickets"], sla["全部"]["breach_rate"], sla["全部"]["response_p50"],
            sla["全部"]["response_p90"], sla["全部"]["resolution_p90"]) == (5, 50.0, 30, 90, 600)
    assert rows(report, "satisfaction_category", "name", "rated", "average", "low") == [
        ("故障", 2, 3.5, 1)]
    assert rows(report, "satisfaction_agent", "name", "rated", "average", "low") == [
        (org.agent.display_name, 2, 3.5, 1)]
    assert rows(report, "satisfaction_team", "name", "rated", "average", "low") == [
        ("一线客服", 2, 3.5, 1)]
    assert rows(report, "backlog", "age", "P1", "P2", "P3", "P4", "total") == [
        ("0-1d", 0, 0, 1, 0, 1), ("1-3d", 0, 0, 0, 0, 0), ("3-7d", 0, 1, 0, 0, 1),
        (">7d", 0, 1, 0, 1, 2)]
    assert rows(report, "recurring_categories", "category", "tickets",
                "repeat_customers") == [("故障", 3, 1), ("投诉", 1, 0), ("（无）", 1, 0)]
    assert rows(report, "recurring_subjects", "category", "subject", "tickets") == [
        ("故障", "打印机无法连接", 3)]
    csv = service_analysis.csv_text(report, "backlog").splitlines()
    assert csv == ["账龄,P1,P2,P3,P4,合计", "0–1 天,0,0,1,0,1", "1–3 天,0,0,0,0,0",
                   "3–7 天,0,1,0,0,1", "7 天以上,0,1,0,1,2"]


def test_scope_and_who_may_read(db, org, desk):
    # manager1 reads the tickets of 华东's customers: not c_north's (华北).
    report = service_analysis.report(org.manager, now=NOW)
    assert report.total == 4
    assert sum(r["total"] for r in report.tables["backlog"]) == 3
    # An agent of the team reads its team's tickets.
    assert service_analysis.report(org.agent, now=NOW).total == 4
    for user in (org.rep, org.marketing):
        with pytest.raises(PermissionDenied):
            service_analysis.report(user, now=NOW)


def test_the_period(db, org, desk):
    report = service_analysis.report(org.admin, "2026-11-18", "2026-11-19", now=NOW)
    assert report.total == 2 and [r["day"] for r in report.tables["by_day"]] == [
        "2026-11-18", "2026-11-19"]
    for args, field, message in (
            (("2026-11-20", "2026-11-19"), "start", "统计区间的开始不能晚于结束"),
            (("2025-01-01", "2026-11-19"), "start", "统计区间最多 366 天，本区间 688 天"),
            (("11/19/2026", None), "start", "请按 YYYY-MM-DD 填写日期"),
            ((None, "x" * 5000), "end", "请按 YYYY-MM-DD 填写日期")):
        with pytest.raises(ValidationFailed) as exc:
            service_analysis.report(org.admin, *args, now=NOW)
        assert exc.value.fields == {field: message}
    with pytest.raises(ValidationFailed) as exc:
        service_analysis.csv_text(report, "nope")
    assert list(exc.value.fields) == ["table"]


def test_subject_grouping_normalises_and_bounds():
    assert service_analysis.normalise("  打印机：无法连接（第2次）!! ") == "打印机 无法连接 第 次"
    assert service_analysis.normalise("ＰＲＩＮＴＥＲ Offline #3") == "printer offline"
    groups = service_analysis.group_subjects(
        ["Printer offline", "printer offline!!", "PRINTER OFFLINE 2", "发票开错了", "发票开错",
         "退货流程", "123 !!!"])
    assert groups == [("Printer offline", 3), ("发票开错了", 2), ("退货流程", 1)]


def test_the_page_and_its_csv(app, db, org, desk):
    from tests.conftest import login

    client = login(app.test_client(), org.service_manager.username)
    html = client.get("/service-analysis/?start=2026-11-01&end=2026-11-20").get_data(as_text=True)
    assert "服务分析" in html and 'id="sa-backlog"' in html and "按分类的工单量" in html
    resp = client.get("/service-analysis/by_category.csv?start=2026-11-01&end=2026-11-20")
    assert resp.headers["Content-Disposition"] == \
        'attachment; filename="service-by_category-2026-11-01-2026-11-20.csv"'
    assert resp.get_data(as_text=True).splitlines()[0] == "\ufeff分类,工单数"
    bad = client.get("/service-analysis/?start=2026-11-21&end=2026-11-20")
    assert "统计区间的开始不能晚于结束" in bad.get_data(as_text=True)
