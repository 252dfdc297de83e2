"""A list's total from its /count/: the same filters, search and scope as the page, for the
page that left a large count out (app.paging, LIST_COUNT_DEFER_AT: PostgreSQL expected at least
that many rows) and fetches it once shown (static/guishu/list_count.js)."""
from __future__ import annotations

import html
import re
from urllib.parse import quote

import pytest

from app import paging
from tests.conftest import login
from tests.test_list_paging import _count_statements, rep_customers

ROWS = 30

LISTS = {
    "customers": "/customers",
    "contacts": "/contacts",
    "followups": "/followups",
    "deals": "/deals",
    "events": "/ownership-events",
    "pool": "/pool",
    "audit": "/audit",
}


@pytest.fixture
def many(db, org):
    """ROWS customers of rep1 (each with a contact and a follow-up) and ROWS in the pool."""
    from app.services import customers

    ids = rep_customers(org.rep, ROWS, "计数测试{:03d}号科技有限公司", "1370000{:04d}")
    for i in range(ROWS):
        customers.create_customer(org.staff, {"name": f"公海计数{i:03d}号贸易有限公司"},
                                  confirm_duplicates=True)
    return ids


def page_total(client, path: str) -> str:
    resp = client.get(path)
    assert resp.status_code == 200, (path, resp.status_code)
    m = re.search(r'<span class="record-count"[^>]*>([^<]*)</span>', resp.get_data(as_text=True))
    assert m, path
    return m.group(1)


def count_of(client, path: str):
    resp = client.get(path)
    return resp.status_code, (resp.get_json(silent=True) or {})


ARGS = ("", "?search=" + quote("计数测试"), "?_flt_2_name=" + quote("科技"),
        "?search=" + quote("公海计数"), "?_oc_CustomerView=name&_od_CustomerView=asc")


@pytest.mark.parametrize("role", ["admin", "manager", "rep", "staff", "auditor"])
def test_the_count_is_the_pages_total_for_every_list_role_and_filter(clients, many, role):
    client = getattr(clients, role)
    for name, base in LISTS.items():
        for args in ARGS if name in ("customers", "pool") else ("",):
            status, body = count_of(client, f"{base}/count/{args}")
            listed = client.get(f"{base}/list/{args}")
            if listed.status_code in (302, 403):  # no such list for this role: nor its count
                assert status in (302, 403) and "total" not in body, (role, name, status)
                continue
            assert status == 200, (role, name, args, status, body)
            shown = page_total(client, f"{base}/list/{args}")
            assert body["text"] == shown, (role, name, args)
            assert body["total"] == int(shown.replace(",", "")), (role, name, args)
            assert body["more_than"] is False


def test_the_count_keeps_the_scope(app, clients, org, many):
    """rep1 holds c_rep and the ROWS customers; rep2 holds one; the pool (admin) holds c_pool and ROWS;
    the search of rep1's names finds nothing for rep2 even though the customers exist."""
    assert count_of(clients.rep, "/customers/count/")[1]["total"] == ROWS + 1
    rep2 = login(app.test_client(), org.rep2.username)
    assert count_of(rep2, "/customers/count/")[1]["total"] == 1
    assert count_of(rep2, "/customers/count/?search=" + quote("计数测试"))[1]["total"] == 0
    assert count_of(clients.rep, "/customers/count/?search=" + quote("计数测试"))[1][
        "total"] == ROWS
    assert count_of(clients.admin, "/pool/count/")[1]["total"] == ROWS + 1
    assert count_of(clients.admin, "/customers/count/")[1]["total"] == 4 + 2 * ROWS


def test_a_search_that_cannot_be_searched_is_refused_naming_why(clients, many):
    status, body = count_of(clients.rep, "/customers/count/?search=" + quote("计"))
    assert status == 400
    assert body == {"error": "请输入至少 2 个字符（汉字、字母或数字）再搜索"}
    status, body = count_of(clients.rep, "/pool/count/?search=" + quote("x" * 101))
    assert status == 400 and "100" in body["error"]
    status, body = count_of(clients.rep, "/customers/count/?psize_CustomerView=junk")
    assert (status, body) == (400, {"error": "列表参数无效：psize_CustomerView"})


def test_beyond_the_cap_the_count_says_so_and_it_never_estimates(clients, many, monkeypatch):
    estimates = []
    monkeypatch.setattr(paging, "estimated_rows", lambda *a: estimates.append(a) or 123_456)
    monkeypatch.setattr(paging, "COUNT_CAP", 10)
    assert count_of(clients.rep, "/customers/count/")[1] == {
        "total": None, "more_than": True, "text": "10+"}
    monkeypatch.setattr(paging, "COUNT_CAP", 10_000)
    assert count_of(clients.rep, "/customers/count/")[1] == {
        "total": ROWS + 1, "more_than": False, "text": str(ROWS + 1)}
    assert estimates == []


