"""flask crm dedupe-train: estimates m/u on the stored customers without labels, stores the
model as the only active one (audited), and Matcher.current() scores with it; without a
trained model the shipped default applies."""
from __future__ import annotations

import json
import random

from sqlalchemy import select

from app.models import AuditLog, DedupeModel
from app.services import customers
from app.services.matching import Matcher, training
from app.services.matching.model import default_model


def _seed_customers(actor, n: int = 120) -> None:
    rnd = random.Random(11)
    cores = ["英荣润网络", "华星科技", "百花贸易", "云帆信息", "东方建材", "南山物流"]
    for i in range(n):
        core = rnd.choice(cores) + str(i // 3)  # three of a kind: duplicates to be found
        customers.create_customer(actor, {"name": f"{core}有限公司", "city": "杭州",
                                          "address": f"杭州市西湖区文三路{i // 3}号"},
                                  confirm_duplicates=True)
        customers.create_customer(actor, {"name": rnd.choice("张王李赵") + rnd.choice("伟丽军") +
                                          str(i // 3), "customer_type": "person",
                                          "birthday": f"19{60 + i // 3 % 30}-03-1{i % 2}",
                                          "address": f"杭州市滨江区长河路{i // 3}号"},
                                  confirm_duplicates=True)


def test_dedupe_train_stores_an_active_model_that_the_matcher_uses(app, db, org, monkeypatch):
    assert Matcher.current().model is default_model()
    monkeypatch.setattr(training, "MIN_PAIRS", 20)  # a small table still trains both types
    _seed_customers(org.admin)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["crm", "dedupe-train", "--user", "admin"])
    assert result.exit_code == 0, result.output
    row = db.session.execute(select(DedupeModel)).scalar_one()
    assert row.active and row.trained_by_id == org.admin.id and row.pairs_used > 0
    assert f"阈值：关联 ≥ {row.link_threshold:.1f}，复核 ≥ {row.review_threshold:.1f}" \
        in result.output
    assert "企业：" in result.output and "个人：" in result.output
    assert "name" in result.output and " m=" in result.output and " u=" in result.output
    stored = json.loads(row.model)
    assert stored["provenance"]["data"] == "this deployment's customers"
    current = Matcher.current()
    assert current.model is not default_model()
    assert current.link_threshold == row.link_threshold
    assert current.model.to_json()["fields"] == stored["fields"]
    audit = db.session.execute(select(AuditLog).where(AuditLog.object_type == "dedupe_model")
                               ).scalar_one()
    assert audit.action == "train" and audit.object_id == row.id
    assert audit.actor_id == org.admin.id

    # a second training replaces the active model; the first stays as history
    result = runner.invoke(args=["crm", "dedupe-train"])
    assert result.exit_code == 0, result.output
    rows = db.session.execute(select(DedupeModel).order_by(DedupeModel.id)).scalars().all()
    assert [r.active for r in rows] == [False, True] and rows[1].trained_by_id is None


def test_dedupe_train_refuses_an_unknown_user(app, db, org):
    result = app.test_cli_runner().invoke(args=["crm", "dedupe-train", "--user", "nobody"])
    assert result.exit_code != 0 and "no such user: nobody" in result.output
    assert db.session.execute(select(DedupeModel)).first() is None


def test_few_customers_keep_the_default_weights(app, db, org):
    customers.create_customer(org.admin, {"name": "云帆科技有限公司"}, confirm_duplicates=True)
    model, stats, _ = training.train_on_customers(None)
    assert stats["types"]["person"] == {"pairs": 0, "default": True}
    assert model.m["person"] == default_model().m["person"]
