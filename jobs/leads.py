"""Jobs on leads: the nightly priority recompute (age and recent engagement change with the
calendar, not with a write)."""
from __future__ import annotations

import logging

from jobs import job_app, periodic

log = logging.getLogger("guishu.jobs")


@periodic("lead_priority")
def lead_priority() -> int:
    """Every night: one UPDATE recomputes the priority score of every open lead."""
    from app.services.lead_priority import recompute_all

    with job_app().app_context():
        written = recompute_all()
    log.info("lead_priority: %d leads", written)
    return written


@periodic("lead_reclaim_warnings")
def lead_reclaim_warnings() -> int:
    """Warn owners (or their stand-ins) of leads the lead sweep takes within warn-before days."""
    from app.services.lead_warnings import warn

    with job_app().app_context():
        sent = warn()
    log.info("lead_reclaim_warnings: %d warnings", sent)
    return sent
