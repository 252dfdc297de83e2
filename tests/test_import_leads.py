"""Import as leads: the same files, mapping and line-numbered problem report as the customer
import; rows become leads through app.services.leads in a lead pool or with an owner (within
the lead cap), deduplicated against leads, customers and the file's earlier rows."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from app.models import ImportBatch, ImportProblem, Lead, LeadEvent, LeadOwnership, Policy
from app.services import import_mapping, import_run, leads
from app.services.errors import PermissionDenied, ValidationFailed
from tests.test_views_ownership import post

HEADER = "公司名称,联系人,手机,邮箱,城市,来源\n"
ROWS = (HEADER +
        "宁波海曙五金有限公司,陈一,13600136001,,宁波,展会\n"          # 2 good
        "无锡阳光电器有限公司,陈二,1360013600,,无锡,展会\n"           # 3 bad mobile
        ",,13600136003,,,\n"                                          # 4 no name
        "温州瓯海电气有限公司,陈四,13600136001,,温州,电话\n"          # 5 = line 2 (mobile)
        "杭州云帆科技有限公司,,13800138000,,杭州,\n"                 # 6 = customer c_rep
        "厦门鹭岛物流有限公司,陈六,13600136006,c6@example.com,厦门,转介绍\n"  # 7 good
        "苏州姑苏纺织有限公司,陈七,13600136007,,苏州,飞鸽传书\n")      # 8 bad source


def lead_pool_id() -> int:
    return leads.default_lead_pool().id


def run(db, actor, data: bytes, target="pool", pool_id=None, owner_id=None, mapping=None):
    batch = import_mapping.upload(actor, "线索.csv", data, "lead")
    import_mapping.configure(actor, batch.id, mapping or batch.mapping, target,
                             pool_id if pool_id is not None or target != "pool"
                             else lead_pool_id(), owner_id)
    return import_run.run(batch.id)


def problems(db, batch) -> list[tuple[int, str, str]]:
    return [(p.line, p.kind, p.reason) for p in db.session.execute(
        select(ImportProblem).where(ImportProblem.batch_id == batch.id)
        .order_by(ImportProblem.line)).scalars()]


def lead_named(db, company) -> Lead:
    return db.session.execute(select(Lead).where(Lead.company_name == company)).scalar_one()


def test_good_rows_land_as_leads_and_bad_ones_are_reported_by_line(db, org):
    before = db.session.execute(select(func.count()).select_from(Lead)).scalar_one()
    batch = run(db, org.staff, ROWS.encode("gbk"))
    assert (batch.status, batch.inserted, batch.duplicates, batch.invalid) == ("done", 2, 2, 3)
    assert db.session.execute(select(func.count()).select_from(Lead)).scalar_one() == before + 2
    got = problems(db, batch)
    assert [(line, kind) for line, kind, _ in got] == [
        (3, "invalid"), (4, "invalid"), (5, "duplicate"), (6, "duplicate"), (8, "invalid")]
    reasons = {line: reason for line, _, reason in got}
    assert reasons[3] == "手机：无效的电话号码：1360013600"
    assert reasons[4] == "联系人：联系人姓名和公司名称至少填写一项"
    assert reasons[5] == "与文件第 2 行重复（手机号）"
    assert reasons[6].startswith("已存在：客户 杭州云帆科技有限公司")
    assert reasons[8].startswith("来源渠道：")
    first = lead_named(db, "宁波海曙五金有限公司")
    assert (first.person_name, first.mobile_e164, first.source) == (
        "陈一", "+8613600136001", "exhibition")
    o = db.session.get(LeadOwnership, first.id)
    assert (o.owner_id, o.pool_id) == (None, lead_pool_id())
    assert db.session.execute(select(LeadEvent.reason).where(
        LeadEvent.lead_id == first.id)).scalar_one() == f"批量导入 #{batch.id}：线索.csv"
    assert lead_named(db, "厦门鹭岛物流有限公司").priority_score == 30 + 30 + 20
    again = run(db, org.staff, ROWS.encode("gbk"))  # a second time: nothing new
    assert again.inserted == 0


def test_rows_dedupe_against_existing_leads(db, org):
    mine = leads.create_lead(org.rep, {"person_name": "老线索", "mobile": "13600136006"})
    batch = run(db, org.staff, ROWS.encode())
    reasons = {line: reason for line, _, reason in problems(db, batch)}
    assert reasons[7] == "已存在线索：老线索，负责人 测试rep1（华东大区）（手机号）"
    assert mine.id


def test_leads_to_an_owner_stop_at_the_lead_cap(db, org):
    policy = db.session.execute(select(Policy).where(Policy.scope == "global")).scalar_one()
    policy.lead_max = 1
    db.session.commit()
    batch = run(db, org.staff, ROWS.encode(), target="owner", owner_id=org.rep.id)
    assert (batch.inserted, batch.invalid) == (1, 4)
    reasons = {line: reason for line, _, reason in problems(db, batch)}
    assert reasons[7] == "超出线索上限：上限 1，已持有 1，本次新增 1"
    o = db.session.get(LeadOwnership, lead_named(db, "宁波海曙五金有限公司").id)
    assert (o.owner_id, o.pool_id) == (org.rep.id, None)


def test_the_lead_mapping_step(db, org):
    batch = import_mapping.upload(org.staff, "线索.csv", ROWS.encode(), "lead")
    assert batch.record_type == "lead"
    assert batch.mapping == {"company_name": "公司名称", "person_name": "联系人",
                             "mobile": "手机", "email": "邮箱", "city": "城市",
                             "source": "来源"}
    with pytest.raises(ValidationFailed) as exc:
        import_mapping.configure(org.staff, batch.id, {"mobile": "手机"}, "pool",
                                 lead_pool_id())
    assert set(exc.value.fields) == {"company_name"}
    with pytest.raises(ValidationFailed) as exc:
        import_mapping.configure(org.staff, batch.id, batch.mapping, "pool", org.pool.id)
    assert exc.value.fields == {"pool": "线索公海不存在"}
    with pytest.raises(ValidationFailed) as exc:
        import_mapping.configure(org.staff, batch.id, batch.mapping, "bogus", None)
    assert exc.value.fields == {"target": "线索只能导入线索公海、指定负责人或按归属规则分配"}
    with pytest.raises(ValidationFailed) as exc:  # rules: the fallback pool a lead pool
        import_mapping.configure(org.staff, batch.id, batch.mapping, "rules", org.pool.id)
    assert exc.value.fields == {"pool": "线索公海不存在"}
    with pytest.raises(ValidationFailed) as exc:
        import_mapping.configure(org.staff, batch.id, batch.mapping, "owner", None, None)
    assert exc.value.fields == {"owner": "请选择在职的线索负责人"}
    with pytest.raises(ValidationFailed) as exc:
        import_mapping.upload(org.staff, "线索.csv", ROWS.encode(), "deal")
    assert set(exc.value.fields) == {"record_type"}


@pytest.mark.parametrize("role", ["rep", "manager", "auditor"])
def test_who_may_import_leads(db, org, role):
    with pytest.raises(PermissionDenied):
        import_mapping.upload(getattr(org, role), "线索.csv", ROWS.encode(), "lead")


def test_the_pages_import_as_leads(clients, db, org):
    resp = post(clients.staff, "/imports/upload",
                {"file": (io.BytesIO(ROWS.encode()), "线索.csv"), "record_type": "lead"},
                content_type="multipart/form-data")
    batch = db.session.execute(select(ImportBatch).order_by(ImportBatch.id.desc())
                               ).scalars().first()
    assert resp.status_code == 302 and batch.record_type == "lead"
    html = clients.staff.get(f"/imports/{batch.id}/mapping").get_data(as_text=True)
    assert 'id="lead-target"' in html and 'name="map_company_name"' in html
    assert 'name="owner_id"' in html
    resp = post(clients.staff, f"/imports/{batch.id}/mapping",
                {**{f"map_{f}": h for f, h in batch.mapping.items()}, "target": "pool",
                 "pool_id": str(lead_pool_id())})
    assert resp.status_code == 302
    db.session.expire_all()
    import_run.run(batch.id)
    html = clients.staff.get(f"/imports/{batch.id}/").get_data(as_text=True)
    assert 'data-line="3"' in html and "手机：无效的电话号码：1360013600" in html
