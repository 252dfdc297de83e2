"""What users read, in both languages: policy values, names family-first, the reclaim wording,
role names, the favicon, and what `flask crm init --demo` says about the password."""
from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import update

from tests.test_languages import visible_texts


def _in(client, locale, path):
    with client.session_transaction() as session:
        session["locale"] = locale
    resp = client.get(path)
    assert resp.status_code == 200, path
    return resp.get_data(as_text=True)


def _rows(html, table_id=None):
    """The page's (or one table's) rows with cells, as lists of cell texts."""
    body = html if table_id is None else html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = [[" ".join(visible_texts(c)) for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
            for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]
    return [r for r in rows if r]


# --- the policy list ---------------------------------------------------------------------------
@pytest.mark.parametrize("locale, words", [
    ("zh", {"inherit": "继承", "no": "否", "global": "全局", "user": "个人"}),
    ("en", {"inherit": "Inherited", "no": "No", "global": "Global", "user": "Personal"}),
])
def test_policy_list_shows_words_not_raw_values(db, org, clients, locale, words):
    from app.models import Policy

    db.session.add(Policy(scope="user", user_id=org.rep.id, count_won=False, max_customers=7))
    db.session.commit()
    html = _in(clients.admin, locale, "/policies/list/")
    rows = _rows(html)
    personal = next(r for r in rows if org.rep.display_name in " ".join(r))
    whole = next(r for r in rows if words["global"] in r)
    assert words["user"] in personal and words["no"] in personal and "7" in personal
    assert words["inherit"] in personal  # the fields this policy leaves to the levels above
    for raw in ("None", "False", "True", "global", "user"):
        assert raw not in personal + whole, (raw, personal, whole)


# --- names ---------------------------------------------------------------------------------------
def test_names_are_family_name_first_in_the_navbar_and_the_user_list(db, org, clients):
    from app.extensions import db as _db

    org.rep.first_name, org.rep.last_name = "桂芳", "王"
    _db.session.commit()
    rep = clients.rep  # signs in after the rename
    html = _in(rep, "zh", "/workbench/")
    navbar = html.split('class="fa fa-user"></span>', 1)[1].split("<b", 1)[0]
    assert navbar.strip() == "王桂芳"
    users = _in(clients.admin, "zh", "/users/list/")
    header = re.findall(r"<th[^>]*>(.*?)</th>", users.split("<thead>", 1)[1], re.S)
    labels = [" ".join(visible_texts(h)) for h in header]
    assert labels.index("姓") < labels.index("名")  # family name column first
    row = next(r for r in _rows(users) if "rep1" in r)
    assert row.index("王") < row.index("桂芳")


# --- role names ------------------------------------------------------------------------------
@pytest.mark.parametrize("locale, label", [("zh", "销售代表"), ("en", "Sales Rep")])
def test_home_page_names_the_role_in_the_users_language(db, org, clients, locale, label):
    html = _in(clients.rep, locale, "/")
    roles = html.split("<th>", 2)[1].split("</tr>", 1)[0]
    assert f"<td>{label}</td>" in roles


# --- about to be reclaimed -------------------------------------------------------------------
@pytest.mark.parametrize("locale, due", [("zh", "已到期，待回收"), ("en", "Due, awaiting reclaim")])
def test_a_customer_past_its_reclaim_date_is_due_not_minus_days(db, org, clients, locale, due):
    from app.models import Ownership
    from app.models.customer import utcnow

    # Global policy: 30 days without a follow-up; this one has had 42 (the sweep has not run).
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep.id)
                       .values(acquired_at=utcnow() - dt.timedelta(days=42)))
    db.session.commit()
    html = _in(clients.rep, locale, "/workbench/")
    soon = html.split('id="about-to-be-reclaimed"')[1].split("</table>")[0]
    assert f'data-id="{org.c_rep.id}"' in soon and due in soon
    mine = next(r for r in _rows(html, "my-customers") if org.c_rep.name in r[0])
    assert mine[-1] == due
    # No negative day count anywhere in the two lists (the page's period label, e.g. "2026-12",
    # is not one).
    mine_table = html.split('id="my-customers"')[1].split("</table>")[0]
    assert "-12" not in soon and "-12" not in mine_table and "剩余 -" not in html


