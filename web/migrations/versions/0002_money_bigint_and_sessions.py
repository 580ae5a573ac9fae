"""money in 64-bit columns; sign-in sessions

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03 07:45:00

Money columns become BIGINT on PostgreSQL (issue 14, item 11: a total above 2^31-1
gave 500 and failed a whole batch of orders). SQLite is left as it is: its INTEGER
columns already hold 64-bit values, and rebuilding `products` (which every other
table references) under `PRAGMA foreign_keys=ON` would be the only risky step here.

`sessions` (issue 14, item 14): one row per sign-in; a token carries its session id
and is refused once the row is revoked or expired, on every node.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

MONEY = (
    ("products", ("price",), False),
    ("exhibition_products", ("price",), False),
    ("orders", ("unit_price", "total"), False),
    ("quotes", ("unit_price",), True),
    ("broker_credits", ("revenue", "amount"), False),
)


def _money(to: sa.types.TypeEngine, from_: sa.types.TypeEngine) -> None:
    if op.get_context().dialect.name == "sqlite":
        return
    for table, columns, nullable in MONEY:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.alter_column(column, existing_type=from_, type_=to, existing_nullable=nullable)


def upgrade() -> None:
    _money(sa.BigInteger(), sa.Integer())
    op.create_table('sessions',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('created_at', orders.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', orders.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', orders.models.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_sessions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sessions'))
    )
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sessions_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sessions_user_id'))
    op.drop_table('sessions')
    # Values beyond 32 bits would not fit back: downgrading refuses rather than truncating.
    _money(sa.Integer(), sa.BigInteger())
