"""The customer page as the hub (/customers/show/<id>, and /pool/show/<id> for pool members):
for each role the header facts and the action buttons shown, each action from the page and
back with its flash, the exact refusals, the timeline (newest first, paged, merged customers'
history included), the contacts tab masked by the rule, no internal keys, CSRF on the POSTs.
"""
from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select, update

from app.models import (AuditLog, Contact, CustomerShare, FollowUp, Ownership, OwnershipEvent, Policy,
                        PoolMember)
from app.models.customer import utcnow
from app.services import customers, merge, timeline
from app.services.errors import OutOfScope

ACTIONS = ("followup", "deal", "claim", "release", "lock", "unlock", "transfer", "edit")


@pytest.fixture
def hub(db, org):
    """The east department belongs to the default pool; c_rep has a contact; c_rep2 is
    shared read-only with rep1."""
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.add(Contact(customer_id=org.c_rep.id, name="李经理", title="采购",
                           mobile="13700137000", email="li@yunfan.cn", is_primary=True))
    db.session.add(CustomerShare(customer_id=org.c_rep2.id, user_id=org.rep.id))
    db.session.commit()
    return org


def page(client, path):
    resp = client.get(path)
    assert resp.status_code == 200, resp.status_code
    return resp.get_data(as_text=True)


def buttons(html) -> set[str]:
    return {a for a in ACTIONS if f'id="action-{a}"' in html}


