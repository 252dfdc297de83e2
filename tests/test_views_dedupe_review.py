"""The duplicate review pages per role: admins and staff review, merge, dismiss and undo;
auditors read; managers and reps are refused. CSRF on every POST, and clear messages (never
a 500) for an unknown cluster, a survivor outside the cluster and a stale cluster."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.models import Customer, CustomerMerge, DedupeCluster
from app.services import customers, dedupe_scan
from tests.test_views_ownership import post


@pytest.fixture
def cluster(db, org):
    """One open cluster: 杭州云帆科技有限公司 (rep1's) and its twin (rep2's)."""
    twin = customers.create_customer(org.rep2, {"name": "云帆科技（杭州）有限公司",
                                                "industry": "软件", "mobile": "13600136009"},
                                     confirm_duplicates=True)
    dedupe_scan.scan()
    found = db.session.execute(select(DedupeCluster)).scalar_one()
    db.session.commit()
    return found.id, org.c_rep.id, twin.id


def text(resp) -> str:
    return resp.get_data(as_text=True)


def _account(first_id: int, other_id: int) -> str:
    from markupsafe import escape

    from app.extensions import db
    from app.services.matching import Matcher

    def stored(cid):
        c = db.session.get(Customer, cid)
        return {col.name: getattr(c, col.name) for col in Customer.__table__.c}

    return str(escape(Matcher.current().explain(stored(first_id), stored(other_id)).text()))


def test_admin_and_staff_see_clusters_and_members_side_by_side(clients, cluster):
    cid, s, twin = cluster
    for client in (clients.admin, clients.staff):
        page = client.get("/dedupe-review/")
        assert page.status_code == 200
        assert f'data-cluster="{cid}"' in text(page) and "相似客户（综合评分）" in text(page)
        assert 'id="scan-button"' in text(page)
        detail = client.get(f"/dedupe-review/{cid}")
        assert detail.status_code == 200
        html = text(detail)
        assert f'data-customer="{s}"' in html and f'data-customer="{twin}"' in html
        assert 'id="merge-button"' in html and 'id="dismiss-button"' in html
        # The twin's account against the first member, field by field, as the matcher
        # scored the pair.
        account = _account(s, twin)
        assert "匹配说明（与第一条相比）" in html
        assert re.search(rf'class="account" data-customer="{twin}"><small>{re.escape(account)}<',
                         html), account


def test_auditor_reads_but_cannot_act(clients, cluster, db):
    cid, s, twin = cluster
    page = clients.auditor.get(f"/dedupe-review/{cid}")
    assert page.status_code == 200 and 'id="merge-button"' not in text(page)
    assert 'id="scan-button"' not in text(clients.auditor.get("/dedupe-review/"))
    for path in (f"/dedupe-review/{cid}/merge", f"/dedupe-review/{cid}/dismiss",
                 "/dedupe-review/scan", "/dedupe-review/merges/1/undo"):
        resp = post(clients.auditor, path, {"survivor": s, "merge": twin})
        assert resp.status_code == 403, path
    db.session.expire_all()
    assert db.session.get(DedupeCluster, cid).status == "open"


@pytest.mark.parametrize("role", ["manager", "rep"])
def test_managers_and_reps_are_refused(clients, cluster, db, role):
    cid, s, twin = cluster
    client = getattr(clients, role)
    for path in ("/dedupe-review/", f"/dedupe-review/{cid}", "/dedupe-review/merges/"):
        assert client.get(path).status_code == 403, path
    resp = post(client, f"/dedupe-review/{cid}/merge", {"survivor": s, "merge": twin})
    assert resp.status_code == 403
    db.session.expire_all()
    assert db.session.get(Customer, twin) is not None


def test_merge_in_the_ui_with_field_winners_then_undo(clients, cluster, db):
    cid, s, twin = cluster
    resp = post(clients.staff, f"/dedupe-review/{cid}/merge",
                {"survivor": s, "merge": [s, twin], "field_name": s, "field_industry": twin,
                 "field_mobile": twin})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/customers/show/{s}")
    db.session.expire_all()
    kept = db.session.get(Customer, s)
    assert (kept.name, kept.industry, kept.mobile_e164) == ("杭州云帆科技有限公司", "软件",
                                                            "+8613600136009")
    assert db.session.get(DedupeCluster, cid).status == "merged"
    old = clients.staff.get(f"/customers/show/{twin}")
    assert old.status_code == 302 and old.headers["Location"].endswith(f"/customers/show/{s}")
    merges = clients.staff.get("/dedupe-review/merges/")
    record = db.session.execute(select(CustomerMerge)).scalar_one()
    assert f'data-merge="{record.id}"' in text(merges)
    resp = post(clients.staff, f"/dedupe-review/merges/{record.id}/undo", {},
                follow_redirects=True)
    assert f"已撤销合并：客户 #{twin} 已恢复。" in text(resp)
    db.session.expire_all()
    assert db.session.get(Customer, twin) is not None
    assert db.session.get(DedupeCluster, cid).status == "open"
    again = post(clients.staff, f"/dedupe-review/merges/{record.id}/undo", {},
                 follow_redirects=True)
    assert re.search(rf"合并 #{record.id} 已于 \d{{4}}-\d\d-\d\d \d\d:\d\d 撤销", text(again))


def test_dismiss_in_the_ui(clients, cluster, db):
    cid, s, twin = cluster
    resp = post(clients.admin, f"/dedupe-review/{cid}/dismiss", {}, follow_redirects=True)
    assert resp.status_code == 200
    db.session.expire_all()
    assert db.session.get(DedupeCluster, cid).status == "dismissed"
    dedupe_scan.scan()
    assert db.session.execute(select(DedupeCluster).where(
        DedupeCluster.status == "open")).first() is None


def test_csrf_is_required(clients, cluster, db):
    cid, s, twin = cluster
    for path, data in ((f"/dedupe-review/{cid}/merge", {"survivor": s, "merge": twin}),
                       (f"/dedupe-review/{cid}/dismiss", {}), ("/dedupe-review/scan", {})):
        resp = clients.admin.post(path, data=data)
        assert resp.status_code == 400 and "The CSRF token is missing." in text(resp)
        resp = clients.admin.post(path, data=dict(data, csrf_token="forged"))
        assert resp.status_code == 400 and "The CSRF token is invalid." in text(resp)
    db.session.expire_all()
    assert db.session.get(DedupeCluster, cid).status == "open"


def test_bad_input_is_a_message_not_a_500(clients, cluster, db, org):
    cid, s, twin = cluster
    staff = clients.staff
    resp = staff.get("/dedupe-review/999999", follow_redirects=True)
    assert resp.status_code == 200 and "查重组 #999999 不存在" in text(resp)
    resp = post(staff, f"/dedupe-review/{cid}/merge",
                {"survivor": org.c_north.id, "merge": twin}, follow_redirects=True)
    assert f"保留的客户 #{org.c_north.id} 不在查重组 #{cid} 中" in text(resp)
    resp = post(staff, f"/dedupe-review/{cid}/merge", {"survivor": "abc"},
                follow_redirects=True)
    assert resp.status_code == 200
    resp = post(staff, f"/dedupe-review/{cid}/merge", {"survivor": s,
                                                       "merge": org.c_north.id},
                follow_redirects=True)
    assert "不在该查重组中" in text(resp)
    resp = post(staff, "/dedupe-review/merges/424242/undo", {}, follow_redirects=True)
    assert "合并记录不存在" in text(resp)
    db.session.expire_all()
    assert db.session.get(DedupeCluster, cid).status == "open"


def test_a_stale_cluster_says_why(clients, cluster, db, org):
    cid, s, twin = cluster
    customers.delete_customer(org.admin, twin)
    page = clients.staff.get(f"/dedupe-review/{cid}")
    assert page.status_code == 200 and f"客户 #{twin} 已删除" in text(page)
    assert 'id="merge-button"' not in text(page)
    resp = post(clients.staff, f"/dedupe-review/{cid}/merge", {"survivor": s, "merge": twin},
                follow_redirects=True)
    assert "该查重组已过期" in text(resp)
    # Still dismissable (what remains of it).
    post(clients.staff, f"/dedupe-review/{cid}/dismiss", {})
    db.session.expire_all()
    assert db.session.get(DedupeCluster, cid).status == "dismissed"


def test_a_cluster_whose_member_was_merged_elsewhere_is_stale(clients, cluster, db, org):
    from app.services import merge

    cid, s, twin = cluster
    merge.merge(org.admin, org.c_rep2.id, [twin])
    resp = clients.admin.get(f"/dedupe-review/{cid}", follow_redirects=True)
    assert f"客户 #{twin} 已合并到 #{org.c_rep2.id}" in text(resp)


def test_scan_button_queues_the_job(clients, cluster, org, monkeypatch):
    """The job itself runs in a real worker in test_services_dedupe_scan; here the button
    queues it (or says jobs are paused), without leaving a job in the shared queue."""
    from app.services import dedupe_review

    queued = []
    monkeypatch.setattr(dedupe_review, "enqueue", lambda func, *args, **kw: queued.append(
        (func, args)) or object())
    resp = post(clients.staff, "/dedupe-review/scan", {}, follow_redirects=True)
    assert resp.status_code == 200 and queued == [("jobs.dedupe.scan_duplicates", (org.staff.id,))]
    monkeypatch.setattr(dedupe_review, "enqueue", lambda *a, **kw: None)
    resp = post(clients.staff, "/dedupe-review/scan", {}, follow_redirects=True)
    assert "后台任务已暂停（Redis 不可用）：未排队任何任务。" in text(resp)
