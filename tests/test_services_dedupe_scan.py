"""Batch dedupe scan: seeded clusters found (a contact's mobile, one core name under another
legal form / region / traditional characters, a one-character typo in the same city),
near-misses kept apart, dismissed clusters not proposed again, re-scans replace open
clusters only, the CSV output, the scan's pairs worked out in memory being the blocking
table's, the scan and the entry check agreeing on a crowded block of 10,000, and the scan job
run by a real RQ worker."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from sqlalchemy import select, update

from app.models import AuditLog, Customer, DedupeCluster, DedupeClusterMember, DedupeRule
from app.services import customers, dedupe_review, dedupe_scan, match_keys
from app.services.matching.records import Columns


def set_rule(db, kind, **values):
    db.session.execute(update(DedupeRule).where(DedupeRule.kind == kind).values(**values))
    db.session.commit()


def company(actor, name, city=None, **more):
    return customers.create_customer(actor, dict(name=name, city=city, **more),
                                     confirm_duplicates=True)


def clusters_now(db) -> list[set[int]]:
    db.session.commit()
    out = {}
    for cluster_id, customer_id in db.session.execute(
            select(DedupeClusterMember.cluster_id, DedupeClusterMember.customer_id)
            .join(DedupeCluster).where(DedupeCluster.status == "open")):
        out.setdefault(cluster_id, set()).add(customer_id)
    return list(out.values())


def together(db, *ids) -> bool:
    return any(set(ids) <= c for c in clusters_now(db))


def linked(result, *ids) -> bool:
    """In one cluster of the matches at the link threshold (not only proposed for review)."""
    return any(set(ids) <= set(c) for c in result.linked)


@pytest.fixture
def seeded(db, org):
    """Customers the scan must cluster, and near-misses it must not."""
    s = org.staff
    c = {}
    # A contact of one customer holds another customer's mobile.
    c["mobile_owner"] = company(s, "宁波海曙远航贸易有限公司", mobile="13700137001")
    c["mobile_twin"] = company(s, "远航国际物流有限公司")
    db.session.commit()
    from app.models import Contact

    db.session.add(Contact(customer_id=c["mobile_twin"].id, name="王经理",
                           mobile="13700137001", mobile_e164="+8613700137001"))
    db.session.commit()
    # One core name: another legal form, a region prefix, traditional characters.
    c["yunfan"] = org.c_rep  # 杭州云帆科技有限公司, city 杭州
    c["yunfan_form"] = company(s, "云帆科技股份有限公司", "杭州")
    c["yunfan_region"] = company(s, "云帆科技（杭州）有限公司")
    c["yunfan_trad"] = company(s, "雲帆科技有限公司", "杭州")
    # One character mistyped, in the same city.
    c["fuzzy_a"] = company(s, "深圳市腾达数码网络信息技术有限公司", "深圳")
    c["fuzzy_b"] = company(s, "深圳腾达数码网路信息技术有限公司", "深圳")
    # Near-misses: one group's two companies, and the typo's name in another city.
    c["huawei_tech"] = company(s, "华为技术有限公司", "深圳")
    c["huawei_device"] = company(s, "华为终端有限公司", "深圳")
    c["fuzzy_other_city"] = company(s, "广州腾达数码网路信息技术有限公司", "广州")
    # Persons: the same name and birthday, and the same name at another birthday.
    c["wang"] = customers.create_customer(s, {"name": "王芳", "customer_type": "person",
                                              "birthday": "1985-03-12"})
    c["wang_twin"] = customers.create_customer(s, {"name": "王 芳", "customer_type": "person",
                                                   "birthday": "03-12"},
                                               confirm_duplicates=True)
    c["wang_other"] = customers.create_customer(s, {"name": "王芳", "customer_type": "person",
                                                    "birthday": "1990-07-01"},
                                                confirm_duplicates=True)
    return c


def test_scan_finds_the_seeded_clusters_and_keeps_near_misses_apart(db, org, seeded):
    result = dedupe_scan.scan(org.staff.id)
    c = {k: v.id for k, v in seeded.items()}
    assert together(db, c["mobile_owner"], c["mobile_twin"])
    assert together(db, c["yunfan"], c["yunfan_form"], c["yunfan_region"], c["yunfan_trad"])
    assert together(db, c["fuzzy_a"], c["fuzzy_b"])
    assert together(db, c["wang"], c["wang_twin"])
    assert not together(db, c["huawei_tech"], c["huawei_device"])
    # The same name in another city, a namesake born elsewhen: at most for review, never
    # linked.
    assert not linked(result, c["fuzzy_b"], c["fuzzy_other_city"])
    assert not linked(result, c["wang"], c["wang_other"])
    assert linked(result, c["yunfan"], c["yunfan_form"], c["yunfan_region"], c["yunfan_trad"])
    # Four linked groups, and three weak pairs proposed each on its own (the name in another
    # city, the namesake with each of the two 王芳).
    assert result.clusters == len(clusters_now(db)) == 7
    assert {frozenset(c) for c in clusters_now(db) if len(c) == 2} >= {
        frozenset({c["fuzzy_b"], c["fuzzy_other_city"]}),
        frozenset({c["wang"], c["wang_other"]})}
    by_customer = {m.customer_id: m for m in db.session.execute(
        select(DedupeClusterMember)).scalars()}
    assert by_customer[c["mobile_twin"]].reasons == "mobile"
    assert 0 < by_customer[c["fuzzy_b"]].score <= 99  # the model's probability, percent
    assert by_customer[c["yunfan_trad"]].reasons == "scored"
    cluster = db.session.get(DedupeCluster, by_customer[c["fuzzy_a"]].cluster_id)
    assert (cluster.member_count, cluster.reasons) == (2, "scored")
    assert sorted(sorted(g) for g in result.linked) == sorted(sorted(g) for g in (
        [c["mobile_owner"], c["mobile_twin"]], [c["fuzzy_a"], c["fuzzy_b"]],
        [c["wang"], c["wang_twin"]],
        [c["yunfan"], c["yunfan_form"], c["yunfan_region"], c["yunfan_trad"]]))
    audit = db.session.execute(select(AuditLog).where(AuditLog.action == "dedupe_scan")).scalar_one()
    assert audit.actor_id == org.staff.id and audit.changes["clusters"] == [None, 7]


def test_the_review_threshold_decides_what_is_proposed(db, org, seeded):
    set_rule(db, "scored", link_score=900.0, review_score=900.0)
    dedupe_scan.scan()
    assert not together(db, seeded["fuzzy_a"].id, seeded["fuzzy_b"].id)
    assert together(db, seeded["mobile_owner"].id, seeded["mobile_twin"].id)  # exact rules


def test_switched_off_rules_take_no_part(db, org, seeded):
    set_rule(db, "mobile", active=False)
    set_rule(db, "phone", active=False)
    dedupe_scan.scan()
    assert not together(db, seeded["mobile_owner"].id, seeded["mobile_twin"].id)
    set_rule(db, "scored", active=False)
    dedupe_scan.scan()
    assert clusters_now(db) == []


def test_dismissed_clusters_are_not_proposed_again_and_rescans_replace_open_ones(db, org,
                                                                                 seeded):
    dedupe_scan.scan()
    first = {frozenset(c) for c in clusters_now(db)}
    target = next(cid for cid, in db.session.execute(
        select(DedupeClusterMember.cluster_id).where(
            DedupeClusterMember.customer_id == seeded["fuzzy_a"].id)))
    dedupe_review.dismiss(org.staff, target)
    dedupe_scan.scan()
    second = {frozenset(c) for c in clusters_now(db)}
    dismissed = next(c for c in first if seeded["fuzzy_a"].id in c)
    assert {seeded["fuzzy_a"].id, seeded["fuzzy_b"].id} <= dismissed
    assert second == first - {dismissed}
    # Open clusters were replaced, the dismissed one is kept as history.
    statuses = db.session.execute(select(DedupeCluster.status)).scalars().all()
    assert sorted(statuses) == ["dismissed"] + ["open"] * 6


def test_output_csv(db, org, seeded):
    result = dedupe_scan.scan()
    buf = io.StringIO()
    assert dedupe_scan.write_csv(result.rows, buf) == result.members == 16
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert list(rows[0]) == ["customer_id", "cluster_id", "score", "reasons", "name"]
    mine = {(int(r["customer_id"]), int(r["cluster_id"])): r for r in rows}
    [(_, group)] = [k for k in mine if k[0] == seeded["fuzzy_a"].id]
    twin = mine[(seeded["fuzzy_b"].id, group)]  # the typo pair's group holds both
    assert twin["name"] == seeded["fuzzy_b"].name
    member = db.session.execute(select(DedupeClusterMember).where(
        DedupeClusterMember.customer_id == seeded["fuzzy_b"].id,
        DedupeClusterMember.cluster_id == group)).scalar_one()
    assert twin["score"] == str(member.score)
    assert {r["reasons"] for (cid, _), r in mine.items() if cid == seeded["wang_twin"].id} == \
        {"scored"}


def test_cli_writes_the_csv(app, db, org, seeded, tmp_path):
    out = tmp_path / "clusters.csv"
    result = app.test_cli_runner().invoke(args=["crm", "dedupe-scan", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "7 clusters, 16 customers" in result.output
    assert out.read_text(encoding="utf-8").splitlines()[0] == \
        "customer_id,cluster_id,score,reasons,name"


def test_names_in_the_cli_output_are_never_formulas(app, db, org, tmp_path):
    from app.models import Contact

    formula = company(org.staff, "-1+1+cmd|' /C calc'!A0", mobile="13700137051")
    twin = company(org.staff, "+1+1")
    db.session.add(Contact(customer_id=twin.id, name="王经理", mobile="13700137051",
                           mobile_e164="+8613700137051"))
    db.session.commit()
    out = tmp_path / "clusters.csv"
    result = app.test_cli_runner().invoke(args=["crm", "dedupe-scan", "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert {int(r["customer_id"]): r["name"] for r in rows} == {
        formula.id: "'-1+1+cmd|' /C calc'!A0", twin.id: "'+1+1"}


N_CROWDED = 10_000


def _crowded(db, n: int, twins: int, pool_id: int) -> list[int]:
    """n companies whose cores all start with 华为 (one block of the name pass), and `twins`
    of them again with one character changed, written as the import writes them (Core: the
    rows, their pool places, then the blocking entries); the twins' ids."""
    import random

    from app.services import match_keys
    from app.services.customers import text_keys

    rng = random.Random(20261201)
    chars = "科技网络信息数码电子通信软件系统智能云端数据安全光电精密材料能源环保医疗健康"

    def core() -> str:
        return "华为" + "".join(rng.choice(chars) for _ in range(rng.randint(2, 6)))

    names = list(dict.fromkeys(core() for _ in range(n * 2)))[:n]
    rows = []
    for i, name in enumerate(names):
        full = f"{name}有限公司"
        rows.append({"name": full, "customer_type": "company", "city": "深圳",
                     **text_keys("company", full, None)})
    for name in rng.sample(names, twins):
        k = rng.randrange(2, len(name))
        typo = name[:k] + rng.choice(chars.replace(name[k], "")) + name[k + 1:]
        full = f"{typo}有限公司"
        rows.append({"name": full, "customer_type": "company", "city": "深圳",
                     **text_keys("company", full, None)})
    result = db.session.execute(Customer.__table__.insert().returning(Customer.__table__.c.id),
                                [{"birthday_lunar": False, "norm_version": 0, **r}
                                 for r in rows])
    ids = [r[0] for r in result]
    from app.models import Ownership
    from app.models.customer import utcnow

    db.session.execute(Ownership.__table__.insert(), [
        {"customer_id": cid, "owner_id": None, "pool_id": pool_id, "acquired_at": utcnow(),
         "acquired_how": "imported", "first_owner_id": None, "locked": False, "won": False,
         "category": "potential"} for cid in ids])
    match_keys.reindex(ids)
    db.session.commit()
    return ids[n:]


