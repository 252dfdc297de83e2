"""Dedupe check benchmark: one new customer checked against N existing (default 1M).

Prints, measured in the same run on the same rows: p50/p95/p99 of `dedupe.find` (what every
entry path calls, fed by clean_customer_data + text_keys as `dedupe.check` does) for a few
hundred new customers — new ones, same-mobile duplicates, near-duplicate names and names in
the most crowded two-character block — beside a naive rapidfuzz scan (fuzz.ratio over all N
core names held in memory), and the duplicates each found.

    .venv/bin/python bench/dedupe_check.py --db sqlite            # /tmp/guishu_bench_dedupe.db
    .venv/bin/python bench/dedupe_check.py --db postgres --reuse  # database bench_dedupe
    .venv/bin/python bench/dedupe_check.py --db postgres --rows-from /tmp/guishu_bench_dedupe.db

Without --reuse the SQLite file is replaced and the PostgreSQL database dropped and
recreated; with it a database already holding N customers keyed by the current normaliser
is used as it is. Stored keys are the app's own: text_keys per row, and phone / e-mail keys
checked against the normalisers on every 50th customer and contact. Not a test: numbers only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing
import os
import random
import sys
import time
from functools import lru_cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

CHUNK = 20_000
REPS = 40
PG_URL = "postgresql://postgres@127.0.0.1:5432/bench_dedupe"
SQLITE_PATH = "/tmp/guishu_bench_dedupe.db"

# Trade names (字号): two characters from these, sometimes a third; the first two are the
# name's block, drawn with a long tail so a few blocks hold thousands of companies.
TRADE_CHARS = ("华瑞鑫泰恒盛达源兴宏隆昌祥福和安康宁德信诚中天博远新利通汇丰嘉佳美金海山川"
               "明阳光辉春秋云帆星月东正大永万亿创联科晨志伟豪俊腾飞龙凤鹏程锦绣立邦环宇")
INDUSTRIES = ("科技", "信息技术", "网络科技", "电子", "贸易", "商贸", "实业", "建设工程", "物流",
              "餐饮管理", "文化传媒", "教育咨询", "医疗器械", "生物科技", "环保科技", "新能源",
              "机械设备", "食品", "服装", "房地产开发", "投资", "装饰工程", "软件", "化工",
              "农业发展", "汽车销售", "电气", "广告", "人力资源", "供应链管理")
LEGAL_FORMS = {"有限公司": 55, "有限责任公司": 15, "股份有限公司": 10, "集团有限公司": 5,
               "(有限合伙)": 3, "公司": 7, "商行": 5}
MOBILE_PREFIXES = ("130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151",
                   "152", "153", "155", "156", "157", "158", "159", "166", "176", "177", "180",
                   "181", "182", "183", "185", "186", "187", "188", "189", "199")
MAIL_PREFIXES = ("info", "sales", "service", "contact", "market", "admin", "hr")
FREE_MAIL = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com")

CUSTOMER_COLS = ("id", "name", "customer_type", "province", "city", "address", "phone",
                 "phone_e164", "mobile", "mobile_e164", "email", "email_norm", "name_core",
                 "name_block", "name_region", "legal_form", "name_pinyin", "address_norm",
                 "birth_year", "birth_month", "birth_day", "birthday_lunar", "norm_version",
                 "created_at", "updated_at")
CONTACT_COLS = ("id", "customer_id", "name", "phone", "phone_e164", "mobile", "mobile_e164",
                "email", "email_norm", "is_primary", "birthday_lunar", "created_at")
OWNERSHIP_COLS = ("customer_id", "owner_id", "pool_id", "acquired_at", "acquired_how",
                  "first_owner_id", "locked", "won", "category")


# --- generated values -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def places():
    from app.demo import REGIONS

    return [(prov, city, code, digits, districts) for provinces in REGIONS.values()
            for prov, cities in provinces.items()
            for city, code, digits, districts in cities]


@lru_cache(maxsize=1)
def blocks() -> tuple[list[str], list[float]]:
    """Every two-character block and its weight (rank r: 1/(r+20))."""
    pairs = [a + b for a in TRADE_CHARS for b in TRADE_CHARS if a != b]
    random.Random(7).shuffle(pairs)
    return pairs, [1 / (r + 20) for r in range(len(pairs))]


class Gen:
    """Raw values of customers and contacts, as a user would type them."""

    def __init__(self, seed: int):
        from faker import Faker

        self.rng = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)

    def mobile(self) -> tuple[str, str]:
        rng = self.rng
        digits = rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"
        shape = rng.random()
        raw = digits if shape < 0.6 else f"{digits[:3]} {digits[3:7]} {digits[7:]}" \
            if shape < 0.8 else f"{digits[:3]}-{digits[3:7]}-{digits[7:]}" \
            if shape < 0.9 else f"+86 {digits}"
        return raw, "+86" + digits

    def landline(self, code: str, n: int) -> tuple[str, str]:
        import phonenumbers

        rng = self.rng
        while True:  # some local ranges are not in service: the app refuses them
            number = rng.choice("2345678" if n == 7 else "5568823467") + "".join(
                rng.choice("0123456789") for _ in range(n - 1))
            if phonenumbers.is_valid_number(phonenumbers.PhoneNumber(
                    country_code=86, national_number=int(code[1:] + number))):
                return f"{code}-{number}", f"+86{code[1:]}{number}"

    def address(self, city: str, districts) -> str:
        rng = self.rng
        suffix = f"{rng.choice('ABCD')}座{rng.randint(2, 28)}{rng.randint(1, 20):02d}室" \
            if rng.random() < 0.6 else ""
        return (f"{city}{rng.choice(districts)}{self.fake.street_name()}"
                f"{rng.randint(1, 999)}号{suffix}")

    def trade_name(self, block: str | None = None) -> str:
        rng = self.rng
        if block is None:
            pairs, weights = blocks()
            block = rng.choices(pairs, weights)[0]
        return block + (rng.choice(TRADE_CHARS) if rng.random() < 0.5 else "")

    def company_name(self, city: str, core: str) -> str:
        rng = self.rng
        form = rng.choices(list(LEGAL_FORMS), list(LEGAL_FORMS.values()))[0]
        short = city.removesuffix("市")
        where = rng.random()
        if where < 0.55:
            return short + core + form
        if where < 0.65:
            return city + core + form
        if where < 0.75 and form.endswith("公司"):
            return f"{core}（{short}）{form}"
        return core + form

    def customer(self) -> dict:
        rng = self.rng
        prov, city, code, digits, districts = rng.choice(places())
        row = {"province": prov, "city": city, "address": None, "phone": None, "mobile": None,
               "email": None, "birthday": None, "birthday_lunar": False}
        if rng.random() < 0.2:
            row.update(customer_type="person", name=self.fake.name())
            if rng.random() < 0.95:
                row["mobile"] = self.mobile()
            if rng.random() < 0.5:
                row["address"] = self.address(city, districts)
            if rng.random() < 0.4:
                row["email"] = f"{self.fake.user_name()}{rng.randint(1, 9999)}@" \
                               f"{rng.choice(FREE_MAIL)}"
            if rng.random() < 0.6:
                row["birthday_lunar"] = rng.random() < 0.3
                month, day = rng.randint(1, 12), rng.randint(1, 28)
                row["birthday"] = (rng.randint(1960, 2002) if rng.random() < 0.7 else None,
                                   month, day)
        else:
            row.update(customer_type="company",
                       name=self.company_name(city, self.trade_name() + rng.choice(INDUSTRIES)))
            if rng.random() < 0.3:
                row["mobile"] = self.mobile()
            if rng.random() < 0.7:
                row["phone"] = self.landline(code, digits)
            if rng.random() < 0.7:
                row["address"] = self.address(city, districts)
            if rng.random() < 0.5:
                row["email"] = f"{rng.choice(MAIL_PREFIXES)}@{self.fake.domain_word()}" \
                               f"{rng.randint(1, 99999)}.com"
        return row

    def contact(self, company_phone: tuple[str, str] | None) -> dict:
        rng = self.rng
        ext = rng.randint(100, 899)
        return {"name": self.fake.name(),
                "mobile": self.mobile() if rng.random() < 0.95 else None,
                # An extension of the company's line, as many contacts have.
                "phone": (f"{company_phone[0]} 转 {ext}", f"{company_phone[1]};ext={ext}")
                if company_phone and rng.random() < 0.3 else None,
                "email": f"{self.fake.user_name()}{rng.randint(1, 9999)}@{rng.choice(FREE_MAIL)}"
                if rng.random() < 0.4 else None}


def _email_key(raw):
    return raw.lower() if raw else None


def build_chunk(args) -> tuple[list[tuple], list[tuple]]:
    """Customer and contact rows of ids first..first+size-1, keys as the app stores them."""
    seed, first, size, first_contact = args
    from app.services import customers as customer_service
    from app.services.customers import clean_contact_data, clean_customer_data, text_keys
    from app.services.normalize import NORMALIZER_VERSION, name_pinyin

    # The same pure function, remembered: cores and person names repeat across rows.
    customer_service.name_pinyin = lru_cache(maxsize=200_000)(name_pinyin)
    gen = Gen(seed * 100_003 + first)
    now = dt.datetime(2026, 1, 1)
    rows, contacts = [], []
    cid = first_contact
    for i in range(first, first + size):
        r = gen.customer()
        mobile, mobile_key = r["mobile"] or (None, None)
        phone, phone_key = r["phone"] or (None, None)
        year, month, day = r["birthday"] or (None, None, None)
        keys = text_keys(r["customer_type"], r["name"], r["address"])
        if i % 50 == 0:  # the bulk keys must be the ones the app computes
            raw = {k: r[k] for k in ("name", "customer_type", "province", "city", "address",
                                     "email")}
            raw.update(mobile=mobile, phone=phone, birthday_lunar=r["birthday_lunar"],
                       birthday=f"{year or ''}{'-' if year else ''}{month:02d}-{day:02d}"
                       if month else None)
            app_values = clean_customer_data(raw)
            ours = dict(keys, mobile_e164=mobile_key, phone_e164=phone_key,
                        email_norm=_email_key(r["email"]), birth_year=year, birth_month=month,
                        birth_day=day)
            diff = {k: (v, app_values.get(k)) for k, v in ours.items() if app_values.get(k) != v}
            assert not diff, f"generated keys differ from the app's: {diff}"
        rows.append((i, r["name"], r["customer_type"], r["province"], r["city"], r["address"],
                     phone, phone_key, mobile, mobile_key, r["email"], _email_key(r["email"]),
                     keys["name_core"], keys["name_block"], keys["name_region"],
                     keys["legal_form"], keys["name_pinyin"], keys["address_norm"], year, month,
                     day, r["birthday_lunar"], NORMALIZER_VERSION, now, now))
        if r["customer_type"] == "company":
            for k in range(gen.rng.choices((0, 1, 2), (45, 40, 15))[0]):
                c = gen.contact(r["phone"])
                cm, cm_key = c["mobile"] or (None, None)
                cp, cp_key = c["phone"] or (None, None)
                if cid % 50 == 0:
                    app_values = clean_contact_data(dict(c, mobile=cm, phone=cp))
                    ours = {"mobile_e164": cm_key, "phone_e164": cp_key,
                            "email_norm": _email_key(c["email"])}
                    diff = {k: (v, app_values.get(k)) for k, v in ours.items()
                            if app_values.get(k) != v}
                    assert not diff, f"generated contact keys differ from the app's: {diff}"
                contacts.append((cid, i, c["name"], cp, cp_key, cm, cm_key, c["email"],
                                 _email_key(c["email"]), k == 0, False, now))
                cid += 1
    return rows, contacts


# --- building the database ----------------------------------------------------------------------
def reusable(url: str, n: int) -> bool:
    """The database holds n customers, keyed by the current normaliser, with their matcher
    blocking entries."""
    from app.services.normalize import NORMALIZER_VERSION

    engine = sa.create_engine(url)
    try:
        with engine.connect() as c:
            keyed = c.execute(sa.text(
                "SELECT count(DISTINCT customer_id) FROM customer_match_key")).scalar_one()
            return c.execute(sa.text(
                "SELECT count(*), count(CASE WHEN norm_version = :v THEN 1 END) FROM customer"),
                {"v": NORMALIZER_VERSION}).one() == (n, n) and keyed == n
    except sa.exc.SQLAlchemyError:
        return False
    finally:
        engine.dispose()


def setup_org(app) -> tuple[list[int], int]:
    from flask_migrate import upgrade

    from app.extensions import appbuilder, db
    from app.security import ROLE_REP
    from app.services import bootstrap, dedupe, org
    from app.services.ownership import default_pool

    with app.app_context():
        upgrade()
        bootstrap.initialise()
        dedupe.ensure_rules()
        role = appbuilder.sm.find_role(ROLE_REP)
        reps = []
        for d, dept_name in enumerate(("销售一部", "销售二部", "销售三部", "销售四部")):
            dept = org.create_department(dept_name)
            for i in range(REPS // 4):
                u = appbuilder.sm.add_user(f"dd{d}_{i}", "销售", f"{d}{i}", f"dd{d}_{i}@bench.local",
                                           role, hashed_password="x", commit=False)
                u.department_id = dept.id
                reps.append(u)
        db.session.commit()
        return [u.id for u in reps], default_pool().id


def copied_chunks(path: str, n: int):
    """The customer and contact rows of a SQLite database this script built, chunk by chunk."""
    import sqlite3

    src = sqlite3.connect(path)
    try:
        for first in range(1, n + 1, CHUNK):
            last = min(first + CHUNK, n + 1)
            rows = src.execute(f"SELECT {', '.join(CUSTOMER_COLS)} FROM customer WHERE id >= ? "
                               f"AND id < ? ORDER BY id", (first, last)).fetchall()
            contacts = src.execute(f"SELECT {', '.join(CONTACT_COLS)} FROM contact WHERE "
                                   f"customer_id >= ? AND customer_id < ? ORDER BY id",
                                   (first, last)).fetchall()
            yield rows, contacts
    finally:
        src.close()


def load(app, n: int, seed: int, workers: int, rows_from: str | None = None) -> None:
    """Generate in worker processes (or copy from rows_from), insert chunk by chunk:
    customers, their ownership and contacts in one transaction each (the deferred customer ->
    ownership key needs it)."""
    from app.extensions import db

    reps, pool_id = setup_org(app)
    t0 = time.perf_counter()
    with app.app_context():
        engine = db.engine
        dialect = engine.dialect.name
        raw = engine.raw_connection()
        rng = random.Random(seed)
        now = dt.datetime(2026, 1, 1)
        # Contact ids are laid out by chunk: at most 2 per customer.
        jobs = [(seed, first, min(CHUNK, n - first + 1), 2 * first)
                for first in range(1, n + 1, CHUNK)]
        ctx = multiprocessing.get_context("fork")
        done = n_contacts = 0
        max_contact = 0
        with ctx.Pool(workers) as pool:
            chunks = copied_chunks(rows_from, n) if rows_from else pool.imap(build_chunk, jobs)
            for rows, contacts in chunks:
                owners = []
                for r in rows:
                    owned = rng.random() < 0.7
                    owner = rng.choice(reps) if owned else None
                    owners.append((r[0], owner, None if owned else pool_id, now, "created",
                                   owner, owned and rng.random() < 0.05, False, "potential"))
                insert(raw, dialect, "customer", CUSTOMER_COLS, rows)
                insert(raw, dialect, "customer_ownership", OWNERSHIP_COLS, owners)
                insert(raw, dialect, "contact", CONTACT_COLS, contacts)
                raw.commit()
                done += len(rows)
                n_contacts += len(contacts)
                max_contact = max([max_contact] + [c[0] for c in contacts])
                print(f"\r  {done:,} customers, {n_contacts:,} contacts "
                      f"({time.perf_counter() - t0:.0f} s)", end="", flush=True)
        print()
        cur = raw.cursor()
        if dialect == "postgresql":
            cur.execute(f"SELECT setval('customer_id_seq', {n})")
            cur.execute(f"SELECT setval('contact_id_seq', {max(max_contact, 1)})")
        cur.execute("ANALYZE")
        raw.commit()
        raw.close()
    print(f"loaded {n:,} customers and {n_contacts:,} contacts in "
          f"{time.perf_counter() - t0:.0f} s")
    # The matcher's blocking entries, as `flask crm match-keys-rebuild` writes them.
    from app.services import match_keys

    t1 = time.perf_counter()
    with app.app_context():
        conn = db.session.connection()
        done = match_keys.rebuild_all(conn, progress=lambda k: print(
            f"\r  blocking entries of {k:,} customers ({time.perf_counter() - t1:.0f} s)",
            end="", flush=True))
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            db.session.execute(sa.text("ANALYZE customer_match_key"))
            db.session.commit()
    print(f"\nblocking entries of {done:,} customers in {time.perf_counter() - t1:.0f} s")


def insert(raw, dialect: str, table: str, cols: tuple[str, ...], rows: list[tuple]) -> None:
    cur = raw.cursor()
    if dialect == "postgresql":
        with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
    else:
        cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
                        f"({', '.join('?' * len(cols))})", rows)


# --- the checks ----------------------------------------------------------------------------------
def reformat(mobile_key: str) -> str:
    d = mobile_key.removeprefix("+86")
    return f"{d[:3]} {d[3:7]} {d[7:]}"


def near_name(rng: random.Random, core: str, city: str) -> str:
    """The same company written differently (half), with spaces and full-width brackets, or
    with one character of its core changed (below the default 90% for most cores)."""
    short = (city or "").removesuffix("市")
    how = rng.random()
    if how < 0.5:
        return f"{core}（{short}）股份有限公司" if short else core + "股份有限公司"
    if how < 0.7:
        return f"{short} {core[:2]} {core[2:]} （有限公司）"
    i = rng.randrange(2, len(core))  # keep the block: the typo is in the rest
    return short + core[:i] + rng.choice("华信达通技贸业") + core[i + 1:] + "有限公司"


def sample_checks(app, n: int, count: int, seed: int) -> list[tuple[str, dict]]:
    """(kind, raw input) of the new customers to check, in a shuffled order."""
    from app.extensions import db

    rng = random.Random(seed + 1)
    gen = Gen(seed + 2)
    cols = "id, name, customer_type, city, mobile_e164, name_core, birth_year, birth_month, " \
           "birth_day, birthday_lunar"
    with app.app_context():
        def rows(where: str, k: int, **params):
            return db.session.execute(sa.text(
                f"SELECT {cols} FROM customer WHERE {where} LIMIT {k}"), params).all()

        ids = rng.sample(range(1, n + 1), min(n, 20 * count))
        picked = db.session.execute(sa.text(f"SELECT {cols} FROM customer WHERE id IN "
                                            f"({','.join(map(str, ids))})")).all()
        with_mobile = [r for r in picked if r.mobile_e164]
        companies = [r for r in picked if r.customer_type == "company" and len(r.name_core) > 3]
        people = [r for r in picked if r.customer_type == "person" and r.birth_month]
        contact_mobiles = db.session.execute(sa.text(
            "SELECT mobile_e164 FROM contact WHERE mobile_e164 IS NOT NULL AND id IN "
            f"({','.join(map(str, ids))})")).scalars().all()
        hot, members = db.session.execute(sa.text(
            "SELECT name_block, count(*) FROM customer WHERE customer_type = 'company' "
            "GROUP BY name_block ORDER BY count(*) DESC LIMIT 1")).one()
        # Members of the crowded block, from its far end.
        deep = rows("customer_type = 'company' AND name_block = :b ORDER BY id DESC", count,
                    b=hot)
    print(f"most crowded block: {hot!r} with {members:,} companies")
    checks = []
    quarter = count // 4
    for _ in range(quarter + count - 4 * quarter):
        raw = gen.customer()
        checks.append(("new", dict(raw_input(raw))))
    for i in range(quarter):
        mobile = contact_mobiles[i % len(contact_mobiles)] if i % 4 == 0 and contact_mobiles \
            else with_mobile[i % len(with_mobile)].mobile_e164
        checks.append(("same mobile", {"name": gen.company_name(
            "", gen.trade_name() + rng.choice(INDUSTRIES)), "mobile": reformat(mobile)}))
    for i in range(quarter):
        if i % 4 == 0:
            p = people[i % len(people)]
            year = p.birth_year if p.birth_year else ""
            checks.append(("near name", {
                "name": " ".join(p.name) if rng.random() < 0.5 else p.name,
                "customer_type": "person", "birthday_lunar": p.birthday_lunar,
                "birthday": f"{year}{'-' if year else ''}{p.birth_month:02d}-{p.birth_day:02d}"}))
        else:
            c = companies[i % len(companies)]
            checks.append(("near name", {"name": near_name(rng, c.name_core, c.city),
                                         "city": c.city}))
    for i in range(quarter):
        if i % 2 == 0 and deep:
            c = deep[(i // 2) % len(deep)]
            checks.append(("crowded block", {"name": c.city.removesuffix("市") + c.name_core
                                             + "有限公司", "city": c.city}))
        else:
            _, city, *_ = rng.choice(places())
            core = gen.trade_name(hot) + rng.choice(INDUSTRIES)
            checks.append(("crowded block", {"name": gen.company_name(city, core), "city": city}))
    rng.shuffle(checks)
    return checks


def raw_input(r: dict) -> dict:
    out = {k: r[k] for k in ("name", "customer_type", "province", "city", "address", "email")
           if r.get(k) is not None}
    for k in ("mobile", "phone"):
        if r.get(k):
            out[k] = r[k][0]
    if r.get("birthday"):
        y, m, d = r["birthday"]
        out["birthday"] = f"{y}-{m:02d}-{d:02d}" if y else f"{m:02d}-{d:02d}"
        out["birthday_lunar"] = r["birthday_lunar"]
    return out


def values_for(data: dict) -> dict:
    """The cleaned values and keys, exactly as dedupe.check builds them."""
    from app.services.customers import clean_customer_data, text_keys

    values = clean_customer_data(data, partial=True)
    kind = values.get("customer_type") or "company"
    values.update(customer_type=kind, **{k: v for k, v in text_keys(
        kind, values.get("name"), values.get("address")).items()
        if v is not None or k in ("name_core",)})
    return values


def pct(latencies: list[float], p: int) -> float:
    data = sorted(latencies)
    return data[min(int(len(data) * p / 100), len(data) - 1)] * 1000 if data else float("nan")


def run_ours(app, checks) -> tuple[list[float], list[float], list[list]]:
    from app.extensions import db
    from app.services import dedupe

    with app.app_context():
        for _, data in checks[:20]:  # warm: dictionaries, statement cache, pool
            dedupe.find(values_for(data))
        db.session.rollback()
        find_ms, whole_ms, found = [], [], []
        for _, data in checks:
            t0 = time.perf_counter()
            values = values_for(data)
            t1 = time.perf_counter()
            matches = dedupe.find(values)
            t2 = time.perf_counter()
            db.session.rollback()  # one request's transaction per check
            find_ms.append(t2 - t1)
            whole_ms.append(t2 - t0)
            found.append(matches)
        db.session.remove()
    return find_ms, whole_ms, found


def run_naive(app, checks, every: int, threshold: int) -> tuple[list[float], dict[int, int]]:
    """fuzz.ratio of the new core name against every stored core name, held in memory."""
    from rapidfuzz import fuzz, process

    from app.extensions import db

    with app.app_context():
        t0 = time.perf_counter()
        ids, cores = [], []
        for cid, core in db.session.execute(sa.text(
                "SELECT id, name_core FROM customer WHERE name_core IS NOT NULL")):
            ids.append(cid)
            cores.append(core)
        db.session.remove()
        print(f"naive: {len(cores):,} core names loaded in {time.perf_counter() - t0:.1f} s")
        times, hits = [], {}
        for i in range(0, len(checks), every):
            core = values_for(checks[i][1]).get("name_core")
            t = time.perf_counter()
            best = process.extractOne(core, cores, scorer=fuzz.ratio,
                                      score_cutoff=threshold) if core else None
            times.append(time.perf_counter() - t)
            if best:
                hits[i] = ids[best[2]]
    return times, hits


def prepare_database(args):
    """(app, SQLAlchemy URL) on a database holding args.n customers: the one built before if
    --reuse finds it current, else a new one (SQLite file replaced, PostgreSQL database
    recreated). Shared with bench/import.py."""
    url = f"sqlite:///{args.sqlite_path}" if args.db == "sqlite" else args.url
    engine_url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    reuse = args.reuse and reusable(engine_url, args.n)
    if not reuse:
        if args.db == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(args.sqlite_path + suffix).unlink(missing_ok=True)
        else:
            from claims import recreate_database

            recreate_database(engine_url)
    os.environ["DATABASE_URL"] = url
    from app import create_app

    app = create_app()
    if reuse:
        print(f"reusing {args.db} database with {args.n:,} customers")
    else:
        load(app, args.n, args.seed, args.workers, getattr(args, "rows_from", None))
    return app, engine_url


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    ap.add_argument("--n", type=int, default=1_000_000, help="existing customers")
    ap.add_argument("--checks", type=int, default=400, help="new customers checked")
    ap.add_argument("--naive-every", type=int, default=5,
                    help="the naive scan runs on every k-th check")
    ap.add_argument("--reuse", action="store_true",
                    help="keep a database that already holds --n customers")
    ap.add_argument("--sqlite-path", default=SQLITE_PATH)
    ap.add_argument("--url", default=PG_URL, help="PostgreSQL database (dropped unless --reuse)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--rows-from", metavar="SQLITE_FILE",
                    help="copy the customers and contacts of a SQLite database this script "
                         "built with the same --n (skips generating them again)")
    args = ap.parse_args()
    app, _url = prepare_database(args)

    with app.app_context():
        from app.services import dedupe

        from app.services.matching import Matcher

        rule = dedupe.active_rules()["scored"]
        link, _ = dedupe.thresholds(rule, Matcher.current())
        threshold = 90  # the naive baseline: fuzz.ratio of the core names, today's old rule
    checks = sample_checks(app, args.n, args.checks, args.seed)
    find_ms, whole_ms, found = run_ours(app, checks)
    naive_ms, naive_hits = run_naive(app, checks, args.naive_every, threshold)

    print(f"\n{args.db}, {args.n:,} customers, {len(checks)} checks "
          f"(matcher link threshold {link:.1f}; naive fuzz.ratio >= {threshold}):")
    print(f"  guishu dedupe.find:        p50 {pct(find_ms, 50):.1f} ms  p95 {pct(find_ms, 95):.1f} "
          f"ms  p99 {pct(find_ms, 99):.1f} ms  (target p95 <= 10 ms)")
    print(f"  with cleaning and keys:    p50 {pct(whole_ms, 50):.1f} ms  p95 "
          f"{pct(whole_ms, 95):.1f} ms  p99 {pct(whole_ms, 99):.1f} ms")
    print(f"  naive rapidfuzz scan:      p50 {pct(naive_ms, 50):.1f} ms  p95 "
          f"{pct(naive_ms, 95):.1f} ms  ({len(naive_ms)} checks, every {args.naive_every}th)")
    print(f"  {'checks with a match':<26} {'guishu (all)':>13} {'guishu (naive sample)':>22} "
          f"{'naive':>6}")
    for kind in ("new", "same mobile", "near name", "crowded block"):
        idx = [i for i, (k, _) in enumerate(checks) if k == kind]
        sample = [i for i in idx if i % args.naive_every == 0]
        ours_all = sum(1 for i in idx if found[i])
        ours_sample = sum(1 for i in sample if found[i])
        naive = sum(1 for i in sample if i in naive_hits)
        print(f"  {kind:<26} {ours_all:>6}/{len(idx):<6} {ours_sample:>11}/{len(sample):<10} "
              f"{naive:>3}/{len(sample)}")
    print("  (naive: a best fuzz.ratio >= the threshold anywhere, without the same-city rule "
          "or the keys)")
    by_rule: dict[str, int] = {}
    for matches in found:
        for m in matches:
            by_rule[m.kind] = by_rule.get(m.kind, 0) + 1
    print("  guishu matches by rule:    " + ", ".join(f"{k} {v}" for k, v in
                                                      sorted(by_rule.items())))


if __name__ == "__main__":
    main()
