"""Jobs for tickets: send the replies to customers by e-mail (every few minutes, and at once
for each new reply)."""
from __future__ import annotations

import logging

from jobs import job_app, periodic

log = logging.getLogger("guishu.jobs")


@periodic("ticket_mail_deliver")
def ticket_mail_deliver() -> dict:
    """Every few minutes: send the due replies (retries with backoff)."""
    from app.services.ticket_mail import deliver

    with job_app().app_context():
        summary = deliver().summary()
    log.info("ticket_mail_deliver: %s", summary)
    return summary


def ticket_reply_deliver(message_id: int) -> dict:
    """Queued by tickets.reply: send that one reply now, if it is still due."""
    from app.services.ticket_mail import deliver

    with job_app().app_context():
        summary = deliver(only=message_id).summary()
    log.info("ticket_reply_deliver %s: %s", message_id, summary)
    return summary
