"""Jobs of the service desk's configuration: the grade-A dedicated agents."""
from __future__ import annotations

import logging

from jobs import job_app, periodic

log = logging.getLogger("guishu.jobs")


@periodic("dedicated_agents")
def dedicated_agents() -> int:
    """Daily: grade-A customers without a dedicated service agent get one (idempotent)."""
    from app.services.service_admin import assign_grade_a

    with job_app().app_context():
        given = assign_grade_a()
    log.info("dedicated_agents: %d customers given a dedicated agent", given)
    return given
