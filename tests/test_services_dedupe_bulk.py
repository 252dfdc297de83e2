"""The import's bulk matcher (dedupe_bulk) against the entry check (dedupe.find): on a
generated set with planted near-duplicates both name the same customers for the same rules
with the same scores; and the matcher's checks of a file against itself."""
from __future__ import annotations

import random

import pytest
from faker import Faker

from app.models import Contact, Customer
from app.services import dedupe, dedupe_bulk, ownership
from app.services.customers import clean_contact_data, clean_customer_data

SEED = 20261129
STORED = 300


def _stored(db, org, records: list[dict]) -> list[int]:
    """Insert records as the import does (no dedupe check: the set holds its own twins),
    with their contacts."""
    ids = []
    for data in records:
        data = dict(data)
        contact = data.pop("contact", None)
        customer = Customer(created_by_id=org.staff.id, **clean_customer_data(data))
        db.session.add(customer)
        ownership.place_new_customer(customer, actor_id=org.staff.id, owner_id=None,
                                     pool_id=org.pool.id)
        if contact:
            db.session.add(Contact(customer_id=customer.id, **clean_contact_data(contact)))
        ids.append(customer.id)
    db.session.commit()
    return ids


def _spaced(mobile: str) -> str:
    return f"+86 {mobile[:3]} {mobile[3:7]} {mobile[7:]}"


def _dashed(mobile: str) -> str:
    return f"{mobile[:3]}-{mobile[3:7]}-{mobile[7:]}"


def _generated(rng: random.Random, fake: Faker) -> tuple[list[dict], list[dict]]:
    """(stored records, probe records). Companies are 'region + core + legal form' with cores
    of a few shared two-character blocks, so fuzzy neighbours exist; persons share a few
    names, so the birthday and the address decide."""
    cities = ["杭州", "上海", "苏州", "北京", "广州"]
    forms = ["有限公司", "股份有限公司", "有限责任公司"]
    blocks = ["云帆", "恒信", "华联", "申达", "远景"]
    tails = ["网络科技", "电子科技", "国际贸易", "供应链", "软件", "信息技术", "实业"]
    people = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊"]
    stored, probes = [], []
    mobiles = set()

    def mobile() -> str:
        while True:
            m = rng.choice(["135", "138", "139", "150", "158", "186", "188"]) + "".join(
                rng.choice("0123456789") for _ in range(8))
            if m not in mobiles:
                mobiles.add(m)
                return m

    for i in range(STORED):
        if i % 3:
            core = rng.choice(blocks) + rng.choice(tails) + rng.choice(["", "", "发展", "集团"])
            city = rng.choice(cities)
            record = {"name": f"{city}{core}{rng.choice(forms)}", "city": city,
                      "mobile": mobile()}
            if rng.random() < 0.4:
                record["email"] = fake.unique.email()
            if rng.random() < 0.3:
                record["phone"] = f"0571-8{rng.randrange(1000000, 9999999)}"
            if rng.random() < 0.15:
                record["contact"] = {"name": fake.name(), "mobile": mobile(),
                                     "email": fake.unique.email()}
        else:
            record = {"name": rng.choice(people), "customer_type": "person",
                      "birthday": fake.date_of_birth(minimum_age=20, maximum_age=70).isoformat(),
                      "address": fake.address().split(" ")[0]}
            if rng.random() < 0.5:
                record["mobile"] = mobile()
        stored.append(record)
    # Twins inside the stored set, so a probe can name several customers.
    for record in rng.sample(stored, 20):
        twin = dict(record, mobile=mobile())
        for key in ("email", "phone", "contact"):
            twin.pop(key, None)
        stored.append(twin)

    for record in rng.sample(stored, 120):
        probe = dict(record)
        probe.pop("contact", None)
        change = rng.randrange(6)
        contact = record.get("contact")
        if contact and change < 3:  # a contact's mobile or e-mail on another company
            probe = {"name": fake.company(), "mobile": _spaced(contact["mobile"])} \
                if change < 2 else {"name": fake.company(), "email": contact["email"].upper()}
        elif record.get("customer_type") == "person":
            if change < 2:      # same person, name spaced, traditional script or pinyin case
                probe["name"] = rng.choice([" ".join(record["name"]), record["name"]])
                probe.pop("mobile", None)
            elif change < 4:    # same birthday, year unknown
                probe["birthday"] = record["birthday"][5:]
                probe.pop("mobile", None)
                probe.pop("address", None)
            else:               # mobile written differently, someone else entirely
                probe = {"name": fake.name(), "customer_type": "person",
                         "mobile": _spaced(record["mobile"]) if record.get("mobile")
                         else mobile()}
        elif change == 0:       # the mobile in another format, another name
            probe = {"name": fake.company(), "mobile": _spaced(record["mobile"])}
        elif change == 1:       # the same core with another legal form and the region inside
            core = record["name"].removeprefix(record["city"])
            for form in forms:
                core = core.removesuffix(form)
            probe = {"name": f"{core}（{record['city']}）{rng.choice(forms)}",
                     "mobile": mobile()}
        elif change == 2:       # the same core in another city (same_city refuses it)
            other = rng.choice([c for c in cities if c != record["city"]])
            probe = {"name": other + record["name"].removeprefix(record["city"]),
                     "city": other, "mobile": mobile()}
        elif change == 3:       # one character added to the core: a fuzzy neighbour
            name = record["name"]
            at = len(record["city"]) + 2 + rng.randrange(2)
            probe = {"name": name[:at] + rng.choice("达通盛源") + name[at:],
                     "city": record["city"], "mobile": mobile()}
        elif change == 4 and record.get("email"):  # the e-mail in upper case
            probe = {"name": fake.company(), "email": record["email"].upper()}
        elif record.get("phone"):  # the landline, and someone else's mobile dashed
            probe = {"name": fake.company(), "phone": record["phone"],
                     "mobile": _dashed(rng.choice(stored).get("mobile") or mobile())}
        else:                   # the mobile entered as the landline
            probe = {"name": fake.company(), "phone": record["mobile"]}
        probes.append(probe)
    for _ in range(30):         # strangers: neither side may find anything
        probes.append({"name": fake.company(), "mobile": mobile(), "city": rng.choice(cities)})
    return stored, probes


