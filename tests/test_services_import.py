"""Bulk import: encodings and formats, the column mapping, every bad row reported with its
line and reason while the good rows land, dedupe against the table and within the file,
re-import inserts nothing, resume after a crash, placement into a pool or by the rules, and
who may import where."""
from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from app.models import (AssignmentRule, Customer, ImportBatch, ImportProblem, Ownership,
                        OwnershipEvent, Policy, Pool, PoolMember)
from app.services import import_mapping, import_report, import_run, imports
from app.services.errors import OutOfScope, PermissionDenied, ValidationFailed

HEADER = "客户名称,手机,电话,邮箱,城市,生日,客户类型\n"


def csv_bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def run_import(db, actor, data: bytes, filename="客户.csv", pool=None, mapping=None,
               target="pool", chunk_rows=None):
    batch = import_mapping.upload(actor, filename, data)
    pool_id = pool.id if pool is not None else (
        None if target == "rules" else db.session.execute(
            select(Pool.id).where(Pool.is_default.is_(True),
                                  Pool.record_type == "customer")).scalar_one())
    import_mapping.configure(actor, batch.id, mapping or batch.mapping, target, pool_id)
    return import_run.run(batch.id, chunk_rows=chunk_rows)


def scored(later: str, earlier) -> str:
    """"相似客户（综合评分）：…" — the matcher's account of a CSV row (its HEADER columns) against
    an earlier row of the file, or against a saved customer."""
    from app.services.customers import clean_customer_data, text_keys
    from app.services.matching import Matcher

    def values(row):
        if isinstance(row, Customer):
            return {c.name: getattr(row, c.name) for c in Customer.__table__.c}
        cells = dict(zip(("name", "mobile", "phone", "email", "city", "birthday",
                          "customer_type"), row.split(",")))
        cells["customer_type"] = {"个人": "person", "企业": "company"}.get(
            cells.get("customer_type", ""), "company")
        out = clean_customer_data({k: v for k, v in cells.items() if v}, partial=True)
        out.update(text_keys(out["customer_type"], out.get("name"), out.get("address")))
        return out

    return "相似客户（综合评分）：" + Matcher.current().explain(values(later),
                                                         values(earlier)).text()


def problems(db, batch) -> list[tuple[int, str, str]]:
    return [(p.line, p.kind, p.reason) for p in db.session.execute(
        select(ImportProblem).where(ImportProblem.batch_id == batch.id)
        .order_by(ImportProblem.line)).scalars()]


def count(db, model=Customer) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


MESSY = (HEADER +
         "宁波海天塑机有限公司,13700137001,,sales@haitian.cn,宁波,,企业\n"           # 2 good
         "无锡小天鹅电器有限公司,1370013700,,,无锡,,企业\n"                          # 3 bad mobile
         ",13700137003,,,,,\n"                                                       # 4 no name
         "温州正泰电气有限公司,13700137004\n"                                         # 5 short
         "合肥科大讯飞有限公司,13700137001,,,合肥,,\n"                               # 6 = line 2
         "杭州云帆科技有限公司(分部),13800138000,,,杭州,,\n"                         # 7 = c_rep
         "张伟,13700137007,,,上海,1990-02-30,个人\n"                                 # 8 bad date
         "厦门象屿物流有限公司,13700137008,0592-5603456,,厦门,,公司\n"               # 9 good
         "宁波海天塑机股份有限公司,,,,宁波,,\n")                                     # 10 = line 2
MESSY_LINES = dict(enumerate(MESSY.splitlines(), start=1))


