"""The services' refusals follow the reader's language: English msgids, the Chinese of before
in messages.po. Pages and session-signed API calls read the session's language; JWT calls,
jobs and the CLI the default (zh). Dates inside refusals are business dates."""
from __future__ import annotations

import ast
import datetime as dt
import pathlib
import re
from types import SimpleNamespace

import pytest
from sqlalchemy import update

from app.models import OwnershipEvent, Policy, PoolMember
from app.models.customer import utcnow
from app.services import customers, pool
from app.services.errors import InCooldown, ValidationFailed, tr
from tests.test_views_access import flashes


@pytest.fixture
def east_pool(db, org):
    """The default pool open to 华东 (rep1's department), with one more customer in it."""
    db.session.add(PoolMember(pool_id=org.pool.id, department_id=org.east.id))
    db.session.commit()
    return customers.create_customer(org.staff, {"name": "语言公海客户"})


def in_language(client, lang: str):
    assert client.get(f"/lang/{lang}").status_code == 302
    return client


def claim(client, customer_id: int) -> list[str]:
    resp = client.post("/pool/action_post", data={
        "action": "claim", "rowid": [str(customer_id)], "csrf_token": client.csrf},
        follow_redirects=True)
    return flashes(resp.get_data(as_text=True))


@pytest.mark.parametrize("lang,text", [
    ("en", "Over the customer cap: cap 1, held 1, claiming 1"),
    ("zh", "超出客户上限：上限 1，已拥有 1，本次领取 1"),
])
def test_claim_over_the_cap(clients, db, org, east_pool, lang, text):
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=1))
    db.session.commit()
    assert text in claim(in_language(clients.rep, lang), east_pool.id)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_cooldown_names_the_business_date(clients, db, org, east_pool, app, lang):
    app.config["TIMEZONE"] = "Asia/Shanghai"
    db.session.add(Policy(scope="user", user_id=org.rep.id, cooldown_days=30))
    db.session.commit()
    pool.release_to_pool(org.rep, [org.c_rep.id], reason="暂无需求")
    # Released at 22:00 UTC the day before yesterday: 06:00 the next day in Shanghai.
    released = (utcnow() - dt.timedelta(days=2)).replace(hour=22, minute=0, second=0,
                                                          microsecond=0)
    db.session.execute(update(OwnershipEvent).where(
        OwnershipEvent.customer_id == org.c_rep.id, OwnershipEvent.kind == "released")
        .values(created_at=released))
    db.session.commit()
    shown = (released + dt.timedelta(days=1)).date().isoformat()
    left = 30 - (utcnow() - released).days
    expected = {
        "en": f"Previous-owner cooldown of 30 days: {org.c_rep.name} left you on {shown}; "
              f"you can claim again in {left} days",
        "zh": f"原负责人冷却期 30 天：{org.c_rep.name} 于 {shown} 从您名下退回，"
              f"还需 {left} 天才能再领取"}[lang]
    assert expected in claim(in_language(clients.rep, lang), org.c_rep.id)


def test_cooldown_date_is_the_shanghai_day(app, db):
    """Released 2026-11-29 22:00 UTC is 2026-11-30 06:00 in Shanghai: the refusal says 11-30."""
    app.config["TIMEZONE"] = "Asia/Shanghai"
    row = SimpleNamespace(customer_id=7, name="上海客户",
                          released_at=dt.datetime(2026, 11, 29, 22, 0))
    with pytest.raises(InCooldown) as exc:
        pool._check_cooldown({7: row}, 30, dt.datetime(2026, 12, 1, 12, 0))
    assert exc.value.message == ("原负责人冷却期 30 天：上海客户 于 2026-11-30 从您名下退回，"
                                 "还需 29 天才能再领取")
    assert exc.value.details["cooldown_days"] == 30 and exc.value.code == "cooldown"


@pytest.mark.parametrize("lang,text", [
    ("en", "Skipped: Outside your data scope"),
    ("zh", "跳过：不在您的数据权限内"),
])
def test_out_of_scope_on_a_page(clients, org, east_pool, lang, text):
    # A manager of 华东 previews distributing to rep3 of 华北: the plan line says why not.
    client = in_language(clients.manager, lang)
    html = client.post(f"/ownership/distribute?ids={east_pool.id}", data={
        "step": "preview", "owner_ids": [str(org.rep_north.id)], "csrf_token": client.csrf,
    }).get_data(as_text=True)
    label = "测试rep3 (rep3 · 华北大区)"  # the picker's label (app.services.org)
    assert f'data-user="rep3"><td>{label}</td><td colspan="4">{text}</td>' in html


