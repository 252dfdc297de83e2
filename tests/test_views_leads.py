"""The lead pages (/leads, /lead-pool): role x route access, scope on every route including
FAB's bulk actions, masking on the pool page, and every write through app.services.leads."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Lead, LeadEvent, LeadFollowUp, LeadOwnership, PoolMember
from app.services import leads
from tests.conftest import login

ROLES = ("admin", "manager", "rep", "staff", "auditor")
DENIED = "访问被拒绝"


@pytest.fixture
def k(db, org):
    """A lead of each rep and one in the lead pool (the sales centre are its members)."""
    pool = leads.default_lead_pool()
    db.session.add(PoolMember(pool_id=pool.id, department_id=org.centre.id))
    db.session.commit()
    mine = leads.create_lead(org.rep, {"company_name": "甬城五金有限公司", "person_name": "甲",
                                       "mobile": "13512340001"})
    team = leads.create_lead(org.rep2, {"person_name": "乙同组", "mobile": "13512340002"})
    north = leads.create_lead(org.rep_north, {"person_name": "丙华北"})
    pooled = leads.create_lead(org.staff, {"company_name": "公海线索公司",
                                           "mobile": "13512348000"})
    return type("K", (), dict(mine=mine.id, team=team.id, north=north.id, pooled=pooled.id,
                              pool=pool.id, rep=org.rep.id, rep2=org.rep2.id))


def holder(db, lead_id):
    db.session.expire_all()
    o = db.session.get(LeadOwnership, lead_id)
    return o.owner_id, o.pool_id


def status(db, lead_id):
    db.session.expire_all()
    return db.session.get(Lead, lead_id).status


VISIBLE = {
    "admin": {"mine", "team", "north", "pooled"},
    "manager": {"mine", "team", "pooled"},
    "rep": {"mine", "pooled"},
    "staff": {"mine", "team", "north", "pooled"},
    "auditor": {"mine", "team", "north", "pooled"},
}


@pytest.mark.parametrize("role", ROLES)
def test_the_list_and_the_lead_page_follow_the_scope(clients, k, role):
    client = getattr(clients, role)
    html = client.get("/leads/list/").get_data(as_text=True)
    for name in ("mine", "team", "north", "pooled"):
        shown = f'/leads/show/{getattr(k, name)}"' in html
        assert shown == (name in VISIBLE[role]), (role, name)
        code = client.get(f"/leads/show/{getattr(k, name)}").status_code
        assert code == (200 if name in VISIBLE[role] else 404), (role, name)


@pytest.mark.parametrize("role", ROLES)
def test_the_lead_pool_page_masks_for_browsers(clients, k, role):
    resp = getattr(clients, role).get("/lead-pool/list/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "公海线索公司" in html and "甬城五金有限公司" not in html
    full = role in ("admin", "staff")
    assert ("13512348000" in html) == full and ("135****8000" in html) == (not full)


@pytest.mark.parametrize("role, code", [("admin", 302), ("manager", 302), ("rep", 302),
                                        ("staff", 302), ("auditor", 403)])
def test_add_through_the_service(clients, db, org, k, role, code):
    client = getattr(clients, role)
    resp = client.post("/leads/add", data={"csrf_token": client.csrf,
                                           "person_name": f"新线索{role}", "source": "phone"})
    assert resp.status_code == code
    lead = db.session.execute(select(Lead).where(Lead.person_name == f"新线索{role}")) \
        .scalar_one_or_none()
    assert (lead is not None) == (code == 302)
    if lead is not None:
        owner, pool = holder(db, lead.id)
        if role in ("admin", "staff"):
            assert (owner, pool) == (None, k.pool)
        else:
            assert owner == getattr(org, role).id


def test_add_refuses_a_blocking_duplicate_with_the_holder(app, db, k):
    rep2 = login(app.test_client(), "rep2")
    resp = rep2.post("/leads/add", data={"csrf_token": rep2.csrf,
                                         "person_name": "撞号", "mobile": "13512340001"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "已存在线索" in html
    assert db.session.execute(select(Lead).where(Lead.person_name == "撞号")).first() is None


@pytest.mark.parametrize("role, allowed", [("admin", True), ("manager", True), ("rep", True),
                                           ("staff", True), ("auditor", False)])
def test_follow_up_on_a_lead_in_scope(clients, db, k, role, allowed):
    client = getattr(clients, role)
    resp = client.post(f"/leads/followup/{k.mine}", data={
        "csrf_token": client.csrf, "channel": "call", "content": f"{role} 打过电话"})
    assert resp.status_code == (302 if allowed else 403)
    n = db.session.execute(select(LeadFollowUp).where(LeadFollowUp.lead_id == k.mine)).all()
    assert len(n) == (1 if allowed else 0)
    assert status(db, k.mine) == ("working" if allowed else "new")


def test_actions_on_a_lead_outside_the_scope_are_404(app, db, k):
    c = login(app.test_client(), "rep2")
    for path, data in ((f"/leads/followup/{k.mine}", {"channel": "call", "content": "x"}),
                       (f"/leads/invalid/{k.mine}", {"reason": "x"}),
                       (f"/leads/release/{k.mine}", {"reason": "x"}),
                       (f"/leads/convert/{k.mine}", {})):
        assert c.post(path, data=dict(data, csrf_token=c.csrf)).status_code == 404, path
    assert holder(db, k.mine) == (k.rep, None) and status(db, k.mine) == "new"


@pytest.mark.parametrize("role, code", [("admin", 302), ("manager", 302), ("rep", 302),
                                        ("staff", 403), ("auditor", 403)])
def test_release_needs_the_permission(clients, db, k, role, code):
    client = getattr(clients, role)
    resp = client.post(f"/leads/release/{k.mine}",
                       data={"csrf_token": client.csrf, "reason": "不合适"})
    assert resp.status_code == code
    assert holder(db, k.mine) == ((None, k.pool) if code == 302 else (k.rep, None))


@pytest.mark.parametrize("role, code", [("admin", 302), ("manager", 302), ("rep", 403),
                                        ("staff", 403), ("auditor", 403)])
def test_assign_needs_the_permission(clients, db, k, role, code):
    client = getattr(clients, role)
    resp = client.post(f"/leads/assign/{k.team}",
                       data={"csrf_token": client.csrf, "owner_id": k.rep})
    assert resp.status_code == code
    assert holder(db, k.team)[0] == (k.rep if code == 302 else k.rep2)


@pytest.mark.parametrize("role, code", [("admin", 302), ("manager", 302), ("rep", 302),
                                        ("staff", 302), ("auditor", 403)])
def test_invalid_needs_a_reason_and_write(clients, db, k, role, code):
    client = getattr(clients, role)
    client.post(f"/leads/invalid/{k.mine}", data={"csrf_token": client.csrf, "reason": ""})
    assert status(db, k.mine) == "new"
    resp = client.post(f"/leads/invalid/{k.mine}",
                       data={"csrf_token": client.csrf, "reason": "空号"})
    assert resp.status_code == code
    assert status(db, k.mine) == ("invalid" if code == 302 else "new")


@pytest.mark.parametrize("role, code", [("admin", 302), ("manager", 302), ("rep", 302),
                                        ("staff", 302), ("auditor", 403)])
def test_convert_through_the_service(clients, db, k, role, code):
    client = getattr(clients, role)
    resp = client.post(f"/leads/convert/{k.mine}", data={"csrf_token": client.csrf})
    assert resp.status_code == code
    assert status(db, k.mine) == ("converted" if code == 302 else "new")


@pytest.mark.parametrize("role, claims", [("admin", True), ("manager", True), ("rep", True),
                                          ("staff", False), ("auditor", False)])
def test_claim_from_the_lead_pool(clients, db, k, role, claims):
    client = getattr(clients, role)
    resp = client.post("/lead-pool/action_post", data={
        "csrf_token": client.csrf, "action": "claim", "rowid": [k.pooled]},
        follow_redirects=True)
    assert resp.status_code == 200
    owner, pool = holder(db, k.pooled)
    assert (owner is not None) == claims
    if not claims:
        assert DENIED in resp.get_data(as_text=True) and pool == k.pool


def test_a_bulk_claim_naming_a_lead_outside_the_pool_claims_nothing(clients, db, k):
    resp = clients.rep.post("/lead-pool/action_post", data={
        "csrf_token": clients.rep.csrf, "action": "claim", "rowid": [k.pooled, k.team]},
        follow_redirects=True)
    assert "不在线索公海" in resp.get_data(as_text=True)
    assert holder(db, k.pooled) == (None, k.pool)


def test_bulk_release_rechecks_the_scope(clients, db, k):
    c = clients.rep
    resp = c.post("/leads/action_post", data={"csrf_token": c.csrf, "action": "release",
                                              "rowid": [k.mine, k.team]})
    assert resp.status_code == 404
    resp = c.post("/leads/action_post", data={"csrf_token": c.csrf, "action": "release",
                                              "rowid": [k.mine]})
    assert resp.status_code == 302 and "/leads/bulk/release" in resp.headers["Location"]
    assert c.get(f"/leads/bulk/release?ids={k.team}").status_code == 404
    resp = c.post(f"/leads/bulk/release?ids={k.mine}",
                  data={"csrf_token": c.csrf, "ids": str(k.mine), "reason": "批量退回"})
    assert resp.status_code == 302
    assert holder(db, k.mine) == (None, k.pool)


def test_bulk_assign_by_a_manager(clients, db, k):
    c = clients.manager
    assert clients.rep.get(f"/leads/bulk/assign?ids={k.mine}").status_code == 403
    resp = c.post(f"/leads/bulk/assign?ids={k.pooled},{k.mine}",
                  data={"csrf_token": c.csrf, "ids": f"{k.pooled},{k.mine}",
                        "owner_id": k.rep2})
    assert resp.status_code == 302
    assert holder(db, k.pooled)[0] == holder(db, k.mine)[0] == k.rep2
    kinds = [e.kind for e in db.session.execute(select(LeadEvent).where(
        LeadEvent.lead_id == k.pooled).order_by(LeadEvent.id)).scalars()]
    assert kinds == ["created", "assigned"]


def test_the_lead_page_shows_history_and_actions(clients, k):
    html = clients.rep.get(f"/leads/show/{k.mine}").get_data(as_text=True)
    assert 'id="lead-followup"' in html and 'id="lead-convert"' in html
    assert 'data-kind="created"' in html and "13512340001" in html
    auditor = clients.auditor.get(f"/leads/show/{k.mine}").get_data(as_text=True)
    assert 'id="lead-followup"' not in auditor and "135****0001" in auditor


def test_edit_is_for_writers_in_scope(clients, db, k):
    assert clients.rep.get(f"/leads/edit/{k.mine}").status_code == 200
    assert clients.rep.get(f"/leads/edit/{k.team}").status_code == 404
    assert clients.auditor.get(f"/leads/edit/{k.mine}").status_code == 403
    # A rep browsing the pool sees the lead and may not edit it.
    assert clients.rep.get(f"/leads/edit/{k.pooled}").status_code == 404
    resp = clients.rep.post(f"/leads/edit/{k.mine}", data={
        "csrf_token": clients.rep.csrf, "company_name": "甬城五金有限公司", "person_name": "甲",
        "mobile": "13512340001", "city": "宁波"})
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(Lead, k.mine).city == "宁波"


def test_leads_are_never_deleted(clients, k):
    resp = clients.admin.post(f"/leads/delete/{k.mine}", data={"csrf_token": clients.admin.csrf})
    assert resp.status_code in (403, 404)
