"""The Chinese evaluation set (tests/match_cn_data.py) scored by the new matcher and by
today's rules, pair by pair and as a whole.

For every labelled pair, per kind:

- duplicates: recall — the share of pairs the matcher's total puts at or above the link
  threshold, at or above the review threshold; and the share today's rules link.
- near-misses: the share linked (a false link: precision on the kind is 1 − that share).

"Today" is app.services.dedupe as shipped, called, not re-implemented: the company_name rule
(fuzz.ratio of the cores ≥ 90 in one city) and, for two persons whose folded names
or pinyin are equal (the only persons that check looked at), the person rules under the
default rules. The exact number and e-mail rules (mobile / phone / e-mail → block) stay as
they are under the new matcher, so they are shown apart: "+keys" is a column with them added
(a mobile held by one matches a mobile or phone of the other, as dedupe._KEY_COLUMNS says).

Then the whole set: `Matcher().link(records)` — every pair its blocking passes find with a
total at or above the review threshold — against the labels: pairs that are not labelled
duplicates are false links (precision), and the duplicates link() did not return (blocking
or scoring losses).

    .venv/bin/python bench/match_cn.py                       # 100 pairs of each kind, 5k others
    .venv/bin/python bench/match_cn.py --pairs 200 --background 20000 --crowded 10000
    .venv/bin/python bench/match_cn.py --show 3              # explain() of missed / false pairs

Not a test: numbers only (tests/test_matching_cn.py holds the bars).
"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from rapidfuzz import fuzz  # noqa: E402
from rapidfuzz.process import cdist  # noqa: E402

from app.services import dedupe  # noqa: E402
from tests.match_cn_data import DUPLICATE_KINDS, NEAR_MISS_KINDS, generate  # noqa: E402


# The rules before issue 19 (the baseline "today"): their defaults and their two pair tests,
# as app/services/dedupe.py had them (git show 752c22a:app/services/dedupe.py).
PREVIOUS_RULES = [("mobile", False, 100, False, "block"), ("phone", False, 100, False, "block"),
                  ("email", False, 100, False, "block"), ("company_name", True, 90, True, "warn"),
                  ("person_birthday", False, 100, False, "warn"),
                  ("person_address", True, 90, False, "warn")]


def default_rules() -> dict[str, SimpleNamespace]:
    return {kind: SimpleNamespace(kind=kind, fuzzy=fuzzy, threshold=threshold,
                                  same_city=same_city, action=action)
            for kind, fuzzy, threshold, same_city, action in PREVIOUS_RULES}


RULES = default_rules()


def cities_agree(rule, values: dict, other) -> bool:
    if not rule.same_city:
        return True
    mine = values.get("name_region") or values.get("city")
    theirs = other.name_region or other.city
    return not mine or not theirs or mine.rstrip("市") == theirs.rstrip("市")


def person_pair(rules, mine: dict, other: dict):
    if "person_birthday" in rules and mine.get("birth_month") and \
            (other.get("birth_month"), other.get("birth_day"),
             bool(other.get("birthday_lunar"))) == (
                mine.get("birth_month"), mine.get("birth_day"),
                bool(mine.get("birthday_lunar"))) and \
            (not mine.get("birth_year") or not other.get("birth_year")
             or mine.get("birth_year") == other.get("birth_year")):
        yield "person_birthday", 100
    rule = rules.get("person_address")
    a, b = mine.get("address_norm"), other.get("address_norm")
    if rule and a and b:
        score = 100 if a == b else int(fuzz.ratio(a, b))
        if score == 100 or (rule.fuzzy and score >= rule.threshold):
            yield "person_address", score


def today_names(a: dict, b: dict) -> bool:
    """Today's fuzzy rules on one pair: what dedupe.find decides for `a` with `b` among the
    candidates (the candidate query's blocking aside: the pair is scored whatever its block)."""
    if a["customer_type"] != b["customer_type"]:
        return False
    if a["customer_type"] == "company":
        rule = RULES["company_name"]
        if not a.get("name_core") or not b.get("name_core"):
            return False
        score = 100 if a["name_core"] == b["name_core"] else \
            int(fuzz.ratio(a["name_core"], b["name_core"]))
        return (score == 100 or (rule.fuzzy and score >= rule.threshold)) and \
            cities_agree(rule, a, SimpleNamespace(**b))
    # Persons: only those equal by folded name or pinyin are candidates (_person_statement).
    if not (a.get("name_core") == b.get("name_core") or
            (b.get("name_pinyin") and a.get("name_pinyin") == b.get("name_pinyin"))):
        return False
    return any(True for _ in person_pair(RULES, a, b))


def today_keys(a: dict, b: dict) -> bool:
    """The exact number and e-mail rules (unchanged by issue 19)."""
    for kind, columns in dedupe._KEY_COLUMNS.items():
        own = a.get(columns[0])
        if own and any(b.get(c) == own for c in columns):
            return True
    return False


def today_links(records: list[dict]) -> tuple[set, set]:
    """(pairs today's fuzzy rules link, pairs the number and e-mail rules link) over the
    whole set: companies within their name block (the check's candidates, without its
    200-row cap), persons within an equal folded name or pinyin; numbers and e-mail by
    equality. Each candidate pair is decided by today_names, as above."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        if r["customer_type"] == "company" and r.get("name_core"):
            groups[("block", r["name_core"][:2])].append(r)
        elif r.get("name_core"):
            groups[("person", r["name_core"])].append(r)
            if r.get("name_pinyin"):
                groups[("pinyin", r["name_pinyin"])].append(r)
    names = set()
    for (kind, _), members in groups.items():
        if len(members) < 2:
            continue
        if kind == "block":
            # Only pairs whose cores can pass the rule are decided (cdist at the threshold).
            cores = [r["name_core"] for r in members]
            scores = cdist(cores, cores, scorer=fuzz.ratio, dtype=np.uint8, workers=-1,
                           score_cutoff=RULES["company_name"].threshold)
            for i, j in zip(*np.nonzero(np.triu(scores, 1))):
                if today_names(members[i], members[j]):
                    names.add(_key(members[i], members[j]))
            continue
        for i, a in enumerate(members):
            for b in members[i + 1:]:
                if today_names(a, b):
                    names.add(_key(a, b))
    holders: dict[str, set[int]] = defaultdict(set)
    for r in records:
        for f in ("mobile_e164", "phone_e164", "email_norm"):
            if r.get(f):
                holders[r[f]].add(r["id"])
    keys = {(a, b) for ids in holders.values() if len(ids) > 1
            for a in ids for b in ids if a < b}
    return names, keys


def _key(a: dict, b: dict) -> tuple[int, int]:
    return (min(a["id"], b["id"]), max(a["id"], b["id"]))


def precision_line(label: str, pairs: set, truth: dict, near: dict) -> str:
    right = pairs & truth.keys()
    false = pairs - truth.keys()
    false_near = false & near.keys()
    return (f"  {label}: {len(pairs)} pairs, {len(right)} labelled duplicates, "
            f"{len(false)} false ({len(false_near)} near-misses, "
            f"{len(false) - len(false_near)} others): precision "
            f"{rate(len(right), len(pairs))}, recall {rate(len(right), len(truth))}")


def rate(hits: int, n: int) -> str:
    return f"{hits / n:6.1%}" if n else "     –"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=19)
    ap.add_argument("--pairs", type=int, default=100, help="pairs of each kind")
    ap.add_argument("--background", type=int, default=5000)
    ap.add_argument("--crowded", type=int, default=0)
    ap.add_argument("--show", type=int, default=2,
                    help="missed duplicates / linked near-misses to explain per kind")
    args = ap.parse_args()

    t = time.perf_counter()
    data = generate(seed=args.seed, n_pairs=args.pairs, n_background=args.background,
                    crowded=args.crowded)
    rows = data.by_id()
    print(f"{len(data.records)} records, {len(data.duplicates)} duplicate pairs, "
          f"{len(data.near_misses)} near-miss pairs (seed {args.seed}), built in "
          f"{time.perf_counter() - t:.1f} s")

    try:
        from app.services.matching import Matcher
    except ImportError:
        Matcher = None
        print("app.services.matching is not there: today's rules only")
    m = Matcher() if Matcher else None
    if m:
        print(f"matcher: link threshold {m.link_threshold:.2f}, review threshold "
              f"{m.review_threshold:.2f}")

    # -- pair by pair
    stats = defaultdict(lambda: defaultdict(int))
    examples = defaultdict(list)
    scored_pairs: dict[tuple[int, int], str] = {}  # duplicates explain() puts ≥ review
    t = time.perf_counter()
    for labelled, duplicate in ((data.duplicates, True), (data.near_misses, False)):
        for a_id, b_id, kind in labelled:
            a, b = rows[a_id], rows[b_id]
            s = stats[kind]
            s["n"] += 1
            names, keys = today_names(a, b), today_keys(a, b)
            s["today"] += names
            s["today_keys"] += names or keys
            if m:
                ex = m.explain(a, b)
                link, review = ex.total >= m.link_threshold, ex.total >= m.review_threshold
                s["link"] += link
                s["review"] += review
                s["link_keys"] += link or keys
                wrong = not link if duplicate else link
                if duplicate and review:
                    scored_pairs[(a_id, b_id)] = kind
                if wrong and len(examples[kind]) < args.show:
                    examples[kind].append((a, b, ex))
    pair_time = time.perf_counter() - t

    head = f"{'kind':<24}{'n':>5}  {'today':>6} {'+keys':>6}"
    if m:
        head += f"  {'link':>6} {'review':>6} {'+keys':>6}"
    print("\nTrue duplicates: recall (share of pairs linked)")
    print(head)
    for kind in DUPLICATE_KINDS:
        s = stats.get(kind)
        if not s:
            continue
        line = f"{kind:<24}{s['n']:>5}  {rate(s['today'], s['n'])} {rate(s['today_keys'], s['n'])}"
        if m:
            line += f"  {rate(s['link'], s['n'])} {rate(s['review'], s['n'])} " \
                    f"{rate(s['link_keys'], s['n'])}"
        print(line)
    print("\nNear-misses: false-link rate (precision on the kind = 1 − rate)")
    print(head)
    for kind in NEAR_MISS_KINDS:
        s = stats[kind]
        line = f"{kind:<24}{s['n']:>5}  {rate(s['today'], s['n'])} {rate(s['today_keys'], s['n'])}"
        if m:
            line += f"  {rate(s['link'], s['n'])} {rate(s['review'], s['n'])} " \
                    f"{rate(s['link_keys'], s['n'])}"
        print(line)
    truth = {(a, b): kind for a, b, kind in data.duplicates}
    near = {(a, b): kind for a, b, kind in data.near_misses}
    t = time.perf_counter()
    names, keys = today_links(data.records)
    print(f"\nToday's rules over all {len(data.records)} records "
          f"({time.perf_counter() - t:.1f} s):")
    print(precision_line("name rules", names, truth, near))
    print(precision_line("+ number / e-mail rules", names | keys, truth, near))
    if not m:
        return
    print(f"\n({pair_time:.1f} s for {sum(s['n'] for s in stats.values())} explain() calls)")

    # -- the whole set through link()
    t = time.perf_counter()
    found = list(m.link(data.records))
    link_time = time.perf_counter() - t
    print(f"\nlink() over all {len(data.records)} records: {len(found)} pairs at or above "
          f"the review threshold in {link_time:.1f} s")
    for name, threshold in (("link", m.link_threshold), ("review", m.review_threshold)):
        pairs = {(min(a, b), max(a, b)) for a, b, total in found if total >= threshold}
        false = pairs - truth.keys()
        false_near = false & near.keys()
        print(precision_line(f"≥ {name} threshold", pairs, truth, near))
        if name == "link":
            for a, b in sorted(false - false_near)[:args.show * 3]:
                examples["unlabelled link"].append((rows[a], rows[b],
                                                    m.explain(rows[a], rows[b])))
        print(precision_line(f"≥ {name} threshold + number / e-mail rules", pairs | keys,
                             truth, near))
        if name == "review":
            lost = defaultdict(int)
            for pair, kind in truth.items():
                if pair not in pairs:
                    lost[kind] += 1
            if lost:
                print("  duplicates link() did not return at the review threshold: " +
                      ", ".join(f"{k} {v}" for k, v in sorted(lost.items())))
            blocked = [p for p in scored_pairs if p not in pairs]
            print(f"  blocking: {len(scored_pairs) - len(blocked)} of {len(scored_pairs)} "
                  f"duplicates whose explain() total reaches the review threshold are among "
                  f"link()'s pairs ({rate(len(scored_pairs) - len(blocked), len(scored_pairs))})")

    if any(examples.values()):
        print("\nExamples (duplicates below the link threshold, near-misses at or above it, "
              "unlabelled pairs link() links):")
        show = ("name", "city", "address_norm", "mobile_e164", "phone_e164", "email_norm",
                "birth_year", "birth_month", "birth_day")
        for kind, items in examples.items():
            for a, b, ex in items:
                print(f"- {kind}:")
                for r in (a, b):
                    print("    " + " | ".join(str(r.get(k)) for k in show if r.get(k)))
                print(f"    {ex.text()}")


if __name__ == "__main__":
    main()
