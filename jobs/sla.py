"""Jobs on the service desk's SLA clocks: warnings, breaches and escalation."""
from __future__ import annotations

import logging

from jobs import job_app, periodic

log = logging.getLogger("guishu.jobs")


@periodic("sla_sweep")
def sla_sweep() -> dict:
    """Warn before SLA targets fall due, mark breaches, escalate to the team lead and then
    the manager (app.services.sla_sweep; a second run changes nothing)."""
    from app.services.sla_sweep import sweep

    with job_app().app_context():
        summary = sweep().summary()
    log.info("sla_sweep: %s", summary)
    return summary
