"""SLA policies: validation naming each field, the targets' order, unique names, who edits
(admins, service managers) and who reads (the service desk)."""
from __future__ import annotations

import pytest

from app.services import sla_policies
from app.services.errors import PermissionDenied, ValidationFailed


def test_every_bad_field_is_named(db, org):
    with pytest.raises(ValidationFailed) as err:
        sla_policies.create(org.service_manager, {
            "name": "", "priority": "P9", "grade": "D", "clock": "weekly",
            "first_response_minutes": 0, "resolution_minutes": "x", "warn_before_minutes": -1,
            "position": 2 ** 40, "active": "yes", "colour": "red"})
    assert err.value.fields == {
        "name": "请填写策略名称", "priority": "请填写 P1, P2, P3, P4 之一，留空表示不限",
        "grade": "请填写 A, B, C 之一，留空表示不限", "clock": "请填写 business, 24x7 之一",
        "first_response_minutes": "请填写 1 到 525600 之间的整数分钟",
        "resolution_minutes": "请填写 1 到 525600 之间的整数分钟",
        "warn_before_minutes": "请填写 0 到 525600 之间的整数分钟",
        "position": "请填写 0 到 1000000 之间的整数", "active": "请填写 true 或 false",
        "colour": "不能修改或不存在的字段"}


def test_targets_in_order_and_names_unique(db, org):
    with pytest.raises(ValidationFailed) as err:
        sla_policies.create(org.admin, {"name": "倒挂", "first_response_minutes": 120,
                                        "resolution_minutes": 60})
    assert err.value.fields == {"resolution_minutes":
                                "解决时限（60 分钟）短于首次响应时限（120 分钟）"}
    row = sla_policies.create(org.admin, {"name": "标准", "first_response_minutes": 60,
                                          "resolution_minutes": 480, "priority": "P2"})
    assert (row.clock, row.warn_before_minutes, row.escalate_after_minutes) == (
        "business", 60, 120)
    with pytest.raises(ValidationFailed) as err:
        sla_policies.create(org.admin, {"name": "标准", "first_response_minutes": 1,
                                        "resolution_minutes": 2})
    assert err.value.fields == {"name": "已有名为“标准”的 SLA 策略"}
    with pytest.raises(ValidationFailed) as err:
        sla_policies.update(org.admin, row.id, {"resolution_minutes": 30})
    assert list(err.value.fields) == ["resolution_minutes"]
    assert sla_policies.update(org.service_manager, row.id, {"priority": None}).priority is None


def test_who_edits_and_who_reads(db, org):
    row = sla_policies.create(org.admin, {"name": "读", "first_response_minutes": 1,
                                          "resolution_minutes": 2})
    for user in (org.agent, org.manager, org.staff):
        with pytest.raises(PermissionDenied) as err:
            sla_policies.update(user, row.id, {"name": "改"})
        assert err.value.message == "只有管理员和客服主管可以修改 SLA 策略和工作日历"
    assert sla_policies.get_policy(org.agent, row.id).id == row.id
    with pytest.raises(PermissionDenied):
        sla_policies.get_policy(org.rep, row.id)
    sla_policies.delete(org.service_manager, row.id)
    assert sla_policies.list_policies(org.agent) == []
