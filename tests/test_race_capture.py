"""Many visitors posting to one public capture form at once from one address: exactly the
rate's number of submissions is accepted (the form row's lock), the rest are refused with
429, and nothing else goes wrong."""
from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from app.models import CaptureSubmission, Lead
from app.services import lead_capture, leads
from app.services.errors import GuishuError

RATE = 3
pytestmark = pytest.mark.real_db


def test_parallel_posts_from_one_address_stay_within_the_rate(app, db, org, monkeypatch):
    monkeypatch.setitem(app.config, "CAPTURE_FORM_RATE_PER_HOUR", RATE)
    form = lead_capture.create_form(org.admin, {
        "name": "并发表单", "pool_id": leads.default_lead_pool().id, "policy_text": "t",
        "policy_version": "1"})
    token = form.token
    errors: list[BaseException] = []
    refusals: dict[str, int] = {}
    lock = threading.Lock()

    def work(n: int) -> None:
        with app.app_context():
            from app.extensions import db as tdb

            try:
                lead_capture.submit(token, {"name": f"并发{n}", "mobile": f"1350000{n:04d}",
                                            "consent": "y"}, "203.0.113.7")
            except GuishuError as exc:
                with lock:
                    refusals[exc.code] = refusals.get(exc.code, 0) + 1
            except BaseException as exc:  # noqa: BLE001 - any other error fails the test
                with lock:
                    errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert refusals == {"rate_limited": 10 - RATE}
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(CaptureSubmission).where(
        CaptureSubmission.client_ip == "203.0.113.7")).scalar_one() == RATE
    assert db.session.execute(select(func.count()).select_from(Lead).where(
        Lead.person_name.like("并发%"))).scalar_one() == RATE


def test_parallel_posts_to_two_forms_from_one_address_share_the_rate(app, db, org,
                                                                     monkeypatch):
    """The rate is per address, not per form: ten posts split over two forms at once still
    accept exactly the rate (PostgreSQL: an advisory lock per address; SQLite: its write
    lock)."""
    monkeypatch.setitem(app.config, "CAPTURE_FORM_RATE_PER_HOUR", RATE)
    tokens = [lead_capture.create_form(org.admin, {
        "name": f"并发表单{i}", "pool_id": leads.default_lead_pool().id, "policy_text": "t",
        "policy_version": "1"}).token for i in range(2)]
    errors: list[BaseException] = []
    refusals: dict[str, int] = {}
    lock = threading.Lock()

    def work(n: int) -> None:
        with app.app_context():
            from app.extensions import db as tdb

            try:
                lead_capture.submit(tokens[n % 2], {"name": f"两表单{n}",
                                                    "mobile": f"1360000{n:04d}",
                                                    "consent": "y"}, "203.0.113.9")
            except GuishuError as exc:
                with lock:
                    refusals[exc.code] = refusals.get(exc.code, 0) + 1
            except BaseException as exc:  # noqa: BLE001 - any other error fails the test
                with lock:
                    errors.append(exc)
            finally:
                tdb.session.remove()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    assert refusals == {"rate_limited": 10 - RATE}
    db.session.expire_all()
    assert db.session.execute(select(func.count()).select_from(CaptureSubmission).where(
        CaptureSubmission.client_ip == "203.0.113.9")).scalar_one() == RATE


def test_the_address_lock_key_is_a_stable_signed_64_bit_integer():
    key = lead_capture.address_lock_key("203.0.113.9")
    assert key == lead_capture.address_lock_key("203.0.113.9")
    assert key != lead_capture.address_lock_key("203.0.113.10")
    assert -2**63 <= key < 2**63
