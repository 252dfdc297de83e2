"""Merging duplicate customers: every related row moves (counted per table) while ownership
events stay under their customer's id and show in the survivor's history, unique keys keep
one row, per-field winners, the ownership rule (earliest first contact, locked first, caps,
the pool), redirects of the old id (service, page and API), exact undo, and undo refused
after 30 days or after a later merge of the survivor."""
from __future__ import annotations

import datetime as dt
import decimal
import re

import pytest
from sqlalchemy import func, select, update

from app.models import (CareMessage, Contact, Customer, CustomerMerge, CustomerShare, Deal,
                        FollowUp, Ownership, OwnershipEvent, Policy, ReclaimWarning,
                        TransferItem, TransferRequest)
from app.models.customer import utcnow
from app.services import assignment, customers, merge, repoint
from app.services.errors import Conflict, OutOfScope, PermissionDenied, ValidationFailed
from tests.conftest import api_token, login

TABLES = ("contact", "follow_up", "deal", "care_message", "customer_share", "reclaim_warning",
          "transfer_item")


def rows_of(db, ids) -> dict[str, int]:
    """Rows per table that reference any of these customers."""
    db.session.commit()
    out = {}
    for ref in repoint.references():
        n = db.session.execute(select(func.count()).select_from(ref.table).where(
            ref.table.c[ref.column].in_(ids))).scalar_one()
        out[ref.table.name] = out.get(ref.table.name, 0) + n
    return out


def dump(db, ids) -> dict:
    """Every row of the customers, their ownership and everything that references them."""
    db.session.commit()
    out = {}
    tables = [(Customer.__table__, "id"), (Ownership.__table__, "customer_id"),
              (OwnershipEvent.__table__, "customer_id")] + [
        (r.table, r.column) for r in repoint.references()]
    for table, column in tables:
        rows = db.session.execute(select(table).where(table.c[column].in_(ids))).mappings()
        out[table.name] = sorted((dict(r) for r in rows), key=lambda r: str(sorted(r.items())))
    return out


@pytest.fixture
def pair(db, org):
    """S (rep2's, older first contact... no: rep's c_rep is older) and its duplicate L with
    a row in every related table, some colliding with S's under a unique key."""
    s = org.c_rep  # rep1's, created first
    twin = customers.create_customer(org.rep2, {"name": "云帆科技（杭州）有限公司",
                                                "mobile": "13600136001",
                                                "birthday": "1990-05-06",
                                                "industry": "软件"},
                                     confirm_duplicates=True)
    now = utcnow()
    for cid in (s.id, twin.id):
        db.session.add(Contact(customer_id=cid, name=f"联系人{cid}"))
        db.session.add(FollowUp(customer_id=cid, user_id=org.rep.id, channel="call",
                                content="电话", happened_at=now))
        db.session.add(Deal(customer_id=cid, user_id=org.rep.id, amount=decimal.Decimal("10.50"),
                            won_on=now.date()))
        # Same user shared on both: the merged record's share is dropped.
        db.session.add(CustomerShare(customer_id=cid, user_id=org.manager.id))
        db.session.add(ReclaimWarning(customer_id=cid, owner_id=org.rep.id,
                                      due_at=dt.datetime(2030, 1, 1), rule="no_followup"))
        # A greeting to the customer itself, the same occasion on both: one is dropped.
        db.session.add(CareMessage(customer_id=cid, recipient_key=f"customer:{cid}",
                                   occasion="birthday", occasion_key="birthday:2030",
                                   occasion_name="生日", occasion_date=now.date(),
                                   channel="sms", send_on=now.date(), status="pending"))
    db.session.add(CareMessage(customer_id=twin.id, recipient_key=f"customer:{twin.id}",
                               occasion="holiday", occasion_key="holiday:春节:2030",
                               occasion_name="春节", occasion_date=now.date(), channel="sms",
                               send_on=now.date(), status="pending"))
    db.session.add(CustomerShare(customer_id=twin.id, user_id=org.rep_north.id))
    transfer = TransferRequest(applicant_id=org.rep2.id, from_owner_id=org.rep2.id,
                               to_owner_id=org.rep.id, reason="测试", status="rejected")
    transfer.items = [TransferItem(customer_id=twin.id)]
    db.session.add(transfer)
    db.session.commit()
    return s, twin


