"""Each role walks its main pages in a real browser, in Chinese and in English (issue 13).

On every page of the walk: no string of the other language (the rules of
tests/test_languages.py, applied to what Chromium rendered). On the way: times in the
business zone (a customer created 15:32 UTC reads 23:32 in Asia/Shanghai), contact details
masked per the rule (full for those who may edit the customer, masked for the auditor), and
the customer page's actions: the ones the role may take are there and work, read-only
readers get none.
"""
from __future__ import annotations

import datetime as dt

import pytest

from tests.test_browser import CHROMIUM, browser, live_url, sign_in  # noqa: F401 (fixtures)
from tests.test_languages import chinese_left, data_strings, english_left

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")

ROLES = {"admin": "admin", "manager": "manager1", "rep": "rep1", "staff": "staff1",
         "auditor": "auditor1"}
CREATED_UTC = dt.datetime(2026, 3, 2, 15, 32)
CREATED_LOCAL = "2026-03-02 23:32"
FULL_MOBILE, MASKED_MOBILE = "13800138000", "138****8000"
# The customer page's action buttons each role finds on a customer it owns or manages
# (c_rep: rep1's, in manager1's team). Staff and admin maintain every record; only the
# owner locks.
ACTIONS = {
    "rep": {"action-followup", "action-deal", "action-lock", "action-transfer",
            "action-release", "action-edit"},
    "manager": {"action-followup", "action-deal", "action-transfer", "action-release",
                "action-edit"},
    "admin": {"action-followup", "action-deal", "action-transfer", "action-release",
              "action-edit"},
    "staff": {"action-followup", "action-deal", "action-transfer", "action-edit"},
    "auditor": set(),
}
# Pages every walk opens beside the role's own menu.
MAIN_PAGES = ("/", "/customers/list/")


@pytest.fixture
def walk_data(db, org, app, monkeypatch):
    from app.models import Customer

    monkeypatch.setitem(app.config, "TIMEZONE", "Asia/Shanghai")

    db.session.get(Customer, org.c_rep.id).created_at = CREATED_UTC
    db.session.commit()
    return org


def _menu_pages(page, live_url) -> list[str]:
    hrefs = page.eval_on_selector_all(
        ".navbar a[href]", "els => els.map(e => e.getAttribute('href'))")
    out = []
    for href in hrefs:
        href = href.split("#")[0]
        if (href.startswith("/") and not href.startswith(("/lang/", "/logout", "/api/",
                                                        "/swagger"))
                and "export" not in href and href not in out):
            out.append(href)
    return out


def _other_language(page, lang: str, data_zh: list[str], data_en: list[str]) -> list[str]:
    from tests.test_languages import visible_texts

    texts = visible_texts(page.content())
    if lang == "en":
        return [t for t in texts if chinese_left(t, data_zh)]
    return [t for t in texts if english_left(t, data_en)]


def _action_ids(page) -> set[str]:
    return set(page.eval_on_selector_all("#customer-actions [id^=action-]",
                                         "els => els.map(e => e.id)"))


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("role", list(ROLES))
def test_each_role_walks_its_pages_in_one_language(browser, live_url, walk_data, db, role,  # noqa: F811
                                                   lang):
    org = walk_data
    data_zh, data_en = data_strings(db), data_strings(db, cjk=False)
    page = sign_in(browser, live_url, ROLES[role])
    page.goto(f"{live_url}/lang/{lang}")
    pages = list(MAIN_PAGES) + [p for p in _menu_pages(page, live_url) if p not in MAIN_PAGES]
    assert len(pages) >= 4, pages
    problems = {}
    for path in pages:
        response = page.goto(f"{live_url}{path}")
        assert response.status < 400, (path, response.status)
        found = _other_language(page, lang, data_zh, data_en)
        if found:
            problems[path] = found[:5]

    # Times: the customer list shows the creation in business time, never the stored UTC.
    page.goto(f"{live_url}/customers/list/")
    row = page.inner_text(f"tr:has(a[href$='/customers/show/{org.c_rep.id}'])")
    assert CREATED_LOCAL in row and "15:32" not in row, row

    # The customer page: header, masking, the role's actions, the other language.
    page.goto(f"{live_url}/customers/show/{org.c_rep.id}")
    found = _other_language(page, lang, data_zh, data_en)
    if found:
        problems["customer page"] = found[:5]
    assert problems == {}, problems
    assert page.inner_text("#fact-owner") == org.rep.display_name
    page.click("a[href='#tab-details']")
    details = page.inner_text("#tab-details")
    if role == "auditor":
        assert MASKED_MOBILE in details and FULL_MOBILE not in details
    else:
        assert FULL_MOBILE in details
    assert CREATED_LOCAL in details
    assert _action_ids(page) == ACTIONS[role]


@pytest.mark.parametrize("lang,asked,locked", [
    ("zh", "锁定该客户（不参与回收）？", "已锁定 1 个客户。"),
    ("en", "Lock this customer (exempt from reclaim)?", "Locked 1 customer.")])
def test_rep_locks_and_logs_a_follow_up_from_the_customer_page(browser, live_url, walk_data,  # noqa: F811
                                                               db, lang, asked, locked):
    from app.models import FollowUp, Ownership

    org = walk_data
    page = sign_in(browser, live_url, "rep1")
    page.goto(f"{live_url}/lang/{lang}")
    page.goto(f"{live_url}/customers/show/{org.c_rep.id}")
    with page.expect_navigation(url=lambda url: "/followups/add" in url):
        page.click("#action-followup")
    page.fill("textarea[name=content]", "走访确认需求")
    with page.expect_navigation(url=lambda url: f"/customers/show/{org.c_rep.id}" in url):
        page.click("#model_form button[type=submit], #model_form input[type=submit]")
    first = page.inner_text("#timeline tbody tr.timeline-followup")  # typed to the minute
    assert "走访确认需求" in first
    db.session.expire_all()
    followup = db.session.query(FollowUp).filter_by(customer_id=org.c_rep.id).one()
    # The timeline shows the follow-up in business time (stored UTC + 8 h).
    shown = (followup.happened_at.replace(tzinfo=dt.timezone.utc)
             .astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M"))
    assert shown in first, (shown, first)
    questions = []
    page.once("dialog", lambda d: (questions.append(d.message), d.accept()))
    with page.expect_navigation(url=lambda url: f"/customers/show/{org.c_rep.id}" in url):
        page.click("#action-lock button")
    assert questions == [asked]
    assert locked in page.inner_text("body")
    assert _action_ids(page) >= {"action-unlock"} or "action-lock" not in _action_ids(page)
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).locked is True

