"""The marketing pages: segments (list, add with multi-selects, preview masked, delete), the
tag list, tag chips on the customer, contact and lead pages, the lists' bulk "tag" action
(scope re-checked per row) and the lists' ?tag= filter; every role."""
from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from app.models.marketing import RecordTag, Segment
from app.services import customers, leads, marketing_segments as ms, tags
from tests.conftest import login

ROLES = ("admin", "manager", "rep", "staff", "auditor", "marketing")
KEEPERS = {"admin", "marketing"}


@pytest.fixture
def as_role(app, org):
    def make(role):
        return login(app.test_client(), getattr(org, role).username)
    return make


def post(client, path, data=None):
    return client.post(path, data=dict(data or {}, csrf_token=client.csrf))


@pytest.mark.parametrize("role", ROLES)
def test_segment_pages_by_role(role, as_role, org, db):
    pk = ms.create_segment(org.marketing, {"name": "浙江客户", "criteria": {
        "provinces": ["浙江"]}}).id
    client = as_role(role)
    for path in ("/segments/list/", "/segments/add", f"/segments/preview/{pk}",
                 f"/segments/edit/{pk}"):
        resp = client.get(path)
        assert resp.status_code == (200 if role in KEEPERS else 403), (role, path)
    resp = post(client, f"/segments/delete/{pk}")
    assert resp.status_code == (302 if role in KEEPERS else 403)
    db.session.expire_all()
    assert (db.session.get(Segment, pk) is None) == (role in KEEPERS)
    assert client.get(f"/segments/preview/{pk}").status_code == (
        404 if role in KEEPERS else 403)


def test_marketing_adds_a_segment_through_the_form_and_previews_it_masked(as_role, org, db):
    client = as_role("marketing")
    page = client.get("/segments/add").get_data(as_text=True)
    assert 'name="provinces"' in page and "multiple" in page and "浙江省" in page
    from werkzeug.datastructures import MultiDict

    resp = client.post("/segments/add", data=MultiDict([
        ("csrf_token", client.csrf), ("name", "杭州与北京"), ("record_type", "customer"),
        ("cities", "杭州"), ("cities", "北京"), ("won", "no"), ("min_days_since_followup", "0")]))
    assert resp.status_code == 302
    row = db.session.execute(select(Segment).where(Segment.name == "杭州与北京")).scalar_one()
    assert json.loads(row.criteria) == {"cities": ["杭州", "北京"], "won": "no",
                                        "min_days_since_followup": 0}
    html = client.get(f"/segments/preview/{row.id}").get_data(as_text=True)
    assert re.search(r'id="segment-count">1<', html)
    assert "138****8000" in html and "13800138000" not in html
    html = as_role("admin").get(f"/segments/preview/{row.id}").get_data(as_text=True)
    assert "13800138000" in html


