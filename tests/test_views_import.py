"""The import pages per role (upload, mapping, progress, error report, resume), CSRF, other
users' batches, and the export (CSV / XLSX) with masked contacts per role."""
from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.models import CustomerShare, ImportBatch, PoolMember
from app.services import customers, import_run
from tests.test_views_access import flashes
from tests.test_views_ownership import post

FILE = ("客户名称,手机,城市\n"
        "大连万达商业有限公司,13700150001,大连\n"
        "大连港集团有限公司,12345,大连\n"
        "杭州云帆科技有限公司,13800138000,杭州\n").encode("gbk")


def upload(client, data=FILE, name="客户.csv"):
    return post(client, "/imports/upload", {"file": (io.BytesIO(data), name)},
                content_type="multipart/form-data")


def batch_of(db) -> ImportBatch:
    return db.session.execute(select(ImportBatch).order_by(ImportBatch.id.desc())).scalars().first()


def test_staff_upload_map_run_and_read_the_report(clients, db, org):
    resp = upload(clients.staff)
    batch = batch_of(db)
    assert resp.status_code == 302 and resp.headers["Location"].endswith(
        f"/imports/{batch.id}/mapping")
    html = clients.staff.get(f"/imports/{batch.id}/mapping").get_data(as_text=True)
    assert "GB18030" in html.upper() and "大连港集团有限公司" in html  # preview, decoded
    assert '<option value="客户名称" selected>' in html
    # Nothing mapped to the name: refused beside the field, nothing queued.
    resp = post(clients.staff, f"/imports/{batch.id}/mapping",
                {"map_mobile": "手机", "target": "pool", "pool_id": str(org.pool.id)})
    html = resp.get_data(as_text=True)
    assert "必须指定哪一列是『客户名称』（文件的列：客户名称、手机、城市）" in html
    assert db.session.get(ImportBatch, batch.id).status == "mapping"
    resp = post(clients.staff, f"/imports/{batch.id}/mapping",
                {"map_name": "客户名称", "map_mobile": "手机", "map_city": "城市",
                 "target": "pool", "pool_id": str(org.pool.id)})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/imports/{batch.id}/")
    db.session.expire_all()
    assert db.session.get(ImportBatch, batch.id).status == "queued"
    import_run.run(batch.id)  # what the worker does (tests/test_jobs_import.py runs a real one)
    status = clients.staff.get(f"/imports/{batch.id}/status").get_json()
    assert {k: status[k] for k in ("status", "total", "processed", "inserted", "duplicates",
                                   "invalid")} == {"status": "done", "total": 3, "processed": 3,
                                                   "inserted": 1, "duplicates": 1, "invalid": 1}
    html = clients.staff.get(f"/imports/{batch.id}/").get_data(as_text=True)
    assert 'data-line="3"' in html and "手机：无效的电话号码：12345" in html
    assert "已存在：客户 杭州云帆科技有限公司，负责人 测试rep1（华东大区）" in html
    report = clients.staff.get(f"/imports/{batch.id}/errors.csv")
    assert report.status_code == 200 and "attachment" in report.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(report.get_data(as_text=True).lstrip("\ufeff"))))
    assert [r[:3] for r in rows] == [["行号", "问题类型", "原因"], ["3", "数据错误",
                                     "手机：无效的电话号码：12345"], ["4", "重复", rows[2][2]]]
    listing = clients.staff.get("/imports/").get_data(as_text=True)
    assert f'data-batch="{batch.id}"' in listing and "客户.csv" in listing and "已完成" in listing