def fact(html, name) -> str:
    """The text of a header fact (<dd id="fact-<name>">), tags stripped."""
    m = re.search(rf'<dd id="fact-{name}">(.*?)</dd>', html, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", m.group(1))).strip() if m else ""


def flashes(html) -> str:
    return " ".join(re.findall(r'class="alert[^"]*"[^>]*>(.*?)</div>', html, re.S))


# --- who sees what ---------------------------------------------------------------------------
CASES = {
    # role, customer, page: buttons shown
    "rep own": ("rep", "c_rep", "customers", {"followup", "deal", "release", "lock",
                                              "transfer", "edit"}),
    "rep pool customer": ("rep", "c_pool", "pool", {"claim"}),
    "manager in scope": ("manager", "c_rep", "customers", {"followup", "deal", "release",
                                                           "transfer", "edit"}),
    "staff": ("staff", "c_rep", "customers", {"followup", "deal", "transfer", "edit"}),
    "auditor": ("auditor", "c_rep", "customers", set()),
    "read-only share": ("rep", "c_rep2", "customers", set()),
    "admin pool customer": ("admin", "c_pool", "customers", {"followup", "claim", "edit"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_header_facts_and_buttons_by_role(clients, hub, case):
    role, customer, where, shown = CASES[case]
    c = getattr(hub, customer)
    html = page(getattr(clients, role), f"/{where}/show/{c.id}")
    assert f'<h3 id="customer-name">{c.name}' in html
    assert buttons(html) == shown
    assert ('id="customer-actions"' in html) == bool(shown)
    if customer == "c_pool":
        assert fact(html, "pool") == "默认公海"
        assert fact(html, "owner") == "" and fact(html, "reclaim") == ""
    else:
        assert fact(html, "owner") == c.ownership.owner.display_name
        assert fact(html, "reclaim") == "剩余 30 天"  # the default 30 days without follow-up
    assert fact(html, "grade") == "—"
    assert fact(html, "category") == "潜在客户"
    if customer == "c_rep2":
        assert fact(html, "shares") == "测试rep1（只读）"
    else:
        assert fact(html, "shares") == ""


@pytest.mark.parametrize("role,path,status", [
    ("rep", "/customers/show/{c_north}", 404), ("manager", "/customers/show/{c_north}", 404),
    ("rep", "/customers/show/{c_pool}", 404),  # reps read pool customers on the pool page
    ("manager", "/customers/show/{c_pool}", 404), ("rep", "/customers/show/999999", 404),
    ("rep_north", "/pool/show/{c_pool}", 404),  # not a member of that pool
    ("auditor", "/pool/show/{c_pool}", 403),  # no pool page at all
    ("staff", "/pool/show/{c_pool}", 200)])  # staff browse every pool (no claim)
def test_out_of_scope(app, clients, hub, role, path, status):
    from tests.conftest import login

    ids = {k: getattr(hub, k).id for k in ("c_north", "c_pool")}
    client = login(app.test_client(), hub.rep_north.username) if role == "rep_north" \
        else getattr(clients, role)
    assert client.get(path.format(**ids)).status_code == status


def test_locked_won_and_due_facts(clients, db, hub):
    own = db.session.get(Ownership, hub.c_rep.id)
    own.locked = True
    db.session.commit()
    html = page(clients.manager, f"/customers/show/{hub.c_rep.id}")
    assert fact(html, "reclaim") == "已锁定 不参与回收"
    assert buttons(html) == {"followup", "deal", "release", "unlock", "transfer", "edit"}
    # The owner may not unlock (managers do), nor lock again.
    assert buttons(page(clients.rep, f"/customers/show/{hub.c_rep.id}")) == {
        "followup", "deal", "release", "transfer", "edit"}
    own.locked, own.won = False, True
    db.session.commit()
    assert fact(page(clients.rep, f"/customers/show/{hub.c_rep.id}"), "reclaim") \
        == "已成交，不参与回收"
    # Within the warn-before days: flagged as on the workbench.
    own.won = False
    own.acquired_at = utcnow() - dt.timedelta(days=27)
    db.session.commit()
    html = page(clients.rep, f"/customers/show/{hub.c_rep.id}")
    assert fact(html, "reclaim") == "剩余 3 天" and 'class="text-warning"' in html
    # Past the no-follow-up days before a sweep ran: due, not "-12 days left".
    own.won = False
    own.acquired_at = utcnow() - dt.timedelta(days=42)
    db.session.commit()
    assert fact(page(clients.rep, f"/customers/show/{hub.c_rep.id}"), "reclaim") \
        == "已到期，待回收"


def test_an_open_transfer_hides_the_button_and_links_the_request(clients, db, hub):
    from app.services import transfers

    t = transfers.create_transfer(hub.rep, [hub.c_rep.id], hub.rep2.id, "调岗")
    html = page(clients.rep, f"/customers/show/{hub.c_rep.id}")
    assert "transfer" not in buttons(html)
    assert f'href="/transfers/{t.id}"' in html and fact(html, "transfer") == \
        f"转移申请 #{t.id} 处理中"


# --- the actions, from the page and back ----------------------------------------------------
def link(html, action) -> str:
    m = re.search(rf'id="action-{action}" href="([^"]+)"', html)
    return m.group(1).replace("&amp;", "&")


def test_log_a_follow_up_from_the_page(clients, db, hub):
    here = f"/customers/show/{hub.c_rep.id}"
    add = link(page(clients.rep, here), "followup")
    assert add == f"/followups/add?_flt_0_customer={hub.c_rep.id}&next={here}"
    form = page(clients.rep, add)
    assert f'<option selected value="{hub.c_rep.id}">' in form
    resp = clients.rep.post(add, data={"customer": hub.c_rep.id, "channel": "call",
                                       "content": "电话沟通报价", "csrf_token": clients.rep.csrf})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(here)
    html = clients.rep.get(here).get_data(as_text=True)
    assert "记录已添加" in flashes(html)
    assert "电话：电话沟通报价" in html


def test_record_a_deal_from_the_page(clients, db, hub):
    here = f"/customers/show/{hub.c_rep.id}"
    add = link(page(clients.rep, here), "deal")
    resp = clients.rep.post(add, data={"customer": hub.c_rep.id, "amount": "12800",
                                       "csrf_token": clients.rep.csrf})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(here)
    html = clients.rep.get(here).get_data(as_text=True)
    assert "成交 12,800.00 元" in html
    assert fact(html, "category") == "活跃客户"
    assert fact(html, "reclaim") == "已成交，不参与回收"


def claim_form(html) -> dict:
    m = re.search(r'<form method="post" action="([^"]+)"[^>]*id="action-claim">(.*?)</form>',
                  html, re.S)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', m.group(2)))
    return {"action": m.group(1), **fields}


def test_claim_from_the_pool_customer_page(clients, db, hub):
    here = f"/pool/show/{hub.c_pool.id}"
    html = page(clients.rep, here)
    # Browsing the pool, the history's own pages (out of the rep's scope) are not linked.
    assert "新建客户" in timeline_rows(html)[0] and "/ownership-events/show/" not in html
    form = claim_form(html)
    resp = clients.rep.post(form.pop("action"), data=form)
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith(f"/customers/show/{hub.c_pool.id}")
    html = clients.rep.get(f"/customers/show/{hub.c_pool.id}").get_data(as_text=True)
    assert "已领取 1 个客户。" in flashes(html)
    assert fact(html, "owner") == "测试rep1"
    assert "领取：公海：默认公海 → 测试rep1 领取" in timeline_rows(html)[0]  # the newest
    assert 'href="/ownership-events/show/' in html  # its records' pages are in scope now


def test_a_refused_claim_names_the_cap(clients, db, hub):
    db.session.add(Policy(scope="user", user_id=hub.rep.id, max_customers=1))
    db.session.commit()
    here = f"/pool/show/{hub.c_pool.id}"
    form = claim_form(page(clients.rep, here))
    resp = clients.rep.post(form.pop("action"), data=form)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(here)
    html = clients.rep.get(here).get_data(as_text=True)
    assert "超出客户上限：上限 1，已拥有 1，本次领取 1" in flashes(html)
    db.session.expire_all()
    assert db.session.get(Ownership, hub.c_pool.id).owner_id is None


def post_verb(client, verb, customer_id, here, **extra):
    return client.post(f"/customers/action/{verb}/{customer_id}",
                       data={"csrf_token": client.csrf, "next": here, **extra})


def test_lock_and_unlock_from_the_page(clients, db, hub):
    here = f"/customers/show/{hub.c_rep.id}"
    assert f'action="/customers/action/lock/{hub.c_rep.id}"' in page(clients.rep, here)
    resp = post_verb(clients.rep, "lock", hub.c_rep.id, here)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(here)
    assert "已锁定 1 个客户。" in flashes(clients.rep.get(here).get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(Ownership, hub.c_rep.id).locked is True
    html = page(clients.manager, here)
    assert f'action="/customers/action/unlock/{hub.c_rep.id}"' in html
    resp = post_verb(clients.manager, "unlock", hub.c_rep.id, here)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(here)
    assert "已解锁 1 个客户。" in flashes(clients.manager.get(here).get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(Ownership, hub.c_rep.id).locked is False


def test_lock_and_unlock_show_on_the_timeline_and_in_the_audit_log(clients, db, hub, app):
    here = f"/customers/show/{hub.c_rep.id}"
    post_verb(clients.rep, "lock", hub.c_rep.id, here)
    post_verb(clients.manager, "unlock", hub.c_rep.id, here)
    rows = [r.split(" ", 2)[2] for r in timeline_rows(page(clients.rep, here))]
    # Newest first; the creation event (same minute) comes after them.
    assert rows == [f"锁定 已解锁 {hub.manager.display_name}",
                    f"锁定 已锁定：不参与回收 {hub.rep.display_name}",
                    f"归属 新建客户：{hub.rep.display_name} 新建客户 {hub.rep.display_name}"]
    db.session.expire_all()
    assert [(a.action, a.object_id) for a in db.session.execute(select(AuditLog).where(
        AuditLog.action.in_(("lock", "unlock"))).order_by(AuditLog.id)).scalars()] == [
        ("lock", hub.c_rep.id), ("unlock", hub.c_rep.id)]


def test_the_page_asks_before_locking_or_unlocking(clients, db, hub):
    here = f"/customers/show/{hub.c_rep.id}"
    html = page(clients.rep, here)
    form = re.search(r'<form[^>]*id="action-lock"[^>]*>', html).group(0)
    assert 'data-confirm="锁定该客户（不参与回收）？"' in form
    assert "onsubmit=\"return confirm(this.getAttribute('data-confirm'))\"" in form
    clients.rep.get("/lang/en")
    assert 'data-confirm="Lock this customer (exempt from reclaim)?"' in page(clients.rep, here)
    post_verb(clients.rep, "lock", hub.c_rep.id, here)
    html = page(clients.manager, here)
    assert 'data-confirm="解锁该客户？"' in html


def test_count_flashes_are_singular_in_english(clients, db, hub):
    here = f"/customers/show/{hub.c_rep.id}"
    clients.rep.get("/lang/en")
    post_verb(clients.rep, "lock", hub.c_rep.id, here)
    assert "Locked 1 customer." in flashes(clients.rep.get(here).get_data(as_text=True))


def test_a_refused_lock_names_the_lock_cap(clients, db, hub):
    db.session.add(Policy(scope="user", user_id=hub.rep.id, max_locked=0))
    db.session.commit()
    here = f"/customers/show/{hub.c_rep.id}"
    resp = post_verb(clients.rep, "lock", hub.c_rep.id, here)
    assert resp.headers["Location"].endswith(here)
    assert "超出锁定上限：上限 0，已锁定 0，本次锁定 1" in flashes(
        clients.rep.get(here).get_data(as_text=True))


def test_the_server_rechecks_a_hidden_action(clients, db, hub):
    """The manager sees no lock button on a rep's customer; posting it anyway is refused by
    the service, and a customer out of scope is a 404."""
    here = f"/customers/show/{hub.c_rep.id}"
    resp = post_verb(clients.manager, "lock", hub.c_rep.id, here)
    assert "只能锁定自己负责的客户" in flashes(clients.manager.get(here).get_data(as_text=True))
    assert post_verb(clients.rep, "lock", hub.c_north.id, here).status_code == 404
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Ownership, hub.c_rep.id).locked is False


def test_release_and_transfer_open_their_forms_with_the_customer(clients, db, hub):
    here = f"/customers/show/{hub.c_rep.id}"
    html = page(clients.rep, here)
    assert link(html, "release") == f"/ownership/release?ids={hub.c_rep.id}"
    assert link(html, "transfer") == f"/transfers/new?ids={hub.c_rep.id}"
    assert hub.c_rep.name in page(clients.rep, link(html, "transfer"))
    resp = clients.rep.post(link(html, "release"), data={"reason": "客户无意向",
                                                         "csrf_token": clients.rep.csrf})
    assert resp.status_code == 302
    assert "已将 1 个客户放弃到公海。" in flashes(
        clients.rep.get(resp.headers["Location"]).get_data(as_text=True))


def test_add_and_edit_a_contact_from_the_contacts_tab(clients, db, hub):
    here = f"/customers/show/{hub.c_rep.id}"
    html = page(clients.rep, here)
    add = re.search(r'id="contact-add" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert f'<option selected value="{hub.c_rep.id}">' in page(clients.rep, add)
    resp = clients.rep.post(add, data={"customer": hub.c_rep.id, "name": "王工",
                                       "mobile": "13600136000", "csrf_token": clients.rep.csrf})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(here)
    assert "王工" in page(clients.rep, here)
    contact_id = db.session.execute(select(Contact.id).where(Contact.name == "王工")).scalar()
    assert f'href="/contacts/edit/{contact_id}?next={here}"' in page(clients.rep, here)
    resp = clients.rep.post(f"/contacts/edit/{contact_id}?next={here}", data={
        "name": "王工程师", "mobile": "13600136000", "csrf_token": clients.rep.csrf})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(here)
    assert "王工程师" in page(clients.rep, here)
    # Read-only viewers get neither link.
    assert 'id="contact-add"' not in page(clients.auditor, here)
    assert "/contacts/edit/" not in page(clients.auditor, here)


@pytest.mark.parametrize("path", ["/customers/action/lock/{id}", "/pool/action/claim/{pool}"])
def test_the_posts_need_the_csrf_token(clients, db, hub, path):
    url = path.format(id=hub.c_rep.id, pool=hub.c_pool.id)
    client = clients.rep if "lock" in path else clients.admin
    resp = client.post(url, data={"next": "/"})
    assert resp.status_code == 400
    db.session.expire_all()
    assert db.session.get(Ownership, hub.c_rep.id).locked is False
    assert db.session.get(Ownership, hub.c_pool.id).owner_id is None


# --- the timeline --------------------------------------------------------------------------
def timeline_rows(html) -> list[str]:
    body = re.search(r'<table[^>]*id="timeline">(.*?)</table>', html, re.S).group(1)
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip()
            for row in re.findall(r'<tr class="timeline-\w+">(.*?)</tr>', body, re.S)]


def test_timeline_newest_first_and_paged(clients, db, hub):
    start = utcnow() - dt.timedelta(days=2)
    db.session.execute(update(OwnershipEvent).where(OwnershipEvent.customer_id == hub.c_rep.id)
                       .values(created_at=start - dt.timedelta(days=1)))
    for i in range(25):
        db.session.add(FollowUp(customer_id=hub.c_rep.id, user_id=hub.rep.id, channel="call",
                                content=f"第{i:02d}次", happened_at=start + dt.timedelta(hours=i)))
    db.session.commit()
    here = f"/customers/show/{hub.c_rep.id}"
    first = page(clients.rep, here)
    rows = timeline_rows(first)
    assert len(rows) == 20
    assert [r.split("第")[1][:2] for r in rows] == [f"{i:02d}" for i in range(24, 4, -1)]
    assert "第 1 / 2 页" in first and f'href="{here}?page=2"' in first
    second = timeline_rows(page(clients.rep, f"{here}?page=2"))
    assert [r.split("第")[1][:2] for r in second[:5]] == [f"{i:02d}" for i in range(4, -1, -1)]
    assert len(second) == 6 and "新建客户" in second[-1]  # the oldest: the creation
    # Out of range or not a number: the nearest page, never an error.
    assert timeline_rows(page(clients.rep, f"{here}?page=99")) == second
    assert timeline_rows(page(clients.rep, f"{here}?page=abc")) == rows
    assert timeline_rows(page(clients.rep, f"{here}?page=0")) == rows


def test_timeline_includes_the_merged_customers_history(clients, db, hub):
    twin = customers.create_customer(hub.rep, {"name": "杭州云帆科技", "mobile": "13800138001"},
                                     confirm_duplicates=True)
    twin_id = twin.id
    db.session.add(FollowUp(customer_id=twin_id, user_id=hub.rep.id, channel="visit",
                            content="拜访云帆", happened_at=utcnow()))
    db.session.commit()
    merge.merge(hub.staff, hub.c_rep.id, [twin_id])
    here = f"/customers/show/{hub.c_rep.id}"
    # The old URL leads to the survivor.
    resp = clients.rep.get(f"/customers/show/{twin_id}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith(here)
    rows = timeline_rows(page(clients.rep, here))
    assert any(f"客户 #{twin_id} 杭州云帆科技 已并入本客户" in r for r in rows)
    assert any("拜访云帆" in r for r in rows)
    assert any(f"新建客户" in r and f"（原客户 #{twin_id}，已并入本客户）" in r for r in rows)
    times = re.findall(r'<td class="text-nowrap">([^<]+)</td>', page(clients.rep, here))
    assert times == sorted(times, reverse=True)


def test_timeline_service_scope_and_registry(app, db, hub):
    with app.test_request_context(), pytest.raises(OutOfScope):
        timeline.page_of(hub.rep, hub.c_north.id)
    with app.test_request_context():
        assert timeline.page_of(hub.rep, hub.c_pool.id).total == 1  # a pool member reads it
    with app.test_request_context(), pytest.raises(OutOfScope):
        timeline.page_of(hub.rep_north, hub.c_pool.id)  # not a member of that pool

    @timeline.source("note")
    class Notes:
        @staticmethod
        def count(history):
            return 1

        @staticmethod
        def newest(history, limit):
            return [timeline.Entry(utcnow() + dt.timedelta(minutes=1), "note", "later module",
                                   "")]

    try:
        with app.test_request_context():
            result = timeline.page_of(hub.rep, hub.c_rep.id)
        assert result.total == 2 and result.entries[0].summary == "later module"
    finally:
        del timeline.SOURCES["note"]


# --- masking and internal keys ---------------------------------------------------------------
def test_contacts_tab_masked_by_the_rule(clients, hub):
    here = f"/customers/show/{hub.c_rep.id}"
    html = page(clients.auditor, here)
    assert "137****7000" in html and "l***@yunfan.cn" in html and "138****8000" in html
    assert "13700137000" not in html and "li@yunfan.cn" not in html
    assert "13800138000" not in html
    for role in ("rep", "manager", "staff", "admin"):
        html = page(getattr(clients, role), here)
        assert "13700137000" in html and "li@yunfan.cn" in html and "13800138000" in html
    # A read-only share sees its customer masked; a pool browser too.
    html = page(clients.rep, f"/customers/show/{hub.c_rep2.id}")
    assert "139****9000" in html and "13900139000" not in html
    html = page(clients.rep, f"/pool/show/{hub.c_pool.id}")
    assert "021-62345678" not in html


@pytest.mark.parametrize("role", ["admin", "rep", "auditor"])
def test_no_internal_keys_on_the_page(clients, hub, role):
    html = page(getattr(clients, role), f"/customers/show/{hub.c_rep.id}")
    for key in ("+8613800138000", "+8613700137000", "E.164", "标准化", "name_core",
                "name_block", "norm_version"):
        assert key not in html
