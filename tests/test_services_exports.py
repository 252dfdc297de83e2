"""Customer export: exactly the rows of the user's data scope, contact details in full only
where the user may edit the row (admins: every row; auditors: none), a pool admin's pool
export in full, and no cell that Excel would run as a formula."""
from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from openpyxl import load_workbook

from app.models import CustomerShare
from app.models.customer import utcnow
from app.services import customers, exports


def _contacts(user) -> dict[str, tuple]:
    """{customer name: (mobile, phone, email, owner, pool)} of the user's export."""
    return {r[1]: (r[7], r[8], r[9], r[12], r[13]) for r in exports.customer_rows(user)}


FULL = {
    "杭州云帆科技有限公司": ("13800138000", None, None, "rep1", ""),
    "苏州恒信电子有限公司": ("13900139000", None, None, "rep2", ""),
    "北京华联商贸有限公司": (None, None, "Contact@HuaLian.cn", "rep3", ""),
    "上海申达物流有限公司": (None, "021-62345678", None, "", "默认公海"),
}


def test_admin_exports_every_row_in_full(db, org):
    assert _contacts(org.admin) == FULL


def test_reps_and_managers_export_their_scope_in_full(db, org):
    assert _contacts(org.rep) == {"杭州云帆科技有限公司": FULL["杭州云帆科技有限公司"]}
    assert _contacts(org.rep_north) == {"北京华联商贸有限公司": FULL["北京华联商贸有限公司"]}
    assert _contacts(org.manager) == {k: FULL[k] for k in ("杭州云帆科技有限公司",
                                                           "苏州恒信电子有限公司")}


def test_staff_see_every_customer_in_full_pool_customers_too(db, org):
    # Back-office staff maintain every record (the contact details rule, DESIGN.md).
    assert _contacts(org.staff) == FULL


def test_auditors_export_every_row_masked(db, org):
    assert _contacts(org.auditor) == {
        "杭州云帆科技有限公司": ("138****8000", "", "", "rep1", ""),
        "苏州恒信电子有限公司": ("139****9000", "", "", "rep2", ""),
        "北京华联商贸有限公司": ("", "", "C***@HuaLian.cn", "rep3", ""),
        "上海申达物流有限公司": ("", "021****5678", "", "", "默认公海"),
    }


def test_a_customer_shared_read_only_is_exported_masked(db, org):
    db.session.add(CustomerShare(customer_id=org.c_rep2.id, user_id=org.rep.id,
                                 expires_at=utcnow() + dt.timedelta(days=3)))
    db.session.commit()
    assert _contacts(org.rep) == {"杭州云帆科技有限公司": FULL["杭州云帆科技有限公司"],
                                  "苏州恒信电子有限公司": ("139****9000", "", "", "rep2", "")}


def test_a_pool_admins_pool_export_is_in_full(db, org):
    rows = list(exports.pool_rows({org.pool.id}))
    assert [(r[0], r[1], r[8], r[13]) for r in rows] == [
        (org.c_pool.id, "上海申达物流有限公司", "021-62345678", "默认公海")]
    assert list(exports.pool_rows(set())) == []


@pytest.mark.parametrize("value, cell", [
    ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("@SUM(A1)", "'@SUM(A1)"),
    ("+cmd", "'+cmd"), ("\tx", "'\tx"), ("\rx", "'\rx"),
    # A leading sign followed by a digit is a formula too when an operator follows.
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"), ("+1+1", "'+1+1"),
    ("-1*SUM(A1)", "'-1*SUM(A1)"),
    # Numbers and phone numbers as people write them stay as they are.
    ("+86 138 0013 8000", "+86 138 0013 8000"), ("+86 (21) 6234-5678", "+86 (21) 6234-5678"),
    ("-5", "-5"), ("-1.5", "-1.5"),
    ("普通文本", "普通文本"), (42, 42), (None, None), ("", ""),
])
def test_cells_excel_would_run_get_an_apostrophe(value, cell):
    assert exports.safe_cell(value) == cell


def test_csv_and_xlsx_hold_the_same_rows_with_formulas_defused(db, org):
    customers.create_customer(org.rep, {"name": "=1+2 杭州测试有限公司", "mobile": "13700137000"})
    out = io.StringIO()
    assert exports.write_csv(org.rep, out) == 2
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0] == ["编号", "名称", "类型", "行业", "省份", "城市", "地址", "手机", "电话",
                       "邮箱", "来源", "产品线", "负责人", "公海", "创建时间"]
    assert rows[1][2] == "企业客户"  # the type's label, not "company"
    assert [(r[1], r[7]) for r in rows[1:]] == [("杭州云帆科技有限公司", "13800138000"),
                                                ("'=1+2 杭州测试有限公司", "13700137000")]
    data, n = exports.xlsx_bytes(org.rep)
    sheet = load_workbook(io.BytesIO(data)).active
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert n == 2 and cells[0] == rows[0] and cells[1][2] == "企业客户"
    assert [(r[1], r[7]) for r in cells[1:]] == [("杭州云帆科技有限公司", "13800138000"),
                                                 ("'=1+2 杭州测试有限公司", "13700137000")]


def test_signed_formulas_are_defused_in_every_text_column_of_the_csv(db, org):
    formula = "-1+1+cmd|' /C calc'!A0"
    c = customers.create_customer(org.rep, {"name": formula, "industry": "+1+1",
                                            "address": formula})
    out = io.StringIO()
    exports.write_csv(org.rep, out)
    (row,) = [r for r in csv.DictReader(io.StringIO(out.getvalue())) if r["编号"] == str(c.id)]
    assert (row["名称"], row["行业"], row["地址"]) == ("'" + formula, "'+1+1", "'" + formula)
