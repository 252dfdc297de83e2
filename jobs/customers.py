"""Jobs on customer records."""
from __future__ import annotations

import logging
from typing import Optional

from jobs import job_app, periodic

log = logging.getLogger("guishu.jobs")


@periodic("refresh_normalised_keys")
def refresh_normalised_keys(customer_ids: Optional[list[int]] = None) -> int:
    """Recompute stored phone/mobile/email keys written by an older normaliser (or given ids)."""
    from app.services.customers import refresh_all_normalised_keys

    with job_app().app_context():
        total = refresh_all_normalised_keys(customer_ids)
    log.info("refresh_normalised_keys: %d customers", total)
    return total


def recheck_duplicates(customer_id: int) -> int:
    """After a save: compare the record again with everything committed since (see
    app.services.dedupe.recheck); returns how many matches were flagged."""
    from app.services.dedupe import recheck

    with job_app().app_context():
        flagged = len(recheck(customer_id))
    if flagged:
        log.info("recheck_duplicates: customer %d flagged with %d matches", customer_id, flagged)
    return flagged