def test_an_import_mapped_while_redis_is_down_is_told_it_starts_when_redis_is_back(
        app, clients, db, org):
    from tests.test_jobs_import import redis_down

    upload(clients.staff)
    batch = batch_of(db)
    with redis_down(app):
        resp = post(clients.staff, f"/imports/{batch.id}/mapping",
                    {"map_name": "客户名称", "map_mobile": "手机", "target": "pool",
                     "pool_id": str(org.pool.id)}, follow_redirects=True)
    assert flashes(resp.get_data(as_text=True)) == [
        "后台任务暂停（Redis 无法连接）：此批次已排队，Redis 恢复后自动开始导入；也可在服务器上运行 "
        f"flask crm import --resume {batch.id} 立即导入"]
    db.session.expire_all()
    batch = db.session.get(ImportBatch, batch.id)
    assert (batch.status, batch.job_id) == ("queued", None)  # what requeue_stranded picks up


def test_upload_needs_the_csrf_token(clients, db):
    resp = clients.staff.post("/imports/upload", data={"file": (io.BytesIO(FILE), "a.csv")},
                              content_type="multipart/form-data")
    assert resp.status_code == 400 and "The CSRF token is missing." in resp.get_data(as_text=True)
    assert batch_of(db) is None


def test_a_bad_file_is_refused_with_its_reason(clients, db):
    resp = upload(clients.staff, b"\xd0\xcf\x11\xe0", "old.xls")
    html = clients.staff.get(resp.headers["Location"]).get_data(as_text=True)
    assert "不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 CSV" in " ".join(flashes(html))


@pytest.mark.parametrize("role", ["rep", "manager"])
def test_reps_and_managers_import_only_as_pool_admins(clients, db, org, role):
    html = getattr(clients, role).get("/imports/").get_data(as_text=True)
    assert "只有后台人员、管理员和公海管理员可以导入客户" in html and "import-upload" not in html
    resp = upload(getattr(clients, role))
    html = getattr(clients, role).get(resp.headers["Location"]).get_data(as_text=True)
    assert "只有后台人员、管理员和公海管理员可以导入客户" in " ".join(flashes(html))
    user = getattr(org, role)
    db.session.add(PoolMember(pool_id=org.pool.id, user_id=user.id, is_admin=True))
    db.session.commit()
    assert upload(getattr(clients, role)).headers["Location"].endswith("/mapping")


def test_auditors_have_no_import_page(clients):
    assert clients.auditor.get("/imports/").status_code == 403
    assert upload(clients.auditor).status_code == 403
    assert clients.auditor.get("/imports/1/status").status_code == 403


def test_someone_elses_batch_is_out_of_reach(clients, db, org):
    upload(clients.staff)
    batch = batch_of(db)
    db.session.add(PoolMember(pool_id=org.pool.id, user_id=org.rep.id, is_admin=True))
    db.session.commit()
    for path in (f"/imports/{batch.id}/", f"/imports/{batch.id}/mapping",
                 f"/imports/{batch.id}/errors.csv"):
        html = clients.rep.get(path, follow_redirects=True).get_data(as_text=True)
        assert "导入批次不存在或不是您创建的" in html, path
    assert clients.rep.get(f"/imports/{batch.id}/status").status_code == 404
    resp = post(clients.rep, f"/imports/{batch.id}/resume", {}, follow_redirects=True)
    assert "导入批次不存在或不是您创建的" in resp.get_data(as_text=True)
    assert clients.admin.get(f"/imports/{batch.id}/mapping").status_code == 200


