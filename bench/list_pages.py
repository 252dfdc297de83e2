"""List-page benchmark (issue 14 item 1): every list page, for every role, at 1M customers.

Builds the demo organisation (admin, manager1 = the whole sales tree, rep1..rep20, staff1,
auditor1), then loads, server-side in bulk: `--customers` customers (70% owned by the demo
reps, 30% in the two demo pools) with Chinese company and person names, a contact each,
`--events` ownership events, and proportional follow-ups, deals, transfers, notifications,
care messages, import problems, dedupe clusters and audit rows. Then, through Flask's test
client signed in as admin, manager1, rep1 and staff1, requests every list page at page 1, a
deep page and a search, and prints p50/p95 wall time and SQL statements per request beside a
bare keyset query on the page's main table (`WHERE id < :x ORDER BY id DESC LIMIT 25`)
timed in the same run. Ends with the (page, role, variant) that miss the targets (issue 14):
list pages p95 <= 50 ms and <= 8 statements; home, workbench and team p95 <= 100 ms (they are
not lists: a fixed number of statements, one per panel, whatever the data); SQLite within 5x.

    .venv/bin/python bench/list_pages.py                          # PostgreSQL, 1M / 10M
    .venv/bin/python bench/list_pages.py --reuse --only customers,pool --repeat 5
    .venv/bin/python bench/list_pages.py --sqlite /tmp/lists.db --customers 100000 \\
        --events 1000000

The PostgreSQL database in DATABASE_URL (default guishu_bench_lists) is dropped and
recreated, the SQLite file replaced, unless `--reuse` finds the data already there. The deep
page is `?after_<View>=<cursor>` (app.paging.encode_cursor of the id at offset 500,000 of
the table) once keyset paging exists, else FAB's `page_<View>=20000` (offset 500,000: past
the end for a rep's smaller list, which still costs the whole scoped scan). Not a test:
numbers only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import html
import os
import re
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from sqlalchemy import event  # noqa: E402

from claims import recreate_database  # noqa: E402

ROLES = ("admin", "manager1", "rep1", "staff1")
MINUTES_2Y = 2 * 365 * 24 * 60
# A list page that left its total out names the request that fetches it (app/paging.py).
COUNT_URL_RE = re.compile(r'data-count-url="([^"]+)"')
CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')

# --- word lists: names a 2-character search (科技, a surname) finds a realistic share of ---------
CITIES = [("上海市", "上海"), ("北京市", "北京"), ("广东省", "深圳"), ("广东省", "广州"),
          ("浙江省", "杭州"), ("江苏省", "南京"), ("江苏省", "苏州"), ("四川省", "成都"),
          ("湖北省", "武汉"), ("陕西省", "西安"), ("天津市", "天津"), ("重庆市", "重庆"),
          ("山东省", "青岛"), ("山东省", "济南"), ("福建省", "厦门"), ("福建省", "福州"),
          ("湖南省", "长沙"), ("河南省", "郑州"), ("安徽省", "合肥"), ("辽宁省", "大连"),
          ("辽宁省", "沈阳"), ("浙江省", "宁波"), ("江苏省", "无锡"), ("云南省", "昆明"),
          ("广西壮族自治区", "南宁"), ("河北省", "石家庄"), ("山西省", "太原"),
          ("江西省", "南昌"), ("吉林省", "长春"), ("黑龙江省", "哈尔滨")]
CORE1 = ["华信", "东方", "远大", "金桥", "新宇", "恒通", "中科", "天元", "博达", "瑞丰",
         "永盛", "安泰", "鼎新", "海纳", "光华", "宏图", "汇通", "嘉禾", "锦程", "凯悦",
         "蓝海", "隆基", "明德", "鹏程", "启航", "荣信", "盛世", "泰和", "万邦", "祥云",
         "兴业", "亚联", "怡和", "正大", "卓越", "智联", "众诚", "腾飞", "雨林", "星河"]
CORE2 = ["创新", "联合", "信达", "数码", "网络", "精工", "环球", "未来", "世纪", "伟业",
         "长城", "华夏", "天成", "云帆", "源泉", "至诚", "同创", "佳美", "高新", "振华",
         "德润", "富华", "国泰", "和顺", "立信", "龙腾", "美达", "普惠", "青松", "晨光"]
INDUSTRY_WORDS = ["科技", "贸易", "实业", "信息技术", "电子", "物流", "建设", "医药", "传媒",
                  "软件", "机械", "食品", "咨询", "能源", "教育"]
INDUSTRIES = ["制造业", "批发零售", "信息技术", "金融", "教育", "医疗健康", "房地产", "物流"]
SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱",
            "胡", "郭", "何", "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯",
            "邓", "曹"]
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰",
         "娟", "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "文", "华", "建国",
         "红", "志强", "丹", "萍", "鑫", "斌", "宇", "浩", "凯", "婷婷", "欣", "佳", "晨"]
SOURCES = ["官网", "展会", "电话营销", "转介绍", "广告", "渠道"]
PRODUCTS = ["CRM", "ERP", "数据分析", "运维服务", "硬件"]
EVENT_CYCLE = ["created", "assigned", "claimed", "released", "reclaimed", "transferred",
               "rule-assigned", "moved", "assigned", "claimed"]
CHANNELS = ["call", "visit", "message", "email", "meeting"]
FOLLOWUP_TEXT = ["电话沟通需求，客户关注价格", "上门拜访，演示了产品", "发送报价单", "微信跟进合同进度",
                 "客户要求下周再联系", "技术交流会，约定试用"]
TRANSFER_STATUS = ["completed", "completed", "rejected", "cancelled"]
CARE_STATUS = ["sent", "sent", "pending", "failed", "cancelled"]
AUDIT_ACTIONS = [("save", "customer"), ("claim", "customer"), ("release", "customer"),
                 ("save", "contact"), ("transfer_approved", "transfer_request")]


# --- SQL helpers: the same statements on PostgreSQL and SQLite ------------------------------
def series(dialect: str, lo: int, hi: int) -> str:
    """A FROM clause yielding g = lo..hi."""
    if dialect == "postgresql":
        return f"generate_series({lo}, {hi}) g"
    return (f"(WITH RECURSIVE s(g) AS (SELECT {lo} UNION ALL SELECT g + 1 FROM s WHERE g < {hi}) "
            f"SELECT g FROM s)")


def minutes_ago(dialect: str, expr: str) -> str:
    if dialect == "postgresql":
        return f"(CAST(:now AS timestamp) - ({expr}) * interval '1 minute')"
    return f"datetime(:now, '-' || ({expr}) || ' minutes')"


def days_ago_date(dialect: str, expr: str) -> str:
    if dialect == "postgresql":
        return f"(CAST(:now AS date) - ({expr}))"
    return f"date(:now, '-' || ({expr}) || ' days')"


DIALECT = ["postgresql"]  # set by generate()


def _lit(v) -> str:
    return "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"


def word(kind: str, expr: str, col: str = "w") -> str:
    """The word of list `kind` at index (expr) modulo the list's length: an array literal on
    PostgreSQL, a primary-key lookup in the small lb_word table on SQLite."""
    n = word_count(kind)
    if DIALECT[0] == "postgresql":
        items = [r[col] for r in word_rows() if r["kind"] == kind]
        return f"(ARRAY[{', '.join(_lit(v) for v in items)}])[1 + ({expr}) % {n}]"
    return f"(SELECT {col} FROM lb_word WHERE kind = '{kind}' AND i = ({expr}) % {n})"


def extra(kind: str, expr: str) -> str:
    return word(kind, expr, "x")


def user_at(kind: str, ids: list[int], expr: str) -> str:
    """The user id at index (expr) modulo len(ids) (lb_user on SQLite)."""
    if DIALECT[0] == "postgresql":
        return f"(ARRAY[{', '.join(map(str, ids))}])[1 + ({expr}) % {len(ids)}]"
    return f"(SELECT user_id FROM lb_user WHERE kind = '{kind}' AND i = ({expr}) % {len(ids)})"


def json_text(dialect: str, before: str, expr: str, after: str) -> str:
    text = f"'{before}' || CAST({expr} AS varchar(12)) || '{after}'"
    return f"CAST({text} AS json)" if dialect == "postgresql" else text


def word_count(kind: str) -> int:
    return sum(1 for r in word_rows() if r["kind"] == kind)


def word_rows() -> list[dict]:
    rows = []

    def add(kind, items):
        for i, item in enumerate(items):
            w, x = item if isinstance(item, tuple) else (item, None)
            rows.append({"kind": kind, "i": i, "w": w, "x": x})

    add("city", [(c, p) for p, c in CITIES])
    add("core1", CORE1)
    add("core2", CORE2)
    add("indw", INDUSTRY_WORDS)
    add("ind", INDUSTRIES)
    add("sur", SURNAMES)
    add("given", GIVEN)
    add("src", SOURCES)
    add("prod", PRODUCTS)
    add("ev", EVENT_CYCLE)
    add("chan", CHANNELS)
    add("fu", FOLLOWUP_TEXT)
    add("tstat", TRANSFER_STATUS)
    add("cstat", CARE_STATUS)
    add("act", [a for a, _ in AUDIT_ACTIONS])
    add("obj", [o for _, o in AUDIT_ACTIONS])
    add("grade", ["A", "B", "B", "C", "C"])
    return rows


# --- data -----------------------------------------------------------------------------------
def base_setup(app, password: str) -> None:
    from flask_migrate import upgrade

    from app.demo import build_demo
    from app.services import bootstrap

    with app.app_context():
        upgrade()
        result = bootstrap.initialise()
        if result.get("admin_created"):
            bootstrap.create_admin(result["admin_username"], password)
        build_demo(password)


def generate(app, n: int, n_events: int) -> None:
    """Bulk rows for every list; each step one or a few INSERT ... SELECT statements."""
    from app.extensions import db
    from app.services.normalize import NORMALIZER_VERSION

    with app.app_context():
        eng = db.engine
        dialect = eng.dialect.name
        DIALECT[0] = dialect
        now = dt.datetime.utcnow().replace(microsecond=0)
        with eng.begin() as c:
            c.execute(sa.text("DROP TABLE IF EXISTS lb_word"))
            c.execute(sa.text("DROP TABLE IF EXISTS lb_user"))
            c.execute(sa.text("CREATE TABLE lb_word (kind varchar(10), i integer, w varchar(40), "
                              "x varchar(40), PRIMARY KEY (kind, i))"))
            c.execute(sa.text("INSERT INTO lb_word (kind, i, w, x) VALUES (:kind, :i, :w, :x)"),
                      word_rows())
            # lb_user: kind 'rep' = rep1..rep20 (i 0..19), 'all' = every demo user.
            c.execute(sa.text("CREATE TABLE lb_user (kind varchar(10), i integer, "
                              "user_id integer, PRIMARY KEY (kind, i))"))
            users = c.execute(sa.text("SELECT id, username FROM ab_user ORDER BY id")).all()
            reps = sorted(((int(u[3:]), i) for i, u in users if re.fullmatch(r"rep\d+", u)))
            c.execute(sa.text("INSERT INTO lb_user VALUES (:k, :i, :u)"),
                      [{"k": "rep", "i": j, "u": uid} for j, (_, uid) in enumerate(reps)]
                      + [{"k": "all", "i": j, "u": uid} for j, (uid, _) in enumerate(users)])
            ids = {u: i for i, u in users}
            pools = [r[0] for r in c.execute(sa.text("SELECT id FROM pool ORDER BY id"))]
            base = c.execute(sa.text("SELECT coalesce(max(id), 0) FROM customer")).scalar()
        problem_values = json_text(dialect, '{"名称": "压测公司', "g", '", "手机": "123"}')
        audit_changes = json_text(dialect, '{"name": [null, "压测', "g", '"]}')
        rep_ids = [uid for _, uid in reps]
        all_ids = [uid for uid, _ in users]
        # rep_of % expr: the rep owning customer offset expr; any_user % expr: any demo user.
        rep_of = user_at("rep", rep_ids, "(%s) / 10").replace("%", "%%").replace("%%s", "%s")
        any_user = user_at("all", all_ids, "%s").replace("%", "%%").replace("%%s", "%s")
        p = {"now": now}
        timings = []

        def step(label, sql, chunks=((0, 0),), also=None, **params):
            """Each chunk in its own transaction (`also`, e.g. the ownership rows a customer
            row needs by commit, in the same one)."""
            t = time.perf_counter()
            for lo, hi in chunks:
                with eng.begin() as c:
                    if dialect == "postgresql":
                        c.execute(sa.text("SET CONSTRAINTS ALL DEFERRED"))
                    c.execute(sa.text(sql(lo, hi)), {**p, **params})
                    if also:
                        c.execute(sa.text(also(lo, hi)), {**p, **params})
            timings.append((label, time.perf_counter() - t))
            print(f"  {label:<28} {timings[-1][1]:7.1f} s", flush=True)

        def chunked(total, size=1_000_000):
            return [(lo, min(lo + size - 1, total)) for lo in range(1, total + 1, size)]

        # Customers: offset c = 1..n, id base + c. 4 in 5 companies "<city><core1><core2>
        # <industry word>有限公司", 1 in 5 persons "<surname><given>". Owned when c % 10 < 7
        # by rep (c / 10) % 20; else in the first pool (c % 10 in 8, 9) or the second (7).
        comp = f"(g % 5 <> 0)"
        h1, h2, h3, h4 = "(g * 7 + g / 41)", "(g / 3 + g * 13)", "(g * 11 + g / 7)", "(g / 17)"
        step("customers + ownership", lambda lo, hi: (
            "INSERT INTO customer (id, name, customer_type, industry, province, city, address, "
            "phone, phone_e164, mobile, mobile_e164, source, product_line, birthday_lunar, "
            "norm_version, created_at, updated_at, name_core, name_block, name_region, "
            "legal_form, address_norm) "
            f"SELECT :base + g, CASE WHEN {comp} THEN {word('city', h4)} || {word('core1', h1)} "
            f"|| {word('core2', h2)} || {word('indw', h3)} || '有限公司' ELSE "
            f"{word('sur', h1)} || {word('given', h2)} END, "
            f"CASE WHEN {comp} THEN 'company' ELSE 'person' END, {word('ind', 'g / 3')}, "
            f"{extra('city', h4)}, {word('city', h4)} || '市', "
            f"{word('city', h4)} || '市中山路' || CAST(g % 999 + 1 AS varchar(10)) || '号', "
            "CASE WHEN g % 2 = 0 THEN '021-' || CAST(60000000 + g AS varchar(12)) END, "
            "CASE WHEN g % 2 = 0 THEN '+8621' || CAST(60000000 + g AS varchar(12)) END, "
            "'13' || CAST(100000000 + g AS varchar(12)), "
            "'+8613' || CAST(100000000 + g AS varchar(12)), "
            f"{word('src', 'g / 7')}, {word('prod', 'g / 11')}, false, :nv, "
            f"{minutes_ago(dialect, f'{MINUTES_2Y} - g * {MINUTES_2Y // max(n, 1)} % {MINUTES_2Y}')}, "
            f"{minutes_ago(dialect, f'{MINUTES_2Y} - g * {MINUTES_2Y // max(n, 1)} % {MINUTES_2Y}')}, "
            f"CASE WHEN {comp} THEN {word('core1', h1)} || {word('core2', h2)} || "
            f"{word('indw', h3)} ELSE {word('sur', h1)} || {word('given', h2)} END, "
            f"CASE WHEN {comp} THEN {word('core1', h1)} ELSE {word('sur', h1)} END, "
            f"CASE WHEN {comp} THEN {word('city', h4)} END, "
            f"CASE WHEN {comp} THEN '有限公司' END, "
            f"{word('city', h4)} || '中山路' || CAST(g % 999 + 1 AS varchar(10)) || '号' "
            f"FROM {series(dialect, lo, hi)}"), chunked(n), base=base, nv=NORMALIZER_VERSION,
             pool1=pools[0], pool2=pools[-1], also=lambda lo, hi: (
            "INSERT INTO customer_ownership (customer_id, owner_id, pool_id, acquired_at, "
            "acquired_how, first_owner_id, locked, won, category, grade) "
            f"SELECT :base + g, CASE WHEN g % 10 < 7 THEN {rep_of % 'g'} END, "
            "CASE WHEN g % 10 = 7 THEN :pool2 WHEN g % 10 > 7 THEN :pool1 END, "
            f"{minutes_ago(dialect, 'g % 525600')}, "
            "CASE WHEN g % 10 < 7 THEN 'assigned' ELSE 'created' END, "
            f"CASE WHEN g % 10 < 7 THEN {rep_of % 'g'} END, false, g % 20 = 3, "
            f"CASE WHEN g % 20 = 3 THEN 'active' ELSE 'potential' END, {word('grade', 'g')} "
            f"FROM {series(dialect, lo, hi)}"))
        if dialect == "postgresql":
            with eng.begin() as c:
                c.execute(sa.text("SELECT setval('customer_id_seq', :m)"), {"m": base + n})
        # Ownership events: event e for customer offset (e - 1) % n, the kind cycling per round
        # (round 0 = created), created_at increasing with the id over two years.
        step("ownership_event", lambda lo, hi: (
            "INSERT INTO ownership_event (customer_id, kind, from_owner_id, to_owner_id, "
            "to_pool_id, reason, actor_id, created_at) "
            f"SELECT :base + 1 + (g - 1) % :n, {word('ev', '(g - 1) / :n')}, "
            f"CASE WHEN (g - 1) / :n > 0 THEN {rep_of % '(g + 10)'} END, "
            f"CASE WHEN (g - 1) / :n % 10 <> 3 THEN {rep_of % 'g'} END, "
            "CASE WHEN (g - 1) / :n % 10 = 3 THEN :pool1 END, '压测数据', "
            f"{rep_of % 'g'}, "
            f"{minutes_ago(dialect, f'(CAST(:ne AS bigint) - g) * {MINUTES_2Y} / :ne')} "
            f"FROM {series(dialect, lo, hi)}"), chunked(n_events), base=base, n=n, ne=n_events,
             pool1=pools[0])
        step("contact", lambda lo, hi: (
            "INSERT INTO contact (customer_id, name, title, mobile, mobile_e164, is_primary, "
            "birthday_lunar, created_at) "
            f"SELECT :base + g, {word('sur', 'g * 3')} || {word('given', 'g / 5')}, '经理', "
            "'15' || CAST(100000000 + g AS varchar(12)), "
            "'+8615' || CAST(100000000 + g AS varchar(12)), true, false, "
            f"{minutes_ago(dialect, 'g % 525600')} FROM {series(dialect, lo, hi)}"),
             chunked(n), base=base)
        n_fu = 2 * n
        step("follow_up", lambda lo, hi: (
            "INSERT INTO follow_up (customer_id, user_id, channel, content, happened_at, "
            "next_contact_on, created_at) "
            f"SELECT :base + 1 + (g * 7) % :n, {rep_of % '(1 + (g * 7) % :n)'}, "
            f"{word('chan', 'g')}, {word('fu', 'g / 3')}, "
            f"{minutes_ago(dialect, f'(CAST(:nf AS bigint) - g) * {MINUTES_2Y} / :nf')}, "
            f"CASE WHEN g % 4 = 0 THEN {days_ago_date(dialect, '-(g % 30)')} END, "
            f"{minutes_ago(dialect, f'(CAST(:nf AS bigint) - g) * {MINUTES_2Y} / :nf')} "
            f"FROM {series(dialect, lo, hi)}"), chunked(n_fu), base=base, n=n, nf=n_fu)
        if "next_contact_on" in {c["name"] for c in sa.inspect(eng).get_columns(
                "customer_ownership")}:
            # Statistics first: without them PostgreSQL answers each customer's latest
            # follow-up by walking follow_up's primary key backwards (hours at 1M).
            with eng.begin() as c:
                c.execute(sa.text("ANALYZE follow_up"))
                c.execute(sa.text("ANALYZE customer_ownership"))
            # What app.services.followups keeps (migration 0022): the latest follow-up's ask.
            step("ownership next contact", lambda lo, hi: (
                "UPDATE customer_ownership SET next_contact_on = (SELECT f.next_contact_on "
                "FROM follow_up f WHERE f.customer_id = customer_ownership.customer_id "
                "ORDER BY f.id DESC LIMIT 1) WHERE customer_id > :base"), base=base)
        n_deal = n // 5
        step("deal", lambda lo, hi: (
            "INSERT INTO deal (customer_id, user_id, amount, won_on, product_line, created_at) "
            f"SELECT :base + 1 + (g * 5) % :n, {rep_of % '(1 + (g * 5) % :n)'}, "
            f"1000 + (g % 97) * 500, {days_ago_date(dialect, 'g % 700')}, "
            f"{word('prod', 'g')}, {minutes_ago(dialect, '(g % 700) * 1440')} "
            f"FROM {series(dialect, lo, hi)}"), chunked(n_deal), base=base, n=n)
        # Transfers (closed, so no open_transfer rows): from rep i to rep i+1, 3 customers each.
        n_tr = max(n // 100, 10)
        with eng.connect() as c:
            tbase = c.execute(sa.text("SELECT coalesce(max(id), 0) FROM transfer_request")).scalar()
        step("transfer_request", lambda lo, hi: (
            "INSERT INTO transfer_request (id, applicant_id, from_owner_id, to_owner_id, reason, "
            "trigger, keep_read_days, status, needs_second_approval, decided_by_id, created_at, "
            "completed_at) "
            f"SELECT :tb + g, {rep_of % '(g * 10)'}, {rep_of % '(g * 10)'}, "
            f"{rep_of % '(g * 10 + 10)'}, '客户希望更换对接人', 'customer_request', 0, "
            f"{word('tstat', 'g')}, false, :mgr, {minutes_ago(dialect, '(:nt - g) * 60')}, "
            f"{minutes_ago(dialect, '(:nt - g) * 60 - 30')} FROM {series(dialect, lo, hi)}"),
             chunked(n_tr), tb=tbase, nt=n_tr, mgr=ids["manager1"])
        step("transfer_item", lambda lo, hi: (
            "INSERT INTO transfer_item (transfer_id, customer_id) "
            f"SELECT :tb + 1 + (g - 1) / 3, :base + 1 + ((g - 1) * 10 + (g - 1) / 3) % :n "
            f"FROM {series(dialect, lo, hi)}"), chunked(3 * n_tr), tb=tbase, base=base, n=n)
        if dialect == "postgresql":
            with eng.begin() as c:
                c.execute(sa.text("SELECT setval('transfer_request_id_seq', :m)"),
                          {"m": tbase + n_tr})
        # Notifications: 30% rep1, 20% manager1, the rest over every demo user.
        step("notification", lambda lo, hi: (
            "INSERT INTO notification (user_id, kind, title, body, link, read_at, created_at) "
            f"SELECT CASE WHEN g % 10 < 3 THEN :rep1 WHEN g % 10 < 5 THEN :mgr "
            f"ELSE {any_user % 'g / 10'} END, 'transfer_pending', "
            "'待审批的客户转移 #' || CAST(g % 1000 + 1 AS varchar(10)), '压测通知', "
            "'/transfers/1', CASE WHEN g % 3 = 0 THEN :now END, "
            f"{minutes_ago(dialect, f'(CAST(:nn AS bigint) - g) * {MINUTES_2Y} / :nn')} "
            f"FROM {series(dialect, lo, hi)}"), chunked(n), rep1=ids["rep1"],
             mgr=ids["manager1"], nn=n)
        n_care = n // 10
        step("care_message", lambda lo, hi: (
            "INSERT INTO care_message (customer_id, recipient_key, occasion, occasion_key, "
            "occasion_name, occasion_date, channel, owner_id, send_on, status, attempts, "
            "sent_at, created_at, updated_at) "
            "SELECT :base + g * 10, 'customer:' || CAST(:base + g * 10 AS varchar(12)), "
            "'birthday', 'birthday:bench', '生日', "
            f"{days_ago_date(dialect, 'g % 700')}, 'task', {rep_of % '(g * 10)'}, "
            f"{days_ago_date(dialect, 'g % 700 + 3')}, {word('cstat', 'g')}, 1, NULL, "
            f"{minutes_ago(dialect, f'(:nc - g) * 10')}, "
            f"{minutes_ago(dialect, f'(:nc - g) * 10')} FROM {series(dialect, lo, hi)}"),
             chunked(n_care), base=base, nc=n_care)
        with eng.begin() as c:
            c.execute(sa.text(
                "INSERT INTO import_batch (created_by_id, filename, stored_path, sha256, "
                "file_format, headers, target, pool_id, status, total_rows, next_line, inserted, "
                "duplicates, invalid, created_at, started_at, finished_at) VALUES (:a, "
                "'bench.xlsx', '/nonexistent/bench.xlsx', :sha, 'xlsx', :h, 'pool', :pool, "
                "'done', :t, :t1, :ins, :dup, :inv, :now, :now, :now)"),
                {**p, "a": ids["admin"], "sha": "0" * 64, "h": '["名称", "手机"]',
                 "pool": pools[0], "t": 2 * n_care, "t1": 2 * n_care + 1, "ins": n_care,
                 "dup": n_care // 2, "inv": n_care - n_care // 2})
            batch = c.execute(sa.text("SELECT max(id) FROM import_batch")).scalar()
        step("import_problem", lambda lo, hi: (
            "INSERT INTO import_problem (batch_id, line, kind, reason, \"values\") "
            "SELECT :b, g * 2, CASE WHEN g % 2 = 0 THEN 'duplicate' ELSE 'invalid' END, "
            "CASE WHEN g % 2 = 0 THEN '与已有客户重复' ELSE '手机号格式不正确' END, "
            f"{problem_values} "
            f"FROM {series(dialect, lo, hi)}"), chunked(n_care), b=batch)
        n_cl = max(n // 100, 10)
        with eng.connect() as c:
            cbase = c.execute(sa.text("SELECT coalesce(max(id), 0) FROM dedupe_cluster")).scalar()
        step("dedupe_cluster", lambda lo, hi: (
            "INSERT INTO dedupe_cluster (id, status, member_count, best_score, reasons, "
            f"created_at) SELECT :cb + g, 'open', 2, 90, 'company_name', "
            f"{minutes_ago(dialect, '(:ncl - g)')} FROM {series(dialect, lo, hi)}"),
             chunked(n_cl), cb=cbase, ncl=n_cl)
        step("dedupe_cluster_member", lambda lo, hi: (
            "INSERT INTO dedupe_cluster_member (cluster_id, customer_id, score, reasons) "
            "SELECT :cb + 1 + (g - 1) / 2, :base + 1 + ((g - 1) / 2) * 50 + (g - 1) % 2, 90, "
            f"'company_name' FROM {series(dialect, lo, hi)}"), chunked(2 * n_cl), cb=cbase,
             base=base)
        if dialect == "postgresql":
            with eng.begin() as c:
                c.execute(sa.text("SELECT setval('dedupe_cluster_id_seq', :m)"),
                          {"m": cbase + n_cl})
        n_audit = 2 * n
        step("audit_log", lambda lo, hi: (
            "INSERT INTO audit_log (actor_id, action, object_type, object_id, changes, "
            f"created_at) SELECT {any_user % 'g'}, {word('act', 'g / 3')}, "
            f"{word('obj', 'g / 3')}, :base + 1 + g % :n, "
            f"{audit_changes}, "
            f"{minutes_ago(dialect, f'(CAST(:na AS bigint) - g) * {MINUTES_2Y} / :na')} "
            f"FROM {series(dialect, lo, hi)}"), chunked(n_audit), base=base, n=n, na=n_audit)
        grams(app)
        fold_tally(app)
        risk_scores(app)
        with eng.begin() as c:
            c.execute(sa.text("DROP TABLE lb_word"))
            c.execute(sa.text("DROP TABLE lb_user"))
        t = time.perf_counter()
        if dialect == "postgresql":
            with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(sa.text("VACUUM ANALYZE"))
        else:
            with eng.begin() as c:
                c.execute(sa.text("ANALYZE"))
        timings.append(("analyze", time.perf_counter() - t))
        print(f"  {'analyze':<28} {timings[-1][1]:7.1f} s")
        print(f"generated in {sum(s for _, s in timings):.0f} s")


def fold_tally(app) -> None:
    """Fold the owner tally's changes (migration 0047: the inserts above wrote one per owned
    customer) into its totals, as the every-minute job would."""
    try:
        from app.services import tally
    except ImportError:
        return
    t = time.perf_counter()
    with app.app_context():
        tally.fold()
    print(f"  {'owner tally fold':<28} {time.perf_counter() - t:7.1f} s")


def risk_scores(app) -> None:
    """Store the churn-risk scores of every held customer, as the nightly training job does
    after it trains (migration 0049), so the workbench's panel reads them as it would in a
    deployment; an earlier release scores on every page view instead."""
    try:
        from app.services.risk import score_all
    except ImportError:
        return
    t = time.perf_counter()
    with app.app_context():
        n = score_all()
    print(f"  {'risk scores (nightly)':<28} {time.perf_counter() - t:7.1f} s ({n} stored)")


def grams(app) -> None:
    """Fill the customer search grams when that table (migration 0019) and its rebuild exist."""
    from app.extensions import db

    if not sa.inspect(db.engine).has_table("customer_search_gram"):
        return
    try:
        from app.services import search
    except ImportError:
        print("  customer_search_gram exists but app.services.search does not: skipped")
        return
    for name in ("rebuild_all", "rebuild_grams", "rebuild"):
        fn = getattr(search, name, None)
        if callable(fn):
            t = time.perf_counter()
            fn(db.session.connection())  # rebuild_all(conn): in the session's transaction
            db.session.commit()
            print(f"  {'search grams (' + name + ')':<28} {time.perf_counter() - t:7.1f} s")
            return
    print("  customer_search_gram exists but no rebuild function found: skipped")


def has_data(url: str, n: int, n_events: int) -> bool:
    try:
        eng = sa.create_engine(url)
        with eng.connect() as c:
            got = (c.execute(sa.text("SELECT count(*) FROM customer")).scalar(),
                   c.execute(sa.text("SELECT count(*) FROM ownership_event")).scalar())
        eng.dispose()
    except Exception:  # noqa: BLE001 - no database or no tables yet
        return False
    return got[0] >= n and got[1] >= n_events


# --- measurement ----------------------------------------------------------------------------
class Page:
    def __init__(self, key, url, view=None, table=None, search=None, deep=None,
                 target=50.0):
        self.key, self.url, self.view, self.table = key, url, view, table
        self.search, self.deep, self.target = search, deep, target


def pages(batch_id: int) -> list[Page]:
    s_name = "_flt_2_name=" + quote("科技")  # FAB string filters: 2 = contains
    return [
        Page("customers", "/customers/list/", "CustomerView", "customer", s_name),
        Page("contacts", "/contacts/list/", "ContactView", "contact",
             "_flt_2_name=" + quote("王")),
        Page("followups", "/followups/list/", "FollowUpView", "follow_up"),
        Page("deals", "/deals/list/", "DealView", "deal"),
        Page("ownership", "/ownership-events/list/", "CustomerEventView", "ownership_event"),
        Page("pool", "/pool/list/", "PoolCustomerView", "customer", s_name),
        Page("transfers", "/transfers/", table="transfer_request", deep="mine_page=100"),
        Page("notifications", "/notifications/", table="notification"),
        Page("care", "/care/outbox/list/", "CareMessageView", "care_message"),
        Page("imports", f"/imports/{batch_id}/", table="import_problem"),
        Page("dedupe", "/dedupe-review/", table="dedupe_cluster", deep="page=100"),
        Page("merges", "/dedupe-review/merges/", table="customer_merge"),
        Page("audit", "/audit/list/", "AuditLogView", "audit_log"),
        Page("home", "/", target=100.0),
        Page("workbench", "/workbench/", target=100.0),
        Page("team", "/workbench/team", target=100.0),
    ]


def deep_query(page: Page, mid_id) -> str | None:
    if page.deep:
        return page.deep
    if not page.view:
        return None
    try:
        from app import paging
        encode = paging.encode_cursor
    except (ImportError, AttributeError):
        return f"page_{page.view}=20000"
    return f"after_{page.view}={quote(encode([mid_id]))}"


def login(app, username: str, password: str):
    client = app.test_client()
    html = client.get("/login/").get_data(as_text=True)
    m = CSRF_RE.search(html)
    token = m.group(1) or m.group(2)
    resp = client.post("/login/", data={"username": username, "password": password,
                                        "csrf_token": token})
    if resp.status_code != 302:
        raise SystemExit(f"login as {username} failed: {resp.status_code}")
    return client


def timed(fn, repeat: int, max_seconds: float = 1e9):
    """(p50 ms, p95 ms, last result) over `repeat` runs after one warm-up; a warm-up slower
    than max_seconds is the only sample."""
    t = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t
    if first > max_seconds:
        return first * 1000, first * 1000, out
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    return statistics.median(times), p95, out


def measure(app, args) -> None:
    from app.extensions import db

    with app.app_context():
        eng = db.engine
        dialect = eng.dialect.name
        with eng.connect() as c:
            batch = c.execute(sa.text("SELECT max(id) FROM import_batch")).scalar() or 0
    factor = 1.0 if dialect == "postgresql" else 5.0
    selected = pages(batch)
    if args.only:
        keep = set(args.only.split(","))
        selected = [p for p in selected if p.key in keep]
    roles = args.roles.split(",") if args.roles else list(ROLES)
    clients = {u: login(app, u, args.password) for u in roles}
    seen: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    rows, misses = [], []
    header = (f"{'page':<13} {'role':<9} {'variant':<7} {'p50 ms':>8} {'p95 ms':>8} "
              f"{'stmts':>5} {'status':>6}   {'bare p50':>8} {'bare p95':>8}")
    print(f"\n{dialect}, repeat {args.repeat} (+1 warm-up); bare = SELECT * FROM <table> "
          "WHERE id < :x ORDER BY id DESC LIMIT 25; <variant># = the request of the total a "
          "page left out (its /count/, fetched once the page is shown)")
    print(header)
    print("-" * len(header))
    # Requests run outside any app context: one held open would be shared by every request
    # (flask.g, so Flask-Login's cached user: every client would be the first one).
    with app.app_context():
        eng = db.engine
    if True:
        for page in selected:
            mid = None
            bare = ("", "")
            if page.table:
                with eng.connect() as c:
                    total = c.execute(sa.text(f"SELECT count(*) FROM {page.table}")).scalar()
                    mid = c.execute(sa.text(
                        f"SELECT id FROM {page.table} ORDER BY id DESC LIMIT 1 OFFSET :o"),
                        {"o": min(500_000, total // 2)}).scalar()
                    if mid is not None:
                        q = sa.text(f"SELECT * FROM {page.table} WHERE id < :x "
                                    "ORDER BY id DESC LIMIT 25")
                        b50, b95, _ = timed(lambda: c.execute(q, {"x": mid}).all(), args.repeat)
                        bare = (f"{b50:.1f}", f"{b95:.1f}")
            variants = [("page1", "")]
            dq = deep_query(page, mid)
            if dq:
                variants.append(("deep", dq))
            if page.search:
                variants.append(("search", page.search))
            for role in roles:
                slow = None
                client = clients[role]
                for variant, qs in variants:
                    if slow:
                        print(f"{page.key:<13} {role:<9} {variant:<7} skipped: the first "
                              f"request took {slow:.0f} s (> --max-seconds)")
                        misses.append((page.key, role, variant, "not measured (too slow)"))
                        continue
                    url = page.url + ("?" + qs if qs else "")
                    requests = [(variant, url)]
                    denied = False
                    while requests:
                        variant, url = requests.pop(0)
                        counts = []
                        count_urls = []

                        def one():
                            seen.clear()
                            event.listen(eng, "before_cursor_execute", count)
                            try:
                                resp = client.get(url)
                            finally:
                                event.remove(eng, "before_cursor_execute", count)
                            counts.append(len(seen))
                            found = COUNT_URL_RE.search(resp.get_data(as_text=True)) \
                                if resp.mimetype == "text/html" else None
                            count_urls.append(html.unescape(found.group(1)) if found else None)
                            return resp.status_code

                        try:
                            p50, p95, status = timed(one, args.repeat, args.max_seconds)
                            if p50 > args.max_seconds * 1000:
                                slow = p50 / 1000
                        except Exception as exc:  # noqa: BLE001 - a failing page is a finding
                            print(f"{page.key:<13} {role:<9} {variant:<7} error: {exc!r}"[:200])
                            misses.append((page.key, role, variant, f"error {exc!r}"[:120]))
                            continue
                        if count_urls[-1]:
                            # The page left its total out: the request that fetches it is
                            # measured too, as "<variant>#".
                            requests.append((variant + "#", count_urls[-1]))
                        stmts = max(counts)
                        if status in (302, 403, 404) and variant == "page1" or status == 403:
                            print(f"{page.key:<13} {role:<9} {variant:<7} {'403/—':>8} "
                                  f"{'':>8} {'':>5} {status:>6}")
                            denied = variant == "page1"
                            break
                        line = (f"{page.key:<13} {role:<9} {variant:<7} {p50:8.1f} {p95:8.1f} "
                                f"{stmts:5d} {status:>6}   {bare[0]:>8} {bare[1]:>8}")
                        print(line, flush=True)
                        rows.append(line)
                        why = []
                        if status != 200:
                            why.append(f"status {status}")
                        if p95 > page.target * factor:
                            why.append(f"p95 {p95:.0f} ms > {page.target * factor:.0f}")
                        if stmts > 8 and page.target == 50.0:  # a list page
                            why.append(f"{stmts} statements > 8")
                        if why:
                            misses.append((page.key, role, variant, ", ".join(why)))
                    if denied:
                        break
    print(f"\nmisses ({len(misses)}), targets p95 <= {50 * factor:.0f} ms "
          f"and <= 8 statements a list page (home/workbench/team {100 * factor:.0f} ms):")
    for m in misses:
        print(f"  {m[0]:<13} {m[1]:<9} {m[2]:<7} {m[3]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--sqlite", help="SQLite file to use instead of PostgreSQL")
    ap.add_argument("--reuse", action="store_true",
                    help="keep the database when it already holds the data")
    ap.add_argument("--only", help="comma-separated page keys, e.g. customers,pool")
    ap.add_argument("--roles", help="comma-separated usernames (default: "
                    + ",".join(ROLES) + ")")
    ap.add_argument("--repeat", type=int, default=6, help="timed requests after one warm-up")
    ap.add_argument("--password", default="bench-lists-pass", help="every demo account's")
    ap.add_argument("--generate-only", action="store_true")
    ap.add_argument("--max-seconds", type=float, default=60.0,
                    help="a request slower than this is measured once, and the role's "
                         "other variants of that page are skipped")
    args = ap.parse_args()
    if args.sqlite:
        url = f"sqlite:///{Path(args.sqlite).resolve()}"
    else:
        url = os.environ.get("DATABASE_URL",
                             "postgresql://postgres@127.0.0.1:5432/guishu_bench_lists")
    os.environ["DATABASE_URL"] = url
    reuse = args.reuse and has_data(url, args.customers, args.events)
    if not reuse:
        if url.startswith("sqlite"):
            Path(sa.engine.make_url(url).database).unlink(missing_ok=True)
        else:
            recreate_database(url)
    from app import create_app

    app = create_app()
    if reuse:
        print("reusing the data already in the database")
    else:
        t = time.perf_counter()
        base_setup(app, args.password)
        print(f"demo organisation in {time.perf_counter() - t:.0f} s")
        generate(app, args.customers, args.events)
    if not args.generate_only:
        # As the WSGI entry (run.py) does once the app is built: the full garbage
        # collections of a web process do not walk the app's own objects.
        gc.collect()
        gc.freeze()
        measure(app, args)


if __name__ == "__main__":
    main()
