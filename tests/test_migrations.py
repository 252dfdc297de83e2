"""The models and the Alembic migrations describe the same schema (on both databases)."""
from flask_migrate import check


def test_models_match_migrations(app, db):
    # Flask-Migrate exits with status 1 (SystemExit) when autogenerate finds a difference.
    check()
