"""The 业绩目标 pages: the rep's workbench panel (month / quarter), the manager's team view
with per-rep rows, the department total and its warning, the attainment page, and the forms
saving through app.services.targets with the refusal next to its field."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from app.models import Deal, SalesTarget
from app.services import targets


def text(resp) -> str:
    assert resp.status_code == 200, resp.status_code
    return re.sub(r"\s+", " ", resp.get_data(as_text=True))


@pytest.fixture
def this_period(db, org):
    """Targets for this month and quarter, and a deal of rep1 today."""
    month = targets.period_containing("month")
    quarter = targets.period_containing("quarter")
    db.session.add(Deal(customer_id=org.c_rep.id, user_id=org.rep.id, amount=Decimal("4000"),
                        won_on=targets.local_today()))
    db.session.commit()
    for kind, start, amount in (("month", month, "10000"), ("quarter", quarter, "40000")):
        targets.create_target(org.admin, {"user_id": org.rep.id, "period_kind": kind,
                                          "period_start": start, "won_amount": amount,
                                          "new_customers": 4})
    targets.create_target(org.admin, {"department_id": org.east.id, "period_kind": "month",
                                      "period_start": month, "won_amount": "15000"})
    return month, quarter


def test_the_reps_workbench_shows_his_target_by_month_and_quarter(clients, this_period):
    month, quarter = this_period
    html = text(clients.rep.get("/workbench/"))
    panel = html[html.index('id="my-target"'):]
    assert f"我的业绩目标 · {targets.period_label('month', month)}" in panel
    assert 'class="actual-won">4,000.00' in panel and "/ 10,000.00" in panel
    assert 'class="rate-won">40.0%' in panel
    assert 'class="actual-new">1' in panel and 'class="rate-new">25.0%' in panel
    html = text(clients.rep.get("/workbench/?target_period=quarter"))
    panel = html[html.index('id="my-target"'):]
    assert f"我的业绩目标 · {targets.period_label('quarter', quarter)}" in panel
    assert 'class="rate-won">10.0%' in panel
    # A bad period is no page, not a 500.
    assert clients.rep.get("/workbench/?target_period=week").status_code == 404


def test_an_admin_holds_no_target_and_sees_no_target_panel(clients):
    assert 'id="my-target"' not in text(clients.admin.get("/workbench/"))


def test_the_managers_team_view_has_rows_total_and_the_warning(clients, this_period):
    html = text(clients.manager.get("/workbench/team"))
    part = html[html.index('id="team-attainment"'):]
    assert 'data-user="rep1"' in part and 'data-user="rep2"' in part
    assert 'data-user="rep3"' not in part  # 华北: another manager's
    east = part[part.index('class="department warning"'):]
    assert "华东大区" in east and 'class="target-won">15,000.00' in east
    assert 'class="actual-won">4,000.00' in east
    assert "成交金额：部门目标为 15000.00，其成员与下级部门目标之和为 10000.00" in east
    quarter = text(clients.manager.get("/workbench/team?period=quarter"))
    assert "部门目标为 15000.00" not in quarter  # the department has no quarter target


def test_the_attainment_page_for_each_reader(clients, this_period):
    assert 'data-user="rep2"' not in text(clients.rep.get("/targets/attainment"))
    assert 'data-user="rep1"' in text(clients.rep.get("/targets/attainment"))
    auditor = text(clients.auditor.get("/targets/attainment"))
    assert 'data-user="rep3"' in auditor and "华北大区" in auditor
    assert clients.auditor.get("/targets/attainment?period=month&start=2026-10-05") \
        .status_code == 404


def test_the_add_form_saves_through_the_service_and_shows_refusals(clients, org, db):
    client = clients.manager
    # The user picker does not offer the manager himself; a forged choice saves nothing.
    page = text(client.get("/targets/add"))
    assert f'value="{org.rep.id}"' in page and f'value="{org.manager.id}"' not in page
    resp = client.post("/targets/add", data={
        "user": str(org.manager.id), "period_kind": "month", "period_start": "2026-10",
        "won_amount": "100", "csrf_token": client.csrf})
    assert resp.status_code == 200 and db.session.execute(select(SalesTarget)).first() is None
    resp = client.post("/targets/add", data={
        "user": str(org.rep.id), "period_kind": "quarter", "period_start": "2026-11",
        "won_amount": "100", "csrf_token": client.csrf})
    assert "季度从 1 月 1 日、4 月 1 日、7 月 1 日或 10 月 1 日开始，不能是 2026-11-01" in text(resp)
    resp = client.post("/targets/add", data={
        "user": str(org.rep.id), "period_kind": "quarter", "period_start": "2026-Q4",
        "won_amount": "30,000", "new_customers": "6", "csrf_token": client.csrf})
    assert resp.status_code == 302
    row = db.session.execute(select(SalesTarget)).scalar_one()
    assert (row.user_id, row.period_kind, row.period_start, row.won_amount,
            row.new_customers, row.set_by_id) == (org.rep.id, "quarter", dt.date(2026, 10, 1),
                                                  Decimal("30000.00"), 6, org.manager.id)
    edit = text(client.get(f"/targets/edit/{row.id}"))
    assert 'value="30000.00"' in edit
    resp = client.post(f"/targets/edit/{row.id}", data={
        "won_amount": "", "new_customers": "", "csrf_token": client.csrf})
    assert "请设置目标成交金额、目标新增客户数，或两者都设置" in text(resp)
    listed = text(client.get("/targets/list/"))
    assert "2026 Q4" in listed and "30,000.00" in listed
