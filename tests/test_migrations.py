"""The models and the Alembic migrations describe the same schema (on both databases)."""
from flask_migrate import check


def test_models_match_migrations(app, db):
    # Flask-Migrate exits with status 1 (SystemExit) when autogenerate finds a difference.
    check()


def test_the_expression_indexes_exist(app, db):
    # Left out of the comparison above (migrations/env.py EXPRESSION_INDEXES).
    from sqlalchemy import text

    if db.engine.dialect.name == "postgresql":
        found = db.session.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_customer_ownership_owner_touch'"
        )).scalar_one()
    else:
        found = db.session.execute(text(
            "SELECT sql FROM sqlite_master WHERE name = 'ix_customer_ownership_owner_touch'"
        )).scalar_one()
    assert "owner_id" in found and "last_followup_at > acquired_at" in found.replace(
        "customer_ownership.", "")


def test_the_owner_tally_triggers_exist(app, db):
    """A migration that rebuilds customer_ownership (SQLite's batch mode copies the table)
    would drop the triggers that keep the owner tally (app.services.tally) without a word:
    this says so."""
    from sqlalchemy import text

    if db.engine.dialect.name == "postgresql":
        found = set(db.session.execute(text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'customer_ownership'::regclass "
            "AND NOT tgisinternal")).scalars())
        assert found == {"owner_tally_insert_delete", "owner_tally_update"}
    else:
        found = set(db.session.execute(text(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' "
            "AND tbl_name = 'customer_ownership'")).scalars())
        assert found == {"owner_tally_insert", "owner_tally_delete", "owner_tally_update"}
