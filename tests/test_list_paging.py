"""Keyset paging of every list (app.paging): next / previous walk every row in scope once,
stay stable under inserts, ignore a cursor that is not theirs, count up to a cap; and a
list page costs the same few SQL statements whatever its size and its rows."""
from __future__ import annotations

import datetime as dt
import html
import re
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select, text

from app import paging
from app.paging import decode_cursor, encode_cursor

ROWS = 60  # more than two pages of 25


# --- cursors ------------------------------------------------------------------------------
def test_a_cursor_round_trips_every_sort_value_type():
    values = [dt.datetime(2026, 11, 30, 8, 15, 1), 42]
    assert decode_cursor(encode_cursor(values, "created_at", "desc"), "created_at", "desc",
                         2) == values
    for value in (dt.date(2026, 2, 28), Decimal("12800.50"), "杭州云帆", 7):
        assert decode_cursor(encode_cursor([value, 9], "x", "asc"), "x", "asc", 2) == [value, 9]


@pytest.mark.parametrize("text", [
    None, "", "%%%", "not base64!", "eyJ4Ijp9",  # broken JSON
    encode_cursor([5], "name", "desc"),       # another order
    encode_cursor([5], "id", "asc"),          # another direction
    encode_cursor(["a", 5], "id", "desc"),    # too many values
    encode_cursor([2**63], "id", "desc"),     # a pk no column holds
    encode_cursor(["5"], "id", "desc"),       # a pk that is no integer
    encode_cursor(["a\x00b", 5], "name", "desc"),
    "A" * 5000,
])
def test_a_cursor_that_is_not_one_of_this_order_is_none(text):
    assert decode_cursor(text, "id", "desc", 1) is None


# --- data ---------------------------------------------------------------------------------
def rep_customers(rep, n: int, name: str, mobile: str) -> list[int]:
    """n customers of `rep` named name.format(i), each with a contact (mobile.format(i)) and
    a follow-up; their ids."""
    from app.services import customers, followups

    ids = []
    for i in range(n):
        c = customers.create_customer(rep, {"name": name.format(i)}, confirm_duplicates=True)
        customers.add_contact(rep, c.id, {"name": f"联系人{i:03d}", "mobile": mobile.format(i)})
        followups.log_followup(rep, c.id, {"channel": "call", "content": f"第{i}次"})
        ids.append(c.id)
    return ids


@pytest.fixture
def many(db, org):
    """ROWS customers of rep1, each with a contact and a follow-up; three deals."""
    from app.services import deals

    ids = rep_customers(org.rep, ROWS, "翻页测试{:03d}号商贸有限公司", "1390000{:04d}")
    for cid in ids[:3]:
        deals.record_deal(org.rep, cid, {"amount": "1000"})
    return ids


def _count_statements(client, path):
    from app.extensions import db as fdb

    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        # The test's savepoints are the harness's, not the page's.
        if not statement.lstrip().upper().startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(statement)

    event.listen(fdb.engine, "before_cursor_execute", count)
    try:
        resp = client.get(path)
    finally:
        event.remove(fdb.engine, "before_cursor_execute", count)
    return resp, seen


LISTS = {
    "customers": ("/customers/list/", "CustomerView"),
    "contacts": ("/contacts/list/", "ContactView"),
    "followups": ("/followups/list/", "FollowUpView"),
    "deals": ("/deals/list/", "DealView"),
    "events": ("/ownership-events/list/", "CustomerEventView"),
    "pool": ("/pool/list/", "PoolCustomerView"),
    "care": ("/care/outbox/list/", "CareMessageView"),
    "audit": ("/audit/list/", "AuditLogView"),
}


@pytest.mark.parametrize("role", ["admin", "manager", "rep", "staff", "auditor"])
def test_every_list_page_is_at_most_8_statements_whatever_its_size(clients, many, role):
    client = getattr(clients, role)
    for name, (path, view) in LISTS.items():
        client.get(path)  # warm: FAB's first request per view fills its caches
        small, seen_small = _count_statements(client, f"{path}?psize_{view}=25")
        if small.status_code == 403 or small.status_code == 302:
            continue
        assert small.status_code == 200, (name, small.status_code)
        large, seen_large = _count_statements(client, f"{path}?psize_{view}=100")
        assert large.status_code == 200
        assert len(seen_small) <= 8, (role, name, seen_small)
        assert len(seen_large) == len(seen_small), (role, name, seen_small, seen_large)


