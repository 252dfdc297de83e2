"""The absence pages (each role its own leave and its scope's, cancelling through the
service) and the API key pages (the key shown once, rotate, revoke), and the workbench's
休假中 labels."""
from __future__ import annotations

import datetime as dt
import re
import sys

import pytest
from sqlalchemy import select

from app.models import Absence, ApiKey
from app.services import absences, api_keys
from app.services.times import local_today
from tests.test_views_access import flashes

TODAY = local_today()  # set again for each test (_today)


@pytest.fixture(autouse=True)
def _today(monkeypatch):
    """TODAY is the business day when the test starts: a date taken once at import went
    stale when the suite ran across midnight in Shanghai (16:00 UTC)."""
    monkeypatch.setattr(sys.modules[__name__], "TODAY", local_today())
DAY = dt.timedelta(days=1)
ROLES = ("admin", "manager", "rep", "staff", "auditor")


@pytest.fixture
def leave(db, org):
    """One absence each for rep1 (华东), rep3 (华北) and the auditor."""
    made = {name: absences.create_absence(getattr(org, name), getattr(org, name).id,
                                          TODAY, TODAY + DAY, f"{name} 的假")
            for name in ("rep", "rep_north", "auditor")}
    return {name: a.id for name, a in made.items()}


VISIBLE = {"admin": {"rep", "rep_north", "auditor"}, "staff": {"rep", "rep_north", "auditor"},
           "auditor": {"rep", "rep_north", "auditor"}, "manager": {"rep"}, "rep": {"rep"}}


@pytest.mark.parametrize("role", ROLES)
def test_the_list_shows_the_scopes_absences(role, clients, leave):
    html = getattr(clients, role).get("/absences/list/").get_data(as_text=True)
    shown = {int(i) for i in re.findall(r'href="/absences/show/(\d+)"', html)}
    assert shown == {leave[name] for name in VISIBLE[role]}
    assert ("休假中" in html) == bool(VISIBLE[role])


def _add(client, user_id, start, end, reason=""):
    return client.post("/absences/add", data={"csrf_token": client.csrf, "user": str(user_id),
                                              "starts_on": str(start), "ends_on": str(end),
                                              "reason": reason})


def _absences_of(db, user_id):
    db.session.commit()
    return [(a.starts_on, a.ends_on, a.created_by_id) for a in db.session.execute(
        select(Absence).where(Absence.user_id == user_id)).scalars()]


@pytest.mark.parametrize("role", ROLES)
def test_every_role_records_its_own_leave(role, clients, db, org):
    user = getattr(org, role)
    resp = _add(getattr(clients, role), user.id, TODAY, TODAY + 2 * DAY, "年假")
    assert resp.status_code == 302
    assert _absences_of(db, user.id) == [(TODAY, TODAY + 2 * DAY, user.id)]


def test_a_manager_records_a_team_members_leave_not_another_teams(clients, db, org):
    assert _add(clients.manager, org.rep2.id, TODAY, TODAY).status_code == 302
    assert _absences_of(db, org.rep2.id) == [(TODAY, TODAY, org.manager.id)]
    resp = _add(clients.manager, org.rep_north.id, TODAY, TODAY)
    assert resp.status_code == 200 and "不是有效的选择" in resp.get_data(as_text=True)
    assert _absences_of(db, org.rep_north.id) == []


@pytest.mark.parametrize("role", ["rep", "staff", "auditor"])
def test_others_cannot_record_someone_elses_leave(role, clients, db, org):
    resp = _add(getattr(clients, role), org.rep2.id, TODAY, TODAY)
    assert resp.status_code == 200 and "不是有效的选择" in resp.get_data(as_text=True)
    assert _absences_of(db, org.rep2.id) == []


def test_the_form_shows_the_services_refusal_next_to_the_field(clients, db, org, leave):
    resp = _add(clients.rep, org.rep.id, TODAY, TODAY - DAY)
    assert "结束日期不能早于开始日期" in resp.get_data(as_text=True)
    resp = _add(clients.rep, org.rep.id, TODAY + DAY, TODAY + 3 * DAY)
    assert f"测试rep1 已有休假 {TODAY}–{TODAY + DAY}，与此日期重叠" in flashes(
        resp.get_data(as_text=True))
    assert len(_absences_of(db, org.rep.id)) == 1


