"""The call centre's part of the demo (issue 18): every rep, sales manager and service agent
gets an agent number (rep1 → 8001 … rep20 → 8020, manager1 → 8101 …, agent1 → 9001 …) and
reports itself available; the sales regions and the service centre get call queues; rep1
has a short call history (an answered call, a three-second one that does not restart the
clock, a missed one with its call-back task) made through the simulator, so the call log,
the customer's timeline and the call statistics show something. No random draws: the rest
of the demo is unchanged.

`flask crm cti simulate --to rep1` then rings rep1's open browser (README)."""
from __future__ import annotations

import re

from sqlalchemy import select

from app.extensions import db
from app.models import Department, User
from app.models.customer import utcnow

QUEUES = {"销售中心": "sales", "华东大区": "sales-east", "上海团队": "sales-shanghai",
          "华北大区": "sales-north", "华南大区": "sales-south", "客服中心": "service"}
SERIES = {"rep": 8000, "manager": 8100, "agent": 9000, "svcmgr": 9100}


def agent_number(username: str):
    m = re.fullmatch(r"([a-z]+)(\d+)", username)
    if not m or m.group(1) not in SERIES:
        return None
    return str(SERIES[m.group(1)] + int(m.group(2)))


def build_cti_demo() -> dict:
    from app.services import cti_simulator

    now = utcnow()
    numbered = 0
    for user in db.session.execute(select(User).order_by(User.id)).scalars():
        number = agent_number(user.username)
        if number and not user.agent_no:
            user.agent_no, user.agent_status, user.agent_status_at = number, "available", now
            numbered += 1
    for dept in db.session.execute(select(Department).where(
            Department.name.in_(list(QUEUES)))).scalars():
        dept.cti_queue = dept.cti_queue or QUEUES[dept.name]
    db.session.commit()
    rep1 = db.session.execute(select(User).where(User.username == "rep1")).scalar_one_or_none()
    calls = 0
    if rep1 is not None and rep1.agent_no:
        for outcome, talk in (("answered", 125), ("answered", 3), ("missed", 0)):
            cti_simulator.simulate(rep1, outcome=outcome, talk_seconds=talk,
                                   recording=talk > 60, pause=0)
            calls += 1
    return {"agent_numbers": numbered, "calls": calls}
