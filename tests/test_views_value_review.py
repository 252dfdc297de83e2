"""The value re-evaluation page: who sees it, what each sees, accept and dismiss through the
form (CSRF, the service's refusals as messages, never a 500)."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from app.models import Ownership, TransferRequest
from app.models.customer import utcnow
from app.models.value_review import ValueProposal
from app.services import value_review


def _proposals(db, org):
    for c in (org.c_rep, org.c_north):
        db.session.execute(update(Ownership).where(Ownership.customer_id == c.id).values(
            grade="A", acquired_at=utcnow() - dt.timedelta(days=90),
            last_followup_at=utcnow() - dt.timedelta(days=45)))
    db.session.commit()
    value_review.review()
    return {p.customer_id: p.id for p in db.session.execute(select(ValueProposal)).scalars()}


def test_who_reads_the_page_and_what(db, org, clients):
    ids = _proposals(db, org)
    page = clients.manager.get("/value-review/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "价值复评" in html and "杭州云帆科技有限公司" in html
    assert "北京华联商贸有限公司" not in html          # another department's customer
    assert f'data-id="{ids[org.c_rep.id]}"' in html and "接受" in html
    html = clients.auditor.get("/value-review/").get_data(as_text=True)
    assert "北京华联商贸有限公司" in html and 'class="form-inline accept"' not in html
    for role in ("rep", "staff", "marketing", "agent"):
        resp = getattr(clients, role).get("/value-review/")
        assert resp.status_code in (302, 403), role
    bad = clients.manager.get("/value-review/?kind=nonsense")
    assert bad.status_code == 200 and "类型只能是" in bad.get_data(as_text=True)


def test_accept_and_dismiss_through_the_form(db, org, clients):
    ids = _proposals(db, org)
    client = clients.manager
    pid = ids[org.c_rep.id]
    # no CSRF token: refused, nothing decided
    assert client.post(f"/value-review/{pid}/accept").status_code == 400
    assert db.session.get(ValueProposal, pid).status == "open"
    resp = client.post(f"/value-review/{pid}/accept", data={"csrf_token": client.csrf},
                       follow_redirects=True)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "进入审批流程" in html
    db.session.expire_all()
    p = db.session.get(ValueProposal, pid)
    assert p.status == "accepted"
    assert db.session.get(TransferRequest, p.transfer_id).status == "pending"
    # again: the refusal is a message
    again = client.post(f"/value-review/{pid}/accept", data={"csrf_token": client.csrf},
                        follow_redirects=True)
    assert "该建议已经处理过了" in again.get_data(as_text=True)
    # another department's proposal, a missing one, and an id beyond int8: not found / named
    other = ids[org.c_north.id]
    assert client.post(f"/value-review/{other}/dismiss",
                       data={"csrf_token": client.csrf, "reason": "x"}).status_code == 404
    assert client.post("/value-review/99999999/dismiss",
                       data={"csrf_token": client.csrf, "reason": "x"}).status_code == 404
    huge = client.post("/value-review/99999999999999999999/dismiss",
                       data={"csrf_token": client.csrf, "reason": "x"}, follow_redirects=True)
    assert huge.status_code in (200, 404)
    # dismissing needs a reason
    north = clients.admin
    empty = north.post(f"/value-review/{other}/dismiss",
                       data={"csrf_token": north.csrf, "reason": "  "}, follow_redirects=True)
    assert "请填写驳回原因" in empty.get_data(as_text=True)
    north.post(f"/value-review/{other}/dismiss",
               data={"csrf_token": north.csrf, "reason": "客户由总部直接维护"})
    db.session.expire_all()
    p = db.session.get(ValueProposal, other)
    assert (p.status, p.decision_note, p.decided_by_id) == ("dismissed", "客户由总部直接维护",
                                                           org.admin.id)
    # the auditor reads but cannot decide
    assert clients.auditor.post(f"/value-review/{pid}/dismiss",
                                data={"csrf_token": clients.auditor.csrf,
                                      "reason": "x"}).status_code in (302, 403)
