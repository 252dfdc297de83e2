"""The configuration forms go through their services: the policy form (one policy per target,
the global default never deleted), the pool form (exactly one default pool), the user form's
Active box (no deactivation while the user owns customers), and the audit row commits with the
change or not at all. Plus the partial unique indexes behind the first two, and a race."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import AuditLog, Department, Policy, Pool, User
from app.services import audit, policies, policy_config
from app.services.errors import ValidationFailed

POLICY_FIELDS = {"max_customers": "5", "max_locked": "", "daily_claim_limit": "",
                 "cooldown_days": "", "reclaim_no_followup_days": "", "reclaim_no_deal_days": "",
                 "warn_before_days": "", "count_won": ""}


def policy_rows():
    """Every policy row's target and values, to show a refused form changed nothing."""
    return [tuple(r) for r in db.session.execute(select(
        Policy.id, Policy.scope, Policy.department_id, Policy.user_id, Policy.max_customers)
        .order_by(Policy.id))]


def pool_rows():
    return [tuple(r) for r in db.session.execute(
        select(Pool.id, Pool.name, Pool.is_default).order_by(Pool.id))]


def audits(object_type: str) -> list:
    return list(db.session.execute(select(AuditLog).where(AuditLog.object_type == object_type)
                                   .order_by(AuditLog.id)).scalars())


def post_policy(client, target: dict, **kwargs):
    return client.post("/policies/add", data={**POLICY_FIELDS, **target,
                                              "csrf_token": client.csrf},
                       follow_redirects=True, **kwargs)


# --- the policy form -----------------------------------------------------------------------

@pytest.mark.parametrize("target", ["department", "user", "global"])
def test_policy_form_refuses_a_second_policy_for_the_same_target(db, org, admin_client, target):
    existing = {"department": Policy(scope="department", department_id=org.east.id),
                "user": Policy(scope="user", user_id=org.rep.id)}.get(target)
    if existing is not None:
        db.session.add(existing)
        db.session.commit()
    before = policy_rows()
    form = {"department": {"scope": "department", "department": str(org.east.id)},
            "user": {"scope": "user", "user": str(org.rep.id)},
            "global": {"scope": "global"}}[target]
    resp = post_policy(admin_client, form)
    assert resp.status_code == 200
    assert "该对象已有策略，请修改原策略" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert policy_rows() == before
    assert audits("policy") == []


def test_policy_form_creates_a_department_policy_audited_with_its_values(db, org, admin_client):
    resp = post_policy(admin_client, {"scope": "department", "department": str(org.east.id)})
    assert resp.status_code == 200
    db.session.expire_all()
    assert policies.effective_policy(org.rep.id)["max_customers"].value == 5
    created = db.session.execute(select(Policy).where(Policy.scope == "department")).scalar_one()
    [log] = audits("policy")
    assert (log.action, log.object_type, log.object_id, log.actor_id) == (
        "create", "policy", created.id, org.admin.id)
    assert log.changes == {"scope": [None, "department"], "department_id": [None, org.east.id],
                           "max_customers": [None, 5]}


def test_policy_form_cannot_move_a_policy_onto_a_taken_target(db, org, admin_client):
    db.session.add_all([Policy(scope="department", department_id=org.east.id, max_customers=9),
                        Policy(scope="department", department_id=org.north.id)])
    db.session.commit()
    north = db.session.execute(select(Policy.id).where(
        Policy.department_id == org.north.id)).scalar_one()
    before = policy_rows()
    resp = admin_client.post(f"/policies/edit/{north}", data={
        **POLICY_FIELDS, "scope": "department", "department": str(org.east.id),
        "csrf_token": admin_client.csrf}, follow_redirects=True)
    assert "该对象已有策略，请修改原策略" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert policy_rows() == before


def test_policy_form_refuses_to_turn_the_global_default_into_a_department_policy(
        db, org, admin_client):
    gid = policies.global_policy().id
    before = policy_rows()
    resp = admin_client.post(f"/policies/edit/{gid}", data={
        **POLICY_FIELDS, "scope": "department", "department": str(org.east.id),
        "csrf_token": admin_client.csrf}, follow_redirects=True)
    assert "全局默认策略不能改为部门或个人策略" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert policy_rows() == before
    assert audits("policy") == []


def test_policy_form_refuses_to_delete_the_global_default(db, org, admin_client):
    gid = policies.global_policy().id
    before = policy_rows()
    resp = admin_client.post(f"/policies/delete/{gid}", data={"csrf_token": admin_client.csrf},
                             follow_redirects=True)
    assert resp.status_code == 200
    assert "全局默认策略不能删除，只能修改" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert policy_rows() == before
    assert audits("policy") == []


