"""Blocking: which record pairs the scorer sees at all.

Each pass gives a record one or more keys; records sharing a key in a pass are candidate
pairs. Passes (blocking_keys): 'name' (the core's first two characters; a person's surname
and the given name's first character), 'pinyin' (the same in pinyin: a homophone written
with another first character), 'phone' (a mobile's or landline's last 8 digits), 'email'
(the address; its user name), 'addr' (city and the address's numbers; city and the start of
its words when it has no number), 'birth' (the full birthday with the surname's initial,
and with the given name's: a mistyped or swapped name still meets its duplicate). Then three sorted-neighbourhood passes over each customer type (by the name's
pinyin, by the reversed name, by the address) catch what every key missed.

Crowded blocks cannot blow up: in every pass the members of a block are sorted (by the name,
or for the name pass also by the reversed name) and each member is paired with its next
WINDOW−1 members only (NAME_WINDOW−1 in each of the name pass's two orders). A block of at
most WINDOW members is therefore compared in full and a bigger one in overlapping sorted
windows, so a pass costs at most n·(WINDOW−1) pairs whatever the data; the order is a total order (ties broken by row), so the pairs are the
same on every run. Two strings one character apart sort next to each other by the name or,
when the difference is early, by the reversed name.
"""
from __future__ import annotations

from typing import Iterator, Optional

import numpy as np

from app.services.matching.records import Columns, record_of

WINDOW = 20            # members a record is paired with in a block (sorted), per pass
NAME_WINDOW = 10       # the same for the name pass, which runs in two orders
NEIGHBOURS = 5         # sorted-neighbourhood window of the type-wide passes
PASSES = ("name", "pinyin", "phone", "email", "addr", "birth")


def column_keys(c: dict[str, list]) -> Iterator[tuple[str, list[list[str]]]]:
    """Per pass, each row's blocking keys, from derived columns (records.derive plus
    customer_type); every key starts with the customer type, so a company and a person never
    share one."""
    kinds = ["p" if t == "person" else "c" for t in c["customer_type"]]
    name, pinyin, birth = [], [], []
    for k, core, sur, giv, py, sur_py, giv_py, y, m, d in zip(
            kinds, c["_core"], c["_surname"], c["_given"], c["_pinyin"], c["_surname_py"],
            c["_given_py"], c["_by"], c["_bm"], c["_bd"]):
        if k == "p":
            name.append([f"p:{sur}|{giv[:1]}"] if sur else [])
            pinyin.append([f"p:{sur_py}|{giv_py[:1]}"] if sur else [])
            # the birthday with the initial of the surname, and of the given name: a
            # surname mistyped, missing or written in the given name's place still meets
            # its duplicate
            if y and m and d:
                date = f"{y:04d}{m:02d}{d:02d}"
                birth.append([f"p:{i}|{date}" for i in {sur_py[:1], giv_py[:1]} if i])
            else:
                birth.append([])
        else:
            name.append([f"c:{core[:2]}"] if core else [])
            pinyin.append([f"c:{py[:6]}"] if core else [])
            birth.append([])
    yield "name", name
    yield "pinyin", pinyin
    yield "birth", birth
    yield "phone", [[f"{k}:{t}" for t in (mt, pt) if t] for k, mt, pt in zip(
        kinds, c["_mobile_tail"], c["_phone_tail"])]
    yield "email", [([f"{k}:{e}"] + ([f"{k}:{loc}@"] if len(loc) >= 3 else [])) if e else []
                    for k, e, loc in zip(kinds, c["_email"], c["_email_local"])]
    yield "addr", [[f"{k}:{city}|{digits}"] if digits else
                   [f"{k}:{city}|{words[:6]}"] if words else []
                   for k, city, digits, words in zip(kinds, c["_city"], c["_digits"],
                                                     c["_words"])]


def record_keys(rec: dict) -> set[tuple[str, str]]:
    """The blocking keys of one record (a record_of dict): (pass, key)."""
    one = {key: [value] for key, value in rec.items()}
    return {(pass_name, key) for pass_name, rows in column_keys(one) for key in rows[0]}


def blocking_keys(mapping: dict) -> set[tuple[str, str]]:
    return record_keys(record_of(mapping))


def rank_of(values: np.ndarray) -> np.ndarray:
    """Each row's position when the rows are sorted by `values` (ties by row)."""
    order = np.argsort(values, kind="stable")
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values))
    return rank


def window_pairs(block: np.ndarray, rows: np.ndarray, rank: np.ndarray,
                  window: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pairs of rows within `window` of each other in one block, blocks sorted by rank."""
    order = np.lexsort((rank[rows], block))
    block, rows = block[order], rows[order]
    for d in range(1, window):
        same = block[d:] == block[:-d]
        if not same.any():
            break
        a, b = rows[:-d][same], rows[d:][same]
        yield np.minimum(a, b), np.maximum(a, b)


class _Ranks:
    """The sort orders the passes use, computed once per batch."""

    def __init__(self, cols: Columns):
        c = cols.cols
        self.name = rank_of(c["_core"])
        self.reversed = rank_of(np.array([s[::-1] for s in c["_core"]], dtype=object))
        self.pinyin = rank_of(c["_pinyin"])
        self.address = rank_of(np.array([f"{a}|{w}|{d}" for a, w, d in zip(
            c["_city"], c["_words"], c["_digits"])], dtype=object))

    def of(self, pass_name: str) -> list[np.ndarray]:
        if pass_name == "name":
            return [self.name, self.reversed]
        return [self.pinyin] if pass_name == "pinyin" else [self.name]


def distinct_codes(chunks: list[np.ndarray]) -> np.ndarray:
    """The distinct codes, sorted (a sort and a neighbour comparison: faster than np.unique's
    hash table on tens of millions of int64)."""
    if not chunks:
        return np.zeros(0, dtype=np.int64)
    codes = np.sort(np.concatenate(chunks))
    if len(codes) < 2:
        return codes
    return codes[np.concatenate(([True], codes[1:] != codes[:-1]))]


def pass_pairs(cols: Columns, pass_name: str, ranks: Optional[_Ranks] = None) -> np.ndarray:
    """The distinct pairs (a*n + b, a < b) one keyed pass proposes."""
    if pass_name not in cols.blocks:
        return np.zeros(0, dtype=np.int64)
    ranks = ranks or _Ranks(cols)
    n = len(cols)
    hashes, rows = (np.frombuffer(x, dtype=np.int64) for x in cols.blocks[pass_name])
    window = NAME_WINDOW if pass_name == "name" else WINDOW
    return distinct_codes([a * n + b for rank in ranks.of(pass_name)
                           for a, b in window_pairs(hashes, rows, rank, window)])


def candidate_pairs(cols: Columns) -> np.ndarray:
    """Distinct candidate pairs (row_a < row_b, encoded a*n + b) of every pass, from the keys
    collected in `cols` (Columns(records, keys_of=column_keys))."""
    n = len(cols)
    ranks = _Ranks(cols)
    chunks = [pass_pairs(cols, p, ranks) for p in PASSES]
    everyone = np.arange(n, dtype=np.int64)
    kind = cols.person.astype(np.int64)
    for rank in (ranks.pinyin, ranks.reversed, ranks.address):
        chunks.extend(a * n + b for a, b in window_pairs(kind, everyone, rank, NEIGHBOURS))
    return distinct_codes(chunks)
