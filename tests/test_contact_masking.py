"""The contact details rule (DESIGN.md), one rule on every path: for every role and one
customer of each kind (own, in scope, shared read-only, pool, out of scope), the show page,
the pool page, the REST get and list and the export show the same thing: the number in full
or its mask, never both. A mask is never saved back."""
from __future__ import annotations

import pytest

from app.models import CustomerShare
from app.services import exports
from app.services.masking import MASKED_REFUSAL

# customer -> (the value in full, its mask, the field)
VALUES = {
    "c_rep": ("13800138000", "138****8000", "mobile"),
    "c_rep2": ("13900139000", "139****9000", "mobile"),
    "c_north": ("Contact@HuaLian.cn", "C***@HuaLian.cn", "email"),
    "c_pool": ("021-62345678", "021****5678", "phone"),
}
F, M, HIDDEN = "full", "masked", "hidden"
# role -> customer -> what the role sees. rep1 holds a read-only share of c_rep2.
EXPECTED = {
    "admin": {"c_rep": F, "c_rep2": F, "c_north": F, "c_pool": F},
    "staff": {"c_rep": F, "c_rep2": F, "c_north": F, "c_pool": F},
    "auditor": {"c_rep": M, "c_rep2": M, "c_north": M, "c_pool": M},
    "manager": {"c_rep": F, "c_rep2": F, "c_north": HIDDEN, "c_pool": M},
    "rep": {"c_rep": F, "c_rep2": M, "c_north": HIDDEN, "c_pool": M},
}


@pytest.fixture
def shared(db, org):
    """rep1 holds a read-only share of c_rep2; rep1 and the manager are members (not
    admins) of the default pool, which they browse."""
    from app.models import PoolMember

    db.session.add(CustomerShare(customer_id=org.c_rep2.id, user_id=org.rep.id))
    for user in (org.rep, org.manager):
        db.session.add(PoolMember(pool_id=org.pool.id, user_id=user.id, is_admin=False))
    db.session.commit()


def _check(text: str, key: str, expected: str, where: str):
    full, masked, _ = VALUES[key]
    if expected == F:
        assert full in text, (where, key, "full")
    else:
        assert masked in text and full not in text, (where, key, "masked")


def _show_path(role: str, key: str, expected: str) -> str:
    """Pool customers are browsed on the pool page by those whose scope does not hold them."""
    if key == "c_pool" and role in ("manager", "rep"):
        return "/pool/show/{}"
    return "/customers/show/{}"


@pytest.mark.parametrize("role", sorted(EXPECTED))
def test_every_path_shows_contact_details_by_one_rule(clients, api, org, shared, role):
    client = getattr(clients, role)
    call = api(getattr(org, role).username)
    export = {row[0]: " ".join(str(v) for v in row)
              for row in exports.customer_rows(getattr(org, role))}
    listing = call("GET", "/api/v1/customers/?q=(page_size:100)").get_data(as_text=True)
    for key, expected in EXPECTED[role].items():
        customer = getattr(org, key)
        page = client.get(_show_path(role, key, expected).format(customer.id))
        api_one = call("GET", f"/api/v1/customers/{customer.id}")
        if expected == HIDDEN:
            assert page.status_code in (302, 404), (role, key)
            assert api_one.status_code == 404
            assert customer.id not in export
            continue
        assert page.status_code == 200, (role, key)
        _check(page.get_data(as_text=True), key, expected, "show page")
        if key != "c_pool" or role not in ("manager", "rep"):
            assert api_one.status_code == 200, (role, key)
            _check(api_one.get_data(as_text=True), key, expected, "api get")
            _check(listing, key, expected, "api list")
            _check(export[customer.id], key, expected, "export")


def test_the_api_masks_the_normalised_keys_too(api, org, shared):
    body = api("rep1")("GET", f"/api/v1/customers/{org.c_rep2.id}").get_json()["result"]
    assert body["mobile"] == "139****9000"
    assert "13900139000" not in str(body)


def test_the_pool_page_lists_pool_customers_masked_for_reps(clients, org, shared):
    text = clients.rep.get("/pool/list/").get_data(as_text=True)
    _check(text, "c_pool", M, "pool list")
    text = clients.admin.get("/pool/list/").get_data(as_text=True)
    _check(text, "c_pool", F, "pool list")


def test_a_pool_admin_sees_that_pool_in_full(clients, db, org):
    from app.models import PoolMember

    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id, is_admin=True))
    db.session.commit()
    _check(clients.rep.get(f"/pool/show/{org.c_pool.id}").get_data(as_text=True),
           "c_pool", F, "pool show")


@pytest.mark.parametrize("field,masked", [("mobile", "138****8000"),
                                          ("email", "z***@qq.com"), ("phone", "021****5678")])
def test_a_mask_is_never_saved_back(api, org, db, field, masked):
    before = getattr(org.c_rep, field)
    resp = api("rep1")("PUT", f"/api/v1/customers/{org.c_rep.id}", json={field: masked})
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {field: MASKED_REFUSAL}
    db.session.refresh(org.c_rep)
    assert getattr(org.c_rep, field) == before


def test_the_duplicate_review_page_masks_for_auditors_not_for_staff(clients, db, org):
    """The cluster page shows members' fields side by side: by the same rule."""
    from sqlalchemy import select

    from app.models import DedupeCluster
    from app.services import customers, dedupe_scan

    customers.create_customer(org.rep2, {"name": "云帆科技（杭州）有限公司", "industry": "软件",
                                         "mobile": "13600136009"}, confirm_duplicates=True)
    dedupe_scan.scan()
    cluster_id = db.session.execute(select(DedupeCluster.id)).scalar_one()
    db.session.commit()
    _check(clients.auditor.get(f"/dedupe-review/{cluster_id}").get_data(as_text=True),
           "c_rep", M, "dedupe review")
    _check(clients.staff.get(f"/dedupe-review/{cluster_id}").get_data(as_text=True),
           "c_rep", F, "dedupe review")


def test_the_audit_log_masks_contact_details_for_auditors(clients, org):
    from app.services import customers

    customers.update_customer(org.rep, org.c_rep.id, {"mobile": "13700137000"})
    auditor = clients.auditor.get("/audit/list/").get_data(as_text=True)
    assert "137****7000" in auditor and "13700137000" not in auditor
    assert "138****8000" in auditor and "13800138000" not in auditor
    assert "13700137000" in clients.admin.get("/audit/list/").get_data(as_text=True)