def test_policy_form_deletes_a_department_policy_with_its_audit_row(db, org, admin_client):
    db.session.add(Policy(scope="department", department_id=org.east.id, max_customers=9))
    db.session.commit()
    pid = db.session.execute(select(Policy.id).where(Policy.scope == "department")).scalar_one()
    admin_client.post(f"/policies/delete/{pid}", data={"csrf_token": admin_client.csrf})
    db.session.expire_all()
    assert db.session.get(Policy, pid) is None
    [log] = audits("policy")
    assert (log.action, log.object_id, log.changes["max_customers"]) == ("delete", pid, [9, None])


# --- the pool form -------------------------------------------------------------------------

def test_pool_form_making_a_pool_default_moves_the_default_in_one_save(db, org, admin_client):
    resp = admin_client.post("/pools/add", data={"name": "华东公海", "description": "",
                                                 "is_default": "y",
                                                 "csrf_token": admin_client.csrf})
    assert resp.status_code == 302
    db.session.expire_all()
    defaults = db.session.execute(select(Pool.name).where(
        Pool.is_default.is_(True), Pool.record_type == "customer")).all()
    assert defaults == [("华东公海",)]
    from app.services.ownership import default_pool

    assert default_pool().name == "华东公海"
    [log] = audits("pool")
    assert (log.action, log.object_type, log.changes["is_default"]) == (
        "create", "pool", [None, True])


def test_pool_form_refuses_to_untick_the_only_default(db, org, admin_client):
    before = pool_rows()
    resp = admin_client.post(f"/pools/edit/{org.pool.id}", data={
        "name": org.pool.name, "description": "", "csrf_token": admin_client.csrf},
        follow_redirects=True)
    assert resp.status_code == 200
    assert "必须有一个默认公海：请把另一个公海设为默认，本公海随之取消默认" in \
        resp.get_data(as_text=True)
    db.session.expire_all()
    assert pool_rows() == before
    assert audits("policy") == []


def test_pool_form_refuses_to_delete_the_default(db, org, admin_client):
    before = pool_rows()
    resp = admin_client.post(f"/pools/delete/{org.pool.id}",
                             data={"csrf_token": admin_client.csrf}, follow_redirects=True)
    assert f"默认公海『{org.pool.name}』不能删除：请先把另一个公海设为默认" in \
        resp.get_data(as_text=True)
    db.session.expire_all()
    assert pool_rows() == before


def test_pool_form_refuses_to_delete_a_pool_that_holds_customers(db, org, admin_client):
    from app.services import customers

    other = Pool(name="华北公海")
    db.session.add(other)
    db.session.commit()
    customers.create_customer(org.staff, {"name": "华北公海客户"}, pool_id=other.id)
    empty = Pool(name="空公海")
    db.session.add(empty)
    db.session.commit()
    other_id, empty_id = other.id, empty.id
    resp = admin_client.post(f"/pools/delete/{other_id}", data={"csrf_token": admin_client.csrf},
                             follow_redirects=True)
    assert "公海『华北公海』中还有 1 个客户，请先把它们移到其他公海" in resp.get_data(as_text=True)
    admin_client.post(f"/pools/delete/{empty_id}", data={"csrf_token": admin_client.csrf})
    db.session.expire_all()
    assert db.session.get(Pool, other_id) is not None and db.session.get(Pool, empty_id) is None
    assert [(a.action, a.object_id) for a in audits("pool")] == [("delete", empty_id)]


def test_pool_service_moves_the_default_and_only_admins_edit_pools(db, org):
    from app.services import pool_admin
    from app.services.errors import PermissionDenied

    east = pool_admin.create_pool(org.admin, {"name": "华东公海", "description": None})
    assert east.is_default is False
    pool_admin.update_pool(org.admin, east.id, {"is_default": True})
    db.session.expire_all()
    assert db.session.execute(select(Pool.id).where(
        Pool.is_default.is_(True), Pool.record_type == "customer")).all() == [(east.id,)]
    assert [(a.action, a.changes) for a in audits("pool")][-1] == (
        "update", {"is_default": [False, True]})
    with pytest.raises(PermissionDenied) as exc:
        pool_admin.update_pool(org.manager, org.pool.id, {"is_default": True})
    assert exc.value.message == "只有管理员可以修改公海"
    with pytest.raises(ValidationFailed) as exc:
        pool_admin.create_pool(org.admin, {"name": " "})
    assert exc.value.fields == {"name": "请填写公海名称"}


# --- the user form's Active box ------------------------------------------------------------

def user_form(client, user: User, **changes) -> dict:
    form = {"first_name": user.first_name, "last_name": user.last_name,
            "username": user.username, "email": user.email, "phone": user.phone or "",
            "roles": [str(r.id) for r in user.roles],
            "department": str(user.department_id or ""), "superior": str(user.superior_id or ""),
            "active": "y", "csrf_token": client.csrf}
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def test_user_form_refuses_to_deactivate_a_user_who_owns_customers(db, org, admin_client):
    resp = admin_client.post(f"/users/edit/{org.rep.id}",
                             data=user_form(admin_client, org.rep, active=None),
                             follow_redirects=True)
    assert resp.status_code == 200
    assert f"{org.rep.display_name} 仍负责 1 个客户，请先办理离职交接" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, org.rep.id).active is True


