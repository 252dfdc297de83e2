"""The navigation menu, rendered once per (roles, language) rather than on every page.

FAB renders its menu on every page: a permission check, a URL and a translation per item (about
60 items for an admin, ~4.5 ms of every request at 1M customers, where a list page has 50 ms).
What the menu shows depends only on the user's roles (which items they may see), the language
(the labels) and where the app is mounted (the links). Guishu's roles are builtin roles, fixed
for the process (app.security.ROLES), so the HTML for a set of builtin roles and a language is
remembered per app. A user holding any role stored in the database (whose permissions an admin
can edit while the app runs), an anonymous visitor and a menu with conditional items are
rendered afresh every time, as FAB does.
"""
from __future__ import annotations

from typing import Optional

from markupsafe import Markup

TEMPLATE = "guishu/navbar_menu_items.html"
_KEPT = 256  # distinct (roles, language, mount) keys remembered per app; a few in practice


def _items(menu) -> list:
    out = []
    for item in menu.get_list():
        out.append(item)
        out.extend(c for c in item.childs if c)
    return out


def menu_key() -> Optional[tuple]:
    """What the current user's menu depends on, or None when it must not be remembered."""
    from flask import current_app, g, request
    from flask_babel import get_locale

    appbuilder = current_app.appbuilder
    user = getattr(g, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    sm = appbuilder.sm
    roles = sm.get_user_roles(user)
    if not roles or any(role.name not in sm.builtin_roles for role in roles):
        return None
    if any(getattr(item, "cond", None) is not None for item in _items(appbuilder.menu)):
        return None
    return (frozenset(role.name for role in roles), str(get_locale()), request.script_root)


def render_menu() -> Markup:
    from flask import current_app, render_template

    appbuilder = current_app.appbuilder
    return Markup(render_template(TEMPLATE, menu=appbuilder.menu, appbuilder=appbuilder))


def navbar_menu() -> Markup:
    """The menu's HTML for the current user (the template global the navbar calls)."""
    from flask import current_app

    key = menu_key()
    if key is None:
        return render_menu()
    kept = current_app.extensions.setdefault("guishu_menu_html", {})
    html = kept.get(key)
    if html is None:
        if len(kept) >= _KEPT:
            kept.clear()
        html = kept[key] = render_menu()
    return html
