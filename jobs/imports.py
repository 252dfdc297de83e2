"""Bulk import job: one batch, chunk by chunk, with progress for the import page."""
from __future__ import annotations

import logging

from jobs import job_app, report_progress

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
