"""The web UI's error pages: inside the app's layout, in the user's language, a way home;
the API keeps its JSON errors."""
from __future__ import annotations

import pytest


def _page(resp):
    return resp.get_data(as_text=True)


@pytest.mark.parametrize("role,path", [("staff", "/workbench/"), ("auditor", "/workbench/"),
                                       ("staff", "/audit/list/")])
def test_403_is_a_translated_page_in_the_layout(clients, role, path):
    resp = getattr(clients, role).get(path)
    html = _page(resp)
    assert resp.status_code == 403
    assert 'id="error-page" data-status="403"' in html
    assert "没有权限" in html and "您的角色无权访问此页面或执行此操作" in html
    assert 'class="navbar' in html  # the app's navbar: the user can go on from here
    assert 'id="error-home"' in html and "返回首页" in html
    assert "Forbidden" not in html


def test_404_of_a_stale_customer_page(clients):
    resp = clients.rep.get("/customers/show/999999")
    html = _page(resp)
    assert resp.status_code == 404
    assert 'data-status="404"' in html and "页面不存在" in html and 'class="navbar' in html
    assert "Not Found" not in html


def test_404_in_english(clients):
    clients.rep.get("/lang/en")
    html = _page(clients.rep.get("/customers/show/999999"))
    assert "<h3>Not found <small>404</small></h3>" in html and "Back to the home page" in html


def test_405_and_400_pages(clients):
    resp = clients.rep.get("/pool/action_post")
    assert resp.status_code == 405 and "不支持的操作" in _page(resp)
    resp = clients.rep.get("/customers/list/?_flt_0_name=a%00b")
    html = _page(resp)
    assert resp.status_code == 400 and "请求无效" in html
    # The boundary's own reason (which field) is kept under the translated text.
    assert 'id="error-detail"' in html and "_flt_0_name" in html


def test_api_errors_stay_json(api, org):
    call = api(org.rep.username)
    resp = call("GET", "/api/v1/customers/999999")
    assert resp.status_code == 404 and resp.is_json and resp.get_json()["code"] == "not_found"
    resp = call("GET", "/api/v1/no-such-thing")
    assert resp.status_code == 404 and resp.is_json
    assert resp.get_json() == {"code": "not_found", "message": "资源不存在"}


def test_a_missing_csrf_token_gets_the_400_page(clients):
    """CSRF is checked before FAB sets up the request's user: the page still renders."""
    resp = clients.rep.post("/followups/add", data={"content": "x"})
    assert resp.status_code == 400 and 'data-status="400"' in _page(resp)
    assert 'class="navbar' in _page(resp)
