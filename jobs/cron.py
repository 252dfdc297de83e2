"""Every periodic job, registered in one place for `rq cron jobs/cron.py` (one scheduler per
deployment). Each schedule is a cron expression (the scheduler's clock, UTC on our servers)
that an environment variable overrides; the admins' job page lists the same table."""
from __future__ import annotations

import os

from rq import cron

from jobs.care import care_deliver, care_plan
from jobs.customers import refresh_normalised_keys
from jobs.ownership import classify_customers, followup_digest, reclaim_sweep, reclaim_warnings

# (name, job, environment variable, default schedule, what it is for)
PERIODIC = [
    ("followup_digest", followup_digest, "GUISHU_CRON_FOLLOWUP_DIGEST", "0 0 * * *",
     "each morning (08:00 Beijing): the digest of follow-ups due and overdue"),
    ("reclaim_warnings", reclaim_warnings, "GUISHU_CRON_RECLAIM_WARNINGS", "0 1 * * *",
     "warn owners of customers about to be reclaimed"),
    ("refresh_normalised_keys", refresh_normalised_keys, "GUISHU_CRON_REFRESH_KEYS",
     "30 2 * * *", "rewrite keys an older normaliser wrote"),
    ("classify_customers", classify_customers, "GUISHU_CRON_CLASSIFY", "45 2 * * *",
     "potential / active / silent and grade A/B/C from the deals"),
    ("reclaim_sweep", reclaim_sweep, "GUISHU_CRON_RECLAIM", "0 3 * * *",
     "return due customers to their pools"),
    ("care_plan", care_plan, "GUISHU_CRON_CARE_PLAN", "30 22 * * *",
     "06:30 Beijing: birthday and holiday greetings of the coming days into the outbox"),
    ("care_deliver", care_deliver, "GUISHU_CRON_CARE_DELIVER", "*/10 * * * *",
     "send due care e-mail / SMS (retries with backoff) and the owners' care tasks"),
]


def schedule() -> list[dict]:
    """The periodic jobs with their effective schedules (for the job page)."""
    return [{"name": name, "cron": os.environ.get(env, default), "env": env, "about": about}
            for name, _, env, default, about in PERIODIC]


for _name, _func, _env, _default, _ in PERIODIC:
    cron.register(_func, "default", cron=os.environ.get(_env, _default), name=_name)
