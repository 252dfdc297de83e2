"""Effective ownership policy: the user's row beats the nearest department's, which beats its
parents', which beat the global row; a field left empty inherits; the built-in default fills
what nobody set. And the shape a policy row must have."""
from __future__ import annotations

import pytest

from app.models import Policy
from app.services import policies
from app.services.errors import ValidationFailed
from app.services.policies import EffectiveValue


def _add(db, **kw) -> Policy:
    policy = Policy(**kw)
    db.session.add(policy)
    db.session.commit()
    return policy


def test_without_own_rows_a_user_gets_the_global_row(db, org):
    got = policies.effective_policy(org.rep.id)
    assert got == {field: EffectiveValue(value, "global")
                   for field, value in policies.GLOBAL_DEFAULTS.items()}


def test_user_row_beats_department_beats_parent_beats_global(db, org):
    _add(db, scope="department", department_id=org.centre.id, max_customers=60,
         cooldown_days=7, max_locked=4)
    _add(db, scope="department", department_id=org.east.id, max_customers=40, max_locked=None)
    _add(db, scope="user", user_id=org.rep.id, daily_claim_limit=3, count_won=True)
    got = policies.effective_policy(org.rep.id)
    assert got["daily_claim_limit"] == EffectiveValue(3, "user")
    assert got["count_won"] == EffectiveValue(True, "user")
    assert got["max_customers"] == EffectiveValue(40, "department:华东大区")
    assert got["cooldown_days"] == EffectiveValue(7, "department:销售中心")
    assert got["max_locked"] == EffectiveValue(4, "department:销售中心")  # east's is empty
    assert got["warn_before_days"] == EffectiveValue(3, "global")
    # rep2 shares the department but not rep1's own row; rep3 is in the other department.
    assert policies.effective_policy(org.rep2.id)["daily_claim_limit"] == EffectiveValue(
        20, "global")
    assert policies.effective_policy(org.rep_north.id)["max_customers"] == EffectiveValue(
        60, "department:销售中心")
    assert policies.policy_value(org.rep.id, "max_customers") == 40


def test_effective_policies_of_many_users_equal_one_by_one(db, org):
    _add(db, scope="department", department_id=org.north.id, max_customers=7)
    _add(db, scope="user", user_id=org.rep2.id, reclaim_no_deal_days=15)
    users = [org.rep.id, org.rep2.id, org.rep_north.id, org.staff.id, org.admin.id]
    assert policies.effective_policies(users) == {
        uid: policies.effective_policy(uid) for uid in users}
    assert policies.effective_policies([]) == {}


def test_a_field_nobody_set_falls_back_to_the_built_in_default(db, org):
    pol = policies.global_policy()
    pol.warn_before_days = None
    db.session.commit()
    assert policies.effective_policy(org.rep.id)["warn_before_days"] == EffectiveValue(
        3, "built-in")


def test_the_global_row_is_created_once(db, org):
    first = policies.ensure_global_policy()
    assert policies.ensure_global_policy().id == first.id == policies.global_policy().id
    db.session.delete(first)
    db.session.commit()
    assert policies.global_policy() is None
    again = policies.ensure_global_policy()
    assert {f: getattr(again, f) for f in policies.GLOBAL_DEFAULTS} == policies.GLOBAL_DEFAULTS


def test_department_chain_is_nearest_first(db, org):
    assert policies.department_chain_ids(org.rep.id) == [org.east.id, org.centre.id]
    assert policies.department_chain_ids(org.admin.id) == []  # no department
    assert policies.chain_from_path("/1/4/9/") == [9, 4, 1]
    assert policies.chain_from_path(None) == []


@pytest.mark.parametrize("kw, fields", [
    ({"scope": "team"}, {"scope": "适用范围只能是 global、department 或 user"}),
    ({"scope": "department"}, {"department": "部门策略须选择部门，且不选用户"}),
    ({"scope": "department", "department_id": 1, "user_id": 1},
     {"department": "部门策略须选择部门，且不选用户"}),
    ({"scope": "user"}, {"user": "用户策略须选择用户，且不选部门"}),
    ({"scope": "user", "user_id": 1, "department_id": 1},
     {"user": "用户策略须选择用户，且不选部门"}),
    ({"scope": "global", "user_id": 1}, {"scope": "全局策略不能指定部门或用户"}),
    ({"scope": "global", "max_customers": -1, "cooldown_days": -5},
     {"max_customers": "不能为负数", "cooldown_days": "不能为负数"}),
])
def test_a_malformed_policy_is_refused_naming_each_field(org, kw, fields):
    with pytest.raises(ValidationFailed) as err:
        policies.validate_policy(Policy(**kw))
    assert (err.value.code, err.value.fields) == ("invalid", fields)


def test_well_formed_policies_pass(db, org):
    for kw in ({"scope": "global", "max_customers": 0},
               {"scope": "department", "department_id": org.east.id},
               {"scope": "user", "user_id": org.rep.id, "count_won": False}):
        policies.validate_policy(Policy(**kw))