@pytest.mark.parametrize("lang,text", [
    ("en", "The customer does not exist or is outside your data scope"),
    ("zh", "客户不存在或不在您的数据权限内"),
])
def test_out_of_scope_through_the_session_api(clients, db, org, lang, text):
    client = in_language(clients.rep, lang)
    resp = client.post("/api/v1/pool/release", json={"customer_ids": [org.c_rep2.id],
                                                     "reason": "试试"},
                       headers={"X-CSRFToken": client.csrf})
    body = resp.get_json()
    assert (resp.status_code, body["code"], body["message"]) == (404, "out_of_scope", text)


@pytest.mark.parametrize("lang,text", [
    ("en", "Please give a reason for releasing"),
    ("zh", "请填写放弃原因"),
])
def test_a_bad_field(clients, db, org, lang, text):
    client = in_language(clients.rep, lang)
    resp = client.post(f"/ownership/release?ids={org.c_rep.id}",
                       data={"reason": " ", "csrf_token": client.csrf})
    assert flashes(resp.get_data(as_text=True)) == [text]


@pytest.mark.parametrize("lang,text", [
    ("en", "Invalid phone number: 12345"),
    ("zh", "无效的电话号码：12345"),
])
def test_a_normalised_field(clients, org, lang, text):
    client = in_language(clients.rep, lang)
    resp = client.post("/customers/add", data={"name": "号码不对", "customer_type": "company",
                                               "phone": "12345", "csrf_token": client.csrf})
    assert resp.status_code == 200
    assert text in resp.get_data(as_text=True)


def test_api_follows_the_session_language_and_keeps_codes(clients, api, db, org, east_pool):
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=1))
    db.session.commit()
    client = in_language(clients.rep, "en")
    resp = client.post("/api/v1/pool/claim", json={"customer_ids": [east_pool.id]},
                       headers={"X-CSRFToken": client.csrf})
    assert resp.status_code == 409
    assert resp.get_json() == {"code": "cap_exceeded", "cap": 1, "owned": 1, "adding": 1,
                               "message": "Over the customer cap: cap 1, held 1, claiming 1"}
    # A JWT call has no session: the default language.
    resp = api("rep1")("POST", "/api/v1/pool/claim", json={"customer_ids": [east_pool.id]})
    assert resp.get_json()["message"] == "超出客户上限：上限 1，已拥有 1，本次领取 1"
    resp = api("rep1")("POST", "/api/v1/pool/release", json={"customer_ids": [org.c_rep.id]})
    body = resp.get_json()
    assert (body["code"], body["fields"]) == ("invalid", {"reason": "请填写放弃原因"})


def test_outside_an_app_the_refusals_are_chinese():
    """A script without the app (no request, no app context) still gets the zh catalogue."""
    from flask import has_app_context

    assert not has_app_context()
    assert tr("Over the customer cap: cap %(cap)s, held %(have)s, %(verb)s %(adding)s",
              cap=1, have=1, verb=tr("claiming"), adding=1) == "超出客户上限：上限 1，已拥有 1，本次领取 1"
    assert ValidationFailed({"a": tr("Cannot be negative"), "b": "x"}).message == "不能为负数；x"


