"""In a real browser (Playwright driving Debian's Chromium): sign in per role, see its menus
and only its own scope, switch to English, and save a screenshot per role for review."""
from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from tests.conftest import PASSWORD

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
SHOTS = os.environ.get("GUISHU_SCREENSHOTS", "")


@pytest.fixture
def live_url(app, org):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    # Werkzeug's request threads are daemons that nobody joins: a page's late requests
    # (the home page's charts, the screen-pop stream) would still be reading the database
    # while the test's data is wiped. Non-daemon threads are joined by server_close().
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join()
    server.server_close()


@pytest.fixture
def browser(live_url):
    """Closed before the server stops (it depends on live_url), so that no request is left
    half-way and no kept-alive connection holds a server thread."""
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


def sign_in(browser, live_url, username):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{live_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(f"{live_url}/")
    return page


def _menu_hrefs(page) -> set[str]:
    return set(page.eval_on_selector_all(".navbar a[href]", "els => els.map(e => e.getAttribute('href'))"))


@pytest.mark.parametrize("role,username,sees,hidden,menus,no_menus", [
    ("rep", "rep1", ["c_rep"], ["c_rep2", "c_north", "c_pool"],
     {"/customers/list/"}, {"/departments/list/", "/audit/list/", "/policies/list/"}),
    ("manager", "manager1", ["c_rep", "c_rep2"], ["c_north", "c_pool"],
     {"/customers/list/", "/departments/list/", "/policies/list/"}, {"/audit/list/"}),
    ("staff", "staff1", ["c_rep", "c_rep2", "c_north", "c_pool"], [],
     {"/customers/list/", "/departments/list/"}, {"/audit/list/", "/policies/list/"}),
    ("auditor", "auditor1", ["c_rep", "c_north", "c_pool"], [],
     {"/customers/list/", "/audit/list/"}, set()),
    ("admin", "admin", ["c_rep", "c_north", "c_pool"], [],
     {"/customers/list/", "/departments/list/", "/audit/list/", "/users/list/"}, set()),
])
def test_each_role_sees_its_menus_and_scope(browser, live_url, org, role, username, sees, hidden,
                                            menus, no_menus):
    page = sign_in(browser, live_url, username)
    hrefs = _menu_hrefs(page)
    assert menus <= hrefs, hrefs
    assert not (no_menus & hrefs), hrefs
    page.goto(f"{live_url}/customers/list/")
    body = page.inner_text("body")
    for key in sees:
        assert getattr(org, key).name in body
    for key in hidden:
        assert getattr(org, key).name not in body
    assert "负责人 / 公海" in body  # Chinese by default
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, f"customers-{role}.png"), full_page=True)


def test_rep_adds_customer_in_the_form_and_sees_field_errors(browser, live_url, org, db):
    page = sign_in(browser, live_url, "rep1")
    page.goto(f"{live_url}/customers/add")
    page.fill("input[name=name]", "温州瓯江电器有限公司")
    page.fill("input[name=mobile]", "12345")
    with page.expect_navigation():  # the form posts and the page is rendered again
        page.click("button[type=submit], input[type=submit]")
    assert "无效的电话号码：12345" in page.inner_text("body")
    page.fill("input[name=mobile]", "138 0013 8111")
    with page.expect_navigation(url=lambda url: "/customers/add" not in url):
        page.click("button[type=submit], input[type=submit]")
    assert "温州瓯江电器有限公司（测试rep1）" in page.inner_text("body")  # the success message
    from app.models import Customer

    db.session.expire_all()
    row = db.session.query(Customer).filter_by(name="温州瓯江电器有限公司").one()
    assert row.mobile_e164 == "+8613800138111"
    assert row.ownership.owner_id == org.rep.id


def test_english_is_one_click_away(browser, live_url, org):
    page = sign_in(browser, live_url, "rep1")
    page.goto(f"{live_url}/lang/en")
    page.goto(f"{live_url}/customers/list/")
    assert "Owner / pool" in page.inner_text("body")