def test_merge_moves_every_related_row(db, org, pair):
    s, twin = pair
    ids = [s.id, twin.id]
    before = rows_of(db, ids)
    assert set(TABLES) <= set(before)
    assert all(before[t] for t in TABLES)
    [record] = merge.merge(org.staff, s.id, [twin.id])
    after = rows_of(db, [s.id])
    assert rows_of(db, [twin.id]) == {t: 0 for t in before}
    dropped = {k.split(".")[0]: len(v) for k, v in record.snapshot["dropped"].items()}
    assert dropped == {"customer_share": 1, "reclaim_warning": 1, "care_message": 1}
    for table, n in before.items():
        assert after[table] == n - dropped.get(table, 0), table
    assert db.session.get(Customer, twin.id) is None
    moved_care = db.session.execute(select(CareMessage.recipient_key).where(
        CareMessage.occasion_key == "holiday:春节:2030")).scalar_one()
    assert moved_care == f"customer:{s.id}"
    kinds = db.session.execute(select(OwnershipEvent.kind).where(
        OwnershipEvent.customer_id == s.id).order_by(OwnershipEvent.id)).scalars().all()
    assert kinds == ["created", "merged"]  # history is never edited: the twin's stay its own
    assert db.session.execute(select(OwnershipEvent.kind).where(
        OwnershipEvent.customer_id == twin.id).order_by(OwnershipEvent.id)
    ).scalars().all() == ["created", "merged"]


def test_per_field_winners_and_refreshed_keys(db, org, pair):
    s, twin = pair
    merge.merge(org.staff, s.id, [twin.id], {"mobile": twin.id, "birthday": twin.id,
                                             "name": s.id, "industry": twin.id})
    db.session.expire_all()
    kept = db.session.get(Customer, s.id)
    assert (kept.name, kept.mobile_e164, kept.birthday_display, kept.industry) == (
        "杭州云帆科技有限公司", "+8613600136001", "1990-05-06", "软件")
    assert kept.city == "杭州"  # not chosen: the survivor's own


def test_bad_choices_and_roles_are_refused(db, org, pair):
    s, twin = pair
    with pytest.raises(ValidationFailed):
        merge.merge(org.staff, s.id, [twin.id], {"mobile": org.c_north.id})
    with pytest.raises(ValidationFailed):
        merge.merge(org.staff, s.id, [s.id])
    for who in (org.rep, org.manager, org.auditor):
        with pytest.raises(PermissionDenied):
            merge.merge(who, s.id, [twin.id])
    with pytest.raises(OutOfScope):
        merge.merge(org.admin, s.id, [999999])
    assert db.session.get(Customer, twin.id) is not None


# --- ownership ------------------------------------------------------------------------------
def holder(db, cid):
    db.session.commit()
    own = db.session.get(Ownership, cid)
    db.session.refresh(own)
    return own.owner_id, own.pool_id


def test_the_earliest_first_contact_keeps_it_whichever_record_survives(db, org, pair):
    s, twin = pair
    merge.merge(org.staff, twin.id, [s.id])  # the later record survives
    assert holder(db, twin.id) == (org.rep.id, None)  # rep1 made first contact
    event = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == twin.id, OwnershipEvent.kind == "merged")).scalar_one()
    assert (event.from_owner_id, event.to_owner_id) == (org.rep2.id, org.rep.id)


def test_a_full_owner_is_skipped_for_the_next_then_the_pool(db, org, pair):
    s, twin = pair  # s: rep1's (first contact), twin: rep2's
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=1))
    db.session.commit()
    # rep1 is at the cap: giving rep1 rep2's survivor would be one more; rep2 keeps it.
    merge.merge(org.staff, twin.id, [s.id])
    assert holder(db, twin.id) == (org.rep2.id, None)
    # A pool survivor: rep2 (the only owner) is at the cap too: it stays in the pool.
    db.session.add(Policy(scope="user", user_id=org.rep2.id, max_customers=2))
    db.session.commit()
    assert holder(db, org.c_rep2.id) == (org.rep2.id, None)  # rep2 holds twin and c_rep2
    merge.merge(org.staff, org.c_pool.id, [twin.id])
    assert holder(db, org.c_pool.id) == (None, org.pool.id)
    event = db.session.execute(select(OwnershipEvent).where(
        OwnershipEvent.customer_id == twin.id, OwnershipEvent.kind == "merged")
        .order_by(OwnershipEvent.id.desc()).limit(1)).scalar_one()
    assert (event.from_owner_id, event.to_pool_id) == (org.rep2.id, org.pool.id)


def test_the_survivors_owner_keeps_it_even_over_the_cap(db, org, pair):
    s, twin = pair
    db.session.add(Policy(scope="user", user_id=org.rep.id, max_customers=0))
    db.session.commit()
    merge.merge(org.staff, s.id, [twin.id])
    assert holder(db, s.id) == (org.rep.id, None)


