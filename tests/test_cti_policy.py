"""The policy's minimum talk time (call_min_talk_seconds): 30 seconds unless a policy says
otherwise, 0..86400, in the policy form, the policies API and a user's effective policy."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Policy
from app.services import policies, policy_config
from app.services.errors import ValidationFailed


def test_thirty_seconds_is_the_built_in_default(db, org):
    value = policies.effective_policy(org.rep.id)["call_min_talk_seconds"]
    assert value.value == 30 and value.source in ("built-in", "global")
    assert policies.GLOBAL_DEFAULTS["call_min_talk_seconds"] == 30


def test_department_and_user_policies_override_it(db, org):
    policy_config.create_policy(org.admin, {"scope": "department",
                                            "department_id": org.east.id,
                                            "call_min_talk_seconds": 60})
    policy_config.create_policy(org.admin, {"scope": "user", "user_id": org.rep.id,
                                            "call_min_talk_seconds": 0})
    assert policies.policy_value(org.rep.id, "call_min_talk_seconds") == 0
    assert policies.policy_value(org.rep2.id, "call_min_talk_seconds") == 60
    assert policies.policy_value(org.rep_north.id, "call_min_talk_seconds") == 30


@pytest.mark.parametrize("value, ok", [(0, True), (86_400, True), (-1, False),
                                       (86_401, False)])
def test_the_service_bounds_it(db, org, value, ok):
    data = {"scope": "user", "user_id": org.rep.id, "call_min_talk_seconds": value}
    if ok:
        assert policy_config.create_policy(org.admin, data).call_min_talk_seconds == value
    else:
        with pytest.raises(ValidationFailed) as refused:
            policy_config.create_policy(org.admin, data)
        assert set(refused.value.fields) == {"call_min_talk_seconds"}


@pytest.mark.parametrize("value, status", [(45, 200), (86_401, 400), (-3, 400), ("30", 400),
                                           (True, 400), (None, 200)])
def test_the_policies_api_reads_and_bounds_it(api, db, org, value, status):
    resp = api("admin")("POST", "/api/v1/policies/", json={
        "scope": "user", "user_id": org.rep.id, "call_min_talk_seconds": value})
    assert resp.status_code == status, resp.get_data(as_text=True)
    if status == 200:
        assert resp.get_json()["result"]["call_min_talk_seconds"] == value
    else:
        assert "call_min_talk_seconds" in resp.get_json()["fields"]
    effective = api("admin")("GET", f"/api/v1/policies/effective/{org.rep.id}").get_json()
    assert effective["result"]["call_min_talk_seconds"]["value"] == \
        (value if status == 200 and value is not None else 30)


def test_the_policy_form_has_it(admin_client, db, org):
    page = admin_client.get("/policies/add").get_data(as_text=True)
    assert 'name="call_min_talk_seconds"' in page
    resp = admin_client.post("/policies/add", data={
        "csrf_token": admin_client.csrf, "scope": "user", "user": str(org.rep.id),
        "call_min_talk_seconds": "90", "count_won": ""}, follow_redirects=True)
    assert resp.status_code == 200
    row = db.session.execute(select(Policy).where(Policy.user_id == org.rep.id)).scalar_one()
    assert row.call_min_talk_seconds == 90
    resp = admin_client.post(f"/policies/edit/{row.id}", data={
        "csrf_token": admin_client.csrf, "scope": "user", "user": str(org.rep.id),
        "call_min_talk_seconds": "90000", "count_won": ""})
    assert resp.status_code == 200
    db.session.expire_all()
    assert db.session.get(Policy, row.id).call_min_talk_seconds == 90


def test_a_segment_policy_cannot_set_it(db, org):
    with pytest.raises(ValidationFailed) as refused:
        policy_config.create_policy(org.admin, {"scope": "global", "segment_grade": "A",
                                                "call_min_talk_seconds": 10})
    assert "call_min_talk_seconds" in refused.value.fields
