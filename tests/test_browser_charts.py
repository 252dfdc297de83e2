"""Each role's home page draws its dashboard in a real browser with every request outside the
app's own host refused: the charts' script (the vendored ECharts) and their data come from the
app itself, in the reader's data scope (issue 20)."""
from __future__ import annotations

import os

import pytest

from tests.conftest import PASSWORD
from tests.test_browser import CHROMIUM, SHOTS, browser, live_url  # noqa: F401 (fixtures)
from tests.test_stats import campaigns, desk  # noqa: F401 (fixtures)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

DASHBOARDS = {
    "rep1": ["customers_by_stage", "reclaim_days", "followups_week", "claims_today",
             "pipeline", "target_attainment", "my_tasks"],
    "manager1": ["team_ranking", "team_conversion", "pool_flow", "reclaims_transfers",
                 "pipeline", "target_attainment", "customers_by_stage"],
    "admin": ["customer_growth", "customers_by_category", "customers_by_grade",
              "customers_by_region", "pool_sizes", "pool_sizes_over_time", "duplicates",
              "imports"],
    "auditor1": ["customer_growth", "customers_by_category", "customers_by_grade",
                 "customers_by_region", "pool_sizes", "pool_sizes_over_time", "duplicates",
                 "imports"],
}
# The service desk's and marketing's, drawn over the tickets and campaigns of tests/test_stats.py.
DESK_DASHBOARDS = {
    "agent1": ["tickets_per_day", "ticket_backlog", "ticket_sla", "satisfaction_scores",
               "tickets_by_category"],
    "svcmgr1": ["tickets_per_day", "agent_workload", "satisfaction_by_agent", "ticket_sla",
                "ticket_backlog", "satisfaction_scores", "tickets_by_category"],
    "marketing1": ["campaign_effect", "campaign_money", "campaign_totals",
                   "campaign_responses_per_day"],
}


def offline_page(browser, live_url):  # noqa: F811
    """A page whose requests may reach the app only; the others are refused and listed."""
    context = browser.new_context(viewport={"width": 1280, "height": 1600})
    refused = []

    def only_the_app(route):
        if route.request.url.startswith(live_url + "/"):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_app)
    return context, context.new_page(), refused


def sign_in(page, live_url, username):  # noqa: F811
    page.goto(f"{live_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"{live_url}/")


def drawn(page, name: str) -> dict:
    """What ECharts drew in the chart's container: its canvas size and the first series."""
    selector = f"#chart-{name}[data-drawn='1'] canvas"
    page.wait_for_selector(selector, timeout=15000)
    return page.evaluate("""name => {
        const el = document.getElementById('chart-' + name);
        const canvas = el.querySelector('canvas');
        const option = echarts.getInstanceByDom(el).getOption();
        return {width: canvas.width, height: canvas.height,
                series: option.series.map(s => s.data.map(d => d && d.value !== undefined ? d.value : d))};
    }""", name)


@pytest.mark.parametrize("username", list(DASHBOARDS))
def test_each_roles_home_page_draws_its_charts_offline(browser, live_url, org, db,  # noqa: F811
                                                       username):
    from app.services import followups

    followups.log_followup(org.rep, org.c_rep.id, {"channel": "visit", "content": "上门"})
    db.session.commit()
    context, page, refused = offline_page(browser, live_url)
    try:
        sign_in(page, live_url, username)
        names = page.eval_on_selector_all(".guishu-chart", "els => els.map(e => e.dataset.stat)")
        assert names == DASHBOARDS[username]
        charts = {name: drawn(page, name) for name in names}
        for name, chart in charts.items():
            assert chart["width"] > 100 and chart["height"] > 100, name
        if username == "rep1":  # rep1's own customer, followed up: not the others'
            assert charts["customers_by_stage"]["series"] == [[0, 1, 0]]
            assert charts["claims_today"]["series"] == [[0, 20]]
        if username == "manager1":
            assert charts["customers_by_stage"]["series"] == [[1, 1, 0]]
        if username == "admin":
            assert charts["pool_sizes"]["series"] == [[1]]
            # the day's point of the pool's line: its one customer
            assert len(charts["pool_sizes_over_time"]["series"][0]) == 30
            assert charts["pool_sizes_over_time"]["series"][0][-1] == 1
        assert refused == []
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            page.screenshot(path=os.path.join(SHOTS, f"dashboard-{username}.png"),
                            full_page=True)
    finally:
        context.close()


@pytest.mark.parametrize("username", list(DESK_DASHBOARDS))
def test_the_desks_and_marketings_home_pages_draw_their_charts_offline(
        browser, live_url, org, desk, campaigns, username):  # noqa: F811
    context, page, refused = offline_page(browser, live_url)
    try:
        sign_in(page, live_url, username)
        names = page.eval_on_selector_all(".guishu-chart", "els => els.map(e => e.dataset.stat)")
        assert names == DESK_DASHBOARDS[username]
        charts = {name: drawn(page, name) for name in names}
        for name, chart in charts.items():
            assert chart["width"] > 100 and chart["height"] > 100, name
        if username == "agent1":  # its team's tickets only: agent2's score 1 is not there
            assert charts["satisfaction_scores"]["series"] == [[0, 1, 0, 0, 1]]
        if username == "svcmgr1":  # agent1's in-progress P2, the new unassigned P3
            assert charts["agent_workload"]["series"] == [[0, 1], [0, 0], [1, 0], [0, 0]]
        if username == "marketing1":
            assert charts["campaign_totals"]["series"] == [[3, 3, 2, 1, 0, 0, 0]]
        assert refused == []
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            page.screenshot(path=os.path.join(SHOTS, f"dashboard-{username}.png"),
                            full_page=True)
    finally:
        context.close()


def test_a_request_to_the_internet_is_refused_and_seen(browser, live_url, org):  # noqa: F811
    """The block itself works: a script the page would load from elsewhere is refused."""
    context, page, refused = offline_page(browser, live_url)
    try:
        sign_in(page, live_url, "rep1")
        page.evaluate("""() => { const s = document.createElement('script');
            s.src = 'https://cdn.jsdelivr.net/npm/echarts@5.6.0/dist/echarts.min.js';
            document.head.appendChild(s); }""")
        page.wait_for_timeout(500)
        assert refused == ["https://cdn.jsdelivr.net/npm/echarts@5.6.0/dist/echarts.min.js"]
    finally:
        context.close()


def test_english_dashboard_titles(browser, live_url, org):  # noqa: F811
    context, page, refused = offline_page(browser, live_url)
    try:
        sign_in(page, live_url, "rep1")
        page.goto(f"{live_url}/lang/en")
        page.goto(f"{live_url}/")
        drawn(page, "customers_by_stage")
        assert "Customers by stage" in page.inner_text("#panel-customers_by_stage")
        assert refused == []
    finally:
        context.close()
