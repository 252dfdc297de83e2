"""Tags (app.services.tags): the tag list (admins and marketing), tagging in the edit scope of
every role, marketing tagging anything it reads, audit, merges carrying tags to the survivor,
and the unique indexes under concurrent taggers."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.models import AuditLog
from app.models.marketing import RecordTag, Tag
from app.services import customers, leads, merge, tags
from app.services.errors import GuishuError, OutOfScope, PermissionDenied, ValidationFailed


def tagged(record_type, record_id) -> list[str]:
    from app.extensions import db

    db.session.expire_all()
    return [t.name for t in tags.tags_of(record_type, [record_id])[record_id]]


@pytest.fixture
def vip(db, org):
    return tags.create_tag(org.marketing, {"name": "VIP", "color": "#d9534f"})


# --- the list -----------------------------------------------------------------------------
@pytest.mark.parametrize("role, allowed", [("admin", True), ("marketing", True),
                                           ("manager", False), ("rep", False),
                                           ("staff", False), ("auditor", False)])
def test_only_admins_and_marketing_keep_the_list(db, org, role, allowed):
    actor = getattr(org, role)
    if allowed:
        tag = tags.create_tag(actor, {"name": f"重点{role}", "description": "年度重点"})
        assert tags.update_tag(actor, tag.id, {"color": "green"}).color == "green"
        assert tags.delete_tag(actor, tag.id) == 0
        return
    with pytest.raises(PermissionDenied) as exc:
        tags.create_tag(actor, {"name": "重点"})
    assert exc.value.message == "只有管理员和市场专员可以维护标签"


def test_tag_input_is_checked(db, org, vip):
    with pytest.raises(ValidationFailed) as exc:
        tags.create_tag(org.admin, {"name": "x" * 51, "color": "red;x",
                                    "description": 5, "owner": 1})
    assert exc.value.fields == {"name": "不能超过 50 个字符", "color": "颜色须为颜色名（red）或 #rrggbb",
                                "description": "必须是文本", "owner": "不能修改或不存在的字段"}
    with pytest.raises(ValidationFailed) as exc:
        tags.create_tag(org.admin, {"name": " vip "})
    assert exc.value.fields == {"name": "已有同名标签"}
    with pytest.raises(ValidationFailed) as exc:
        tags.create_tag(org.admin, {"name": "  "})
    assert exc.value.fields == {"name": "标签需要名称"}
    with pytest.raises(ValidationFailed) as exc:
        tags.update_tag(org.admin, 2**31, {"name": "新"})
    assert exc.value.fields == {"tag_id": "标签不存在"}


def test_deleting_a_tag_removes_its_links_and_is_audited(db, org, vip):
    tags.tag_records(org.rep, "customer", [org.c_rep.id], vip.id)
    assert tags.delete_tag(org.admin, vip.id) == 1
    assert db.session.execute(select(func.count()).select_from(RecordTag)).scalar() == 0
    entry = db.session.execute(select(AuditLog).where(
        AuditLog.object_type == "tag", AuditLog.action == "delete")).scalar_one()
    assert entry.changes == {"name": ["VIP", None], "records": [1, None]}


# --- tagging ------------------------------------------------------------------------------
@pytest.mark.parametrize("role, customers_ok", [
    ("admin", {"c_rep", "c_rep2", "c_north", "c_pool"}),
    ("staff", {"c_rep", "c_rep2", "c_north", "c_pool"}),
    ("marketing", {"c_rep", "c_rep2", "c_north", "c_pool"}),
    ("manager", {"c_rep", "c_rep2"}), ("rep", {"c_rep"}), ("rep_north", {"c_north"}),
    ("auditor", set())])
def test_every_role_tags_customers_in_its_edit_scope(db, org, vip, role, customers_ok):
    actor = getattr(org, role)
    for name in ("c_rep", "c_rep2", "c_north", "c_pool"):
        customer = getattr(org, name)
        if name in customers_ok:
            assert tags.tag_records(actor, "customer", [customer.id], vip.id) == 1
            assert tagged("customer", customer.id) == ["VIP"]
            assert tags.untag_records(actor, "customer", [customer.id], vip.id) == 1
        elif role == "auditor":
            with pytest.raises(PermissionDenied) as exc:
                tags.tag_records(actor, "customer", [customer.id], vip.id)
            assert exc.value.message == "您的角色不能给记录打标签"
        else:
            with pytest.raises(OutOfScope) as exc:
                tags.tag_records(actor, "customer", [customer.id], vip.id)
            assert exc.value.details == {"ids": [customer.id]}
            assert exc.value.message == "部分记录不存在或不在您的数据权限内"


def test_one_record_outside_the_scope_refuses_all(db, org, vip):
    with pytest.raises(OutOfScope) as exc:
        tags.tag_records(org.rep, "customer", [org.c_rep.id, org.c_north.id], vip.id)
    assert exc.value.details == {"ids": [org.c_north.id]}
    assert tagged("customer", org.c_rep.id) == []


def test_a_read_only_share_gives_no_tagging(db, org, vip):
    from app.models import CustomerShare

    db.session.add(CustomerShare(customer_id=org.c_north.id, user_id=org.rep.id))
    db.session.commit()
    with pytest.raises(OutOfScope):
        tags.tag_records(org.rep, "customer", [org.c_north.id], vip.id)


def test_contacts_and_leads(db, org, vip):
    contact = customers.add_contact(org.rep, org.c_rep.id, {"name": "王经理"})
    mine = leads.create_lead(org.rep, {"company_name": "宁波海曙贸易有限公司"})
    pooled = leads.create_lead(org.staff, {"company_name": "温州鹿城电器有限公司"})
    assert tags.tag_records(org.rep, "contact", [contact.id], vip.id) == 1
    assert tags.tag_records(org.rep, "lead", [mine.id], vip.id) == 1
    with pytest.raises(OutOfScope):
        tags.tag_records(org.rep, "lead", [pooled.id], vip.id)  # a pool lead is not the rep's
    with pytest.raises(OutOfScope):
        tags.tag_records(org.rep2, "contact", [contact.id], vip.id)
    # Marketing tags any lead and contact it reads, though it edits none of them.
    assert tags.tag_records(org.marketing, "lead", [pooled.id, mine.id], vip.id) == 1
    assert tags.tag_records(org.marketing, "contact", [contact.id], vip.id) == 0  # had it
    assert tagged("lead", pooled.id) == ["VIP"] and tagged("contact", contact.id) == ["VIP"]


def test_bad_input_names_the_field(db, org, vip):
    cases = [(("thing", [1], vip.id), {"record_type": "记录类型只能是 customer、contact 或 lead"}),
             (("customer", "1", vip.id), {"ids": "记录编号必须是正整数列表"}),
             (("customer", [2**31], vip.id), {"ids": "记录编号必须是正整数列表"}),
             (("customer", [], vip.id), {"ids": "请至少选择一条记录"}),
             (("customer", list(range(1, 1002)), vip.id), {"ids": "一次最多处理 1000 条记录"}),
             (("customer", [org.c_rep.id], 2**31), {"tag_id": "标签不存在"}),
             (("customer", [org.c_rep.id], True), {"tag_id": "标签不存在"})]
    for args, fields in cases:
        with pytest.raises(ValidationFailed) as exc:
            tags.tag_records(org.admin, *args)
        assert exc.value.fields == fields, args


def test_tagging_is_audited_on_the_record(db, org, vip):
    tags.tag_records(org.rep, "customer", [org.c_rep.id], vip.id)
    tags.tag_records(org.rep, "customer", [org.c_rep.id], vip.id)  # already: no second entry
    tags.untag_records(org.rep, "customer", [org.c_rep.id], vip.id)
    rows = db.session.execute(select(AuditLog.action, AuditLog.changes, AuditLog.actor_id).where(
        AuditLog.object_type == "customer", AuditLog.object_id == org.c_rep.id,
        AuditLog.action.in_(("tag", "untag"))).order_by(AuditLog.id)).all()
    assert [tuple(r) for r in rows] == [("tag", {"tag": [None, "VIP"]}, org.rep.id),
                                        ("untag", {"tag": ["VIP", None]}, org.rep.id)]


# --- merges -------------------------------------------------------------------------------
def test_a_merge_carries_tags_to_the_survivor_and_undo_puts_them_back(db, org, vip):
    fair = tags.create_tag(org.marketing, {"name": "展会"})
    twin = customers.create_customer(org.rep, {"name": "杭州云帆科技股份公司"},
                                    confirm_duplicates=True)
    tags.tag_records(org.rep, "customer", [org.c_rep.id], vip.id)
    tags.tag_records(org.rep, "customer", [twin.id], vip.id)
    tags.tag_records(org.rep, "customer", [twin.id], fair.id)
    [record] = merge.merge(org.staff, org.c_rep.id, [twin.id])
    assert tagged("customer", org.c_rep.id) == ["VIP", "展会"]  # the duplicate VIP skipped
    assert db.session.execute(select(func.count()).select_from(RecordTag)).scalar() == 2
    merge.undo(org.staff, record.id)
    assert tagged("customer", org.c_rep.id) == ["VIP"]
    assert tagged("customer", twin.id) == ["VIP", "展会"]


# --- races --------------------------------------------------------------------------------
@pytest.mark.real_db
def test_concurrent_taggers_leave_one_link_per_record(app, db, org):
    tag_id = tags.create_tag(org.admin, {"name": "并发"}).id
    ids = [org.c_rep.id, org.c_rep2.id, org.c_north.id, org.c_pool.id]
    actor_ids = [org.admin.id, org.staff.id, org.marketing.id]
    errors: list[BaseException] = []
    added: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(6)

    def work(n: int) -> None:
        with app.app_context():
            from app.extensions import db as tdb
            from app.models import User

            try:
                me = tdb.session.get(User, actor_ids[n % 3])
                start.wait(timeout=30)
                for _ in range(5):
                    got = tags.tag_records(me, "customer", ids, tag_id)
                    with lock:
                        added.append(got)
            except GuishuError as exc:
                with lock:
                    errors.append(exc)
            except BaseException as exc:  # noqa: BLE001 - any error fails the test
                with lock:
                    errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert sum(added) == 4
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(RecordTag)).scalar() == 4
    assert db.session.execute(select(func.count()).select_from(AuditLog).where(
        AuditLog.action == "tag")).scalar() == 4


@pytest.mark.real_db
def test_concurrent_tag_names_stay_unique(app, db, org):
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def work() -> None:
        with app.app_context():
            from app.extensions import db as tdb
            from app.models import User

            try:
                me = tdb.session.get(User, org_admin_id)
                start.wait(timeout=30)
                tags.create_tag(me, {"name": "同名"})
                outcome = "created"
            except ValidationFailed as exc:
                outcome = exc.fields.get("name", "?")
            except BaseException as exc:  # noqa: BLE001
                outcome = repr(exc)
            finally:
                tdb.session.remove()
            with lock:
                results.append(outcome)

    org_admin_id = org.admin.id
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["created"] + ["已有同名标签"] * 3
    assert db.session.execute(select(func.count()).select_from(Tag).where(
        Tag.name == "同名")).scalar() == 1
