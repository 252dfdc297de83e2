"""The matcher's scorer: field levels on the cases of issue 19 (typos and homophones link;
branches, sibling companies, the same name in another city, namesakes and family members do
not), the explanation's exact text, score() equal to explain() totals, blocking keys, link()
on a crowded block, and EM recovering known m/u."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from app.services.customers import clean_customer_data
from app.services.matching import Matcher, record_of
from app.services.matching.em import estimate, patterns
from app.services.matching.fields import FIELDS
from app.services.matching.model import Model, default_model


@pytest.fixture
def ctx(app):
    with app.app_context():
        yield


def rec(id_: int, **data) -> dict:
    clean = clean_customer_data(data)
    clean["id"] = id_
    return clean


def person(id_: int, name: str, **data) -> dict:
    return rec(id_, name=name, customer_type="person", **data)


def levels_of(explained) -> dict[str, str]:
    return {p.field: p.level for p in explained.parts}


def test_one_wrong_character_in_a_company_name_links_in_the_same_city(ctx):
    m = Matcher()
    a = rec(1, name="英荣润网络科技有限公司", city="杭州")
    b = rec(2, name="英荣涧网络科技有限公司", city="杭州")   # 润 -> 涧: another sound
    ex = m.explain(a, b)
    assert levels_of(ex)["name"] == "close" and ex.parts[0].similarity == 86
    assert ex.total >= m.link_threshold
    # without a city the name alone is not enough to link, but it goes to review
    bare = m.explain(rec(3, name="英荣润网络科技有限公司"), rec(4, name="英荣涧网络科技有限公司"))
    assert m.review_threshold <= bare.total < m.link_threshold


def test_homophone_company_names_link(ctx):
    m = Matcher()
    for left, right in [("英荣润网络科技有限公司", "英容润网络科技有限公司"),
                        ("杭州华星科技有限公司", "杭州华兴科技有限公司")]:
        ex = m.explain(rec(1, name=left, city="杭州"), rec(2, name=right, city="杭州"))
        assert levels_of(ex)["name"] == "homophone", (left, right)
        assert ex.total >= m.link_threshold


def test_person_name_typo_with_same_address_and_birthday_links(ctx):
    m = Matcher()
    a = person(1, "杨兵丽", address="杭州市西湖区文三路100号", birthday="1985-03-12")
    b = person(2, "杨兵雨", address="杭州市西湖区文三路100号", birthday="1985-03-12")
    ex = m.explain(a, b)
    # a two-character given name one character off is only 'similar' (two people as often as
    # one typo): the same birthday and home make the link
    assert levels_of(ex) == {"surname": "exact", "given": "similar", "birthday": "exact",
                             "place": "missing", "address": "exact", "house_number": "same",
                             "phone": "missing", "mobile": "missing", "email": "missing",
                             "household": "capped"}
    assert ex.total >= m.link_threshold


def test_short_chinese_given_names_one_apart_are_similar_longer_names_close(ctx):
    m = Matcher()
    for left, right, level in [("王娜睿", "王娜帅", "similar"), ("杨宇", "杨雨", "similar"),
                               ("王兵丽", "王冰丽", "homophone"), ("欧阳文华", "欧阳文化", "homophone"),
                               ("欧阳文华", "欧阳文军", "similar"),
                               ("katherine smith", "katharine smith", "close")]:
        assert levels_of(m.explain(person(1, left), person(2, right)))["given"] == level, \
            (left, right)
    # and without a birthday, an address or a number they stay below the link threshold
    ex = m.explain(person(1, "王娜睿", city="沈阳", mobile="13900000001"),
                   person(2, "王娜帅", city="沈阳", mobile="13900000002"))
    assert ex.total < m.link_threshold


def test_address_words_leave_out_the_place_and_the_numbers(ctx):
    """The address field compares what is left after the city, the district and the numbers
    with their words (号, 层, 室 …); the house-number field finds a floor left out."""
    m = Matcher()
    same = m.explain(rec(1, name="杰兴环保科技有限公司", address="济南槐荫区纪华大道647号5层517室"),
                     rec(2, name="杰兴环保科技有限公司", address="纪华大道647号517"))
    assert levels_of(same)["address"] == "exact"
    assert levels_of(same)["house_number"] == "close"     # 647 517 among 647 5 517
    # one district, two estates: the district is not evidence twice
    apart = m.explain(person(1, "孙欣", address="南京鼓楼区阳通新村11栋202室"),
                      person(2, "孙欣", address="南京鼓楼区合瑞新村13栋1604室"))
    assert levels_of(apart)["address"] == "far"
    assert levels_of(apart)["house_number"] == "different"


def test_one_street_name_in_two_cities_is_two_streets(ctx):
    """人民路 runs through most cities: two addresses that name two cities are 'far' however
    alike their words, and a namesake there with another birthday no longer links (the 1M
    scan bench linked 1,300 such namesakes before)."""
    m = Matcher()
    a = person(1, "高英", birthday="1970-03-12", city="天津", address="重庆建设路271号8栋2472室")
    b = person(2, "高英", birthday="1981-06-02", city="天津", address="沈阳建设路739号18栋690室")
    apart = m.explain(a, b)
    assert levels_of(apart)["address"] == "far"
    assert apart.total < m.link_threshold
    # the same street in the same city, or where one address names no city, is still exact
    here = m.explain(a, person(3, "高英", address="重庆建设路271号8栋2472室"))
    assert levels_of(here)["address"] == "exact"
    unnamed = m.explain(a, person(4, "高英", address="建设路271号8栋2472室"))
    assert levels_of(unnamed)["address"] == "exact"


def test_a_level_never_weighs_more_than_a_closer_one(ctx):
    """Weights fall along each ordered field's levels (EM's estimate of a rare level is capped
    by the level before it); the birthday's kinds of fault are not one scale."""
    model = default_model()
    for kind, fields in FIELDS.items():
        table = model.weights(kind)
        for j, f in enumerate(fields):
            row = table[j, :len(f.levels)]
            if f.ordered:
                assert all(row[i + 1] <= row[i] for i in range(len(row) - 1)), (kind, f.name)
    raw = default_model().to_json()
    f = next(f for f in raw["fields"]["person"] if f["field"] == "place")
    f["m"], f["u"] = [0.9, 0.09, 0.01], [0.05, 0.0001, 0.9499]   # province alone: log2 900
    capped = Model.from_json(raw).weights("person")
    j = [x.name for x in FIELDS["person"]].index("place")
    assert capped[j, 1] == capped[j, 0] == pytest.approx(math.log2(0.9 / 0.05))


