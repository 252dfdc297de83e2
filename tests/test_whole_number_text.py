"""Form text read as a whole number: what str.isdigit accepts but int() refuses is not one."""
import pytest

from app.services.ids import whole_number_text


@pytest.mark.parametrize("text, signed, expected", [
    ("42", False, True), (" 7 ", False, True), ("-5", True, True), ("-5", False, False),
    ("\u00b2", False, False), ("\u0663", False, False), ("9" * 19, False, False),
    ("", False, False), ("-", True, False), ("1.5", False, False)])
def test_whole_number_text(text, signed, expected):
    assert whole_number_text(text, signed) is expected
    if expected:
        int(text.strip())  # and int() reads it


def test_the_forms_answer_400_for_a_superscript_digit(db, org, api):
    call = api(org.admin.username)
    resp = call("POST", "/api/v1/opportunities/", json={"probability": "\u00b2"})
    assert resp.status_code == 400
