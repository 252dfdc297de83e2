"""Dedupe for many rows at once (bulk import): the rules of app.services.dedupe, with one query
per key kind per chunk instead of several per row, and a check of each row against the rows
of the same file before it, inserted or refused: a refused row is still a company the later
rows may repeat (rows 1 and 2 share a mobile, rows 2 and 3 a name: row 3 is row 1 again).

The answers are the entry check's: the same rules, the same scores, the same holder text,
and the same candidates for the fuzzy company name: every customer with the same core name,
plus up to dedupe.MAX_CANDIDATES others of its block (the core's first two characters). The
batch scan (flask crm dedupe-scan) compares within crowded blocks exhaustively.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Optional

from rapidfuzz import fuzz, process
from sqlalchemy import ARRAY, String, any_, bindparam, select, text

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


_BLOCK_COLUMNS = (Customer.id, Customer.name_core, Customer.name_region, Customer.city,
                  Customer.name_block)


def _place(row) -> Optional[str]:
    """What dedupe.cities_agree compares: the region in the name, else the city."""
    return row.name_region or row.city


def _block_members(blocks: list[str], cols) -> list:
    """Up to MAX_CANDIDATES companies of each block, in one statement per KEYS_PER_QUERY
    blocks: a LATERAL join on PostgreSQL (an index probe per block), a window over the
    blocks' rows elsewhere."""
    out: list = []
    limit = dedupe.MAX_CANDIDATES
    postgres = db.session.get_bind().dialect.name == "postgresql"
    names = ", ".join(c.key for c in cols)
    for start in range(0, len(blocks), KEYS_PER_QUERY):
        part = blocks[start:start + KEYS_PER_QUERY]
        if postgres:
            sql = text(f"SELECT m.* FROM unnest(CAST(:blocks AS text[])) AS b(block) "
                       f"CROSS JOIN LATERAL (SELECT {names} FROM customer "
                       f"WHERE customer_type = 'company' AND name_block = b.block "
                       f"LIMIT {limit}) AS m")
            out += db.session.execute(sql, {"blocks": part}).all()
        else:
            sql = text(f"SELECT {names} FROM (SELECT {names}, row_number() OVER ("
                       f"PARTITION BY name_block) AS n FROM customer "
                       f"WHERE customer_type = 'company' AND name_block IN :blocks) "
                       f"WHERE n <= {limit}").bindparams(bindparam("blocks", expanding=True))
            out += db.session.execute(sql, {"blocks": part}).all()
    return out


