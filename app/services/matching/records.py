"""A customer as the matcher sees it: the stored columns (record_of) and, for a batch, the same
values column by column (Columns), with the extras the comparisons want derived once."""
from __future__ import annotations

import re
from array import array
from functools import lru_cache
from typing import Any, Callable, Iterable, Mapping, Optional

import numpy as np

from app.services.normalize import fold_text, region_of

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


def record_of(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """The stored columns of a customer (missing keys None) plus the derived extras, keyed with
    a leading underscore: _pinyin (companies' core too), _surname/_given, _city, _words and
    _digits of the address, _mobile_tail/_phone_tail, _email_local."""
    rec = {key: mapping.get(key) for key in RECORD_FIELDS}
    if "_pinyin" in mapping:  # already a record
        return dict(mapping)
    person = rec["customer_type"] == "person"
    core = _text(rec["name_core"]) or (_text(rec["name"]) if person else "")
    rec["_core"] = core
    rec["_pinyin"] = (_text(rec["name_pinyin"]) or pinyin_of(core)) if person else \
        pinyin_of(core)
    surname, given = split_person_name(core) if person else ("", "")
    rec["_surname"], rec["_given"] = surname, given
    rec["_surname_py"], rec["_given_py"] = pinyin_of(surname), pinyin_of(given)
    city = _place(_text(rec["city"])) if rec["city"] else ""
    rec["_city"] = city or _text(rec["name_region"])
    rec["_province"] = _place(_text(rec["province"])) if rec["province"] else ""
    address = _text(rec["address_norm"])
    numbers = _DIGITS.findall(address)
    rec["_digits"] = " ".join(numbers)
    # the first number (the house, 科技园路1号) and the last (room, postcode) on their own
    rec["_num_first"], rec["_num_last"] = (numbers[0], numbers[-1]) if numbers else ("", "")
    rec["_words"] = _DIGITS.sub("", address)
    rec["_mobile"], rec["_phone"] = _text(rec["mobile_e164"]), _text(rec["phone_e164"])
    rec["_mobile_tail"] = _tail(rec["_mobile"]) if rec["_mobile"] else ""
    rec["_phone_tail"] = _tail(rec["_phone"]) if rec["_phone"] else ""
    email = _text(rec["email_norm"])
    rec["_email"], rec["_email_local"] = email, email.split("@")[0]
    rec["_legal"] = _text(rec["legal_form"])
    rec["_industry"] = fold_text(_text(rec["industry"])) if rec["industry"] else ""
    rec["_by"], rec["_bm"], rec["_bd"] = (int(rec[k] or 0) for k in
                                          ("birth_year", "birth_month", "birth_day"))
    return rec


_TEXT_COLUMNS = ("_core", "_pinyin", "_surname", "_given", "_surname_py", "_given_py", "_city",
                 "_province", "_digits", "_num_first", "_num_last", "_words", "_mobile", "_phone", "_mobile_tail",
                 "_phone_tail", "_email", "_email_local", "_legal", "_industry")
_INT_COLUMNS = ("_by", "_bm", "_bd")


class Columns:
    """Records column by column (numpy arrays): what the vectorised comparisons index."""

    def __init__(self, records: Iterable[Mapping[str, Any]],
                 keys_of: Optional[Callable[[dict], set[tuple[str, str]]]] = None):
        """`keys_of`: also collect each record's blocking keys, as (pass -> (hash of the key,
        row) arrays): a 64-bit hash instead of the text keeps 1M records' keys in a few
        dozen megabytes (a collision would only add a candidate pair)."""
        ids, persons = [], []
        self.blocks: dict[str, tuple[array, array]] = {}
        text: dict[str, list] = {k: [] for k in _TEXT_COLUMNS}
        ints: dict[str, list] = {k: [] for k in _INT_COLUMNS}
        for raw in records:
            rec = record_of(raw)  # one record at a time: a stream of 1M rows is never a list
            ids.append(rec["id"] if rec["id"] is not None else len(ids))
            persons.append(rec["customer_type"] == "person")
            for key, values in text.items():
                values.append(rec[key])
            for key, values in ints.items():
                values.append(rec[key])
            if keys_of is not None:
                for pass_name, key in keys_of(rec):
                    hashes, rows = self.blocks.setdefault(pass_name, (array("q"), array("q")))
                    hashes.append(hash(key))
                    rows.append(len(ids) - 1)
        self.ids = np.asarray(ids, dtype=np.int64)
        self.person = np.asarray(persons, dtype=bool)
        self.cols: dict[str, np.ndarray] = {}
        for key, values in text.items():
            arr = np.empty(len(values), dtype=object)
            arr[:] = values
            self.cols[key] = arr
        for key, values in ints.items():
            self.cols[key] = np.asarray(values, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """The columns of the rows at `index` (one side of a batch of pairs)."""
        return {key: col[index] for key, col in self.cols.items()}


def repeat(rec: Mapping[str, Any], n: int) -> dict[str, np.ndarray]:
    """One record's columns repeated n times (the query side of score())."""
    rec = record_of(rec)
    out = {}
    for key in _TEXT_COLUMNS:
        arr = np.empty(n, dtype=object)
        arr[:] = [rec[key]] * n
        out[key] = arr
    for key in _INT_COLUMNS:
        out[key] = np.full(n, rec[key], dtype=np.int32)
    return out


