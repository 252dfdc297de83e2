"""Assignment rules: first match wins, strategies, caps, first-contact protection."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import AssignmentRule, Ownership, OwnershipEvent, Policy, PoolMember
from app.services import customers, departure, rules
from app.services.errors import ValidationFailed
from tests.helpers import holder_of


def add_rule(db, **kw):
    rule = AssignmentRule(**kw)
    db.session.add(rule)
    db.session.commit()
    return rule


def test_first_matching_rule_places_a_staff_created_customer(db, org):
    add_rule(db, name="浙江给 rep2", position=10, province="浙江", target_type="user",
             target_user_id=org.rep2.id)
    add_rule(db, name="浙江制造业给华北", position=5, province="浙江", industry="制造业",
             target_type="user", target_user_id=org.rep_north.id)
    c = customers.create_customer(org.staff, {"name": "宁波制造", "province": "浙江",
                                              "industry": "制造业"})
    assert holder_of(db, c.id) == (org.rep_north.id, None)
    c2 = customers.create_customer(org.staff, {"name": "杭州软件", "province": "浙江",
                                               "industry": "软件"})
    assert holder_of(db, c2.id) == (org.rep2.id, None)
    ev = db.session.execute(select(OwnershipEvent).where(OwnershipEvent.customer_id == c2.id)
                            ).scalar_one()
    assert ev.rule == "rule:浙江给 rep2"
    assert db.session.get(Ownership, c2.id).acquired_how == "rule-assigned"
    c3 = customers.create_customer(org.staff, {"name": "江苏客户", "province": "江苏"})
    assert holder_of(db, c3.id) == (None, org.pool.id)  # no rule: default pool


def test_first_contact_is_protected(db, org):
    add_rule(db, name="全部给 rep2", target_type="user", target_user_id=org.rep2.id)
    c = customers.create_customer(org.rep, {"name": "我自己找到的客户"})
    assert holder_of(db, c.id) == (org.rep.id, None)


def test_department_round_robin_and_cap_fallback(db, org):
    add_rule(db, name="华东轮流", target_type="department", target_department_id=org.east.id,
             strategy="round_robin")
    got = [holder_of(db, customers.create_customer(org.staff, {"name": f"轮流{i}"}).id)[0]
           for i in range(4)]
    assert got == [org.rep.id, org.rep2.id, org.rep.id, org.rep2.id]
    db.session.add(Policy(scope="department", department_id=org.east.id, max_customers=3))
    db.session.commit()
    c = customers.create_customer(org.staff, {"name": "都满了"})
    assert holder_of(db, c.id) == (None, org.pool.id)


def test_least_loaded_strategy(db, org):
    customers.create_customer(org.rep, {"name": "rep1 多一个"})
    add_rule(db, name="华东最少优先", target_type="department", target_department_id=org.east.id,
             strategy="least_loaded")
    c = customers.create_customer(org.staff, {"name": "给最少的"})
    assert holder_of(db, c.id) == (org.rep2.id, None)


def test_apply_rules_to_pool_customers_on_demand(db, org):
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.centre.id))
    db.session.commit()
    ids = [customers.create_customer(org.staff, {"name": f"公海{i}", "city": "上海"}).id
           for i in range(2)]
    add_rule(db, name="上海给 rep1", city="上海", target_type="user", target_user_id=org.rep.id)
    preview = rules.apply_to_pool_customers(org.manager, ids + [org.c_pool.id])
    assert [(p["customer_id"], p["owner_id"]) for p in preview["plan"]] == [
        (org.c_pool.id, None), (ids[0], org.rep.id), (ids[1], org.rep.id)]
    assert holder_of(db, ids[0]) == (None, org.pool.id)
    rules.apply_to_pool_customers(org.manager, ids + [org.c_pool.id], dry_run=False)
    assert holder_of(db, ids[0]) == (org.rep.id, None)
    assert holder_of(db, org.c_pool.id) == (None, org.pool.id)


def test_departure_through_rules(db, org):
    add_rule(db, name="华东给 rep2", target_type="department", target_department_id=org.east.id,
             strategy="least_loaded")
    departure.handover(org.admin, org.rep.id, "rules", dry_run=False)
    assert holder_of(db, org.c_rep.id) == (org.rep2.id, None)


def test_rule_validation(db, org):
    with pytest.raises(ValidationFailed) as exc:
        rules.validate_rule(AssignmentRule(name="x", target_type="department", grade="D"))
    assert set(exc.value.fields) == {"target_department", "grade"}


def test_a_rule_cannot_place_records_with_a_marketing_user(db, org):
    with pytest.raises(ValidationFailed) as exc:
        rules.validate_rule(AssignmentRule(name="x", target_type="user",
                                           target_user_id=org.marketing.id))
    assert exc.value.fields == {
        "target_user": f"{org.marketing.display_name} 是市场专员，不能负责客户或线索"}
