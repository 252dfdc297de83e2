"""The ownership forms in the web UI: release with a reason, assign / distribute with a preview,
rules, moving between pools, lock / unlock, departure handover, pool members and the user's
effective policy. Each page is checked for the roles that may use it and those that may not."""
from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import select

from app.models import (AssignmentRule, Ownership, OwnershipEvent, Policy, Pool, PoolMember,
                        User)
from app.services import customers
from tests.conftest import _client, make_user
from tests.helpers import holder_of
from tests.test_views_access import DENIED, flashes


def page(client, path, **kw):
    resp = client.get(path, **kw)
    return resp.status_code, resp.get_data(as_text=True)


def post(client, path, data, **kw):
    return client.post(path, data={"csrf_token": client.csrf, **data}, **kw)


def action(client, base, name, ids):
    """Run a list action; returns the response (a redirect to the action's form)."""
    return post(client, f"{base}/action_post", {"action": name, "rowid": [str(i) for i in ids]})


def redirect_ids(resp) -> list[int]:
    query = parse_qs(urlparse(resp.headers["Location"]).query)
    return [int(x) for x in query["ids"][0].split(",")]


@pytest.fixture
def east_pool(db, org):
    """The default pool open to 华东 (east), with four more customers in it."""
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    extra = [customers.create_customer(org.staff, {"name": f"公海客户{i}"}) for i in range(4)]
    return [org.c_pool.id] + [c.id for c in extra]


# ============================================================================================
# release (放弃)
# ============================================================================================
def test_release_action_leads_to_the_form_with_the_selection(clients, org):
    resp = action(clients.rep, "/customers", "release", [org.c_rep.id])
    assert resp.status_code == 302 and "/ownership/release" in resp.headers["Location"]
    assert redirect_ids(resp) == [org.c_rep.id]
    status, html = page(clients.rep, resp.headers["Location"])
    assert status == 200 and org.c_rep.name in html and 'name="reason"' in html


def test_release_needs_a_reason_and_keeps_the_customer(clients, db, org):
    resp = post(clients.rep, f"/ownership/release?ids={org.c_rep.id}", {"reason": "  "})
    assert resp.status_code == 200
    assert "请填写放弃原因" in flashes(resp.get_data(as_text=True))
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)


def test_release_with_reason_returns_to_pool_and_records_it(clients, db, org):
    resp = post(clients.rep, f"/ownership/release?ids={org.c_rep.id}",
                {"reason": "客户已无采购计划", "pool_id": str(org.pool.id)})
    assert resp.status_code == 302
    assert holder_of(db, org.c_rep.id) == (None, org.pool.id)
    ev = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == org.c_rep.id, OwnershipEvent.kind == "released")).scalar_one()
    assert (ev.from_owner_id, ev.reason) == (org.rep.id, "客户已无采购计划")
    own = db.session.get(Ownership, org.c_rep.id)
    assert own.previous_owner_id == org.rep.id and own.released_at is not None


def test_manager_releases_a_team_members_customer(clients, db, org):
    resp = post(clients.manager, f"/ownership/release?ids={org.c_rep2.id}", {"reason": "调整"})
    assert resp.status_code == 302
    assert holder_of(db, org.c_rep2.id) == (None, org.pool.id)


@pytest.mark.parametrize("customer", ["c_rep2", "c_north", "c_pool"])
def test_rep_cannot_open_release_for_customers_outside_scope(clients, db, org, customer):
    cid = getattr(org, customer).id
    before = holder_of(db, cid)
    assert clients.rep.get(f"/ownership/release?ids={cid}").status_code == 404
    assert post(clients.rep, f"/ownership/release?ids={cid}",
                {"reason": "x"}).status_code == 404
    assert holder_of(db, cid) == before
    assert db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == cid, OwnershipEvent.kind == "released")).first() is None


