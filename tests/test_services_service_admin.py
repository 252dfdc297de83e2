"""The service desk's configuration: the category tree, teams, routing rules, settings and
dedicated agents (by hand and by the grade-A rule)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, update

from app.models import AuditLog, Ownership
from app.models.service_desk import (CustomerServiceAgent, ServiceTeamMember, TicketCategory)
from app.services import absences, bootstrap, classification, service_admin
from app.services.errors import (Conflict, NotFound, OutOfScope, PermissionDenied,
                                 ValidationFailed)
from tests.service_desk_fixtures import NOW, category, team


def test_bootstrap_seeds_the_five_categories_once(db, org):
    names = lambda: [(c.name, c.is_complaint, c.path == f"/{c.id}/") for c in db.session.execute(  # noqa: E731
        select(TicketCategory).order_by(TicketCategory.position)).scalars()]
    assert names() == [("咨询", False, True), ("故障", False, True), ("投诉", True, True),
                       ("退换货", False, True), ("建议", False, True)]
    service_admin.update_category(org.admin, category("建议").id, {"name": "意见建议"})
    bootstrap.initialise()
    assert [n for n, _c, _p in names()] == ["咨询", "故障", "投诉", "退换货", "意见建议"]


def test_category_tree_paths_follow_a_move_and_refuse_cycles(db, org):
    fault = category("故障")
    network = service_admin.create_category(org.admin, {"name": "网络", "parent_id": fault.id})
    wifi = service_admin.create_category(org.admin, {"name": "无线", "parent_id": network.id})
    assert wifi.path == f"/{fault.id}/{network.id}/{wifi.id}/"
    with pytest.raises(ValidationFailed) as exc:
        service_admin.update_category(org.admin, fault.id, {"parent_id": wifi.id})
    assert exc.value.fields == {"parent": "分类不能放在自身或其下级分类之下"}
    consult = category("咨询")
    service_admin.update_category(org.admin, network.id, {"parent_id": consult.id})
    db.session.refresh(wifi)
    assert wifi.path == f"/{consult.id}/{network.id}/{wifi.id}/"
    service_admin.update_category(org.admin, network.id, {"parent_id": None})
    db.session.refresh(wifi)
    assert wifi.path == f"/{network.id}/{wifi.id}/"


def test_category_refusals_name_the_rule(db, org):
    with pytest.raises(ValidationFailed) as exc:
        service_admin.create_category(org.admin, {"name": "投诉"})
    assert exc.value.fields == {"name": "已存在名为『投诉』的分类"}
    with pytest.raises(ValidationFailed) as exc:
        service_admin.create_category(org.admin, {"name": "x" * 101})
    assert exc.value.fields == {"name": "不能超过 100 个字符"}
    with pytest.raises(PermissionDenied) as exc:
        service_admin.create_category(org.service_manager, {"name": "新分类"})
    assert exc.value.message == "只有管理员可以修改工单分类"
    with pytest.raises(NotFound):
        service_admin.update_category(org.admin, 2**40, {"name": "x"})


def test_deactivating_a_category_deactivates_its_subtree(db, org):
    fault = category("故障")
    network = service_admin.create_category(org.admin, {"name": "网络", "parent_id": fault.id})
    service_admin.deactivate_category(org.admin, fault.id)
    db.session.refresh(network)
    assert (fault.active, network.active) == (False, False)
    with pytest.raises(ValidationFailed) as exc:
        service_admin.update_category(org.admin, network.id, {"active": True})
    assert exc.value.fields == {"parent": "上级分类『故障』已停用"}
    assert ("咨询", ) in [(label,) for _id, label in service_admin.category_choices()]
    assert all("故障" not in label for _id, label in service_admin.category_choices())


def test_team_members_must_be_active_service_users(db, org):
    with pytest.raises(ValidationFailed) as exc:
        team(org.admin, "一线", [org.agent, org.rep])
    assert exc.value.fields == {
        "members": f"只有在职的客服或客服主管可以成为成员：{org.rep.display_name}"}
    with pytest.raises(ValidationFailed) as exc:
        team(org.admin, "一线", [org.agent], lead_id=org.rep.id)
    assert exc.value.fields == {"lead": f"{org.rep.display_name} 不是在职的客服或客服主管"}
    first = team(org.admin, "一线", [org.agent, org.agent2], lead_id=org.agent.id,
                 manager_id=org.service_manager.id)
    assert service_admin.team_member_ids(first.id) == sorted([org.agent.id, org.agent2.id])
    service_admin.set_members(org.admin, first.id, [org.agent2.id])
    assert service_admin.team_member_ids(first.id) == [org.agent2.id]
    assert db.session.execute(select(func.count()).select_from(AuditLog).where(
        AuditLog.object_type == "service_team")).scalar_one() == 3
    with pytest.raises(ValidationFailed) as exc:
        team(org.admin, "一线", [org.agent])
    assert exc.value.fields == {"name": "已存在名为『一线』的客服组"}


def test_service_manager_changes_only_their_teams(db, org):
    mine = team(org.service_manager, "二线", [org.agent])
    assert mine.manager_id == org.service_manager.id
    other = team(org.admin, "三线", [org.agent2])
    with pytest.raises(PermissionDenied) as exc:
        service_admin.update_team(org.service_manager, other.id, {"strategy": "least_loaded"})
    assert exc.value.message == "客服主管只能修改自己管理的客服组"
    with pytest.raises(PermissionDenied):
        service_admin.update_team(org.agent, mine.id, {"strategy": "least_loaded"})
    with pytest.raises(ValidationFailed) as exc:
        service_admin.update_team(org.service_manager, mine.id, {"manager_id": None})
    assert exc.value.fields == {"manager": "客服主管须保留自己为其客服组的主管"}


def test_routing_rule_validation(db, org):
    first = team(org.admin, "一线", [org.agent])
    with pytest.raises(ValidationFailed) as exc:
        service_admin.create_rule(org.admin, {"name": "r", "priority": "P9", "grade": "D",
                                              "team_id": None})
    assert exc.value.fields == {"priority": "优先级为 P1、P2、P3、P4 之一（或不限）",
                                "grade": "等级只能是 A、B、C 或不限",
                                "team": "请选择规则分派到的客服组"}
    service_admin.update_team(org.admin, first.id, {"active": False})
    with pytest.raises(ValidationFailed) as exc:
        service_admin.create_rule(org.admin, {"name": "r", "team_id": first.id})
    assert exc.value.fields == {"team": "客服组『一线』已停用"}
    with pytest.raises(PermissionDenied):
        service_admin.create_rule(org.agent, {"name": "r", "team_id": first.id})


def test_settings_validation_and_audit(db, org):
    with pytest.raises(ValidationFailed) as exc:
        service_admin.update_settings(org.admin, {"low_score_threshold": 5,
                                                  "max_attachment_mb": 0,
                                                  "low_score_action": "mail",
                                                  "default_team_id": 2**40})
    assert exc.value.fields == {
        "low_score_threshold": "low_score_threshold 必须是 1 到 4 之间的整数",
        "max_attachment_mb": "max_attachment_mb 必须是 1 到 100 之间的整数",
        "low_score_action": "低分时重新打开工单或为负责人创建待办",
        "default_team_id": "default_team_id 必须是 1 到 2147483647 之间的整数"}
    first = team(org.admin, "一线", [org.agent])
    row = service_admin.update_settings(org.service_manager, {
        "low_score_threshold": 1, "default_team_id": first.id, "max_attachment_mb": 20})
    assert (row.low_score_threshold, row.default_team_id, row.max_attachment_mb) == (
        1, first.id, 20)
    with pytest.raises(PermissionDenied):
        service_admin.update_settings(org.agent, {"low_score_threshold": 1})


def test_dedicated_agent_set_by_hand(db, org):
    row = service_admin.set_dedicated_agent(org.staff, org.c_rep.id, org.agent.id)
    assert (row.agent_id, row.source, row.assigned_by_id) == (org.agent.id, "manual",
                                                             org.staff.id)
    assert service_admin.dedicated_agent_of(org.c_rep.id) == org.agent.id
    with pytest.raises(ValidationFailed) as exc:
        service_admin.set_dedicated_agent(org.admin, org.c_rep.id, org.rep.id)
    assert exc.value.fields == {"agent": f"{org.rep.display_name} 不是在职的客服或客服主管"}
    for who in (org.rep, org.manager, org.agent, org.auditor):
        with pytest.raises(PermissionDenied) as exc:
            service_admin.set_dedicated_agent(who, org.c_rep.id, org.agent2.id)
        assert exc.value.message == "只有管理员、后台人员和客服主管可以设置客户的专属客服"
    # A service manager: only agents of the teams they manage.
    with pytest.raises(PermissionDenied) as exc:
        service_admin.set_dedicated_agent(org.service_manager, org.c_rep.id, org.agent2.id)
    assert exc.value.message == "客服主管只能指派自己管理的客服组中的客服"
    team(org.service_manager, "大客户组", [org.agent, org.agent2])
    service_admin.set_dedicated_agent(org.service_manager, org.c_rep.id, org.agent2.id)
    assert service_admin.dedicated_agent_of(org.c_rep.id) == org.agent2.id
    with pytest.raises(OutOfScope):
        service_admin.set_dedicated_agent(org.admin, 2**40, org.agent.id)
    service_admin.unset_dedicated_agent(org.admin, org.c_rep.id)
    assert service_admin.dedicated_agent_of(org.c_rep.id) is None
    with pytest.raises(Conflict) as exc:
        service_admin.unset_dedicated_agent(org.admin, org.c_rep.id)
    assert exc.value.code == "no_dedicated_agent"


def _grade(customer, grade):
    from app.extensions import db
    db.session.execute(update(Ownership).where(Ownership.customer_id == customer.id)
                       .values(grade=grade))
    db.session.commit()


def test_grade_a_rule_spreads_least_loaded_among_present_and_is_idempotent(db, org):
    big = team(org.admin, "大客户组", [org.agent, org.agent2])
    service_admin.update_settings(org.admin, {"dedicated_team_id": big.id})
    for c in (org.c_rep, org.c_rep2, org.c_north):
        _grade(c, "A")
    _grade(org.c_pool, "B")
    # agent1 already keeps one customer by hand: the first two rule ones go to agent2.
    service_admin.set_dedicated_agent(org.admin, org.c_rep.id, org.agent.id)
    assert service_admin.assign_grade_a(now=NOW) == 2
    got = dict(db.session.execute(select(CustomerServiceAgent.customer_id,
                                         CustomerServiceAgent.agent_id)).all())
    # agent2 (0) takes c_rep2; then both hold one and the lower id, agent1, takes c_north.
    assert got == {org.c_rep.id: org.agent.id, org.c_rep2.id: org.agent2.id,
                   org.c_north.id: org.agent.id}
    assert db.session.execute(select(CustomerServiceAgent.source).where(
        CustomerServiceAgent.customer_id == org.c_north.id)).scalar_one() == "rule"
    assert service_admin.assign_grade_a(now=NOW) == 0  # idempotent


def test_grade_a_rule_passes_over_agents_on_leave(db, org):
    big = team(org.admin, "大客户组", [org.agent, org.agent2])
    service_admin.update_settings(org.admin, {"dedicated_team_id": big.id})
    absences.create_absence(org.admin, org.agent.id, "2026-11-30", "2026-12-02")
    _grade(org.c_rep, "A")
    _grade(org.c_rep2, "A")
    assert service_admin.assign_grade_a(now=NOW) == 2
    assert set(db.session.execute(select(CustomerServiceAgent.agent_id)).scalars()) == {
        org.agent2.id}


def test_becoming_grade_a_by_hand_gives_a_dedicated_agent_at_once(db, org):
    big = team(org.admin, "大客户组", [org.agent])
    service_admin.update_settings(org.admin, {"dedicated_team_id": big.id})
    classification.set_grade(org.admin, [org.c_rep.id], "A")
    assert service_admin.dedicated_agent_of(org.c_rep.id) == org.agent.id
    classification.set_grade(org.admin, [org.c_rep2.id], "B")
    assert service_admin.dedicated_agent_of(org.c_rep2.id) is None


def test_no_dedicated_team_no_rule(db, org):
    _grade(org.c_rep, "A")
    assert service_admin.assign_grade_a(now=NOW) == 0
    assert db.session.execute(select(func.count()).select_from(
        ServiceTeamMember)).scalar_one() == 0


def test_the_job_is_scheduled_daily():
    from app.queue import PERIODIC

    job = next(p for p in PERIODIC if p.name == "dedicated_agents")
    assert (job.func, job.default_cron) == ("jobs.service_desk.dedicated_agents", "0 4 * * *")


def test_a_service_manager_teams_up_only_its_own_or_free_agents(db, org):
    """issue 17 fix: a service manager adds itself, those reporting to it and agents of no
    other service manager; another's agent (reporting to one, or in one's team) only an
    admin adds. Members already in the team stay whatever their reporting line."""
    from app.security import ROLE_SERVICE_AGENT, ROLE_SERVICE_MANAGER
    from tests.conftest import make_user

    other = make_user("svcmgr9", ROLE_SERVICE_MANAGER, org.service)
    free = make_user("agent9", ROLE_SERVICE_AGENT, org.service)          # reports to nobody
    with pytest.raises(ValidationFailed) as exc:
        team(other, "挖角", [org.agent])           # agent1 reports to svcmgr1
    assert exc.value.fields == {"members": "测试agent1 属于另一位客服主管（向其汇报或在其客服组中），"
                                           "须由管理员添加"}
    with pytest.raises(ValidationFailed) as exc:
        team(other, "挖角", [], lead_id=org.agent2.id)
    assert set(exc.value.fields) == {"lead"}
    mine = team(other, "九组", [free, other])
    assert service_admin.team_member_ids(mine.id) == sorted([free.id, other.id])
    # agent9 now serves in svcmgr9's team: svcmgr1 may not take it, though it reports to
    # nobody; an admin may, and svcmgr1 then keeps it in its own team's later edits.
    first = team(org.service_manager, "一线", [org.agent, org.agent2])
    with pytest.raises(ValidationFailed):
        service_admin.set_members(org.service_manager, first.id, [org.agent.id, free.id])
    service_admin.set_members(org.admin, first.id, [org.agent.id, free.id])
    service_admin.update_team(org.service_manager, first.id,
                              {"member_ids": [org.agent.id, free.id, org.agent2.id]})
    assert service_admin.team_member_ids(first.id) == sorted([org.agent.id, org.agent2.id,
                                                              free.id])
