"""The notification centre: the bell's unread count, one's own notifications only, open
(marks read and follows a local link) and mark-all-read, with CSRF."""
from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.models import Notification
from app.services import notifications, transfers
from tests.test_views_ownership import post


def unread_badge(html: str):
    m = re.search(r'id="unread-count">(\d+)<', html)
    return int(m.group(1)) if m else 0


def test_transfer_notifies_the_approver_who_opens_it_from_the_bell(clients, db, org):
    t = transfers.create_transfer(org.rep, [org.c_rep.id], org.rep2.id, "客户要求", "other")
    home = clients.manager.get("/").get_data(as_text=True)
    assert unread_badge(home) == 1
    page = clients.manager.get("/notifications/").get_data(as_text=True)
    note = db.session.execute(select(Notification).where(
        Notification.user_id == org.manager.id)).scalar_one()
    assert f'data-id="{note.id}"' in page and "待审批的客户转移" in page
    resp = post(clients.manager, f"/notifications/{note.id}/open", {})
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/transfers/{t.id}")
    assert unread_badge(clients.manager.get("/").get_data(as_text=True)) == 0


def test_nobody_opens_or_sees_another_users_notification(clients, db, org):
    notifications.notify([org.rep2.id], "test", "给 rep2 的通知", link="/transfers/")
    db.session.commit()
    note = db.session.execute(select(Notification)).scalar_one()
    assert "给 rep2 的通知" not in clients.rep.get("/notifications/").get_data(as_text=True)
    assert post(clients.rep, f"/notifications/{note.id}/open", {}).status_code == 404
    assert post(clients.rep, "/notifications/999999/open", {}).status_code == 404
    db.session.expire_all()
    assert db.session.get(Notification, note.id).read_at is None


def test_mark_all_read_touches_only_mine(clients, db, org):
    notifications.notify([org.rep.id], "test", "一")
    notifications.notify([org.rep.id], "test", "二")
    notifications.notify([org.rep2.id], "test", "三")
    db.session.commit()
    assert unread_badge(clients.rep.get("/").get_data(as_text=True)) == 2
    resp = post(clients.rep, "/notifications/read-all", {}, follow_redirects=True)
    assert "已将 2 条通知标记为已读。" in resp.get_data(as_text=True)
    assert notifications.unread_count(org.rep.id) == 0
    assert notifications.unread_count(org.rep2.id) == 1


def test_posts_need_the_csrf_token(clients, db, org):
    notifications.notify([org.rep.id], "test", "一")
    db.session.commit()
    note = db.session.execute(select(Notification)).scalar_one()
    for path in (f"/notifications/{note.id}/open", "/notifications/read-all"):
        resp = clients.rep.post(path)
        assert resp.status_code == 400
        assert "The CSRF token is missing." in resp.get_data(as_text=True)
    assert notifications.unread_count(org.rep.id) == 1


def test_an_outside_link_is_not_followed(clients, db, org):
    notifications.notify([org.rep.id], "test", "外链", link="//evil.example/x")
    db.session.commit()
    note = db.session.execute(select(Notification)).scalar_one()
    resp = post(clients.rep, f"/notifications/{note.id}/open", {})
    assert resp.headers["Location"].endswith("/notifications/")


@pytest.mark.parametrize("role", ["admin", "manager", "rep", "staff", "auditor"])
def test_every_role_has_the_bell_and_the_page(clients, role):
    client = getattr(clients, role)
    assert 'id="notifications-link"' in client.get("/").get_data(as_text=True)
    assert client.get("/notifications/").status_code == 200


def test_signed_out_is_sent_to_login(app, org):
    resp = app.test_client().get("/notifications/")
    assert resp.status_code == 302 and "/login" in resp.headers["Location"]
