"""Jobs on the dashboards' aggregates (app.services.stat_aggregates)."""
from __future__ import annotations

import logging

from jobs import job_app, periodic

log = logging.getLogger("guishu.jobs")


@periodic("stats_refresh")
def stats_refresh() -> dict:
    """Count the rows added since the last run into stat_daily (one watermark per source)."""
    from app.services import stat_aggregates

    with job_app().app_context():
        counted = stat_aggregates.refresh()
    log.info("stats_refresh: %s", counted)
    return counted


@periodic("stats_rebuild")
def stats_rebuild() -> dict:
    """Recount stat_daily from scratch: merges, undos and deletions rewrite the past."""
    from app.services import stat_aggregates

    with job_app().app_context():
        counted = stat_aggregates.rebuild()
    log.info("stats_rebuild: %s", counted)
    return counted
