"""The field comparisons of the scorer: each compares one field of many record pairs at once
(numpy, rapidfuzz cpdist) and answers a level per pair (an index into the field's LEVELS, -1
when either side is missing) and, for text, the similarity 0–1 shown in an explanation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
from rapidfuzz import fuzz
from rapidfuzz.distance import JaroWinkler, Levenshtein
from rapidfuzz.process import cpdist

Cols = dict[str, np.ndarray]
Result = tuple[np.ndarray, Optional[np.ndarray]]
MISSING = -1


@dataclass(frozen=True)
class Field:
    name: str
    levels: tuple[str, ...]
    compare: Callable[[Cols, Cols], Result]
    # Levels from the closest agreement to the farthest: a level never weighs more than one
    # before it (see model.Model.weights). The birthday's are not one scale (a missing year,
    # a year off by one and swapped day and month are three kinds of fault, not three degrees).
    ordered: bool = True
    # The text column whose equal hashes make the first level (and whose absence makes the
    # field missing), for the fields compared by similarity: before any similarity is
    # computed, a pair's total is bounded by the first level where the hashes agree and by
    # the best other level where they do not (see matcher.scored_pairs' floor).
    exact_key: Optional[str] = None


# Text is compared for equality by each value's 64-bit hash (column "key#", 0 = missing),
# computed once per record: comparing two int64 arrays costs a nanosecond a pair, comparing
# two arrays of str objects thirty (two different values with one hash: about 1 in 10^19).
def _eq(a: Cols, b: Cols, key: str) -> np.ndarray:
    return a[key + "#"] == b[key + "#"]


def _has(a: Cols, b: Cols, key: str) -> np.ndarray:
    return (a[key + "#"] != 0) & (b[key + "#"] != 0)


PARALLEL_PAIRS = 20_000   # from this many pairs cpdist's threads pay for themselves


def _sim(a: np.ndarray, b: np.ndarray, scorer) -> np.ndarray:
    if not len(a):
        return np.zeros(0, dtype=np.float32)
    return cpdist(a, b, scorer=scorer, dtype=np.float32,
                  workers=-1 if len(a) >= PARALLEL_PAIRS else 1)


def _pick(conditions: list[np.ndarray], present: np.ndarray) -> np.ndarray:
    """The first level whose condition holds (the last level otherwise), MISSING where absent."""
    levels = np.select(conditions, np.arange(len(conditions)), default=len(conditions))
    return np.where(present, levels, MISSING).astype(np.int8)


def _company_name(a: Cols, b: Cols) -> Result:
    """Edit distance relative to length on the core (one wrong character of seven: 86 %), and
    the pinyin of the core for homophones (同音字). Cores whose numbers differ (杭州1号网络 /
    杭州2号网络, 公司001 / 公司002) are 'far' however close the rest is: a number is not
    mistyped into another one as often as a character is, and numbered names are usually
    numbered because they are several."""
    x, y = a["_core"], b["_core"]
    sim = _sim(x, y, Levenshtein.normalized_similarity)
    lx, ly = a["_core@"], b["_core@"]
    same_py = _eq(a, b, "_pinyin") & (a["_pinyin#"] != 0)
    same_num = _eq(a, b, "_core_num")
    # One wrong character is 'close' in a core of three or four too (英荣润 / 英容润: 67 %);
    # two of five wrong (辉通创物流 / 隆通卓物流: 60 %) is two other companies of one trade.
    one_edit = (_distance(sim, lx, ly) <= 1) & (lx >= 3) & (ly >= 3)
    close = ((sim >= 0.8) | one_edit) & same_num
    # the pinyin's similarity decides only 'similar' against 'far'
    py_close = np.zeros(len(x), dtype=bool)
    ask = np.flatnonzero(same_num & ~close & ~same_py & (sim < 0.7))
    if len(ask):
        py_close[ask] = _sim(a["_pinyin"][ask], b["_pinyin"][ask],
                             Levenshtein.normalized_similarity) >= 0.85
    return _pick([_eq(a, b, "_core"), same_py & same_num, close,
                  ((sim >= 0.7) | py_close) & same_num],
                 _has(a, b, "_core")), sim


def _distance(sim: np.ndarray, lx: np.ndarray, ly: np.ndarray) -> np.ndarray:
    """The Levenshtein distance from its normalised similarity, 1 − distance / longer length
    (a second pass over the strings would cost as much as the first)."""
    return np.rint((1.0 - sim.astype(np.float64)) * np.maximum(lx, ly)).astype(np.int64)


def _swapped_names(a: Cols, b: Cols, ask: np.ndarray) -> np.ndarray:
    """Surname and given name written the other way round ("tara newport" / "newport tara"),
    each within Jaro–Winkler 0.9 of the other's; asked only of the pairs at `ask`."""
    out = np.zeros(len(ask), dtype=bool)
    rows = np.flatnonzero(ask & ~_eq(a, b, "_surname") & _has(a, b, "_given"))
    if len(rows):
        cross_1 = _sim(a["_surname"][rows], b["_given"][rows], JaroWinkler.normalized_similarity)
        cross_2 = _sim(a["_given"][rows], b["_surname"][rows], JaroWinkler.normalized_similarity)
        out[rows] = (cross_1 >= 0.9) & (cross_2 >= 0.9)
    return out


