"""Dedupe on entry: block vs warn per rule, the answer naming the customer and its holder
(never its contact details) whoever asks, owned / pool / locked holders, the matcher's scored
matches with their field-by-field account (typos, homophones, persons), edits and contacts,
the rules form, the customers API and POST /api/v1/dedupe/check, and the add form's "save
anyway"."""
from __future__ import annotations

import pytest
from sqlalchemy import select, update

from app.models import AuditLog, Customer, DedupeRule
from app.services import assignment, customers, dedupe
from app.services.errors import Duplicate, DuplicateWarning, ValidationFailed
from app.services.matching import Matcher
from tests.conftest import _client
from tests.test_views_ownership import post


def refused(exc_type, fn, *args, **kwargs) -> str:
    with pytest.raises(exc_type) as err:
        fn(*args, **kwargs)
    return err.value.message


def set_rule(db, kind, **values):
    db.session.execute(update(DedupeRule).where(DedupeRule.kind == kind).values(**values))
    db.session.commit()


def account(values: dict, other: Customer) -> tuple[float, str]:
    """The matcher's total and account of the pair, as the entry check computes it."""
    from app.services.customers import clean_customer_data, text_keys
    from app.services.matching import Matcher

    v = clean_customer_data(dict(values), partial=True)
    kind = v.get("customer_type") or "company"
    v.update(customer_type=kind, **text_keys(kind, v.get("name"), v.get("address")))
    stored = {c.name: getattr(other, c.name) for c in Customer.__table__.c}
    explained = Matcher.current().explain(v, stored)
    return explained.total, explained.text()


SCORED = "相似客户（综合评分）"


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
    # Another name on the same mobile: the scorer alone does not call it the same company.
    values = {"name": "共用手机的公司", "mobile": "13800138000"}
    total, _ = account(values, org.c_rep)
    assert total < dedupe.thresholds(dedupe.active_rules()["scored"], Matcher.current())[0]
    c = customers.create_customer(org.rep2, values)
    assert c.mobile_e164 == "+8613800138000"


# --- names warn -------------------------------------------------------------------------------
def test_the_same_company_warns_and_saves_once_confirmed(db, org):
    for name in ("杭州云帆科技股份有限公司", "云帆科技（杭州）有限公司", "杭州市云帆科技有限公司"):
        total, why = account({"name": name}, org.c_rep)
        message = refused(DuplicateWarning, customers.create_customer, org.rep2, {"name": name})
        assert message == (f"已存在：客户 杭州云帆科技有限公司，负责人 测试rep1（华东大区）（{SCORED}："
                           f"{why}）。确认不是同一客户后可勾选“仍然保存”")
        assert why.startswith("名称 相同") and why.endswith(f"→ {total:.1f}")
    c = customers.create_customer(org.rep2, {"name": "云帆科技（杭州）有限公司"},
                                  confirm_duplicates=True)
    audit = db.session.execute(select(AuditLog).where(
        AuditLog.action == "dedupe_confirmed", AuditLog.object_id == c.id)).scalar_one()
    assert audit.actor_id == org.rep2.id


@pytest.mark.parametrize("held, typed", [
    ("英荣润网络科技有限公司", "英容润网络科技有限公司"),    # one character wrong (83 % by ratio)
    ("杭州云帆信息科技有限公司", "杭州云凡信息科技有限公司"),  # a homophone (帆 / 凡: fan)
])
def test_a_one_character_typo_or_a_homophone_is_found_with_its_account(db, org, held, typed):
    other = customers.create_customer(org.rep, {"name": held, "city": "杭州"})
    body = dedupe.check(org.rep2, {"name": typed, "city": "杭州"})
    total, why = account({"name": typed, "city": "杭州"}, other)
    [match] = body["matches"]
    assert (match["rule"], match["customer_id"], match["explanation"]) == (
        "scored", other.id, why)
    assert match["total"] == pytest.approx(total) and 0 < match["score"] < 100
    assert why.startswith("名称 ")  # the name's level comes first, then the other fields