class BatchMatcher:
    """Matches of a run of rows: against the table (`table_hits`, per chunk) and against the
    rows of the same file read earlier in this run (`file_hits` / `remember`)."""

    def __init__(self, rules: Optional[dict[str, DedupeRule]] = None):
        self.rules = dedupe.active_rules() if rules is None else rules
        self._numbers: dict[str, int] = {}     # mobile/phone key -> file line
        self._emails: dict[str, int] = {}
        self._blocks: dict[str, list[tuple[str, Optional[str], int]]] = {}
        self._people: dict[str, list[tuple[dict, int]]] = {}
        # block -> (ids, cores, places) of up to MAX_CANDIDATES companies, for this run
        self._block_cache: dict[str, tuple[list, list, list]] = {}

    # --- against the table ---------------------------------------------------------------
    def table_hits(self, rows: list[dict[str, Any]]) -> list[dict[tuple[str, int], int]]:
        """For each row, {(rule kind, customer id): score} under the active rules."""
        rules = self.rules
        hits: list[dict[tuple[str, int], int]] = [{} for _ in rows]
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
        if "company_name" in rules:
            self._company_hits(rows, hits)
        if {"person_birthday", "person_address"} & set(rules):
            self._person_hits(rows, hits)
        return hits

    def _company_hits(self, rows, hits) -> None:
        rule = self.rules["company_name"]
        wanted = [(i, v) for i, v in enumerate(rows)
                  if v.get("name_core") and (v.get("customer_type") or "company") == "company"]
        if not wanted:
            return
        company = Customer.customer_type == "company"
        exact: dict[str, list[tuple]] = {}
        cores = sorted({v["name_core"] for _, v in wanted})
        for cond in _matching(Customer.name_core, cores):
            for r in db.session.execute(select(*_BLOCK_COLUMNS).where(company, cond)):
                exact.setdefault(r.name_core, []).append((r.id, r.name_core, _place(r)))
        by_block: dict[str, list[tuple[int, dict]]] = {}
        for i, v in wanted:
            by_block.setdefault(v["name_core"][:2], []).append((i, v))
        if rule.fuzzy:
            self._load_blocks(sorted(set(by_block) - set(self._block_cache)))

        def hit(i, v, cid, score, place):
            if dedupe.cities_agree(rule, v, _Place(place)):
                hits[i][("company_name", cid)] = max(score, hits[i].get(("company_name", cid),
                                                                         0))

        for block, items in by_block.items():
            for i, v in items:
                for cid, _, place in exact.get(v["name_core"], ()):
                    hit(i, v, cid, 100, place)
            members = self._block_cache.get(block) if rule.fuzzy else None
            if not members:
                continue
            ids, member_cores, places = members
            # One C call scores every row of the chunk in this block against its members.
            scores = process.cdist([v["name_core"] for _, v in items], member_cores,
                                   scorer=fuzz.ratio, score_cutoff=rule.threshold)
            for (i, v), row in zip(items, scores):
                for j in row.nonzero()[0]:
                    score = 100 if member_cores[j] == v["name_core"] else int(row[j])
                    hit(i, v, ids[j], score, places[j])

    def _load_blocks(self, blocks: list[str]) -> None:
        """Fetch the fuzzy candidates of blocks not seen yet in this run, kept as compact
        columns (ids, cores, places): a file's rows share blocks across chunks, and the
        rows this run inserts are matched by the file index instead."""
        for r in _block_members(blocks, _BLOCK_COLUMNS):
            ids, cores, places = self._block_cache.setdefault(r.name_block, ([], [], []))
            ids.append(r.id)
            cores.append(r.name_core)
            places.append(_place(r))
        for block in blocks:
            self._block_cache.setdefault(block, ([], [], []))

    def _person_hits(self, rows, hits) -> None:
        wanted = [(i, v) for i, v in enumerate(rows)
                  if v.get("name_core") and v.get("customer_type") == "person"]
        if not wanted:
            return
        cores = sorted({v["name_core"] for _, v in wanted})
        pinyins = sorted({v["name_pinyin"] for _, v in wanted if v.get("name_pinyin")})
        found: list = []
        cols = (Customer.id, Customer.name_core, Customer.name_pinyin, Customer.address_norm,
                Customer.birth_year, Customer.birth_month, Customer.birth_day,
                Customer.birthday_lunar)
        person = Customer.customer_type == "person"
        seen = set()
        for cond in [*_matching(Customer.name_core, cores),
                     *_matching(Customer.name_pinyin, pinyins)]:
            for r in db.session.execute(select(*cols).where(person, cond)):
                if r.id not in seen:
                    seen.add(r.id)
                    found.append(r)
        by_name: dict[str, list] = {}
        for r in found:
            by_name.setdefault(r.name_core, []).append(r)
            if r.name_pinyin:
                by_name.setdefault("py:" + r.name_pinyin, []).append(r)
        for i, v in wanted:
            others = {r.id: r for r in by_name.get(v["name_core"], []) +
                      by_name.get("py:" + (v.get("name_pinyin") or ""), [])}
            for other in others.values():
                for kind, score in dedupe.person_pair(self.rules, v, other._asdict()):
                    hits[i][(kind, other.id)] = max(score, hits[i].get((kind, other.id), 0))

    # --- against the file ----------------------------------------------------------------
    def file_hits(self, v: dict[str, Any]) -> list[tuple[str, int, int]]:
        """(rule kind, earlier file line, score) for matches among the rows remembered so far."""
        rules, out = self.rules, []
        mobiles, phones, emails = _people_keys(v)
        for kind, keys, index in (("mobile", mobiles, self._numbers),
                                  ("phone", phones, self._numbers),
                                  ("email", emails, self._emails)):
            if kind in rules:
                out += [(kind, index[k], 100) for k in keys if k in index]
        core = v.get("name_core")
        if core and (v.get("customer_type") or "company") == "company" \
                and "company_name" in rules:
            rule = rules["company_name"]
            block = self._blocks.get(core[:2], [])
            cutoff = rule.threshold if rule.fuzzy else 100
            choices = [c for c, _, _ in block]
            for _, score, j in process.extract(core, choices, scorer=fuzz.ratio,
                                               score_cutoff=cutoff, limit=None):
                other_core, city, line = block[j]
                score = 100 if other_core == core else int(score)
                if (score == 100 or rule.fuzzy) and dedupe.cities_agree(
                        rule, v, _Place(city)):
                    out.append(("company_name", line, score))
        if core and v.get("customer_type") == "person":
            for other, line in self._people.get(core, []) + self._people.get(
                    "py:" + (v.get("name_pinyin") or ""), []):
                out += [(kind, line, score)
                        for kind, score in dedupe.person_pair(rules, v, other)]
        return out

    def remember(self, v: dict[str, Any], line: int) -> None:
        """Remember a row, inserted or refused, so later rows of the file are checked
        against it (a line's keys are the first line that held them)."""
        mobiles, phones, emails = _people_keys(v)
        for key in mobiles + phones:
            self._numbers.setdefault(key, line)
        for key in emails:
            self._emails.setdefault(key, line)
        core = v.get("name_core")
        if not core:
            return
        if (v.get("customer_type") or "company") == "company":
            self._blocks.setdefault(core[:2], []).append(
                (core, v.get("name_region") or v.get("city"), line))
        else:
            self._people.setdefault(core, []).append((v, line))
            if v.get("name_pinyin") and v["name_pinyin"] != core:
                self._people.setdefault("py:" + v["name_pinyin"], []).append((v, line))


class _Place:
    """Enough of a customer for dedupe.cities_agree."""

    def __init__(self, city: Optional[str]):
        self.name_region, self.city = city, None


def answers(hits: list[dict[tuple[str, int], int]],
            rules: dict[str, DedupeRule]) -> list[list[Match]]:
    """The holder-naming Match lists for many rows' hits (one lookup for all of them)."""
    union: dict[tuple[str, int], int] = {}
    for row in hits:
        union.update(row)
    by_key = {(m.kind, m.customer_id): m for m in dedupe.matches_for_hits(union, rules)}
    out = []
    for row in hits:
        matches = [replace(by_key[k], score=s) for k, s in row.items() if k in by_key]
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
    """"手机号、企业名称（核心名），相似度 92%" for one customer's matches."""
    from app.models.dedupe import DEDUPE_KINDS

    return tr(", ").join(tr("%(kind)s, similarity %(score)s%%", kind=DEDUPE_KINDS[m.kind],
                            score=m.score) if m.score < 100 else str(DEDUPE_KINDS[m.kind])
                         for m in group)


def grouped_text(group: list[Match]) -> str:
    """Match.text for one customer matched by several rules, naming every rule once."""
    m = group[0]
    return exists_text(m.customer_name, m.holder, m.locked, kinds_text(group))
