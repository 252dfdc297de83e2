"""The review from the command line: scan, list clusters, merge (with a field taken from the
merged record), undo, dismiss; refusals for roles that may not review."""
from __future__ import annotations

from sqlalchemy import select

from app.models import Customer, CustomerMerge, DedupeCluster
from app.services import customers


def test_scan_list_merge_undo_and_dismiss_from_the_cli(app, db, org, tmp_path):
    twin = customers.create_customer(org.rep2, {"name": "云帆科技（杭州）有限公司",
                                                "mobile": "13600136019"},
                                     confirm_duplicates=True)
    runner = app.test_cli_runner()
    out = tmp_path / "clusters.csv"
    result = runner.invoke(args=["crm", "dedupe-scan", "--output", str(out)])
    assert result.exit_code == 0, result.output
    cid = db.session.execute(select(DedupeCluster.id)).scalar_one()
    result = runner.invoke(args=["crm", "dedupe-clusters", "--user", "staff1"])
    assert result.exit_code == 0, result.output
    assert f"cluster {cid}" in result.output and f"#{twin.id} 云帆科技（杭州）有限公司" in result.output
    result = runner.invoke(args=["crm", "dedupe-clusters", "--user", "rep1"])
    assert result.exit_code != 0 and "您的角色不能查看查重结果" in result.output
    result = runner.invoke(args=["crm", "dedupe-merge", str(cid), "--user", "rep1", "--keep",
                                 str(org.c_rep.id), "--merge", str(twin.id)])
    assert result.exit_code != 0 and "只有管理员和后台专员可以审核、合并重复客户" in result.output
    result = runner.invoke(args=["crm", "dedupe-merge", str(cid), "--user", "staff1", "--keep",
                                 str(org.c_rep.id), "--take", f"mobile={twin.id}"])
    assert result.exit_code == 0, result.output
    assert f"merged #{twin.id} into #{org.c_rep.id}" in result.output
    db.session.expire_all()
    assert db.session.get(Customer, twin.id) is None
    assert db.session.get(Customer, org.c_rep.id).mobile == "13600136019"
    merge_id = db.session.execute(select(CustomerMerge.id)).scalar_one()
    result = runner.invoke(args=["crm", "merge-undo", str(merge_id), "--user", "staff1"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    assert db.session.get(Customer, twin.id).name == "云帆科技（杭州）有限公司"
    assert db.session.get(Customer, org.c_rep.id).mobile == "13800138000"
    runner.invoke(args=["crm", "dedupe-scan"])
    cid = db.session.execute(select(DedupeCluster.id).where(
        DedupeCluster.status == "open")).scalar_one()
    result = runner.invoke(args=["crm", "dedupe-dismiss", str(cid), "--user", "admin"])
    assert result.exit_code == 0 and f"cluster {cid} dismissed" in result.output
    runner.invoke(args=["crm", "dedupe-scan"])
    assert db.session.execute(select(DedupeCluster.id).where(
        DedupeCluster.status == "open")).first() is None  # not proposed again