def test_the_link_threshold_is_the_admins(db, org):
    other = customers.create_customer(org.rep, {"name": "英荣润网络科技有限公司", "city": "杭州"})
    typed = {"name": "英容润网络科技有限公司", "city": "杭州"}
    total, _ = account(typed, other)
    set_rule(db, "scored", link_score=round(total + 0.5, 1), review_score=None)
    assert dedupe.check(org.rep2, typed)["matches"] == []
    set_rule(db, "scored", link_score=round(total - 0.5, 1), action="block")
    message = refused(Duplicate, customers.create_customer, org.rep2, typed)
    assert message.startswith(f"已存在：客户 英荣润网络科技有限公司，负责人 测试rep1（华东大区）（{SCORED}：")


def test_a_country_in_the_name_is_no_other_city(db, org):
    held = customers.create_customer(org.rep, {"name": "翔维技术有限公司", "city": "佛山"})
    for values in ({"name": "翔维（中国）技术有限公司", "city": "佛山"},
                   {"name": "翔维（中国）技术有限公司"}, {"name": "中国翔维技术有限公司"}):
        body = dedupe.check(org.rep2, values)
        assert [(m["rule"], m["customer_id"]) for m in body["matches"]] == [
            ("scored", held.id)], values


def test_an_equal_core_name_is_found_in_a_block_larger_than_its_window(db, org, monkeypatch):
    from app.services import match_keys

    for name in ("杭州云帆物流有限公司", "杭州云帆电子有限公司", "杭州云帆机械有限公司"):
        customers.create_customer(org.rep2, {"name": name})
    twin = customers.create_customer(org.rep2, {"name": "杭州云帆贸易有限公司"})
    monkeypatch.setattr(match_keys, "WINDOW", 2)  # one neighbour each side in a block
    monkeypatch.setattr(match_keys, "NAME_WINDOW", 2)
    monkeypatch.setattr(match_keys, "NEIGHBOURS", 2)
    body = dedupe.check(org.rep, {"name": "云帆贸易（杭州）有限公司"})
    assert [(m["rule"], m["customer_id"]) for m in body["matches"]] == [("scored", twin.id)]


def test_different_companies_of_one_group_are_not_duplicates(db, org):
    customers.create_customer(org.rep, {"name": "华为技术有限公司"})
    c = customers.create_customer(org.rep2, {"name": "华为终端有限公司"})
    assert c.name_core == "华为终端"


def test_person_name_and_birthday_warn(db, org):
    held = customers.create_customer(org.rep, {"name": "王芳", "customer_type": "person",
                                               "birthday": "1985-03-12"})
    typed = {"name": "王 芳", "customer_type": "person", "birthday": "03-12"}
    _, why = account(typed, held)
    message = refused(DuplicateWarning, customers.create_customer, org.rep2, typed)
    assert message.startswith(f"已存在：客户 王芳，负责人 测试rep1（华东大区）（{SCORED}：{why}）")


def test_a_person_name_typo_with_the_same_address_and_birthday_is_found(db, org):
    held = customers.create_customer(org.rep, {"name": "杨兵丽", "customer_type": "person",
                                               "birthday": "1979-08-21",
                                               "address": "上海市长宁区延安西路 1118 号"})
    body = dedupe.check(org.rep2, {"name": "杨兵雨", "customer_type": "person",
                                   "birthday": "1979-08-21",
                                   "address": "上海市长宁区延安西路1118号"})
    assert [(m["rule"], m["customer_id"]) for m in body["matches"]] == [("scored", held.id)]


