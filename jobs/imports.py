"""Bulk import jobs: one batch, chunk by chunk, with progress for the import page; and the
periodic check that queues again the imports refused while Redis was down."""
from __future__ import annotations

import logging

from jobs import job_app, periodic, report_progress

log = logging.getLogger("guishu.jobs")


def run_import(batch_id: int) -> dict:
    """Import (or resume) one batch; see app.services.import_run.run."""
    from app.services import import_run

    with job_app().app_context():
        batch = import_run.run(batch_id, progress=report_progress)
        summary = {"batch": batch.id, "status": batch.status, "inserted": batch.inserted,
                   "duplicates": batch.duplicates, "invalid": batch.invalid}
    log.info("run_import: %s", summary)
    return summary


@periodic("requeue_imports")
def requeue_imports() -> dict:
    """Queue again the batches left queued without a job Redis knows (see
    app.services.import_run.requeue_stranded)."""
    from app.services import import_run

    with job_app().app_context():
        batches = import_run.requeue_stranded()
    summary = {"requeued": len(batches), "batches": batches}
    log.info("requeue_imports: %s", summary)
    return summary