def _pinyin_reversed(a: Cols, b: Cols) -> np.ndarray:
    """One name in characters, the other in pinyin read the other way (王芳 / "Wang Fang": a
    Latin name is split given name first): the same name, as a homophone is, not a swap."""
    return (a["_surname_py#"] == b["_given_py#"]) & (a["_given_py#"] == b["_surname_py#"]) \
        & (a["_surname_py#"] != 0) & (a["_given_py#"] != 0)


def _person_part(key: str) -> Callable[[Cols, Cols], Result]:
    """Jaro–Winkler on a surname or given name; one edit apart counts as close (杨兵丽 /
    杨兵雨: the given names 兵丽 / 兵雨 are 67 % by Jaro–Winkler, too short to judge by it)."""
    def compare(a: Cols, b: Cols) -> Result:
        x, y = a[key], b[key]
        jw = _sim(x, y, JaroWinkler.normalized_similarity)
        lx, ly = a[key + "@"], b[key + "@"]
        exact = _eq(a, b, key)
        # one edit apart matters only where Jaro–Winkler alone does not make the pair close
        one_edit = np.zeros(len(x), dtype=bool)
        ask = np.flatnonzero(~exact & (jw < 0.9) & (lx >= 2) & (ly >= 2))
        if len(ask):
            one_edit[ask] = _sim(x[ask], y[ask], Levenshtein.distance) <= 1
        # A Chinese given name is one or two characters drawn from a few hundred common ones:
        # two of them one character apart (娜睿 / 娜帅), or two one-character names that sound
        # alike (宇 / 雨), are as often two people as one name mistyped, so they are only
        # 'similar' there; a longer name (katherine / katharine) one edit apart is 'close'.
        short_han = a["_given_han"] & (lx <= 2) & (ly <= 2) \
            if key == "_given" else np.zeros(len(x), dtype=bool)
        same_py = (_eq(a, b, key + "_py") & (a[key + "_py#"] != 0)) | _pinyin_reversed(a, b)
        weak_py = same_py & short_han & (lx == 1)
        swapped = _swapped_names(a, b, ~exact & ~(same_py & ~weak_py))
        conditions = [exact, same_py & ~weak_py, swapped,
                      ((jw >= 0.9) | one_edit) & ~short_han,
                      (jw >= 0.75) | one_edit | weak_py]
        if key == "_given":
            conditions.append(~_han_apart(a, b, np.logical_or.reduce(conditions)))
        return _pick(conditions, _has(a, b, key)), jw
    return compare