def test_a_namesake_born_another_year_elsewhere_is_another_person(db, org):
    customers.create_customer(org.rep, {"name": "王芳", "customer_type": "person",
                                        "birthday": "1985-03-12", "city": "杭州",
                                        "address": "杭州市西湖区文三路 90 号"})
    body = dedupe.check(org.rep2, {"name": "王芳", "customer_type": "person",
                                   "birthday": "1962-11-02", "city": "成都",
                                   "address": "成都市武侯区人民南路 4 段 12 号"})
    assert body["matches"] == []


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
    rule = db.session.execute(select(DedupeRule).where(DedupeRule.kind == "scored")).scalar_one()
    rule.link_score, rule.review_score = 3.0, 5.0
    with pytest.raises(ValidationFailed) as err:
        dedupe.validate_rule(rule)
    assert err.value.fields == {"review_score": "复核阈值（5.0）不能高于判重阈值（3.0）"}
    rule.link_score, rule.review_score = float("nan"), 1e9
    with pytest.raises(ValidationFailed) as err:
        dedupe.validate_rule(rule)
    assert err.value.fields == {"link_score": "阈值须为 -1000 到 1000 之间的数，或留空",
                                "review_score": "阈值须为 -1000 到 1000 之间的数，或留空"}
    rule.action = "delete"
    rule.link_score = rule.review_score = None
    with pytest.raises(ValidationFailed) as err:
        dedupe.validate_rule(rule)
    assert err.value.fields == {"action": "处理方式只能是禁止保存或提示"}
    db.session.rollback()
    mobile = db.session.execute(select(DedupeRule).where(DedupeRule.kind == "mobile")).scalar_one()
    mobile.link_score = 4.0  # the exact rules have no thresholds: cleared
    dedupe.validate_rule(mobile)
    assert (mobile.link_score, mobile.fuzzy, mobile.threshold) == (None, False, 100)
    db.session.rollback()


# --- web and API --------------------------------------------------------------------------------
def test_admin_edits_a_rule_in_the_form_and_others_cannot(clients, db, org):
    rule = db.session.execute(select(DedupeRule).where(DedupeRule.kind == "scored")).scalar_one()
    form = {"active": "y", "action": "block", "link_score": "7.5", "review_score": "2"}
    for client in (clients.rep, clients.manager, clients.auditor):
        assert post(client, f"/dedupe-rules/edit/{rule.id}", form).status_code == 403
    assert post(clients.admin, f"/dedupe-rules/edit/{rule.id}", form).status_code == 302
    db.session.expire_all()
    rule = db.session.get(DedupeRule, rule.id)
    assert (rule.link_score, rule.review_score, rule.action) == (7.5, 2.0, "block")
    assert post(clients.admin, f"/dedupe-rules/edit/{rule.id}",
                dict(form, link_score="", review_score="")).status_code == 302
    db.session.expire_all()
    assert db.session.get(DedupeRule, rule.id).link_score is None  # the model's again
    page = clients.manager.get("/dedupe-rules/list/").get_data(as_text=True)
    assert "（模型默认）" in page and SCORED in page


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
    assert [(m["rule"], m["customer_name"]) for m in body["matches"]][:2] == [
        ("mobile", "苏州恒信电子有限公司"), ("scored", "杭州云帆科技有限公司")]
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
                                                          ("scored", first.id)}
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
    rule = db.session.execute(select(DedupeRule).where(DedupeRule.kind == "scored")).scalar_one()
    for field, value, reason in (("link_score", "nan", "阈值须为 -1000 到 1000 之间的数，或留空"),
                                 ("review_score", "99", "复核阈值（99.0）不能高于判重阈值"),
                                 ("link_score", "abc", "不是有效的浮点数")):
        form = {"active": "y", "action": "warn", "link_score": "", "review_score": ""}
        resp = post(clients.admin, f"/dedupe-rules/edit/{rule.id}", dict(form, **{field: value}))
        assert resp.status_code == 200
        assert reason in resp.get_data(as_text=True), (field, value)
    db.session.expire_all()
    assert db.session.get(DedupeRule, rule.id).link_score is None