def _key(matches) -> list[tuple]:
    """The matches as a sorted list: both sides order by (action, score, customer), and
    two rules naming one customer with one score tie in either order."""
    return sorted((m.kind, m.customer_id, m.score, m.action, m.holder, m.explanation)
                  for m in matches)


def test_bulk_matcher_and_entry_check_answer_alike_on_a_generated_set(db, org):
    rng = random.Random(SEED)
    fake = Faker("zh_CN")
    fake.seed_instance(SEED)
    stored, probe_records = _generated(rng, fake)
    _stored(db, org, stored)
    probes = [clean_customer_data(p) for p in probe_records]

    matcher = dedupe_bulk.BatchMatcher()
    bulk = dedupe_bulk.answers(matcher.table_hits(probes), matcher.rules, matcher.accounts)
    single = [dedupe.find(values) for values in probes]

    differing = [(p["name"], _key(b), _key(s))
                 for p, b, s in zip(probe_records, bulk, single) if _key(b) != _key(s)]
    assert differing == []
    # The set exercises every rule, fuzzy and exact, and strangers stay unmatched.
    found = [m for matches in single for m in matches]
    assert {m.kind for m in found} == {"mobile", "phone", "email", "scored"}
    assert any(m.explanation for m in found if m.kind == "scored")
    assert {m.explanation for m in found if m.kind == "scored"} == {
        m.explanation for matches in bulk for m in matches if m.kind == "scored"}
    assert all(matches == [] for matches in single[-30:])


@pytest.fixture
def rules(db):
    return dedupe.active_rules()


def test_file_rows_match_earlier_rows_of_the_same_file(db, org, rules):
    """A row is checked against the rows of its file read before it: the same mobile in
    another format, the same e-mail in another case (exact rules), the same company in
    another spelling, the same person and birthday (the matcher, with its account)."""
    matcher = dedupe_bulk.BatchMatcher(rules)
    first = clean_customer_data({"name": "杭州远景科技有限公司", "mobile": "13700137001",
                                 "email": "Sales@YuanJing.cn", "city": "杭州"})
    person = clean_customer_data({"name": "王芳", "customer_type": "person",
                                  "birthday": "1980-05-06"})
    assert matcher.file_hits(first) == []
    matcher.remember(first, 2)
    matcher.remember(person, 3)
    assert matcher.file_hits(clean_customer_data(
        {"name": "x", "mobile": "+86 137 0013 7001"}))[0] == ("mobile", 2, 100, "")
    assert matcher.file_hits(clean_customer_data(
        {"name": "x", "email": "sales@yuanjing.CN"}))[0] == ("email", 2, 100, "")
    same = clean_customer_data({"name": "远景科技（杭州）股份有限公司"})
    [(kind, line, score, why)] = matcher.file_hits(same)
    assert (kind, line, why) == ("scored", 2, matcher.matcher.explain(same, first).text())
    assert 0 < score < 100
    typed = clean_customer_data({"name": "王 芳", "customer_type": "person",
                                 "birthday": "05-06"})
    assert [(k, line) for k, line, _, _ in matcher.file_hits(typed)] == [("scored", 3)]


def test_an_inactive_rule_matches_nothing_in_bulk(db, org):
    """Only the active rules count: without the mobile rule and the scorer, rep1's
    customer's mobile in another format is no match."""
    rules = {k: r for k, r in dedupe.active_rules().items() if k not in ("mobile", "scored")}
    matcher = dedupe_bulk.BatchMatcher(rules)
    probe = clean_customer_data({"name": "另一家公司", "mobile": "138-0013-8000"})
    assert matcher.table_hits([probe]) == [{}]
    full = dedupe_bulk.BatchMatcher()
    assert full.table_hits([probe])[0][("mobile", org.c_rep.id)] == 100


def test_answers_name_the_holder_and_texts_group_the_rules(db, org):
    matcher = dedupe_bulk.BatchMatcher()
    probe = clean_customer_data({"name": "杭州云帆科技股份有限公司", "mobile": "13800138000",
                                 "city": "杭州"})
    [matches] = dedupe_bulk.answers(matcher.table_hits([probe]), matcher.rules,
                                    matcher.accounts)
    assert [(m.kind, m.customer_id, m.action, m.holder) for m in matches] == [
        ("mobile", org.c_rep.id, "block", "负责人 测试rep1（华东大区）"),
        ("scored", org.c_rep.id, "warn", "负责人 测试rep1（华东大区）")]
    why = matcher.matcher.explain(probe, org.c_rep.__dict__).text()
    assert matches[1].explanation == why
    [group] = dedupe_bulk.by_customer(matches)
    assert dedupe_bulk.kinds_text(group) == f"手机号、相似客户（综合评分）：{why}"
    assert dedupe_bulk.grouped_text(group) == (
        f"已存在：客户 杭州云帆科技有限公司，负责人 测试rep1（华东大区）（手机号、相似客户（综合评分）：{why}）")