def test_a_messy_file_lands_the_good_rows_and_reports_each_bad_one(db, org):
    before = count(db)
    data = csv_bytes(MESSY).replace("合肥科大讯飞".encode(), "合肥科大讯飞".encode("gbk"))
    batch = run_import(db, org.staff, data)
    assert (batch.status, batch.inserted, batch.invalid, batch.duplicates) == ("done", 2, 5, 2)
    assert count(db) == before + 2
    assert problems(db, batch) == [
        (3, "invalid", "手机：无效的电话号码：1370013700"),
        (4, "invalid", "客户名称：客户名称不能为空"),
        (5, "invalid", "缺少列：电话、邮箱、城市、生日、客户类型（此行只有 2 列，表头有 7 列）"),
        (6, "invalid", "编码错误：此行不是 UTF-8 编码的文本，无法读取"),
        (7, "duplicate", "已存在：客户 杭州云帆科技有限公司，负责人 测试rep1（华东大区）（手机号）"),
        (8, "invalid", "生日：生日不是有效日期"),
        (10, "duplicate", f"与文件第 2 行重复（{scored(MESSY_LINES[10], MESSY_LINES[2])}）"),
    ]
    new = db.session.execute(select(Customer).where(Customer.name.in_(
        ["宁波海天塑机有限公司", "厦门象屿物流有限公司"])).order_by(Customer.id)).scalars().all()
    assert [c.mobile_e164 for c in new] == ["+8613700137001", "+8613700137008"]
    assert new[1].phone_e164 == "+865925603456" and new[1].customer_type == "company"
    assert new[0].source == "导入：客户.csv" and new[0].name_core == "海天塑机"
    assert {c.ownership.pool_id for c in new} == {org.pool.id}
    events = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id.in_([c.id for c in new]))).scalars().all()
    assert {(e.kind, e.to_pool_id, e.actor_id) for e in events} == {
        ("created", org.pool.id, org.staff.id)}
    assert events[0].reason == f"批量导入 #{batch.id}：客户.csv"


def test_in_file_duplicates_within_one_chunk_and_across_chunks(db, org):
    rows = "".join(f"公司{i:03d}贸易有限公司,1370020{i:04d},,,,,\n" for i in range(6))
    rows += "另一家有限公司,13700200001,,,,,\n"      # mobile of line 3, next chunk
    rows += "公司000贸易有限公司,,,,,,\n"             # core name of line 2
    batch = run_import(db, org.staff, csv_bytes(HEADER + rows), chunk_rows=3)
    assert (batch.inserted, batch.duplicates) == (6, 2)
    assert problems(db, batch) == [
        (8, "duplicate", "与文件第 3 行重复（手机号）"),
        (9, "duplicate", "与文件第 2 行重复（{}）".format(scored(
            "公司000贸易有限公司,,,,,,", "公司000贸易有限公司,13700200000,,,,,")))]


@pytest.mark.parametrize("chunk_rows", [None, 1])
def test_a_refused_rows_keys_count_for_the_rows_after_it(db, org, chunk_rows):
    # Rows 1 and 2 share a mobile, rows 2 and 3 a name: all three are one company.
    rows = ("佛山翔维技术有限公司,13700137301,,,佛山,,\n"
            "佛山远航贸易有限公司,13700137301,,,佛山,,\n"
            "远航贸易（佛山）有限公司,13700137302,,,佛山,,\n")
    batch = run_import(db, org.staff, csv_bytes(HEADER + rows), chunk_rows=chunk_rows)
    assert (batch.inserted, batch.duplicates) == (1, 2)
    assert problems(db, batch) == [(3, "duplicate", "与文件第 2 行重复（手机号）"),
                                   (4, "duplicate", "与文件第 3 行重复（{}）".format(scored(
                                       rows.splitlines()[2], rows.splitlines()[1])))]
    assert db.session.execute(select(Customer.name).where(
        Customer.mobile_e164.like("+861370013730%"))).scalars().all() == ["佛山翔维技术有限公司"]


def test_a_row_refused_as_a_customer_of_the_table_still_counts(db, org):
    rows = ("佛山远航贸易有限公司,13800138000,,,佛山,,\n"    # mobile of 杭州云帆科技
            "远航贸易（佛山）有限公司,13700137302,,,佛山,,\n")
    batch = run_import(db, org.staff, csv_bytes(HEADER + rows))
    assert (batch.inserted, batch.duplicates) == (0, 2)
    assert problems(db, batch) == [
        (2, "duplicate", "已存在：客户 杭州云帆科技有限公司，负责人 测试rep1（华东大区）（手机号）"),
        (3, "duplicate", "与文件第 2 行重复（{}）".format(scored(rows.splitlines()[1],
                                                                 rows.splitlines()[0])))]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gbk", "utf-8"])
def test_excel_encodings_read_the_same(db, org, encoding):
    text = HEADER + "南京苏宁易购有限公司,13700137100,,,南京,03-12,\n"
    batch = run_import(db, org.staff, csv_bytes(text, encoding))
    expected = "gb18030" if encoding == "gbk" else encoding
    assert (batch.encoding, batch.inserted, batch.invalid) == (expected, 1, 0)
    c = db.session.execute(select(Customer).where(
        Customer.name == "南京苏宁易购有限公司")).scalar_one()
    assert (c.city, c.birth_month, c.birth_day) == ("南京", 3, 12)