def test_user_form_deactivates_a_user_who_owns_nothing(db, org, admin_client):
    resp = admin_client.post(f"/users/edit/{org.auditor.id}",
                             data=user_form(admin_client, org.auditor, active=None))
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(User, org.auditor.id).active is False


# --- the audit row is part of the change's transaction -------------------------------------

@pytest.fixture
def audit_fails(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("audit store unavailable")
    monkeypatch.setattr(audit, "record", fail)


@pytest.mark.parametrize("path,form", [
    ("/policies/add", {**POLICY_FIELDS, "scope": "department", "department": "{east}"}),
    ("/pools/add", {"name": "华东公海", "description": "", "is_default": "y"}),
    ("/departments/add", {"name": "华南大区", "parent": "{centre}", "manager": ""}),
])
def test_a_change_whose_audit_row_fails_is_not_saved(db, org, admin_client, audit_fails,
                                                     path, form):
    data = {k: v.format(east=org.east.id, centre=org.centre.id) for k, v in form.items()}
    before = (policy_rows(), pool_rows(), db.session.scalar(
        select(func.count()).select_from(Department)))
    if path == "/departments/add":
        # FAB's own add flashes whatever its pre_add hook raises.
        resp = admin_client.post(path, data={**data, "csrf_token": admin_client.csrf},
                                 follow_redirects=True)
        assert "audit store unavailable" in resp.get_data(as_text=True)
    else:
        with pytest.raises(RuntimeError, match="audit store unavailable"):
            admin_client.post(path, data={**data, "csrf_token": admin_client.csrf})
    db.session.expire_all()
    assert (policy_rows(), pool_rows(), db.session.scalar(
        select(func.count()).select_from(Department))) == before


# --- the schema backs both rules -----------------------------------------------------------

@pytest.mark.parametrize("second", ["global", "department", "user", "default pool"])
def test_partial_unique_indexes_refuse_a_second_row(db, org, second):
    if second != "global":
        db.session.add({"department": Policy(scope="department", department_id=org.east.id),
                        "user": Policy(scope="user", user_id=org.rep.id),
                        "default pool": Pool(name="另一个公海", is_default=False)}[second])
        db.session.commit()
    row = {"global": Policy(scope="global"),
           "department": Policy(scope="department", department_id=org.east.id),
           "user": Policy(scope="user", user_id=org.rep.id),
           "default pool": Pool(name="第二个默认公海", is_default=True)}[second]
    db.session.add(row)
    with pytest.raises(IntegrityError):
        db.session.flush()
    db.session.rollback()
    # The indexes are partial: other targets and non-default pools are unaffected.
    db.session.add_all([Policy(scope="department", department_id=org.north.id),
                        Policy(scope="user", user_id=org.rep2.id),
                        Pool(name="普通公海一"), Pool(name="普通公海二")])
    db.session.commit()


# --- two admins at once --------------------------------------------------------------------

@pytest.mark.real_db  # the threads' sessions must see the organisation and each other
def test_two_simultaneous_policies_for_one_department_only_one_lands(app, db, org, monkeypatch):
    """Both requests pass the duplicate check before either writes; the index decides, and the
    loser gets the same refusal as a sequential duplicate."""
    admin_id, east_id = org.admin.id, org.east.id
    db.session.commit()
    both_checked = threading.Barrier(2, timeout=30)
    first_check = threading.local()
    check = policy_config._duplicate_of

    def check_then_wait(*args, **kwargs):
        found = check(*args, **kwargs)
        if not getattr(first_check, "done", False):
            first_check.done = True
            both_checked.wait()
        return found

    monkeypatch.setattr(policy_config, "_duplicate_of", check_then_wait)
    outcomes: list = []

    def create(limit: int) -> None:
        with app.app_context():
            from app.extensions import db as thread_db

            try:
                policy_config.create_policy(thread_db.session.get(User, admin_id), {
                    "scope": "department", "department_id": east_id, "max_customers": limit})
                outcomes.append("created")
            except ValidationFailed as exc:
                outcomes.append(exc.fields)
            except Exception as exc:  # reported below: the test must not hide a crash
                outcomes.append(repr(exc))

    threads = [threading.Thread(target=create, args=(n,)) for n in (40, 50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert sorted(map(str, outcomes)) == sorted(
        ["created", str({"scope": "该对象已有策略，请修改原策略"})])
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Policy).where(
        Policy.department_id == east_id)) == 1
    assert len(audits("policy")) == 1
