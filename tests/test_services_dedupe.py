"""Dedupe on entry: block vs warn per rule, the answer naming the customer and its holder
(never its contact details) whoever asks, owned / pool / locked holders, fuzzy company names
within a city, person name + birthday, edits and contacts, the rules form, the customers API
and POST /api/v1/dedupe/check, and the add form's "save anyway"."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.models import AuditLog, Customer, DedupeRule, Ownership
from app.services import assignment, customers, dedupe
from app.services.errors import Duplicate, DuplicateWarning, ValidationFailed
from tests.conftest import _client
from tests.test_views_ownership import post


def refused(exc_type, fn, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as err:
        fn(*args, **kwargs)
    return err.value.message


def set_rule(db, kind, **values):
    db.session.execute(update(DedupeRule).where(DedupeRule.kind == kind).values(**values))
    db.session.commit()


# --- exact keys block -----------------------------------------------------------------------
@pytest.mark.parametrize("who", ["rep2", "rep_north", "staff", "manager_north"])
def test_a_taken_mobile_is_refused_naming_the_holder_whoever_asks(db, org, who):
    message = refused(Duplicate, customers.create_customer, getattr(org, who),
                      {"name": "新客户", "mobile": "+86 138-0013-8000"})
    assert message == "已存在：客户 杭州云帆科技有限公司，负责人 测试rep1（华东大区）（手机号）"
    assert "138" not in message  # no contact details of someone else's customer


def test_numbers_and_mail_match_across_customers_and_contacts(db, org):
    customers.add_contact(org.rep_north, org.c_north.id, {"name": "刘经理",
                                                         "mobile": "13600136000"})
    message = refused(Duplicate, customers.create_customer, org.rep,
                      {"name": "另一家公司", "phone": "136 0013 6000"})
    assert message.startswith("已存在：客户 北京华联商贸有限公司，负责人 测试rep3（华北大区）")
    message = refused(Duplicate, customers.create_customer, org.rep,
                      {"name": "第三家公司", "email": " CONTACT@hualian.CN "})
    assert "北京华联商贸有限公司" in message and message.endswith("（邮箱）")


def test_pool_and_locked_holders_are_named(db, org):
    message = refused(Duplicate, customers.create_customer, org.rep,
                      {"name": "申达", "phone": "02162345678"})
    assert message == "已存在：客户 上海申达物流有限公司，在公海『默认公海』中（固定电话）"
    assert assignment.lock(org.rep, [org.c_rep.id])
    message = refused(Duplicate, customers.create_customer, org.rep2,
                      {"name": "云帆", "mobile": "13800138000"})
    assert "负责人 测试rep1（华东大区），已锁定（手机号）" in message


def test_a_switched_off_rule_lets_the_value_through(db, org):
    set_rule(db, "mobile", active=False)
    c = customers.create_customer(org.rep2, {"name": "共用手机的公司", "mobile": "13800138000"})
    assert c.mobile_e164 == "+8613800138000"


# --- names warn -------------------------------------------------------------------------------
def test_the_same_company_warns_and_saves_once_confirmed(db, org):
    for name in ("杭州云帆科技股份有限公司", "云帆科技（杭州）有限公司", "杭州市云帆科技有限公司"):
        message = refused(DuplicateWarning, customers.create_customer, org.rep2, {"name": name})
        assert message.startswith("已存在：客户 杭州云帆科技有限公司，负责人 测试rep1（华东大区）"
                                  "（企业名称（核心名））")
        assert message.endswith("确认不是同一客户后可勾选“仍然保存”")
    c = customers.create_customer(org.rep2, {"name": "云帆科技（杭州）有限公司"},
                                  confirm_duplicates=True)
    audit = db.session.execute(select(AuditLog).where(
        AuditLog.action == "dedupe_confirmed", AuditLog.object_id == c.id)).scalar_one()
    assert audit.actor_id == org.rep2.id


def test_fuzzy_names_match_above_the_threshold_within_the_city(db, org):
    # 云帆信息科技 vs 云帆科技: 80% similar — below the default 90.
    customers.create_customer(org.rep2, {"name": "杭州云帆信息科技有限公司", "city": "杭州"})
    set_rule(db, "company_name", threshold=75)
    message = refused(DuplicateWarning, customers.create_customer, org.rep2,
                      {"name": "杭州云帆信息技术有限公司"})
    assert message == ("已存在：客户 杭州云帆信息科技有限公司，负责人 测试rep2（华东大区）"
                       "（企业名称（核心名），相似度 83%）。确认不是同一客户后可勾选“仍然保存”")
    # Same core name in another city: not a match while "same city only" is on.
    customers.create_customer(org.rep2, {"name": "北京云帆科技有限公司", "city": "北京"})
    set_rule(db, "company_name", same_city=False)
    assert "杭州云帆科技有限公司" in refused(DuplicateWarning, customers.create_customer,
                                         org.rep2, {"name": "南京云帆科技有限公司"})


def test_a_country_in_the_name_is_no_other_city(db, org):
    held = customers.create_customer(org.rep, {"name": "翔维技术有限公司", "city": "佛山"})
    for values in ({"name": "翔维（中国）技术有限公司", "city": "佛山"},
                   {"name": "翔维（中国）技术有限公司"}, {"name": "中国翔维技术有限公司"}):
        body = dedupe.check(org.rep2, values)
        assert [(m["rule"], m["customer_id"], m["score"]) for m in body["matches"]] == [
            ("company_name", held.id, 100)], values
    body = dedupe.check(org.rep2, {"name": "翔维（中国）技术有限公司", "city": "广州"})
    assert body["matches"] == []  # another city is still another company


def test_an_equal_core_name_is_found_in_a_block_larger_than_the_candidates(db, org,
                                                                            monkeypatch):
    customers.create_customer(org.rep2, {"name": "杭州云帆物流有限公司"})
    twin = customers.create_customer(org.rep2, {"name": "杭州云帆贸易有限公司"})
    monkeypatch.setattr(dedupe, "MAX_CANDIDATES", 1)  # the block 云帆 now holds 3
    body = dedupe.check(org.rep, {"name": "云帆贸易（杭州）有限公司"})
    assert [(m["rule"], m["customer_id"], m["score"]) for m in body["matches"]] == [
        ("company_name", twin.id, 100)]


def test_different_companies_of_one_group_are_not_duplicates(db, org):
    customers.create_customer(org.rep, {"name": "华为技术有限公司"})
    c = customers.create_customer(org.rep2, {"name": "华为终端有限公司"})
    assert c.name_core == "华为终端"


def test_person_name_and_birthday_warn(db, org):
    customers.create_customer(org.rep, {"name": "王芳", "customer_type": "person",
                                        "birthday": "1985-03-12"})
    message = refused(DuplicateWarning, customers.create_customer, org.rep2, {
        "name": "王 芳", "customer_type": "person", "birthday": "03-12"})
    assert message.startswith("已存在：客户 王芳，负责人 测试rep1（华东大区）（个人姓名 + 生日）")
    other = customers.create_customer(org.rep2, {"name": "王芳", "customer_type": "person",
                                                 "birthday": "1990-03-12"})
    assert other.id  # a different birth year is another person


# --- edits and contacts -----------------------------------------------------------------------
def test_edits_are_checked_against_everyone_else(db, org):
    message = refused(Duplicate, customers.update_customer, org.rep, org.c_rep.id,
                      {"mobile": "13900139000"})
    assert "苏州恒信电子有限公司" in message
    db.session.expire_all()
    assert db.session.get(Customer, org.c_rep.id).mobile_e164 == "+8613800138000"
    # Saving a record unchanged, or a confirmed near-duplicate's notes, asks nothing.
    customers.update_customer(org.rep, org.c_rep.id, {"mobile": "13800138000"})
    twin = customers.create_customer(org.rep2, {"name": "云帆科技（杭州）有限公司"},
                                     confirm_duplicates=True)
    customers.update_customer(org.rep2, twin.id, {"notes": "已确认是另一家"})


def test_contacts_are_checked_except_against_their_own_company(db, org):
    message = refused(Duplicate, customers.add_contact, org.rep, org.c_rep.id,
                      {"name": "李四", "mobile": "13900139000"})
    assert "苏州恒信电子有限公司" in message
    contact = customers.add_contact(org.rep, org.c_rep.id, {"name": "前台",
                                                           "mobile": "13800138000"})
    assert contact.mobile_e164 == "+8613800138000"


def test_rule_validation(db):
    rule = db.session.execute(select(DedupeRule).where(DedupeRule.kind == "mobile")).scalar_one()
    rule.fuzzy, rule.threshold = True, 40
    with pytest.raises(ValidationFailed) as err:
        dedupe.validate_rule(rule)
    assert err.value.fields == {"fuzzy": "手机号只能精确匹配",
                                "threshold": "相似度阈值必须在 50 到 100 之间"}
    db.session.rollback()


# --- web and API --------------------------------------------------------------------------------
def test_admin_edits_a_rule_in_the_form_and_others_cannot(clients, db, org):
    rule = db.session.execute(select(DedupeRule).where(
        DedupeRule.kind == "company_name")).scalar_one()
    form = {"active": "y", "fuzzy": "y", "threshold": "80", "same_city": "", "action": "block"}
    for client in (clients.rep, clients.manager, clients.auditor):
        assert post(client, f"/dedupe-rules/edit/{rule.id}", form).status_code == 403
    assert post(clients.admin, f"/dedupe-rules/edit/{rule.id}", form).status_code == 302
    db.session.expire_all()
    rule = db.session.get(DedupeRule, rule.id)
    assert (rule.threshold, rule.same_city, rule.action) == (80, False, "block")
    assert clients.manager.get("/dedupe-rules/list/").status_code == 200


def test_the_add_form_warns_then_saves_when_confirmed(app, db, org):
    rep2 = _client(app, org.rep2)
    form = {"name": "杭州云帆科技股份有限公司", "customer_type": "company", "owner": ""}
    resp = post(rep2, "/customers/add", form)
    html = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "已存在：客户 杭州云帆科技有限公司" in html
    assert 'value="杭州云帆科技股份有限公司"' in html  # the input is kept
    resp = post(rep2, "/customers/add", dict(form, confirm_duplicates="y"))
    assert resp.status_code == 302
    assert db.session.execute(select(Customer).where(
        Customer.name == "杭州云帆科技股份有限公司")).scalar_one()


def test_the_api_answers_409_with_the_matches(api, db, org):
    call = api("rep2")
    resp = call("POST", "/api/v1/customers/", json={"name": "新公司", "mobile": "13800138000"})
    assert resp.status_code == 409
    body = resp.get_json()
    assert body["code"] == "duplicate"
    assert body["matches"][0]["holder"] == "负责人 测试rep1（华东大区）"
    assert "mobile" not in body["matches"][0]
    resp = call("POST", "/api/v1/customers/", json={"name": "杭州云帆科技股份有限公司"})
    assert (resp.status_code, resp.get_json()["code"]) == (409, "duplicate_warning")
    resp = call("POST", "/api/v1/customers/", json={"name": "杭州云帆科技股份有限公司",
                                                    "confirm_duplicates": True})
    assert resp.status_code == 201


@pytest.mark.parametrize("who", ["rep2", "auditor1", "staff1"])
def test_the_check_endpoint_saves_nothing(api, db, org, who):
    before = db.session.execute(select(Customer.id)).all()
    resp = api(who)("POST", "/api/v1/dedupe/check", json={
        "name": "云帆科技（杭州）有限公司", "mobile": "13900139000"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert (body["blocked"], body["warned"]) == (True, True)
    assert [(m["rule"], m["customer_name"]) for m in body["matches"]] == [
        ("mobile", "苏州恒信电子有限公司"), ("company_name", "杭州云帆科技有限公司")]
    assert db.session.execute(select(Customer.id)).all() == before


def test_the_check_endpoint_excludes_the_record_being_edited_within_scope(api, db, org):
    call = api("rep1")
    body = call("POST", "/api/v1/dedupe/check", json={
        "mobile": "13800138000", "exclude_id": org.c_rep.id}).get_json()
    assert body == {"blocked": False, "warned": False, "matches": []}
    resp = call("POST", "/api/v1/dedupe/check", json={"mobile": "1", "exclude_id": 0})
    assert resp.status_code == 400
    resp = call("POST", "/api/v1/dedupe/check", json={"exclude_id": org.c_north.id})
    assert resp.status_code == 404


# --- after the save: the asynchronous re-check ------------------------------------------------
def test_two_saves_in_the_same_second_the_later_one_is_flagged(db, org, monkeypatch):
    from app.models import Notification

    # Both reps' checks ran before either committed: simulate by skipping the second check.
    first = customers.create_customer(org.rep, {"name": "温州瓯江电器有限公司",
                                                "mobile": "13700137000"})
    monkeypatch.setattr(dedupe, "enforce", lambda *a, **k: [])
    second = customers.create_customer(org.rep2, {"name": "温州瓯江电器有限公司",
                                                  "mobile": "137 0013 7000"})
    monkeypatch.undo()
    assert dedupe.recheck(first.id) == []  # the earlier save stays unflagged
    flagged = dedupe.recheck(second.id)
    assert {(m.kind, m.customer_id) for m in flagged} == {("mobile", first.id),
                                                          ("company_name", first.id)}
    notes = db.session.execute(select(Notification).where(
        Notification.kind == "duplicate")).scalars().all()
    assert {n.user_id for n in notes} == {org.rep2.id, org.manager.id}
    assert notes[0].title == "疑似重复：客户 温州瓯江电器有限公司"
    assert notes[0].link == f"/customers/show/{second.id}"
    assert "已存在：客户 温州瓯江电器有限公司，负责人 测试rep1（华东大区）" in notes[0].body
    assert dedupe.recheck(second.id) == []  # flagged once


def test_a_confirmed_near_duplicate_is_not_flagged_again(db, org):
    twin = customers.create_customer(org.rep2, {"name": "云帆科技（杭州）有限公司"},
                                     confirm_duplicates=True)
    assert dedupe.recheck(twin.id) == []


def test_every_save_queues_the_recheck_on_a_real_worker(db, org, redis_url, database_url):
    if redis_url is None:
        pytest.skip("no Redis reachable or startable")
    from app.queue import get_queue
    from tests.test_jobs import run_burst_worker

    queue = get_queue("default")
    queue.empty()
    c = customers.create_customer(org.rep, {"name": "宁波海联贸易有限公司"})
    jobs = queue.get_jobs()
    assert [(j.func_name, j.args) for j in jobs] == [
        ("jobs.customers.recheck_duplicates", (c.id,))]
    result = run_burst_worker(redis_url, database_url, "default")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs[0].refresh()
    assert jobs[0].get_status() == "finished" and jobs[0].return_value() == 0


def test_a_refused_rule_edit_shows_the_reason_beside_the_field(clients, db, org):
    rule = db.session.execute(select(DedupeRule).where(DedupeRule.kind == "mobile")).scalar_one()
    resp = post(clients.admin, f"/dedupe-rules/edit/{rule.id}", {
        "active": "y", "fuzzy": "", "threshold": "40", "same_city": "", "action": "block"})
    assert resp.status_code == 200
    assert "相似度阈值必须在 50 到 100 之间" in resp.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(DedupeRule, rule.id).threshold == 100
