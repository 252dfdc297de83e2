"""Campaign queue benchmark (issue 16): a segment of N customers evaluated and its messages
queued, set-based, on PostgreSQL or SQLite.

N owned customers over 20 reps, each with an e-mail but every 50th (of those, every second
has a primary contact with one: the fallback), 1 % of the addresses on the opt-out list. One
segment (every owned customer, created by a Marketing user: scope ALL), one e-mail campaign.

Prints, measured in the same run on the same rows:
  - the bare INSERT … SELECT of the messages (campaign_member joined to customer, its e-mail,
    no fallback, no opt-out check, no conflict handling), rolled back;
  - the real path: the segment's members frozen into campaign_member (one INSERT … SELECT
    over app.services.marketing_segments.members_select, as launch does) and then
    app.services.campaign_sending.queue_messages (fallback to the primary contact, opt-outs
    skipped, consent rule, ON CONFLICT DO NOTHING); and a second queue_messages (nothing
    new: the idempotent re-run).

    .venv/bin/python bench/campaign_queue.py --customers 1000000                     # PostgreSQL
    .venv/bin/python bench/campaign_queue.py --customers 100000 --sqlite /tmp/cq.db

The PostgreSQL database in DATABASE_URL (default guishu_bench_campaign) is dropped and
recreated; the SQLite file is replaced. Not a test: numbers only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402

from claims import recreate_database  # noqa: E402
from sweep import series  # noqa: E402

REPS = 20


def setup(app, n: int) -> tuple[int, int]:
    """Load the rows; (segment id, campaign id)."""
    from flask_migrate import upgrade

    from app.extensions import appbuilder, db
    from app.models.marketing import Campaign, Segment
    from app.security import ROLE_MARKETING, ROLE_REP
    from app.services import bootstrap

    with app.app_context():
        upgrade()
        bootstrap.initialise()
        dialect = db.engine.dialect.name
        rep_role = appbuilder.sm.find_role(ROLE_REP)
        reps = [appbuilder.sm.add_user(f"cq{i}", "压测", str(i), f"cq{i}@bench.local",
                                       rep_role, hashed_password="x", commit=False)
                for i in range(REPS)]
        marketer = appbuilder.sm.add_user("cqmkt", "压测", "市场", "cqmkt@bench.local",
                                          appbuilder.sm.find_role(ROLE_MARKETING),
                                          hashed_password="x", commit=False)
        db.session.commit()
        rep0 = min(u.id for u in reps)
        t0 = time.perf_counter()
        now = dt.datetime.utcnow()
        if dialect == "postgresql":
            db.session.execute(sa.text("SET CONSTRAINTS ALL DEFERRED"))
        db.session.execute(sa.text(
            "INSERT INTO customer (id, name, customer_type, created_at, updated_at, "
            "birthday_lunar, norm_version, email, email_norm, mobile, mobile_e164) "
            "SELECT g, 'cq-' || g, 'company', :now, :now, false, 1, "
            "CASE WHEN g % 50 = 0 THEN NULL ELSE 'c' || g || '@bench.local' END, "
            "CASE WHEN g % 50 = 0 THEN NULL ELSE 'c' || g || '@bench.local' END, "
            "'+86139' || (10000000 + g), '+86139' || (10000000 + g) "
            f"FROM {series(dialect, n)}"), {"now": now})
        db.session.execute(sa.text(
            "INSERT INTO customer_ownership (customer_id, owner_id, acquired_at, acquired_how, "
            "locked, won, category, grade) SELECT g, :rep0 + (g % :reps), :now, 'created', "
            "false, false, 'potential', CASE WHEN g % 3 = 0 THEN 'B' ELSE 'C' END "
            f"FROM {series(dialect, n)}"), {"rep0": rep0, "reps": REPS, "now": now})
        db.session.execute(sa.text(
            "INSERT INTO contact (customer_id, name, email, email_norm, is_primary, created_at, "
            "birthday_lunar) SELECT g, '联系人' || g, "
            "'p' || g || '@bench.local', 'p' || g || '@bench.local', true, :now, false "
            f"FROM {series(dialect, n)} WHERE g % 100 = 0"), {"now": now})
        db.session.execute(sa.text(
            "INSERT INTO marketing_optout (channel, address, source, created_at) "
            "SELECT 'email', 'c' || g || '@bench.local', 'link', :now "
            f"FROM {series(dialect, n)} WHERE g % 100 = 7"), {"now": now})
        if dialect == "postgresql":
            db.session.execute(sa.text("SELECT setval('customer_id_seq', :n)"), {"n": n})
        segment = Segment(name="全部客户", record_type="customer", criteria="{}",
                          include_pool=False, created_by_id=marketer.id)
        campaign = Campaign(name="压测邮件活动", kind="email", status="running",
                            owner_id=marketer.id, segment=segment,
                            email_subject="{name}，您好", email_body="{company} 专享优惠")
        db.session.add_all([segment, campaign])
        db.session.commit()
        db.session.execute(sa.text("ANALYZE"))
        db.session.commit()
        print(f"loaded {n:,} owned customers ({n // 50:,} without an e-mail, "
              f"{n // 100:,} primary contacts, {n // 100:,} opt-outs) in "
              f"{time.perf_counter() - t0:.1f} s")
        return segment.id, campaign.id


def freeze_members(segment_id: int, campaign_id: int) -> int:
    """The segment's members now, into campaign_member (what launch does), one statement."""
    from sqlalchemy import func, insert, literal, select

    from app.extensions import db
    from app.models.customer import utcnow
    from app.models.marketing import CampaignMember, Segment
    from app.services.marketing_segments import members_select

    members = members_select(db.session.get(Segment, segment_id)).subquery()
    stmt = insert(CampaignMember).from_select(
        ["campaign_id", "customer_id", "lead_id", "source", "added_at"],
        select(literal(campaign_id), members.c.customer_id, members.c.lead_id,
               literal("segment"), literal(utcnow())).select_from(members))
    db.session.execute(stmt)
    return db.session.execute(select(func.count()).select_from(CampaignMember).where(
        CampaignMember.campaign_id == campaign_id)).scalar_one()