def _ids_on(page_html: str) -> list[int]:
    return [int(x) for x in re.findall(r'name="rowid" value="(\d+)"', page_html)]


def _link(page_html: str, cls: str):
    m = re.search(rf'class="{cls}" href="([^"]+)"', page_html)
    return html.unescape(m.group(1)) if m else None


def _walk(client, start, cls="keyset-next"):
    pages, path = [], start
    while path:
        resp = client.get(path)
        assert resp.status_code == 200
        text = resp.get_data(as_text=True)
        pages.append((path, _ids_on(text), text))
        path = _link(text, cls)
        assert len(pages) < 20
    return pages


def test_next_walks_every_customer_in_scope_once_newest_first_and_previous_walks_back(
        clients, db, org, many):
    from app.models import Customer, Ownership

    pages = _walk(clients.rep, "/customers/list/")
    seen = [i for _, ids, _ in pages for i in ids]
    mine = db.session.execute(select(Customer.id).join(Ownership).where(
        Ownership.owner_id == org.rep.id).order_by(Customer.id.desc())).scalars().all()
    assert seen == mine
    assert [len(ids) for _, ids, _ in pages][:2] == [25, 25]
    assert "keyset-prev" not in pages[0][2] and "keyset-next" not in pages[-1][2]
    # From the last page, previous comes back through the same pages.
    back = _walk(clients.rep, pages[-1][0], cls="keyset-prev")
    assert [ids for _, ids, _ in back] == [ids for _, ids, _ in reversed(pages)]


def test_ordered_by_name_pages_in_that_order(clients, many):
    pages = _walk(clients.rep, "/customers/list/?_oc_CustomerView=name&_od_CustomerView=asc")
    names = [re.findall(r"翻页测试\d{3}号", text) for _, _, text in pages]
    flat = [n for page in names for n in page]
    assert flat == sorted(flat) and len(flat) == ROWS


def test_a_page_is_stable_when_customers_are_added_meanwhile(clients, org, many):
    from app.services import customers

    first = clients.rep.get("/customers/list/").get_data(as_text=True)
    customers.create_customer(org.rep, {"name": "翻页期间新增商贸有限公司"}, confirm_duplicates=True)
    second = clients.rep.get(_link(first, "keyset-next")).get_data(as_text=True)
    # The next page starts right after the last row seen: nothing repeated, nothing skipped.
    assert _ids_on(second) == sorted(many, reverse=True)[25:50]


def test_a_cursor_never_widens_the_scope(clients, org, many):
    """A cursor is a position, not a permission: after any cursor a rep's list holds only
    the rep's customers, a manager's only their tree's."""
    cursor = encode_cursor([max(many) + 1000], "id", "desc")
    rep = _ids_on(clients.rep.get(f"/customers/list/?after_CustomerView={cursor}&"
                                  "psize_CustomerView=100").get_data(as_text=True))
    assert org.c_rep2.id not in rep and org.c_north.id not in rep and len(rep) == ROWS + 1
    manager = _ids_on(clients.manager.get(f"/customers/list/?after_CustomerView={cursor}&"
                                          "psize_CustomerView=100").get_data(as_text=True))
    assert org.c_north.id not in manager and org.c_rep2.id in manager


@pytest.mark.parametrize("junk", ["garbage", "%00", "A" * 700, encode_cursor([3], "name", "asc")])
def test_a_foreign_or_broken_cursor_shows_the_first_page(clients, many, junk):
    resp = clients.rep.get(f"/customers/list/?after_CustomerView={junk}")
    assert resp.status_code in (200, 400)
    if resp.status_code == 200:
        assert _ids_on(resp.get_data(as_text=True)) == sorted(many, reverse=True)[:25]


def test_the_count_stops_at_the_cap(clients, many, monkeypatch):
    monkeypatch.setattr(paging, "estimated_rows", lambda *a: None)  # counted, not estimated
    monkeypatch.setattr(paging, "COUNT_CAP", 10)
    text = clients.rep.get("/customers/list/").get_data(as_text=True)
    assert re.search(r'<span class="record-count">10\+</span>', text)
    monkeypatch.setattr(paging, "COUNT_CAP", 10_000)
    text = clients.rep.get("/customers/list/").get_data(as_text=True)
    assert re.search(rf'<span class="record-count">{ROWS + 1}</span>', text)  # + c_rep


