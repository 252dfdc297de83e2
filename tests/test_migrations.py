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
