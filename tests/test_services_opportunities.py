"""Opportunities (app.services.opportunities): stages as data (one won, one lost, in-use stages
kept), create and edit in scope on owned customers only, the one stage change (history,
audit, a lost reason, winning records the deal), ownership that follows the customer
(transfer, reclaim, claim), the kanban's sums and the reclaim exemption."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from app.models import AuditLog, Deal, Opportunity, OpportunityStage, OpportunityStageChange, Ownership
from app.models.customer import utcnow
from app.services import assignment, opportunities as opps, pool, reclaim, tasks
from app.services.errors import Conflict, OutOfScope, PermissionDenied, ValidationFailed


def stage(name):
    from app.extensions import db

    return db.session.execute(select(OpportunityStage).where(
        OpportunityStage.name == name)).scalar_one()


def new(org, user=None, customer=None, **data):
    user = user or org.rep
    customer = customer or org.c_rep
    return opps.create(user, dict({"customer_id": customer.id, "title": "ERP 升级",
                                   "amount": "120000"}, **data))


# --- stages ---------------------------------------------------------------------------------
def test_default_stages_are_seeded_in_order(db, org):
    got = [(s.name, s.probability, s.kind, s.protects_from_reclaim) for s in opps.stages()]
    assert got == [("初步接洽", 10, "open", False), ("需求确认", 30, "open", False),
                   ("方案报价", 60, "open", True), ("商务谈判", 80, "open", True),
                   ("赢单", 100, "won", False), ("输单", 0, "lost", False)]


def test_only_admins_edit_stages(db, org):
    for user in (org.manager, org.rep, org.staff, org.auditor):
        with pytest.raises(PermissionDenied):
            opps.create_stage(user, {"name": "试用", "probability": 50, "position": 25})
    s = opps.create_stage(org.admin, {"name": "试用", "probability": 50, "position": 25})
    assert [x.name for x in opps.stages()][:4] == ["初步接洽", "需求确认", "试用", "方案报价"]
    assert db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "opportunity_stage", AuditLog.object_id == s.id)).first()


def test_stage_rules_keep_one_won_one_lost_and_used_stages(db, org):
    with pytest.raises(ValidationFailed) as exc:
        opps.create_stage(org.admin, {"name": "大单赢", "probability": 100, "position": 1,
                                      "kind": "won"})
    assert "kind" in exc.value.fields
    with pytest.raises(ValidationFailed) as exc:
        opps.update_stage(org.admin, stage("赢单").id, {"kind": "open"})
    assert "kind" in exc.value.fields
    with pytest.raises(Conflict) as exc:
        opps.delete_stage(org.admin, stage("输单").id)
    assert exc.value.code == "stage_kept"
    new(org)
    with pytest.raises(Conflict) as exc:
        opps.delete_stage(org.admin, stage("初步接洽").id)
    assert exc.value.code == "stage_in_use"
    assert "1" in exc.value.message and "初步接洽" in exc.value.message
    opps.delete_stage(org.admin, stage("需求确认").id)
    assert "需求确认" not in [s.name for s in opps.stages()]
    with pytest.raises(ValidationFailed) as exc:
        opps.update_stage(org.admin, stage("方案报价").id, {"probability": 101})
    assert "probability" in exc.value.fields
    opps.update_stage(org.admin, stage("方案报价").id, {"probability": 65})
    assert stage("方案报价").probability == 65


# --- create and edit ------------------------------------------------------------------------
def test_create_in_scope_at_the_first_stage_with_history_and_audit(db, org):
    opp = new(org, expected_close_on="2026-12-31", product_line="ERP")
    assert opp.stage.name == "初步接洽" and opp.status == "open"
    assert opp.amount == Decimal("120000.00") and opp.expected_close_on == dt.date(2026, 12, 31)
    assert opp.owner.id == org.rep.id
    changes = opps.history(opp.id)
    assert [(c.from_stage_id, c.to_stage_id, c.amount) for c in changes] == [
        (None, stage("初步接洽").id, Decimal("120000.00"))]
    assert db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "opportunity", AuditLog.object_id == opp.id,
        AuditLog.action == "create")).first()


@pytest.mark.parametrize("who,customer,ok", [
    ("rep", "c_rep", True), ("rep", "c_rep2", False), ("rep", "c_north", False),
    ("manager", "c_rep2", True), ("manager", "c_north", False), ("admin", "c_north", True),
    ("staff", "c_north", True)])
def test_create_needs_the_customer_in_write_scope(db, org, who, customer, ok):
    if ok:
        assert new(org, getattr(org, who), getattr(org, customer)).id
    else:
        with pytest.raises(ValidationFailed) as exc:
            new(org, getattr(org, who), getattr(org, customer))
        assert exc.value.fields == {"customer_id": "客户不存在或不在您的数据权限内"}


def test_auditor_and_pool_customer_refused(db, org):
    with pytest.raises(PermissionDenied):
        new(org, org.auditor)
    with pytest.raises(ValidationFailed) as exc:
        new(org, org.admin, org.c_pool)
    assert list(exc.value.fields) == ["customer_id"]
    assert "公海" in exc.value.fields["customer_id"]


@pytest.mark.parametrize("data,field", [
    ({"amount": "-1"}, "amount"), ({"amount": "abc"}, "amount"), ({"amount": None}, "amount"),
    ({"amount": "1e13"}, "amount"), ({"title": ""}, "title"), ({"title": "x" * 201}, "title"),
    ({"expected_close_on": "2026-13-01"}, "expected_close_on"), ({"owner_id": 1}, "owner_id"),
    ({"title": "a\x00b"}, "title"), ({"stage_id": 2**40}, "stage_id")])
def test_bad_input_names_the_field(db, org, data, field):
    with pytest.raises(ValidationFailed) as exc:
        new(org, **data)
    assert field in exc.value.fields


def test_edit_changes_fields_audited_and_refuses_outside_scope(db, org):
    opp = new(org)
    opps.update_opportunity(org.rep, opp.id, {"amount": "150000", "title": "ERP 二期"})
    db.session.refresh(opp)
    assert (opp.title, opp.amount) == ("ERP 二期", Decimal("150000.00"))
    with pytest.raises(OutOfScope):
        opps.update_opportunity(org.rep2, opp.id, {"amount": "1"})
    with pytest.raises(OutOfScope):
        opps.update_opportunity(org.manager_north, opp.id, {"amount": "1"})
    with pytest.raises(PermissionDenied):
        opps.update_opportunity(org.auditor, opp.id, {"amount": "1"})
    with pytest.raises(ValidationFailed) as exc:
        opps.update_opportunity(org.rep, opp.id, {"stage_id": stage("赢单").id})
    assert "stage_id" in exc.value.fields


# --- stage changes --------------------------------------------------------------------------
def test_stage_change_is_history_and_audited(db, org):
    opp = new(org)
    opps.change_stage(org.rep, opp.id, stage("方案报价").id)
    opps.change_stage(org.manager, opp.id, stage("商务谈判").id)
    got = [(c.from_stage_id, c.to_stage_id, c.actor_id) for c in opps.history(opp.id)]
    assert got[1:] == [(stage("初步接洽").id, stage("方案报价").id, org.rep.id),
                       (stage("方案报价").id, stage("商务谈判").id, org.manager.id)]
    assert db.session.execute(select(func.count()).select_from(AuditLog).where(
        AuditLog.object_type == "opportunity", AuditLog.action == "stage")).scalar() == 2


def test_losing_needs_a_reason_and_stores_the_owner(db, org):
    opp = new(org)
    with pytest.raises(ValidationFailed) as exc:
        opps.lose(org.rep, opp.id, "  ")
    assert exc.value.fields == {"loss_reason": "输单需要填写原因"}
    opps.lose(org.rep, opp.id, "价格太高")
    db.session.refresh(opp)
    assert (opp.status, opp.loss_reason, opp.closed_owner_id) == ("lost", "价格太高", org.rep.id)
    with pytest.raises(Conflict) as exc:
        opps.change_stage(org.rep, opp.id, stage("初步接洽").id)
    assert exc.value.code == "opportunity_closed"


def test_winning_records_the_deal_and_marks_the_customer_won(db, org):
    opp = new(org, product_line="ERP")
    opps.win(org.rep, opp.id)
    db.session.refresh(opp)
    deal = db.session.get(Deal, opp.deal_id)
    assert (opp.status, opp.closed_owner_id) == ("won", org.rep.id)
    assert (deal.customer_id, deal.amount, deal.product_line) == (
        org.c_rep.id, Decimal("120000.00"), "ERP")
    own = db.session.get(Ownership, org.c_rep.id)
    db.session.refresh(own)
    assert own.won is True and own.category == "active"


def test_winning_at_zero_is_refused_and_nothing_moves(db, org):
    opp = new(org, amount="0")
    with pytest.raises(ValidationFailed) as exc:
        opps.win(org.rep, opp.id)
    assert "amount" in exc.value.fields
    db.session.refresh(opp)
    assert opp.status == "open" and len(opps.history(opp.id)) == 1
    assert db.session.execute(select(func.count()).select_from(Deal)).scalar() == 0


def test_a_stale_card_is_refused(db, org):
    opp = new(org)
    first = stage("初步接洽").id
    opps.change_stage(org.rep, opp.id, stage("需求确认").id, expected_stage_id=first)
    with pytest.raises(Conflict):
        opps.change_stage(org.rep, opp.id, stage("方案报价").id, expected_stage_id=first)


# --- ownership follows the customer ---------------------------------------------------------
def test_open_follow_the_customer_closed_keep_their_owner(db, org):
    won = new(org, title="已赢")
    opps.win(org.rep, won.id)
    opp = new(org, customer=org.c_rep2, user=org.rep2)
    lost = new(org, customer=org.c_rep2, user=org.rep2, title="已输")
    opps.lose(org.rep2, lost.id, "预算取消")
    pool.release_to_pool(org.rep2, [org.c_rep2.id], "不再跟进")
    db.session.expire_all()
    assert db.session.get(Opportunity, opp.id).owner is None  # ownerless while pooled
    assert db.session.get(Opportunity, lost.id).owner.id == org.rep2.id
    with pytest.raises(OutOfScope):
        opps.get_opportunity(org.rep2, opp.id)
    assignment.assign(org.admin, [org.c_rep2.id], org.rep.id)
    db.session.expire_all()
    assert db.session.get(Opportunity, opp.id).owner.id == org.rep.id
    assert opps.get_opportunity(org.rep, opp.id).id == opp.id
    assert opps.get_opportunity(org.rep2, lost.id).id == lost.id  # his history stays his


def test_read_scope(db, org):
    mine = new(org)
    north = new(org, org.rep_north, org.c_north)
    for user, seen in ((org.rep, {mine.id}), (org.rep2, set()), (org.manager, {mine.id}),
                       (org.manager_north, {north.id}), (org.auditor, {mine.id, north.id}),
                       (org.staff, {mine.id, north.id}), (org.admin, {mine.id, north.id})):
        got = set(db.session.execute(select(Opportunity.id).where(
            opps.scope_clause(user))).scalars())
        assert got == seen, user.username


# --- kanban ---------------------------------------------------------------------------------
def test_kanban_columns_totals_and_weighted_pipeline(db, org):
    a = new(org, amount="100000")
    b = new(org, amount="50000")
    opps.change_stage(org.rep, b.id, stage("方案报价").id)
    c = new(org, amount="30000")
    opps.lose(org.rep, c.id, "竞品")
    new(org, org.rep2, org.c_rep2, amount="999")
    board = opps.kanban(org.rep)
    by = {col.stage.name: col for col in board.columns}
    assert [col.stage.name for col in board.columns][-2:] == ["赢单", "输单"]
    assert (by["初步接洽"].count, by["初步接洽"].total) == (1, Decimal("100000"))
    assert [x.id for x in by["方案报价"].cards] == [b.id]
    assert by["输单"].count == 1 and by["赢单"].count == 0
    assert board.weighted_pipeline == Decimal("40000.00")  # 100000×10% + 50000×60%
    assert board.open_total == Decimal("150000")
    team = opps.kanban(org.manager, team=True)
    assert {x.stage.name: x.count for x in team.columns}["初步接洽"] == 2
    assert opps.kanban(org.manager, owner_id=org.rep2.id).open_total == Decimal("999")
    with pytest.raises(OutOfScope):
        opps.kanban(org.rep, owner_id=org.rep2.id)
    with pytest.raises(OutOfScope):
        opps.kanban(org.manager, owner_id=org.rep_north.id)
    assert a.id in [x.id for x in by["初步接洽"].cards]


# --- tasks link -----------------------------------------------------------------------------
def test_a_task_can_link_an_opportunity_in_scope(db, org):
    opp = new(org)
    task = tasks.create(org.rep, {"subject": "发报价", "due_at": "2026-12-01",
                                  "record_type": "opportunity", "record_id": opp.id})
    assert tasks.record_link(task) == f"/opportunities/show/{opp.id}"
    assert tasks.record_names([task]) == {("opportunity", opp.id): "ERP 升级"}
    with pytest.raises(OutOfScope):
        tasks.create(org.rep2, {"subject": "x", "due_at": "2026-12-01",
                                "record_type": "opportunity", "record_id": opp.id})


# --- reclaim exemption ----------------------------------------------------------------------
NOW = dt.datetime(2026, 11, 23, 12, 0)
DAY = dt.timedelta(days=1)


def _age(db, customer_id, days):
    db.session.execute(update(Ownership).where(Ownership.customer_id == customer_id).values(
        acquired_at=NOW - days * DAY, last_followup_at=None))
    db.session.commit()


def test_a_protecting_opportunity_exempts_its_customer_from_sweep_and_warning(db, org):
    from app.services import customers

    protected = customers.create_customer(org.rep, {"name": "受保护客户"})
    stale = customers.create_customer(org.rep, {"name": "商机已过期"})
    early = customers.create_customer(org.rep, {"name": "早期商机"})
    plain = customers.create_customer(org.rep, {"name": "无商机"})
    for c in (protected, stale, early, plain):
        _age(db, c.id, 31)  # past the 30 no-follow-up days (global default)
    o1 = new(org, customer=protected)
    opps.change_stage(org.rep, o1.id, stage("方案报价").id)
    o2 = new(org, customer=stale)
    opps.change_stage(org.rep, o2.id, stage("商务谈判").id)
    o3 = new(org, customer=early)  # 初步接洽 does not protect
    db.session.execute(update(Opportunity).values(updated_at=NOW - 2 * DAY))
    db.session.execute(update(Opportunity).where(Opportunity.id == o2.id)
                       .values(updated_at=NOW - 31 * DAY))
    db.session.commit()
    due = {d["customer_id"] for d in reclaim.sweep(dry_run=True, now=NOW).due}
    assert protected.id not in due
    assert {stale.id, early.id, plain.id} <= due
    reclaim.sweep(now=NOW)
    held = dict(db.session.execute(select(Ownership.customer_id, Ownership.owner_id).where(
        Ownership.customer_id.in_([protected.id, stale.id, early.id, plain.id]))).all())
    assert held == {protected.id: org.rep.id, stale.id: None, early.id: None, plain.id: None}
    db.session.expire_all()
    left = db.session.get(Opportunity, o2.id)  # reclaimed: open, ownerless until claimed
    assert (left.status, left.owner) == ("open", None)
    # Warnings: a customer 28 days untouched (warned 3 days ahead by default) is not warned
    # while a protecting opportunity was updated within the days.
    soon = customers.create_customer(org.rep, {"name": "快到期受保护"})
    soon_plain = customers.create_customer(org.rep, {"name": "快到期无商机"})
    for c in (soon, soon_plain):
        _age(db, c.id, 28)
    o4 = new(org, customer=soon)
    opps.change_stage(org.rep, o4.id, stage("商务谈判").id)
    db.session.execute(update(Opportunity).where(Opportunity.id == o4.id)
                       .values(updated_at=NOW - DAY))
    db.session.commit()
    from app.models import ReclaimWarning

    reclaim.warn(now=NOW)
    warned = set(db.session.execute(select(ReclaimWarning.customer_id)).scalars())
    assert soon_plain.id in warned and soon.id not in warned
    assert o3.id


# --- lead conversion with an opportunity ----------------------------------------------------
def test_converting_a_lead_can_open_an_opportunity(db, org):
    from app.services import leads

    lead = leads.create_lead(org.rep, {"company_name": "宁波甬江仪器有限公司"})
    with pytest.raises(ValidationFailed) as exc:
        leads.convert_lead(org.rep, lead.id, opportunity={"title": "首单", "amount": "x"})
    assert list(exc.value.fields) == ["opportunity.amount"]
    db.session.refresh(lead)
    assert lead.status == "new"  # refused before anything changed
    result = leads.convert_lead(org.rep, lead.id,
                                opportunity={"title": "首单", "amount": "36000"})
    opp = db.session.get(Opportunity, result["opportunity_id"])
    assert (opp.customer_id, opp.title, opp.amount, opp.stage.name, opp.owner.id) == (
        result["customer_id"], "首单", Decimal("36000.00"), "初步接洽", org.rep.id)
    assert result["opportunity_note"] is None


def test_a_lead_converted_into_the_pool_gets_no_opportunity_and_says_why(db, org):
    from app.services import leads

    lead = leads.create_lead(org.rep, {"person_name": "王五"})
    result = leads.convert_lead(org.admin, lead.id, into_pool=True,
                                opportunity={"title": "x", "amount": "1"})
    assert result["outcome"] == "created_in_pool" and result["opportunity_id"] is None
    assert result["opportunity_note"] == "公海客户不能建商机，请先领取或分配"
    assert db.session.execute(select(func.count()).select_from(Opportunity)).scalar() == 0


def test_a_transfer_moves_the_open_ones_and_leaves_the_closed(db, org):
    from app.services import transfers

    open_one = new(org)
    lost = new(org, title="已输")
    opps.lose(org.rep, lost.id, "价格")
    transfer = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求",
                                         "customer_request")
    transfers.approve(org.manager, transfer.id)
    db.session.expire_all()
    assert db.session.get(Opportunity, open_one.id).owner.id == org.rep2.id
    assert db.session.get(Opportunity, lost.id).owner.id == org.rep.id
    assert opps.get_opportunity(org.rep2, open_one.id, write=True).id == open_one.id
    with pytest.raises(OutOfScope):
        opps.get_opportunity(org.rep, open_one.id)


# --- when the protection lapses (the review's findings) -----------------------------------
def _protected_by(db, org, days_untouched, opportunity_days_ago, name="保护期客户"):
    from app.services import customers

    c = customers.create_customer(org.rep, {"name": name})
    _age(db, c.id, days_untouched)
    o = new(org, customer=c)
    opps.change_stage(org.rep, o.id, stage("方案报价").id)
    db.session.execute(update(Opportunity).where(Opportunity.id == o.id)
                       .values(updated_at=NOW - opportunity_days_ago * DAY))
    db.session.commit()
    return c


def test_the_warning_comes_before_the_protection_lapses_with_the_sweeps_date(db, org):
    """40 days untouched (overdue), a protecting opportunity updated 28 days ago: the sweep
    takes the customer 2 days from now (30 days after the update). The warning (3 days ahead
    by default) comes now, once, naming that day; the due-soon page and the workbench agree."""
    from app.models import Notification, ReclaimWarning
    from app.services import due_soon, workbench
    from app.services.times import local_date

    c = _protected_by(db, org, 40, 28)
    lapse = NOW + 2 * DAY
    assert c.id not in {d["customer_id"] for d in reclaim.sweep(dry_run=True, now=NOW).due}
    assert c.id in {d["customer_id"] for d in reclaim.sweep(dry_run=True,
                                                             now=lapse + DAY).due}
    assert reclaim.warn(now=NOW) == 1
    [w] = db.session.execute(select(ReclaimWarning).where(
        ReclaimWarning.customer_id == c.id)).scalars().all()
    assert w.due_at == lapse
    note = db.session.execute(select(Notification).where(
        Notification.kind == "reclaim_warning")).scalars().one()
    assert note.title == f"客户「保护期客户」将于 {local_date(lapse)} 被自动回收"
    assert reclaim.warn(now=NOW + DAY) == 0  # once per cycle
    page = due_soon.due_soon(org.rep, 7, now=NOW)
    [row] = [r for r in page.customers if r["id"] == c.id]
    assert (row["due_at"], row["days_left"]) == (lapse, 2)
    soon = {r["id"]: r["days_left"] for r in workbench.about_to_be_reclaimed(org.rep, now=NOW)}
    assert soon[c.id] == 2


def test_a_customer_protected_beyond_the_window_is_not_about_to_go(db, org):
    """Updated yesterday: protected for 29 more days. Neither the warnings, the due-soon page
    (7 days) nor the workbench count down to a reclaim the sweep will not make."""
    from app.models import ReclaimWarning
    from app.services import due_soon, workbench

    c = _protected_by(db, org, 40, 1)
    assert reclaim.warn(now=NOW) == 0
    assert db.session.execute(select(ReclaimWarning)).first() is None
    assert c.id not in {r["id"] for r in due_soon.due_soon(org.rep, 7, now=NOW).customers}
    assert c.id not in {r["id"] for r in workbench.about_to_be_reclaimed(org.rep, now=NOW)}
    assert workbench.days_left(db.session.get(Ownership, c.id), {
        "reclaim_no_followup_days": type("V", (), {"value": 30}),
        "reclaim_no_deal_days": type("V", (), {"value": 90})}, now=NOW,
        protected_since=NOW - DAY) == 29


def test_a_win_is_the_owners_whoever_drags_it(db, org):
    """A manager (or staff) moving the rep's card to 赢单 records the deal for the rep, whose
    target counts it; the recorder is in the audit log."""
    from app.services import targets

    o = new(org, amount="100000")
    opps.change_stage(org.manager, o.id, stage("赢单").id)
    deal = db.session.execute(select(Deal).where(Deal.customer_id == org.c_rep.id)).scalar_one()
    assert deal.user_id == org.rep.id
    assert targets.my_attainment(org.rep, "month")["actual_won"] == Decimal("100000.00")
    assert targets.my_attainment(org.manager, "month")["actual_won"] == Decimal("0")
    entry = db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "deal", AuditLog.object_id == deal.id)).scalar_one()
    assert (entry.actor_id, entry.action, entry.changes["user_id"]) == (
        org.manager.id, "create", [None, org.rep.id])


def test_the_won_deal_takes_the_amount_committed_before_the_move(db, org, monkeypatch):
    """An edit landing between reading the card and moving it: the deal and the history record
    the amount the row has when it closes, not the one read before."""
    o = new(org, amount="1000")
    read = opps.get_opportunity

    def read_then_edited_elsewhere(*args, **kwargs):
        opp = read(*args, **kwargs)
        # Another writer's edit, behind the loaded object's back.
        db.session.execute(update(Opportunity).where(Opportunity.id == o.id)
                           .values(amount=Decimal("250000")).execution_options(
                               synchronize_session=False))
        assert opp.amount == Decimal("1000.00")
        return opp

    monkeypatch.setattr(opps, "get_opportunity", read_then_edited_elsewhere)
    opps.change_stage(org.rep, o.id, stage("赢单").id)
    deal = db.session.execute(select(Deal).where(Deal.customer_id == org.c_rep.id)).scalar_one()
    assert deal.amount == Decimal("250000.00")
    last = db.session.execute(select(OpportunityStageChange).where(
        OpportunityStageChange.opportunity_id == o.id).order_by(
        OpportunityStageChange.id.desc())).scalars().first()
    assert last.amount == Decimal("250000.00")


def test_the_won_move_the_deal_and_its_link_commit_together(db, org, monkeypatch):
    """Classifying the won customer comes after the commit: if it fails, the opportunity is
    still won with its deal linked (never won without the deal it made)."""
    from app.services import deals

    o = new(org, amount="5000")

    def broken(customer_id):
        raise RuntimeError("classification down")

    monkeypatch.setattr(deals, "classify_won", broken)
    with pytest.raises(RuntimeError):
        opps.change_stage(org.rep, o.id, stage("赢单").id)
    db.session.expire_all()
    won = db.session.get(Opportunity, o.id)
    assert won.status == "won" and won.deal_id is not None
    assert db.session.get(Deal, won.deal_id).amount == Decimal("5000.00")