# --- no Chinese refusal slips back into the services --------------------------------------
# Chinese string literals the services may keep: data and stored texts, not refusals. Each
# file's entry lists them; a new Chinese text must be a tr() msgid or be added here with why.
_LEXICONS = {"region_names.py", "normalize.py"}  # region, ethnic, legal-form and country words
ALLOWED = {
    # seeds of the first start: the default pool and the first admin's names
    "bootstrap.py": {"默认公海", "未分配客户的默认公海", "默认线索公海", "未分配线索的默认线索公海",
                     "管理员", "系统"},
    # customer-facing greeting templates (seeded rows admins edit), their date words, the
    # owners' care reminders (stored notifications) and deliveries' stored last errors
    "care.py": {"生日提醒（负责人）", "{occasion}提醒", "生日祝福邮件", "{contact}，生日快乐！",
                "生日祝福短信", "{contact}您好，{owner}祝您生日快乐，万事如意！", "节日提醒（负责人）",
                "{occasion}问候提醒", "节日祝福邮件", "{occasion}快乐", "新春祝福邮件", "春节",
                "恭贺新春", "月", "日", "日）", "模板已删除", "今天", " 等 ", " 位", " 天后", "：请问候 ",
                "发送中断（进程退出），无法确认是否送达；确认后可手动重试", "地址已退订"},
    "care_calendar.py": {"补假", "调休", "休息日", "生日", "农历生日"},  # holiday package names
    # the gateways' errors, stored on the outbox row by the delivery job
    "care_channels.py": {"未配置短信网关（设置 GUISHU_SMS_GATEWAY）", "未配置邮件服务器（设置 GUISHU_SMTP_HOST）",
                         "短信网关未配置地址（GUISHU_SMS_URL）", "短信网关 ", " 无法加载：", "邮件服务器拒收地址 ",
                         "邮件服务器登录失败：", "邮件服务器错误：", "邮件服务器不可达（", "短信网关拒绝：HTTP ",
                         "短信网关不可达：", " 无法写入："},
    # the reasons stored on ownership events and audit rows (history, not messages)
    "assignment.py": {"平均分配", "分配"},
    "customers.py": {"删除客户"},
    "departure.py": {"离职交接", "离职交接：您接收了新客户", " 离职，", " 个客户转给您"},
    "merge.py": {"合并客户 #", "并入客户 #", "撤销合并 #", "：拆出客户 #", "：从客户 #", " 恢复"},
    "ownership.py": {"新建客户"},
    "pool.py": {"领取"},
    # leads: event and audit reasons, and the notifications of a sweep and of a linked lead
    "leads.py": {"新建线索", "线索转化", "领取", "分配", " 天未跟进，自动回收",
                 " 条线索因未跟进已回收至线索公海", "线索「", "」与您的客户「", "」重复，已关联",
                 "转化人："},
    # a lead event's reason and the stored duplicate notification of the public form
    "lead_handover.py": {"离职交接", "离职交接：您接收了新线索", " 条线索转给您"},
    # the stored lead pre-reclaim warning (as reclaim.py's)
    "lead_warnings.py": {"线索「", "」将于 ", " 被自动回收", "超过 ", " 天未跟进：请跟进，或转化、标记无效。",
                         "（", "）"},
    "lead_capture.py": {"公开表单：", "客户「", "线索「", "公开表单「", "」收到与您的", "重复的提交",
                        "留言："},
    "pool_admin.py": {"管理员移动公海"},
    "rules.py": {"部门内没有可接收的销售", "指定销售不可用", "指定销售已达上限", "没有匹配的规则",
                 "按归属规则分配", "按归属规则移入公海"},
    "import_run.py": {"批量导入 #", "导入："},
    "reclaim.py": {"超过 ", " 天未跟进，自动回收", "领取后超过 ", " 天未成交，自动回收",
                   "长期未跟进或未成交的客户已退回公海；冷却期内您不能再次领取。", " 个客户已被自动回收到公海",
                   "长期未跟进或未成交。", "客户「", "」将于 ", " 被自动回收", "：请跟进或成交，或申请锁定。",
                   " 的 ", "，自动回收"},
    # stored notifications
    "dedupe.py": {"疑似重复：客户 ", "市"},
    "followups.py": {"今日待跟进 ", " 个，已逾期 ", " 个"},
    # stored notifications, and the subjects of the tasks follow-ups and care open (data)
    "tasks.py": {" 给你安排了待办：", "到期：", "待办到期：", " 项待办到期", "跟进：", "关怀提醒"},
    "transfers.py": {"待审批的客户转移 #", "，共 ", " 个客户：", "客户转移 #", " 已完成", " 个客户已交接给 ",
                     "。交接说明：", " 被驳回", "涉及 A 级或锁定客户，或跨部门转移", " 需要第二级审批", "无",
                     "转移申请 #"},
    # matching words: the same-city key, unnamed columns (列3), Chinese header synonyms and
    # customer-type words of import files, the import report's CSV (a file, in Chinese)
    "dedupe_scan.py": {"市"},
    "import_files.py": {"列"},
    "import_report.py": {"数据错误", "重复", "行号", "问题类型", "原因"},
    # marketing: the customer-facing footers of campaign and survey messages (回复TD退订 is
    # what Chinese carriers require), the reply words TD / 退订, the stored last errors of
    # the outboxes (as care's), and a lead event's reason
    "campaign_sending.py": {"回复TD退订", "不想再收到此类邮件？点此退订：", "发送中",
                            "发送中断（进程退出），无法确认是否送达；确认后可手动重试", "地址已退订",
                            "^(td|退订)[。.!！]?$", "模板无法填充："},
    "campaign_responses.py": {"市场活动："},
    "surveys.py": {"\n请点击以下链接填写（", "前有效）：\n", "前有效）", "问卷调查：", "您好，诚邀您参与问卷「",
                   "前有效）回复TD退订", "您好：\n\n诚邀您参与问卷调查「",
                   "发送中断（进程退出），无法确认是否送达", "已退订"},
    # issue 17 H3: the ticket categories seeded at the first start (data admins rename)
    "service_admin.py": {"咨询", "故障", "投诉", "退换货", "建议"},
    # issue 17 H4: the seeded satisfaction survey (a row admins may replace), the stored
    # low-score notification / task subject and the reopen reason on the ticket's history
    "satisfaction.py": {"服务满意度调查", "感谢您联系我们的客服。请为本次服务打分，帮助我们改进。",
                        "您对本次服务的满意程度（1 = 非常不满意，5 = 非常满意）", "您还有什么意见或建议？",
                        "低满意度（", " 分）：", "客户评分 ", " 分"},
    # issue 18: a call logged as a follow-up ("来电 2分05秒 · 坐席 张三"), the call-back task
    # and notification of a missed call (stored texts, like the follow-up digest's)
    "cti_events.py": {"来电", "去电", "分", "秒", " · 坐席 ", "回电：", "未接来电（", "未接来电：",
                      " 来电未接，请回电"},
}
_PATTERNS = {"customers.py"}  # the birthday pattern (年 / 月 / 日)
_HEADER_WORDS = {"import_mapping.py"}  # header names and synonyms of import files
CJK = re.compile(r"[\u4e00-\u9fff]")