def test_a_bad_segment_form_says_which_field(as_role, org, db):
    client = as_role("marketing")
    resp = client.post("/segments/add", data={"csrf_token": client.csrf, "name": "坏",
                                              "record_type": "lead", "grades": "A",
                                              "min_days_since_followup": "-3"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "线索没有等级和生命周期" in html and "必须是 0 到 36500 之间的整数" in html
    assert db.session.execute(select(Segment)).first() is None


@pytest.mark.parametrize("role", ROLES)
def test_tag_list_by_role(role, as_role, org, db):
    client = as_role(role)
    assert client.get("/tags/list/").status_code == 200  # everyone reads the list
    resp = post(client, "/tags/add", {"name": f"标签{role}"})
    assert resp.status_code == (302 if role in KEEPERS else 403)
    made = tags.all_tags()
    assert [t.name for t in made] == ([f"标签{role}"] if role in KEEPERS else [])


# customer the role may tag (its edit scope; marketing every one it reads)
TAGGABLE = {"admin": {"c_rep", "c_north", "c_pool"}, "staff": {"c_rep", "c_north", "c_pool"},
            "marketing": {"c_rep", "c_north", "c_pool"}, "manager": {"c_rep"},
            "rep": {"c_rep"}, "auditor": set()}


@pytest.mark.parametrize("role", ROLES)
def test_tag_chips_on_the_customer_page(role, as_role, org, db):
    vip = tags.create_tag(org.admin, {"name": "VIP"})
    client = as_role(role)
    for name in ("c_rep", "c_north", "c_pool"):
        customer = getattr(org, name)
        page = client.get(f"/customers/show/{customer.id}")
        if page.status_code == 404:
            assert name not in TAGGABLE[role]
            continue
        html = page.get_data(as_text=True)
        may = name in TAGGABLE[role]
        assert ('class="form-inline tag-add"' in html) == may, (role, name)
        resp = post(client, f"/tags/record/customer/{customer.id}",
                    {"op": "add", "tag_id": vip.id, "next": f"/customers/show/{customer.id}"})
        expected = 302 if may else (403 if role == "auditor" else 404)
        assert resp.status_code == expected, (role, name)
        db.session.expire_all()
        assert bool(tags.tags_of("customer", [customer.id])[customer.id]) == may


def test_contact_and_lead_chips(as_role, org, db):
    vip = tags.create_tag(org.admin, {"name": "VIP"})
    contact = customers.add_contact(org.rep, org.c_rep.id, {"name": "王经理"})
    lead = leads.create_lead(org.rep, {"company_name": "宁波海曙贸易有限公司"})
    client = as_role("rep")
    assert post(client, f"/tags/record/contact/{contact.id}",
                {"op": "add", "tag_id": vip.id}).status_code == 302
    assert post(client, f"/tags/record/lead/{lead.id}",
                {"op": "add", "tag_id": vip.id}).status_code == 302
    html = client.get(f"/customers/show/{org.c_rep.id}").get_data(as_text=True)
    assert f'id="tags-contact-{contact.id}"' in html and ">VIP</span>" in html
    html = client.get(f"/leads/show/{lead.id}").get_data(as_text=True)
    assert 'id="lead-tags"' in html and ">VIP</span>" in html
    assert post(client, f"/tags/record/lead/{lead.id}",
                {"op": "remove", "tag_id": vip.id}).status_code == 302
    assert tags.tags_of("lead", [lead.id])[lead.id] == []
    assert post(as_role("rep2"), f"/tags/record/lead/{lead.id}",
                {"op": "add", "tag_id": vip.id}).status_code == 404
    assert post(client, f"/tags/record/thing/{lead.id}", {"op": "add"}).status_code == 404


def test_bulk_tag_action_rechecks_the_scope_of_every_row(as_role, org, db):
    vip = tags.create_tag(org.admin, {"name": "VIP"})
    client = as_role("rep")
    resp = client.post("/customers/action_post", data={
        "csrf_token": client.csrf, "action": "tag", "rowid": [org.c_rep.id]})
    assert resp.status_code == 302 and "/tags/apply/customer" in resp.headers["Location"]
    # Another rep's customer in the selection: the whole request is refused.
    resp = client.post("/customers/action_post", data={
        "csrf_token": client.csrf, "action": "tag", "rowid": [org.c_rep.id, org.c_rep2.id]})
    assert resp.status_code == 404
    # Forged straight to the form: refused the same.
    assert client.get(f"/tags/apply/customer?ids={org.c_rep.id},{org.c_rep2.id}"
                      ).status_code == 404
    resp = post(client, f"/tags/apply/customer?ids={org.c_rep.id}",
                {"tag_id": vip.id, "op": "add"})
    assert resp.status_code == 302
    assert [r.customer_id for r in db.session.execute(select(RecordTag)).scalars()] == [
        org.c_rep.id]
    # The list filtered by the tag.
    html = client.get(f"/customers/list/?tag={vip.id}").get_data(as_text=True)
    assert f"/customers/show/{org.c_rep.id}" in html
    html = as_role("admin").get(f"/customers/list/?tag={vip.id}").get_data(as_text=True)
    assert f"/customers/show/{org.c_north.id}" not in html
    # The auditor has no tag action at all.
    auditor = as_role("auditor")
    resp = auditor.post("/customers/action_post", data={
        "csrf_token": auditor.csrf, "action": "tag", "rowid": [org.c_rep.id]})
    assert resp.status_code == 302 and "/tags/apply" not in resp.headers["Location"]


def test_bulk_tag_on_leads_by_marketing(as_role, org, db):
    vip = tags.create_tag(org.admin, {"name": "展会"})
    pooled = leads.create_lead(org.staff, {"company_name": "温州鹿城电器有限公司"})
    client = as_role("marketing")
    resp = client.post("/leads/action_post", data={
        "csrf_token": client.csrf, "action": "tag", "rowid": [pooled.id]})
    assert resp.status_code == 302
    resp = post(client, f"/tags/apply/lead?ids={pooled.id}", {"tag_id": vip.id, "op": "add"})
    assert resp.status_code == 302
    assert [t.name for t in tags.tags_of("lead", [pooled.id])[pooled.id]] == ["展会"]
    html = client.get(f"/leads/list/?tag={vip.id}").get_data(as_text=True)
    assert "温州鹿城电器有限公司" in html
