"""app.services.customers: validation, normalised keys, where a new customer goes, caps."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app.models import AuditLog, Customer, Ownership, OwnershipEvent, Policy
from app.services import customers
from app.services.errors import CapExceeded, OutOfScope, PermissionDenied, ValidationFailed


def test_rep_creates_customer_owned_by_rep_with_created_event(db, org):
    c = customers.create_customer(org.rep, {"name": "宁波海天机械有限公司",
                                            "mobile": "+86 139-0013-9001",
                                            "email": "  Sales@HaiTian.COM "})
    own = db.session.get(Ownership, c.id)
    assert (own.owner_id, own.pool_id, own.acquired_how) == (org.rep.id, None, "created")
    assert own.first_owner_id == org.rep.id
    assert c.mobile_e164 == "+8613900139001"
    assert c.email_norm == "sales@haitian.com"
    assert c.email == "Sales@HaiTian.COM"  # the raw value is kept as typed (trimmed)
    events = db.session.execute(select(OwnershipEvent).where(OwnershipEvent.customer_id == c.id)
                                ).scalars().all()
    assert [(e.kind, e.to_owner_id, e.to_pool_id, e.actor_id) for e in events] == [
        ("created", org.rep.id, None, org.rep.id)]


def test_staff_and_admin_create_into_default_pool_unless_owner_chosen(db, org):
    c = customers.create_customer(org.staff, {"name": "广州白云制药有限公司"})
    assert db.session.get(Ownership, c.id).pool_id == org.pool.id
    assert db.session.get(Ownership, c.id).owner_id is None
    c2 = customers.create_customer(org.admin, {"name": "深圳南山软件有限公司"}, owner_id=org.rep2.id)
    assert db.session.get(Ownership, c2.id).owner_id == org.rep2.id


def test_manager_may_name_an_owner_only_within_scope(db, org):
    c = customers.create_customer(org.manager, {"name": "无锡太湖纺织有限公司"}, owner_id=org.rep.id)
    assert db.session.get(Ownership, c.id).owner_id == org.rep.id
    before = db.session.execute(select(func.count()).select_from(Customer)).scalar_one()
    with pytest.raises(ValidationFailed) as exc:
        customers.create_customer(org.manager, {"name": "天津港务有限公司"}, owner_id=org.rep_north.id)
    assert exc.value.fields == {"owner": "只能指定您数据权限内的负责人"}
    assert db.session.execute(select(func.count()).select_from(Customer)).scalar_one() == before


def test_rep_cannot_create_for_someone_else(db, org):
    with pytest.raises(ValidationFailed) as exc:
        customers.create_customer(org.rep, {"name": "X 公司"}, owner_id=org.rep2.id)
    assert "owner" in exc.value.fields


def test_auditor_cannot_create(db, org):
    with pytest.raises(PermissionDenied):
        customers.create_customer(org.auditor, {"name": "审计不能建的客户"})


@pytest.mark.parametrize("field,value,message", [
    ("mobile", "12345", "无效的电话号码：12345"),
    ("mobile", "021-62345678", "不是手机号码：021-62345678"),
    ("phone", "abc", "无法识别的电话号码：abc"),
    ("email", "not-an-email", "无效的邮箱地址：not-an-email"),
    ("birthday", "1990-02-30", "生日不是有效日期"),
    ("birthday", "13-01", "生日不是有效日期"),
    ("birthday", "yesterday", "生日格式应为 YYYY-MM-DD 或 MM-DD"),
    ("customer_type", "alien", "客户类型只能是 company（企业）或 person（个人）"),
    ("name", "  ", "客户名称不能为空"),
    ("name", "长" * 201, "不能超过 200 个字符"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else "long")
def test_bad_values_are_refused_with_the_field_and_reason(db, org, field, value, message):
    data = {"name": "合法名称", field: value}
    before = db.session.execute(select(func.count()).select_from(Customer)).scalar_one()
    with pytest.raises(ValidationFailed) as exc:
        customers.create_customer(org.rep, data)
    assert exc.value.fields[field] == message
    assert db.session.execute(select(func.count()).select_from(Customer)).scalar_one() == before


def test_every_bad_field_is_reported_at_once(db, org):
    with pytest.raises(ValidationFailed) as exc:
        customers.create_customer(org.rep, {"name": "", "mobile": "1", "email": "x@"})
    assert set(exc.value.fields) == {"name", "mobile", "email"}


@pytest.mark.parametrize("raw,expected", [
    # Numbers nobody in the org fixture has (the dedupe rules would refuse a second one).
    ("13700137000", "+8613700137000"),
    ("+86 137 0013 7000", "+8613700137000"),
    ("(+86)137-0013-7000", "+8613700137000"),
    ("１３７００１３７０００", "+8613700137000"),
    ("010-62345678", "+861062345678"),
    ("021 6234 5678 转 801", "+862162345678;ext=801"),
    ("+1 650-253-0000", "+16502530000"),
])
def test_phone_normalisation(db, org, raw, expected):
    c = customers.create_customer(org.rep, {"name": "号码测试", "phone": raw})
    assert c.phone_e164 == expected
    assert c.phone == raw.strip()


def test_lunar_and_solar_birthdays(db, org):
    person = customers.create_customer(org.rep, {"name": "王小明", "customer_type": "person",
                                                 "birthday": "1988-02-30", "birthday_lunar": True})
    assert (person.birth_year, person.birth_month, person.birth_day, person.birthday_lunar) == \
        (1988, 2, 30, True)
    assert person.birthday_display == "农历 1988-02-30"
    leap = customers.create_customer(org.rep, {"name": "李四", "customer_type": "person",
                                               "birthday": "02-29"})
    assert (leap.birth_year, leap.birth_month, leap.birth_day) == (None, 2, 29)
    with pytest.raises(ValidationFailed) as exc:
        customers.create_customer(org.rep, {"name": "张三", "customer_type": "person",
                                            "birthday": "1990-13-01", "birthday_lunar": True})
    assert exc.value.fields["birthday"] == "农历生日：月份 1–12，日期 1–30"


def test_create_refused_over_the_cap_names_the_numbers(db, org):
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=2))
    db.session.commit()
    customers.create_customer(org.rep, {"name": "第二个客户"})  # rep already owns c_rep
    with pytest.raises(CapExceeded) as exc:
        customers.create_customer(org.rep, {"name": "第三个客户"})
    assert exc.value.code == "cap_exceeded"
    assert exc.value.message == "超出客户上限：上限 2，已拥有 2，本次新增 1"
    assert db.session.execute(select(func.count()).select_from(Ownership)
                              .where(Ownership.owner_id == org.rep.id)).scalar_one() == 2


def test_won_customers_do_not_count_unless_policy_says_so(db, org):
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=1))
    db.session.get(Ownership, org.c_rep.id).won = True
    db.session.commit()
    customers.create_customer(org.rep, {"name": "已成交不占名额"})
    db.session.get(Policy, 2)  # noqa: B018
    pol = db.session.execute(select(Policy).where(Policy.user_id == org.rep.id)).scalar_one()
    pol.count_won = True
    db.session.commit()
    with pytest.raises(CapExceeded) as exc:
        customers.create_customer(org.rep, {"name": "这次超了"})
    assert exc.value.message == "超出客户上限：上限 1，已拥有 2，本次新增 1"


def test_departed_user_cannot_be_named_owner(db, org):
    from app.services import org as org_service

    lonely = db.session.get(type(org.rep2), org.rep2.id)
    db.session.delete(db.session.get(Customer, org.c_rep2.id))
    db.session.commit()
    org_service.mark_departed(lonely.id, org.admin.id)
    with pytest.raises(ValidationFailed) as exc:
        customers.create_customer(org.admin, {"name": "给离职的人"}, owner_id=lonely.id)
    assert "已停用或离职" in exc.value.fields["owner"]


def test_update_is_scoped_validated_and_audited(db, org):
    customers.update_customer(org.rep, org.c_rep.id, {"city": "宁波", "mobile": "13700137000"})
    c = db.session.get(Customer, org.c_rep.id)
    assert (c.city, c.mobile_e164) == ("宁波", "+8613700137000")
    log = db.session.execute(select(AuditLog).where(AuditLog.object_type == "customer",
                                                    AuditLog.action == "update")).scalar_one()
    assert log.changes["city"] == ["杭州", "宁波"]
    assert log.actor_id == org.rep.id
    with pytest.raises(OutOfScope):
        customers.update_customer(org.rep, org.c_rep2.id, {"city": "苏州"})
    with pytest.raises(OutOfScope):
        customers.update_customer(org.manager, org.c_north.id, {"city": "天津"})
    customers.update_customer(org.manager, org.c_rep2.id, {"city": "苏州"})  # own department
    customers.update_customer(org.staff, org.c_north.id, {"city": "天津"})   # staff: all records
    with pytest.raises(ValidationFailed) as exc:
        customers.update_customer(org.admin, org.c_rep.id, {"created_by_id": 1})
    assert exc.value.fields == {"created_by_id": "不能修改或不存在的字段"}


def test_delete_is_admin_only_and_keeps_history(db, org):
    with pytest.raises(PermissionDenied):
        customers.delete_customer(org.rep, org.c_rep.id)
    customers.delete_customer(org.admin, org.c_rep.id)
    assert db.session.get(Customer, org.c_rep.id) is None
    assert db.session.get(Ownership, org.c_rep.id) is None
    kinds = db.session.execute(select(OwnershipEvent.kind).where(
        OwnershipEvent.customer_id == org.c_rep.id).order_by(OwnershipEvent.id)).scalars().all()
    assert kinds == ["created", "deleted"]


def test_shared_customer_is_visible_to_the_rep(db, org):
    from app.models import CustomerShare
    from app.security import can_see_customer

    assert not can_see_customer(org.rep, org.c_rep2.id)
    db.session.add(CustomerShare(customer_id=org.c_rep2.id, user_id=org.rep.id))
    db.session.commit()
    assert can_see_customer(org.rep, org.c_rep2.id)
    assert customers.get_customer(org.rep, org.c_rep2.id).id == org.c_rep2.id


def test_contacts_follow_the_customer_scope(db, org):
    contact = customers.add_contact(org.rep, org.c_rep.id, {"name": "赵经理", "mobile": "13600136000"})
    assert contact.mobile_e164 == "+8613600136000"
    with pytest.raises(OutOfScope):
        customers.add_contact(org.rep, org.c_rep2.id, {"name": "不该加"})
    with pytest.raises(OutOfScope):
        customers.update_contact(org.rep2, contact.id, {"title": "总监"})
    customers.update_contact(org.manager, contact.id, {"title": "总监"})
    with pytest.raises(ValidationFailed):
        customers.update_contact(org.rep, contact.id, {"email": "bad@"})