@pytest.mark.parametrize("role", ["staff", "auditor"])
def test_release_page_needs_the_permission(clients, org, role):
    client = getattr(clients, role)
    assert client.get(f"/ownership/release?ids={org.c_rep.id}").status_code == 403
    resp = action(client, "/customers", "release", [org.c_rep.id])
    assert resp.status_code == 302 and "/ownership/" not in resp.headers["Location"]


@pytest.mark.parametrize("ids", ["", "abc", "0", "1,,x", ",".join(["1"] * 2) + ",-3"])
def test_junk_selection_is_404(clients, ids):
    assert clients.rep.get(f"/ownership/release?ids={ids}").status_code == 404


def test_release_post_without_csrf_is_refused(clients, db, org):
    resp = clients.rep.post(f"/ownership/release?ids={org.c_rep.id}", data={"reason": "x"})
    assert resp.status_code == 400 and "The CSRF token is missing." in resp.get_data(as_text=True)
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)


# ============================================================================================
# assign / distribute (分配) with a preview
# ============================================================================================
def test_distribute_preview_shows_the_plan_and_moves_nothing(clients, db, org, east_pool):
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_customers=1))
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=5))
    db.session.commit()
    resp = action(clients.manager, "/pool", "distribute", east_pool)
    assert sorted(redirect_ids(resp)) == sorted(east_pool)
    url = resp.headers["Location"]
    resp = post(clients.manager, url, {"step": "preview",
                                       "owner_ids": [str(org.rep.id), str(org.rep2.id)]})
    html = resp.get_data(as_text=True)
    rows = dict(re.findall(r'data-user="(rep\d)">.*?<td class="gets">(\d+)</td>', html, re.S))
    assert rows == {"rep1": "4"}  # rep1 owns 1 of 5; rep2 is at its cap of 1
    assert "已达上限：上限 1，已拥有 1" in html  # rep2 is skipped with the numbers
    assert 'id="unassigned"' in html
    assert all(holder_of(db, i)[0] is None for i in east_pool)
    token = re.search(r'name="previewed" value="([^"]+)"', html).group(1)
    resp = post(clients.manager, url, {"step": "commit", "previewed": token,
                                       "owner_ids": [str(org.rep.id), str(org.rep2.id)]})
    assert resp.status_code == 302
    owners = [holder_of(db, i)[0] for i in east_pool]
    assert owners.count(org.rep.id) == 4 and owners.count(None) == 1
    kinds = db.session.execute(select(OwnershipEvent.kind, OwnershipEvent.actor_id).where(
        OwnershipEvent.customer_id.in_(east_pool), OwnershipEvent.kind == "assigned")).all()
    assert len(kinds) == 4 and {a for _, a in kinds} == {org.manager.id}


def test_distribute_commit_without_matching_preview_only_previews(clients, db, org, east_pool):
    url = f"/ownership/distribute?ids={','.join(map(str, east_pool))}"
    resp = post(clients.manager, url, {"step": "commit", "previewed": "stale",
                                       "owner_ids": [str(org.rep.id)]})
    assert resp.status_code == 200
    assert "所选内容在预览后有变化：请核对新的预览。" in resp.get_data(as_text=True)
    assert all(holder_of(db, i)[0] is None for i in east_pool)


def test_distribute_evenly_over_two_reps(clients, db, org, east_pool):
    url = f"/ownership/distribute?ids={','.join(map(str, east_pool))}"
    reps = [str(org.rep.id), str(org.rep2.id)]
    html = post(clients.manager, url, {"step": "preview", "owner_ids": reps}).get_data(as_text=True)
    token = re.search(r'name="previewed" value="([^"]+)"', html).group(1)
    post(clients.manager, url, {"step": "commit", "previewed": token, "owner_ids": reps})
    owners = [holder_of(db, i)[0] for i in east_pool]
    # Both own one already: five customers split 3 / 2 (fewest first, then round-robin).
    assert sorted([owners.count(org.rep.id), owners.count(org.rep2.id)]) == [2, 3]


