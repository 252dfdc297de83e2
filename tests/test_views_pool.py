"""The pool page: members only, contacts masked for non-admins, claim action with its refusal."""
from __future__ import annotations

import pytest

from app.models import Ownership, Policy, Pool, PoolMember
from app.services import customers


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


@pytest.mark.parametrize("role,status", [("staff", 403), ("auditor", 403)])
def test_pool_page_needs_the_permission(clients, pooled, role, status):
    assert getattr(clients, role).get("/pool/list/").status_code == status


def test_claim_action(clients, db, org, pooled):
    mine, north_only = pooled
    resp = clients.rep.post("/pool/action_post", data={
        "action": "claim", "rowid": [str(mine.id)], "csrf_token": clients.rep.csrf})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Ownership, mine.id).owner_id == org.rep.id
    # A forged id from a pool the rep is not in: refused as a whole, nothing moves.
    resp = clients.rep.post("/pool/action_post", data={
        "action": "claim", "rowid": [str(north_only.id)], "csrf_token": clients.rep.csrf})
    assert resp.status_code == 404
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
