"""The config module of `rq cron jobs/cron.py` (one scheduler per deployment): rq imports it
and collects what it registers. The schedule itself is data, app.queue.PERIODIC, which the
admins' job page lists too."""
from app.queue import register_periodic_jobs

register_periodic_jobs()
