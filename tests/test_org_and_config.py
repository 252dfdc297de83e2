"""Departments tree, departure, policies (resolution + audit), language, `flask crm init`."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditLog, Department, Policy
from app.security import Scope, customer_scope_clause, scope_of
from app.services import org as org_service
from app.services import policies
from app.services.errors import Conflict, ValidationFailed


def test_department_paths_and_subtree_scope(db, org):
    shanghai = org_service.create_department("上海团队", parent=org.east)
    assert shanghai.path == f"/{org.centre.id}/{org.east.id}/{shanghai.id}/"
    # A manager of the sales centre sees customers of every department below it.
    from tests.conftest import make_user
    from app.security import ROLE_MANAGER, ROLE_REP
    from app.services import customers
    from app.models import Customer

    boss = make_user("boss", ROLE_MANAGER, org.centre)
    sh_rep = make_user("shrep", ROLE_REP, shanghai)
    c_sh = customers.create_customer(sh_rep, {"name": "上海徐汇咨询有限公司"})
    assert scope_of(boss) == Scope.DEPARTMENT_TREE
    seen = set(db.session.execute(select(Customer.id).where(customer_scope_clause(boss))).scalars())
    assert seen == {org.c_rep.id, org.c_rep2.id, org.c_north.id, c_sh.id}
    east_seen = set(db.session.execute(
        select(Customer.id).where(customer_scope_clause(org.manager))).scalars())
    assert east_seen == {org.c_rep.id, org.c_rep2.id, c_sh.id}


def test_department_cannot_move_under_itself(db, org):
    east = db.session.get(Department, org.east.id)
    child = org_service.create_department("杭州团队", parent=east)
    east.parent = child
    with pytest.raises(ValidationFailed) as exc:
        org_service.save_department(east)
    assert exc.value.fields == {"parent": "上级部门不能是自己或自己的下级部门"}


def test_departed_user_with_customers_is_refused(db, org):
    with pytest.raises(Conflict) as exc:
        org_service.mark_departed(org.rep.id, org.admin.id)
    assert exc.value.code == "has_customers"
    assert exc.value.message == f"{org.rep.display_name} 仍负责 1 个客户，请先办理离职交接"


def test_effective_policy_most_specific_wins(db, org):
    db.session.add(Policy(scope="department", department_id=org.centre.id, max_customers=60,
                          daily_claim_limit=5))
    db.session.add(Policy(scope="department", department_id=org.east.id, max_customers=40))
    db.session.add(Policy(scope="user", user_id=org.rep.id, cooldown_days=7))
    db.session.commit()
    eff = policies.effective_policy(org.rep.id)
    assert (eff["max_customers"].value, eff["max_customers"].source) == (40, "department:华东大区")
    assert (eff["daily_claim_limit"].value, eff["daily_claim_limit"].source) == (5, "department:销售中心")
    assert (eff["cooldown_days"].value, eff["cooldown_days"].source) == (7, "user")
    assert (eff["max_locked"].value, eff["max_locked"].source) == (10, "global")
    north = policies.effective_policy(org.rep_north.id)
    assert north["max_customers"].value == 60


def test_policy_edit_in_form_is_audited(db, org, admin_client):
    pol = policies.global_policy()
    page = admin_client.get(f"/policies/edit/{pol.id}")
    assert page.status_code == 200
    form = {"scope": "global", "max_customers": "80", "max_locked": "10",
            "daily_claim_limit": "20", "cooldown_days": "30", "reclaim_no_followup_days": "30",
            "reclaim_no_deal_days": "90", "warn_before_days": "3",
            "csrf_token": admin_client.csrf}
    resp = admin_client.post(f"/policies/edit/{pol.id}", data=form)
    assert resp.status_code == 302
    db.session.expire_all()
    assert policies.global_policy().max_customers == 80
    log = db.session.execute(select(AuditLog).where(AuditLog.object_type == "policy")).scalar_one()
    assert log.changes["max_customers"] == [100, 80]
    assert log.actor_id == org.admin.id


def test_policy_form_is_read_only_for_manager_and_hidden_from_rep(db, org, clients):
    pol = policies.global_policy()
    assert clients.manager.get("/policies/list/").status_code == 200
    resp = clients.manager.post(f"/policies/edit/{pol.id}",
                                data={"scope": "global", "max_customers": "1",
                                      "csrf_token": clients.manager.csrf})
    assert resp.status_code == 403
    db.session.expire_all()
    assert policies.global_policy().max_customers == 100
    assert clients.rep.get("/policies/list/").status_code == 403


def test_ui_is_chinese_by_default_and_english_one_click_away(db, org, rep_client):
    html = rep_client.get("/customers/list/").get_data(as_text=True)
    # The owner column is not sortable (keyset lists sort by indexed columns): a plain header.
    assert "<th>负责人 / 公海</th>" in html and "Owner / pool" not in html
    rep_client.get("/lang/en")
    html = rep_client.get("/customers/list/").get_data(as_text=True)
    assert "<th>Owner / pool</th>" in html and "负责人 / 公海" not in html


def test_crm_init_is_idempotent(app, db, org):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["crm", "init"])
    assert first.exit_code == 0, first.output
    second = runner.invoke(args=["crm", "init"])
    assert second.exit_code == 0, second.output
    from app.models import Pool

    assert db.session.query(Pool).filter_by(is_default=True, record_type="customer").count() == 1
    assert db.session.query(Pool).filter_by(is_default=True, record_type="lead").count() == 1
    assert db.session.query(Policy).filter_by(scope="global").count() == 1
    assert "管理员账号" not in second.output  # admin exists: not created again


def test_crm_export_writes_only_the_users_scope(app, db, org):
    runner = app.test_cli_runner()
    out = runner.invoke(args=["crm", "export", "--user", "rep1"])
    assert out.exit_code == 0, out.output
    assert org.c_rep.name in out.output
    assert org.c_rep2.name not in out.output and org.c_pool.name not in out.output


def test_policy_validation_names_the_field(db, org):
    from app.services.policies import validate_policy

    with pytest.raises(ValidationFailed) as exc:
        validate_policy(Policy(scope="department", max_customers=10))
    assert exc.value.fields == {"department": "部门策略须选择部门，且不选用户"}
    with pytest.raises(ValidationFailed) as exc:
        validate_policy(Policy(scope="user", user_id=org.rep.id, daily_claim_limit=-1))
    assert exc.value.fields == {"daily_claim_limit": "不能为负数"}
    validate_policy(Policy(scope="user", user_id=org.rep.id, max_customers=5))


def test_policy_form_refuses_department_policy_without_department(db, org, admin_client):
    resp = admin_client.post("/policies/add", data={
        "scope": "department", "max_customers": "5", "csrf_token": admin_client.csrf},
        follow_redirects=True)
    assert "部门策略须选择部门，且不选用户" in resp.get_data(as_text=True)
    assert db.session.query(Policy).filter_by(scope="department").count() == 0