def test_a_locked_records_owner_takes_precedence(db, org, pair):
    s, twin = pair
    assignment.lock(org.rep2, [twin.id])
    merge.merge(org.staff, s.id, [twin.id])
    db.session.expire_all()
    own = db.session.get(Ownership, s.id)
    assert (own.owner_id, own.locked) == (org.rep2.id, True)


# --- redirects ------------------------------------------------------------------------------
def test_the_old_id_redirects_in_the_service_pages_and_api(app, db, org, pair, clients):
    s, twin = pair
    merge.merge(org.staff, s.id, [twin.id])
    assert merge.survivor_of(twin.id) == s.id
    page = clients.admin.get(f"/customers/show/{twin.id}")
    assert page.status_code == 302 and page.headers["Location"].endswith(f"/customers/show/{s.id}")
    edit = clients.admin.get(f"/customers/edit/{twin.id}")
    assert edit.headers["Location"].endswith(f"/customers/edit/{s.id}")
    # rep1 holds the survivor; rep3 sees it through the twin's share, which moved with it;
    # manager2 (another department) does not see it: a plain 404.
    rep_page = clients.rep.get(f"/customers/show/{twin.id}")
    assert rep_page.status_code == 302
    client = app.test_client()
    token = api_token(client, "manager2")
    resp = client.get(f"/api/v1/customers/{twin.id}", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 404
    token = api_token(client, "rep1")
    resp = client.get(f"/api/v1/customers/{twin.id}", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 308
    assert resp.headers["Location"].endswith(f"/api/v1/customers/{s.id}")
    assert resp.get_json()["survivor_id"] == s.id


# --- undo -----------------------------------------------------------------------------------
def test_undo_restores_exactly(db, org, pair):
    s, twin = pair
    ids = [s.id, twin.id]
    before = dump(db, ids)
    [record] = merge.merge(org.staff, s.id, [twin.id], {"mobile": twin.id, "name": twin.id})
    merge.undo(org.staff, record.id)
    after = dump(db, ids)
    # History only grows: the merge and undo events; the survivor's updated_at moves.
    events = [e for e in after.pop("ownership_event") if e["kind"] not in ("merged", "unmerged")]
    assert events == before.pop("ownership_event")
    for row in after["customer"] + before["customer"]:
        if row["id"] == s.id:
            row.pop("updated_at")
    assert after == before
    assert merge.survivor_of(twin.id) is None
    db.session.expire_all()
    assert db.session.get(CustomerMerge, record.id).undone_at is not None
    with pytest.raises(Conflict, match="已于"):
        merge.undo(org.staff, record.id)


def test_undo_is_refused_after_30_days_and_after_a_later_merge(db, org, pair):
    s, twin = pair
    [first] = merge.merge(org.staff, s.id, [twin.id])
    third = customers.create_customer(org.staff, {"name": "云帆科技（杭州）股份有限公司"},
                                      confirm_duplicates=True)
    [second] = merge.merge(org.staff, s.id, [third.id])
    with pytest.raises(Conflict, match=f"之后又参与了合并 #{second.id}"):
        merge.undo(org.staff, first.id)
    db.session.execute(update(CustomerMerge).where(CustomerMerge.id == second.id).values(
        created_at=utcnow() - dt.timedelta(days=31)))
    db.session.commit()
    with pytest.raises(Conflict, match="超过 30 天"):
        merge.undo(org.admin, second.id)
    with pytest.raises(PermissionDenied):
        merge.undo(org.rep, first.id)


def test_redirects_follow_a_second_merge_and_come_back_on_undo(db, org, pair):
    s, twin = pair
    [first] = merge.merge(org.staff, twin.id, [s.id])
    [second] = merge.merge(org.staff, org.c_rep2.id, [twin.id])
    assert merge.survivor_of(s.id) == org.c_rep2.id  # one hop
    merge.undo(org.staff, second.id)
    assert merge.survivor_of(s.id) == twin.id
    merge.undo(org.staff, first.id)
    assert merge.survivor_of(s.id) is None


# --- history (never edited) -----------------------------------------------------------------
def event_ids(db, customer_id) -> set[int]:
    db.session.commit()
    return set(db.session.execute(select(OwnershipEvent.id).where(
        OwnershipEvent.customer_id == customer_id)).scalars())


def linked_events(html: str) -> set[int]:
    return {int(x) for x in re.findall(r'href="/ownership-events/show/(\d+)[?"]', html)}


def test_the_merged_records_events_stay_put_and_show_in_the_survivors_history(
        app, db, org, pair):
    s, twin = pair
    twins_events = event_ids(db, twin.id)
    [record] = merge.merge(org.staff, s.id, [twin.id])
    merged_event = db.session.execute(select(OwnershipEvent.id).where(
        OwnershipEvent.customer_id == twin.id, OwnershipEvent.kind == "merged")).scalar_one()
    assert event_ids(db, twin.id) == twins_events | {merged_event}  # under the merged id
    history = event_ids(db, s.id) | event_ids(db, twin.id)
    assert set(db.session.execute(select(OwnershipEvent.id).where(merge.history_clause(
        OwnershipEvent.customer_id, s.id))).scalars()) == history
    # The survivor's page lists them, for its owner as for an admin; so does rep1's list of
    # events; manager2 (another department) sees neither list nor event.
    rep, admin, other = (login(app.test_client(), u) for u in ("rep1", "admin", "manager2"))
    for client in (rep, admin):
        page = client.get(f"/customers/show/{s.id}")
        assert page.status_code == 200
        assert linked_events(page.get_data(as_text=True)) == history
    assert history <= linked_events(rep.get("/ownership-events/list/").get_data(as_text=True))
    some = min(twins_events)
    assert rep.get(f"/ownership-events/show/{some}").status_code == 200
    assert rep.get(f"/ownership-events/show/{some}?_flt_0_customer_id={s.id}"
                   ).status_code == 200  # the link on the survivor's page
    assert not history & linked_events(other.get("/ownership-events/list/").get_data(
        as_text=True))
    assert other.get(f"/ownership-events/show/{some}").status_code == 404
    # Undone, the twin's history is its own again (plus the undo), the survivor's too.
    merge.undo(org.staff, record.id)
    assert event_ids(db, twin.id) - twins_events == {merged_event} | set(
        db.session.execute(select(OwnershipEvent.id).where(
            OwnershipEvent.customer_id == twin.id, OwnershipEvent.kind == "unmerged")).scalars())
    page = admin.get(f"/customers/show/{s.id}").get_data(as_text=True)
    assert not linked_events(page) & twins_events


def test_first_contact_is_read_through_earlier_merges(db, org, pair):
    s, twin = pair  # s: rep1's, created first; then org.c_rep2 (rep2's); then twin (rep2's)
    merge.merge(org.staff, twin.id, [s.id])
    assert holder(db, twin.id) == (org.rep.id, None)  # rep1's first contact came with s
    # twin's own events say rep1 got it by a merge just now; s's 'created' event, still under
    # s's id, says rep1 held it before rep2 created c_rep2: rep1 keeps it.
    merge.merge(org.staff, twin.id, [org.c_rep2.id])
    assert holder(db, twin.id) == (org.rep.id, None)


def test_the_sweep_returns_a_survivor_to_the_pool_its_merged_record_came_from(db, org):
    from app.models import Pool, PoolMember
    from app.services import pool, reclaim

    other = Pool(name="华东公海")
    db.session.add(other)
    db.session.flush()
    db.session.add(PoolMember(pool_id=other.id, user_id=org.rep.id))
    db.session.commit()
    came = customers.create_customer(org.staff, {"name": "宁波港通物流有限公司"},
                                     pool_id=other.id)
    pool.claim_from_pool(org.rep, [came.id])
    merge.merge(org.staff, org.c_rep.id, [came.id])
    db.session.execute(update(Ownership).where(Ownership.customer_id == org.c_rep.id)
                       .values(acquired_at=utcnow() - dt.timedelta(days=200)))
    db.session.commit()
    reclaim.sweep()
    assert holder(db, org.c_rep.id) == (None, other.id)


def test_undo_of_a_merge_that_moved_the_events_moves_them_back(db, org, pair):
    """Merges made before events stayed in place recorded the events they moved."""
    s, twin = pair
    twins_events = event_ids(db, twin.id)
    [record] = merge.merge(org.staff, s.id, [twin.id])
    db.session.execute(update(OwnershipEvent).where(OwnershipEvent.id.in_(twins_events))
                       .values(customer_id=s.id))
    record.moved = dict(record.moved, **{"ownership_event.customer_id": [
        [i] for i in sorted(twins_events)]})
    db.session.commit()
    merge.undo(org.staff, record.id)
    assert twins_events <= event_ids(db, twin.id)
    assert not twins_events & event_ids(db, s.id)