def test_xlsx_with_number_and_date_cells(db, org):
    import datetime as dt

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["公司名称", "手机号码", "生日", "备注"])
    sheet.append(["青岛海尔智家有限公司", 13700137200, dt.datetime(1980, 5, 6), "展会"])
    sheet.append(["青岛啤酒有限公司", 1370013720, None, None])
    buf = io.BytesIO()
    book.save(buf)
    batch = run_import(db, org.staff, buf.getvalue(), filename="list.xlsx")
    assert (batch.file_format, batch.inserted, batch.invalid) == ("xlsx", 1, 1)
    assert problems(db, batch) == [(3, "invalid", "手机：无效的电话号码：1370013720")]
    c = db.session.execute(select(Customer).where(
        Customer.name == "青岛海尔智家有限公司")).scalar_one()
    assert (c.mobile, c.birth_year, c.notes) == ("13700137200", 1980, "展会")


def test_reimporting_the_same_file_inserts_nothing(db, org):
    rows = "".join(f"重庆{i}号火锅餐饮有限公司,1370030{i:04d},,,重庆,,\n" for i in range(20))
    first = run_import(db, org.staff, csv_bytes(HEADER + rows), chunk_rows=7)
    assert first.inserted == 20
    before = count(db)
    again = run_import(db, org.staff, csv_bytes(HEADER + rows), chunk_rows=7)
    assert (again.inserted, again.duplicates, count(db)) == (0, 20, before)
    held = db.session.execute(select(Customer).where(
        Customer.name == "重庆0号火锅餐饮有限公司")).scalar_one()
    assert problems(db, again)[0][2] == (
        "已存在：客户 重庆0号火锅餐饮有限公司，在公海『默认公海』中（手机号、"
        f"{scored(rows.splitlines()[0], held)}）")


def test_a_crashed_run_resumes_without_duplicates_or_losses(db, org, monkeypatch):
    rows = "".join(f"成都{i}号科技有限公司,1370040{i:04d},,,,,\n" for i in range(10))
    rows += "坏数据,123,,,,,\n"
    batch = import_mapping.upload(org.staff, "a.csv", csv_bytes(HEADER + rows))
    import_mapping.configure(org.staff, batch.id, batch.mapping, "pool", org.pool.id)
    real_insert, calls = import_run._insert, []

    def crash_on_third_chunk(job, accepted):
        calls.append(len(accepted))
        if len(calls) == 3:
            raise RuntimeError("worker killed")
        return real_insert(job, accepted)

    monkeypatch.setattr(import_run, "_insert", crash_on_third_chunk)
    with pytest.raises(RuntimeError):
        import_run.run(batch.id, chunk_rows=3)
    batch = db.session.get(ImportBatch, batch.id)
    assert (batch.status, batch.inserted, batch.next_line) == ("failed", 6, 8)
    assert "worker killed" in batch.error
    monkeypatch.setattr(import_run, "_insert", real_insert)
    batch = import_run.run(batch.id, chunk_rows=3)
    assert (batch.status, batch.inserted, batch.invalid, batch.duplicates) == ("done", 10, 1, 0)
    names = db.session.execute(select(Customer.name).where(
        Customer.name.like("成都%"))).scalars().all()
    assert sorted(names) == sorted(f"成都{i}号科技有限公司" for i in range(10))


def test_a_second_runner_stops_where_the_first_committed(db, org):
    batch = import_mapping.upload(org.staff, "a.csv", csv_bytes(HEADER + "西安一号有限公司,,,,,,\n"))
    import_mapping.configure(org.staff, batch.id, batch.mapping, "pool", org.pool.id)
    job = import_run._Run(batch)
    stale = import_run._Run(db.session.get(ImportBatch, batch.id))
    cells = [(2, ["西安一号有限公司", "", "", "", "", "", ""])]
    assert import_run._import_chunk(job, *next(import_run._cleaned_chunks(job, cells, 10, None)))
    assert stale.next_line == 2  # read before the first runner committed
    assert not import_run._import_chunk(
        stale, *next(import_run._cleaned_chunks(stale, cells, 10, None)))
    db.session.rollback()
    assert count(db) == 5