def test_distribute_to_a_rep_outside_scope_is_refused(clients, db, org, east_pool):
    url = f"/ownership/distribute?ids={east_pool[0]}"
    html = post(clients.manager, url, {"step": "preview", "owner_ids": [str(org.rep_north.id)]}
                ).get_data(as_text=True)
    assert "不在您的数据权限内" in html
    assert 'id="commit"' not in html


def test_rep_who_is_no_pool_admin_is_sent_back_with_the_rule(clients, db, org, east_pool):
    resp = clients.rep.get(f"/ownership/distribute?ids={east_pool[0]}")
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/pool/list/")
    html = clients.rep.get(resp.headers["Location"]).get_data(as_text=True)
    assert "只有销售经理、管理员和公海管理员可以分配客户" in flashes(html)
    resp = post(clients.rep, f"/ownership/distribute?ids={east_pool[0]}",
                {"step": "commit", "owner_ids": [str(org.rep.id)]})
    assert resp.status_code == 302
    assert holder_of(db, east_pool[0]) == (None, org.pool.id)


@pytest.mark.parametrize("role", ["staff", "auditor"])
def test_staff_and_auditors_cannot_distribute(clients, org, east_pool, role):
    assert getattr(clients, role).get(f"/ownership/distribute?ids={east_pool[0]}"
                                      ).status_code == 403


def test_pool_admin_rep_distributes_to_the_pools_members(clients, db, org, east_pool):
    """rep1 administers the pool: may hand its customers to members (rep2, and rep3 of
    another department once 华北 joins the pool), never to non-members."""
    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id, is_admin=True))
    db.session.commit()
    url = f"/ownership/distribute?ids={east_pool[0]},{east_pool[1]}"
    html = clients.rep.get(url).get_data(as_text=True)
    assert "rep2" in html and "rep3" not in html  # 华北 is not a member (yet)
    html = post(clients.rep, url, {"step": "preview", "owner_ids": [str(org.rep_north.id)]}
                ).get_data(as_text=True)
    assert "不在您的数据权限内" in html
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.north.id))
    db.session.commit()
    reps = [str(org.rep2.id), str(org.rep_north.id)]
    html = post(clients.rep, url, {"step": "preview", "owner_ids": reps}).get_data(as_text=True)
    token = re.search(r'name="previewed" value="([^"]+)"', html).group(1)
    assert post(clients.rep, url, {"step": "commit", "previewed": token, "owner_ids": reps}
                ).status_code == 302
    owners = {holder_of(db, i)[0] for i in east_pool[:2]}
    assert owners == {org.rep2.id, org.rep_north.id}


def test_pool_admin_of_another_pool_gets_404_here(clients, db, org, east_pool):
    other = Pool(name="华南公海")
    db.session.add(other)
    db.session.flush()
    db.session.add(PoolMember(pool_id=other.id, user_id=org.rep.id, is_admin=True))
    db.session.commit()
    assert clients.rep.get(f"/ownership/distribute?ids={east_pool[0]}").status_code == 404


def test_manager_of_a_pool_he_is_not_in_gets_404(clients, db, org):
    other = Pool(name="华南公海")
    db.session.add(other)
    db.session.commit()
    c = customers.create_customer(org.staff, {"name": "华南客户"}, pool_id=other.id)
    assert clients.manager.get(f"/ownership/distribute?ids={c.id}").status_code == 404
    assert clients.admin.get(f"/ownership/distribute?ids={c.id}").status_code == 200