# --- favicon ---------------------------------------------------------------------------------
def test_favicon_is_served_and_linked(db, org, clients, app):
    anonymous = app.test_client()
    resp = anonymous.get("/favicon.ico")
    assert resp.status_code == 200
    assert resp.mimetype == "image/vnd.microsoft.icon"
    assert resp.data[:4] == b"\x00\x00\x01\x00"  # an ICO file's header
    login_page = anonymous.get("/login/").get_data(as_text=True)
    assert '<link rel="icon" type="image/svg+xml" href="/static/guishu/favicon.svg">' in login_page
    svg = anonymous.get("/static/guishu/favicon.svg")
    assert svg.status_code == 200 and b"<svg" in svg.data
    assert 'href="/favicon.ico"' in _in(clients.rep, "zh", "/")


# --- flask crm init --demo ------------------------------------------------------------------
@pytest.fixture
def instance_dir(tmp_path, monkeypatch):
    import config

    monkeypatch.setattr(config, "INSTANCE_DIR", str(tmp_path))
    monkeypatch.delenv("GUISHU_DEMO_PASSWORD", raising=False)
    monkeypatch.delenv("GUISHU_ADMIN_PASSWORD", raising=False)
    return tmp_path


def test_init_demo_says_where_the_password_is_kept(app, db, instance_dir, monkeypatch):
    """A fresh database: the admin shares the demo password, kept in instance/demo_password
    (the launcher prints it again), so nothing claims it is shown only once."""
    from app import demo

    monkeypatch.setattr(demo, "build_demo", lambda password: {"created": True,
                                                                 "customers": 5004})
    out = app.test_cli_runner().invoke(args=["crm", "init", "--demo"])
    assert out.exit_code == 0, out.output
    password = (instance_dir / "demo_password").read_text().strip()
    assert "仅显示" not in out.output
    assert "管理员账号：admin  密码与演示账号相同（见下）" in out.output
    assert (f"演示账号密码：{password}（保存在 {instance_dir / 'demo_password'}，"
            "`make start` 启动时也会显示）") in out.output


def test_init_without_demo_shows_a_generated_admin_password_once(app, db, instance_dir):
    out = app.test_cli_runner().invoke(args=["crm", "init"])
    assert out.exit_code == 0, out.output
    assert re.search(r"管理员账号：admin  密码（仅显示这一次，请记下）：\S{12,}", out.output)
    assert not (instance_dir / "demo_password").exists()


def test_launcher_banner_says_where_the_password_comes_from(instance_dir, monkeypatch):
    from app import launcher

    monkeypatch.setattr(launcher, "INSTANCE_DIR", str(instance_dir))
    assert "written to instance/demo_password by" in launcher._banner("http://x", [])
    (instance_dir / "demo_password").write_text("pw-123\n")
    assert (f"password:   pw-123   (kept in {instance_dir / 'demo_password'})"
            in launcher._banner("http://x", []))


# --- issue 13 item 3: no raw value on a page -----------------------------------------------
RAW_CELLS = {"True", "False", "None", "active", "departed"}
YES_NO = {"zh": ("是", "否"), "en": ("Yes", "No")}


@pytest.fixture
def one_of_each(db, org):
    """A row on each list page that shows a boolean: a contact, a pool member, a rule."""
    from app.models import AssignmentRule, Contact, PoolMember

    db.session.add_all([
        Contact(customer_id=org.c_rep.id, name="张伟", is_primary=True),
        PoolMember(pool_id=org.pool.id, user_id=org.rep.id, is_admin=False),
        AssignmentRule(name="上海客户归上海团队", active=True, province="上海",
                       target_type="pool", target_pool_id=org.pool.id)])
    db.session.commit()


@pytest.mark.parametrize("locale", ["zh", "en"])
@pytest.mark.parametrize("path", ["/users/list/", "/pools/list/", "/contacts/list/",
                                  "/pool-members/list/", "/assignment-rules/list/",
                                  "/departments/list/", "/dedupe-rules/list/",
                                  "/roles/list/"])
def test_list_pages_show_no_true_false_or_none(db, org, clients, one_of_each, locale, path):
    cells = {c for row in _rows(_in(clients.admin, locale, path)) for c in row}
    assert cells, path
    assert not cells & RAW_CELLS, (path, cells & RAW_CELLS)


