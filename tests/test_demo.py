"""`flask crm init --demo` data: the organisation DESIGN.md promises, within every cap."""
from __future__ import annotations

from sqlalchemy import func, select

from app.models import Customer, Ownership, User
from app.services import policies
from app.demo import build_demo
from app.services.caps import counted


def test_demo_org_is_complete_capped_and_idempotent(db):
    summary = build_demo("demo-pass-1")
    assert summary["created"] is True
    names = set(db.session.execute(select(User.username)).scalars())
    expected = {"admin", "auditor1", "marketing1"} | {f"manager{i}" for i in range(1, 5)} | \
        {f"rep{i}" for i in range(1, 21)} | {f"staff{i}" for i in range(1, 4)}
    assert expected <= names
    # 5,000 customers, four entered twice under another spelling for the review page, and
    # one a demo lead was converted into.
    assert db.session.execute(select(func.count()).select_from(Customer)).scalar_one() == 5005
    assert summary["customers"] == 5005  # what init reports is what it made (README too)
    assert summary["duplicate_clusters"] >= 4
    # Every demo customer is found by its name through the quick-search keys.
    from app.models import CustomerSearchText

    assert db.session.execute(select(func.count()).select_from(CustomerSearchText)).scalar_one() \
        == 5005
    from app.services import search

    some = db.session.execute(select(Customer).order_by(Customer.id.desc())).scalars().first()
    assert some.id in set(db.session.execute(
        search.customer_ids_matching(some.name)).scalars())
    in_pool = db.session.execute(select(func.count()).select_from(Ownership)
                                 .where(Ownership.pool_id.is_not(None))).scalar_one()
    assert 0 < in_pool < 5005
    for (user_id,) in db.session.execute(select(Ownership.owner_id).where(
            Ownership.owner_id.is_not(None)).distinct()):
        eff = policies.effective_policy(user_id)
        assert counted(user_id, bool(eff["count_won"].value)) <= eff["max_customers"].value
    # The ownership pages have something to show: rules, a pool admin, pending transfers.
    from app.models import AssignmentRule, PoolMember, TransferRequest

    assert db.session.execute(select(func.count()).select_from(AssignmentRule).where(
        AssignmentRule.record_type == "customer")).scalar_one() == 3
    # and one lead rule, which placed staff1's exhibition lead with a 华东大区 rep
    from app.models import LeadEvent

    lead_rule = db.session.execute(select(AssignmentRule).where(
        AssignmentRule.record_type == "lead")).scalar_one()
    placed = db.session.execute(select(LeadEvent).where(
        LeadEvent.rule == f"rule:{lead_rule.name}")).scalars().all()
    assert len(placed) == 1 and placed[0].kind == "created" and placed[0].to_owner_id
    assert db.session.get(User, placed[0].to_owner_id).department.name in ("华东大区", "上海团队")
    rep1 = db.session.execute(select(User).where(User.username == "rep1")).scalar_one()
    assert db.session.execute(select(PoolMember).where(
        PoolMember.user_id == rep1.id, PoolMember.is_admin.is_(True))).scalar_one()
    pending = db.session.execute(select(TransferRequest)).scalars().all()
    assert [t.status for t in pending] == ["pending", "pending"]
    assert sorted(t.needs_second_approval for t in pending) == [False, True]
    # Leads in the lead pool and owned, in every status, and tasks on the workbench.
    from app.models import Lead, LeadOwnership, Task

    statuses = set(db.session.execute(select(Lead.status)).scalars())
    assert statuses == {"new", "working", "invalid", "converted"} and summary["leads"] >= 8
    assert db.session.execute(select(func.count()).select_from(LeadOwnership).where(
        LeadOwnership.pool_id.is_not(None))).scalar_one() > 0
    # A public capture form with one visitor's lead in the lead pool, consent kept.
    from app.models import CaptureForm

    form = db.session.execute(select(CaptureForm)).scalar_one()
    assert (summary["capture_forms"], summary["capture_leads"]) == (1, 1)
    assert (summary["surveys"], summary["survey_responses"]) == (1, 6)
    from_form = db.session.execute(select(Lead).where(
        Lead.consent_version == form.policy_version)).scalar_one()
    assert from_form.source == "web_form" and from_form.priority_score > 0
    assert summary["tasks"] == 3 == db.session.execute(
        select(func.count()).select_from(Task).where(Task.source == "manual")).scalar_one()
    # 业绩目标 for this month and quarter: 20 reps and 5 departments each; one department's
    # month target differs from its reps' sum, so the team view shows the warning.
    from app.models import Department, SalesTarget
    from app.services import targets

    assert summary["targets"] == 50 == db.session.execute(
        select(func.count()).select_from(SalesTarget)).scalar_one()
    admin = db.session.execute(select(User).where(User.username == "admin")).scalar_one()
    for kind in ("month", "quarter"):
        report = targets.team_attainment(admin, kind, targets.period_containing(kind))
        warned = {d["name"] for d in report.departments if d["warnings"]}
        assert warned == ({"华南大区"} if kind == "month" else set()), kind
        assert sum(u["target_won"] is not None for u in report.users) == 20
        # Set from what each rep brings in: a plausible 达成率, not thousands of per cent.
        rates = [u["rate_won"] for u in report.users if u["target_won"] is not None]
        low, high = (0.55, 1.2) if kind == "month" else (0.25, 0.6)
        assert all(low <= float(r) <= high for r in rates), (kind, rates)
    south = db.session.execute(select(Department).where(Department.name == "华南大区")
                               ).scalar_one()
    assert south.id in {d["id"] for d in report.departments}
    # Opportunities across every stage, won and lost included, for several reps.
    from app.models import Opportunity, OpportunityStage

    stages = set(db.session.execute(select(OpportunityStage.name).join(
        Opportunity, Opportunity.stage_id == OpportunityStage.id)).scalars())
    assert stages == {"初步接洽", "需求确认", "方案报价", "商务谈判", "赢单", "输单"}
    assert summary["opportunities"] == 32 == db.session.execute(
        select(func.count()).select_from(Opportunity)).scalar_one()
    assert db.session.execute(select(func.count(func.distinct(Opportunity.created_by_id))))\
        .scalar_one() == 4
    won = db.session.execute(select(Opportunity).where(Opportunity.status == "won")).scalars()
    assert all(o.deal_id is not None for o in won)
    # Reclaim rules by segment: grade-A customers and website leads.
    from app.models import Policy

    assert summary["segment_policies"] == 2
    assert sorted(db.session.execute(select(Policy.segment_key).where(
        Policy.segment_key != "")).scalars()) == ["grade=A", "record_type=lead;source=web_form"]
    assert build_demo("demo-pass-1") == {"created": False}