@pytest.mark.slow
def test_the_entry_check_finds_what_the_scan_finds_in_a_crowded_block(db, org):
    """10,000 companies in one block: for each planted twin, the entry check's matches are
    exactly the scan's pairs of that customer at the link threshold — no cap, no
    difference."""
    from app.services import dedupe
    from app.services.matching import Matcher

    twins = _crowded(db, N_CROWDED, 40, org.pool.id)
    matcher = Matcher.current()
    cols = Columns(dedupe_scan._records())
    pairs = match_keys.column_pairs(cols)  # what the scan scores
    assert np.array_equal(pairs, table_pairs(cols))
    scan: dict[int, set[int]] = {}
    for a, b, totals in matcher.scored_pairs(cols, pairs):
        keep = totals >= matcher.link_threshold
        for x, y in zip(cols.ids[a[keep]].tolist(), cols.ids[b[keep]].tolist()):
            scan.setdefault(x, set()).add(y)
            scan.setdefault(y, set()).add(x)
    found_any = 0
    for cid in twins:
        values = dedupe.values_of(db.session.get(Customer, cid))
        check = {m.customer_id for m in dedupe.find(values, exclude_ids=[cid])
                 if m.kind == "scored"}
        assert check == scan.get(cid, set()), cid
        found_any += bool(check)
    assert found_any >= 30  # the typos are found, not only agreed on


