"""Editing policies outside the form (the REST API's service): admins only, one policy per
target, typed fields, the global default kept, every change audited with old -> new."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AuditLog, Policy
from app.services import policies, policy_config
from app.services.errors import NotFound, PermissionDenied, ValidationFailed


def _audits(db) -> list[tuple]:
    db.session.commit()
    return [(a.action, a.object_id, a.changes) for a in db.session.execute(
        select(AuditLog).where(AuditLog.object_type == "policy").order_by(AuditLog.id)
    ).scalars()]


def test_admin_creates_a_department_policy_and_it_is_audited(db, org):
    policy = policy_config.create_policy(org.admin, {"scope": "department",
                                                     "department_id": org.east.id,
                                                     "max_customers": 40, "count_won": None})
    assert policy_config.to_dict(policy) == {
        "id": policy.id, "scope": "department", "department_id": org.east.id, "user_id": None,
        "max_customers": 40, "count_won": None, "max_locked": None, "daily_claim_limit": None,
        "cooldown_days": None, "reclaim_no_followup_days": None, "reclaim_no_deal_days": None,
        "warn_before_days": None, "lead_max": None, "lead_daily_claim_limit": None,
        "lead_reclaim_no_followup_days": None, "call_min_talk_seconds": None,
        "segment_record_type": None,
        "segment_grade": None, "segment_category": None, "segment_product_line": None,
        "segment_source": None}
    assert _audits(db) == [("create", policy.id, {"scope": [None, "department"],
                                                  "department_id": [None, org.east.id],
                                                  "max_customers": [None, 40]})]
    assert policies.policy_value(org.rep.id, "max_customers") == 40


@pytest.mark.parametrize("role", ["manager", "rep", "staff", "auditor"])
def test_only_admins_edit_policies(db, org, role):
    actor = {"manager": org.manager, "rep": org.rep, "staff": org.staff,
             "auditor": org.auditor}[role]
    pol = policies.global_policy()
    for call in (lambda: policy_config.create_policy(actor, {"scope": "user",
                                                             "user_id": org.rep.id}),
                 lambda: policy_config.update_policy(actor, pol.id, {"max_customers": 1}),
                 lambda: policy_config.delete_policy(actor, pol.id)):
        with pytest.raises(PermissionDenied) as err:
            call()
        assert (err.value.code, err.value.message) == ("forbidden", "只有管理员可以修改归属策略")
    assert db.session.execute(select(Policy)).scalars().all() == [pol]
    assert policies.global_policy().max_customers == 100


def test_a_second_policy_for_the_same_target_is_refused(db, org):
    policy_config.create_policy(org.admin, {"scope": "user", "user_id": org.rep.id,
                                            "daily_claim_limit": 3})
    with pytest.raises(ValidationFailed) as err:
        policy_config.create_policy(org.admin, {"scope": "user", "user_id": org.rep.id,
                                                "daily_claim_limit": 9})
    assert err.value.fields == {"scope": "该对象已有策略，请修改原策略"}
    with pytest.raises(ValidationFailed) as err:
        policy_config.create_policy(org.admin, {"scope": "global"})
    assert err.value.fields == {"scope": "该对象已有策略，请修改原策略"}
    other = policy_config.create_policy(org.admin, {"scope": "user", "user_id": org.rep2.id})
    with pytest.raises(ValidationFailed) as err:
        policy_config.update_policy(org.admin, other.id, {"user_id": org.rep.id})
    assert err.value.fields == {"scope": "该对象已有策略，请修改原策略"}
    db.session.expire_all()
    assert db.session.get(Policy, other.id).user_id == org.rep2.id
    assert policies.policy_value(org.rep.id, "daily_claim_limit") == 3


@pytest.mark.parametrize("data, fields", [
    ({"scope": "user", "user_id": 1, "colour": "red"}, {"colour": "不能修改或不存在的字段"}),
    ({"scope": "user", "user_id": 1, "max_customers": "40"},
     {"max_customers": "max_customers 必须是整数或 null"}),
    ({"scope": "user", "user_id": 1, "max_locked": True},
     {"max_locked": "max_locked 必须是整数或 null"}),
    ({"scope": "user", "user_id": 1, "count_won": "yes"},
     {"count_won": "count_won 必须是 true、false 或 null"}),
    ({"scope": "department", "department_id": 999999}, {"department_id": "部门不存在"}),
    ({"scope": "user", "user_id": 999999}, {"user_id": "用户不存在"}),
    ({"scope": "department"}, {"department": "部门策略须选择部门，且不选用户"}),
])
def test_bad_input_is_refused_naming_the_field(db, org, data, fields):
    if data.get("user_id") == 1:
        data = dict(data, user_id=org.rep.id)
    with pytest.raises(ValidationFailed) as err:
        policy_config.create_policy(org.admin, data)
    assert err.value.fields == fields
    assert db.session.execute(select(Policy).where(Policy.scope != "global")).first() is None


def test_update_audits_only_what_changed_and_a_refused_update_changes_nothing(db, org):
    pol = policies.global_policy()
    policy_config.update_policy(org.admin, pol.id, {"max_customers": 80, "cooldown_days": 30})
    assert _audits(db) == [("update", pol.id, {"max_customers": [100, 80]})]
    with pytest.raises(ValidationFailed) as err:
        policy_config.update_policy(org.admin, pol.id, {"max_customers": -1})
    assert err.value.fields == {"max_customers": "不能为负数"}
    db.session.expire_all()
    assert policies.global_policy().max_customers == 80
    assert len(_audits(db)) == 1


def test_delete_removes_a_policy_but_never_the_global_default(db, org):
    pol = policy_config.create_policy(org.admin, {"scope": "department",
                                                  "department_id": org.north.id,
                                                  "cooldown_days": 5})
    policy_config.delete_policy(org.admin, pol.id)
    assert db.session.get(Policy, pol.id) is None
    assert _audits(db)[-1] == ("delete", pol.id, {"scope": ["department", None],
                                                  "department_id": [org.north.id, None],
                                                  "cooldown_days": [5, None]})
    with pytest.raises(ValidationFailed) as err:
        policy_config.delete_policy(org.admin, policies.global_policy().id)
    assert err.value.fields == {"scope": "全局默认策略不能删除，只能修改"}
    with pytest.raises(NotFound) as err:
        policy_config.delete_policy(org.admin, pol.id)
    assert (err.value.code, err.value.message) == ("not_found", "策略不存在")
    assert policies.global_policy() is not None


def test_effective_for_shows_sources_within_the_actors_scope(db, org):
    policy_config.create_policy(org.admin, {"scope": "department", "department_id": org.east.id,
                                            "max_customers": 40})
    mine = policy_config.effective_for(org.manager, org.rep.id)
    assert mine["max_customers"] == {"value": 40, "source": "department:华东大区"}
    assert mine["cooldown_days"] == {"value": 30, "source": "global"}
    assert policy_config.effective_for(org.auditor, org.rep.id) == mine
    assert policy_config.effective_for(org.rep, org.rep.id) == mine
    for actor, user_id in ((org.manager, org.rep_north.id), (org.rep, org.rep2.id),
                           (org.admin, 999999)):
        with pytest.raises(NotFound) as err:
            policy_config.effective_for(actor, user_id)
        assert (err.value.code, err.value.message) == ("not_found", "用户不存在或不在您的数据权限内")