def test_beyond_the_cap_the_page_shows_the_planners_estimate_marked_and_counts_nothing(
        clients, many, monkeypatch):
    seen = []
    monkeypatch.setattr(paging, "estimated_rows", lambda session, stmt: seen.append(stmt)
                        or 123_456)
    resp, statements = _count_statements(clients.rep, "/customers/list/")
    text = resp.get_data(as_text=True)
    span = re.search(r'<span class="record-count"([^>]*)>([^<]*)</span>', text)
    assert span.group(2) == "约 120,000" and "数据库估算：超过 10,000 条" in span.group(1)
    assert seen and not any("count(" in s.lower() and "customer" in s.lower()
                            for s in statements)
    assert _ids_on(text) == sorted(many, reverse=True)[:25]  # the page itself is unchanged
    # An estimate within the cap is not shown: the rows are counted exactly.
    monkeypatch.setattr(paging, "estimated_rows", lambda session, stmt: 3)
    text = clients.rep.get("/customers/list/").get_data(as_text=True)
    assert re.search(rf'<span class="record-count">{ROWS + 1}</span>', text)


def test_the_estimate_is_postgresqls_plan_and_none_elsewhere(db, many):
    from app.models import Customer

    total = db.session.execute(select(func.count()).select_from(Customer)).scalar_one()
    if db.engine.dialect.name != "postgresql":
        assert paging.estimated_rows(db.session, select(Customer.id)) is None
        return
    db.session.commit()
    db.session.execute(text("ANALYZE customer"))
    # A whole-table scan is estimated from the statistics just gathered: the row count.
    assert paging.estimated_rows(db.session, select(Customer.id)) == total
    # Bound parameters (an expanding IN among them) go to EXPLAIN with the statement.
    assert 1 <= paging.estimated_rows(
        db.session, select(Customer.id).where(Customer.id.in_(many[:5]))) <= 5


def test_the_page_bound_goes_into_the_keys_in_subqueries_only():
    from sqlalchemy import Integer, column, table
    from sqlalchemy.orm import aliased

    from app.models import Customer, Ownership

    owned = select(Ownership.customer_id).where(Ownership.pool_id.in_([1, 2]))
    other = aliased(Customer)
    stmt = (select(Customer.id).join(other, other.id == Customer.id)
            .where(Customer.id.in_(owned), Customer.id.not_in(select(Ownership.customer_id)),
                   Customer.name.in_(select(column("name", Integer)).select_from(table("x"))),
                   other.id.in_(select(Ownership.customer_id)), Customer.id < 500))
    sql = str(paging._bounded_subqueries(stmt, Customer.__table__.c.id, 500, True))
    # bounded: the pk's IN (…); untouched: NOT IN, another column's IN, an alias's IN
    assert "customer_ownership.pool_id IN (__[POSTCOMPILE_pool_id_1]) AND " \
           "customer_ownership.customer_id < :customer_id_1" in sql
    assert sql.count("customer_ownership.customer_id <") == 1
    asc = str(paging._bounded_subqueries(stmt, Customer.__table__.c.id, 500, False))
    assert "customer_ownership.customer_id > :customer_id_1" in asc


