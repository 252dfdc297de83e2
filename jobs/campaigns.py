"""Jobs for campaign sending: deliver the campaign outbox every few minutes."""
from __future__ import annotations

import logging

from jobs import job_app, periodic, report_progress

log = logging.getLogger("guishu.jobs")


@periodic("campaign_deliver")
def campaign_deliver() -> dict:
    """Every few minutes: send the due e-mail / SMS of running campaigns inside their window."""
    from app.services.campaign_sending import deliver

    with job_app().app_context():
        summary = deliver(progress=report_progress).summary()
    log.info("campaign_deliver: %s", summary)
    return summary
