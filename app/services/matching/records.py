"""A customer as the matcher sees it: the stored columns (record_of) and, for a batch, the same
values column by column (Columns), with the extras the comparisons want derived once."""
from __future__ import annotations

import operator
import re
from array import array
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

from app.services.normalize import _strip_leading_region, fold_text, region_of

# The stored columns a record holds (missing keys are None).
RECORD_FIELDS = ("id", "customer_type", "name", "name_core", "name_region", "legal_form",
                 "name_pinyin", "province", "city", "address_norm", "mobile_e164",
                 "phone_e164", "email_norm", "birth_year", "birth_month", "birth_day",
                 "birthday_lunar", "industry")

# Two-character surnames (复姓): 欧阳修 is 欧阳 + 修, not 欧 + 阳修.
_COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 诸葛 上官 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤 "
    "南宫 百里 呼延 西门 东郭 澹台 公羊 万俟 闻人 申屠 钟离 宗政 濮阳 太史 司空".split())
_HAN = re.compile(r"[\u4e00-\u9fff]")
_DIGITS = re.compile(r"\d+")
_NOT_DIGIT = re.compile(r"\D")


@lru_cache(maxsize=65536)
def _char_pinyin(char: str) -> str:
    from pypinyin import lazy_pinyin

    return "".join(lazy_pinyin(char))


@lru_cache(maxsize=200_000)
def pinyin_of(text: str) -> str:
    """zhongxing for 中兴 (first reading of each character, cached per character: a name is
    spelt the same way wherever it occurs, which is what homophones are compared on)."""
    return re.sub(r"[^a-z]", "", "".join(_char_pinyin(c) if _HAN.match(c) else c
                                         for c in text.lower()))


def split_person_name(name: str) -> tuple[str, str]:
    """(surname, given): 杨兵丽 -> (杨, 兵丽), 欧阳修 -> (欧阳, 修), "john smith" -> (smith, john)."""
    if not name:
        return "", ""
    if _HAN.match(name):
        cut = 2 if name[:2] in _COMPOUND_SURNAMES and len(name) > 2 else 1
        return name[:cut], name[cut:]
    words = name.split()
    return (words[-1], " ".join(words[:-1])) if len(words) > 1 else (name, "")


@lru_cache(maxsize=4096)
def _place(text: str) -> str:
    folded = fold_text(text)
    return region_of(folded) or folded


def _tail(number: str) -> str:
    """The last 8 digits of an E.164 number (an extension dropped): the same line written with
    or without its area code."""
    return _NOT_DIGIT.sub("", number.split(";")[0])[-8:]


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _cached(fn: Callable[[str], Any], values: list[str]) -> list:
    """fn over a column, once per distinct value (a column repeats cities, forms, names)."""
    memo: dict[str, Any] = {}
    out = []
    for v in values:
        r = memo.get(v)
        if r is None:
            r = memo[v] = fn(v)
        out.append(r)
    return out


# A number with the word that says what it numbers (号, 栋, 层, 室 …): written or left out
# (27号2904 / 27号29层2904室) as the writer pleases, so both belong to the numbers, not the words.
_NUMBER_WORDS = re.compile(r"\d+(?:号楼|号院|单元|号|栋|幢|层|楼|室|座|户|弄|巷)?")


def _split_address(address: str) -> tuple[str, str, str, str]:
    """(numbers joined, first number, last number, words): the numbers of an address (house,
    building, room, postcode) apart from its words."""
    numbers = _DIGITS.findall(address)
    if not numbers:
        return "", "", "", address
    return " ".join(numbers), numbers[0], numbers[-1], _DIGITS.sub("", address)


# A district (锦江区, 浦东新区, 市中区, 余杭县) at the start of what follows the city; not an
# estate or a campus that ends in the same character (和明小区, 科技园区).
_DISTRICT = re.compile(r"^[\u4e00-\u9fff]{1,4}?(?:区|县|旗)")
_NOT_DISTRICT = ("小区", "社区", "园区", "校区", "厂区", "景区", "街区", "片区", "营区", "矿区")


def street_of(address: str) -> str:
    """The words of an address after its city and district, without its numbers and their
    words (成都锦江区盛中花园22栋901室 -> 盛中花园): the place is the place field's to weigh and
    the numbers the house-number field's, once each; left in, two addresses in one district
    look partly alike however far apart they are, and an address written with the district
    or the floor looks unlike the same one written without."""
    return street_and_city(address)[0]


def street_and_city(address: str) -> tuple[str, str]:
    """(street_of(address), the city the address starts with, '' when it names none): the
    same street name in two cities (成都黄河路 / 郑州黄河路) is two streets."""
    city, rest = _strip_leading_region(_NUMBER_WORDS.sub("", address), 1)
    district = _DISTRICT.match(rest)
    if district and not district.group().endswith(_NOT_DISTRICT) and len(rest) > district.end():
        rest = rest[district.end():]
    return rest, city or ""


