"""Jobs of the dedupe review: the batch scan behind the review page's button."""
from __future__ import annotations

import logging
from typing import Optional

from jobs import job_app, report_progress

log = logging.getLogger("guishu.jobs")


def scan_duplicates(actor_id: Optional[int] = None) -> dict:
    """Find duplicate clusters across all customers (app.services.dedupe_scan.scan),
    replacing the open ones; progress is shown on the jobs page while it runs."""
    from app.services.dedupe_scan import scan

    with job_app().app_context():
        summary = scan(actor_id, progress=report_progress).summary()
    log.info("scan_duplicates: %s", summary)
    return summary
