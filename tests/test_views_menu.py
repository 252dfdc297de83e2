"""The navigation menu is rendered once per (builtin roles, language) and reused: the reused
HTML must be exactly what FAB renders for that user, per language, and a user holding a role
kept in the database (editable while the app runs) must always get a fresh menu."""
from __future__ import annotations

import re

from flask import g
from flask_login import login_user

from app.views.menu import TEMPLATE, menu_key, render_menu
from tests.conftest import PASSWORD, login, make_user


def header(html: str) -> str:
    m = re.search(r"<header.*?</header>", html, re.S)
    assert m, "no <header> (navbar) in page"
    return m.group(0)


def menu_part(html: str) -> str:
    m = re.search(r'<ul class="nav navbar-nav">(.*?)</ul>\s*<ul class="nav navbar-nav navbar-right">',
                  header(html), re.S)
    assert m, "no menu in the navbar"
    return m.group(1)


def squeezed(html: str) -> str:
    return " ".join(html.split())


def fab_menu(app, user, locale: str) -> str:
    """FAB's own menu for `user` in `locale`, rendered now (nothing remembered)."""
    from flask import render_template
    from flask_babel import force_locale

    with app.test_request_context("/"), force_locale(locale):
        login_user(user)
        g.user = user
        return render_template(TEMPLATE, menu=app.appbuilder.menu, appbuilder=app.appbuilder)


def get(client, path, locale):
    with client.session_transaction() as session:
        session["locale"] = locale
    resp = client.get(path)
    assert resp.status_code == 200
    return resp.get_data(as_text=True)


def test_each_role_gets_fabs_menu_in_each_language_and_it_is_rendered_once(app, org, clients):
    kept = app.extensions.setdefault("guishu_menu_html", {})
    for name in ("admin", "manager", "rep", "staff", "auditor"):
        client = getattr(clients, name)
        user = getattr(org, name)
        menus = {}
        for locale in ("zh", "en"):
            kept.clear()
            first = menu_part(get(client, "/", locale))
            assert len(kept) == 1, (name, locale)
            again = menu_part(get(client, "/customers/list/", locale))
            assert len(kept) == 1  # the second page reused the first page's menu
            assert first == again
            assert squeezed(first) == squeezed(fab_menu(app, user, locale)), (name, locale)
            assert 'href="/customers/list/"' in first
            menus[locale] = first
        # Each language its own menu: the labels are translated ("Customers" / 客户).
        assert menus["zh"] != menus["en"]
        assert ">客户" in squeezed(menus["zh"]).replace("&nbsp; ", ">")
        assert "Customers" in menus["en"]


def test_two_users_of_one_role_share_the_menu_and_other_roles_do_not(app, db, org, clients):
    kept = app.extensions.setdefault("guishu_menu_html", {})
    kept.clear()
    make_user("rep_menu_twin", "Sales Rep", org.east)
    twin = login(app.test_client(), "rep_menu_twin")
    rep_menu = menu_part(get(clients.rep, "/", "zh"))
    assert menu_part(get(twin, "/", "zh")) == rep_menu
    assert len(kept) == 1
    admin_menu = menu_part(get(clients.admin, "/", "zh"))
    assert len(kept) == 2
    assert "/users/list/" in admin_menu and "/users/list/" not in rep_menu


def test_a_database_role_is_never_remembered(app, db, org, monkeypatch):
    """Roles stored in the database (an admin may create one and edit its permissions while
    the app runs): the next page after a change shows the change."""
    sm = app.appbuilder.sm
    role = sm.add_role("临时角色")
    user = sm.add_user("menu_db_role", "menu", "db", "menu_db_role@test.local", role, PASSWORD)
    db.session.commit()
    category = next(item for item in app.appbuilder.menu.get_list() if item.childs)
    child = next(c for c in category.childs if c and c.name != "-")
    client = login(app.test_client(), user.username)
    with app.test_request_context("/"):
        login_user(user)
        g.user = user
        assert menu_key() is None
        link = f'href="{child.get_url()}"'
    # FAB asks the database for a stored role's permissions (exist_permission_on_roles, which
    # reads the engine's name: the tests' session is bound to a connection instead); here the
    # stored permissions are the set `granted`, changed between pages as an admin would.
    granted: set = set()
    monkeypatch.setattr(sm, "exist_permission_on_roles",
                        lambda view, permission, role_ids: (permission, view) in granted)
    kept = app.extensions.setdefault("guishu_menu_html", {})
    kept.clear()
    assert 'href="' not in menu_part(get(client, "/", "en"))
    granted |= {("menu_access", category.name), ("menu_access", child.name)}
    assert link in menu_part(get(client, "/", "en"))
    granted.clear()
    assert link not in menu_part(get(client, "/", "en"))
    assert kept == {}


def test_a_visitor_not_signed_in_gets_a_fresh_menu(app, db):
    with app.test_request_context("/login/"):
        g.user = None
        assert menu_key() is None
        assert str(render_menu()) == str(render_menu())
