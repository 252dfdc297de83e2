"""Dedupe for many rows at once (bulk import): the rules of app.services.dedupe, with one query
per key kind per chunk instead of several per row, and a check of each row against the rows
of the same file before it, inserted or refused: a refused row is still a company the later
rows may repeat (rows 1 and 2 share a mobile, rows 2 and 3 a name: row 3 is row 1 again).

The answers are the entry check's: the same rules, the same holder text, and for the
scored rule the same matcher on the same candidates (dedupe.scored_matches: the customers the
batch scan would pair the row with), with the same field-by-field account. Rows of the file
are matched against the earlier rows the same way, in memory (FileIndex: the same blocks and
windows as app.services.match_keys, kept sorted as rows arrive).
"""
from __future__ import annotations

import bisect
from dataclasses import replace
from typing import Any, Optional

from sqlalchemy import ARRAY, String, any_, bindparam, select

from app.extensions import db
from app.models import Contact, Customer, DedupeRule
from app.services import dedupe
from app.services.dedupe import Match, exists_text
from app.services.errors import tr

KEYS_PER_QUERY = 1000   # values per IN list


def _people_keys(values: dict) -> tuple[list[str], list[str], list[str]]:
    mobiles = [values["mobile_e164"]] if values.get("mobile_e164") else []
    phones = [values["phone_e164"]] if values.get("phone_e164") else []
    emails = [values["email_norm"]] if values.get("email_norm") else []
    return mobiles, phones, emails


def _in_chunks(column, values: list):
    for start in range(0, len(values), KEYS_PER_QUERY):
        yield column.in_(values[start:start + KEYS_PER_QUERY])


def _matching(column, values: list[str]):
    """Conditions `column IN values`: one array parameter on PostgreSQL, IN lists of
    KEYS_PER_QUERY elsewhere."""
    if not values:
        return []
    if db.session.get_bind().dialect.name == "postgresql":
        return [column == any_(bindparam(f"{column.key}_values", values, type_=ARRAY(String)))]
    return list(_in_chunks(column, values))


def _key_owners(keys: set[str], columns: tuple[str, ...]) -> dict[str, set[int]]:
    """key -> ids of customers whose own or contacts' `columns` hold it. On PostgreSQL the
    keys travel as one array parameter (an IN list of 1,000 strings costs more to build and
    parse than to run)."""
    found: dict[str, set[int]] = {}
    if not keys:
        return found
    ordered = sorted(keys)
    for model, id_col in ((Customer, Customer.id), (Contact, Contact.customer_id)):
        for col_name in columns:
            col = getattr(model, col_name)
            for cond in _matching(col, ordered):
                for cid, key in db.session.execute(select(id_col, col).where(cond)):
                    found.setdefault(key, set()).add(cid)
    return found


class FileIndex:
    """The rows of one file read so far, blocked as match_keys blocks the table: per block,
    its members sorted by (sort value, line). A row's candidates are the window−1 members
    before and after it in each of its blocks, as the table would give once they are saved."""

    def __init__(self):
        self.blocks: dict[str, list[tuple[str, int]]] = {}
        self.rows: dict[int, dict[str, Any]] = {}

    def candidates(self, entries: set[tuple[str, str]]) -> set[int]:
        from app.services.match_keys import window_of

        lines: set[int] = set()
        for block, sort in entries:
            members = self.blocks.get(block)
            if not members:
                continue
            n = window_of(block) - 1
            at = bisect.bisect_right(members, (sort, float("inf")))
            lines.update(line for _, line in members[max(0, at - n):at + n])
        return lines

    def add(self, values: dict[str, Any], line: int, entries: set[tuple[str, str]]) -> None:
        self.rows[line] = values
        for block, sort in entries:
            bisect.insort(self.blocks.setdefault(block, []), (sort, line))


