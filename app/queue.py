"""The one way the app queues background work, and the table of periodic jobs.

Callers name a job by its dotted path ("jobs.imports.run_import"): RQ imports it in the
worker, so nothing in app/ imports `jobs` (which builds the app: an import cycle).
`enqueue` answers None (and logs) when Redis is unreachable, so every caller can tell the
user that background jobs are paused instead of failing.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Optional

from flask_babel import lazy_gettext as _l
from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.job import Job

from app.redis_conn import forget_status, get_redis

log = logging.getLogger("guishu.jobs")


def get_queue(name: str = "default") -> Queue:
    return Queue(name, connection=get_redis())


def enqueue(func: str, *args: Any, queue: str = "default", **kwargs: Any) -> Optional[Job]:
    """Queue the job at dotted path `func` with (*args, **kwargs) and retries; None if Redis
    is unreachable."""
    try:
        return get_queue(queue).enqueue(func, *args, retry=Retry(max=3, interval=[10, 60, 300]),
                                        **kwargs)
    except (RedisError, OSError) as exc:
        log.warning("background jobs paused, could not queue %s: %s", func, exc)
        forget_status()
        return None


@dataclass(frozen=True)
class PeriodicJob:
    """One line of the schedule: `func` runs on `queue` at the cron time `env` names (UTC on
    our servers), else at `default_cron`."""

    name: str
    title: str  # lazy msgids: shown in the reader's language
    func: str
    env: str
    default_cron: str
    about: str
    args: tuple = ()
    queue: str = "default"
    timeout: Optional[int] = None  # seconds; None: RQ's default (180)

    @property
    def cron(self) -> str:
        return os.environ.get(self.env, self.default_cron)


# Read by `register_periodic_jobs` (for `rq cron jobs/cron.py`) and by the admins' job page.
PERIODIC: list[PeriodicJob] = [
    PeriodicJob("followup_digest", _l("Follow-up digest"),
                "jobs.ownership.followup_digest",
                "GUISHU_CRON_FOLLOWUP_DIGEST", "0 0 * * *",
                _l("each morning: the digest of follow-ups due and overdue")),
    PeriodicJob("reclaim_warnings", _l("Reclaim warnings"),
                "jobs.ownership.reclaim_warnings",
                "GUISHU_CRON_RECLAIM_WARNINGS", "0 1 * * *",
                _l("warn owners of customers about to be reclaimed")),
    PeriodicJob("refresh_normalised_keys", _l("Refresh dedupe keys"),
                "jobs.customers.refresh_normalised_keys",
                "GUISHU_CRON_REFRESH_KEYS", "30 2 * * *",
                _l("rewrite keys an older normaliser wrote")),
    PeriodicJob("classify_customers", _l("Customer classification"),
                "jobs.ownership.classify_customers",
                "GUISHU_CRON_CLASSIFY", "45 2 * * *",
                _l("potential / active / silent and grade A/B/C from the deals")),
    PeriodicJob("value_review", _l("Value re-evaluation"),
                "jobs.ownership.value_review",
                "GUISHU_CRON_VALUE_REVIEW", "15 19 * * 0",
                _l("weekly: proposals on key customers' grades and owners, for managers to decide")),
    # issue 20 §5: 流失风险, retrained nightly (after the classification, before the sweep)
    PeriodicJob("risk_train", _l("Risk model training"),
                "jobs.ownership.risk_train",
                "GUISHU_CRON_RISK", "50 2 * * *",
                _l("retrain the risk models on the history and score every held customer "
                   "with them; shown only while they beat days since the last follow-up"),
                # Training, then scoring every held customer: minutes at a million customers.
                timeout=3600),
    PeriodicJob("reclaim_sweep", _l("Reclaim sweep"),
                "jobs.ownership.reclaim_sweep",
                "GUISHU_CRON_RECLAIM", "0 3 * * *",
                _l("return due customers to their pools")),
    PeriodicJob("lead_reclaim_sweep", _l("Lead reclaim sweep"),
                "jobs.ownership.lead_reclaim_sweep",
                "GUISHU_CRON_LEAD_RECLAIM", "15 3 * * *",
                _l("return leads without follow-up to their lead pools")),
    PeriodicJob("lead_reclaim_warnings", _l("Lead reclaim warnings"),
                "jobs.leads.lead_reclaim_warnings",
                "GUISHU_CRON_LEAD_RECLAIM_WARNINGS", "5 1 * * *",
                _l("warn owners of leads about to be reclaimed")),
    PeriodicJob("lead_priority", _l("Lead priority"),
                "jobs.leads.lead_priority",
                "GUISHU_CRON_LEAD_PRIORITY", "30 3 * * *",
                _l("recompute the priority score of open leads (age, recent follow-ups)")),
    PeriodicJob("care_plan", _l("Care plan"),
                "jobs.care.care_plan",
                "GUISHU_CRON_CARE_PLAN", "30 22 * * *",
                _l("each morning: birthday and holiday greetings of the coming days into the outbox")),
    PeriodicJob("care_deliver", _l("Care delivery"),
                "jobs.care.care_deliver",
                "GUISHU_CRON_CARE_DELIVER", "*/10 * * * *",
                _l("send due care e-mail / SMS (retries with backoff) and the owners' care tasks")),
    PeriodicJob("campaign_deliver", _l("Campaign delivery"),
                "jobs.campaigns.campaign_deliver",
                "GUISHU_CRON_CAMPAIGN_DELIVER", "*/5 * * * *",
                _l("send due campaign e-mail / SMS inside each campaign's send window "
                   "(retries with backoff, opt-outs honoured)")),
    PeriodicJob("survey_deliver", _l("Survey invitations"),
                "jobs.surveys.survey_deliver",
                "GUISHU_CRON_SURVEY_DELIVER", "*/10 * * * *",
                _l("send pending survey invitations by e-mail / SMS (retries with backoff)")),
    PeriodicJob("task_reminders", _l("Task reminders"),
                "jobs.tasks.task_reminders",
                "GUISHU_CRON_TASK_REMINDERS", "*/5 * * * *",
                _l("tell owners once when their tasks fall due")),
    PeriodicJob("requeue_imports", _l("Requeue imports"),
                "jobs.imports.requeue_imports",
                "GUISHU_CRON_REQUEUE_IMPORTS", "*/5 * * * *",
                _l("queue again the imports started while Redis was down, once it is back")),
    # issue 17 H2: replies on tickets
    PeriodicJob("ticket_mail_deliver", _l("Ticket replies"),
                "jobs.tickets.ticket_mail_deliver",
                "GUISHU_CRON_TICKET_MAIL_DELIVER", "*/5 * * * *",
                _l("send the replies on tickets by e-mail (retries with backoff)")),
    PeriodicJob("sla_sweep", _l("SLA warnings and escalation"),
                "jobs.sla.sla_sweep",
                "GUISHU_CRON_SLA", "*/5 * * * *",
                _l("warn before ticket SLA targets fall due, mark breaches, escalate to the "
                   "team lead and then the manager")),
    PeriodicJob("dedicated_agents", _l("Dedicated service agents"),
                "jobs.service_desk.dedicated_agents",
                "GUISHU_CRON_DEDICATED_AGENTS", "0 4 * * *",
                _l("give grade-A customers without a dedicated service agent one from the "
                   "dedicated team (the least loaded agent present)")),
    # issue 20 §3: 归属效果评估, monthly (09:00 in Shanghai on the 1st)
    PeriodicJob("ownership_effect_mail", _l("Ownership effect report"),
                "jobs.ownership.ownership_effect_mail",
                "GUISHU_CRON_OWNERSHIP_EFFECT", "0 1 1 * *",
                _l("e-mail each sales manager the ownership-effect evaluation of their team "
                   "(the last twelve months)")),
    # issue 14: what each owner holds (app.services.tally), folded often so reads stay short
    PeriodicJob("tally_fold", _l("Owner counts"),
                "jobs.ownership.tally_fold",
                "GUISHU_CRON_TALLY_FOLD", "* * * * *",
                _l("fold the changes to each owner's customer counts into their totals (the "
                   "caps and the team view read both)")),
    # issue 20 §6: the dashboards' aggregates (app.services.stat_aggregates)
    PeriodicJob("stats_refresh", _l("Dashboard aggregates"),
                "jobs.stats.stats_refresh",
                "GUISHU_CRON_STATS_REFRESH", "*/5 * * * *",
                _l("count the events, follow-ups, deals and customers added since the last run "
                   "into the dashboards' daily aggregates")),
    PeriodicJob("stats_rebuild", _l("Dashboard aggregates rebuild"),
                "jobs.stats.stats_rebuild",
                "GUISHU_CRON_STATS_REBUILD", "30 19 * * *",
                _l("recount the dashboards' aggregates from scratch (merges, undos and "
                   "deletions rewrite the past)"), timeout=3600),
]


def schedule() -> list[dict]:
    """The periodic jobs with their effective schedules (for the job page)."""
    return [{"name": job.name, "title": job.title, "cron": job.cron, "env": job.env,
             "about": job.about}
            for job in PERIODIC]


def register_periodic_jobs() -> None:
    """Hand every periodic job to `rq cron` (called by its config module, jobs/cron.py).

    rq's register wants the function itself, so each one is imported here, in the scheduler
    process only."""
    from rq import cron
    from rq.utils import import_attribute

    for job in PERIODIC:
        cron.register(import_attribute(job.func), job.queue, args=job.args, cron=job.cron,
                      name=job.name, job_timeout=job.timeout)
