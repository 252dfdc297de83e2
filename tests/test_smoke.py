def test_login_and_list(rep_client, org):
    resp = rep_client.get("/customers/list/")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert org.c_rep.name in html
    assert org.c_north.name not in html