def test_the_mapping_step(db, org):
    batch = import_mapping.upload(org.staff, "x.csv",
                                  csv_bytes("Company, Mobile ,地址,其他\n甲,1,2,3\n"))
    assert batch.headers == ["Company", "Mobile", "地址", "其他"]
    assert batch.mapping == {"name": "Company", "mobile": "Mobile", "address": "地址"}
    with pytest.raises(ValidationFailed) as err:
        import_mapping.configure(org.staff, batch.id, {"mobile": "Mobile"}, "pool", org.pool.id)
    assert err.value.fields == {"name": "必须指定哪一列是『客户名称』（文件的列：Company、Mobile、地址、其他）"}
    with pytest.raises(ValidationFailed) as err:
        import_mapping.configure(org.staff, batch.id, {"name": "公司"}, "pool", org.pool.id)
    assert err.value.fields == {"mapping": "文件中没有这些列：公司"}
    with pytest.raises(ValidationFailed) as err:
        import_mapping.configure(org.staff, batch.id, {"name": "Company", "notes": "Company"},
                                 "pool", org.pool.id)
    assert err.value.fields == {"mapping": "同一列不能映射到多个字段：Company"}
    import_mapping.configure(org.staff, batch.id, {"name": "Company"}, "pool", org.pool.id)
    with pytest.raises(ValidationFailed) as err:
        import_mapping.configure(org.staff, batch.id, {"name": "Company"}, "pool", org.pool.id)
    assert err.value.fields == {"batch": "此批次已开始导入，不能再修改列映射"}


@pytest.mark.parametrize("data,filename,message", [
    (b"", "a.csv", "请选择要导入的文件（文件为空）"),
    (b"\n\n", "a.csv", "文件是空的：没有表头行"),
    (b"\xd0\xcf\x11\xe0\x00\x00", "old.xls", "不支持旧版 .xls 文件，请在 Excel 中另存为 .xlsx 或 CSV"),
    (b"name\n", "fake.xlsx", "文件扩展名是 .xlsx，但内容不是 Excel 工作簿"),
    (b"PK\x03\x04broken", "b.xlsx", None),
])
def test_unreadable_files_are_refused_with_a_reason(db, org, data, filename, message):
    with pytest.raises(ValidationFailed) as err:
        import_mapping.upload(org.staff, filename, data)
    if message:
        assert err.value.fields == {"file": message}
    else:
        assert err.value.fields["file"].startswith("无法打开 Excel 文件")
    assert count(db, ImportBatch) == 0


def test_who_may_import_where(db, org):
    data = csv_bytes(HEADER + "广州白云山医药有限公司,,,,,,\n")
    for who in (org.rep, org.manager, org.auditor):
        with pytest.raises(PermissionDenied) as err:
            import_mapping.upload(who, "a.csv", data)
        assert err.value.message == "只有后台人员、管理员和公海管理员可以导入客户"
    east_pool = Pool(name="华东公海", is_default=False)
    db.session.add(east_pool)
    db.session.flush()
    db.session.add(PoolMember(pool_id=east_pool.id, user_id=org.rep.id, is_admin=True))
    db.session.commit()
    batch = import_mapping.upload(org.rep, "a.csv", data)          # a pool admin
    with pytest.raises(ValidationFailed) as err:
        import_mapping.configure(org.rep, batch.id, batch.mapping, "pool", org.pool.id)
    assert err.value.fields == {"pool": "只能导入到您管理的公海"}
    with pytest.raises(ValidationFailed) as err:
        import_mapping.configure(org.rep, batch.id, batch.mapping, "rules", None)
    assert err.value.fields == {"target": "只有后台人员和管理员可以按归属规则导入"}
    import_mapping.configure(org.rep, batch.id, batch.mapping, "pool", east_pool.id)
    assert import_run.run(batch.id).inserted == 1
    with pytest.raises(OutOfScope):
        imports.get_batch(org.staff, batch.id)               # not theirs
    assert imports.get_batch(org.admin, batch.id).id == batch.id


def test_import_through_the_assignment_rules_honours_the_cap(db, org):
    db.session.add(AssignmentRule(name="杭州给rep1", position=1, active=True, city="杭州",
                                  target_type="user", target_user_id=org.rep.id))
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=3))
    db.session.commit()
    rows = "".join(f"杭州{i}号网络有限公司,,,,杭州,,\n" for i in range(4))
    rows += "南昌一号有限公司,,,,南昌,,\n"
    batch = run_import(db, org.staff, csv_bytes(HEADER + rows), target="rules")
    assert batch.inserted == 5
    placed = dict(db.session.execute(select(Customer.name, Ownership.owner_id).join(
        Ownership).where(Customer.name.like("杭州%号%") | Customer.name.like("南昌%"))).all())
    # rep1 already holds 杭州云帆 (1 of 3): two more fit, the rest go to the default pool.
    assert sorted(placed.values(), key=str) == sorted([org.rep.id, org.rep.id, None, None,
                                                       None], key=str)
    events = db.session.execute(select(OwnershipEvent.rule).where(
        OwnershipEvent.to_owner_id == org.rep.id, OwnershipEvent.rule.is_not(None))).scalars()
    assert set(events) == {"rule:杭州给rep1"}