def test_a_scope_and_a_search_are_counted_without_the_customer_table():
    """keys_only: the ids of `pk IN (…) AND pk IN (…)` read from the subquery whose column
    is a unique foreign key to the pk (the ownership row's customer; a name gram's customer,
    its gram fixed), the other subqueries as IN terms on it; any other shape: None."""
    from app.models import Contact, Customer, Ownership
    from app.services import search

    pk = Customer.__table__.c.id
    owned = select(Ownership.customer_id).where(Ownership.owner_id.in_([7]))
    named = search._gram_rows(search._gram.c.customer_id, "科技", True)
    keys = paging.keys_only(select(Customer.id).where(Customer.id.in_(named),
                                                      Customer.id.in_(owned)), pk)
    sql = str(keys)
    assert sql.startswith("SELECT customer_search_gram.customer_id \nFROM customer_search_gram")
    assert "customer_search_gram.customer_id IN (SELECT customer_ownership.customer_id" in sql
    assert "FROM customer " not in sql + " "
    only_owned = str(paging.keys_only(select(Customer.id).where(Customer.id.in_(owned)), pk))
    assert only_owned.startswith("SELECT customer_ownership.customer_id \nFROM "
                                 "customer_ownership \nWHERE customer_ownership.owner_id IN")
    # Not the same ids without the customer table: a customer column's condition; a column
    # that is not unique (a customer's contacts); a gram whose gram is not fixed.
    # A subquery correlated to the customer table, here or nested in the key's, would
    # lose its correlation without that table.
    from sqlalchemy import exists

    for where in ([Customer.id.in_(owned), Customer.name == "x"],
                  [Customer.id.in_(select(Contact.customer_id))],
                  [Customer.id.in_(select(search._gram.c.customer_id))],
                  [Customer.id.in_(owned), Customer.id.in_(
                      select(Contact.customer_id).where(Contact.name == Customer.name))],
                  [Customer.id.in_(owned.where(exists().where(
                      Contact.customer_id == Customer.id)))]):
        assert paging.keys_only(select(Customer.id).where(*where), pk) is None, where
    # Another subquery reading the key's own table is not put under it (it would be
    # correlated to the key's row): the other key drives.
    both = paging.keys_only(select(Customer.id).where(
        Customer.id.in_(owned), Customer.id.in_(named.where(
            search._gram.c.customer_id.in_(select(Ownership.customer_id))))), pk)
    assert both is not None and str(both).startswith(
        "SELECT customer_search_gram.customer_id \nFROM customer_search_gram")
    # A subquery reading the customer table as its own only table is not correlated to the
    # list's (a search resolved to ids): it stays as it is, under the ownership key.
    ids = select(Customer.id).where(Customer.id.in_([1, 2]))
    keys = str(paging.keys_only(select(Customer.id).where(Customer.id.in_(ids),
                                                          Customer.id.in_(owned)), pk))
    assert keys.startswith("SELECT customer_ownership.customer_id \nFROM customer_ownership")
    assert "IN (SELECT customer.id \nFROM customer \nWHERE customer.id IN" in keys


def test_the_count_without_the_customer_table_is_the_count_with_it(clients, db, org, many,
                                                                    monkeypatch):
    """The rep's search (scope + name grams): the same totals either way, exact (counted, not
    estimated), on both databases; a customer of another owner and one whose name lacks the
    words are not counted."""
    from app.services import customers

    monkeypatch.setattr(paging, "estimated_rows", lambda *a: None)
    customers.create_customer(org.rep2, {"name": "别人的翻页测试商贸公司"})
    customers.create_customer(org.rep, {"name": "另一家无关公司"})
    db.session.commit()
    real = paging.keys_only
    for words in ("翻页", "翻页测试"):  # two characters (the grams alone), and more
        url = "/customers/list/?_flt_2_name=" + words
        seen = []
        monkeypatch.setattr(paging, "keys_only", lambda *a: seen.append(real(*a)) or seen[-1])
        counted = re.search(r'<span class="record-count">([^<]*)</span>',
                            clients.rep.get(url).get_data(as_text=True)).group(1)
        # Counted without the customer table on PostgreSQL; SQLite's scope is a join (its
        # planner's choice, app.security), which keeps the plain count.
        assert seen and (seen[-1] is not None) == (db.engine.dialect.name == "postgresql")
        monkeypatch.setattr(paging, "keys_only", lambda *a: None)
        plain = re.search(r'<span class="record-count">([^<]*)</span>',
                          clients.rep.get(url).get_data(as_text=True)).group(1)
        assert counted == plain == f"{ROWS}", words


def test_deep_pages_of_the_pool_walk_every_pool_customer_once(clients, db, org):
    from app.models import Ownership
    from app.services import customers

    for i in range(60):
        customers.create_customer(org.admin, {"name": f"公海翻页{i:03d}号有限公司"},
                                  pool_id=org.pool.id, confirm_duplicates=True)
    expected = sorted(db.session.execute(select(Ownership.customer_id).where(
        Ownership.pool_id.is_not(None))).scalars(), reverse=True)
    assert len(expected) > 50
    pages = _walk(clients.admin, "/pool/list/")
    assert len(pages) >= 3 and [i for _, ids, _ in pages for i in ids] == expected