class BatchMatcher:
    """Matches of a run of rows: against the table (`table_hits`, per chunk) and against the
    rows of the same file read earlier in this run (`file_hits` / `remember`)."""

    def __init__(self, rules: Optional[dict[str, DedupeRule]] = None):
        from app.services.matching import Matcher

        self.rules = dedupe.active_rules() if rules is None else rules
        self._numbers: dict[str, int] = {}     # mobile/phone key -> file line
        self._emails: dict[str, int] = {}
        self._file = FileIndex()
        self.matcher = Matcher.current()
        rule = self.rules.get("scored")
        self.link = dedupe.thresholds(rule, self.matcher)[0] if rule else None
        # The accounts of the last table_hits' scored matches, row by row (for answers()).
        self.accounts: list[dict[int, dedupe.Scored]] = []

    # --- against the table ---------------------------------------------------------------
    def table_hits(self, rows: list[dict[str, Any]]) -> list[dict[tuple[str, int], int]]:
        """For each row, {(rule kind, customer id): score} under the active rules; the scored
        matches' accounts in self.accounts."""
        rules = self.rules
        hits: list[dict[tuple[str, int], int]] = [{} for _ in rows]
        self.accounts = [{} for _ in rows]
        numbers = {k for v in rows for k in _people_keys(v)[0] + _people_keys(v)[1]}
        emails = {k for v in rows for k in _people_keys(v)[2]}
        by_number = _key_owners(numbers, ("mobile_e164", "phone_e164")) \
            if {"mobile", "phone"} & set(rules) else {}
        by_email = _key_owners(emails, ("email_norm",)) if "email" in rules else {}
        for i, v in enumerate(rows):
            mobiles, phones, mails = _people_keys(v)
            for kind, keys, index in (("mobile", mobiles, by_number),
                                      ("phone", phones, by_number),
                                      ("email", mails, by_email)):
                if kind in rules:
                    for key in keys:
                        for cid in index.get(key, ()):
                            hits[i][(kind, cid)] = 100
            if self.link is not None:
                for m in dedupe.scored_matches(v, threshold=self.link, matcher=self.matcher):
                    hits[i][("scored", m.customer_id)] = m.probability
                    self.accounts[i][m.customer_id] = m
        return hits

    # --- against the file ----------------------------------------------------------------
    def file_hits(self, v: dict[str, Any]) -> list[tuple[str, int, int, str]]:
        """(rule kind, earlier file line, score, account) for matches among the rows
        remembered so far (the account: a scored match's, else empty)."""
        from app.services.match_keys import entries

        rules, out = self.rules, []
        mobiles, phones, emails = _people_keys(v)
        for kind, keys, index in (("mobile", mobiles, self._numbers),
                                  ("phone", phones, self._numbers),
                                  ("email", emails, self._emails)):
            if kind in rules:
                out += [(kind, index[k], 100, "") for k in keys if k in index]
        if self.link is not None and (v.get("name_core") or v.get("name")):
            lines = sorted(self._file.candidates(entries(v)))
            if lines:
                others = [self._file.rows[line] for line in lines]
                _, accounts = self.matcher.score_explained(v, others, explain_from=self.link)
                for i, explained in sorted(accounts.items()):
                    out.append(("scored", lines[i], dedupe.probability(
                        self.matcher, v.get("customer_type"), explained.total),
                        explained.text()))
        return out

    def remember(self, v: dict[str, Any], line: int) -> None:
        """Remember a row, inserted or refused, so later rows of the file are checked
        against it (a line's keys are the first line that held them)."""
        from app.services.match_keys import entries

        mobiles, phones, emails = _people_keys(v)
        for key in mobiles + phones:
            self._numbers.setdefault(key, line)
        for key in emails:
            self._emails.setdefault(key, line)
        if self.link is not None and (v.get("name_core") or v.get("name")):
            self._file.add(v, line, entries(v))


def answers(hits: list[dict[tuple[str, int], int]], rules: dict[str, DedupeRule],
            accounts: Optional[list[dict[int, dedupe.Scored]]] = None) -> list[list[Match]]:
    """The holder-naming Match lists for many rows' hits (one lookup for all of them), the
    scored ones with their row's account of the pair."""
    union: dict[tuple[str, int], int] = {}
    for row in hits:
        union.update(row)
    by_key = {(m.kind, m.customer_id): m for m in dedupe.matches_for_hits(union, rules)}
    accounts = accounts or [{} for _ in hits]
    out = []
    for row, account in zip(hits, accounts):
        matches = []
        for k, score in row.items():
            if k not in by_key:
                continue
            scored = account.get(k[1]) if k[0] == "scored" else None
            matches.append(replace(by_key[k], score=score,
                                   total=scored.total if scored else None,
                                   explanation=scored.explanation if scored else ""))
        out.append(sorted(matches, key=lambda m: (m.action != "block", -m.score,
                                                  m.customer_id)))
    return out


def by_customer(matches: list[Match]) -> list[list[Match]]:
    """Matches grouped by the customer they name, in their order."""
    groups: dict[int, list[Match]] = {}
    for m in matches:
        groups.setdefault(m.customer_id, []).append(m)
    return list(groups.values())


def kinds_text(group: list[Match]) -> str:
    """"手机号，相似客户（综合评分）：名称 相似 88%（+4.1）· … → 5.8" for one customer's
    matches."""
    return tr(", ").join(m.why for m in group)


def grouped_text(group: list[Match]) -> str:
    """Match.text for one customer matched by several rules, naming every rule once."""
    m = group[0]
    return exists_text(m.customer_name, m.holder, m.locked, kinds_text(group))