# ============================================================================================
# rules, moving between pools
# ============================================================================================
def test_apply_rules_preview_then_commit(clients, db, org, east_pool):
    db.session.add(AssignmentRule(position=1, name="上海归 rep2", city="上海", target_type="user",
                                  target_user_id=org.rep2.id, active=True))
    customers.update_customer(org.admin, org.c_pool.id, {"city": "上海"})
    url = f"/ownership/apply-rules?ids={org.c_pool.id}"
    html = post(clients.manager, url, {"step": "preview"}).get_data(as_text=True)
    assert "上海归 rep2" in html and holder_of(db, org.c_pool.id)[0] is None
    assert post(clients.manager, url, {"step": "commit"}).status_code == 302
    assert holder_of(db, org.c_pool.id) == (org.rep2.id, None)
    ev = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == org.c_pool.id, OwnershipEvent.kind == "rule-assigned")
    ).scalar_one()
    assert "上海归 rep2" in ev.rule


def test_admin_moves_pool_customers_to_another_pool(clients, db, org, east_pool):
    other = Pool(name="华南公海")
    db.session.add(other)
    db.session.commit()
    resp = action(clients.admin, "/pool", "move_pool", east_pool[:2])
    url = resp.headers["Location"]
    assert "/ownership/move-pool" in url
    html = post(clients.admin, url, {"pool_id": ""}).get_data(as_text=True)
    assert "请选择目标公海" in html
    assert post(clients.admin, url, {"pool_id": str(other.id), "reason": "区域调整"}
                ).status_code == 302
    assert [holder_of(db, i) for i in east_pool[:2]] == [(None, other.id)] * 2
    assert holder_of(db, east_pool[2]) == (None, org.pool.id)
    ev = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == east_pool[0], OwnershipEvent.kind == "moved")).scalar_one()
    assert (ev.from_pool_id, ev.to_pool_id, ev.reason) == (org.pool.id, other.id, "区域调整")
    # Moving into the pool they are already in is refused, naming them.
    html = post(clients.admin, url, {"pool_id": str(other.id)}).get_data(as_text=True)
    assert "已在『华南公海』中" in html


@pytest.mark.parametrize("role", ["manager", "rep"])
def test_only_admins_move_between_pools(clients, org, east_pool, role):
    assert getattr(clients, role).get(f"/ownership/move-pool?ids={east_pool[0]}"
                                      ).status_code == 403


# ============================================================================================
# lock / unlock (锁定)
# ============================================================================================
def test_rep_locks_own_customer_and_manager_unlocks(clients, db, org):
    action(clients.rep, "/customers", "lock", [org.c_rep.id])
    db.session.commit()
    assert db.session.get(Ownership, org.c_rep.id).locked is True
    # Reps may not unlock: the action is refused by permission.
    resp = action(clients.rep, "/customers", "unlock", [org.c_rep.id])
    assert DENIED in flashes(clients.rep.get(resp.headers["Location"]).get_data(as_text=True))
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).locked is True
    action(clients.manager, "/customers", "unlock", [org.c_rep.id])
    db.session.expire_all()
    assert db.session.get(Ownership, org.c_rep.id).locked is False


def test_lock_cap_refusal_is_flashed_with_numbers(clients, db, org):
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_locked=0))
    db.session.commit()
    resp = action(clients.rep, "/customers", "lock", [org.c_rep.id])
    html = clients.rep.get(resp.headers["Location"]).get_data(as_text=True)
    assert "超出锁定上限：上限 0，已锁定 0，本次锁定 1" in flashes(html)


# ============================================================================================
# departure handover (离职交接)
# ============================================================================================
def test_departure_handover_preview_then_commit(clients, db, org):
    url = f"/ownership/departure/{org.rep.id}"
    status, html = page(clients.admin, url)
    assert status == 200 and org.c_rep.name in html
    form = {"mode": "rep", "owner_id": str(org.rep2.id)}
    html = post(clients.admin, url, {"step": "preview", **form}).get_data(as_text=True)
    assert re.search(r'<td class="gets">1</td>', html)
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)
    token = re.search(r'name="previewed" value="([^"]+)"', html).group(1)
    resp = post(clients.admin, url, {"step": "commit", "previewed": token, **form})
    assert resp.status_code == 302
    assert holder_of(db, org.c_rep.id) == (org.rep2.id, None)
    assert db.session.get(User, org.rep.id).employment_status == "departed"


