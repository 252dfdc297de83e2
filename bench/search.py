"""Quick search benchmark on PostgreSQL: the customer list's search (app.services.search,
the bigram keys) beside the naive `name LIKE '%x%'` of the same run.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/guishu_bench_search \\
        .venv/bin/python bench/search.py --customers 1000000

Builds N company customers with generated Chinese names (region + two words + trade +
有限公司, so 科技 is in about a tenth of them), one contact each (a Chinese person name), a
mobile and an e-mail; 60% owned by 200 reps of one department, the rest in the pool. The
keys are written by the migration's own backfill (app.services.search.rebuild_all). Then,
for each search text and for admin's scope and one rep's, the list page's two statements as
FAB issues them (the 25 newest matching rows, and the count), p50 / p95 over --repeat runs,
and the same page with `name LIKE '%x%'` instead. The database named in DATABASE_URL is
dropped and recreated. Not a test: numbers only.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

from claims import recreate_database  # noqa: E402

REPS = 200
REGIONS = ["北京", "上海", "广州", "深圳", "杭州", "南京", "苏州", "成都", "武汉", "西安", "重庆",
           "天津", "长沙", "郑州", "青岛", "宁波", "厦门", "福州", "合肥", "济南", "沈阳", "大连",
           "昆明", "南宁", "贵阳", "太原", "石家庄", "哈尔滨", "长春", "南昌", "无锡", "佛山",
           "东莞", "温州", "泉州", "烟台", "珠海", "中山", "惠州", "嘉兴"]
WORDS = ["华为", "腾飞", "宏达", "鑫源", "恒通", "盛世", "金辉", "天成", "瑞丰", "博远", "新创",
         "东方", "中科", "汇智", "联创", "永安", "德信", "佳美", "鼎盛", "凯旋", "明珠", "长城",
         "海川", "星辰", "锦程", "正泰", "飞扬", "安泰", "隆基", "宝利", "祥和", "富源", "嘉禾",
         "华信", "兴业", "远航", "蓝天", "绿源", "光明", "巨人", "卓越", "通达", "志诚", "云帆",
         "晨光", "万达", "金桥", "世纪", "百川", "海纳", "创新", "振华", "伟业", "环球", "精工",
         "立信", "同创", "和信", "润泽", "弘毅", "九州", "神州", "大地", "天宇", "恒信", "润华",
         "聚源", "汉唐", "泰和", "乐途", "易达", "优品", "智联", "数码", "信达", "美景", "泓德",
         "朗润", "舒城", "翰林"]
TRADES = ["科技", "贸易", "实业", "电子", "物流", "网络", "信息技术", "建设工程", "餐饮管理",
          "文化传媒", "医药", "机械设备", "环保科技", "食品", "服装", "家居", "汽车服务",
          "教育咨询", "能源", "化工"]
SURNAMES = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱",
            "胡", "郭", "何", "高", "林", "罗"]
GIVEN = ["芳", "伟", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛",
         "明", "超", "秀英", "霞", "平", "刚", "桂英", "建华", "晓明", "志强", "海燕", "文博",
         "子轩", "雨涵", "浩然"]


def _array(words: list[str]) -> str:
    return "ARRAY[" + ", ".join(f"'{w}'" for w in words) + "]"


def setup(app, n: int) -> tuple[int, int]:
    """Load the customers; (admin id, the rep measured)."""
    from flask_migrate import upgrade

    from app.extensions import appbuilder, db
    from app.security import ROLE_REP, ROLE_ADMIN
    from app.services import bootstrap, org, search
    from app.services.ownership import default_pool

    with app.app_context():
        upgrade()
        bootstrap.initialise()
        dept = org.create_department("压测部")
        pool = default_pool()
        role = appbuilder.sm.find_role(ROLE_REP)
        admin = appbuilder.sm.add_user("bench_admin", "压测", "admin", "admin@bench.local",
                                       appbuilder.sm.find_role(ROLE_ADMIN), hashed_password="x")
        reps = []
        for i in range(REPS):
            u = appbuilder.sm.add_user(f"bench{i}", "压测", str(i), f"b{i}@bench.local", role,
                                       hashed_password="x", commit=False)
            u.department_id = dept.id
            reps.append(u)
        db.session.commit()
        rep_ids = [u.id for u in reps]
        t0 = time.perf_counter()
        def pick(words: list[str], salt: str) -> str:  # uncorrelated with g and each other
            return f"({_array(words)})[1 + abs(hashtext(g || '{salt}')) % {len(words)}]"

        name = (f"{pick(REGIONS, 'r')} || {pick(WORDS, 'a')} || {pick(WORDS, 'b')} || "
                f"{pick(TRADES, 't')} || '有限公司'")
        person = f"{pick(SURNAMES, 's')} || {pick(GIVEN, 'g')}"
        db.session.execute(sa.text("SET CONSTRAINTS ALL DEFERRED"))
        db.session.execute(sa.text(
            "INSERT INTO customer (id, name, customer_type, mobile, mobile_e164, email, "
            "email_norm, created_at, updated_at, birthday_lunar, norm_version) "
            f"SELECT g, {name}, 'company', '138' || lpad(g::text, 8, '0'), "
            "'+86138' || lpad(g::text, 8, '0'), 'C' || g || '@Example.com', "
            "'c' || g || '@example.com', now(), now(), false, 4 "
            "FROM generate_series(1, :n) g"), {"n": n})
        db.session.execute(sa.text(
            "INSERT INTO contact (customer_id, name, mobile, mobile_e164, is_primary, "
            "birthday_lunar, created_at) "
            f"SELECT g, {person}, '139' || lpad(g::text, 8, '0'), "
            "'+86139' || lpad(g::text, 8, '0'), true, false, now() "
            "FROM generate_series(1, :n) g"), {"n": n})
        # 60% owned, spread over the reps; the rest in the pool.
        db.session.execute(sa.text(
            "INSERT INTO customer_ownership (customer_id, owner_id, pool_id, acquired_at, "
            "acquired_how, locked, won, category) "
            "SELECT g, CASE WHEN abs(hashtext(g || 'o')) % 5 < 3 "
            "THEN (:reps)[1 + abs(hashtext(g || 'p')) % :r] END, "
            "CASE WHEN abs(hashtext(g || 'o')) % 5 >= 3 THEN :pool END, now(), 'created', "
            "false, false, "
            "'potential' FROM generate_series(1, :n) g"),
            {"n": n, "pool": pool.id, "reps": rep_ids, "r": REPS})
        db.session.execute(sa.text("SELECT setval('customer_id_seq', :n)"), {"n": n})
        db.session.execute(sa.text("SELECT setval('contact_id_seq', :n)"), {"n": n})
        db.session.commit()
        t1 = time.perf_counter()
        print(f"loaded {n:,} customers, {n:,} contacts in {t1 - t0:.1f} s")
        search.rebuild_all(db.session.connection(), batch=20000)
        db.session.commit()
        grams = db.session.execute(sa.text(
            "SELECT count(*) FROM customer_search_gram")).scalar()
        print(f"search keys (rebuild_all, the migration's backfill): {grams:,} grams in "
              f"{time.perf_counter() - t1:.1f} s")
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text("VACUUM ANALYZE"))
        return admin.id, rep_ids[7]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def measure(app, user_id: int, text: str, naive: bool, repeat: int) -> tuple[list, list, int]:
    """The list page's rows query and its count, as FAB issues them, in ms."""
    from app.extensions import db
    from app.models import Customer, User
    from app.security import customer_scope_clause
    from app.services import search

    rows_ms, count_ms, n = [], [], 0
    with app.app_context():
        user = db.session.get(User, user_id)
        for _ in range(repeat):
            scope = customer_scope_clause(user)  # the user's roles, loaded once per request
            t0 = time.perf_counter()
            if naive:
                where = Customer.name.like(f"%{text}%")
            else:
                where = search.matching_clause(text, Customer.id)
            rows = db.session.execute(sa.select(Customer.id, Customer.name).where(
                scope, where).order_by(Customer.id.desc()).limit(25)).all()
            t1 = time.perf_counter()
            n = db.session.execute(sa.select(sa.func.count()).select_from(Customer).where(
                scope, where)).scalar()
            t2 = time.perf_counter()
            rows_ms.append((t1 - t0) * 1000)
            count_ms.append((t2 - t1) * 1000)
            db.session.rollback()
            assert naive or len(rows) == min(25, n)
    return rows_ms, count_ms, n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--reuse", action="store_true", help="keep the loaded database")
    args = ap.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        sys.exit("DATABASE_URL=postgresql://… of a database of your own")
    if not args.reuse:
        recreate_database(url)
    from app import create_app

    app = create_app()
    if args.reuse:
        with app.app_context():
            from app.extensions import db

            admin_id = db.session.execute(sa.text(
                "SELECT id FROM ab_user WHERE username = 'bench_admin'")).scalar()
            rep_id = db.session.execute(sa.text(
                "SELECT id FROM ab_user WHERE username = 'bench7'")).scalar()
    else:
        admin_id, rep_id = setup(app, args.customers)
    cases = [("2-char common word", "科技"), ("2-char rare word", "舒城"),
             ("4-char name", "华为科技"), ("6-char, common grams", "华为科技有限"),
             ("contact name", "王芳"),
             ("phone", "+86 138-0000-1234"), ("e-mail", "C4321@EXAMPLE.COM")]
    print(f"\n{'query':<32}{'scope':<7}{'found':>9}  {'rows p50/p95 ms':>17}  "
          f"{'count p50/p95 ms':>17}  {'naive rows p50/p95':>19}  {'naive count p50/p95':>20}")
    for label, text in cases:
        for scope, uid in (("admin", admin_id), ("rep", rep_id)):
            rows, count, n = measure(app, uid, text, False, args.repeat)
            if label in ("phone", "e-mail"):
                naive_rows = naive_count = None  # a name LIKE finds no phone
            else:
                naive_rows, naive_count, _ = measure(app, uid, text, True,
                                                     max(3, args.repeat // 4))
            fmt = lambda xs: f"{pct(xs, 50):7.1f} / {pct(xs, 95):7.1f}" if xs else f"{'—':>17}"
            print(f"{label + ' ' + text:<32}{scope:<7}{n:>9,}  {fmt(rows):>17}  "
                  f"{fmt(count):>17}  {fmt(naive_rows):>19}  {fmt(naive_count):>20}")


if __name__ == "__main__":
    main()
