"""The lead priority score: each rule's points (source, completeness, engagement, age) as the
explanation shows them, recomputed on create, edit and follow-up and by the nightly job; the
list and the API sort by it."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import update

from app.models import Lead
from app.models.customer import utcnow
from app.services import lead_priority, leads

FULL = {"company_name": "优先级测试有限公司", "person_name": "赵", "mobile": "13700001111",
        "email": "zhao@example.com", "city": "宁波", "source": "referral"}


def parts(db, lead_id) -> dict:
    db.session.commit()
    db.session.expire_all()
    lead = db.session.get(Lead, lead_id)
    return {p["rule"]: p["points"] for p in lead_priority.explanation(lead)} | {
        "score": lead.priority_score}


def age(db, lead_id, days) -> None:
    db.session.execute(update(Lead).where(Lead.id == lead_id).values(
        created_at=utcnow() - dt.timedelta(days=days)))
    db.session.commit()


def test_a_new_lead_is_scored_by_every_rule(db, org):
    lead = leads.create_lead(org.rep, FULL)
    # referral 30; company 5 + person 5 + mobile 10 + e-mail 5 + city 5; no follow-up; new 20
    assert parts(db, lead.id) == {"source": 30, "completeness": 30, "engagement": 0,
                                  "age": 20, "score": 80}
    bare = leads.create_lead(org.rep, {"person_name": "钱"})
    assert parts(db, bare.id) == {"source": 0, "completeness": 5, "engagement": 0, "age": 20,
                                  "score": 25}


def test_the_explanation_names_each_rule_in_the_readers_language(db, org, app):
    lead = leads.create_lead(org.rep, dict(FULL, source="exhibition", phone="057487650000"))
    db.session.commit()
    with app.test_request_context():
        shown = {p["rule"]: (p["label"], p["detail"], p["points"])
                 for p in lead_priority.explanation(db.session.get(Lead, lead.id))}
    assert shown["source"] == ("来源渠道", "展会", 25)
    assert shown["completeness"] == ("已填写的联系信息", "6 项中的 6 项", 35)
    assert shown["engagement"] == ("最近 14 天的跟进", "每次 10 分，最多 30 分", 0)
    assert shown["age"][0] == "线索新旧" and shown["age"][2] == 20


def test_follow_ups_add_points_up_to_the_cap(db, org):
    lead = leads.create_lead(org.rep, FULL)
    leads.log_lead_followup(org.rep, lead.id, {"channel": "call", "content": "聊了需求"})
    assert parts(db, lead.id)["engagement"] == 10
    for n in range(3):
        leads.log_lead_followup(org.rep, lead.id, {"channel": "call", "content": f"第{n}次"})
    assert parts(db, lead.id) == {"source": 30, "completeness": 30, "engagement": 30,
                                  "age": 20, "score": 110}


def test_an_edit_recomputes_the_score(db, org):
    lead = leads.create_lead(org.rep, FULL)
    leads.update_lead(org.rep, lead.id, {"email": "", "source": "advertising"})
    assert parts(db, lead.id) == {"source": 10, "completeness": 25, "engagement": 0,
                                  "age": 20, "score": 55}


@pytest.mark.parametrize("days, points", [(2, 20), (5, 15), (20, 5), (45, 0)])
def test_the_nightly_job_ages_open_leads(db, org, days, points):
    lead = leads.create_lead(org.rep, FULL)
    age(db, lead.id, days)
    assert parts(db, lead.id)["age"] == 20  # stored: nothing wrote the lead since
    from jobs.leads import lead_priority as job

    assert job() >= 1
    assert parts(db, lead.id)["age"] == points
    assert parts(db, lead.id)["score"] == 60 + points


def test_old_follow_ups_stop_counting_and_closed_leads_keep_their_score(db, org):
    lead = leads.create_lead(org.rep, FULL)
    leads.log_lead_followup(org.rep, lead.id, {"channel": "call", "content": "早先的跟进"})
    closed = leads.create_lead(org.rep, dict(FULL, company_name="已无效公司",
                                             mobile="13700002222", email="x@example.com"))
    leads.mark_invalid(org.rep, closed.id, "空号")
    age(db, closed.id, 100)
    later = utcnow() + dt.timedelta(days=lead_priority.ENGAGEMENT_DAYS + 1)
    lead_priority.recompute_all(now=later)
    assert parts(db, lead.id)["engagement"] == 0
    assert parts(db, closed.id)["score"] == 80  # invalid: not recomputed


def test_the_list_sorts_by_priority(db, org, rep_client, admin_client):
    clients_admin = admin_client
    low = leads.create_lead(org.rep, {"person_name": "低分"})
    high = leads.create_lead(org.rep, FULL)
    html = rep_client.get("/leads/list/?_oc_LeadView=priority_score&_od_LeadView=desc"
                          ).get_data(as_text=True)
    assert html.index(f"/leads/show/{high.id}\"") < html.index(f"/leads/show/{low.id}\"")
    html = rep_client.get("/leads/list/?_oc_LeadView=priority_score&_od_LeadView=asc"
                          ).get_data(as_text=True)
    assert html.index(f"/leads/show/{low.id}\"") < html.index(f"/leads/show/{high.id}\"")
    pooled_low = leads.create_lead(org.staff, {"person_name": "公海低分"})
    pooled_high = leads.create_lead(org.staff, dict(FULL, company_name="公海高分公司",
                                                    mobile="13700005555",
                                                    email="p@example.com"))
    html = clients_admin.get("/lead-pool/list/?_oc_LeadPoolView=priority_score"
                             "&_od_LeadPoolView=desc").get_data(as_text=True)
    assert html.index(f"/lead-pool/show/{pooled_high.id}\"") \
        < html.index(f"/lead-pool/show/{pooled_low.id}\"")
    page = rep_client.get(f"/leads/show/{high.id}").get_data(as_text=True)
    assert 'id="lead-priority-score">80<' in page
    assert 'data-rule="source"><td>来源渠道</td><td class="text-muted">转介绍</td>' \
        '<td class="text-right">+30</td>' in page


def test_the_api_sorts_and_pages_by_priority(db, org, api):
    made = [leads.create_lead(org.rep, {"person_name": f"API{n}",
                                        **({"mobile": f"1370000300{n}"} if n % 2 else {})})
            for n in range(5)]
    call = api(org.rep.username)
    resp = call("GET", "/api/v1/leads/?sort=priority&page_size=2")
    assert resp.status_code == 200
    body = resp.get_json()
    seen = [r["id"] for r in body["result"]]
    scores = [r["priority_score"] for r in body["result"]]
    while body["next_after"]:
        body = call("GET", f"/api/v1/leads/?sort=priority&page_size=2"
                           f"&after={body['next_after']}").get_json()
        seen += [r["id"] for r in body["result"]]
        scores += [r["priority_score"] for r in body["result"]]
    assert sorted(seen) == sorted(m.id for m in made)
    assert scores == sorted(scores, reverse=True) and scores[0] == 35 and scores[-1] == 25
    first = call("GET", f"/api/v1/leads/{made[1].id}").get_json()["result"]
    assert first["priority_parts"] == {"source": 0, "completeness": 15, "engagement": 0,
                                       "age": 20}
    bad = call("GET", "/api/v1/leads/?sort=random")
    assert bad.status_code == 400
    assert bad.get_json()["fields"] == {"sort": "sort 只能是：newest, priority"}


def test_a_priority_cursor_naming_anothers_lead_tells_nothing_of_its_score(db, org, api):
    """after=<a lead outside my scope> pages as if by id: the page does not depend on that
    lead's score (which would leak it through the order)."""
    mine = [leads.create_lead(org.rep, {"person_name": f"我的{n}", "mobile": f"1370000800{n}",
                                        "source": "referral"}) for n in range(3)]
    other = leads.create_lead(org.rep_north, {"person_name": "华北的"})  # a low score
    assert other.priority_score < min(m.priority_score for m in mine)
    call = api(org.rep.username)
    page = call("GET", f"/api/v1/leads/?sort=priority&after={other.id}").get_json()
    assert sorted(r["id"] for r in page["result"]) == sorted(m.id for m in mine)