@pytest.mark.parametrize("locale, employed", [("zh", "在职"), ("en", "Employed")])
def test_user_list_and_show_name_employment_and_active_in_words(db, org, clients, locale,
                                                                  employed):
    yes, _no = YES_NO[locale]
    row = next(r for r in _rows(_in(clients.admin, locale, "/users/list/")) if "rep1" in r)
    assert row[-2:] == [employed, yes]  # employment, active
    assert org.rep.superior is not None and org.rep.superior.display_name in " ".join(row)
    admin_row = next(r for r in _rows(_in(clients.admin, locale, "/users/list/")) if "admin" in r)
    assert "None" not in admin_row  # no superior: an empty cell
    show = " ".join(visible_texts(_in(clients.admin, locale, f"/users/show/{org.rep.id}")))
    assert employed in show and "True" not in show and "None" not in show
    profile = " ".join(visible_texts(_in(clients.rep, locale, "/users/userinfo/")))
    assert "True" not in profile and "None" not in profile


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_default_pool_reads_yes_and_no(db, org, clients, locale):
    from app.models import Pool

    db.session.add(Pool(name="华北公海", is_default=False))
    db.session.commit()
    yes, no = YES_NO[locale]
    rows = _rows(_in(clients.admin, locale, "/pools/list/"))
    default = next(r for r in rows if org.pool.name in r)
    other = next(r for r in rows if "华北公海" in r)
    assert default[-1] == yes and other[-1] == no


def test_departed_user_reads_departed(db, org, clients):
    from app.models.org import EMPLOYMENT_DEPARTED

    org.rep_north.employment_status = EMPLOYMENT_DEPARTED
    db.session.commit()
    name = org.rep_north.username
    row = next(r for r in _rows(_in(clients.admin, "zh", "/users/list/")) if name in r)
    assert row[-2] == "离职"
    row = next(r for r in _rows(_in(clients.admin, "en", "/users/list/")) if name in r)
    assert row[-2] == "Departed"


# --- ownership events: kinds and rules in words ----------------------------------------------
RULE_WORDS = {
    "zh": {"transfer:departure": "转移申请（员工离职）",
           "rule:上海客户归上海团队（轮流）": "归属规则：上海客户归上海团队（轮流）",
           "departure:team": "离职交接（团队平均分配）", "no_followup": "回收：超期未跟进",
           "merge:7": "合并 #7", "something:else": "something:else",
           "transferred": "转移", "created": "新建客户"},
    "en": {"transfer:departure": "Transfer request (Employee departure)",
           "rule:上海客户归上海团队（轮流）": "Assignment rule: 上海客户归上海团队（轮流）",
           "departure:team": "Departure handover (evenly over a team)",
           "no_followup": "Reclaim: no follow-up in time", "merge:7": "Merge #7",
           "something:else": "something:else",
           "transferred": "Transferred", "created": "Customer created"},
}


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_rule_label_names_every_kind_of_rule(app, locale):
    from flask_babel import force_locale

    from app.services.event_labels import event_kind_label, rule_label

    words = RULE_WORDS[locale]
    with app.test_request_context(), force_locale(locale):
        for key in ("transfer:departure", "rule:上海客户归上海团队（轮流）", "departure:team",
                    "no_followup", "merge:7", "something:else"):
            assert rule_label(key) == words[key]
        assert rule_label(None) == "" and rule_label("") == ""
        assert event_kind_label("transferred") == words["transferred"]
        assert event_kind_label("created") == words["created"]
        assert event_kind_label("new-kind") == "new-kind"


@pytest.fixture
def events(db, org):
    from app.models import OwnershipEvent

    transferred = OwnershipEvent(customer_id=org.c_rep.id, kind="transferred",
                                 from_owner_id=org.rep2.id, to_owner_id=org.rep.id,
                                 rule="transfer:departure", actor_id=org.manager.id)
    created = OwnershipEvent(customer_id=org.c_rep.id, kind="created", to_owner_id=org.rep.id,
                             rule="rule:上海客户归上海团队（轮流）", actor_id=org.admin.id)
    db.session.add_all([transferred, created])
    db.session.commit()
    return transferred, created


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_ownership_history_names_kind_and_rule(db, org, clients, events, locale):
    words = RULE_WORDS[locale]
    transferred, created = events
    html = _in(clients.admin, locale, "/ownership-events/list/")
    cells = {c for r in _rows(html) for c in r}
    assert {words["transferred"], words["transfer:departure"], words["created"],
            words["rule:上海客户归上海团队（轮流）"]} <= cells
    assert not {"transferred", "created", "transfer:departure"} & cells
    show = visible_texts(_in(clients.admin, locale, f"/ownership-events/show/{transferred.id}"))
    assert words["transferred"] in show and words["transfer:departure"] in show
    assert "transfer:departure" not in show