def test_departure_to_one_rep_over_cap_names_the_numbers(clients, db, org):
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_customers=1))
    db.session.commit()
    html = post(clients.admin, f"/ownership/departure/{org.rep.id}",
                {"step": "preview", "mode": "rep", "owner_id": str(org.rep2.id)}
                ).get_data(as_text=True)
    assert "接收人超出客户上限：上限 1，已拥有 1，本次转入 1" in html


def test_users_handover_action_leads_to_the_form(clients, org):
    resp = post(clients.admin, f"/users/action/handover/{org.rep.id}", {})
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith(f"/ownership/departure/{org.rep.id}")


@pytest.mark.parametrize("role", ["manager", "rep", "staff", "auditor"])
def test_only_admins_hand_over(clients, db, org, role):
    client = getattr(clients, role)
    assert client.get(f"/ownership/departure/{org.rep.id}").status_code == 403
    assert post(client, f"/ownership/departure/{org.rep.id}",
                {"step": "commit", "mode": "pool"}).status_code == 403
    assert holder_of(db, org.c_rep.id) == (org.rep.id, None)


# ============================================================================================
# pool members, effective policy on the user's page
# ============================================================================================
def test_admin_adds_pool_members_and_bad_rows_are_refused(clients, db, org):
    resp = post(clients.admin, "/pool-members/add", {
        "pool": str(org.pool.id), "department": str(org.north.id), "user": str(org.rep.id)},
        follow_redirects=True)
    assert "请选择一个部门或一个用户（二选一）" in resp.get_data(as_text=True)
    assert db.session.execute(select(PoolMember)).first() is None
    post(clients.admin, "/pool-members/add", {"pool": str(org.pool.id),
                                               "department": str(org.north.id), "is_admin": "y"})
    member = db.session.execute(select(PoolMember)).scalar_one()
    assert (member.department_id, member.is_admin) == (org.north.id, True)
    assert org.c_pool.name in clients.admin.get("/pool/list/").get_data(as_text=True)
    rep3 = _client(clients.admin.application, org.rep_north)
    assert org.c_pool.name in rep3.get("/pool/list/").get_data(as_text=True)


@pytest.mark.parametrize("role", ["manager", "staff", "auditor"])
def test_non_admins_cannot_add_pool_members(clients, db, org, role):
    resp = post(getattr(clients, role), "/pool-members/add",
                {"pool": str(org.pool.id), "department": str(org.east.id)})
    assert resp.status_code == 403
    assert db.session.execute(select(PoolMember)).first() is None


def test_user_page_shows_the_effective_policy_and_its_source(clients, db, org):
    db.session.add(Policy(scope="department", department_id=org.east.id, max_customers=40))
    db.session.add(Policy(scope="user", user_id=org.rep.id, daily_claim_limit=3))
    db.session.commit()
    html = clients.admin.get(f"/users/show/{org.rep.id}").get_data(as_text=True)
    rows = {f: (v, src) for f, v, src in re.findall(
        r'data-field="(\w+)">.*?<td class="value">([^<]*)</td><td class="source">([^<]*)</td>',
        html, re.S)}
    assert rows["max_customers"] == ("40", "部门：华东大区")
    assert rows["daily_claim_limit"] == ("3", "个人设置")
    assert rows["cooldown_days"][1] == "全局默认"
    # The rep sees the same table on their own profile page.
    mine = clients.rep.get("/users/userinfo/").get_data(as_text=True)
    assert 'data-field="daily_claim_limit"' in mine and "个人设置" in mine


def test_inactive_user_is_not_offered_as_a_receiver(clients, db, org, east_pool):
    gone = make_user("rep_gone", "Sales Rep", org.east, org.manager)
    gone.active = False
    db.session.commit()
    html = clients.manager.get(f"/ownership/distribute?ids={east_pool[0]}").get_data(as_text=True)
    assert "rep_gone" not in html and "rep2" in html