def table_pairs(cols: Columns) -> np.ndarray:
    """The candidate pairs read from customer_match_key (what the entry check reads), as rows
    of `cols` encoded like match_keys.column_pairs."""
    ids = dedupe_scan.candidate_pairs()
    rows = np.searchsorted(cols.ids, ids)
    assert np.array_equal(cols.ids[rows], ids)  # every entry's customer is in the columns
    return np.sort(rows[:, 0] * len(cols) + rows[:, 1])


def test_the_scan_pairs_worked_out_in_memory_are_the_tables(db, org, monkeypatch):
    """The scan pairs the customers it reads as the blocking entries the table holds would:
    a crowded block, equal and over-long sort values (ties by id), a key too long for a block,
    mobiles and landlines with the same last 8 digits, persons by birthday, an updated, a
    deleted and a merged-away customer."""
    from app.services import merge

    s = org.staff
    _crowded(db, 600, 25, org.pool.id)
    long_core = "浙江" + "长" * 70  # sorts the same as the next beyond SORT_MAX characters
    made = [company(s, f"{long_core}{i}有限公司", "杭州") for i in range(30)]
    made += [company(s, "同名贸易有限公司", "宁波") for _ in range(30)]  # equal sort values
    made.append(company(s, "长邮箱有限公司", email="a" * 60 + "@" + "b" * 50 + "." + "c" * 40 + ".cn"))
    set_rule(db, "mobile", active=False)
    set_rule(db, "phone", active=False)
    for i in range(25):  # one block by the last 8 digits, some holding it twice
        made.append(company(s, f"同号码{i}有限公司", mobile="13812345678" if i % 2 else None,
                            phone="0571-12345678"))
    for i in range(40):
        made.append(customers.create_customer(s, {
            "name": f"{'王李张'[i % 3]}{'芳伟娜'[i % 3 if i % 2 else 0]}", "customer_type": "person",
            "birthday": f"19{80 + i % 4}-0{1 + i % 3}-12", "address": f"长宁路 {i % 5} 号"},
            confirm_duplicates=True))
    customers.update_customer(s, made[0].id, {"name": "华为同城科技有限公司", "city": "深圳"})
    customers.delete_customer(org.admin, made[1].id)
    merge.merge(s, made[2].id, [made[3].id, made[4].id])
    db.session.commit()
    cols = Columns(dedupe_scan._records())
    pairs = match_keys.column_pairs(cols)
    assert len(pairs) > 20_000
    assert np.array_equal(pairs, table_pairs(cols))
    gone = {made[1].id, made[3].id, made[4].id}
    assert not gone & set(cols.ids.tolist())
    # Keys that share a hash are still told apart.
    monkeypatch.setattr(match_keys, "_hash", lambda key: len(key))
    assert np.array_equal(match_keys.column_pairs(cols), pairs)