@pytest.mark.parametrize("locale", ["zh", "en"])
def test_customer_timeline_names_the_rule(db, org, clients, events, locale):
    words = RULE_WORDS[locale]
    html = _in(clients.admin, locale, f"/customers/show/{org.c_rep.id}")
    text = " ".join(visible_texts(html))
    assert words["transfer:departure"] in text
    assert words["rule:上海客户归上海团队（轮流）"] in text
    assert "transfer:departure" not in text and "rule:上海" not in text


# --- the audit log ---------------------------------------------------------------------------
@pytest.mark.parametrize("locale, want", [
    ("zh", {"save": "保存", "department": "部门", "scan": "查重扫描", "cluster": "重复组",
            "changes": "名称：— → 审计部；上级部门：— → 3", "mystery": "mystery_action"}),
    ("en", {"save": "Save", "department": "Department", "scan": "Duplicate scan",
            "cluster": "Duplicate group",
            "changes": "Name: — → 审计部; Parent department: — → 3",
            "mystery": "mystery_action"}),
])
def test_audit_log_names_actions_objects_and_changes(db, org, clients, locale, want):
    from app.services import audit

    audit.record(org.admin.id, "save", "department", 42,
                 {"name": (None, "审计部"), "parent_id": (None, 3)})
    audit.record(org.admin.id, "dedupe_scan", "dedupe_cluster", None, {"clusters": (None, 2)})
    audit.record(org.admin.id, "mystery_action", "department", 43)
    db.session.commit()
    html = _in(clients.admin, locale, "/audit/list/")
    rows = _rows(html)
    saved = next(r for r in rows if "42" in r)
    assert saved[-4:] == [want["save"], want["department"], "42", want["changes"]]
    scan = next(r for r in rows if want["scan"] in r)
    assert scan[-3:] == [want["cluster"], "", "clusters: — → 2" if locale == "en"
                         else "clusters：— → 2"]
    assert any(want["mystery"] in r for r in rows)  # an unknown action as it is
    assert "{'name'" not in html and "None" not in {c for r in rows for c in r}
    assert f'<span class="text-nowrap">{org.admin.display_name}</span>' in html


def test_audit_changes_stay_masked_for_who_may_not_see_them(db, org, clients):
    from app.services import customers

    customers.update_customer(org.rep, org.c_rep.id, {"mobile": "13700137000"})
    html = _in(clients.auditor, "zh", "/audit/list/")
    row = next(r for r in _rows(html) if "手机" in r[-1])
    assert row[-1] == ("手机：138****8000 → 137****7000；"
                       "手机（标准化）：861****8000 → 861****7000")
    assert "13700137000" not in html and "13800138000" not in html
    full = next(r for r in _rows(_in(clients.admin, "zh", "/audit/list/")) if "手机" in r[-1])
    assert full[-1] == ("手机：13800138000 → 13700137000；"
                        "手机（标准化）：+8613800138000 → +8613700137000")


# --- the workbench's transfer requests -------------------------------------------------------
@pytest.mark.parametrize("locale, done", [("zh", "已完成"), ("en", "Done")])
def test_workbench_transfer_requests_show_the_status_label(db, org, clients, locale, done):
    from app.models import TransferRequest

    db.session.add(TransferRequest(applicant_id=org.rep.id, from_owner_id=org.rep2.id,
                                   to_owner_id=org.rep.id, reason="测试", status="completed"))
    db.session.commit()
    row = _rows(_in(clients.rep, locale, "/workbench/"), "my-requests")[0]
    assert row[-1] == done


