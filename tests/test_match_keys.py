"""The dedupe matcher's blocking entries (app.services.match_keys): they follow every write
path, a rebuild gives the same rows, and a record's candidates from the table are the
neighbours the batch scan pairs it with, in a block of any size."""
from __future__ import annotations

from sqlalchemy import select

from app.models import Customer, CustomerMatchKey
from app.services import customers, match_keys, merge
from app.services.customers import text_keys
from tests.test_services_import import HEADER, csv_bytes, run_import


def stored(db, customer_id) -> set[tuple[str, str]]:
    db.session.flush()
    return set(db.session.execute(select(CustomerMatchKey.block, CustomerMatchKey.sort_key)
                                  .where(CustomerMatchKey.customer_id == customer_id)).all())


def expected(db, customer_id) -> set[tuple[str, str]]:
    row = db.session.get(Customer, customer_id)
    db.session.refresh(row)
    return match_keys.entries({c.name: getattr(row, c.name) for c in Customer.__table__.c})


def company(name, **more) -> dict:
    values = {"id": None, "customer_type": "company", "name": name, **more}
    values.update(text_keys("company", name, more.get("address_norm")))
    return values


def test_create_update_and_delete_keep_the_entries(db, org):
    c = customers.create_customer(org.rep, {"name": "英荣润网络科技有限公司", "city": "杭州",
                                            "address": "文三路 90 号"})
    rows = stored(db, c.id)
    assert rows and rows == expected(db, c.id)
    assert any(block.startswith("name/core:c:英荣") for block, _ in rows)
    customers.update_customer(org.rep, c.id, {"name": "中兴通讯有限公司"})
    rows = stored(db, c.id)
    assert rows == expected(db, c.id)
    assert not any("英荣" in block for block, _ in rows)
    unchanged = stored(db, c.id)
    customers.update_customer(org.rep, c.id, {"notes": "not read by the matcher"})
    assert stored(db, c.id) == unchanged
    customers.delete_customer(org.admin, c.id)
    assert stored(db, c.id) == set()


def test_import_and_merge_and_its_undo_write_the_entries(db, org):
    data = csv_bytes(HEADER + "宁波海天塑机有限公司,13700137001,,sales@haitian.cn,宁波,,企业\n")
    assert run_import(db, org.staff, data).inserted == 1
    [cid] = db.session.execute(select(Customer.id).where(
        Customer.name == "宁波海天塑机有限公司")).scalars()
    assert stored(db, cid) and stored(db, cid) == expected(db, cid)
    twin = customers.create_customer(org.rep2, {"name": "杭州云帆科技", "mobile": "13600136001"},
                                     confirm_duplicates=True)
    [record] = merge.merge(org.staff, org.c_rep.id, [twin.id], {"name": twin.id})
    assert stored(db, twin.id) == set()
    assert stored(db, org.c_rep.id) == expected(db, org.c_rep.id)
    merge.undo(org.staff, record.id)
    assert stored(db, twin.id) == expected(db, twin.id) != set()
    assert stored(db, org.c_rep.id) == expected(db, org.c_rep.id)


def test_rebuild_gives_the_same_rows_and_the_command_runs(app, db, org):
    customers.create_customer(org.rep, {"name": "杨兵丽", "customer_type": "person",
                                        "birthday": "1988-03-14", "address": "长宁路 8 号"})
    db.session.flush()
    everything = select(CustomerMatchKey.block, CustomerMatchKey.sort_key,
                        CustomerMatchKey.customer_id)
    before = set(db.session.execute(everything).all())
    assert match_keys.rebuild_all(db.session.connection()) >= 4
    assert set(db.session.execute(everything).all()) == before
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["crm", "match-keys-rebuild"])
    assert result.exit_code == 0, result.output
    assert "customers indexed for dedupe matching" in result.output


def test_a_long_key_is_bounded(db, org):
    long_mail = "a" * 60 + "@" + "b" * 120 + ".cn"
    rec = company("长邮箱测试有限公司", email_norm=long_mail)
    for block, sort in match_keys.entries(rec):
        assert len(block) <= match_keys.BLOCK_MAX and len(sort) <= match_keys.SORT_MAX


def test_candidates_are_the_neighbours_in_a_crowded_block(db, org):
    """120 companies share the first two characters: a new one is paired with the window−1
    before and after it in each order, not with the whole block, and not with the others."""
    names = [f"华为{i:03d}号科技有限公司" for i in range(120)]
    ids = []
    for name in names:
        c = Customer(name=name, customer_type="company",
                     **{k: v for k, v in text_keys("company", name, None).items()})
        db.session.add(c)
        db.session.flush()
        ids.append(c.id)
    new = company("华为050号科技有限公司")  # the same core as number 050
    found = match_keys.candidate_ids(new)
    window = match_keys.NAME_WINDOW  # the name pass, by the core and by the reversed core
    by_core = sorted(range(120), key=lambda i: (names[i], ids[i]))
    # Among equal sort values a new record comes last: its neighbours by the core order are
    # the window−1 up to and including its twin, and the window−1 after.
    twin_pos = by_core.index(50)
    expected_core = {ids[i] for i in by_core[max(0, twin_pos - window + 2):twin_pos + 1]} | \
        {ids[i] for i in by_core[twin_pos + 1:twin_pos + window]}
    assert expected_core <= found
    assert ids[50] in found
    assert len(found) < 120  # the block is read in windows, not whole
    # A saved customer is not its own candidate.
    assert ids[50] not in match_keys.candidate_ids(
        {**company(names[50]), "id": ids[50]}, customer_id=ids[50])
    # The entry check reads the candidates' columns in the same statement: the same customers,
    # with the stored columns records() gives, in id order.
    assert match_keys.candidate_records(new) == match_keys.records(found)
    again = match_keys.candidate_records({**company(names[50]), "id": ids[50]},
                                         customer_id=ids[50])
    assert [r["id"] for r in again] == sorted(match_keys.candidate_ids(
        {**company(names[50]), "id": ids[50]}, customer_id=ids[50]))