@pytest.mark.parametrize("left, right, expected", [
    # a branch of the company
    (dict(name="华为技术有限公司", city="深圳"),
     dict(name="华为技术有限公司杭州分公司", city="杭州"), {"place": "different"}),
    # sibling companies: same first characters, same city
    (dict(name="华为技术有限公司", city="深圳"), dict(name="华为终端有限公司", city="深圳"),
     {"name": "far", "place": "same_city"}),
    # the same name in another city
    (dict(name="杭州百花贸易有限公司"), dict(name="南京百花贸易有限公司"),
     {"name": "exact", "place": "different"}),
])
def test_company_near_misses_do_not_link(ctx, left, right, expected):
    m = Matcher()
    ex = m.explain(rec(1, **left), rec(2, **right))
    assert expected.items() <= levels_of(ex).items()
    assert ex.total < m.link_threshold


def test_namesakes_and_family_members_do_not_link(ctx):
    m = Matcher()
    namesake = m.explain(
        person(1, "张伟", address="杭州市西湖区文三路100号", birthday="1985-03-12"),
        person(2, "张伟", address="南京市鼓楼区中山路8号", birthday="1990-07-01"))
    assert {"surname": "exact", "given": "exact", "birthday": "different",
            "address": "far"}.items() <= levels_of(namesake).items()
    assert namesake.total < m.link_threshold
    home = dict(address="杭州市西湖区文三路100号3幢201室", phone="0571-88001234")
    family = m.explain(person(3, "王建国", birthday="1960-05-01", **home),
                       person(4, "王丽", birthday="1988-11-23", **home))
    assert {"surname": "exact", "given": "far_han", "birthday": "different", "address": "exact",
            "house_number": "same", "phone": "exact",
            "household": "capped"}.items() <= levels_of(family).items()
    assert family.total < m.link_threshold


def test_two_chinese_given_names_no_typo_explains_weigh_more_against_a_link(ctx):
    """'far_han': two given names in Chinese characters two or more edits apart (建国 / 晓明,
    建国 / 丽) are not one name mistyped, and weigh more against a link than a Latin 'far'
    (a nickname, an initial) or two one-character names one edit apart (芳 / 丽)."""
    m = Matcher()
    for left, right, level in [("李建国", "李晓明", "far_han"), ("王建国", "王丽", "far_han"),
                               ("王芳", "王丽", "far"), ("john smith", "peter smith", "far"),
                               ("王建国", "王建明", "similar")]:
        assert levels_of(m.explain(person(1, left), person(2, right)))["given"] == level, \
            (left, right)
    weights = m.model.weights("person")
    j = [f.name for f in FIELDS["person"]].index("given")
    levels = FIELDS["person"][j].levels
    assert weights[j, levels.index("far_han")] < weights[j, levels.index("far")] - 2
    # the scan bench's false links: one surname, one birthday, one city, two homes
    a = person(1, "李建国", birthday="1980-05-01", city="杭州", address="杭州市文三路12号3幢201室")
    b = person(2, "李晓明", birthday="1980-05-01", city="杭州", address="杭州市学院路88号5幢1102室")
    apart = m.explain(a, b)
    assert {"surname": "exact", "given": "far_han", "birthday": "exact",
            "place": "same_city"}.items() <= levels_of(apart).items()
    assert m.review_threshold <= apart.total < m.link_threshold


