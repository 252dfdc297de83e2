"""Jobs for birthday and holiday care: plan the outbox daily, deliver it every few minutes."""
from __future__ import annotations

import logging

from jobs import job_app, periodic, report_progress

log = logging.getLogger("guishu.jobs")


@periodic("care_plan")
def care_plan() -> dict:
    """Daily: greetings for the birthdays and holidays of the next `days_ahead` days."""
    from app.services.care import plan

    with job_app().app_context():
        summary = plan().summary()
    log.info("care_plan: %s", summary)
    return summary


@periodic("care_deliver")
def care_deliver() -> dict:
    """Every few minutes: send the outbox's due e-mail / SMS and the owners' tasks."""
    from app.services.care import deliver

    with job_app().app_context():
        summary = deliver(progress=report_progress).summary()
    log.info("care_deliver: %s", summary)
    return summary
