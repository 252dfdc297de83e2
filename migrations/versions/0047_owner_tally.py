"""owner tally: what each owner holds (held, locked, won, unlocked and not won, fresh), kept
by triggers on customer_ownership that append change rows to owner_tally, folded into each
owner's base row by a periodic job (app.services.tally)

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-01 19:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0047'
down_revision = '0046'
branch_labels = None
depends_on = None

COLUMNS = ("held", "locked", "won", "unlocked_unwon", "fresh")


def _signs(row: str, sign: str, dialect: str) -> str:
    """The change row's values for `row` (OLD / NEW) entering (+) or leaving (-) an owner."""
    def flag(expr):
        return f"{sign}({expr})::int" if dialect == "postgresql" else f"{sign}({expr})"
    return ", ".join(["false", f"{sign}1", flag(f"{row}.locked"), flag(f"{row}.won"),
                      flag(f"NOT {row}.locked AND NOT {row}.won"),
                      flag(f"NOT {row}.won AND {row}.last_followup_at IS NULL")])


# Only what changes a count fires: an owner change, a lock, a win, a first follow-up.
CHANGED = ("OLD.owner_id IS DISTINCT FROM NEW.owner_id OR OLD.locked <> NEW.locked "
           "OR OLD.won <> NEW.won "
           "OR (OLD.last_followup_at IS NULL) <> (NEW.last_followup_at IS NULL)")
INSERT_CHANGE = f"INSERT INTO owner_tally (owner_id, base, {', '.join(COLUMNS)})"


def _postgresql():
    op.execute(f"""
CREATE FUNCTION owner_tally_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.owner_id = NEW.owner_id THEN
        -- the same owner, another state: one row with the difference
        {INSERT_CHANGE} VALUES (NEW.owner_id, false, 0,
            NEW.locked::int - OLD.locked::int, NEW.won::int - OLD.won::int,
            (NOT NEW.locked AND NOT NEW.won)::int - (NOT OLD.locked AND NOT OLD.won)::int,
            (NOT NEW.won AND NEW.last_followup_at IS NULL)::int
              - (NOT OLD.won AND OLD.last_followup_at IS NULL)::int);
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' AND OLD.owner_id IS NOT NULL THEN
        {INSERT_CHANGE} VALUES (OLD.owner_id, {_signs("OLD", "-", "postgresql")});
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.owner_id IS NOT NULL THEN
        {INSERT_CHANGE} VALUES (NEW.owner_id, {_signs("NEW", "", "postgresql")});
    END IF;
    RETURN NULL;
END $$""")
    op.execute("CREATE TRIGGER owner_tally_insert_delete AFTER INSERT OR DELETE "
               "ON customer_ownership FOR EACH ROW EXECUTE FUNCTION owner_tally_track()")
    op.execute("CREATE TRIGGER owner_tally_update AFTER UPDATE ON customer_ownership "
               f"FOR EACH ROW WHEN ({CHANGED}) EXECUTE FUNCTION owner_tally_track()")


def _sqlite():
    op.execute(f"""CREATE TRIGGER owner_tally_insert AFTER INSERT ON customer_ownership
WHEN NEW.owner_id IS NOT NULL BEGIN
    {INSERT_CHANGE} VALUES (NEW.owner_id, {_signs("NEW", "", "sqlite")});
END""")
    op.execute(f"""CREATE TRIGGER owner_tally_delete AFTER DELETE ON customer_ownership
WHEN OLD.owner_id IS NOT NULL BEGIN
    {INSERT_CHANGE} VALUES (OLD.owner_id, {_signs("OLD", "-", "sqlite")});
END""")
    op.execute(f"""CREATE TRIGGER owner_tally_update AFTER UPDATE ON customer_ownership
WHEN {CHANGED.replace("IS DISTINCT FROM", "IS NOT")} BEGIN
    {INSERT_CHANGE} SELECT OLD.owner_id, {_signs("OLD", "-", "sqlite")}
        WHERE OLD.owner_id IS NOT NULL;
    {INSERT_CHANGE} SELECT NEW.owner_id, {_signs("NEW", "", "sqlite")}
        WHERE NEW.owner_id IS NOT NULL;
END""")


def upgrade():
    op.create_table(
        'owner_tally',
        sa.Column('owner_id', sa.Integer(), nullable=False),
        sa.Column('base', sa.Boolean(), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in COLUMNS),
    )
    op.create_index('ix_owner_tally_owner_id', 'owner_tally', ['owner_id'])
    op.create_index('uq_owner_tally_base', 'owner_tally', ['owner_id'], unique=True,
                    postgresql_where=sa.text('base'), sqlite_where=sa.text('base'))
    if op.get_bind().dialect.name == "postgresql":
        _postgresql()
    else:
        _sqlite()
    # The counts of the rows already there (the triggers count from here on).
    op.execute(f"""INSERT INTO owner_tally (owner_id, base, {', '.join(COLUMNS)})
SELECT owner_id, true, count(*),
       sum(CASE WHEN locked THEN 1 ELSE 0 END), sum(CASE WHEN won THEN 1 ELSE 0 END),
       sum(CASE WHEN NOT locked AND NOT won THEN 1 ELSE 0 END),
       sum(CASE WHEN NOT won AND last_followup_at IS NULL THEN 1 ELSE 0 END)
FROM customer_ownership WHERE owner_id IS NOT NULL GROUP BY owner_id""")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER owner_tally_update ON customer_ownership")
        op.execute("DROP TRIGGER owner_tally_insert_delete ON customer_ownership")
        op.execute("DROP FUNCTION owner_tally_track()")
    else:
        for name in ("owner_tally_update", "owner_tally_delete", "owner_tally_insert"):
            op.execute(f"DROP TRIGGER {name}")
    op.drop_index('uq_owner_tally_base', table_name='owner_tally')
    op.drop_index('ix_owner_tally_owner_id', table_name='owner_tally')
    op.drop_table('owner_tally')
