"""The risk models (流失风险) as trained: one row per training run and kind, the latest of a
kind being the one web requests score with. Coefficients, the features' means and scales, both
AUCs of the time-split backtest and the gate's verdict are stored, so a page only multiplies."""
from __future__ import annotations

from sqlalchemy import (Boolean, CheckConstraint, Column, DateTime, Float, ForeignKey, Index,
                        Integer, String, Text)

from flask_appbuilder import Model

from app.models.customer import utcnow

RISK_KINDS = ("lapse", "silent")


class RiskModel(Model):
    __tablename__ = "risk_model"
    __table_args__ = (
        CheckConstraint("kind in ('lapse', 'silent')", name="ck_risk_model_kind"),
        Index("ix_risk_model_kind_id", "kind", "id"),  # the latest run of a kind
    )
    id = Column(Integer, primary_key=True)
    # lapse: no follow-up before the reclaim deadline; silent: a won customer without a
    # follow-up or a deal in the next 90 days.
    kind = Column(String(10), nullable=False)
    trained_at = Column(DateTime, nullable=False, default=utcnow)
    # JSON: {"features": [...], "coef": [...], "intercept": x, "mean": [...], "scale": [...]};
    # null when there was too little history to fit.
    params = Column(Text)
    model_auc = Column(Float)
    baseline_auc = Column(Float)
    n_train = Column(Integer, nullable=False, default=0)
    n_test = Column(Integer, nullable=False, default=0)
    positives_train = Column(Integer, nullable=False, default=0)
    positives_test = Column(Integer, nullable=False, default=0)
    test_from = Column(DateTime)           # the split: outcomes after this are the test set
    # The gate: shown only when the model beats the baseline by the margin on enough examples.
    shown = Column(Boolean, nullable=False, default=False, server_default="0")
    verdict = Column(String(20), nullable=False)   # shown | not_better | too_few
    seconds = Column(Float)                # training time
    # When the nightly run stored this model's scores of every held customer (RiskScore):
    # what changed after it is scored again by the page. Null: no scores stored, the page
    # scores the owner's customers itself.
    scored_at = Column(DateTime)


class RiskScore(Model):
    """The riskiest held customers of each owner by one model, as scored by the nightly run
    (app.services.risk.score_all): the workbench's candidates, scored again when shown."""
    __tablename__ = "risk_score"
    model_id = Column(Integer, ForeignKey("risk_model.id", ondelete="CASCADE"),
                      primary_key=True)
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), primary_key=True)
    customer_id = Column(Integer, ForeignKey("customer.id", ondelete="CASCADE"),
                         primary_key=True, index=True)
    probability = Column(Float, nullable=False)