def test_column_pairs_want_the_columns_in_id_order(db, org):
    cols = Columns([{"id": 5, "customer_type": "company", "name": "甲"},
                    {"id": 3, "customer_type": "company", "name": "乙"}])
    with pytest.raises(ValueError, match="not in id order"):
        match_keys.column_pairs(cols)


def test_match_graph_honours_dismissed_pairs():
    graph = dedupe_scan.MatchGraph({(1, 2)})
    graph.link([1, 2, 3], [1, 2, 3], 100, ("company_name",))
    assert graph.clusters() == [[1, 2, 3]]  # 1-3 and 2-3 still match
    graph = dedupe_scan.MatchGraph({(1, 2)})
    graph.link([1, 2], [1, 2], 100, ("company_name",))
    assert graph.clusters() == []


# --- the job, run by a real worker ---------------------------------------------------------
def test_scan_job_runs_in_a_real_worker_with_progress(app, db, org, seeded, redis_url,
                                                      database_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    import uuid

    from app.queue import get_queue
    from jobs.dedupe import scan_duplicates
    from tests.test_jobs import run_burst_worker

    queue = f"test-{uuid.uuid4().hex[:8]}"
    job = get_queue(queue).enqueue(scan_duplicates, org.staff.id)
    result = run_burst_worker(redis_url, database_url, queue)
    assert result.returncode == 0, result.stderr[-2000:]
    job.refresh()
    assert job.get_status() == "finished", result.stderr[-2000:]
    assert job.return_value()["clusters"] == 7
    assert job.meta["progress"]["done"] == job.meta["progress"]["total"] == 17
    assert len(clusters_now(db)) == 7
