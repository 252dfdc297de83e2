"""Matcher.link() at scale: N generated customers (bench/dedupe_scan.py's generator: Zipf
name prefixes, so some blocks are huge; 15 % persons; seeded duplicates and near-misses),
given as stored records straight to link() (no database): time, peak memory, candidate pairs,
and the seeded pairs found at the link threshold beside those the blocking saw.

    .venv/bin/python bench/matching_link.py --n 100000

Not a test: numbers only.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import defaultdict
from itertools import combinations
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    args = ap.parse_args()
    from dedupe_scan import Generator, keys_of

    from app.services.matching import Matcher

    t0 = time.perf_counter()
    gen = Generator(args.n)
    gen.build()
    rows = gen.rows
    print(f"generated {len(rows):,} customers in {time.perf_counter() - t0:.1f} s; "
          f"peak RSS so far {_rss_mib():,.0f} MiB", flush=True)

    # the stored keys first (the normaliser is not what is measured), then dropped with the
    # generator's rows as link() reads them
    records = [dict(row, **keys_of(row)) for row in rows]
    gen.rows = rows = []
    m = Matcher()
    before = _rss_mib()
    t0 = time.perf_counter()
    cols = m.columns(records)
    del records
    t_cols = time.perf_counter() - t0
    linked = [(a, b) for a, b, t in m.link(cols) if t >= m.link_threshold]
    total = time.perf_counter() - t0
    peak = _rss_mib()
    t1 = time.perf_counter()
    pairs = m.candidates(cols)  # again, untimed: for the blocking figures
    t_block = time.perf_counter() - t1
    print(f"link(): {total:.1f} s (records→columns {t_cols:.1f} s, blocking {t_block:.1f} s, "
          f"scoring the rest); {len(pairs):,} candidate pairs; peak RSS {peak:,.0f} MiB "
          f"(before link {before:,.0f} MiB: the generated records)")
    clusters = defaultdict(list)
    for cid, truth in gen.truth.items():
        clusters[truth].append(cid)
    seeded = {tuple(sorted(p)) for ids in clusters.values() for p in combinations(ids, 2)}
    n = len(cols)
    blocked = {(int(cols.ids[c // n]), int(cols.ids[c % n])) for c in pairs.tolist()}
    found = seeded & set(linked)
    print(f"seeded pairs: {len(seeded):,}; blocked {len(seeded & blocked) / len(seeded):.3f}; "
          f"linked {len(found) / len(seeded):.3f}; pairs linked in all {len(linked):,}")


if __name__ == "__main__":
    main()