def test_a_page_whose_count_is_expected_large_leaves_it_out_and_links_its_count(
        app, clients, many, monkeypatch):
    """The page shows its rows without counting them and names the /count/ of its own
    arguments; that answer is the total the page would have shown."""
    monkeypatch.setitem(app.config, "LIST_COUNT_DEFER_AT", 20)
    monkeypatch.setattr(paging, "estimated_rows", lambda session, stmt: 25)  # >= 20: deferred
    path = "/customers/list/?search=" + quote("计数测试") + "&psize_CustomerView=25"
    resp, statements = _count_statements(clients.rep, path)
    text = resp.get_data(as_text=True)
    span = re.search(r'<span class="record-count"([^>]*)>([^<]*)</span>', text)
    assert span.group(2) == "…" and 'aria-busy="true"' in span.group(1)
    # No count of the list (the search's own gram counts of customer_search_gram remain).
    assert not any("count(" in s.lower() and "customer_search_gram" not in s.lower()
                   and "customer" in s.lower() for s in statements), statements
    assert len(re.findall(r'name="rowid" value="(\d+)"', text)) == 25  # the rows are there
    url = html.unescape(re.search(r'data-count-url="([^"]+)"', span.group(1)).group(1))
    assert url.startswith("/customers/count/?") and "psize_CustomerView=25" in url
    monkeypatch.setattr(paging, "estimated_rows", lambda session, stmt: 25)
    assert count_of(clients.rep, url)[1] == {"total": ROWS, "more_than": False,
                                             "text": str(ROWS)}
    # Expected below the threshold: counted with the page, as before.
    monkeypatch.setattr(paging, "estimated_rows", lambda session, stmt: 19)
    assert page_total(clients.rep, path) == str(ROWS)
    # A deferred page that finds no rows at all still says so.
    monkeypatch.setattr(paging, "estimated_rows", lambda session, stmt: 25)
    empty = clients.rep.get("/customers/list/?search=" + quote("没有这个名字")).get_data(
        as_text=True)
    assert "没有找到记录" in empty and 'name="rowid"' not in empty


def test_on_each_database_the_real_planner_decides(app, db, clients, many, monkeypatch):
    """PostgreSQL's own estimate (no stand-in): the page defers when it expects at least the
    threshold; SQLite estimates nothing, so its pages always count."""
    monkeypatch.setitem(app.config, "LIST_COUNT_DEFER_AT", 1)
    text = clients.admin.get("/customers/list/").get_data(as_text=True)
    deferred = 'data-count-url="' in text
    assert deferred == (db.engine.dialect.name == "postgresql")
    if not deferred:
        assert page_total(clients.admin, "/customers/list/") == str(4 + 2 * ROWS)
    assert count_of(clients.admin, "/customers/count/")[1]["total"] == 4 + 2 * ROWS


def test_a_related_list_on_a_record_page_always_counts_with_the_page(app, clients, org, many,
                                                                     monkeypatch):
    """The customer's edit page lists its contacts, follow-ups, deals and history, filtered by
    the customer, which no URL argument carries: their totals are never left to a /count/."""
    monkeypatch.setitem(app.config, "LIST_COUNT_DEFER_AT", 1)
    monkeypatch.setattr(paging, "estimated_rows", lambda session, stmt: 5)
    text = clients.rep.get(f"/customers/edit/{many[0]}").get_data(as_text=True)
    assert text.count('class="record-count"') >= 3  # the related lists are there
    assert "data-count-url" not in text
    assert 'data-count-url="' in clients.rep.get("/customers/list/").get_data(as_text=True)


def test_a_repeated_argument_stays_repeated_in_the_count_and_the_pager(app, clients, many,
                                                                       monkeypatch):
    """Two "name contains" filters on one column narrow the list; the count (and the next
    page's link) keep both, or the total would count more rows than the list shows."""
    both = "?_flt_2_name=" + quote("计数") + "&_flt_2_name=" + quote("号科技") \
        + "&psize_CustomerView=25"
    assert page_total(clients.rep, "/customers/list/" + both) == str(ROWS)
    one = "?_flt_2_name=" + quote("计数") + "&psize_CustomerView=25"
    assert page_total(clients.rep, "/customers/list/" + one) == str(ROWS)
    assert page_total(clients.rep, "/customers/list/?_flt_2_name=" + quote("公司")) \
        == str(ROWS + 1)  # c_rep: 杭州云帆科技有限公司, without 计数
    both_narrow = "?_flt_2_name=" + quote("公司") + "&_flt_2_name=" + quote("计数")
    assert page_total(clients.rep, "/customers/list/" + both_narrow) == str(ROWS)
    monkeypatch.setitem(app.config, "LIST_COUNT_DEFER_AT", 1)
    monkeypatch.setattr(paging, "estimated_rows", lambda session, stmt: 5)
    text = clients.rep.get("/customers/list/" + both_narrow + "&psize_CustomerView=25"
                           ).get_data(as_text=True)
    url = html.unescape(re.search(r'data-count-url="([^"]+)"', text).group(1))
    assert url.count("_flt_2_name=") == 2
    assert count_of(clients.rep, url)[1]["total"] == ROWS
    nxt = html.unescape(re.search(r'class="keyset-next" href="([^"]+)"', text).group(1))
    assert nxt.count("_flt_2_name=") == 2 and "after_CustomerView=" in nxt


def test_each_request_fills_its_own_copy_of_the_views_filters(app, clients, many):
    """FAB fills a view's filters from each request's arguments; two requests (two threads of
    one worker) must never share that object, or one lists with the other's filters."""
    from flask_appbuilder.urltools import get_filter_args

    view = next(v for v in app.appbuilder.baseviews if type(v).__name__ == "CustomerView")
    with app.test_request_context("/customers/list/?_flt_2_name=" + quote("计数")):
        first = view._filters
        get_filter_args(first)
        assert view._filters is first and len(first.values) == 1
        with app.test_request_context("/customers/list/"):
            second = view._filters
            get_filter_args(second)
            assert second is not first and second.values == []
        assert [v for v in first.values] == [["计数"]]  # untouched by the other request
    assert view._filters.values == []  # the view's own stays empty
    # And through the pages: the filtered list and the plain one, one after the other.
    assert page_total(clients.rep, "/customers/list/?_flt_2_name=" + quote("计数")) == str(ROWS)
    assert page_total(clients.rep, "/customers/list/") == str(ROWS + 1)