# --- export -----------------------------------------------------------------------------------
def exported(client, fmt):
    resp = client.get(f"/customers/export.{fmt}")
    assert resp.status_code == 200, fmt
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    else:
        sheet = load_workbook(io.BytesIO(resp.data), read_only=True).worksheets[0]
        rows = [["" if v is None else str(v) for v in r] for r in sheet.iter_rows(values_only=True)]
    header = rows[0]
    return {r[header.index("名称")]: (r[header.index("手机")], r[header.index("电话")],
                                     r[header.index("邮箱")]) for r in rows[1:]}


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_masks_what_the_user_may_not_see(clients, db, org, fmt):
    db.session.add(CustomerShare(customer_id=org.c_rep2.id, user_id=org.rep.id))
    db.session.commit()
    rep = exported(clients.rep, fmt)
    assert rep == {"杭州云帆科技有限公司": ("13800138000", "", ""),
                   "苏州恒信电子有限公司": ("139****9000", "", "")}  # shared: read-only
    staff = exported(clients.staff, fmt)
    assert staff["上海申达物流有限公司"] == ("", "021-62345678", "")  # staff: every record in full
    assert staff["北京华联商贸有限公司"] == ("", "", "Contact@HuaLian.cn")
    auditor = exported(clients.auditor, fmt)
    assert auditor["北京华联商贸有限公司"] == ("", "", "C***@HuaLian.cn")
    assert auditor["杭州云帆科技有限公司"][0] == "138****8000"
    admin = exported(clients.admin, fmt)
    assert admin["上海申达物流有限公司"] == ("", "021-62345678", "") and len(admin) == 4
    manager = exported(clients.manager, fmt)
    assert set(manager) == {"杭州云帆科技有限公司", "苏州恒信电子有限公司"}
    assert manager["苏州恒信电子有限公司"][0] == "13900139000"


def test_export_cli_writes_xlsx(app, db, org, tmp_path):
    out = tmp_path / "c.xlsx"
    result = app.test_cli_runner().invoke(args=["crm", "export", "--user", "rep1", "--format",
                                                "xlsx", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(load_workbook(out, read_only=True).worksheets[0].iter_rows(values_only=True))
    assert [r[1] for r in rows] == ["名称", "杭州云帆科技有限公司"]


def test_import_cli_with_progress_bar_and_resume(app, db, org, tmp_path):
    path = tmp_path / "list.csv"
    path.write_bytes("\ufeff公司,联系手机\n贵阳老干妈食品有限公司,13700160001\n坏行,1\n".encode())
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "import", str(path), "--user", "staff1",
                                 "--map", "mobile=联系手机"])
    assert result.exit_code == 0, result.output
    assert "mapping: name=公司, mobile=联系手机" in result.output
    assert "2/2" in result.output  # the tqdm bar
    assert "1 inserted, 0 duplicates, 1 invalid (done)" in result.output
    batch = batch_of(db)
    result = runner.invoke(args=["crm", "import", "--resume", str(batch.id), "--user",
                                 "staff1"])
    assert result.exit_code == 0 and f"batch {batch.id}: 1 inserted, 0 duplicates, 1 invalid " \
        "(done)" in result.output  # a finished batch is not run again
    result = runner.invoke(args=["crm", "import", str(path), "--user", "rep1"])
    assert result.exit_code != 0 and "只有后台人员、管理员和公海管理员可以导入客户" in result.output
    result = runner.invoke(args=["crm", "import", str(path), "--user", "staff1", "--map",
                                 "name=不存在"])
    assert result.exit_code != 0 and "文件中没有这些列：不存在" in result.output


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_exported_cells_are_never_formulas(clients, db, org, fmt):
    customers.create_customer(org.rep, {"name": "=HYPERLINK(\"http://x\")公司",
                                        "mobile": "+86 137 0019 0001", "notes": "x"})
    rep = exported(clients.rep, fmt)
    assert "'=HYPERLINK(\"http://x\")公司" in rep
    assert rep["'=HYPERLINK(\"http://x\")公司"][0] == "+86 137 0019 0001"
    if fmt == "xlsx":
        resp = clients.rep.get("/customers/export.xlsx")
        sheet = load_workbook(io.BytesIO(resp.data)).worksheets[0]
        assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_a_file_over_the_request_limit_is_refused_with_a_message(app, clients, db):
    limit = app.config["MAX_CONTENT_LENGTH"]
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    try:
        resp = upload(clients.staff, b"a" * (2 * 1024 * 1024), "big.csv")
    finally:
        app.config["MAX_CONTENT_LENGTH"] = limit
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/imports/")
    html = clients.staff.get("/imports/").get_data(as_text=True)
    assert "文件过大：最大 1 MB" in " ".join(flashes(html))
    assert batch_of(db) is None