# --- the policy form's empty department --------------------------------------------------------
def test_policy_form_offers_a_dash_for_no_department(db, org, clients):
    html = _in(clients.admin, "zh", "/policies/add")
    select = html.split('name="department"', 1)[1].split("</select>", 1)[0]
    assert re.search(r'<option[^>]*value="__None"[^>]*>—</option>', select), select[:300]
    assert ">__None<" not in html


# --- the jobs page ----------------------------------------------------------------------------
@pytest.mark.parametrize("locale, title", [("zh", "自动回收"), ("en", "Reclaim sweep")])
def test_jobs_page_titles_each_periodic_job(db, org, clients, locale, title):
    html = _in(clients.admin, locale, "/jobs/")
    row = html.split('data-job="reclaim_sweep"')[1].split("</tr>")[0]
    first = row.split("</td>")[0]
    assert f'<span class="job-title">{title}</span>' in first
    assert '<small class="text-muted"><code>reclaim_sweep</code></small>' in first


def test_every_periodic_job_has_a_translated_title(app):
    from flask_babel import force_locale

    from app.queue import PERIODIC

    with app.test_request_context(), force_locale("zh"):
        titles = [str(job.title) for job in PERIODIC]
    assert all(re.search(r"[\u4e00-\u9fff]", t) for t in titles), titles
    assert len(set(titles)) == len(titles)


# --- flask crm init names the roles in Chinese --------------------------------------------------
def test_init_names_the_roles_synced_in_chinese(app, db, instance_dir):
    out = app.test_cli_runner().invoke(args=["crm", "init"])
    assert out.exit_code == 0, out.output
    assert "角色已同步：管理员, 销售经理, 销售代表, 后台人员, 审计员" in out.output
    assert "Sales Manager" not in out.output


# --- exports: the reader's words, and a file that imports again ----------------------------------
@pytest.mark.parametrize("locale, header, person", [
    ("zh", ["编号", "名称", "类型", "行业", "省份", "城市", "地址", "手机", "电话", "邮箱",
            "来源", "产品线", "负责人", "公海", "创建时间"], "个人客户"),
    ("en", ["ID", "Name", "Type", "Industry", "Province", "City", "Address", "Mobile", "Phone",
            "Email", "Source", "Product line", "Owner", "Pool", "Created at"],
     "Individual customer"),
])
def test_an_export_names_columns_and_types_in_words_and_imports_again(db, org, clients, locale,
                                                                      header, person):
    import csv
    import io

    from sqlalchemy import select

    from app.models import Customer, Pool
    from app.services import customers, import_mapping, import_run

    fields = {"name": "王小明", "customer_type": "person", "industry": "教育", "province": "浙江",
              "city": "杭州", "address": "文三路 1 号", "mobile": "13600136000",
              "phone": "0571-88886666", "email": "xm@example.cn", "source": "展会",
              "product_line": "CRM"}
    made = customers.create_customer(org.admin, dict(fields))
    data = _in_bytes(clients.admin, locale, "/customers/export.csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == header
    mine = next(r for r in rows if r[1] == "王小明")
    assert mine[2] == person
    customers.delete_customer(org.admin, made.id)
    db.session.commit()

    batch = import_mapping.upload(org.admin, "export.csv", data)
    assert set(batch.mapping) == set(fields)  # every customer field recognised by its header
    pool_id = db.session.execute(select(Pool.id).where(
        Pool.is_default.is_(True), Pool.record_type == "customer")).scalar_one()
    import_mapping.configure(org.admin, batch.id, batch.mapping, "pool", pool_id)
    batch = import_run.run(batch.id)
    assert (batch.inserted, batch.invalid, batch.duplicates) == (1, 0, len(rows) - 2)
    back = db.session.execute(select(Customer).where(Customer.name == "王小明")).scalar_one()
    assert {f: getattr(back, f) for f in fields} == fields


def _in_bytes(client, locale, path) -> bytes:
    with client.session_transaction() as session:
        session["locale"] = locale
    resp = client.get(path)
    assert resp.status_code == 200, path
    return resp.data


def test_launcher_banner_lists_a_demo_login_for_every_role():
    """`make start` prints one demo login per role (marketing1 was missing when it came)."""
    from app import launcher
    from app.security import ROLES

    assert {role for _, role in launcher.DEMO_LOGINS} == set(ROLES)
    assert "marketing1" in launcher._banner("http://x", [])
