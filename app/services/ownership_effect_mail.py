"""The monthly ownership-effect report (issue 20 §3) e-mailed to every sales manager, each over
their own scope: the plain-language line per rule and the key tables (rules, strategies,
channels, reps) as HTML, with a link to the page.

The period: the twelve months that ended with the previous month (business time), so that a
report sent on the 1st judges whole cohorts. Managers without an e-mail address, inactive
accounts and managers whose scope received no customer are skipped. A manager's failed
delivery is logged and does not stop the others (the job runs again next month; sending is
not retried: a report is a snapshot, not an obligation).
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Optional

from flask import current_app, render_template
from flask_babel import force_locale
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.models.customer import utcnow
from app.models.org import EMPLOYMENT_ACTIVE
from app.security import ROLE_MANAGER, has_role
from app.services import care_channels, ownership_effect
from app.services.errors import tr
from app.services.times import local_date

log = logging.getLogger("guishu.ownership_effect")
MAIL_TABLES = ("rule", "strategy", "channel", "rep")


@dataclass
class MailRun:
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def report_period(now: dt.datetime) -> tuple[dt.date, dt.date]:
    """The twelve whole months before the current business month."""
    first = local_date(now).replace(day=1)
    end = first - dt.timedelta(days=1)
    start = first.replace(year=first.year - 1)
    return start, end


def render(manager: User, now: dt.datetime) -> Optional[tuple[str, str, str]]:
    """(subject, text, html) of `manager`'s report; None when their scope received nothing."""
    start, end = report_period(now)
    report = ownership_effect.report(manager, str(start), str(end), now=now)
    if not report.overall:
        return None
    base = (current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    link = f"{base}/ownership-effect/?start={start}&end={end}"
    subject = tr("Ownership effect %(start)s to %(end)s", start=start, end=end)
    text = "\n".join([subject, ""] + report.lines + [
        "", ownership_effect.text_table(report, "overall"), link])
    html = render_template("guishu/ownership_effect_mail.html", report=report,
                           oe=ownership_effect, tables=MAIL_TABLES, link=link, subject=subject)
    return subject, text, html


def send_monthly(now: Optional[dt.datetime] = None) -> MailRun:
    """One mail per active sales manager with an e-mail address, in their own scope."""
    now = now or utcnow()
    run = MailRun()
    managers = db.session.execute(select(User).where(
        User.active.is_(True), User.employment_status == EMPLOYMENT_ACTIVE)
        .order_by(User.id)).scalars().all()
    for manager in managers:
        if not has_role(manager, ROLE_MANAGER):
            continue
        if not manager.email:
            run.skipped.append(manager.username)
            continue
        with force_locale(current_app.config.get("BABEL_DEFAULT_LOCALE", "zh")):
            mail = render(manager, now)
        if mail is None:
            run.skipped.append(manager.username)
            continue
        try:
            care_channels.send_email(manager.email, mail[0], mail[1], html=mail[2])
            run.sent.append(manager.username)
        except care_channels.DeliveryError as exc:
            log.warning("ownership effect mail to %s failed: %s", manager.username, exc)
            run.failed.append(manager.username)
    return run
