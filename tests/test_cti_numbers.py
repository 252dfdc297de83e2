"""Caller ids in the shapes platforms send, folded onto the E.164 keys; matched to a
customer, a contact's customer or a lead."""
from __future__ import annotations

import pytest

from app.services import customers
from app.services.cti_numbers import NumberMatch, caller_e164, match_number


@pytest.mark.parametrize("raw", ["+8613800138000", "8613800138000", "008613800138000",
                                 "013800138000", "138-0013-8000", " 138 0013 8000 "])
def test_mobile_shapes_fold_to_one_key(raw):
    assert caller_e164(raw) == "+8613800138000"


@pytest.mark.parametrize("raw", ["02162345678", "021-6234 5678", "+862162345678",
                                 "862162345678", "00862162345678", "(021)62345678"])
def test_landline_shapes_fold_to_one_key(raw):
    assert caller_e164(raw) == "+862162345678"


def test_a_local_number_takes_the_configured_area_code(app):
    with app.app_context():
        assert caller_e164("62345678", area_code="21") == "+862162345678"
        assert caller_e164("62345678", area_code="021") == "+862162345678"
        # Without an area code a local number matches nothing rather than a guess.
        assert caller_e164("62345678", area_code="") is None


@pytest.mark.parametrize("raw", [None, "", "anonymous", "12", "1" * 80, "+86", "\x00138"])
def test_garbage_is_no_number(raw):
    assert caller_e164(raw) is None


def test_a_number_matches_customer_then_contact_then_lead(app, db, org):
    c = customers.create_customer(org.rep, {"name": "来电科技有限公司", "mobile": "13911112222"})
    assert match_number(caller_e164("+86 139 1111 2222")) == NumberMatch(customer_id=c.id)
    assert match_number(caller_e164("13000000001")) == NumberMatch()
    assert not match_number(None).known