def bare_insert(app, campaign_id: int) -> tuple[float, int]:
    """The messages of the same members: one plain INSERT … SELECT, rolled back."""
    from app.extensions import db

    with app.app_context():
        freeze_members_seconds = time.perf_counter()
        from app.models.marketing import Campaign

        segment_id = db.session.get(Campaign, campaign_id).segment_id
        freeze_members(segment_id, campaign_id)
        db.session.commit()
        print(f"  (members frozen for the bare run in "
              f"{time.perf_counter() - freeze_members_seconds:.1f} s)")
        t0 = time.perf_counter()
        n = db.session.execute(sa.text(
            "INSERT INTO campaign_message (campaign_id, member_id, channel, address, status, "
            "attempts, created_at) SELECT m.campaign_id, m.id, 'email', c.email_norm, "
            "'pending', 0, :now FROM campaign_member m JOIN customer c ON c.id = m.customer_id "
            "WHERE m.campaign_id = :cid AND c.email_norm IS NOT NULL"),
            {"cid": campaign_id, "now": dt.datetime.utcnow()}).rowcount
        seconds = time.perf_counter() - t0
        db.session.rollback()
        # The real run starts from no members again.
        db.session.execute(sa.text("DELETE FROM campaign_member WHERE campaign_id = :cid"),
                           {"cid": campaign_id})
        db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(sa.text("VACUUM ANALYZE campaign_member"))
                c.execute(sa.text("VACUUM ANALYZE campaign_message"))
        return seconds, n


def real_path(app, segment_id: int, campaign_id: int) -> None:
    from app.extensions import db
    from app.services import campaign_sending

    with app.app_context():
        t0 = time.perf_counter()
        members = freeze_members(segment_id, campaign_id)
        db.session.commit()
        t1 = time.perf_counter()
        queued = campaign_sending.queue_messages(campaign_id)
        t2 = time.perf_counter()
        again = campaign_sending.queue_messages(campaign_id)
        t3 = time.perf_counter()
        print(f"  segment evaluated, members frozen: {members:,} in {t1 - t0:.2f} s")
        print(f"  queue_messages:                    {queued:,} queued in {t2 - t1:.2f} s")
        print(f"  segment + queue (the budget 60 s): {t2 - t0:.2f} s")
        print(f"  queue_messages again (idempotent): {again:,} in {t3 - t2:.2f} s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--sqlite", help="SQLite file to use instead of PostgreSQL")
    args = ap.parse_args()
    if args.sqlite:
        Path(args.sqlite).unlink(missing_ok=True)
        url = f"sqlite:///{args.sqlite}"
    else:
        url = os.environ.get("DATABASE_URL",
                             "postgresql://postgres@127.0.0.1:5432/guishu_bench_campaign")
        recreate_database(url)
    os.environ["DATABASE_URL"] = url
    from app import create_app

    app = create_app()
    segment_id, campaign_id = setup(app, args.customers)
    bare, n_bare = bare_insert(app, campaign_id)
    print(f"  bare INSERT … SELECT of the messages: {n_bare:,} rows in {bare:.2f} s "
          f"(rolled back)")
    real_path(app, segment_id, campaign_id)


if __name__ == "__main__":
    main()