def _cancel(client, absence_id):
    resp = client.post(f"/absences/action/cancel/{absence_id}", data={"csrf_token": client.csrf})
    return resp, flashes(client.get("/absences/list/").get_data(as_text=True))


def _cancelled(db, absence_id):
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Absence, absence_id).cancelled_at is not None


@pytest.mark.parametrize("role,target,expected", [
    ("rep", "rep", "cancelled"), ("manager", "rep", "cancelled"), ("admin", "rep_north",
                                                                    "cancelled"),
    ("rep", "rep_north", 404), ("manager", "rep_north", 404),
    ("staff", "rep", "refused"), ("auditor", "rep", "refused"),
])
def test_cancel_by_role(role, target, expected, clients, db, leave):
    resp, flashed = _cancel(getattr(clients, role), leave[target])
    if expected == 404:
        assert resp.status_code == 404
    else:
        assert resp.status_code == 302
    assert _cancelled(db, leave[target]) == (expected == "cancelled")
    if expected == "refused":
        assert "您只能登记自己的休假；经理可登记其团队成员的休假，管理员可登记任何人的休假" in flashed


@pytest.mark.parametrize("role", ROLES)
def test_absences_are_never_edited_or_deleted_through_fab(role, clients, db, leave):
    client = getattr(clients, role)
    target = leave["rep"]
    assert client.get(f"/absences/edit/{target}").status_code in (403, 404)
    resp = client.post(f"/absences/delete/{target}", data={"csrf_token": client.csrf})
    assert resp.status_code in (403, 404)
    db.session.commit()
    assert db.session.get(Absence, target) is not None


def test_the_workbench_and_the_team_page_say_who_is_on_leave(clients, db, org, leave):
    page = clients.rep.get("/workbench/").get_data(as_text=True)
    assert f'id="my-absence">休假中 {TODAY}–{TODAY + DAY}<' in page
    team = clients.manager.get("/workbench/team").get_data(as_text=True)
    row = re.search(r'<tr data-user="rep1">.*?</tr>', team, re.S).group(0)
    assert f"休假中 {TODAY}–{TODAY + DAY}" in row
    row2 = re.search(r'<tr data-user="rep2">.*?</tr>', team, re.S).group(0)
    assert "休假中" not in row2


# --- API keys --------------------------------------------------------------------------------
def test_creating_a_key_shows_it_once(clients, db):
    client = clients.admin
    resp = client.post("/api-keys/add", data={"csrf_token": client.csrf, "name": "短信网关",
                                              "purpose": "sms_inbound"})
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    raw = re.search(r'<pre id="api-key-plaintext">([^<]+)</pre>', resp.get_data(as_text=True)
                    ).group(1)
    db.session.commit()
    key = db.session.execute(select(ApiKey).where(ApiKey.name == "短信网关")).scalar_one()
    assert api_keys.hash_key(raw) == key.secret_hash
    for page in ("/api-keys/list/", f"/api-keys/show/{key.id}"):
        html = client.get(page).get_data(as_text=True)
        assert key.prefix in html and raw not in html
    assert api_keys.authenticate(raw, "sms_inbound").id == key.id


def test_a_taken_name_is_refused_on_the_form(clients, db, org):
    api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    client = clients.admin
    resp = client.post("/api-keys/add", data={"csrf_token": client.csrf, "name": "短信网关",
                                              "purpose": "web_forms"})
    assert "已有名为 短信网关 的 API 密钥" in flashes(resp.get_data(as_text=True))
    assert 'id="api-key-plaintext"' not in resp.get_data(as_text=True)


def test_rotate_shows_the_new_key_once_and_revoke_lists_it_revoked(clients, db, org):
    key, old = api_keys.create_key(org.admin, "短信网关", "sms_inbound")
    client = clients.admin
    resp = client.post(f"/api-keys/action/rotate/{key.id}", data={"csrf_token": client.csrf})
    new = re.search(r'<pre id="api-key-plaintext">([^<]+)</pre>', resp.get_data(as_text=True)
                    ).group(1)
    assert new != old and resp.headers["Cache-Control"] == "no-store"
    resp = client.post(f"/api-keys/action/revoke/{key.id}", data={"csrf_token": client.csrf})
    assert resp.status_code == 302
    html = client.get("/api-keys/list/").get_data(as_text=True)
    assert "已吊销" in html
    db.session.expire_all()
    assert db.session.get(ApiKey, key.id).revoked_at is not None
