"""The campaign pages per role: the list (keyset, ≤ 8 statements, filter by status), the add
and edit forms (marketing and admins), the campaign page (members in the reader's scope,
masked), and launch / finish / add / remove members as buttons with CSRF."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.models.marketing import Campaign, CampaignMember
from app.services import campaigns
from tests.campaign_fixtures import queued  # noqa: F401 (fixture)
from tests.conftest import login
from tests.test_list_paging import _count_statements

ROLES = ("admin", "manager", "rep", "staff", "auditor", "marketing")
MANAGERS = {"admin", "marketing"}


@pytest.fixture
def as_role(app, org):
    def make(role):
        return login(app.test_client(), getattr(org, role).username)
    return make


@pytest.fixture
def camp(db, org):
    c = campaigns.create(org.marketing, {"name": "春季展会", "kind": "exhibition",
                                         "budget": "50000", "starts_on": "2026-03-01"})
    campaigns.add_members(c.id, org.marketing, customer_ids=[org.c_rep.id, org.c_rep2.id,
                                                             org.c_north.id])
    return c.id


def _state(db, campaign_id):
    db.session.commit()
    db.session.expire_all()
    c = db.session.get(Campaign, campaign_id)
    members = db.session.execute(select(CampaignMember.customer_id).where(
        CampaignMember.campaign_id == campaign_id)).scalars().all()
    return (c.status, str(c.budget), sorted(members)) if c else None


@pytest.mark.parametrize("role", ROLES)
def test_every_role_reads_the_list_and_the_page(as_role, org, camp, role):
    client = as_role(role)
    listing = client.get("/campaigns/list/")
    assert listing.status_code == 200 and "春季展会" in listing.get_data(as_text=True)
    page = client.get(f"/campaigns/{camp}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "计划中" in html
    shown = {int(x) for x in re.findall(r'href="/customers/show/(\d+)"', html)}
    expected = {"admin": {"c_rep", "c_rep2", "c_north"}, "staff": {"c_rep", "c_rep2", "c_north"},
                "auditor": {"c_rep", "c_rep2", "c_north"},
                "marketing": {"c_rep", "c_rep2", "c_north"},
                "manager": {"c_rep", "c_rep2"}, "rep": {"c_rep"}}[role]
    assert shown == {getattr(org, k).id for k in expected}
    # Contacts by the one masking rule: full to owners, managers, admins and staff.
    full = "13800138000" in html
    assert full == (role in ("admin", "staff", "manager", "rep"))
    if role in ("auditor", "marketing"):
        assert "138****8000" in html
    assert ('id="campaign-launch"' in html) == (role in MANAGERS)
    assert ('id="campaign-add-members"' in html) == (role in MANAGERS)


def test_the_list_is_one_keyset_page_in_few_statements(as_role, db, org, camp):
    for i in range(30):
        campaigns.create(org.marketing, {"name": f"活动{i:02d}", "kind": "email"})
    client = as_role("marketing")
    resp, seen = _count_statements(client, "/campaigns/list/")
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and len(seen) <= 8, seen
    assert "活动29" in html and "春季展会" not in html  # newest first, 25 a page
    nxt = re.search(r'href="([^"]*after_CampaignView=[^"]+)"', html)
    assert nxt and "春季展会" in client.get(nxt.group(1).replace("&amp;", "&")) \
        .get_data(as_text=True)


def test_the_list_filters_by_status(as_role, db, org, camp, queued):
    other = campaigns.create(org.marketing, {"name": "已启动活动", "kind": "sms"})
    campaigns.launch(other.id, org.marketing)
    html = as_role("rep").get("/campaigns/list/?_flt_0_status=running").get_data(as_text=True)
    assert "已启动活动" in html and "春季展会" not in html


def test_marketing_adds_edits_and_deletes_through_the_forms(as_role, db, org):
    client = as_role("marketing")
    assert client.get("/campaigns/add").status_code == 200
    resp = client.post("/campaigns/add", data={
        "name": "表单活动", "kind": "seminar", "starts_on": "2026-04-01",
        "ends_on": "2026-03-01", "budget": "10", "csrf_token": client.csrf})
    assert resp.status_code == 200 and "结束日期不能早于开始日期" in resp.get_data(as_text=True)
    resp = client.post("/campaigns/add", data={
        "name": "表单活动", "kind": "seminar", "starts_on": "2026-04-01", "budget": "10",
        "owner": str(org.rep.id), "csrf_token": client.csrf})
    assert resp.status_code == 302
    made = db.session.execute(select(Campaign).where(Campaign.name == "表单活动")).scalar_one()
    assert resp.headers["Location"].endswith(f"/campaigns/{made.id}")
    assert made.owner_id == org.rep.id and made.created_by_id == org.marketing.id
    assert client.get(f"/campaigns/edit/{made.id}").status_code == 200
    resp = client.post(f"/campaigns/edit/{made.id}", data={
        "name": "表单活动", "kind": "seminar", "starts_on": "2026-04-01", "budget": "-5",
        "owner": str(org.rep.id), "csrf_token": client.csrf})
    assert "budget 必须在 0 到 999999999999.99 之间" in resp.get_data(as_text=True)
    resp = client.post(f"/campaigns/edit/{made.id}", data={
        "name": "表单活动", "kind": "seminar", "starts_on": "2026-04-01", "budget": "20",
        "actual_cost": "18.5", "owner": str(org.rep.id), "csrf_token": client.csrf})
    assert resp.status_code == 302
    assert _state(db, made.id)[1] == "20.00"
    client.post(f"/campaigns/delete/{made.id}", data={"csrf_token": client.csrf})
    assert _state(db, made.id) is None


def test_buttons_launch_add_remove_and_finish(as_role, db, org, camp, queued):
    client = as_role("marketing")
    resp = client.post(f"/campaigns/{camp}/members", data={
        "customer_ids": f"{org.c_pool.id}，{org.c_rep.id}", "csrf_token": client.csrf})
    assert resp.status_code == 302
    assert "已添加 1 个成员，1 个已在活动中。" in client.get(f"/campaigns/{camp}") \
        .get_data(as_text=True)
    member = db.session.execute(select(CampaignMember.id).where(
        CampaignMember.customer_id == org.c_pool.id)).scalar_one()
    client.post(f"/campaigns/{camp}/members/{member}/remove", data={"csrf_token": client.csrf})
    assert org.c_pool.id not in _state(db, camp)[2]
    client.post(f"/campaigns/{camp}/launch", data={"csrf_token": client.csrf})
    assert _state(db, camp)[0] == "running" and queued == [camp]
    html = client.get(f"/campaigns/{camp}").get_data(as_text=True)
    assert "已启动：共 3 个成员（其中 0 个来自客户分群），已排队 7 条消息。" in html
    client.post(f"/campaigns/{camp}/launch", data={"csrf_token": client.csrf})
    assert "市场活动已经启动过了" in client.get(f"/campaigns/{camp}").get_data(as_text=True)
    client.post(f"/campaigns/delete/{camp}", data={"csrf_token": client.csrf})
    assert _state(db, camp)[0] == "running"
    client.post(f"/campaigns/{camp}/finish", data={"csrf_token": client.csrf})
    assert _state(db, camp)[0] == "finished" and queued == [camp]


def test_a_post_without_the_csrf_token_changes_nothing(as_role, db, camp, queued):
    client = as_role("admin")
    before = _state(db, camp)
    assert client.post(f"/campaigns/{camp}/launch", data={}).status_code == 400
    assert _state(db, camp) == before and queued == []


@pytest.mark.parametrize("path", ["/campaigns/2147483647", "/campaigns/2147483648",
                                  "/campaigns/show/99999999999", "/campaigns/{camp}?after=x"])
def test_bad_ids_are_4xx(as_role, camp, path):
    resp = as_role("marketing").get(path.format(camp=camp))
    assert resp.status_code in (302, 400, 404)
    if "after" in path or "2147483648" in path:
        assert resp.status_code in (400, 404)