def _han_apart(a: Cols, b: Cols, nearer: np.ndarray) -> np.ndarray:
    """Two given names in Chinese characters that no single mistyped character explains (two
    or more edits apart; 'far_han', the level after 'far'): entry mistypes or mishears one
    character of a Chinese name, it does not put in a wholly other name as Latin-script records
    do (nicknames, initials, a middle name for the first: FEBRL's 'far' duplicates). Weighed as
    one level, twins, siblings and namesakes born on one day in one city weighed as little
    against a link as a nickname does. One-character names one edit apart stay 'far'.
    `nearer`: the pairs already at a closer level."""
    out = a["_given_han"] & b["_given_han"] & ~nearer & _has(a, b, "_given")
    rows = np.flatnonzero(out)
    if len(rows):
        out[rows] = _sim(a["_given"][rows], b["_given"][rows], Levenshtein.distance) >= 2
    return out


def _place(a: Cols, b: Cols) -> Result:
    """The city (a company's region in its name when no city is given), else the province."""
    city = _has(a, b, "_city")
    province = _has(a, b, "_province")
    same_city = city & _eq(a, b, "_city")
    same_province = province & _eq(a, b, "_province")
    return _pick([same_city, same_province & ~same_city], city | province), None


def _address_words(a: Cols, b: Cols) -> Result:
    """The address's words after its city and district (records.street_of): the place field
    weighs the place. Two addresses that name two cities are two streets however alike their
    words (人民路 and 黄河路 run through most cities)."""
    x, y = a["_street"], b["_street"]
    sim = _sim(x, y, Levenshtein.normalized_similarity)
    apart = _has(a, b, "_street_city") & ~_eq(a, b, "_street_city")
    return _pick([_eq(a, b, "_street") & ~apart, (sim >= 0.85) & ~apart, (sim >= 0.6) & ~apart],
                 _has(a, b, "_street")), sim


def _house_numbers(a: Cols, b: Cols) -> Result:
    """The numbers of the address (house, building, room, postcode) apart from its words: two
    addresses on one road differ only there."""
    x, y = a["_digits"], b["_digits"]
    sim = _sim(x, y, Levenshtein.normalized_similarity)
    first = _eq(a, b, "_num_first")
    last = _eq(a, b, "_num_last")
    same = _eq(a, b, "_digits")
    # the numbers of one all among the other's (27 2904 / 27 29 2904): a floor or a building
    # left out, as often as it is written. Asked only where the first or the last number
    # agrees (a left-out floor keeps both ends): a few pairs in a thousand, not all of them.
    subset = np.zeros(len(x), dtype=bool)
    ask = np.flatnonzero((first | last) & ~same & (sim < 0.75))
    if len(ask):
        subset[ask] = _sim(x[ask], y[ask], fuzz.token_set_ratio) >= 100
    return _pick([same, subset | (sim >= 0.75), first | last], _has(a, b, "_digits")), sim


def _number(key: str) -> Callable[[Cols, Cols], Result]:
    def compare(a: Cols, b: Cols) -> Result:
        return _pick([_eq(a, b, key), _eq(a, b, key + "_tail")], _has(a, b, key)), None
    return compare


def _email(a: Cols, b: Cols) -> Result:
    jw = _sim(a["_email_local"], b["_email_local"], JaroWinkler.normalized_similarity)
    return _pick([_eq(a, b, "_email"), _eq(a, b, "_email_local"), jw >= 0.9],
                 _has(a, b, "_email")), jw


