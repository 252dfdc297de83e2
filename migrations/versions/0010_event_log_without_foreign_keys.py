"""event log without foreign keys

The ownership event log keeps the ids of users and pools as history (no ON DELETE SET NULL
rewriting it), like customer_id already did, and a sweep logging 500,000 events no longer
pays five referential checks per row.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 20:05:00

"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_REFS = [("from_owner_id", "ab_user"), ("from_pool_id", "pool"), ("to_owner_id", "ab_user"),
         ("to_pool_id", "pool"), ("actor_id", "ab_user")]
# SQLite's foreign keys have no names: batch mode names them by this convention to drop them.
_SQLITE_FK = "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        for column, _ in _REFS:
            op.drop_constraint(f"ownership_event_{column}_fkey", "ownership_event",
                               type_="foreignkey")
        return
    with op.batch_alter_table("ownership_event", naming_convention={"fk": _SQLITE_FK}) as batch:
        for column, table in _REFS:
            batch.drop_constraint(f"fk_ownership_event_{column}_{table}", type_="foreignkey")


def downgrade():
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table("ownership_event") as batch:
        for column, table in _REFS:
            name = (f"ownership_event_{column}_fkey" if postgres
                    else f"fk_ownership_event_{column}_{table}")
            batch.create_foreign_key(name, table, [column], ["id"], ondelete="SET NULL")
