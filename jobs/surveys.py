"""Job delivering survey invitations (e-mail / SMS with the /s/<token> link)."""
from __future__ import annotations

import logging

from jobs import job_app, periodic, report_progress

log = logging.getLogger("guishu.jobs")


@periodic("survey_deliver")
def survey_deliver() -> dict:
    """Every few minutes, and queued at once when a survey is sent: the pending invitations
    go out; failures are retried with backoff."""
    from app.services.surveys import deliver

    with job_app().app_context():
        summary = deliver(progress=report_progress).summary()
    log.info("survey_deliver: %s", summary)
    return summary
