"""Jobs on ownership: the reclaim sweep."""
from __future__ import annotations

import logging

from jobs import job_app, periodic, report_progress

log = logging.getLogger("guishu.jobs")


@periodic("reclaim_sweep")
def reclaim_sweep(dry_run: bool = False) -> dict:
    """Return due customers to their pools (DESIGN invariant 5); the summary is the result."""
    from app.services.reclaim import sweep

    with job_app().app_context():
        summary = sweep(dry_run=dry_run, progress=report_progress).summary()
    log.info("reclaim_sweep: %s", summary)
    return summary


@periodic("lead_reclaim_sweep")
def lead_reclaim_sweep(dry_run: bool = False) -> dict:
    """Return leads without a follow-up for the owner's lead reclaim days to their lead pool."""
    from app.services.leads import reclaim_sweep

    with job_app().app_context():
        summary = reclaim_sweep(dry_run=dry_run).summary()
    log.info("lead_reclaim_sweep: %s", summary)
    return summary


@periodic("reclaim_warnings")
def reclaim_warnings() -> int:
    """Warn owners of customers due within their warn-before days (once per cycle)."""
    from app.services.reclaim import warn

    with job_app().app_context():
        sent = warn()
    log.info("reclaim_warnings: %d warnings", sent)
    return sent


@periodic("classify_customers")
def classify_customers() -> int:
    """Nightly: category and grade of every customer from its deals."""
    from app.services.classification import classify

    with job_app().app_context():
        done = classify()
    log.info("classify_customers: %d customers", done)
    return done


@periodic("value_review")
def value_review() -> dict:
    """Weekly: the value re-evaluation's proposals (it proposes; managers decide)."""
    from app.services.value_review import review

    with job_app().app_context():
        counts = review()
    log.info("value_review: %s", counts)
    return counts


@periodic("risk_train")
def risk_train() -> dict:
    """Nightly: retrain the risk models on the history and record whether each beats the
    baseline (web pages only score with what this stores)."""
    from app.services.risk import train

    with job_app().app_context():
        summary = {bt.kind: {"verdict": bt.verdict, "n_test": bt.n_test,
                             # null, not NaN, when there was nothing to test on
                             "model_auc": None if bt.model_auc != bt.model_auc
                             else round(bt.model_auc, 4),
                             "baseline_auc": None if bt.baseline_auc != bt.baseline_auc
                             else round(bt.baseline_auc, 4)}
                   for bt in train()}
    log.info("risk_train: %s", summary)
    return summary


@periodic("followup_digest")
def followup_digest() -> int:
    """Daily: each owner's follow-ups due today and overdue, as one in-app notification."""
    from app.services.followups import send_digests

    with job_app().app_context():
        sent = send_digests()
    log.info("followup_digest: %d digests", sent)
    return sent


@periodic("ownership_effect_mail")
def ownership_effect_mail() -> dict:
    """On the 1st: each sales manager's ownership-effect report of the last twelve months."""
    from app.services.ownership_effect_mail import send_monthly

    with job_app().app_context():
        run = send_monthly()
    summary = {"sent": len(run.sent), "skipped": len(run.skipped), "failed": len(run.failed)}
    log.info("ownership_effect_mail: %s", summary)
    return summary


@periodic("tally_fold")
def tally_fold() -> int:
    """Fold the owner tally's change rows into the totals (app.services.tally.fold)."""
    from app.services import tally

    with job_app().app_context():
        folded = tally.fold()
    log.info("tally_fold: %d changes", folded)
    return folded
