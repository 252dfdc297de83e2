"""Property tests (Hypothesis) for the two boundaries every input crosses: the reading of
record ids (app.services.ids, and the API's schemas built on it) and the refusal of text that
cannot be stored (app.services.text, app.boundary). Derandomized: the same cases every run."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import NotFound

from app.api import schemas
from app.services.errors import ValidationFailed
from app.services.ids import MAX_PK, BoundedIntConverter, parse_ids, parse_pk
from app.services.text import UNCLEAN_MESSAGE, first_unclean_field, is_unclean

SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=12)
UNCLEAN_CHARS = st.sampled_from(["\x00"] + [chr(c) for c in (0xD800, 0xDBFF, 0xDC00, 0xDFFF)])


@SETTINGS
@given(st.integers())
def test_an_int_is_an_id_exactly_within_the_keys(n):
    assert parse_pk(n) == (n if 1 <= n <= MAX_PK else None)


@SETTINGS
@given(st.integers(min_value=0, max_value=10**12))
def test_digits_read_as_their_int_within_the_keys(n):
    assert parse_pk(str(n)) == (n if 1 <= n <= MAX_PK else None)


@SETTINGS
@given(st.floats() | st.booleans() | st.none() | st.text().filter(lambda t: not t.isdigit()))
def test_floats_bools_and_other_text_are_no_ids(value):
    assert parse_pk(value) is None


@SETTINGS
@given(JSON)
def test_any_json_is_an_id_list_or_a_refusal_naming_the_field(value):
    try:
        ids = parse_ids(value, "customer_ids", 1000)
    except ValidationFailed as exc:
        assert list(exc.fields) == ["customer_ids"]
        return
    assert ids and len(ids) == len(set(ids)) <= 1000
    assert all(isinstance(i, int) and 1 <= i <= MAX_PK for i in ids)


@SETTINGS
@given(st.lists(st.integers(min_value=1, max_value=MAX_PK), min_size=1, max_size=50))
def test_an_id_list_keeps_its_first_order_without_repeats(values):
    assert parse_ids(values, "customer_ids", 1000) == list(dict.fromkeys(values))


@SETTINGS
@given(JSON, JSON)
def test_the_api_schema_reads_ids_as_the_services_do(ids, pool_id):
    try:
        expected = {"customer_ids": parse_ids(ids, "customer_ids", schemas.MAX_BATCH)}
        if pool_id is not None:
            pid = parse_pk(pool_id)
            if pid is None:
                raise ValidationFailed({"pool_id": "x"})
            expected["pool_id"] = pid
    except ValidationFailed:
        expected = None
    try:
        loaded = schemas.load(schemas.ClaimRequest, {"customer_ids": ids, "pool_id": pool_id})
    except ValidationFailed as exc:
        assert expected is None, exc.fields
        assert set(exc.fields) <= {"customer_ids", "pool_id"}
        return
    loaded = {k: v for k, v in loaded.items() if v is not None}
    assert loaded == expected


@SETTINGS
@given(st.text(alphabet="0123456789", min_size=1, max_size=40))
def test_a_route_segment_past_the_keys_is_not_found(segment):
    converter = BoundedIntConverter(map=None)
    try:
        assert converter.to_python(segment) <= MAX_PK
    except NotFound:
        assert int(segment) > MAX_PK


@SETTINGS
@given(st.text())
def test_text_is_unclean_exactly_when_it_holds_nul_or_a_lone_surrogate(text):
    assert is_unclean(text) == any(c == "\x00" or 0xD800 <= ord(c) <= 0xDFFF for c in text)


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


@SETTINGS
@given(JSON)
def test_the_first_unclean_field_is_found_exactly_when_there_is_one(document):
    found = first_unclean_field(document)
    assert (found is not None) == any(is_unclean(s) for s in _strings(document))


@settings(max_examples=60, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(["name", "city", "address", "notes", "email", "zz_other"]),
       before=st.text(max_size=20), bad=UNCLEAN_CHARS, after=st.text(max_size=20))
def test_the_request_boundary_refuses_unclean_text_naming_its_field(api_as_rep, field, before,
                                                                    bad, after):
    resp = api_as_rep("POST", "/api/v1/dedupe/check", json={field: before + bad + after})
    assert resp.status_code == 400
    body = resp.get_json()
    assert body["code"] == "invalid" and str(UNCLEAN_MESSAGE) in body["fields"][field]


@settings(max_examples=60, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(name=st.text(min_size=1, max_size=250))
def test_any_clean_or_unclean_name_is_answered_never_a_server_error(api_as_rep, name):
    resp = api_as_rep("POST", "/api/v1/dedupe/check", json={"name": name})
    assert resp.status_code in (200, 400)
    if is_unclean(name) or len(name) > 200:
        assert resp.status_code == 400 and "name" in resp.get_json()["fields"]


@pytest.fixture
def api_as_rep(api):
    return api("rep1")