def test_a_list_that_left_its_total_out_fills_it_in_once_shown(browser, live_url, org, db, app,
                                                               monkeypatch):
    """PostgreSQL expected a large total (stood in for here, on both databases): the page
    shows its rows with "…" and the browser fetches the total from the list's /count/."""
    from app import paging

    monkeypatch.setitem(app.config, "LIST_COUNT_DEFER_AT", 1)
    monkeypatch.setattr(paging, "estimated_rows", lambda session, stmt: 5)
    page = sign_in(browser, live_url, "rep1")
    page.goto(f"{live_url}/customers/list/")
    count = page.locator(".record-count")
    assert count.get_attribute("data-count-url").startswith("/customers/count/")
    page.wait_for_selector(".record-count.record-count-loaded")
    assert count.inner_text() == "1"  # rep1 holds c_rep
    assert count.get_attribute("aria-busy") is None


def pick_user(page, name, typed, expect=None):
    """In the user picker `name` (Select2): open it, type as a keyboard user does (into
    whatever has the focus: the search box must), wait for the first match, press Enter
    (a multiple picker stays open for the next pick: Escape closes it)."""
    page.click(f"select[name={name}] + .select2")
    field = page.locator(".select2-container--open .select2-search__field")
    page.keyboard.type(typed)
    assert field.input_value() == typed  # the typing reached the search box
    first = page.locator(".select2-results__option--highlighted")
    first.wait_for()
    if expect is not None:
        assert first.inner_text() == expect
    field.press("Enter")
    if page.locator(".select2-container--open").count():
        page.keyboard.press("Escape")


def test_manager_distributes_pool_customers_with_a_preview(browser, live_url, org, db):
    """Pool page -> tick a customer -> action menu -> pick a rep -> preview -> confirm."""
    from app.models import Ownership, PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    page = sign_in(browser, live_url, "manager1")
    page.goto(f"{live_url}/pool/list/")
    page.check(f"input.action_check[value='{org.c_pool.id}']")
    page.click("text=操作")  # FAB's action drop-down
    with page.expect_navigation(url=lambda url: "/ownership/distribute" in url):
        page.click(".distribute_menu_item")
    pick_user(page, "owner_ids", "rep2")
    with page.expect_navigation():
        page.click("#preview")
    assert page.inner_text("#plan tr[data-user=rep2] td.gets") == "1"
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_pool.id).owner_id is None  # a preview moves nothing
    with page.expect_navigation(url=lambda url: "/pool/list" in url):
        page.click("#commit")
    assert "已将 1 个客户分配给 1 名销售。" in page.inner_text("body")
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_pool.id).owner_id == org.rep2.id


def test_the_add_form_names_a_duplicate_while_typing(browser, live_url, org, db):
    page = sign_in(browser, live_url, "rep2")
    page.goto(f"{live_url}/customers/add")
    page.fill("input[name=name]", "云帆科技（杭州）有限公司")
    page.press("input[name=name]", "Tab")  # change event: the check runs before any save
    hint = page.wait_for_selector("#dedupe-hint.alert-warning")
    assert "已存在：客户 杭州云帆科技有限公司，负责人 测试rep1（华东大区）" in hint.inner_text()
    page.fill("input[name=mobile]", "139 0013 9000")
    page.press("input[name=mobile]", "Tab")
    hint = page.wait_for_selector("#dedupe-hint.alert-danger")
    assert "苏州恒信电子有限公司" in hint.inner_text() and "不能保存" in hint.inner_text()
    page.fill("input[name=mobile]", "137 0013 7111")
    page.press("input[name=mobile]", "Tab")
    page.wait_for_selector("#dedupe-hint.alert-warning")
    from app.models import Customer

    db.session.expire_all()
    assert db.session.query(Customer).filter_by(name="云帆科技（杭州）有限公司").first() is None