def test_a_model_trained_before_far_han_weighs_it_as_far(ctx):
    """A deployment's stored model from before the level existed still loads (the entry check
    reads it on every save): 'far_han' takes the weight of 'far' it was split from."""
    raw = default_model().to_json()
    given = next(f for f in raw["fields"]["person"] if f["field"] == "given")
    given["levels"], given["m"], given["u"] = given["levels"][:-1], given["m"][:-1], given["u"][:-1]
    old = Model.from_json(raw)
    j = [f.name for f in FIELDS["person"]].index("given")
    table = old.weights("person")
    assert table[j, 6] == table[j, 5] == pytest.approx(math.log2(given["m"][5] / given["u"][5]))
    # any other difference in levels is still refused
    given["levels"] = given["levels"][:-1] + ["distant"]
    with pytest.raises(ValueError, match="person.given"):
        Model.from_json(raw)


def test_company_and_person_are_never_a_pair(ctx):
    m = Matcher()
    a, b = rec(1, name="张伟"), person(2, "张伟")
    assert m.explain(a, b).total == -math.inf and m.explain(a, b).parts == []
    assert m.score(a, [b, rec(3, name="张伟")])[0] == -np.inf


def _clean_model() -> Model:
    """Weights 3, 2, 1, 0, −1, −2 by level order, for an explanation known in advance."""
    base = default_model().to_json()
    for fields in base["fields"].values():
        for f in fields:
            f["m"] = [8.0 / 2 ** i for i in range(len(f["levels"]))]
            f["u"] = [1.0] * len(f["levels"])
    base["link_threshold"], base["review_threshold"] = 20.0, 10.0
    return Model.from_json(base)


def test_explain_text_exact(ctx):
    m = Matcher(_clean_model())
    ex = m.explain(rec(1, name="华为技术有限公司", city="深圳"),
                   rec(2, name="华为终端有限公司", city="深圳"))
    assert ex.text() == "名称 不同 50%（−1.0）· 组织形式相同（+3.0）· 同城（+3.0）→ 5.0"
    from flask_babel import force_locale

    with force_locale("en"):
        assert ex.text() == ("Name different 50%（−1.0）· Same legal form（+3.0）· "
                             "Same city（+3.0）→ 5.0")
    ex = m.explain(person(1, "杨兵丽", birthday="1985-03-12"),
                   person(2, "杨兵雨", birthday="1985-12-03"))
    assert ex.text() == "姓 相同（+3.0）· 名 部分相似 67%（−1.0）· 生日 日月颠倒（+0.0）→ 2.0"


def _generated(n: int, seed: int) -> list[dict]:
    rnd = random.Random(seed)
    cores = ["英荣润网络科技", "英容润网络科技", "华为技术", "华为终端", "百花贸易", "云帆科技"]
    names = ["杨兵丽", "杨兵雨", "张伟", "王丽", "john smith", "jon smith"]
    out = []
    for i in range(n):
        if rnd.random() < 0.5:
            out.append(rec(i + 1, name=rnd.choice(["杭州", "南京", ""]) + rnd.choice(cores)
                           + rnd.choice(["有限公司", "股份有限公司"]),
                           city=rnd.choice(["杭州", "南京", None]),
                           phone=rnd.choice([None, "0571-88001234", "0571-88001235"]),
                           industry=rnd.choice([None, "制造业", "教育"])))
        else:
            out.append(person(i + 1, rnd.choice(names),
                              birthday=rnd.choice([None, "1985-03-12", "1985-12-03",
                                                   "1986-03-12"]),
                              address=rnd.choice([None, "杭州市西湖区文三路100号3幢201室",
                                                  "杭州市西湖区文三路101号"]),
                              mobile=rnd.choice([None, "13800138000", "13900139000"]),
                              email=rnd.choice([None, "ab@x.cn", "ab@y.cn", "ac@x.cn"])))
    return out


def test_score_is_vectorised_explain(ctx):
    m = Matcher()
    records = _generated(120, seed=7)
    for query in records[:15]:
        totals = m.score(query, records)
        assert totals.shape == (len(records),)
        expected = [m.explain(query, c).total for c in records]
        assert np.allclose(totals, expected), query