def _cjk_literals(path: pathlib.Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                and node.body and isinstance(node.body[0], ast.Expr) \
                and isinstance(node.body[0].value, ast.Constant):
            docstrings.add(id(node.body[0].value))
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings and CJK.search(node.value)]


def _msgids_of(path: pathlib.Path) -> set[str]:
    """The literal first arguments of tr / lazy_tr calls: English by rule."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {call.args[0].value for call in ast.walk(tree)
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) in ("tr", "lazy_tr")
            and call.args and isinstance(call.args[0], ast.Constant)}


def test_services_hold_no_chinese_refusals():
    services = pathlib.Path(__file__).resolve().parent.parent / "app" / "services"
    stray = []
    for path in sorted(services.glob("*.py")):
        if path.name in _LEXICONS:
            continue
        allowed = ALLOWED.get(path.name, set())
        for line, text in _cjk_literals(path):
            if text in allowed or path.name in _HEADER_WORDS and text in _header_words() \
                    or path.name in _PATTERNS and text.startswith("^"):
                continue
            if path.name == "care.py" and ("{contact}" in text or "{occasion}" in text):
                continue  # the seeded greeting bodies
            stray.append(f"{path.name}:{line}: {text!r}")
        assert not [m for m in _msgids_of(path) if CJK.search(m)], path.name
    assert not stray, "Chinese refusal text in the services; use tr('English msgid'):\n" + \
        "\n".join(stray)


def _header_words() -> set[str]:
    from app.services import import_mapping

    words = set(import_mapping.FIELD_LABELS.values()) | set(import_mapping.CUSTOMER_TYPE_WORDS)
    words |= set(import_mapping.LEAD_FIELD_LABELS.values())
    words |= set(import_mapping.LEAD_SOURCE_WORDS)  # the source channels as files write them
    for synonyms in (*import_mapping.HEADER_SYNONYMS.values(),
                     *import_mapping.LEAD_HEADER_SYNONYMS.values()):
        words |= set(synonyms)
    return words


def test_the_scan_catches_a_chinese_refusal(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""文档。"""\n# 注释\ndef f():\n    """说明。"""\n'
                      '    raise ValueError("客户不存在")\n', encoding="utf-8")
    assert _cjk_literals(sample) == [(5, "客户不存在")]
