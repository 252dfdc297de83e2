"""The pool page: members only, contacts masked for non-admins, claim action with its refusal."""
from __future__ import annotations

import pytest

from app.models import Ownership, Policy, Pool, PoolMember
from app.services import customers, pool as pool_service
from tests.conftest import login


@pytest.fixture
def pooled(db, org):
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    other = Pool(name="华北公海")
    db.session.add(other)
    db.session.commit()
    north_only = customers.create_customer(org.staff, {"name": "华北公海客户",
                                                       "mobile": "13912345678"}, pool_id=other.id)
    mine = customers.create_customer(org.staff, {"name": "华东公海客户", "mobile": "13812348000",
                                                 "email": "zhang@qq.com"})
    return mine, north_only


def test_rep_sees_only_member_pools_with_masked_contacts(clients, org, pooled):
    mine, north_only = pooled
    html = clients.rep.get("/pool/list/").get_data(as_text=True)
    assert mine.name in html and north_only.name not in html
    assert "138****8000" in html and "13812348000" not in html
    assert "z***@qq.com" in html
    assert clients.rep.get(f"/pool/show/{north_only.id}").status_code == 404
    admin_html = clients.admin.get("/pool/list/").get_data(as_text=True)
    assert "13812348000" in admin_html and north_only.name in admin_html


@pytest.mark.parametrize("role,status", [("staff", 200), ("auditor", 403)])
def test_pool_page_needs_the_permission(clients, pooled, role, status):
    assert getattr(clients, role).get("/pool/list/").status_code == status


def test_staff_browse_every_pool_and_cannot_claim(clients, db, org, pooled):
    """Staff maintain every record: every pool's customers, the pool customer's page like
    the customer page; no claim (no button, and a forged claim is refused)."""
    mine, north_only = pooled
    html = clients.staff.get("/pool/list/").get_data(as_text=True)
    assert mine.name in html and north_only.name in html
    page = clients.staff.get(f"/pool/show/{north_only.id}")
    assert page.status_code == 200 and 'id="action-claim"' not in page.get_data(as_text=True)
    resp = clients.staff.post(f"/pool/action/claim/{mine.id}",
                              data={"csrf_token": clients.staff.csrf}, follow_redirects=True)
    assert "访问被拒绝" in resp.get_data(as_text=True)  # FAB's access-denied flash
    db.session.expire_all()
    assert db.session.get(Ownership, mine.id).owner_id is None


def test_losing_a_claim_race_says_so_and_goes_back_to_the_pool(app, db, org, pooled):
    """rep2 has the pool customer's page open; rep1 claims first; rep2's 领取 is told the
    customer left the pool, on the pool list, not a bare 404."""
    mine, _ = pooled
    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep2.id))
    db.session.commit()
    rep2 = login(app.test_client(), org.rep2.username)
    assert rep2.get(f"/pool/show/{mine.id}").status_code == 200
    pool_service.claim_from_pool(org.rep, [mine.id])
    resp = rep2.post(f"/pool/action/claim/{mine.id}", data={
        "csrf_token": rep2.csrf, "next": f"/customers/show/{mine.id}",
        "back": f"/pool/show/{mine.id}"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/pool/list/")
    page = rep2.get(resp.headers["Location"]).get_data(as_text=True)
    assert "该客户已不在公海，可能已被他人领取。" in page
    db.session.expire_all()
    assert db.session.get(Ownership, mine.id).owner_id == org.rep.id


def test_bulk_claim_with_a_row_gone_claims_nothing_and_says_how_many(clients, db, org, pooled):
    mine, _ = pooled
    other = customers.create_customer(org.staff, {"name": "杭州远景贸易"})
    third = customers.create_customer(org.staff, {"name": "宁波港湾物流"})
    pool_service.claim_from_pool(org.rep2, [third.id])  # rep2 (east) was quicker
    resp = clients.rep.post("/pool/action_post", data={
        "action": "claim", "rowid": [str(mine.id), str(other.id), str(third.id)],
        "csrf_token": clients.rep.csrf})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/pool/list/")
    page = clients.rep.get(resp.headers["Location"]).get_data(as_text=True)
    assert "所选客户中有 1 个已不在公海（可能已被他人领取），本次未领取任何客户。" in page
    db.session.expire_all()
    assert [db.session.get(Ownership, c.id).owner_id for c in (mine, other)] == [None, None]


def test_claim_flash_counts_in_english_singular(clients, db, org, pooled):
    mine, _ = pooled
    clients.rep.get("/lang/en")
    resp = clients.rep.post("/pool/action_post", data={
        "action": "claim", "rowid": [str(mine.id)], "csrf_token": clients.rep.csrf},
        follow_redirects=True)
    assert "Claimed 1 customer." in resp.get_data(as_text=True)


def test_claim_action(clients, db, org, pooled):
    mine, north_only = pooled
    resp = clients.rep.post("/pool/action_post", data={
        "action": "claim", "rowid": [str(mine.id)], "csrf_token": clients.rep.csrf})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Ownership, mine.id).owner_id == org.rep.id
    # A forged id from a pool the rep is not in: refused as a whole, nothing moves, and the
    # answer is the lost race's (it names nothing).
    resp = clients.rep.post("/pool/action_post", data={
        "action": "claim", "rowid": [str(north_only.id)], "csrf_token": clients.rep.csrf})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/pool/list/")
    assert north_only.name not in clients.rep.get("/pool/list/").get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Ownership, north_only.id).owner_id is None


def test_claim_refusal_is_flashed_with_numbers(clients, db, org, pooled):
    mine, _ = pooled
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=1))
    db.session.commit()
    resp = clients.rep.post("/pool/action_post", data={
        "action": "claim", "rowid": [str(mine.id)], "csrf_token": clients.rep.csrf},
        follow_redirects=True)
    assert "超出客户上限：上限 1，已拥有 1，本次领取 1" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Ownership, mine.id).owner_id is None


def test_pool_admins_export_their_pools_with_full_contacts(clients, db, org, pooled):
    mine, north_only = pooled
    # rep1 is an ordinary member: no export, no button.
    assert clients.rep.get("/pool/export.csv").status_code == 403
    assert 'id="pool-export"' not in clients.rep.get("/pool/list/").get_data(as_text=True)
    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id, is_admin=True))
    db.session.commit()
    assert 'id="pool-export"' in clients.rep.get("/pool/list/").get_data(as_text=True)
    resp = clients.rep.get("/pool/export.csv")
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and body.startswith("\ufeff编号,名称")
    assert mine.name in body and "13812348000" in body  # full details for the pool's admin
    assert north_only.name not in body  # another pool
    assert org.c_rep.name not in body  # owned customers are not the pool's
    admin_body = clients.admin.get("/pool/export.csv").get_data(as_text=True)
    assert mine.name in admin_body and north_only.name in admin_body


@pytest.mark.parametrize("role", ["staff", "auditor"])
def test_pool_export_needs_the_pool_page(clients, pooled, role):
    assert getattr(clients, role).get("/pool/export.csv").status_code == 403