@pytest.mark.parametrize("floor", ["review", "link", 0.0, 20.0])
def test_a_floor_keeps_every_total_that_reaches_it(ctx, floor):
    """The batch scan passes the review threshold as a floor: the pairs that reach it get
    exactly the totals they get without one, the others stay below it (−inf where the
    bound settled them before their text was compared), on every pair of a generated set."""
    m = Matcher()
    floor = {"review": m.review_threshold, "link": m.link_threshold}.get(floor, floor)
    cols = m.columns(_generated(300, seed=11) + _generated(200, seed=12))
    n = len(cols)
    upper = np.triu_indices(n, 1)
    pairs = upper[0].astype(np.int64) * n + upper[1]
    plain = np.concatenate([t for _, _, t in m.scored_pairs(cols, pairs, batch=7_000)])
    floored = np.concatenate([t for _, _, t in m.scored_pairs(cols, pairs, batch=7_000,
                                                              floor=floor)])
    reach = plain >= floor
    assert reach.any() and (~reach).any()
    assert np.array_equal(floored[reach], plain[reach])
    assert (floored[~reach] < floor).all()
    # the point of the floor: most pairs below it were settled before any similarity
    assert np.isneginf(floored[~reach & np.isfinite(plain)]).mean() > 0.5


def test_blocking_keys(ctx):
    m = Matcher()
    company = rec(1, name="杭州华星科技有限公司", mobile="13800138000", email="Info@HuaXing.cn",
                  address="杭州市西湖区文三路100号3幢")
    assert m.blocking_keys(company) == {
        ("name", "c:华星"), ("pinyin", "c:huaxin"), ("phone", "c:00138000"),
        ("email", "c:info@huaxing.cn"), ("email", "c:info@"), ("addr", "c:杭州|100 3")}
    someone = person(2, "杨兵丽", birthday="1985-03-12", address="杭州市西湖区文三路100号")
    assert m.blocking_keys(someone) == {
        ("name", "p:杨|兵"), ("pinyin", "p:yang|b"), ("birth", "p:y|19850312"),
        ("birth", "p:b|19850312"), ("addr", "p:|100")}


def test_link_finds_a_typo_inside_a_crowded_block(ctx):
    """1,500 companies share the first two characters (one block); the one-character variant
    of one of them is still found (windows over the name and the reversed name), and every
    pair comes once, ordered, at or above the review threshold."""
    m = Matcher()
    rnd = random.Random(3)
    pool = "润涧荣容星兴华为云帆科技贸易网络信息传媒电子机械建材食品物流医药化工服装"
    records = [rec(i + 1, name="英荣" + "".join(rnd.choice(pool) for _ in range(4))
                   + "有限公司", city="杭州") for i in range(1500)]
    target = record_of(records[700])["_core"]
    variant = target[:3] + ("某" if target[3] != "某" else "甲") + target[4:]
    records.append(rec(9999, name=variant + "有限公司", city="杭州"))
    pairs = list(m.link(records))
    assert all(a < b and t >= m.review_threshold for a, b, t in pairs)
    assert len({(a, b) for a, b, _ in pairs}) == len(pairs)
    found = {(a, b): t for a, b, t in pairs}
    assert found.get((701, 9999), -1) >= m.link_threshold


def test_em_recovers_known_m_and_u():
    rng = np.random.default_rng(5)
    sizes = [3, 2, 4, 3]
    m_true = [np.array([.8, .15, .05]), np.array([.9, .1]), np.array([.6, .2, .15, .05]),
              np.array([.7, .2, .1])]
    u_true = [np.array([.02, .08, .9]), np.array([.3, .7]), np.array([.01, .04, .15, .8]),
              np.array([.05, .15, .8])]
    n, share = 60_000, 0.1
    match = rng.random(n) < share
    levels = np.empty((n, len(sizes)), dtype=np.int8)
    for j, k in enumerate(sizes):
        levels[match, j] = rng.choice(k, match.sum(), p=m_true[j])
        levels[~match, j] = rng.choice(k, (~match).sum(), p=u_true[j])
    levels[rng.random(n) < 0.05, 1] = -1   # missing values count for nothing
    est = estimate(sizes, *patterns(levels))
    assert est.converged and est.pairs == n
    assert abs(est.prior - share) < 0.01
    for j in range(len(sizes)):
        assert np.abs(est.m[j] - m_true[j]).max() < 0.03
        assert np.abs(est.u[j] - u_true[j]).max() < 0.03


def test_default_model_matches_the_fields_and_says_where_it_came_from():
    model = default_model()
    for kind, fields in FIELDS.items():
        assert len(model.m[kind]) == len(fields)
    assert model.provenance["script"] == "scripts/train_matching_defaults.py"
    assert "FEBRL" in model.provenance["data"] and model.provenance["seed"] == 19
    assert model.review_threshold < model.link_threshold
