"""Every periodic job, registered in one place for `rq cron jobs/cron.py` (one per deployment)."""
from __future__ import annotations

import os

from rq import cron

from jobs.customers import refresh_normalised_keys
from jobs.ownership import (classify_customers, followup_digest, reclaim_sweep,
                            reclaim_warnings)

# Nightly: rewrite keys that an older normaliser wrote (after an upgrade changes the rules).
cron.register(refresh_normalised_keys, "default",
              cron=os.environ.get("GUISHU_CRON_REFRESH_KEYS", "30 2 * * *"),
              name="refresh_normalised_keys")

# Nightly: reclaim due customers (times are the scheduler's clock; override per deployment).
cron.register(reclaim_sweep, "default",
              cron=os.environ.get("GUISHU_CRON_RECLAIM", "0 3 * * *"),
              name="reclaim_sweep")

# Daily, before the working day: warn owners of customers about to be reclaimed.
cron.register(reclaim_warnings, "default",
              cron=os.environ.get("GUISHU_CRON_RECLAIM_WARNINGS", "0 1 * * *"),
              name="reclaim_warnings")

# Nightly, before the sweep: potential / active / silent and grade A/B/C from the deals.
cron.register(classify_customers, "default",
              cron=os.environ.get("GUISHU_CRON_CLASSIFY", "45 2 * * *"),
              name="classify_customers")

# Each morning (00:00 UTC = 08:00 in Beijing): the digest of follow-ups due and overdue.
cron.register(followup_digest, "default",
              cron=os.environ.get("GUISHU_CRON_FOLLOWUP_DIGEST", "0 0 * * *"),
              name="followup_digest")