def _person_parts(core: str) -> tuple[str, str, str, str]:
    surname, given = split_person_name(core)
    return surname, given, pinyin_of(surname), pinyin_of(given)


def derive(raw: dict[str, list]) -> dict[str, list]:
    """The matcher's columns from the stored columns (lists of equal length, None = missing):
    _core, _pinyin (companies' core too), _surname/_given and their pinyin, _city (a
    company's region in its name when no city), _province, the address's _digits, _num_first,
    _num_last and _words, phones and their last 8 digits, e-mail and its user name, legal
    form, industry, birthday parts (0 = missing). One code path for one record and a batch."""
    n = len(raw["id"])
    person = [t == "person" for t in raw["customer_type"]]
    text = {k: [_text(v) for v in raw[k]] for k in (
        "name_core", "name", "name_pinyin", "city", "name_region", "province", "address_norm",
        "mobile_e164", "phone_e164", "email_norm", "legal_form", "industry")}
    core = [c or (nm if p else "") for c, nm, p in zip(text["name_core"], text["name"], person)]
    pinyin = _cached(pinyin_of, core)
    pinyin = [(stored or py) if p else py
              for py, stored, p in zip(pinyin, text["name_pinyin"], person)]
    parts: list[tuple[str, str, str, str]] = [("", "", "", "")] * n
    memo_parts: dict[str, tuple] = {}
    for i, (c, p) in enumerate(zip(core, person)):
        if p:
            parts[i] = memo_parts.get(c) or memo_parts.setdefault(c, _person_parts(c))
    city = _cached(lambda v: _place(v) if v else "", text["city"])
    city = [c or r for c, r in zip(city, text["name_region"])]
    address = _cached(_split_address, text["address_norm"])
    streets = _cached(street_and_city, text["address_norm"])
    email = text["email_norm"]
    out: dict[str, list] = {
        "_core": core, "_pinyin": pinyin,
        # The numbers in a company's name (杭州1号 / 杭州2号): names that differ in them are
        # different companies, however close the rest is.
        "_core_num": [" ".join(_DIGITS.findall(c)) if not p else "" for c, p in zip(core, person)],
        "_surname": [x[0] for x in parts], "_given": [x[1] for x in parts],
        "_surname_py": [x[2] for x in parts], "_given_py": [x[3] for x in parts],
        "_city": city, "_province": _cached(lambda v: _place(v) if v else "", text["province"]),
        "_digits": [x[0] for x in address], "_num_first": [x[1] for x in address],
        "_num_last": [x[2] for x in address], "_words": [x[3] for x in address],
        "_street": [x[0] for x in streets], "_street_city": [x[1] for x in streets],
        "_mobile": text["mobile_e164"], "_phone": text["phone_e164"],
        "_mobile_tail": [_tail(v) if v else "" for v in text["mobile_e164"]],
        "_phone_tail": [_tail(v) if v else "" for v in text["phone_e164"]],
        "_email": email, "_email_local": [e.split("@")[0] for e in email],
        "_legal": text["legal_form"],
        "_industry": _cached(lambda v: fold_text(v) if v else "", text["industry"]),
    }
    for key, src in (("_by", "birth_year"), ("_bm", "birth_month"), ("_bd", "birth_day")):
        out[key] = [int(v or 0) for v in raw[src]]
    return out