def test_the_error_report_is_a_csv_of_the_bad_rows(db, org):
    batch = run_import(db, org.staff, csv_bytes(MESSY))
    name, text = import_report.problem_report(org.staff, batch.id)
    assert name == "客户-errors.csv" and text.startswith("\ufeff")
    lines = text[1:].splitlines()
    assert lines[0] == "行号,问题类型,原因,客户名称,手机,电话,邮箱,城市,生日,客户类型"
    assert lines[1] == "3,数据错误,手机：无效的电话号码：1370013700,无锡小天鹅电器有限公司,1370013700,,,无锡,,企业"
    assert len(lines) == 1 + 7
    with pytest.raises(OutOfScope):
        import_report.problem_report(org.rep, batch.id)


def test_the_error_report_defuses_formulas_in_the_files_headers_and_cells(db, org):
    data = csv_bytes("客户名称,手机,-1+1+cmd|' /C calc'!A0\n"
                     "+1+1,1370013700,=HYPERLINK(\"x\")\n")
    batch = run_import(db, org.staff, data)
    _, text = import_report.problem_report(org.staff, batch.id)
    import csv

    assert list(csv.reader(io.StringIO(text[1:]))) == [
        ["行号", "问题类型", "原因", "客户名称", "手机", "'-1+1+cmd|' /C calc'!A0"],
        ["2", "数据错误", "手机：无效的电话号码：1370013700", "'+1+1", "1370013700",
         "'=HYPERLINK(\"x\")"]]


def test_fuzzy_company_names_match_within_a_city_only(db, org):
    from app.services import customers

    held = customers.create_customer(org.rep, {"name": "杭州阿里巴巴云计算技术服务有限公司"})
    customers.create_customer(org.staff, {"name": "华为技术有限公司"})
    rows = ("杭州阿里巴巴云计算技术服务部有限公司,,,,,,\n"   # same city, one more character
            "北京阿里巴巴云计算技术服务部有限公司,,,,,,\n"   # another city
            "华为终端有限公司,,,,,,\n")                      # a different company
    batch = run_import(db, org.staff, csv_bytes(HEADER + rows))
    assert (batch.inserted, batch.duplicates) == (2, 1)
    assert problems(db, batch) == [(2, "duplicate", f"已存在：客户 {held.name}，负责人 测试rep1"
                                    f"（华东大区）（{scored(rows.splitlines()[0], held)}）")]


def test_large_files_are_validated_by_worker_processes_with_the_same_result(app, db, org):
    saved = {k: app.config[k] for k in ("IMPORT_PARALLEL_MIN_ROWS", "IMPORT_WORKERS")}
    app.config.update(IMPORT_PARALLEL_MIN_ROWS=1, IMPORT_WORKERS=2)
    try:
        pool = import_run._worker_pool(10)
        assert pool is not None
        pool.terminate()
        batch = run_import(db, org.staff, csv_bytes(MESSY), chunk_rows=3)
    finally:
        app.config.update(saved)
    assert (batch.inserted, batch.invalid, batch.duplicates) == (2, 4, 3)
    assert [p[:2] for p in problems(db, batch)] == [
        (3, "invalid"), (4, "invalid"), (5, "invalid"), (6, "duplicate"), (7, "duplicate"),
        (8, "invalid"), (10, "duplicate")]


def test_persons_match_by_name_or_pinyin_and_birthday(db, org):
    from app.services import customers

    held = customers.create_customer(org.rep, {"name": "王芳", "customer_type": "person",
                                               "birthday": "1990-03-05"})
    rows = ("王 芳,,,,,1990-03-05,个人\n"         # same person, spaced name
            "Wang Fang,,,,,03-05,个人\n"           # pinyin, birthday without year
            "王芳,,,,,1991-07-01,个人\n")          # another 王芳
    batch = run_import(db, org.staff, csv_bytes(HEADER + rows))
    assert (batch.inserted, batch.duplicates) == (1, 2)
    why = [f"已存在：客户 {held.name}，负责人 测试rep1（华东大区）（{scored(row, held)}）"
           for row in rows.splitlines()[:2]]
    assert problems(db, batch) == [(2, "duplicate", why[0]), (3, "duplicate", why[1])]
