"""Role x route access matrix for the customer pages (FAB ModelView under /customers).

For every role and every customer of the conftest organisation (one inside and several outside
each role's data scope) these tests assert the exact HTTP outcome and whether the database
changed. Each test logs in only the role it needs (conftest's `login`; conftest's test client
runs every request in a fresh app context, so users do not leak between clients).

Observed FAB 5.3 behaviour asserted here:
  * a signed-in user without the permission gets 403 from `@has_access` (no redirect);
  * a row outside the data scope gives 404 (FAB's `_show`, or ScopedModelView._scoped_get);
  * an admin-only action posted by someone without it: flash "访问被拒绝" + 302;
  * GET /customers/delete/<pk> with CSRF enabled: flash "访问被拒绝" + 302 to the list, no delete.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import re
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from tests.conftest import login
from tests.helpers import customers_now, holder_of

ROLES = ("admin", "manager", "rep", "staff", "auditor", "marketing")
CUSTOMERS = ("c_rep", "c_rep2", "c_north", "c_pool")
USER_OF_ROLE = {"admin": "admin", "manager": "manager", "rep": "rep", "staff": "staff",
                "auditor": "auditor", "marketing": "marketing"}
VISIBLE = {
    "admin": set(CUSTOMERS),
    "manager": {"c_rep", "c_rep2"},       # 华东 and below: rep1 and rep2
    "rep": {"c_rep"},                     # own only
    "staff": set(CUSTOMERS),
    "auditor": set(CUSTOMERS),
    "marketing": set(CUSTOMERS),         # reads every customer, masked
}
WRITERS = {"admin", "manager", "rep", "staff"}
DELETERS = {"admin"}
DENIED = "访问被拒绝"  # FAB's FLAMSG_ERR_SEC_ACCESS_DENIED in the zh catalogue
REFRESH_JOB = "jobs.customers.refresh_normalised_keys"


# --- clients ---------------------------------------------------------------------------------
@pytest.fixture
def login_as(app, org):
    """login_as(role) -> a logged-in test client with `.csrf`."""

    def make(role):
        user = getattr(org, USER_OF_ROLE[role])
        return login(app.test_client(), user.username)

    return make


@pytest.fixture
def k(org):
    """Plain ids and names captured before any request (ORM objects expire on commit)."""
    return SimpleNamespace(
        ids={c: getattr(org, c).id for c in CUSTOMERS},
        names={c: getattr(org, c).name for c in CUSTOMERS},
        rep=org.rep.id, rep2=org.rep2.id, rep_north=org.rep_north.id, manager=org.manager.id,
        staff=org.staff.id, admin=org.admin.id, auditor=org.auditor.id, pool=org.pool.id,
    )


# --- database helpers ------------------------------------------------------------------------
def customer_ids_named(db, name) -> list[int]:
    from app.models import Customer

    db.session.commit()
    return list(db.session.execute(select(Customer.id).where(Customer.name == name)).scalars())


def events_of(db, customer_id) -> list[tuple]:
    from app.models import OwnershipEvent

    db.session.commit()
    return [tuple(r) for r in db.session.execute(
        select(OwnershipEvent.kind, OwnershipEvent.to_owner_id, OwnershipEvent.to_pool_id,
               OwnershipEvent.actor_id)
        .where(OwnershipEvent.customer_id == customer_id).order_by(OwnershipEvent.id)).all()]


def edit_form(db, customer_id, csrf, **changes) -> dict:
    """The edit form as a browser submits it: every field with its current value."""
    from app.models import Customer

    db.session.commit()
    c = db.session.get(Customer, customer_id)
    data = {"csrf_token": csrf, "name": c.name, "customer_type": c.customer_type,
            "industry": c.industry or "", "province": c.province or "", "city": c.city or "",
            "address": c.address or "", "mobile": c.mobile or "", "phone": c.phone or "",
            "email": c.email or "", "source": c.source or "",
            "product_line": c.product_line or "", "birthday": "", "notes": c.notes or ""}
    data.update(changes)
    return data


# --- HTML helpers ----------------------------------------------------------------------------
def linked_ids(html: str, base: str, kind: str = "show") -> set[int]:
    """Row ids linked from a FAB list page, e.g. /customers/show/<id>."""
    return {int(x) for x in re.findall(rf'href="/{base}/{kind}/(\d+)"', html)}


def navbar_hrefs(html: str) -> set[str]:
    m = re.search(r"<header.*?</header>", html, re.S)
    assert m, "no <header> (navbar) in page"
    return set(re.findall(r'href="([^"#]+)"', m.group(0)))


def flashes(html: str) -> list[str]:
    return [re.sub(r"\s+", " ", m).strip() for m in re.findall(
        r'<div class="alert alert-\w+">\s*<button[^>]*>&times;</button>(.*?)</div>', html, re.S)]


# --- background-job helpers (the refresh_keys action queues an RQ job) -----------------------
@pytest.fixture
def jobs_probe(app, redis_url):
    """snapshot() -> ids of queued refresh jobs; new(before) -> [args] of jobs queued since."""
    from app.queue import get_queue

    if redis_url is None:
        pytest.skip("no Redis reachable: the refresh_keys action cannot queue its job")
    created = []

    def snapshot() -> set[str]:
        return {j.id for j in get_queue().jobs if j.func_name == REFRESH_JOB}

    def new(before: set[str]) -> list:
        jobs = [j for j in get_queue().jobs if j.func_name == REFRESH_JOB and j.id not in before]
        created.extend(jobs)
        return [j.args for j in jobs]

    yield SimpleNamespace(snapshot=snapshot, new=new)
    for job in created:  # leave nothing for a worker to pick up
        job.delete()


# ============================================================================================
# list / show / export
# ============================================================================================
@pytest.mark.parametrize("role", ROLES)
def test_list_shows_exactly_the_scope(role, login_as, k):
    client = login_as(role)
    resp = client.get("/customers/list/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert linked_ids(html, "customers") == {k.ids[c] for c in VISIBLE[role]}
    for c in CUSTOMERS:
        assert (k.names[c] in html) == (c in VISIBLE[role]), (role, c)


@pytest.mark.parametrize("role", ROLES)
def test_export_contains_exactly_the_scope(role, login_as, k):
    resp = login_as(role).get("/customers/export.csv")
    if role == "marketing":  # reads every customer masked, exports none
        assert resp.status_code == 403
        return
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    assert resp.headers["Content-Disposition"] == "attachment; filename=customers.csv"
    text = resp.get_data(as_text=True)
    assert text.startswith("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text[1:])))
    assert {int(r["编号"]) for r in rows} == {k.ids[c] for c in VISIBLE[role]}
    assert {r["名称"] for r in rows} == {k.names[c] for c in VISIBLE[role]}
    for c in CUSTOMERS:
        assert (k.names[c] in text) == (c in VISIBLE[role]), (role, c)
    by_id = {int(r["编号"]): r for r in rows}
    if "c_pool" in VISIBLE[role]:
        assert (by_id[k.ids["c_pool"]]["负责人"], by_id[k.ids["c_pool"]]["公海"]) == ("", "默认公海")
    assert (by_id[k.ids["c_rep"]]["负责人"], by_id[k.ids["c_rep"]]["公海"]) == ("rep1", "")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", CUSTOMERS)
def test_show(role, target, login_as, k):
    resp = login_as(role).get(f"/customers/show/{k.ids[target]}")
    if target in VISIBLE[role]:
        assert resp.status_code == 200
        assert k.names[target] in resp.get_data(as_text=True)
    else:
        assert resp.status_code == 404
        assert k.names[target] not in resp.get_data(as_text=True)


def test_show_missing_id_is_404_like_out_of_scope(login_as):
    assert login_as("admin").get("/customers/show/999999").status_code == 404


# ============================================================================================
# edit
# ============================================================================================
def _edit_get_cases():
    for role in ROLES:
        for target in CUSTOMERS:
            if role not in WRITERS:
                expected = 403
            elif target not in VISIBLE[role]:
                expected = 404
            else:
                # Used to crash (500): CustomerView._edit rendered FAB's edit.html without the
                # related-views widgets it indexes. Fixed by ScopedModelView.edit_widgets.
                expected = 200
            yield pytest.param(role, target, expected, id=f"{role}-{target}")


@pytest.mark.parametrize("role,target,expected", list(_edit_get_cases()))
def test_edit_page(role, target, expected, login_as, k, db):
    before = customers_now(db)
    resp = login_as(role).get(f"/customers/edit/{k.ids[target]}")
    assert resp.status_code == expected
    if expected == 200:
        html = resp.get_data(as_text=True)
        assert f'value="{k.names[target]}"' in html
    else:
        assert k.names[target] not in resp.get_data(as_text=True)
    assert customers_now(db) == before


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", CUSTOMERS)
def test_edit_post(role, target, login_as, k, db):
    client = login_as(role)
    before = customers_now(db)
    cid = k.ids[target]
    resp = client.post(f"/customers/edit/{cid}",
                       data=edit_form(db, cid, client.csrf, name="改名后的客户", notes="edited"))
    after = customers_now(db)
    if role not in WRITERS:
        assert resp.status_code == 403
        assert after == before
    elif target not in VISIBLE[role]:
        assert resp.status_code == 404
        assert after == before
    else:
        assert resp.status_code == 302
        assert after == {**before, cid: "改名后的客户"}


def test_edit_post_with_bad_mobile_shows_the_error(login_as, k, db):
    client = login_as("rep")
    before = customers_now(db)
    cid = k.ids["c_rep"]
    resp = client.post(f"/customers/edit/{cid}",
                       data=edit_form(db, cid, client.csrf, name="不会保存", mobile="12345"))
    assert customers_now(db) == before
    assert resp.status_code == 200
    assert "无效的电话号码：12345" in resp.get_data(as_text=True)


# ============================================================================================
# delete
# ============================================================================================
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", CUSTOMERS)
def test_delete_post(role, target, login_as, k, db):
    client = login_as(role)
    client.get("/customers/list/")  # FAB sends the user back to the page the delete came from
    before = customers_now(db)
    cid = k.ids[target]
    resp = client.post(f"/customers/delete/{cid}", data={"csrf_token": client.csrf})
    after = customers_now(db)
    if role in DELETERS:  # admins see every customer
        assert resp.status_code == 302
        assert resp.headers["Location"].endswith("/customers/list/")
        assert after == {i: n for i, n in before.items() if i != cid}
        assert events_of(db, cid)[-1] == ("deleted", None, None, k.admin)
    else:
        assert resp.status_code == 403
        assert after == before


@pytest.mark.parametrize("role", ROLES)
def test_delete_by_get_is_refused(role, login_as, k, db):
    client = login_as(role)
    client.get("/customers/list/")  # FAB sends the user back to the page the delete came from
    before = customers_now(db)
    cid = k.ids["c_rep"]
    resp = client.get(f"/customers/delete/{cid}")
    if role in DELETERS:
        # FAB refuses GET mutations when CSRF is on: flash + redirect, nothing deleted.
        assert resp.status_code == 302
        assert resp.headers["Location"].endswith("/customers/list/")
        assert DENIED in flashes(client.get("/customers/list/").get_data(as_text=True))
    else:
        assert resp.status_code == 403
    assert customers_now(db) == before


def test_admin_delete_of_missing_id_is_404(login_as, db):
    client = login_as("admin")
    before = customers_now(db)
    resp = client.post("/customers/delete/999999", data={"csrf_token": client.csrf})
    assert resp.status_code == 404
    assert customers_now(db) == before


# ============================================================================================
# actions
# ============================================================================================
@pytest.mark.parametrize("role", ROLES)
def test_refresh_keys_action_is_admin_only(role, login_as, k, jobs_probe):
    client = login_as(role)
    cid = k.ids["c_rep"]  # inside every role's scope
    before = jobs_probe.snapshot()
    resp = client.post("/customers/action_post", data={
        "csrf_token": client.csrf, "action": "refresh_keys", "rowid": [str(cid)]})
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    if role == "admin":
        assert jobs_probe.new(before) == [([cid],)]
        assert "已排队：1 个客户将在后台重新标准化。" in flashes(page)
        assert DENIED not in flashes(page)
    else:
        assert jobs_probe.new(before) == []
        assert DENIED in flashes(page)


def test_admin_refresh_keys_on_several_rows_queues_exactly_those(login_as, k, jobs_probe):
    client = login_as("admin")
    before = jobs_probe.snapshot()
    rows = [k.ids["c_rep2"], k.ids["c_north"], k.ids["c_pool"]]
    resp = client.post("/customers/action_post", data={
        "csrf_token": client.csrf, "action": "refresh_keys", "rowid": [str(r) for r in rows]})
    assert resp.status_code == 302
    assert jobs_probe.new(before) == [(rows,)]


def test_rep_forging_refresh_keys_with_another_reps_row_is_denied(login_as, k, db, jobs_probe):
    client = login_as("rep")
    before_jobs, before = jobs_probe.snapshot(), customers_now(db)
    resp = client.post("/customers/action_post", data={
        "csrf_token": client.csrf, "action": "refresh_keys",
        "rowid": [str(k.ids["c_rep2"]), str(k.ids["c_north"])]})
    assert resp.status_code == 302
    assert DENIED in flashes(client.get(resp.headers["Location"]).get_data(as_text=True))
    assert jobs_probe.new(before_jobs) == []
    assert customers_now(db) == before


def test_rep_lacking_the_action_is_denied_even_on_own_row(login_as, k, jobs_probe):
    client = login_as("rep")
    before = jobs_probe.snapshot()
    resp = client.post("/customers/action_post", data={
        "csrf_token": client.csrf, "action": "refresh_keys", "rowid": [str(k.ids["c_rep"])]})
    assert resp.status_code == 302
    assert DENIED in flashes(client.get(resp.headers["Location"]).get_data(as_text=True))
    assert jobs_probe.new(before) == []


@pytest.mark.parametrize("role", ["rep", "admin"])
def test_unknown_action_name_is_404(role, login_as, k, jobs_probe):
    client = login_as(role)
    before = jobs_probe.snapshot()
    resp = client.post("/customers/action_post", data={
        "csrf_token": client.csrf, "action": "delete_all", "rowid": [str(k.ids["c_rep"])]})
    assert resp.status_code == 404
    assert jobs_probe.new(before) == []


def test_admin_action_post_with_a_missing_row_is_404_and_queues_nothing(login_as, k, jobs_probe):
    client = login_as("admin")
    before = jobs_probe.snapshot()
    resp = client.post("/customers/action_post", data={
        "csrf_token": client.csrf, "action": "refresh_keys",
        "rowid": [str(k.ids["c_rep"]), "999999"]})
    assert resp.status_code == 404
    assert jobs_probe.new(before) == []


@pytest.mark.parametrize("role", ["rep", "admin"])
def test_single_row_action_refuses_get(role, login_as, k, jobs_probe):
    before = jobs_probe.snapshot()
    resp = login_as(role).get(f"/customers/action/refresh_keys/{k.ids['c_rep']}")
    assert resp.status_code == 405
    assert jobs_probe.new(before) == []


@pytest.mark.parametrize("role", ROLES)
def test_single_row_action_post(role, login_as, k, jobs_probe):
    client = login_as(role)
    cid = k.ids["c_rep"]
    before = jobs_probe.snapshot()
    resp = client.post(f"/customers/action/refresh_keys/{cid}",
                       data={"csrf_token": client.csrf})
    assert resp.status_code == 302
    if role == "admin":
        assert jobs_probe.new(before) == [([cid],)]
    else:
        assert jobs_probe.new(before) == []
        assert DENIED in flashes(client.get(resp.headers["Location"]).get_data(as_text=True))


# ============================================================================================
# contacts and ownership history follow the customer scope
# ============================================================================================
@pytest.fixture
def contacts(org, k):
    """One contact per customer: {customer key: contact id}."""
    from app.services import customers as svc

    made = {}
    for c, actor, name in (("c_rep", org.rep, "联系人甲"), ("c_rep2", org.rep2, "联系人乙"),
                           ("c_north", org.rep_north, "联系人丙"), ("c_pool", org.admin, "联系人丁")):
        made[c] = svc.add_contact(actor, k.ids[c], {"name": name}).id
    return made


CONTACT_NAMES = {"c_rep": "联系人甲", "c_rep2": "联系人乙", "c_north": "联系人丙", "c_pool": "联系人丁"}


@pytest.mark.parametrize("role", ROLES)
def test_contacts_list_shows_only_in_scope_customers_contacts(role, login_as, contacts):
    resp = login_as(role).get("/contacts/list/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert linked_ids(html, "contacts") == {contacts[c] for c in VISIBLE[role]}
    for c in CUSTOMERS:
        assert (CONTACT_NAMES[c] in html) == (c in VISIBLE[role]), (role, c)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", CUSTOMERS)
def test_contact_show_follows_the_customer_scope(role, target, login_as, contacts):
    resp = login_as(role).get(f"/contacts/show/{contacts[target]}")
    assert resp.status_code == (200 if target in VISIBLE[role] else 404)


def test_rep_cannot_edit_another_reps_contact(login_as, contacts, db):
    from app.models import Contact

    client = login_as("rep")
    resp = client.post(f"/contacts/edit/{contacts['c_rep2']}",
                       data={"csrf_token": client.csrf, "name": "被改了"})
    assert resp.status_code == 404
    db.session.commit()
    assert db.session.get(Contact, contacts["c_rep2"]).name == "联系人乙"


def _field_block(html: str, field: str) -> str:
    m = re.search(rf'id="{field}".*?</td>', html, re.S)
    assert m, f"no {field} field on the page"
    return m.group(0)


def test_rep_cannot_add_a_contact_to_another_reps_customer(login_as, k, db):
    from app.models import Contact

    client = login_as("rep")
    resp = client.post("/contacts/add", data={"csrf_token": client.csrf, "is_primary": "y",
                                              "customer": str(k.ids["c_rep2"]), "name": "伪造联系人"})
    # The form is re-rendered: rep2's customer is not among the choices, so the field is empty.
    assert resp.status_code == 200
    block = _field_block(resp.get_data(as_text=True), "customer")
    assert re.findall(r'<option value="(\d+)"', block) == [str(k.ids["c_rep"])]
    assert "该字段是必填字段。" in block
    db.session.commit()
    assert db.session.execute(select(Contact.id).where(Contact.name == "伪造联系人")).first() is None


def test_rep_adds_a_primary_contact_to_own_customer(login_as, k, db):
    from app.models import Contact

    client = login_as("rep")
    resp = client.post("/contacts/add", data={"csrf_token": client.csrf, "is_primary": "y",
                                              "customer": str(k.ids["c_rep"]), "name": "主联系人"})
    assert resp.status_code == 302
    db.session.commit()
    assert db.session.execute(select(Contact.customer_id, Contact.is_primary)
                              .where(Contact.name == "主联系人")).one() == (k.ids["c_rep"], True)


def test_rep_adds_a_non_primary_contact_to_own_customer(login_as, k, db):
    from app.models import Contact

    client = login_as("rep")
    resp = client.post("/contacts/add", data={"csrf_token": client.csrf,
                                              "customer": str(k.ids["c_rep"]), "name": "普通联系人"})
    db.session.commit()
    assert db.session.execute(select(Contact.customer_id, Contact.is_primary)
                              .where(Contact.name == "普通联系人")).all() == [(k.ids["c_rep"], False)]
    assert resp.status_code == 302


@pytest.mark.parametrize("role", ROLES)
def test_ownership_events_list_shows_only_in_scope_customers(role, login_as, k, db):
    from app.models import OwnershipEvent

    db.session.commit()
    events = {cid: eid for eid, cid in db.session.execute(
        select(OwnershipEvent.id, OwnershipEvent.customer_id)).all()}
    assert set(events) == set(k.ids.values())  # one "created" event per customer
    resp = login_as(role).get("/ownership-events/list/")
    if role == "marketing":  # ownership is none of marketing's business
        assert resp.status_code == 403
        return
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert linked_ids(html, "ownership-events") == {events[k.ids[c]] for c in VISIBLE[role]}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", CUSTOMERS)
def test_ownership_event_show_follows_the_customer_scope(role, target, login_as, k, db):
    from app.models import OwnershipEvent

    db.session.commit()
    eid = db.session.execute(select(OwnershipEvent.id).where(
        OwnershipEvent.customer_id == k.ids[target])).scalar_one()
    resp = login_as(role).get(f"/ownership-events/show/{eid}")
    if role == "marketing":
        assert resp.status_code == 403
        return
    assert resp.status_code == (200 if target in VISIBLE[role] else 404)


# ============================================================================================
# shares (CustomerShare): read access for someone other than the owner
# ============================================================================================
@pytest.fixture
def shares(db, k):
    """rep1 gets an active share of c_rep2 and an expired one of c_north."""
    from app.models import CustomerShare
    from app.models.customer import utcnow

    db.session.add_all([
        CustomerShare(customer_id=k.ids["c_rep2"], user_id=k.rep,
                      expires_at=utcnow() + dt.timedelta(days=3)),
        CustomerShare(customer_id=k.ids["c_north"], user_id=k.rep,
                      expires_at=utcnow() - dt.timedelta(days=1)),
    ])
    db.session.commit()


def test_rep_sees_an_actively_shared_customer_but_not_an_expired_share(login_as, k, shares):
    client = login_as("rep")
    html = client.get("/customers/list/").get_data(as_text=True)
    assert linked_ids(html, "customers") == {k.ids["c_rep"], k.ids["c_rep2"]}
    assert client.get(f"/customers/show/{k.ids['c_rep2']}").status_code == 200
    assert client.get(f"/customers/show/{k.ids['c_north']}").status_code == 404


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_read_share_does_not_allow_editing(method, login_as, k, db, shares):
    # A share is read access (CustomerShare): the edit page and the save answer 404.
    client = login_as("rep")
    before = customers_now(db)
    cid = k.ids["c_rep2"]
    if method == "GET":
        resp = client.get(f"/customers/edit/{cid}")
    else:
        resp = client.post(f"/customers/edit/{cid}",
                           data=edit_form(db, cid, client.csrf, name="借共享改名"))
    assert resp.status_code == 404
    assert customers_now(db) == before


def test_a_read_share_does_not_allow_editing_its_contacts(login_as, contacts, db, shares):
    from app.models import Contact

    client = login_as("rep")
    cid = contacts["c_rep2"]
    assert client.get(f"/contacts/show/{cid}").status_code == 200
    resp = client.post(f"/contacts/edit/{cid}", data={"csrf_token": client.csrf, "name": "借共享改名"})
    assert resp.status_code == 404
    db.session.commit()
    assert db.session.get(Contact, cid).name == "联系人乙"


def test_share_holder_still_edits_own_customer(login_as, k, db, shares):
    client = login_as("rep")
    cid = k.ids["c_rep"]
    resp = client.post(f"/customers/edit/{cid}", data=edit_form(db, cid, client.csrf, name="自己的"))
    assert resp.status_code == 302
    assert customers_now(db)[cid] == "自己的"


# ============================================================================================
# menus and the configuration pages behind them
# ============================================================================================
CONFIG_PAGES = {"/departments/list/": {"admin", "manager", "staff", "auditor"},
                "/pools/list/": {"admin", "manager", "staff", "auditor"},
                "/policies/list/": {"admin", "manager", "auditor"},
                "/audit/list/": {"admin", "auditor"}}
CUSTOMER_MENUS = ("/customers/list/", "/customers/export.csv", "/contacts/list/",
                  "/ownership-events/list/")


def test_rep_home_menu_has_customers_but_no_configuration(login_as):
    resp = login_as("rep").get("/")
    assert resp.status_code == 200
    hrefs = navbar_hrefs(resp.get_data(as_text=True))
    assert set(CUSTOMER_MENUS) <= hrefs
    for page in ("/departments/list/", "/audit/list/", "/pools/list/", "/policies/list/",
                 "/users/list/", "/roles/list/"):
        assert page not in hrefs


def test_admin_home_menu_has_everything(login_as):
    resp = login_as("admin").get("/")
    assert resp.status_code == 200
    hrefs = navbar_hrefs(resp.get_data(as_text=True))
    assert set(CUSTOMER_MENUS) | set(CONFIG_PAGES) | {"/users/list/", "/roles/list/"} <= hrefs


@pytest.mark.parametrize("role", ROLES)
def test_menu_entries_match_the_pages_the_role_may_open(role, login_as):
    client = login_as(role)
    hrefs = navbar_hrefs(client.get("/").get_data(as_text=True))
    if role == "marketing":  # customers and contacts to read; no export, no ownership history
        assert {"/customers/list/", "/contacts/list/", "/segments/list/", "/tags/list/"} <= hrefs
        assert not {"/customers/export.csv", "/ownership-events/list/"} & hrefs
    else:
        assert set(CUSTOMER_MENUS) <= hrefs
        assert ("/segments/list/" in hrefs) == (role == "admin")
    for page, allowed in CONFIG_PAGES.items():
        assert (page in hrefs) == (role in allowed), (role, page)
        assert client.get(page).status_code == (200 if role in allowed else 403), (role, page)
    assert ("/users/list/" in hrefs) == (role == "admin")


@pytest.mark.parametrize("role,visible,mine", [("admin", 4, 0), ("manager", 2, 0), ("rep", 1, 1),
                                               ("staff", 4, 0), ("auditor", 4, 0)])
def test_home_page_counts(role, visible, mine, login_as):
    html = login_as(role).get("/").get_data(as_text=True)
    assert re.search(r'id="stat-visible">(\d+)<', html).group(1) == str(visible)
    assert re.search(r'id="stat-mine">(\d+)<', html).group(1) == str(mine)


# ============================================================================================
# adding a customer through the form
# ============================================================================================
def add_form(csrf, name, **extra) -> dict:
    return {"csrf_token": csrf, "name": name, "customer_type": "company", **extra}


@pytest.mark.parametrize("role,expect_owner", [("rep", "rep"), ("manager", "manager"),
                                               ("staff", None), ("admin", None)])
def test_add_without_owner(role, expect_owner, login_as, k, db):
    client = login_as(role)
    name = f"{role} 新建的客户"
    resp = client.post("/customers/add", data=add_form(client.csrf, name, mobile="13700137000"))
    assert resp.status_code == 302
    ids = customer_ids_named(db, name)
    assert len(ids) == 1
    actor = getattr(k, role)
    if expect_owner:
        assert holder_of(db, ids[0]) == (getattr(k, expect_owner), None)
        assert events_of(db, ids[0]) == [("created", actor, None, actor)]
    else:
        assert holder_of(db, ids[0]) == (None, k.pool)
        assert events_of(db, ids[0]) == [("created", None, k.pool, actor)]


def test_rep_add_owned_by_rep_and_flash_names_the_owner(login_as, k, db):
    client = login_as("rep")
    resp = client.post("/customers/add", data=add_form(client.csrf, "宁波海天贸易有限公司"))
    assert resp.status_code == 302
    page = client.get(resp.headers["Location"]).get_data(as_text=True)
    assert "记录已添加：宁波海天贸易有限公司（测试rep1）" in flashes(page)
    (cid,) = customer_ids_named(db, "宁波海天贸易有限公司")
    assert holder_of(db, cid) == (k.rep, None)


def test_staff_add_goes_to_the_default_pool(login_as, k, db):
    client = login_as("staff")
    resp = client.post("/customers/add", data=add_form(client.csrf, "后台录入客户"))
    assert resp.status_code == 302
    (cid,) = customer_ids_named(db, "后台录入客户")
    assert holder_of(db, cid) == (None, k.pool)


def test_manager_may_pick_an_owner_in_scope(login_as, k, db):
    client = login_as("manager")
    resp = client.post("/customers/add", data=add_form(client.csrf, "分配给rep2", owner=str(k.rep2)))
    assert resp.status_code == 302
    (cid,) = customer_ids_named(db, "分配给rep2")
    assert holder_of(db, cid) == (k.rep2, None)
    assert events_of(db, cid) == [("created", k.rep2, None, k.manager)]


def test_manager_picking_an_owner_outside_scope_is_refused(login_as, k, db):
    client = login_as("manager")
    before = customers_now(db)
    resp = client.post("/customers/add",
                       data=add_form(client.csrf, "越权分配", owner=str(k.rep_north)))
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "Not a valid choice" in html
    assert f'<option value="{k.rep_north}"' not in html  # rep3 is not even offered
    assert customers_now(db) == before


def test_rep_naming_another_owner_is_refused(login_as, k, db):
    client = login_as("rep")
    before = customers_now(db)
    resp = client.post("/customers/add", data=add_form(client.csrf, "伪造负责人", owner=str(k.rep2)))
    assert resp.status_code == 200
    assert "Not a valid choice" in resp.get_data(as_text=True)
    assert customers_now(db) == before


@pytest.mark.parametrize("role", sorted(WRITERS))
def test_add_with_a_bad_mobile_rerenders_the_form_with_the_error(role, login_as, db):
    client = login_as(role)
    before = customers_now(db)
    resp = client.post("/customers/add", data=add_form(client.csrf, "坏手机号客户", mobile="12345"))
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "无效的电话号码：12345" in html
    assert 'value="坏手机号客户"' in html  # the user's input is kept
    assert customers_now(db) == before


def test_add_with_a_landline_as_mobile_is_refused(login_as, db):
    client = login_as("rep")
    before = customers_now(db)
    resp = client.post("/customers/add", data=add_form(client.csrf, "座机当手机", mobile="021-62345678"))
    assert resp.status_code == 200
    assert "不是手机号码：021-62345678" in resp.get_data(as_text=True)
    assert customers_now(db) == before


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_auditor_cannot_add(method, login_as, db):
    client = login_as("auditor")
    before = customers_now(db)
    if method == "GET":
        resp = client.get("/customers/add")
    else:
        resp = client.post("/customers/add", data=add_form(client.csrf, "审计员新建"))
    assert resp.status_code == 403
    assert customers_now(db) == before


def test_anonymous_is_sent_to_login(app, db, k):
    client = app.test_client()
    before = customers_now(db)
    resp = client.get("/customers/list/")
    assert resp.status_code == 302
    assert "/login/" in resp.headers["Location"]
    resp = client.get(f"/customers/show/{k.ids['c_rep']}")
    assert resp.status_code == 302 and "/login/" in resp.headers["Location"]
    resp = client.get("/customers/export.csv")
    assert resp.status_code == 302 and "/login/" in resp.headers["Location"]
    assert customers_now(db) == before


# ============================================================================================
# tasks (待办): /tasks/ list, show, add, edit, and the done / cancel / reopen actions
# ============================================================================================
TASK_OWNERS = ("rep", "rep2", "rep_north", "staff")
TASKS_READ = {"admin": set(TASK_OWNERS), "auditor": set(TASK_OWNERS),
              "manager": {"rep", "rep2"}, "rep": {"rep"}, "staff": {"staff"},
              "marketing": set()}  # no task permission at all
TASKS_WRITE = dict(TASKS_READ, auditor=set())


@pytest.fixture
def owned_tasks(org):
    """One open task owned by each of rep, rep2, rep_north and staff: {owner key: id}."""
    from app.services import tasks

    return {name: tasks.create(org.admin, {"subject": f"待办-{name}", "due_at": "2026-12-01 15:00",
                                           "owner_id": getattr(org, name).id}).id
            for name in TASK_OWNERS}


def task_statuses(db) -> dict[int, str]:
    from app.models import Task

    db.session.commit()
    return dict(db.session.execute(select(Task.id, Task.status)).all())


@pytest.mark.parametrize("role", ROLES)
def test_task_list_and_show_follow_the_task_scope(role, login_as, owned_tasks):
    client = login_as(role)
    resp = client.get("/tasks/list/")
    if role == "marketing":
        assert resp.status_code == 403
        assert {client.get(f"/tasks/show/{t}").status_code for t in owned_tasks.values()} \
            == {403}
        return
    assert resp.status_code == 200
    assert linked_ids(resp.get_data(as_text=True), "tasks") == {
        owned_tasks[n] for n in TASKS_READ[role]}
    for name, task_id in owned_tasks.items():
        expected = 200 if name in TASKS_READ[role] else 404
        assert client.get(f"/tasks/show/{task_id}").status_code == expected, (role, name)
    assert "/tasks/list/" in navbar_hrefs(client.get("/").get_data(as_text=True))


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", TASK_OWNERS)
def test_task_done_action_post_rechecks_the_scope_per_row(role, target, login_as, owned_tasks,
                                                          db):
    client = login_as(role)
    before = task_statuses(db)
    resp = client.post("/tasks/action_post", data={
        "action": "done", "rowid": [str(owned_tasks[target])], "csrf_token": client.csrf})
    after = task_statuses(db)
    if role in ("auditor", "marketing"):
        # no write permission (marketing: no task permission at all): refused with a flash
        assert resp.status_code == 302 and after == before
        assert DENIED in flashes(client.get(resp.headers["Location"]).get_data(as_text=True))
    elif target in TASKS_WRITE[role]:
        assert resp.status_code == 302
        assert after == {**before, owned_tasks[target]: "done"}
    else:
        assert resp.status_code == 404 and after == before


@pytest.mark.parametrize("role", ["rep", "manager"])
def test_a_forged_bulk_action_with_one_foreign_row_changes_nothing(role, login_as, owned_tasks,
                                                                   db):
    client = login_as(role)
    before = task_statuses(db)
    resp = client.post("/tasks/action_post", data={
        "action": "cancel", "rowid": [str(owned_tasks["rep"]), str(owned_tasks["rep_north"])],
        "csrf_token": client.csrf})
    assert resp.status_code == 404
    assert task_statuses(db) == before


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("verb", ["done", "cancel"])
def test_task_single_row_action_rechecks_the_scope(role, verb, login_as, owned_tasks, db):
    client = login_as(role)
    target = owned_tasks["rep2"]
    before = task_statuses(db)
    resp = client.post(f"/tasks/action/{verb}/{target}", data={"csrf_token": client.csrf})
    after = task_statuses(db)
    if "rep2" in TASKS_WRITE[role]:
        assert resp.status_code == 302
        assert after[target] == ("done" if verb == "done" else "cancelled")
    else:
        assert resp.status_code in (302, 404) and after == before
        if role in ("auditor", "marketing"):
            assert resp.status_code == 302
        else:
            assert resp.status_code == 404


def test_task_reopen_action_and_a_closed_task_left_alone(login_as, owned_tasks, db):
    client = login_as("rep")
    mine = owned_tasks["rep"]
    client.post(f"/tasks/action/done/{mine}", data={"csrf_token": client.csrf})
    resp = client.post(f"/tasks/action/done/{mine}", data={"csrf_token": client.csrf},
                       follow_redirects=True)
    assert "（1 条状态不符，未处理）" in resp.get_data(as_text=True)
    client.post(f"/tasks/action/reopen/{mine}", data={"csrf_token": client.csrf})
    assert task_statuses(db)[mine] == "open"


@pytest.mark.parametrize("role", ROLES)
def test_task_add_form_goes_through_the_service(role, login_as, k, db):
    from app.models import AuditLog, Task

    client = login_as(role)
    page = client.get(f"/tasks/add?customer_id={k.ids['c_rep']}")
    if role in ("auditor", "marketing"):
        assert page.status_code == 403
        assert client.post("/tasks/add", data={"csrf_token": client.csrf, "subject": "x",
                                               "due_at": "2026-12-01 15:00"}).status_code == 403
        return
    assert page.status_code == 200
    resp = client.post("/tasks/add", data={
        "csrf_token": client.csrf, "subject": f"电话回访-{role}", "due_at": "2026-12-01 15:00",
        "customer_id": str(k.ids["c_rep"]), "owner": "__None", "notes": ""})
    db.session.commit()
    made = db.session.execute(select(Task).where(Task.subject == f"电话回访-{role}")).scalar()
    if role in ("admin", "manager", "rep", "staff"):
        assert resp.status_code == 302, resp.get_data(as_text=True)[:2000]
        assert (made.owner_id, made.record_id, made.due_at) == (
            getattr(k, role), k.ids["c_rep"], dt.datetime(2026, 12, 1, 7, 0))
        assert db.session.execute(select(AuditLog.id).where(
            AuditLog.object_type == "task", AuditLog.object_id == made.id)).first()


def test_task_add_form_shows_field_refusals(login_as, k, db):
    from app.models import Task

    client = login_as("rep")
    resp = client.post("/tasks/add", data={
        "csrf_token": client.csrf, "subject": "", "due_at": "明天",
        "customer_id": str(k.ids["c_rep2"]), "owner": "__None"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    assert "请填写待办事项" in html and "时间格式应为 YYYY-MM-DD HH:MM" in html
    resp = client.post("/tasks/add", data={
        "csrf_token": client.csrf, "subject": "别人的客户", "due_at": "2026-12-01",
        "customer_id": str(k.ids["c_rep2"]), "owner": "__None"})
    assert resp.status_code == 200
    assert "客户不存在或不在您的数据权限内" in resp.get_data(as_text=True)
    db.session.commit()
    assert db.session.execute(select(Task.id)).first() is None


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("target", ["rep", "rep_north"])
def test_task_edit_follows_the_write_scope(role, target, login_as, owned_tasks, db):
    from app.models import Task

    client = login_as(role)
    task_id = owned_tasks[target]
    page = client.get(f"/tasks/edit/{task_id}")
    if role in ("auditor", "marketing"):
        expected = 403
    elif target in TASKS_WRITE[role]:
        expected = 200
    else:
        expected = 404
    assert page.status_code == expected
    resp = client.post(f"/tasks/edit/{task_id}", data={
        "csrf_token": client.csrf, "subject": "改过的主题", "due_at": "2026-12-05 10:00",
        "owner": "__None", "notes": ""})
    db.session.commit()
    subject = db.session.get(Task, task_id).subject
    if expected == 200:
        assert resp.status_code == 302
        assert subject == "改过的主题"
    else:
        assert resp.status_code == expected and subject == f"待办-{target}"


@pytest.mark.parametrize("role", ROLES)
def test_tasks_are_never_deleted(role, login_as, owned_tasks, db):
    client = login_as(role)
    resp = client.post(f"/tasks/delete/{owned_tasks['rep']}", data={"csrf_token": client.csrf})
    assert resp.status_code in (403, 404) or resp.status_code == 302
    assert owned_tasks["rep"] in task_statuses(db)


def test_workbench_and_customer_page_show_the_tasks(login_as, k, owned_tasks, db):
    from app.services import tasks
    from app.models import User

    db.session.commit()
    rep = db.session.get(User, k.rep)
    tasks.create(rep, {"subject": "带合同上门", "due_at": "2099-01-01 10:00",
                       "record_type": "customer", "record_id": k.ids["c_rep"]})
    client = login_as("rep")
    html = client.get("/workbench/").get_data(as_text=True)
    assert 'id="my-tasks"' in html and "待办-rep" in html  # 2026-12-01: overdue or later
    page = client.get(f"/customers/show/{k.ids['c_rep']}").get_data(as_text=True)
    assert 'id="tab-tasks"' in page and "带合同上门" in page and 'id="task-add"' in page
    auditor_page = login_as("auditor").get(f"/customers/show/{k.ids['c_rep']}")
    html = auditor_page.get_data(as_text=True)
    assert "带合同上门" in html and 'id="task-add"' not in html


# --- leads (线索) and the lead pool: role x route, and did the database change -----------------
# (behaviour in tests/test_views_leads.py; here every lead route per role.)
def _lead_state(db):
    from app.models import Lead, LeadEvent, LeadFollowUp, LeadOwnership

    db.session.commit()
    db.session.expire_all()
    return (tuple(db.session.execute(select(Lead.id, Lead.status, Lead.person_name)
                                     .order_by(Lead.id)).all()),
            tuple(db.session.execute(select(LeadOwnership.lead_id, LeadOwnership.owner_id,
                                            LeadOwnership.pool_id)
                                     .order_by(LeadOwnership.lead_id)).all()),
            db.session.execute(select(LeadEvent.id)).all().__len__(),
            db.session.execute(select(LeadFollowUp.id)).all().__len__())


@pytest.fixture
def lead_ids(db, org):
    from app.models import PoolMember
    from app.services import leads

    db.session.add(PoolMember(pool_id=leads.default_lead_pool().id,
                              department_id=org.centre.id))
    db.session.commit()
    return SimpleNamespace(
        mine=leads.create_lead(org.rep, {"person_name": "矩阵线索"}).id,
        north=leads.create_lead(org.rep_north, {"person_name": "矩阵华北"}).id,
        pooled=leads.create_lead(org.staff, {"company_name": "矩阵公海公司"}).id,
        rep2=org.rep2.id)


# (method, path template, form) -> {role: status}; "changes" roles write to the database.
# Marketing reads every lead and lead pool, has no lead form (add, edit, follow-up, invalid:
# 403 by the permissions since the marketing role's merge), and has no release, assign or
# convert on the lead pages (it hands out pool leads from the lead pool page).
LEAD_ROUTES = [
    ("GET", "/leads/list/", None, dict.fromkeys(ROLES, 200), set()),
    ("GET", "/lead-pool/list/", None, dict.fromkeys(ROLES, 200), set()),
    ("GET", "/leads/add", None, dict(dict.fromkeys(ROLES, 200), auditor=403, marketing=403), set()),
    ("GET", "/leads/show/{mine}", None,
     dict(admin=200, manager=200, rep=200, staff=200, auditor=200, marketing=200), set()),
    ("GET", "/leads/show/{north}", None,
     dict(admin=200, manager=404, rep=404, staff=200, auditor=200, marketing=200), set()),
    ("GET", "/lead-pool/show/{pooled}", None, dict.fromkeys(ROLES, 200), set()),
    ("GET", "/leads/edit/{mine}", None,
     dict(admin=200, manager=200, rep=200, staff=200, auditor=403, marketing=403), set()),
    # marketing reads leads and hands out pool leads; it writes none (no lead form)
    ("POST", "/leads/edit/{north}", {"person_name": "改名"},
     dict(admin=302, manager=404, rep=404, staff=302, auditor=403, marketing=403), {"admin", "staff"}),
    ("POST", "/leads/followup/{north}", {"channel": "call", "content": "矩阵"},
     dict(admin=302, manager=404, rep=404, staff=302, auditor=403, marketing=403), {"admin", "staff"}),
    ("POST", "/leads/invalid/{north}", {"reason": "矩阵"},
     dict(admin=302, manager=404, rep=404, staff=302, auditor=403, marketing=403), {"admin", "staff"}),
    ("POST", "/leads/release/{mine}", {"reason": "矩阵"},
     dict(admin=302, manager=302, rep=302, staff=403, auditor=403, marketing=403),
     {"admin", "manager", "rep"}),
    ("POST", "/leads/assign/{mine}", {"owner_id": "{rep2}"},
     dict(admin=302, manager=302, rep=403, staff=403, auditor=403, marketing=403), {"admin", "manager"}),
    ("POST", "/leads/convert/{north}", {},
     dict(admin=302, manager=404, rep=404, staff=302, auditor=403, marketing=403), {"admin", "staff"}),
    ("GET", "/leads/bulk/assign?ids={pooled}", None,
     dict(admin=200, manager=200, rep=403, staff=403, auditor=403, marketing=403), set()),
    ("POST", "/leads/action_post", {"action": "release", "rowid": "{north}"},
     dict(admin=302, manager=404, rep=404, staff=302, auditor=302, marketing=302), set()),
    ("POST", "/lead-pool/action_post", {"action": "claim", "rowid": "{pooled}"},
     dict(admin=302, manager=302, rep=302, staff=302, auditor=302, marketing=302),
     {"admin", "manager", "rep"}),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method, path, form, expected, changes", LEAD_ROUTES,
                         ids=[f"{m} {p}" for m, p, *_ in LEAD_ROUTES])
def test_lead_routes_by_role(login_as, db, lead_ids, role, method, path, form, expected,
                             changes):
    client = login_as(role)
    values = vars(lead_ids)
    url = path.format(**values)
    before = _lead_state(db)
    if method == "GET":
        resp = client.get(url)
    else:
        data = {k: v.format(**values) for k, v in form.items()}
        resp = client.post(url, data=dict(data, csrf_token=client.csrf))
    assert resp.status_code == expected[role], (role, url)
    assert (_lead_state(db) != before) == (role in changes), (role, url)


# ============================================================================================
# absences (every role, its own and its scope) and API keys (admins only)
# ============================================================================================
NEW_PAGES = {"/absences/list/": set(ROLES), "/absences/add": set(ROLES),
             "/api-keys/list/": {"admin"}, "/api-keys/add": {"admin"}}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", sorted(NEW_PAGES))
def test_absence_and_api_key_pages_by_role(role, page, login_as):
    resp = login_as(role).get(page)
    assert resp.status_code == (200 if role in NEW_PAGES[page] else 403), (role, page)


@pytest.fixture
def machine_key(org, db):
    from app.services import api_keys

    made, _raw = api_keys.create_key(org.admin, "矩阵测试", "sms_inbound")
    return made.id


def _key_state(db, key_id):
    from app.models import ApiKey

    db.session.commit()
    db.session.expire_all()
    key = db.session.get(ApiKey, key_id)
    return key.secret_hash, key.revoked_at


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("verb", ["rotate", "revoke"])
def test_api_key_actions_are_admin_only(role, verb, login_as, db, machine_key):
    client = login_as(role)
    before = _key_state(db, machine_key)
    resp = client.post(f"/api-keys/action/{verb}/{machine_key}",
                       data={"csrf_token": client.csrf})
    after = _key_state(db, machine_key)
    if role == "admin":
        assert after != before
        assert resp.status_code == (200 if verb == "rotate" else 302)
    else:
        assert after == before
        assert resp.status_code == 302
        assert DENIED in flashes(client.get(resp.headers["Location"]).get_data(as_text=True))


@pytest.mark.parametrize("role", ROLES)
def test_api_key_creation_is_admin_only(role, login_as, db):
    from app.models import ApiKey

    client = login_as(role)
    resp = client.post("/api-keys/add", data={"csrf_token": client.csrf, "name": f"{role}键",
                                              "purpose": "sms_inbound"})
    db.session.commit()
    made = db.session.execute(select(ApiKey).where(ApiKey.name == f"{role}键")).scalars().all()
    if role == "admin":
        assert resp.status_code == 200 and len(made) == 1
    else:
        assert resp.status_code == 403 and made == []


# ============================================================================================
# sales targets (业绩目标): /targets/ list, show, add, edit, delete, attainment
# ============================================================================================
TARGET_HOLDERS = ("rep", "rep2", "rep_north", "manager", "east", "north")
TARGETS_READ = {"admin": set(TARGET_HOLDERS), "auditor": set(TARGET_HOLDERS),
                "manager": {"rep", "rep2", "manager", "east"}, "rep": {"rep"}, "staff": set(),
                "marketing": set()}
# A manager sets his tree's users' targets, not his own nor his own department's.
TARGETS_WRITE = {"admin": set(TARGET_HOLDERS), "manager": {"rep", "rep2"}, "rep": set(),
                 "staff": set(), "auditor": set(), "marketing": set()}


@pytest.fixture
def held_targets(org):
    """One October 2026 target for each holder: {holder key: id}."""
    from app.services import targets

    out = {}
    for name in TARGET_HOLDERS:
        holder = getattr(org, name)
        key = "department_id" if name in ("east", "north") else "user_id"
        out[name] = targets.create_target(org.admin, {
            key: holder.id, "period_kind": "month", "period_start": "2026-10",
            "won_amount": "1000"}).id
    return out


def target_amounts(db) -> dict[int, str]:
    from app.models import SalesTarget

    db.session.commit()
    return {pk: str(v) for pk, v in db.session.execute(
        select(SalesTarget.id, SalesTarget.won_amount)).all()}


@pytest.mark.parametrize("role", ROLES)
def test_target_list_and_show_follow_the_target_scope(role, login_as, held_targets):
    client = login_as(role)
    resp = client.get("/targets/list/")
    if role in ("staff", "marketing"):
        assert resp.status_code == 403
        assert client.get(f"/targets/show/{held_targets['rep']}").status_code == 403
        assert client.get("/targets/attainment").status_code == 403
        navbar = navbar_hrefs(client.get("/").get_data(as_text=True))
        assert not {"/targets/list/", "/targets/attainment"} & navbar
        return
    assert resp.status_code == 200
    assert linked_ids(resp.get_data(as_text=True), "targets") == {
        held_targets[n] for n in TARGETS_READ[role]}
    for name, pk in held_targets.items():
        expected = 200 if name in TARGETS_READ[role] else 404
        assert client.get(f"/targets/show/{pk}").status_code == expected, (role, name)
    assert client.get("/targets/attainment?period=month&start=2026-10").status_code == 200
    navbar = navbar_hrefs(client.get("/").get_data(as_text=True))
    assert {"/targets/list/", "/targets/attainment"} <= navbar


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("holder", TARGET_HOLDERS)
def test_target_edit_rechecks_who_may_set_it(role, holder, login_as, held_targets, db):
    client = login_as(role)
    pk = held_targets[holder]
    before = target_amounts(db)
    resp = client.post(f"/targets/edit/{pk}", data={"won_amount": "2000", "new_customers": "",
                                                    "csrf_token": client.csrf})
    after = target_amounts(db)
    if role in ("rep", "staff", "auditor", "marketing"):
        assert resp.status_code == 403 and after == before
    elif holder in TARGETS_WRITE[role]:
        assert resp.status_code == 302 and after == {**before, pk: "2000.00"}
    else:
        assert resp.status_code == 404 and after == before


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("holder", ("rep", "manager", "rep_north"))
def test_target_delete_rechecks_who_may_set_it(role, holder, login_as, held_targets, db):
    client = login_as(role)
    pk = held_targets[holder]
    before = target_amounts(db)
    resp = client.post(f"/targets/delete/{pk}", data={"csrf_token": client.csrf})
    after = target_amounts(db)
    if role in ("rep", "staff", "auditor", "marketing"):
        assert resp.status_code == 403 and after == before
    elif holder in TARGETS_WRITE[role]:
        assert resp.status_code == 302 and pk not in after
    else:
        assert resp.status_code == 404 and after == before


@pytest.mark.parametrize("role", ROLES)
def test_target_add_page_and_post_per_role(role, login_as, k, db):
    client = login_as(role)
    before = target_amounts(db)
    page = client.get("/targets/add")
    resp = client.post("/targets/add", data={
        "user": str(k.rep2), "period_kind": "month", "period_start": "2026-11",
        "won_amount": "3000", "new_customers": "2", "csrf_token": client.csrf})
    after = target_amounts(db)
    if role in ("rep", "staff", "auditor", "marketing"):
        assert (page.status_code, resp.status_code) == (403, 403) and after == before
    else:
        assert page.status_code == 200 and resp.status_code == 302
        assert len(after) == len(before) + 1 and "3000.00" in after.values()


def test_a_forged_target_delete_without_csrf_changes_nothing(login_as, held_targets, db):
    client = login_as("admin")
    before = target_amounts(db)
    client.post(f"/targets/delete/{held_targets['rep']}", data={})
    assert target_amounts(db) == before


# ============================================================================================
# opportunities (商机): every page and POST per role, and did the database change
# (behaviour in tests/test_views_opportunities.py)
# ============================================================================================
def _opportunity_state(db):
    from app.models import Opportunity, OpportunityStage, OpportunityStageChange

    db.session.commit()
    db.session.expire_all()
    return (tuple(db.session.execute(select(Opportunity.id, Opportunity.title,
                                            Opportunity.amount, Opportunity.stage_id)
                                     .order_by(Opportunity.id)).all()),
            len(db.session.execute(select(OpportunityStageChange.id)).all()),
            tuple(db.session.execute(select(OpportunityStage.id, OpportunityStage.name,
                                            OpportunityStage.probability)
                                     .order_by(OpportunityStage.id)).all()))


@pytest.fixture
def opp_ids(db, org):
    from app.services import opportunities

    stages = {s.name: s.id for s in opportunities.stages()}
    return SimpleNamespace(
        mine=opportunities.create(org.rep, {"customer_id": org.c_rep.id, "title": "矩阵商机",
                                            "amount": "1000"}).id,
        north=opportunities.create(org.rep_north, {"customer_id": org.c_north.id,
                                                   "title": "矩阵华北", "amount": "2000"}).id,
        c_rep=org.c_rep.id, c_north=org.c_north.id, rep=org.rep.id, rep2=org.rep2.id,
        rep_north=org.rep_north.id, s2=stages["需求确认"], lost=stages["输单"],
        s1=stages["初步接洽"])


ALL_200 = dict.fromkeys(ROLES, 200)
OPPORTUNITY_ROUTES = [
    ("GET", "/opportunities/list/", None, ALL_200, set()),
    ("GET", "/opportunities/kanban", None, ALL_200, set()),
    ("GET", "/opportunities/kanban?team=1", None, ALL_200, set()),
    ("GET", "/opportunities/kanban?owner_id={rep2}", None,
     dict(admin=200, manager=200, rep=404, staff=200, auditor=200), set()),
    ("GET", "/opportunities/kanban?owner_id={rep_north}", None,
     dict(admin=200, manager=404, rep=404, staff=200, auditor=200), set()),
    ("GET", "/opportunities/add?customer_id={c_rep}", None,
     dict(ALL_200, auditor=403), set()),
    ("POST", "/opportunities/add", {"customer_id": "{c_north}", "title": "新矩阵",
                                    "amount": "10"},
     dict(admin=302, manager=200, rep=200, staff=302, auditor=403), {"admin", "staff"}),
    ("GET", "/opportunities/show/{mine}", None, ALL_200, set()),
    ("GET", "/opportunities/show/{north}", None,
     dict(admin=200, manager=404, rep=404, staff=200, auditor=200), set()),
    ("GET", "/opportunities/edit/{mine}", None, dict(ALL_200, auditor=403), set()),
    ("POST", "/opportunities/edit/{north}", {"title": "改名", "amount": "5"},
     dict(admin=302, manager=404, rep=404, staff=302, auditor=403), {"admin", "staff"}),
    ("POST", "/opportunities/stage/{north}", {"stage_id": "{s2}"},
     dict(admin=302, manager=302, rep=302, staff=302, auditor=403), {"admin", "staff"}),
    ("POST", "/opportunities/stage/{mine}", {"stage_id": "{lost}", "loss_reason": "矩阵"},
     dict(admin=302, manager=302, rep=302, staff=302, auditor=403),
     {"admin", "manager", "rep", "staff"}),
    ("POST", "/opportunities/delete/{mine}", {},
     dict.fromkeys(ROLES, 403), set()),  # lost with a reason, never deleted
    ("GET", "/opportunity-stages/list/", None,
     dict(admin=200, manager=403, rep=403, staff=403, auditor=403), set()),
    ("POST", "/opportunity-stages/add", {"name": "矩阵阶段", "probability": "50",
                                         "position": "25"},
     dict(admin=302, manager=403, rep=403, staff=403, auditor=403), {"admin"}),
    ("POST", "/opportunity-stages/edit/{s1}", {"name": "初步接洽", "probability": "15",
                                               "position": "10"},
     dict(admin=302, manager=403, rep=403, staff=403, auditor=403), {"admin"}),
]
# Marketing has no opportunity permission: every page and POST is 403.
OPPORTUNITY_ROUTES = [(m, p, f, dict(e, marketing=403), c)
                      for m, p, f, e, c in OPPORTUNITY_ROUTES]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("method, path, form, expected, changes", OPPORTUNITY_ROUTES,
                         ids=[f"{m} {p}" for m, p, *_ in OPPORTUNITY_ROUTES])
def test_opportunity_routes_by_role(login_as, db, opp_ids, role, method, path, form,
                                    expected, changes):
    client = login_as(role)
    values = vars(opp_ids)
    url = path.format(**values)
    before = _opportunity_state(db)
    if method == "GET":
        resp = client.get(url)
    else:
        data = {k: v.format(**values) for k, v in form.items()}
        resp = client.post(url, data=dict(data, csrf_token=client.csrf))
    assert resp.status_code == expected[role], (role, url)
    assert (_opportunity_state(db) != before) == (role in changes), (role, url)


# ============================================================================================
# lead capture forms: the admins' page (admins only) and the public page (everyone, no login)
# ============================================================================================
@pytest.fixture
def capture_form(org, db):
    from app.services import lead_capture, leads

    made = lead_capture.create_form(org.admin, {
        "name": "矩阵表单", "channel": "web_form", "pool_id": leads.default_lead_pool().id,
        "policy_text": "隐私政策", "policy_version": "1"})
    return SimpleNamespace(id=made.id, token=made.token)


CAPTURE_PAGES = ("/capture-forms/list/", "/capture-forms/add", "/capture-forms/show/{id}",
                 "/capture-forms/edit/{id}")


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("page", CAPTURE_PAGES)
def test_capture_form_pages_are_admin_only(role, page, login_as, capture_form):
    resp = login_as(role).get(page.format(id=capture_form.id))
    assert resp.status_code == (200 if role == "admin" else 403), (role, page)


@pytest.mark.parametrize("role", ROLES)
def test_capture_form_writes_are_admin_only(role, login_as, db, capture_form):
    from app.models import CaptureForm

    client = login_as(role)
    db.session.commit()
    before = db.session.get(CaptureForm, capture_form.id).token
    resp = client.post(f"/capture-forms/action/rotate/{capture_form.id}",
                       data={"csrf_token": client.csrf})
    if role != "admin":
        assert resp.status_code == 302
        assert DENIED in flashes(client.get(resp.headers["Location"]).get_data(as_text=True))
    resp_add = client.post("/capture-forms/add", data={
        "csrf_token": client.csrf, "name": f"{role}表单", "channel": "web_form",
        "pool_id": "1", "policy_text": "t", "policy_version": "1"})
    db.session.commit()
    db.session.expire_all()
    after = db.session.get(CaptureForm, capture_form.id).token
    made = db.session.execute(select(CaptureForm).where(
        CaptureForm.name == f"{role}表单")).scalars().all()
    if role == "admin":
        assert after != before and resp.status_code == 302
    else:
        assert after == before and made == []
        assert resp_add.status_code == 403


@pytest.mark.parametrize("role", ROLES + ("anonymous",))
def test_the_public_capture_page_needs_no_login(role, app, login_as, capture_form):
    client = app.test_client() if role == "anonymous" else login_as(role)
    assert client.get(f"/forms/{capture_form.token}").status_code == 200
    assert client.get("/forms/" + "z" * 32).status_code == 404


# ============================================================================================
# 待回收预警 /due-soon/: rep own, manager its team, admin all; staff and auditor no page
# ============================================================================================
DUE_SOON_OWNERS = {"admin": {"rep", "rep2", "rep_north"}, "manager": {"rep", "rep2"},
                   "rep": {"rep"}}


@pytest.fixture
def due_in_three_days(db, org):
    """Every owned customer 27 days without a follow-up: the 30-day sweep takes them in 3."""
    from app.models import Ownership
    from app.models.customer import utcnow

    db.session.execute(update(Ownership).where(Ownership.owner_id.is_not(None)).values(
        acquired_at=utcnow() - dt.timedelta(days=27), last_followup_at=None))
    db.session.commit()


@pytest.mark.parametrize("role", ROLES)
def test_due_soon_page_by_role_shows_exactly_the_scope(role, login_as, k, db,
                                                       due_in_three_days):
    resp = login_as(role).get("/due-soon/?days=7")
    if role not in DUE_SOON_OWNERS:
        assert resp.status_code == 403
        return
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200
    shown = set(re.findall(r'data-owner="(\d+)"', html))
    assert shown == {str(getattr(k, who)) for who in DUE_SOON_OWNERS[role]}
    # Nothing changed hands: a dry run.
    assert holder_of(db, k.ids["c_rep"])[0] == k.rep


@pytest.mark.parametrize("role,owner,status", [
    ("rep", "rep", 200), ("rep", "rep2", 404), ("manager", "rep2", 200),
    ("manager", "rep_north", 404), ("admin", "rep_north", 200)])
def test_due_soon_rows_of_one_owner_are_scoped(role, owner, status, login_as, k,
                                               due_in_three_days):
    resp = login_as(role).get(f"/due-soon/?days=7&owner_id={getattr(k, owner)}")
    assert resp.status_code == status
    if status == 200:
        customer = {"rep": "c_rep", "rep2": "c_rep2", "rep_north": "c_north"}[owner]
        assert f'data-customer="{k.ids[customer]}"' in resp.get_data(as_text=True)


@pytest.mark.parametrize("query", ["days=0", "days=91", "days=x", "days=99999999999",
                                   "owner_id=2147483648", "after=-1"])
def test_due_soon_bad_input_is_400_naming_the_field(query, login_as):
    resp = login_as("manager").get(f"/due-soon/?{query}")
    assert resp.status_code == 400
    assert query.split("=")[0] in resp.get_data(as_text=True)


# ============================================================================================
# 市场活动 /campaigns: every page and POST per role (marketing included), and did the database
# change (behaviour in tests/test_views_campaigns.py)
# ============================================================================================
CAMPAIGN_ROLES = ROLES  # marketing among them
CAMPAIGN_WRITERS = {"admin", "marketing"}


def _campaign_state(db):
    from app.models.marketing import Campaign, CampaignMember

    db.session.commit()
    db.session.expire_all()
    return (tuple(db.session.execute(select(Campaign.id, Campaign.name, Campaign.status,
                                            Campaign.budget).order_by(Campaign.id)).all()),
            tuple(db.session.execute(select(CampaignMember.id, CampaignMember.customer_id)
                                     .order_by(CampaignMember.id)).all()))


@pytest.fixture
def campaign_ids(db, org, monkeypatch):
    from app.services import campaigns

    monkeypatch.setattr(campaigns, "_queue_pending", lambda campaign: 0)  # the outbox is not ours
    planned = campaigns.create(org.marketing, {"name": "矩阵活动", "kind": "email"})
    campaigns.add_members(planned.id, org.marketing, customer_ids=[org.c_rep.id])
    running = campaigns.create(org.marketing, {"name": "矩阵进行中", "kind": "sms"})
    campaigns.add_members(running.id, org.marketing, customer_ids=[org.c_north.id])
    campaigns.launch(running.id, org.marketing)
    from app.models.marketing import CampaignMember

    member = db.session.execute(select(CampaignMember.id).where(
        CampaignMember.campaign_id == planned.id)).scalar_one()
    return SimpleNamespace(planned=planned.id, running=running.id, member=member,
                           c_pool=org.c_pool.id, owner=org.marketing.id)


_W = dict.fromkeys(CAMPAIGN_ROLES, 403)
_W.update(admin=302, marketing=302)
CAMPAIGN_ROUTES = [
    ("GET", "/campaigns/list/", None, dict.fromkeys(CAMPAIGN_ROLES, 200), set()),
    ("GET", "/campaigns/{planned}", None, dict.fromkeys(CAMPAIGN_ROLES, 200), set()),
    ("GET", "/campaigns/show/{planned}", None, dict.fromkeys(CAMPAIGN_ROLES, 302), set()),
    ("GET", "/campaigns/add", None, dict(_W, admin=200, marketing=200), set()),
    ("POST", "/campaigns/add", {"name": "矩阵新活动", "kind": "seminar"}, _W,
     CAMPAIGN_WRITERS),
    ("GET", "/campaigns/edit/{planned}", None, dict(_W, admin=200, marketing=200), set()),
    ("POST", "/campaigns/edit/{planned}", {"name": "矩阵活动", "kind": "email",
                                           "budget": "99", "owner": "{owner}"}, _W,
     CAMPAIGN_WRITERS),
    ("POST", "/campaigns/{planned}/members", {"customer_ids": "{c_pool}"}, _W,
     CAMPAIGN_WRITERS),
    ("POST", "/campaigns/{planned}/members/{member}/remove", {}, _W, CAMPAIGN_WRITERS),
    ("POST", "/campaigns/{planned}/launch", {}, _W, CAMPAIGN_WRITERS),
    ("POST", "/campaigns/{running}/finish", {}, _W, CAMPAIGN_WRITERS),
    ("POST", "/campaigns/delete/{planned}", {}, _W, CAMPAIGN_WRITERS),
    ("POST", "/campaigns/delete/{running}", {}, _W, set()),  # launched: refused
]


@pytest.mark.parametrize("role", CAMPAIGN_ROLES)
@pytest.mark.parametrize("method, path, form, expected, changes", CAMPAIGN_ROUTES,
                         ids=[f"{m} {p}" for m, p, *_ in CAMPAIGN_ROUTES])
def test_campaign_routes_by_role(app, org, db, campaign_ids, role, method, path, form,
                                 expected, changes):
    client = login(app.test_client(), getattr(org, role).username)
    values = vars(campaign_ids)
    url = path.format(**values)
    before = _campaign_state(db)
    if method == "GET":
        resp = client.get(url)
    else:
        data = {k: v.format(**values) for k, v in form.items()}
        resp = client.post(url, data=dict(data, csrf_token=client.csrf))
    assert resp.status_code == expected[role], (role, url)
    assert (_campaign_state(db) != before) == (role in changes), (role, url)


# ============================================================================================
# the rest of 市场: every page per role (the writes and their scopes: tests/test_views_marketing.py,
# test_services_campaign_sending.py, test_campaign_responses.py, test_surveys.py)
# ============================================================================================
def _only(*roles: str) -> dict:
    return {r: (200 if r in roles else 403) for r in ROLES}


MARKETING_PAGES = [
    ("/segments/list/", _only("admin", "marketing")),
    ("/tags/list/", _only(*ROLES)),  # everyone reads the tag list; admins and marketing keep it
    ("/campaigns/{planned}/messages", _only("admin", "marketing")),
    ("/marketing/optouts/", _only("admin", "marketing", "staff")),
    ("/marketing/settings/list/", _only("admin", "marketing")),  # marketing reads, admins edit
    ("/campaign-effect/", _only("admin", "marketing", "manager", "auditor")),
    ("/campaign-effect/export.csv", _only("admin", "marketing", "manager", "auditor")),
    ("/campaign-responses/{planned}", _only("admin", "marketing")),
    ("/campaign-responses/mine", _only("admin", "marketing", "manager", "rep")),
    ("/surveys/list/", _only("admin", "marketing", "manager", "auditor")),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("path, expected", MARKETING_PAGES, ids=[p for p, _ in MARKETING_PAGES])
def test_marketing_pages_by_role(login_as, campaign_ids, role, path, expected):
    resp = login_as(role).get(path.format(**vars(campaign_ids)))
    assert resp.status_code == expected[role], (role, path)


# ============================================================================================
# 客户服务 (issue 17, H3): the ticket pages, the desk's configuration, the dedicated agent —
# every role including the service agent and the service manager, and did the database change
# ============================================================================================
DESK_ROLES = ROLES + ("agent", "service_manager")


def _desk_state(db):
    from app.models.service_desk import (CustomerServiceAgent, ServiceSettings, ServiceTeam,
                                         Ticket, TicketAttachment, TicketCategory,
                                         TicketMessage, TicketRoutingRule)

    db.session.commit()
    db.session.expire_all()
    return (tuple(db.session.execute(select(Ticket.id, Ticket.status, Ticket.agent_id,
                                            Ticket.team_id, Ticket.subject)
                                     .order_by(Ticket.id)).all()),
            len(db.session.execute(select(TicketMessage.id)).all()),
            len(db.session.execute(select(TicketAttachment.id)).all()),
            tuple(db.session.execute(select(TicketCategory.name).order_by(
                TicketCategory.id)).scalars()),
            tuple(db.session.execute(select(ServiceTeam.name).order_by(
                ServiceTeam.id)).scalars()),
            len(db.session.execute(select(TicketRoutingRule.id)).all()),
            tuple(db.session.execute(select(ServiceSettings.low_score_threshold)).scalars()),
            tuple(db.session.execute(select(CustomerServiceAgent.customer_id,
                                            CustomerServiceAgent.agent_id)).all()))


@pytest.fixture
def desk_ids(db, org):
    from app.services import service_admin, tickets

    team = service_admin.create_team(org.admin, {
        "name": "矩阵一线", "member_ids": [org.agent.id, org.agent2.id],
        "manager_id": org.service_manager.id})
    service_admin.update_settings(org.admin, {"default_team_id": team.id})
    ticket = {"channel": "phone", "subject": "矩阵工单", "priority": "P3"}
    t_rep = tickets.create(org.staff, dict(ticket, customer_id=org.c_rep.id))
    t_north = tickets.create(org.staff, dict(ticket, customer_id=org.c_north.id))
    assert (t_rep.agent_id, t_north.agent_id) == (org.agent.id, org.agent2.id)
    from app.services import ticket_storage

    file = ticket_storage.add(org.staff, t_rep.id, ("matrix.txt", b"matrix"))
    return SimpleNamespace(t_rep=t_rep.id, t_north=t_north.id, team=team.id, file=file.id,
                           settings=service_admin.settings().id, c_rep=org.c_rep.id,
                           agent2=org.agent2.id, fault=1)


def _roles(default, **overrides) -> dict:
    out = dict.fromkeys(DESK_ROLES, default)
    out.update(overrides)
    return out


_READERS = _roles(200, marketing=403)
_DESK = {"admin", "staff", "agent", "service_manager"}  # work tickets
DESK_ROUTES = [
    ("GET", "/tickets/list/", None, _READERS, set()),
    ("GET", "/tickets/show/{t_rep}", None, _READERS, set()),
    ("GET", "/tickets/show/{t_north}", None, _roles(200, manager=404, rep=404, marketing=403),
     set()),
    ("GET", "/tickets/add", None, _roles(200, auditor=403, marketing=403), set()),
    ("GET", "/tickets/edit/{t_rep}", None,
     _roles(200, manager=404, rep=404, auditor=403, marketing=403), set()),
    ("GET", "/tickets/edit/{t_north}", None,
     _roles(200, manager=404, rep=404, auditor=403, marketing=403), set()),
    ("POST", "/tickets/status/{t_north}", {"status": "in_progress"},
     _roles(302, auditor=403, marketing=403), _DESK),
    ("POST", "/tickets/note/{t_rep}", {"body": "矩阵备注"},
     _roles(302, auditor=403, marketing=403), _DESK | {"manager", "rep"}),
    ("POST", "/tickets/note/{t_north}", {"body": "矩阵备注"},
     _roles(302, auditor=403, marketing=403), _DESK),
    ("POST", "/tickets/reply/{t_north}", {"body": "矩阵回复"},
     _roles(302, auditor=403, marketing=403), _DESK),
    ("POST", "/tickets/assign/{t_rep}", {"agent_id": "{agent2}"},
     _roles(302, auditor=403, marketing=403), _DESK),
    ("POST", "/tickets/reopen/{t_rep}", {"reason": "矩阵"},  # open: refused for everyone
     _roles(302, auditor=403, marketing=403), set()),
    ("POST", "/tickets/delete/{t_rep}", {}, _roles(403), set()),  # closed, never deleted
    ("POST", "/tickets/attach/{t_rep}", {"file": ("notes.txt", b"x")},
     _roles(302, auditor=403, marketing=403), _DESK | {"manager", "rep"}),
    ("POST", "/tickets/attach/{t_north}", {"file": ("notes.txt", b"x")},
     _roles(302, auditor=403, marketing=403), _DESK),
    ("GET", "/tickets/attachment/{t_rep}/{file}", None, _READERS, set()),
    ("GET", "/tickets/attachment/{t_north}/{file}", None,  # another ticket's file
     _roles(404, auditor=404, marketing=403), set()),
    ("GET", "/ticket-categories/list/", None,
     _roles(403, admin=200, auditor=200, agent=200, service_manager=200), set()),
    ("POST", "/ticket-categories/add", {"name": "矩阵分类", "position": "5", "active": "y"},
     _roles(403, admin=302), {"admin"}),
    ("GET", "/service-teams/list/", None,
     _roles(403, admin=200, auditor=200, agent=200, service_manager=200), set()),
    ("POST", "/service-teams/edit/{team}", {"name": "矩阵改名", "strategy": "round_robin",
                                            "active": "y", "manager": "{manager_id}"},
     _roles(403, admin=302, service_manager=302), {"admin", "service_manager"}),
    ("GET", "/routing-rules/list/", None,
     _roles(403, admin=200, auditor=200, service_manager=200), set()),
    ("POST", "/routing-rules/add", {"name": "矩阵规则", "position": "1", "active": "y",
                                    "team": "{team}", "priority": "", "grade": ""},
     _roles(403, admin=302, service_manager=302), {"admin", "service_manager"}),
    ("GET", "/service-settings/list/", None,
     _roles(403, admin=200, auditor=200, service_manager=200), set()),
    ("POST", "/service-settings/edit/{settings}", {"low_score_threshold": "1",
                                                   "low_score_action": "reopen",
                                                   "max_attachment_mb": "10"},
     _roles(403, admin=302, service_manager=302), {"admin", "service_manager"}),
    ("POST", "/dedicated-agent/{c_rep}", {"agent_id": "{agent2}"},
     _roles(403, admin=302, staff=302, service_manager=302),
     {"admin", "staff", "service_manager"}),
    ("GET", "/workbench/", None,
     _roles(200, staff=403, auditor=403, marketing=403), set()),
]


@pytest.mark.parametrize("role", DESK_ROLES)
@pytest.mark.parametrize("method, path, form, expected, changes", DESK_ROUTES,
                         ids=[f"{m} {p}" for m, p, *_ in DESK_ROUTES])
def test_service_desk_routes_by_role(app, org, db, desk_ids, role, method, path, form,
                                     expected, changes):
    client = login(app.test_client(), getattr(org, role).username)
    values = dict(vars(desk_ids), manager_id=str(org.service_manager.id))
    url = path.format(**values)
    before = _desk_state(db)
    if method == "GET":
        resp = client.get(url)
    else:
        # (name, bytes): a file field, sent as a browser uploads it
        data = {k: (io.BytesIO(v[1]), v[0]) if isinstance(v, tuple) else v.format(**values)
                for k, v in form.items()}
        resp = client.post(url, data=dict(data, csrf_token=client.csrf),
                           content_type="multipart/form-data")
    assert resp.status_code == expected[role], (role, url)
    assert (_desk_state(db) != before) == (role in changes), (role, url)


# ============================================================================================
# 客户服务 (issue 17, H2): the tickets API — every role, the exact status, did the database
# change (JWT callers: no CSRF; the inbound-mail webhook takes an API key, never a JWT)
# ============================================================================================
_PDF = b"%PDF-1.4\n%matrix\n"


def _api_state(db):
    from app.models.service_desk import TicketAttachment

    return _desk_state(db), len(db.session.execute(select(TicketAttachment.id)).all())


@pytest.fixture
def api_desk_ids(db, org, desk_ids):
    from app.services import ticket_storage

    att = ticket_storage.add(org.staff, desk_ids.t_rep, ("矩阵.pdf", _PDF))
    att_north = ticket_storage.add(org.staff, desk_ids.t_north, ("矩阵.pdf", _PDF))
    return SimpleNamespace(**vars(desk_ids), att=att.id, att_north=att_north.id)


_NOT_REP_SCOPE = dict(manager=404, rep=404, marketing=403)  # t_north: outside 华东
_NO_WORK = dict(manager=403, rep=403, auditor=403, marketing=403)  # may not work tickets
API_ROUTES = [
    ("GET", "/api/v1/tickets/", None, _READERS, set()),
    ("GET", "/api/v1/tickets/{t_rep}", None, _READERS, set()),
    ("GET", "/api/v1/tickets/{t_north}", None, _roles(200, **_NOT_REP_SCOPE), set()),
    ("GET", "/api/v1/tickets/{t_north}/messages", None, _roles(200, **_NOT_REP_SCOPE), set()),
    ("GET", "/api/v1/tickets/{t_rep}/attachments", None, _READERS, set()),
    ("GET", "/api/v1/tickets/{t_rep}/attachments/{att}", None, _READERS, set()),
    ("GET", "/api/v1/tickets/{t_north}/attachments/{att_north}", None,
     _roles(200, **_NOT_REP_SCOPE), set()),
    ("GET", "/api/v1/tickets/{t_rep}/attachments/{att_north}", None,  # another ticket's file
     _roles(404, marketing=403), set()),
    ("POST", "/api/v1/tickets/", {"customer_id": "{c_rep}", "channel": "phone",
                                  "subject": "矩阵接口工单"},
     _roles(200, auditor=403, marketing=403), _DESK | {"manager", "rep"}),
    ("PATCH", "/api/v1/tickets/{t_north}", {"subject": "矩阵改名"},
     _roles(200, **_NO_WORK), _DESK),
    ("POST", "/api/v1/tickets/{t_north}/status", {"status": "in_progress"},
     _roles(200, **_NO_WORK), _DESK),
    ("POST", "/api/v1/tickets/{t_north}/reply", {"body": "矩阵回复"},
     _roles(200, **_NO_WORK), _DESK),
    ("POST", "/api/v1/tickets/{t_rep}/note", {"body": "矩阵备注"},
     _roles(200, auditor=403, marketing=403), _DESK | {"manager", "rep"}),
    ("POST", "/api/v1/tickets/{t_north}/note", {"body": "矩阵备注"},
     _roles(200, manager=404, rep=404, auditor=403, marketing=403), _DESK),
    # agent1 holds t_rep and hands it to its team mate; the others reassign it
    ("POST", "/api/v1/tickets/{t_rep}/assign", {"agent_id": "{agent2}"},
     _roles(200, **_NO_WORK), _DESK),
    ("POST", "/api/v1/tickets/{t_rep}/attachments", "multipart",
     _roles(200, auditor=403, marketing=403), _DESK | {"manager", "rep"}),
    ("POST", "/api/v1/tickets/inbound-mail", {"from": "x@example.com", "text": "矩阵",
                                              "message_id": "<matrix@mx>"},
     _roles(401, marketing=401), set()),
]


@pytest.mark.parametrize("role", DESK_ROLES)
@pytest.mark.parametrize("method, path, body, expected, changes", API_ROUTES,
                         ids=[f"{m} {p}" for m, p, *_ in API_ROUTES])
def test_tickets_api_by_role(app, org, db, api, api_desk_ids, role, method, path, body,
                             expected, changes):
    call = api(getattr(org, role).username)
    values = vars(api_desk_ids)
    url = path.format(**values)
    before = _api_state(db)
    if body == "multipart":
        resp = call(method, url, data={"file": (io.BytesIO(_PDF), "矩阵上传.pdf")},
                    content_type="multipart/form-data")
    elif body is None:
        resp = call(method, url)
    else:
        data = {k: (int(v.format(**values)) if v.startswith("{") else v)
                for k, v in body.items()}
        resp = call(method, url, json=data)
    assert resp.status_code == expected[role], (role, url, resp.get_data(as_text=True)[:300])
    assert (_api_state(db) != before) == (role in changes), (role, url)


# ============================================================================================
# issue 17 H4: 服务分析 /service-analysis/ — admins, staff, auditors, sales managers, service
# managers and agents (each over the tickets they may read); reps and marketing not
# ============================================================================================
_ANALYSTS = ("admin", "staff", "auditor", "manager", "agent", "service_manager")


def _analysts(ok: int) -> dict:
    return {r: ok if r in _ANALYSTS else 403 for r in DESK_ROLES}


SERVICE_ANALYSIS_PAGES = [
    ("/service-analysis/", _analysts(200)),
    ("/service-analysis/?start=2026-11-01&end=2026-11-30", _analysts(200)),
    ("/service-analysis/backlog.csv", _analysts(200)),
    ("/service-analysis/sla.csv?start=2026-12-01&end=2026-11-01", _analysts(400)),
    ("/service-analysis/nope.csv", _analysts(404)),
]


@pytest.mark.parametrize("role", DESK_ROLES)
@pytest.mark.parametrize("path, expected", SERVICE_ANALYSIS_PAGES,
                         ids=[p for p, _ in SERVICE_ANALYSIS_PAGES])
def test_service_analysis_by_role(app, org, role, path, expected):
    client = login(app.test_client(), getattr(org, role).username)
    resp = client.get(path)
    assert resp.status_code == expected[role], (role, path)


# ============================================================================================
# 客户服务 (issue 17 H1): SLA policies, the work calendar, the working hours — every role
# including the service agent and the service manager; admins and service managers write,
# agents read the SLA policies, nobody else sees them.
# ============================================================================================
SERVICE_ROLES = ROLES + ("agent", "service_manager")
SLA_EDITORS = {"admin", "service_manager"}


def _service_only(*roles, ok=200, other=403) -> dict:
    return {r: (ok if r in roles else other) for r in SERVICE_ROLES}


@pytest.fixture
def sla_ids(db, org):
    from app.services import sla_policies, work_calendar

    policy = sla_policies.create(org.admin, {"name": "矩阵策略", "first_response_minutes": 60,
                                             "resolution_minutes": 480})
    day = work_calendar.put_day(org.admin, {"day": "2030-05-06", "is_workday": False,
                                            "name": "矩阵假日"})
    return SimpleNamespace(policy=policy.id, day=day.id)


def _sla_state(db) -> tuple:
    from sqlalchemy import func

    from app.models import AuditLog
    from app.models.service_desk import ServiceSettings, SlaPolicy, WorkCalendarDay

    db.session.expire_all()
    return (db.session.execute(select(func.count(AuditLog.id))).scalar(),
            db.session.execute(select(func.count(SlaPolicy.id))).scalar(),
            db.session.execute(select(func.count(WorkCalendarDay.id))).scalar(),
            db.session.execute(select(ServiceSettings.work_periods)).scalars().all())


SLA_POLICY_FORM = {"name": "新策略", "priority": "P2", "grade": "",
                   "first_response_minutes": "30", "resolution_minutes": "240",
                   "clock": "business", "warn_before_minutes": "10",
                   "escalate_after_minutes": "60", "position": "5", "active": "y"}
SLA_ROUTES = [
    ("GET", "/sla-policies/list/", None,
     _service_only("admin", "service_manager", "agent"), False),
    ("GET", "/sla-policies/show/{policy}", None,
     _service_only("admin", "service_manager", "agent"), False),
    ("GET", "/sla-policies/add", None, _service_only(*SLA_EDITORS), False),
    ("POST", "/sla-policies/add", SLA_POLICY_FORM, _service_only(*SLA_EDITORS, ok=302), True),
    ("POST", "/sla-policies/edit/{policy}", dict(SLA_POLICY_FORM, name="改名策略"),
     _service_only(*SLA_EDITORS, ok=302), True),
    ("POST", "/sla-policies/delete/{policy}", {}, _service_only(*SLA_EDITORS, ok=302), True),
    ("GET", "/work-calendar/", None, _service_only(*SLA_EDITORS), False),
    ("GET", "/work-calendar/?year=2030&edit={day}", None, _service_only(*SLA_EDITORS), False),
    ("POST", "/work-calendar/put", {"day": "2030-05-11", "is_workday": "1", "name": "调休"},
     _service_only(*SLA_EDITORS, ok=302), True),
    ("POST", "/work-calendar/{day}/delete", {}, _service_only(*SLA_EDITORS, ok=302), True),
    ("POST", "/work-calendar/seed", {"year": "2025"}, _service_only(*SLA_EDITORS, ok=302), True),
    ("GET", "/working-hours/", None, _service_only(*SLA_EDITORS), False),
    ("POST", "/working-hours/save", {"work_periods": "08:30-12:00,13:00-17:30"},
     _service_only(*SLA_EDITORS, ok=302), True),
]


@pytest.mark.parametrize("role", SERVICE_ROLES)
@pytest.mark.parametrize("method, path, form, expected, changes", SLA_ROUTES,
                         ids=[f"{m} {p}" for m, p, *_ in SLA_ROUTES])
def test_sla_and_calendar_routes_by_role(app, db, org, sla_ids, role, method, path, form,
                                         expected, changes):
    client = login(app.test_client(), getattr(org, role).username)
    url = path.format(**vars(sla_ids))
    before = _sla_state(db)
    if method == "GET":
        resp = client.get(url)
    else:
        data = {k: v.format(**vars(sla_ids)) for k, v in form.items()}
        resp = client.post(url, data=dict(data, csrf_token=client.csrf))
    assert resp.status_code == expected[role], (role, url)
    assert (_sla_state(db) != before) == (changes and role in SLA_EDITORS), (role, url)


# ============================================================================================
# issue 18: call events in (/api/v1/cti/events, /api/v1/cti/vendors/…) — an API key of purpose
# call_events and a signature only: every role's session (with its CSRF token) and JWT is
# refused 401 and records nothing
# ============================================================================================
CTI_EVENT_ROUTES = ["/api/v1/cti/events", "/api/v1/cti/vendors/tinet",
                    "/api/v1/cti/vendors/tencent?action=cdr"]


def _cti_state(db):
    from app.models import CtiCall, CtiEvent, FollowUp, Task

    db.session.expire_all()
    return tuple(len(db.session.execute(select(m.id)).all())
                 for m in (CtiEvent, CtiCall, FollowUp, Task))


@pytest.mark.parametrize("role", DESK_ROLES)
@pytest.mark.parametrize("path", CTI_EVENT_ROUTES)
def test_call_event_routes_take_no_session_or_jwt(app, db, org, api, role, path):
    body = {"event_id": "matrix", "vendor": "acme", "type": "hangup", "call_id": "m",
            "occurred_at": 1764460800, "caller": "13800138000"}
    user = getattr(org, role)
    before = _cti_state(db)
    client = login(app.test_client(), user.username)
    resp = client.post(path, json=body, headers={"X-CSRFToken": client.csrf})
    assert (resp.status_code, resp.get_json()["code"]) == (401, "missing_key"), (role, path)
    resp = api(user.username)("POST", path, json=body)
    assert resp.status_code == 401, (role, path)
    assert resp.get_json()["code"] in ("unknown_key", "missing_key"), (role, path)
    assert _cti_state(db) == before, (role, path)


# ============================================================================================
# 呼叫中心 (issue 18, B): the call log page, the per-rep statistics, the call log API, the
# routing endpoint, and the user / department forms' call fields — every role, the exact
# status, and nothing written (the log is read-only; routing writes only its audit row).
# ============================================================================================
@pytest.fixture
def call_ids(db, org):
    from app.models.cti import CtiCall

    def made(n, customer, agent, number):
        call = CtiCall(vendor="matrix", call_id=f"m{n}", direction="in", state="ended",
                       result="answered", customer_id=customer.id if customer else None,
                       agent_id=agent.id, number_e164=number, talk_seconds=30)
        db.session.add(call)
        db.session.flush()
        return call.id

    ids = SimpleNamespace(
        call_rep=made(1, org.c_rep, org.rep, "+8613800138000"),
        call_north=made(2, org.c_north, org.rep_north, "+8613500135000"),
        call_agent=made(3, None, org.agent, "+8613111112222"),
        rep=org.rep.id, east=org.east.id)
    db.session.commit()
    return ids


def _call_state(db) -> tuple:
    from sqlalchemy import func

    from app.models import Department, User
    from app.models.cti import CtiCall

    db.session.expire_all()
    return (db.session.execute(select(func.count(CtiCall.id))).scalar(),
            db.session.execute(select(User.agent_no).where(User.agent_no.is_not(None))
                               ).scalars().all(),
            db.session.execute(select(Department.cti_queue).where(
                Department.cti_queue.is_not(None))).scalars().all())


_CALL_READERS = _roles(200, marketing=403)
CALL_ROUTES = [
    ("GET", "/calls/list/", _CALL_READERS),
    ("GET", "/calls/show/{call_rep}",
     _roles(200, marketing=403, agent=404, service_manager=404)),
    ("GET", "/calls/show/{call_north}",
     _roles(200, manager=404, rep=404, marketing=403, agent=404, service_manager=404)),
    ("GET", "/calls/show/{call_agent}",  # an unknown number agent1 took
     _roles(200, manager=404, rep=404, marketing=403, service_manager=404)),
    ("GET", "/calls/edit/{call_rep}", _roles(403)),
    ("POST", "/calls/delete/{call_rep}", _roles(403)),
    ("GET", "/calls/add", _roles(403)),
    ("GET", "/call-stats/", _roles(403, admin=200, manager=200)),
    ("GET", "/call-stats/?start=2026-11-01&end=2026-11-30", _roles(403, admin=200, manager=200)),
    ("POST", "/users/edit/{rep}", _roles(403, admin=200)),   # admin: a bad agent number
    ("POST", "/departments/edit/{east}", _roles(403, admin=200)),  # admin: a bad queue
]


@pytest.mark.parametrize("role", DESK_ROLES)
@pytest.mark.parametrize("method, path, expected", CALL_ROUTES,
                         ids=[f"{m} {p}" for m, p, _ in CALL_ROUTES])
def test_call_centre_pages_by_role(app, org, db, call_ids, role, method, path, expected):
    client = login(app.test_client(), getattr(org, role).username)
    url = path.format(**vars(call_ids))
    before = _call_state(db)
    if method == "GET":
        resp = client.get(url)
    elif path.startswith("/users/"):
        resp = client.post(url, data={"csrf_token": client.csrf, "username": "rep1",
                                      "first_name": "x", "last_name": "y",
                                      "email": "rep1@test.local", "agent_no": "坏 工号",
                                      "roles": [str(r.id) for r in org.rep.roles]})
    elif path.startswith("/departments/"):
        resp = client.post(url, data={"csrf_token": client.csrf, "name": org.east.name,
                                      "parent": str(org.centre.id), "cti_queue": "坏 队列"})
    else:
        resp = client.post(url, data={"csrf_token": client.csrf})
    assert resp.status_code == expected[role], (role, url)
    assert _call_state(db) == before, (role, url)


CALL_API_ROUTES = [
    ("/api/v1/cti/calls", _CALL_READERS),
    ("/api/v1/cti/calls/{call_rep}", _roles(200, marketing=403, agent=404, service_manager=404)),
    ("/api/v1/cti/calls/{call_north}",
     _roles(200, manager=404, rep=404, marketing=403, agent=404, service_manager=404)),
    ("/api/v1/cti/calls/{call_agent}",
     _roles(200, manager=404, rep=404, marketing=403, service_manager=404)),
    ("/api/v1/cti/calls?customer_id={rep}x", _roles(400, marketing=403)),
    ("/api/v1/cti/route?caller=13800138000", _roles(401)),  # a JWT is no API key
]


@pytest.mark.parametrize("role", DESK_ROLES)
@pytest.mark.parametrize("path, expected", CALL_API_ROUTES, ids=[p for p, _ in CALL_API_ROUTES])
def test_call_centre_api_by_role(app, org, db, api, call_ids, role, path, expected):
    url = path.format(**vars(call_ids))
    before = _call_state(db)
    resp = api(getattr(org, role).username)("GET", url)
    assert resp.status_code == expected[role], (role, url, resp.get_data(as_text=True)[:200])
    assert _call_state(db) == before
    if resp.status_code == 200 and url == "/api/v1/cti/calls":
        seen = {r["id"] for r in resp.get_json()["result"]}
        visible = {k for k in ("call_rep", "call_north", "call_agent")
                   if CALL_API_ROUTES[["/api/v1/cti/calls/{%s}" % k == p
                                       for p, _ in CALL_API_ROUTES].index(True)][1][role] == 200}
        assert seen == {getattr(call_ids, k) for k in visible}, role


# ============================================================================================
# issue 18: screen pops (every signed-in role: its own calls only) and click-to-call (roles
# that call customers; the record's scope decides) — the exact status, did the database change
# ============================================================================================
def _cti_call_count(db):
    from app.models.cti import CtiCall

    db.session.commit()
    return len(db.session.execute(select(CtiCall.id)).all())


CTI_ROUTES = [
    ("GET", "/cti/pops", None, _roles(200), set()),
    ("GET", "/cti/pops?since=2147483648", None, _roles(400), set()),
    ("GET", "/cti/pops/stream", None, _roles(200), set()),
    ("POST", "/api/v1/cti/dial", {"customer_id": "{c_rep}"},
     _roles(200, auditor=403, marketing=403, agent=404, service_manager=404),
     {"admin", "manager", "rep", "staff"}),
    ("POST", "/api/v1/cti/dial", {"customer_id": "{c_north}"},  # in scope: it has no number
     _roles(404, admin=400, staff=400, auditor=403, marketing=403), set()),
    ("POST", "/api/v1/cti/dial", {"customer_id": "{c_pool}"},  # nobody is a pool member
     _roles(404, admin=200, staff=200, auditor=403, marketing=403), {"admin", "staff"}),
]


@pytest.mark.parametrize("role", DESK_ROLES)
@pytest.mark.parametrize("method, path, body, expected, changes", CTI_ROUTES,
                         ids=[f"{m} {p} {b}" for m, p, b, *_ in CTI_ROUTES])
def test_cti_routes_by_role(app, org, db, api, role, method, path, body, expected, changes):
    user = getattr(org, role)
    user.agent_no = f"9{user.id:03d}"
    db.session.commit()
    values = {c: getattr(org, c).id for c in CUSTOMERS}
    before = _cti_call_count(db)
    if method == "GET":
        client = login(app.test_client(), user.username)
        resp = client.get(path, buffered=False)
        try:
            status = resp.status_code
            if path.endswith("/stream"):
                assert resp.mimetype == "text/event-stream"
        finally:
            resp.close()  # the stream: never started, its subscription never opened
    else:
        data = {k: int(v.format(**values)) for k, v in body.items()}
        status = api(user.username)(method, path, json=data).status_code
    assert status == expected[role], (role, path, body)
    assert (_cti_call_count(db) != before) == (role in changes), (role, path, body)


# ============================================================================================
# issue 20 §3: 归属效果评估 /ownership-effect/ — admins and auditors (everyone), sales managers
# (their scope's reps), reps (their own receipts); staff, marketing and the service roles not.
# A department outside a manager's scope is refused naming it; reps have only their own.
# ============================================================================================
_EFFECT_READERS = ("admin", "auditor", "manager", "rep")


def _effect(ok: int, **other) -> dict:
    return {r: other.get(r, ok if r in _EFFECT_READERS else 403) for r in DESK_ROLES}


OWNERSHIP_EFFECT_PAGES = [
    ("/ownership-effect/", _effect(200)),
    ("/ownership-effect/?start=2026-01-01&end=2026-06-30&days=14", _effect(200)),
    ("/ownership-effect/rule.csv", _effect(200)),
    ("/ownership-effect/overall.xlsx", _effect(200)),
    ("/ownership-effect/rep.csv?dept={north}", _effect(200, manager=400, rep=400)),
    ("/ownership-effect/rep.csv?end=2026-02-30", _effect(400)),
    ("/ownership-effect/nope.csv", _effect(404)),
]


@pytest.mark.parametrize("role", DESK_ROLES)
@pytest.mark.parametrize("path, expected", OWNERSHIP_EFFECT_PAGES,
                         ids=[p for p, _ in OWNERSHIP_EFFECT_PAGES])
def test_ownership_effect_by_role(app, org, role, path, expected):
    client = login(app.test_client(), getattr(org, role).username)
    resp = client.get(path.format(north=org.north.id))
    assert resp.status_code == expected[role], (role, path)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_ownership_effect_takes_no_writes(app, org, method):
    client = login(app.test_client(), org.admin.username)
    assert client.open("/ownership-effect/", method=method).status_code == 405
