"""Batch dedupe scan benchmark: N customers with seeded duplicate clusters of known truth.

Builds (or, with --reuse, keeps) a database of N customers — companies with Zipf-distributed
name prefixes (so some 2-character blocks are huge), persons, contacts — and seeds clusters
of known truth: legal form changed, region prefix added, traditional characters, full-width
brackets and spaces, one character mistyped (long names), the same mobile under another
name (in a contact), a person with the same name and birthday, and near-misses that must
stay apart (华为技术 vs 华为终端: same prefix and city, other words; the same name in another
city). Then runs app.services.dedupe_scan.scan and prints its time, peak memory, and pair
recall and precision against the seeded truth; and, on a 3,000 sample (whole truth clusters,
part of the largest block, random rows), brute-force all-pairs scoring by the same matcher
(no blocking) at the link threshold and the scan's recall of those pairs (target >= 98 %).

    .venv/bin/python bench/dedupe_scan.py --n 100000                    # SQLite
    .venv/bin/python bench/dedupe_scan.py --n 1000000 --reuse           # keep the built DB
    .venv/bin/python bench/dedupe_scan.py --n 1000000 --db postgres     # DATABASE_URL or
                                                                        # guishu_bench_dedupe
Not a test: numbers only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import resource
import sys
import time
import tracemalloc
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

CITIES = ["杭州", "上海", "北京", "深圳", "广州", "南京", "苏州", "成都", "武汉", "西安", "重庆",
          "天津", "宁波", "厦门", "青岛", "长沙", "郑州", "合肥", "福州", "济南", "无锡", "佛山",
          "东莞", "大连", "沈阳", "昆明", "南昌", "温州", "绍兴", "嘉兴"]
INDUSTRIES = ["科技", "贸易", "电子", "机械", "建材", "食品", "物流", "医药", "化工", "服装",
              "文化传媒", "信息技术", "网络科技", "生物科技", "新能源", "环保科技", "实业",
              "建筑工程", "装饰工程", "餐饮管理", "咨询", "投资管理", "教育科技", "农业科技",
              "汽车服务", "电器", "纺织", "印刷", "包装", "家具"]
FORMS = ["有限公司", "股份有限公司", "有限责任公司"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
ROADS = ["文三路", "解放路", "人民路", "中山路", "建设路", "和平路", "新华路", "长江路",
         "黄河路", "学院路", "科技路", "工业路", "滨江大道", "环城北路", "体育场路"]
SAMPLE = 3_000  # brute force: every pair of the sample (4.5M) through the scorer
BATCH = 20_000


def char_pool() -> list[str]:
    """Common characters of Chinese names and firms (Faker's zh_CN lists), fixed order."""
    from faker.providers.company.zh_CN import Provider as Company
    from faker.providers.person.zh_CN import Provider as Person

    chars = sorted({c for s in list(Person.first_names) + list(Company.company_prefixes)
                    for c in s if "\u4e00" <= c <= "\u9fff"})
    return chars


def zipf_weights(n: int, s: float = 1.0) -> list[float]:
    return [1.0 / (k + 1) ** s for k in range(n)]


_S2T = []


def s2t(text: str) -> str:
    if not _S2T:
        import opencc

        _S2T.append(opencc.OpenCC("s2t"))
    return _S2T[0].convert(text)


def full_width(text: str) -> str:
    """ASCII to full-width, brackets to full-width ones, a full-width space after the city."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


class Generator:
    """Base customers plus seeded variants; truth maps a customer id to its true cluster."""

    def __init__(self, n: int, seed: int = 7):
        self.rng = random.Random(seed)
        self.n = n
        pool = char_pool()
        self.rng.shuffle(pool)
        self.pool = pool
        self.weights = zipf_weights(len(pool), 1.1)
        self.cores: set[str] = set()
        # what two distinct firms may not share (see too_close)
        self._deleted: set[str] = set()
        self._substituted: set[str] = set()
        self._sounds: set[str] = set()
        self.truth: dict[int, int] = {}
        self.next_truth = 0
        self.next_mobile = 0
        self.rows: list[dict] = []
        self.contacts: list[dict] = []

    def mobile(self) -> str:
        self.next_mobile += 1
        return f"+86139{self.next_mobile:08d}"

    def core(self, long: bool = False) -> str:
        rng = self.rng
        while True:
            head = "".join(rng.choices(self.pool, self.weights, k=2))
            middle = "".join(rng.choices(self.pool, k=rng.randint(6, 8) if long
                                         else rng.randint(1, 2)))
            core = head + middle + rng.choice(INDUSTRIES)
            if not self.too_close(core):
                self.register(core)
                return core

    def too_close(self, core: str) -> bool:
        """Whether a firm of this core would be one the bench cannot call distinct: the same
        core, one character off (substituted, inserted or left out) or the same sound as a
        firm already drawn. From a small Zipf-weighted character pool such pairs are drawn by
        the ten thousand, and every matcher (and every clerk) takes them for a typo of one
        firm: counted as distinct they measured the generator, not the matcher (the first
        1M run found 47,013 of them among its 67,013 linked pairs)."""
        from app.services.matching.records import pinyin_of

        dels = [core[:i] + core[i + 1:] for i in range(len(core))]
        return (core in self.cores or core in self._deleted
                or any(d in self.cores for d in dels)
                or any(f"{i}|{d}" in self._substituted for i, d in enumerate(dels))
                or pinyin_of(core) in self._sounds)

    def register(self, core: str) -> None:
        from app.services.matching.records import pinyin_of

        self.cores.add(core)
        for i in range(len(core)):
            d = core[:i] + core[i + 1:]
            self._deleted.add(d)
            self._substituted.add(f"{i}|{d}")
        self._sounds.add(pinyin_of(core))

    def company(self, core: str, *, city, region_prefix: bool, form: str) -> dict:
        name = (city if region_prefix and city else "") + core + form
        return {"customer_type": "company", "name": name, "city": city,
                "_keys": {"name_core": core, "name_block": core[:2],
                          "name_region": city if region_prefix and city else None}}

    def person(self, name: str, city: str, birthday, address: str) -> dict:
        y, m, d = birthday
        return {"customer_type": "person", "name": name, "city": city, "birth_year": y,
                "birth_month": m, "birth_day": d, "address": address, "_keys": None}

    def add(self, row: dict, truth: int | None = None, mobile: str | None = None) -> int:
        row["mobile_e164"] = mobile or self.mobile()
        row["id"] = len(self.rows) + 1
        self.rows.append(row)
        if truth is not None:
            self.truth[row["id"]] = truth
        return row["id"]

    def build(self) -> None:
        rng = self.rng
        n_seed = max(self.n // 50, 10)  # ~2 % of rows start a seeded cluster
        variants = ["form", "region", "traditional", "fullwidth", "typo", "mobile",
                    "person", "address"]
        for k in range(n_seed):
            self.seed_cluster(variants[k % len(variants)])
            if k % 4 == 0:
                self.near_miss()
        while len(self.rows) < self.n:
            if rng.random() < 0.15:
                self.add(self.random_person())
            else:
                city = rng.choice(CITIES) if rng.random() < 0.9 else None
                self.add(self.company(self.core(long=rng.random() < 0.05), city=city,
                                      region_prefix=rng.random() < 0.3,
                                      form=rng.choice(FORMS)))

    def random_person(self, surname=None) -> dict:
        rng = self.rng
        name = (surname or rng.choice(SURNAMES)) + "".join(
            rng.choices(self.pool, k=rng.randint(1, 2)))
        return self.person(name, rng.choice(CITIES), self.birthday(), self.address())

    def birthday(self):
        rng = self.rng
        return (rng.randint(1950, 2000) if rng.random() < 0.7 else None, rng.randint(1, 12),
                rng.randint(1, 28))

    def address(self) -> str:
        rng = self.rng
        return f"{rng.choice(CITIES)}市{rng.choice(ROADS)}{rng.randint(1, 999)}号" \
               f"{rng.randint(1, 30)}幢{rng.randint(101, 2999)}室"

    def seed_cluster(self, how: str) -> None:
        rng = self.rng
        truth = self.next_truth
        self.next_truth += 1
        city = rng.choice(CITIES)
        if how in ("person", "address"):
            base = self.random_person()
            base["_keys"] = "exact"
            self.add(base, truth)
            twin = dict(base)
            if how == "person":
                twin["name"] = s2t(base["name"])  # same person in traditional characters
                twin["address"] = self.address()
            else:  # same name, the address written with 号楼 instead of 幢, no birthday
                twin["address"] = base["address"].replace("幢", "号楼")
                twin.update(birth_year=None, birth_month=None, birth_day=None)
            self.add(twin, truth)
            return
        core = self.core(long=how == "typo")
        form = rng.choice(FORMS)
        base = self.company(core, city=city, region_prefix=False, form=form)
        base["_keys"] = "exact"
        base_id = self.add(base, truth)
        if how == "form":
            twin = {"name": core + rng.choice([f for f in FORMS if f != form]), "city": city}
        elif how == "region":
            twin = {"name": city + "市" + core + form, "city": None}
        elif how == "traditional":
            twin = {"name": s2t(core) + form, "city": city}
        elif how == "fullwidth":
            twin = {"name": full_width(f"{core}({city}) {form}"), "city": None}
        elif how == "typo":
            i = rng.randrange(2, len(core))
            typo = core[:i] + rng.choice(self.pool) + core[i + 1:]
            self.register(typo)  # no other firm one character off the typo either
            twin = {"name": typo + form, "city": city}
        else:  # mobile: another name, but its contact has the base's mobile
            twin = {"name": self.core() + form, "city": rng.choice(CITIES)}
            self.contacts.append({"customer_id": len(self.rows) + 1, "name": "联系人",
                                  "mobile_e164": self.rows[base_id - 1]["mobile_e164"]})
        twin.update(customer_type="company", _keys="exact")
        self.add(twin, truth)

    def near_miss(self) -> None:
        """Two firms of one group (same prefix, other words, same city), and the same core in
        two cities: not duplicates under the default rules."""
        rng = self.rng
        city = rng.choice(CITIES)
        core = self.core()
        other = core[:2] + "".join(rng.choices(self.pool, k=2)) + rng.choice(INDUSTRIES)
        while self.too_close(other):
            other = core[:2] + "".join(rng.choices(self.pool, k=2)) + rng.choice(INDUSTRIES)
        self.register(other)
        for c, where in ((core, city), (other, city),
                         (core, rng.choice([x for x in CITIES if x != city]))):
            row = self.company(c, city=where, region_prefix=False, form="有限公司")
            row["_keys"] = "exact"
            self.add(row)


def keys_of(row: dict) -> dict:
    """The stored dedupe keys: the app's normaliser for seeded rows; for the bulk of random
    rows the parts they were built from (the normaliser costs ~0.7 ms a name)."""
    from app.services.customers import text_keys

    if row["_keys"] == "exact" or row["_keys"] is None:
        keys = text_keys(row["customer_type"], row["name"], row.get("address"))
    else:
        keys = dict(row["_keys"], name_pinyin=None, legal_form=None, address_norm=None)
    return keys


def load(app, gen: Generator) -> None:
    from app.extensions import db
    from app.services.ownership import default_pool

    with app.app_context():
        pool_id = default_pool().id
        dialect = db.engine.dialect.name
        now = dt.datetime.utcnow()
        t0 = time.perf_counter()
        cols = ["id", "name", "customer_type", "city", "address", "mobile", "mobile_e164",
                "birth_year", "birth_month", "birth_day", "name_core", "name_block",
                "name_region", "name_pinyin", "legal_form", "address_norm"]
        conn = db.session.connection()
        if dialect == "postgresql":
            conn.execute(sa.text("SET CONSTRAINTS ALL DEFERRED"))
        ins_c = sa.text(f"INSERT INTO customer ({', '.join(cols)}, created_at, updated_at, "
                        f"birthday_lunar, norm_version) VALUES "
                        f"({', '.join(':' + c for c in cols)}, :now, :now, false, 2)")
        ins_o = sa.text("INSERT INTO customer_ownership (customer_id, pool_id, acquired_at, "
                        "acquired_how, locked, won, category) VALUES (:id, :pool, :now, "
                        "'created', false, false, 'potential')")
        for start in range(0, len(gen.rows), BATCH):
            batch = []
            for row in gen.rows[start:start + BATCH]:
                values = {c: row.get(c) for c in cols}
                values.update(keys_of(row), mobile=row["mobile_e164"][3:], now=now)
                batch.append(values)
            conn.execute(ins_c, batch)
            conn.execute(ins_o, [{"id": r["id"], "pool": pool_id, "now": now} for r in batch])
        if gen.contacts:
            conn.execute(sa.text("INSERT INTO contact (customer_id, name, mobile, mobile_e164, "
                                 "is_primary, birthday_lunar, created_at) VALUES (:customer_id, "
                                 ":name, :mobile_e164, :mobile_e164, false, false, :now)"),
                         [dict(c, now=now) for c in gen.contacts])
        if dialect == "postgresql":
            conn.execute(sa.text("SELECT setval('customer_id_seq', :n)"), {"n": len(gen.rows)})
        db.session.commit()
        if dialect == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(sa.text("VACUUM ANALYZE customer"))
        else:
            db.session.execute(sa.text("ANALYZE"))
            db.session.commit()
        print(f"loaded {len(gen.rows):,} customers ({len(gen.truth):,} in "
              f"{gen.next_truth:,} seeded clusters, {len(gen.contacts):,} contacts) in "
              f"{time.perf_counter() - t0:.1f} s")
        # The matcher's blocking entries, as `flask crm match-keys-rebuild` writes them (the
        # saves of a live deployment keep them as they go).
        from app.services import match_keys

        t1 = time.perf_counter()
        done = match_keys.rebuild_all(db.session.connection())
        db.session.commit()
        if dialect == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(sa.text("VACUUM ANALYZE customer_match_key"))
        print(f"blocking entries of {done:,} customers in {time.perf_counter() - t1:.1f} s")


def pairs_of(groups) -> set[tuple[int, int]]:
    out = set()
    for g in groups:
        g = sorted(g)
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                out.add((g[i], g[j]))
    return out


def evaluate(rows, truth: dict[int, int]) -> tuple[float, float, int, int]:
    """Pair recall and precision of the scan's clusters against the seeded truth."""
    clusters = defaultdict(list)
    for cid, cluster_id, *_ in rows:
        clusters[cluster_id].append(cid)
    true_groups = defaultdict(list)
    for cid, t in truth.items():
        true_groups[t].append(cid)
    true_pairs = sum(len(g) * (len(g) - 1) // 2 for g in true_groups.values())
    found = tp = 0
    for members in clusters.values():
        found += len(members) * (len(members) - 1) // 2
        by_truth = Counter(truth[m] for m in members if m in truth)
        tp += sum(k * (k - 1) // 2 for k in by_truth.values())
    return tp / max(true_pairs, 1), tp / max(found, 1), tp, found


def brute_force(app, gen: Generator, cluster_of: dict[int, int]) -> None:
    """Every pair of a sample (whole truth clusters, part of the largest block, random rows)
    scored by the same matcher without blocking, at the link threshold, against which
    linked groups the scan put them in: the matches the blocking gives away."""
    import numpy as np

    from app.extensions import db
    from app.services import match_keys
    from app.services.dedupe import active_rules, thresholds
    from app.services.matching import Matcher
    from app.services.matching.records import Columns

    rng = random.Random(11)
    with app.app_context():
        matcher = Matcher.current()
        link, _ = thresholds(active_rules()["scored"], matcher)
        rows = db.session.execute(sa.text(
            "SELECT id, customer_type, name_block FROM customer")).all()
        by_block = defaultdict(list)
        for r in rows:
            if r.customer_type == "company":
                by_block[r.name_block].append(r.id)
        biggest = max(by_block.values(), key=len)
        chosen = [cid for cid in gen.truth][:SAMPLE // 4]
        chosen += rng.sample(biggest, min(len(biggest), SAMPLE // 4))
        chosen += rng.sample([r.id for r in rows], min(len(rows), SAMPLE))
        chosen = list(dict.fromkeys(chosen))[:SAMPLE]
        records = match_keys.records(chosen)
    cols = Columns(records)
    t0 = time.perf_counter()
    brute = hit = seeded = seeded_hit = 0
    missed = []
    n = len(cols)
    for i in range(n - 1):
        others = np.arange(i + 1, n)
        for a, b, totals in matcher.scored_pairs(cols, i * n + others, floor=link):
            keep = np.flatnonzero(totals >= link)
            for x, y in zip(cols.ids[a[keep]].tolist(), cols.ids[b[keep]].tolist()):
                brute += 1
                # a seeded duplicate, or two customers the generator made apart that the
                # scorer links (one character apart in one city: see the precision above)
                true = x in gen.truth and gen.truth[x] == gen.truth.get(y)
                seeded += true
                if x in cluster_of and cluster_of.get(x) == cluster_of.get(y):
                    hit += 1
                    seeded_hit += true
                elif len(missed) < 5:
                    missed.append((x, y))
    elapsed = time.perf_counter() - t0
    print(f"  brute force on a {n:,} sample ({len(biggest):,}-row largest block): "
          f"{brute:,} pairs at or above the link threshold in {elapsed:.1f} s")
    print(f"  scan recall vs brute force:      {hit / max(brute, 1):.2%} (target >= 98%)"
          + (f"; e.g. missed {missed}" if missed else ""))
    print(f"    of them seeded duplicates:     {seeded_hit:,} of {seeded:,} "
          f"({seeded_hit / max(seeded, 1):.2%}); pairs the generator made apart: "
          f"{hit - seeded_hit:,} of {brute - seeded:,} "
          f"({(hit - seeded_hit) / max(brute - seeded, 1):.2%})")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--sqlite", default="/tmp/guishu_bench_scan.db")
    ap.add_argument("--reuse", action="store_true", help="keep the database built before")
    ap.add_argument("--tracemalloc", action="store_true",
                    help="also trace Python allocations (slows the scan down)")
    args = ap.parse_args()
    if args.db == "sqlite":
        url = f"sqlite:///{args.sqlite}"
    else:
        url = os.environ.get("DATABASE_URL",
                             "postgresql+psycopg://postgres@127.0.0.1:5432/guishu_bench_dedupe")
    truth_file = Path(f"{args.sqlite if args.db == 'sqlite' else '/tmp/guishu_bench_pg'}"
                      f".{args.n}.truth.json")
    reuse = args.reuse and truth_file.exists()
    if not reuse:
        if args.db == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(args.sqlite + suffix).unlink(missing_ok=True)
        else:
            from claims import recreate_database

            recreate_database(url)
    os.environ["DATABASE_URL"] = url
    from app import create_app

    app = create_app()
    gen = Generator(args.n)
    if reuse:
        gen.truth = {int(k): v for k, v in json.loads(truth_file.read_text()).items()}
        print(f"reusing {url} ({len(gen.truth):,} seeded customers)")
    else:
        from flask_migrate import upgrade

        from app.services import bootstrap

        with app.app_context():
            upgrade()
            bootstrap.initialise()
        t0 = time.perf_counter()
        gen.build()
        print(f"generated {len(gen.rows):,} rows in {time.perf_counter() - t0:.1f} s")
        load(app, gen)
        truth_file.write_text(json.dumps(gen.truth))
        # the scan's memory is measured, not the generator's
        gen.rows, gen.cores, gen._deleted, gen._substituted, gen._sounds = [], set(), set(), set(), set()

    from app.extensions import db
    from app.services.dedupe_scan import scan

    with app.app_context():
        if args.tracemalloc:
            tracemalloc.start()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0, cpu0, load0 = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        result = scan()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        loadavg = (load0 + os.getloadavg()[0]) / 2
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        traced = tracemalloc.get_traced_memory()[1] if args.tracemalloc else None
        n = db.session.execute(sa.text("SELECT COUNT(*) FROM customer")).scalar_one()
    recall, precision, tp, found = evaluate(result.rows, gen.truth)
    linked_rows = [(cid, i) for i, members in enumerate(result.linked) for cid in members]
    l_recall, l_precision, l_tp, l_found = evaluate(linked_rows, gen.truth)
    print(f"dedupe scan of {n:,} customers on {db.engine.dialect.name if False else args.db}:")
    print(f"  time:                            {elapsed:.1f} s (target <= 120 s at 1M); CPU "
          f"{cpu:.1f} s; load average about {loadavg:.1f} on {os.cpu_count()} CPUs")
    print(f"  peak RSS (ru_maxrss):            {peak / 1024:.0f} MiB (before the scan "
          f"{before / 1024:.0f} MiB; target <= 4096 MiB)"
          + (f"; tracemalloc peak {traced / 2**20:.0f} MiB" if traced else ""))
    print(f"  clusters:                        {result.clusters:,} ({result.members:,} "
          f"customers; {result.by_kind})")
    print(f"  at the link threshold:           recall {l_recall:.2%}, precision "
          f"{l_precision:.2%} ({l_tp:,} of {l_found:,} pairs) vs seeded truth")
    print(f"  review clusters (review thresh.): recall {recall:.2%}, precision "
          f"{precision:.2%} ({tp:,} of {found:,} pairs)")
    cluster_of = {cid: i for i, members in enumerate(result.linked) for cid in members}
    brute_force(app, gen, cluster_of)


if __name__ == "__main__":
    main()