def record_of(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The stored columns of a customer (missing keys None) plus the derived extras, keyed with
    a leading underscore (see derive)."""
    if "_pinyin" in mapping:  # already a record
        return dict(mapping)
    rec = {key: mapping.get(key) for key in RECORD_FIELDS}
    derived = derive({key: [value] for key, value in rec.items()})
    rec.update({key: values[0] for key, values in derived.items()})
    return rec


_TEXT_COLUMNS = ("_core", "_core_num", "_pinyin", "_surname", "_given", "_surname_py",
                 "_given_py", "_city", "_province", "_digits", "_num_first", "_num_last",
                 "_words", "_street", "_street_city", "_mobile", "_phone", "_mobile_tail",
                 "_phone_tail", "_email", "_email_local", "_legal", "_industry")
_INT_COLUMNS = ("_by", "_bm", "_bd")
# Text columns whose lengths the comparisons need (column "key@"), counted once per record.
_LENGTH_COLUMNS = ("_core", "_surname", "_given")
CHUNK = 50_000    # records derived together when a stream is turned into columns


class Columns:
    """Records column by column (numpy arrays): what the vectorised comparisons index."""

    def __init__(self, records: Iterable[Mapping[str, Any]],
                 keys_of: Optional[Callable[[dict[str, list]], Iterable[tuple[str, list]]]]
                 = None):
        """`keys_of`: also collect the blocking keys (blocking.column_keys: per pass, each
        row's keys), as pass -> (hash of the key, row) arrays: a 64-bit hash instead of the
        text keeps 1M records' keys in a few dozen megabytes (a collision would only add a
        candidate pair). A stream is read CHUNK records at a time, never held whole."""
        ids: list = []
        persons: list = []
        text: dict[str, list] = {k: [] for k in _TEXT_COLUMNS}
        ints: dict[str, array] = {k: array("i") for k in _INT_COLUMNS}
        self.blocks: dict[str, tuple[array, array]] = {}
        getter = operator.itemgetter(*RECORD_FIELDS)
        chunk: list[tuple] = []

        def flush() -> None:
            if not chunk:
                return
            raw = dict(zip(RECORD_FIELDS, map(list, zip(*chunk))))
            offset = len(ids)
            raw["id"] = [offset + i if v is None else v for i, v in enumerate(raw["id"])]
            derived = derive(raw)
            ids.extend(raw["id"])
            persons.extend(t == "person" for t in raw["customer_type"])
            for key, values in text.items():
                values.extend(derived[key])
            for key, values in ints.items():
                values.extend(derived[key])
            if keys_of is not None:
                for pass_name, row_keys in keys_of(dict(derived, customer_type=raw[
                        "customer_type"])):
                    hashes, rows = self.blocks.setdefault(pass_name, (array("q"), array("q")))
                    for i, keys in enumerate(row_keys):
                        for key in keys:
                            hashes.append(hash(key))
                            rows.append(offset + i)
            chunk.clear()

        for raw_record in records:
            if "_pinyin" in raw_record:
                raw_record = {k: raw_record.get(k) for k in RECORD_FIELDS}
            try:
                chunk.append(getter(raw_record))
            except KeyError:  # a mapping without every stored column
                chunk.append(tuple(raw_record.get(k) for k in RECORD_FIELDS))
            if len(chunk) >= CHUNK:
                flush()
        flush()
        self.ids = np.asarray(ids, dtype=np.int64)
        self.person = np.asarray(persons, dtype=bool)
        self.cols: dict[str, np.ndarray] = {}
        for key, values in text.items():
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            self.cols[key] = arr
            self.cols[key + "#"] = _hashes(values)
        for key, values in ints.items():
            self.cols[key] = np.frombuffer(values, dtype=np.int32).copy()
        self.cols.update(_extras(self.cols))

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray, keys: Optional[Iterable[str]] = None) -> "Gathered":
        """The columns of the rows at `index`: one side of a batch of pairs. Each column is
        gathered when a comparison first reads it: most comparisons read only the 64-bit
        hashes, and gathering an array of str objects costs a reference count per row (a
        third of the scoring time when every column was gathered up front). `keys` is kept
        for the callers that name what they read; every column is available either way."""
        return Gathered(self.cols, index)


class Gathered(dict):
    """Columns of some rows of a Columns, gathered on first read (see Columns.take)."""

    def __init__(self, cols: dict[str, np.ndarray], index: np.ndarray):
        super().__init__()
        self._cols, self._index = cols, index
        self.size = len(index)

    def __missing__(self, key: str) -> np.ndarray:
        value = self[key] = self._cols[key][self._index]
        return value


def _extras(cols: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Lengths of the texts compared by edit distance ("key@") and whether a given name is
    in Chinese characters ("_given_han"), derived once per record rather than per pair."""
    out = {}
    for key in _LENGTH_COLUMNS:
        values = cols[key]
        out[key + "@"] = np.fromiter(map(len, values), dtype=np.int32, count=len(values))
    out["_given_han"] = np.fromiter((bool(t) and "\u4e00" <= t[0] <= "\u9fff"
                                     for t in cols["_given"]), dtype=bool,
                                    count=len(cols["_given"]))
    return out


def _hashes(values: list[str]) -> np.ndarray:
    """Each value's hash, 0 for the empty value (what the comparisons test equality on)."""
    return np.fromiter((hash(v) or 1 if v else 0 for v in values), dtype=np.int64,
                       count=len(values))


def repeat(rec: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """One record's columns repeated n times (the query side of score())."""
    rec = record_of(rec)
    out = {}
    for key in _TEXT_COLUMNS:
        arr = np.empty(n, dtype=object)
        arr[:] = [rec[key]] * n
        out[key] = arr
        out[key + "#"] = np.full(n, _hashes([rec[key]])[0], dtype=np.int64)
    for key in _INT_COLUMNS:
        out[key] = np.full(n, rec[key], dtype=np.int32)
    out.update(_extras(out))
    return out
