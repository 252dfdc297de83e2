"""The assignment-rule form: admins edit (audited), managers and auditors read, reps nothing."""
from sqlalchemy import select

from app.models import AssignmentRule, AuditLog


def test_admin_adds_rule_in_form(clients, db, org):
    resp = clients.admin.post("/assignment-rules/add", data={
        "position": "10", "name": "浙江给 rep1", "active": "y", "province": "浙江",
        "target_type": "user", "target_user": str(org.rep.id), "strategy": "round_robin",
        "csrf_token": clients.admin.csrf})
    assert resp.status_code == 302
    rule = db.session.execute(select(AssignmentRule)).scalar_one()
    assert (rule.province, rule.target_user_id, rule.active) == ("浙江", org.rep.id, True)
    assert db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "assignment_rule")).scalar_one().actor_id == org.admin.id


def test_form_refuses_department_target_without_department(clients, db, org):
    resp = clients.admin.post("/assignment-rules/add", data={
        "position": "1", "name": "缺部门", "target_type": "department", "strategy": "even",
        "csrf_token": clients.admin.csrf}, follow_redirects=True)
    assert "目标为部门时须选择部门" in resp.get_data(as_text=True)
    assert db.session.execute(select(AssignmentRule)).first() is None


def test_who_sees_rules(clients):
    assert clients.manager.get("/assignment-rules/list/").status_code == 200
    assert clients.auditor.get("/assignment-rules/list/").status_code == 200
    assert clients.rep.get("/assignment-rules/list/").status_code == 403
    assert clients.manager.post("/assignment-rules/add", data={
        "name": "经理不能加", "target_type": "pool", "strategy": "even",
        "csrf_token": clients.manager.csrf}).status_code == 403