def test_staff_imports_a_file_and_watches_the_progress_bar(browser, live_url, org, db, tmp_path):
    from app.models import ImportBatch
    from app.services import import_run

    path = tmp_path / "客户名单.csv"
    path.write_bytes(("客户名称,手机\n拉萨雪域商贸有限公司,13700180001\n坏号码有限公司,1\n")
                     .encode("gbk"))
    page = sign_in(browser, live_url, "staff1")
    page.goto(f"{live_url}/imports/")
    page.set_input_files("#import-file", str(path))
    page.click("#import-upload button[type=submit]")
    page.wait_for_selector("#mapping-form")
    assert page.input_value("#map_name") == "客户名称" and page.input_value("#map_mobile") == "手机"
    page.click("#start-import")
    page.wait_for_selector("#import-show[data-status=queued]")
    db.session.expire_all()
    batch = db.session.query(ImportBatch).one()
    import_run.run(batch.id)  # the worker's part; the page polls and reloads when it is done
    page.wait_for_selector("#import-problems tr[data-line='3']", timeout=15000)
    assert page.inner_text("#import-status") == "已完成"
    assert page.inner_text("#import-progress") == "100%"
    assert "手机：无法识别的电话号码：1" in page.inner_text("#import-problems")


def test_a_picker_finds_a_rep_by_part_of_the_username(browser, live_url, org, db):
    """Typing part of a username narrows 2,000 reps to the one meant; Enter picks it."""
    page = sign_in(browser, live_url, "admin")
    page.goto(f"{live_url}/transfers/new?ids={org.c_rep.id}")
    pick_user(page, "to_owner_id", "p3", expect="测试rep3 (rep3 · 华北大区)")
    assert page.input_value("select[name=to_owner_id]") == str(org.rep_north.id)
    page.fill("#reason", "客户搬到北京")
    with page.expect_navigation(url=lambda url: "/transfers/new" not in url):
        page.click("#transfer-submit")
    from app.models import TransferRequest

    db.session.expire_all()
    assert db.session.query(TransferRequest).one().to_owner_id == org.rep_north.id


def test_whole_team_selects_every_member_of_the_department(browser, live_url, org, db):
    from app.models import PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    page = sign_in(browser, live_url, "manager1")
    page.goto(f"{live_url}/ownership/distribute?ids={org.c_pool.id}")
    # The department's name finds its whole-team choice first.
    pick_user(page, "owner_ids", "华东", expect="整个团队：销售中心 / 华东大区（3 人）")
    chosen = page.eval_on_selector(
        "select[name=owner_ids]", "s => Array.from(s.selectedOptions).map(o => o.value)")
    assert sorted(chosen) == sorted(str(u.id) for u in (org.manager, org.rep, org.rep2))
    with page.expect_navigation():
        page.click("#preview")
    rows = page.eval_on_selector_all("#plan tr[data-user]", "rs => rs.map(r => r.dataset.user)")
    assert sorted(rows) == ["manager1", "rep1", "rep2"]


def test_rep_works_from_the_customer_page(browser, live_url, org, db):
    """Customer page -> 记录跟进 -> save -> back on the page with it on the timeline ->
    联系人 tab -> 锁定 -> back with the message and the locked fact."""
    from app.models import Ownership

    page = sign_in(browser, live_url, "rep1")
    page.goto(f"{live_url}/customers/show/{org.c_rep.id}")
    with page.expect_navigation(url=lambda url: "/followups/add" in url):
        page.click("#action-followup")
    page.fill("textarea[name=content]", "电话确认需求")
    with page.expect_navigation(url=lambda url: f"/customers/show/{org.c_rep.id}" in url):
        page.click("#model_form button[type=submit], #model_form input[type=submit]")
    # Typed to the minute (the form offers the local time now), so it may share its minute
    # with the creation event of a moment before: find it among the newest rows.
    assert "电话确认需求" in page.inner_text("#timeline tbody tr.timeline-followup")
    page.click("a[href='#tab-contacts']")
    assert page.is_visible("#contacts")
    # The page asks first, like the list action: dismissed, nothing happens; accepted, locks.
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#action-lock button")
    page.wait_for_timeout(300)
    assert asked == ["锁定该客户（不参与回收）？"]
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).locked is False
    page.once("dialog", lambda d: d.accept())
    with page.expect_navigation(url=lambda url: f"/customers/show/{org.c_rep.id}" in url):
        page.click("#action-lock button")
    assert "已锁定 1 个客户。" in page.inner_text("body")
    assert "已锁定" in page.inner_text("#fact-reclaim")
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).locked is True


