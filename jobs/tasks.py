"""Jobs for tasks (待办): remind owners of the tasks that fell due."""
from __future__ import annotations

import logging

from jobs import job_app, periodic

log = logging.getLogger("guishu.jobs")


@periodic("task_reminders")
def task_reminders() -> int:
    """Every few minutes: one notification per owner for the tasks that fell due since."""
    from app.services.tasks import remind_due

    with job_app().app_context():
        reminded = remind_due()
    log.info("task_reminders: %d tasks", reminded)
    return reminded