def test_on_sqlite_a_page_joins_its_labels_onto_its_keys_alone(clients, db, org):
    """SQLite joins a list's labels onto every matching row and sorts them all before LIMIT
    (rep1's ownership history at 10M events: 350,000 rows of six tables): on SQLite the page
    picks its keys in a subquery and joins the labels onto those; a deep page's bound still
    reaches the scope's own subquery. The rows are those of the walk above."""
    if db.session.get_bind().dialect.name != "sqlite":
        pytest.skip("only SQLite sorts the joined rows in full before LIMIT")
    from app.services import customers

    for i in range(30):
        customers.create_customer(org.admin, {"name": f"标签翻页{i:03d}号有限公司"},
                                  pool_id=org.pool.id, confirm_duplicates=True)
    first = clients.admin.get("/pool/list/").get_data(as_text=True)
    resp, seen = _count_statements(clients.admin, _link(first, "keyset-next"))
    assert resp.status_code == 200
    (page,) = [s for s in seen if "pool_1.name" in s]  # the statement with the labels
    flat = " ".join(page.split())
    # Ordered and limited inside; outside, the labels of those rows, ordered, no LIMIT.
    assert flat.endswith("ORDER BY customer.id DESC"), flat[-200:]
    assert "LIMIT" in flat.split("WHERE customer.id IN (SELECT", 1)[1]
    # The bound of the deep page inside the pool's ownership subquery.
    assert "customer_ownership.customer_id < ?" in flat


def test_an_estimate_reads_as_one():
    assert [paging.rounded(n) for n in (7, 99, 123, 14_314, 1_003_211)] == [
        7, 99, 120, 14_000, 1_000_000]


def test_customer_and_user_columns_are_searched_by_typing(clients, org, many):
    """A follow-up list's customer filter is typed (id or part of the name), not a select
    of every customer."""
    page = clients.rep.get("/followups/list/").get_data(as_text=True)
    assert not re.search(r"<option[^>]*>[^<]*翻页测试", page)
    by_name = clients.rep.get("/followups/list/?_flt_1_customer=翻页测试007").get_data(
        as_text=True)
    assert "第7次" in by_name and "第8次" not in by_name
    by_id = clients.rep.get(f"/followups/list/?_flt_0_customer={many[8]}").get_data(
        as_text=True)
    assert "第8次" in by_id and "第7次" not in by_id
    by_user = clients.manager.get("/followups/list/?_flt_1_user=rep1").get_data(as_text=True)
    assert f"第{ROWS - 1}次" in by_user
    nobody = clients.manager.get("/followups/list/?_flt_1_user=nobody-such").get_data(
        as_text=True)
    assert f"第{ROWS - 1}次" not in nobody


# --- REST -----------------------------------------------------------------------------------
def test_the_api_pages_by_cursor_through_every_customer_in_scope(api, org, many):
    call = api("rep1")
    first = call("GET", "/api/v1/customers/?q=(page_size:25)").get_json()
    assert first["count"] == ROWS + 1 and first["next"] and first["prev"] is None
    seen, body = list(first["ids"]), first
    while body["next"]:
        body = call("GET", f"/api/v1/customers/?q=(after:'{body['next']}',page_size:25)").get_json()
        assert body["count"] == ROWS + 1 and body["count_capped"] is False
        seen += body["ids"]
    assert seen == sorted(seen, reverse=True) and len(seen) == len(set(seen)) == ROWS + 1
    back = call("GET", f"/api/v1/customers/?q=(before:'{body['prev']}',page_size:25)").get_json()
    assert back["ids"] == seen[-len(body["ids"]) - 25:-len(body["ids"])]


def test_the_api_refuses_a_cursor_with_a_page_or_an_unindexed_order(api, many):
    call = api("rep1")
    cursor = call("GET", "/api/v1/customers/?q=(page_size:25)").get_json()["next"]
    both = call("GET", f"/api/v1/customers/?q=(after:'{cursor}',page:1)")
    assert both.status_code == 400 and "page" in both.get_json()["message"]
    city = call("GET", f"/api/v1/customers/?q=(after:'{cursor}',order_column:city,"
                       "order_direction:asc)")
    assert city.status_code == 400 and "created_at" in city.get_json()["message"]


def test_notifications_page_older_by_keyset(clients, db, org):
    from app.models import Notification

    db.session.add_all([Notification(user_id=org.rep.id, kind="info", title=f"通知{i:03d}")
                        for i in range(130)])
    db.session.commit()
    first = clients.rep.get("/notifications/").get_data(as_text=True)
    assert "通知129" in first and "通知030" in first and "通知029" not in first
    older = re.search(r'id="notifications-older" href="([^"]+)"', first).group(1)
    second = clients.rep.get(html.unescape(older)).get_data(as_text=True)
    assert "通知029" in second and "通知000" in second and "通知030" not in second
    assert 'id="notifications-older"' not in second and 'id="notifications-newest"' in second
    assert clients.rep.get("/notifications/?before=junk").status_code == 200