def _birthday(a: Cols, b: Cols) -> Result:
    """Parts compared: exact; month and day equal with a year missing on one side; the year
    off by one; day and month swapped (03-12 / 12-03); two of the three parts equal."""
    ya, ma, da = a["_by"], a["_bm"], a["_bd"]
    yb, mb, db = b["_by"], b["_bm"], b["_bd"]
    present = (ma > 0) & (da > 0) & (mb > 0) & (db > 0)
    md = (ma == mb) & (da == db)
    years = (ya > 0) & (yb > 0)
    same_year = years & (ya == yb)
    swapped = (ma == db) & (da == mb) & ~md & (same_year | ~years)
    parts = (ya == yb).astype(np.int8) + (ma == mb) + (da == db)
    return _pick([md & same_year, md & ~years, md & (np.abs(ya - yb) == 1), swapped,
                  years & (parts >= 2)], present), None


def _same(key: str) -> Callable[[Cols, Cols], Result]:
    def compare(a: Cols, b: Cols) -> Result:
        return _pick([_eq(a, b, key)], _has(a, b, key)), None
    return compare


_NAME_PARTS = ("exact", "homophone", "swapped", "close", "similar", "far")
_PLACE = Field("place", ("same_city", "same_province", "different"), _place)
_ADDRESS = Field("address", ("exact", "close", "similar", "far"), _address_words,
                 exact_key="_street")
_NUMBERS = Field("house_number", ("same", "close", "partial", "different"), _house_numbers,
                 exact_key="_digits")
_PHONE = Field("phone", ("exact", "tail", "different"), _number("_phone"))
_MOBILE = Field("mobile", ("exact", "tail", "different"), _number("_mobile"))
_EMAIL = Field("email", ("exact", "local", "close", "different"), _email, exact_key="_email")

COMPANY_FIELDS: tuple[Field, ...] = (
    Field("name", ("exact", "homophone", "close", "similar", "far"), _company_name,
          exact_key="_core"),
    Field("legal_form", ("same", "different"), _same("_legal")),
    _PLACE, _ADDRESS, _NUMBERS, _PHONE, _MOBILE, _EMAIL,
    Field("industry", ("same", "different"), _same("_industry")),
)
PERSON_FIELDS: tuple[Field, ...] = (
    Field("surname", _NAME_PARTS, _person_part("_surname"), exact_key="_surname"),
    Field("given", _NAME_PARTS + ("far_han",), _person_part("_given"), exact_key="_given"),
    Field("birthday", ("exact", "month_day", "year_off", "swapped", "partial", "different"),
          _birthday, ordered=False),
    _PLACE, _ADDRESS, _NUMBERS, _PHONE, _MOBILE, _EMAIL,
)
FIELDS = {"company": COMPANY_FIELDS, "person": PERSON_FIELDS}
# The order in which a batch with a floor compares the text fields: the one that most often
# settles a pair below the floor first (a company's name; a person's address and numbers, as
# candidate persons mostly share a surname and often a given name).
TEXT_ORDER = {"company": ("name", "address", "house_number", "email"),
              "person": ("address", "house_number", "surname", "given", "email")}
assert all(set(TEXT_ORDER[k]) == {f.name for f in FIELDS[k] if f.exact_key} for k in FIELDS)
_SHARED = ("_city", "_province", "_street", "_street_city", "_digits", "_num_first",
           "_num_last", "_phone", "_phone_tail", "_mobile", "_mobile_tail", "_email",
           "_email_local")
# The columns each type's comparisons read (a batch takes only these).
NEEDS = {"company": ("_core", "_core_num", "_pinyin", "_legal", "_industry") + _SHARED,
         "person": ("_surname", "_given", "_surname_py", "_given_py", "_by", "_bm", "_bd")
         + _SHARED}


def compare_all(kind: str, a: Cols, b: Cols) -> tuple[np.ndarray, list[Optional[np.ndarray]]]:
    """The level matrix (pairs × fields) of one customer type, and each field's similarity."""
    fields = FIELDS[kind]
    n = a.size if hasattr(a, "size") else len(a["_by"])
    levels = np.empty((n, len(fields)), dtype=np.int8)
    sims = []
    for j, field in enumerate(fields):
        levels[:, j], sim = field.compare(a, b)
        sims.append(sim)
    return levels, sims