def test_a_visitor_submits_the_public_form_and_a_rep_wins_the_card_on_the_kanban(
        browser, live_url, org, db):
    """Issue 15 in a browser: the public form without signing in (the consent is asked for),
    then the rep drags an opportunity card to 赢单 (HTML5 drag and drop posting the stage
    change) and another to 输单, answering the reason prompt."""
    from decimal import Decimal

    from sqlalchemy import select

    from app.models import Deal, Lead, Opportunity
    from app.services import lead_capture, leads, opportunities

    form = lead_capture.create_form(org.admin, {
        "name": "官网咨询", "channel": "web_form", "pool_id": leads.default_lead_pool().id,
        "policy_text": "我们只用您的信息联系您。", "policy_version": "v1", "is_active": True})
    visitor = browser.new_page()
    visitor.goto(f"{live_url}/forms/{form.token}")
    visitor.fill("#f-name", "浏览器访客")
    visitor.fill("#f-mobile", "13900007777")
    with visitor.expect_navigation():
        visitor.click("#capture-submit")
    assert visitor.is_visible("#error-consent")  # not ticked: shown again, nothing stored
    visitor.check("#f-consent")
    with visitor.expect_navigation():
        visitor.click("#capture-submit")
    assert "感谢您的提交" in visitor.inner_text("body")
    db.session.expire_all()
    assert db.session.execute(select(Lead.consent_version).where(
        Lead.person_name == "浏览器访客")).scalar_one() == "v1"

    stages = {s.name: s for s in opportunities.stages()}
    win = opportunities.create(org.rep, {"customer_id": org.c_rep.id, "title": "拖到赢单",
                                         "amount": "8800"})
    lose = opportunities.create(org.rep, {"customer_id": org.c_rep.id, "title": "拖到输单",
                                          "amount": "1200"})
    won_col = f".kanban-column[data-stage-id='{stages['赢单'].id}']"
    lost_col = f".kanban-column[data-stage-id='{stages['输单'].id}']"

    def board():
        # A fresh page for each drag (Playwright's drag state does not survive the board's
        # reload); at 1280 pixels every column is on screen.
        tab = sign_in(browser, live_url, "rep1")
        tab.goto(f"{live_url}/opportunities/kanban")
        return tab

    # The drop posts the stage change, then the board reloads with the card in its column.
    tab = board()
    tab.drag_and_drop(f".kanban-card[data-id='{win.id}']", won_col)
    tab.wait_for_selector(f"{won_col} .kanban-card[data-id='{win.id}']")
    tab = board()
    asked = []
    tab.once("dialog", lambda d: (asked.append(d.message), d.accept("预算取消")))
    tab.drag_and_drop(f".kanban-card[data-id='{lose.id}']", lost_col)
    tab.wait_for_selector(f"{lost_col} .kanban-card[data-id='{lose.id}']")
    assert asked == ["输单原因是什么？"]
    db.session.expire_all()
    won, lost = db.session.get(Opportunity, win.id), db.session.get(Opportunity, lose.id)
    assert (won.status, lost.status, lost.loss_reason) == ("won", "lost", "预算取消")
    assert db.session.get(Deal, won.deal_id).amount == Decimal("8800.00")


def test_a_simulated_call_pops_a_card_in_the_agents_browser(browser, live_url, org, db, app):
    """`flask crm cti simulate --to rep1` while rep1 has a page open: the card appears with
    the caller's customer (by the stream, or the polling fallback — not timed)."""
    org.rep.agent_no = "8001"
    db.session.commit()
    page = sign_in(browser, live_url, "rep1")
    page.goto(f"{live_url}/workbench/")
    page.wait_for_timeout(500)  # the page's stream subscribes
    result = app.test_cli_runner().invoke(args=["crm", "cti", "simulate", "--to", "rep1",
                                                "--ring-only", "--pause", "0"])
    assert result.exit_code == 0, result.output
    card = page.wait_for_selector(f"#cti-pops >> text={org.c_rep.name}", timeout=20000)
    assert card is not None
    text = page.inner_text("#cti-pops")
    assert "13800138000" in text  # rep1 owns the customer: the number in full
