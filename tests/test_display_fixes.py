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
    assert "-12" not in html and "剩余 -" not in html


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
