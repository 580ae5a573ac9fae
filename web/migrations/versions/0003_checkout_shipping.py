"""checkout: address book, ship-to on orders, shipping tables, product weight

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 08:10:00

Issue 15, items 1 and 3. Every new column is nullable, so on SQLite they are added with
a plain ALTER TABLE ADD COLUMN (no rebuild of `products` or `orders`, which other tables
reference) and the order desk's inserts, which do not name them, store NULL.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

MONEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PRODUCT_COLUMNS = (
    ("weight_grams", sa.Integer()),
    ("shipping_class", sa.String(length=32)),
    ("ships_only_to", sa.JSON()),
    ("never_ships_to", sa.JSON()),
)
ORDER_COLUMNS = (
    ("ship_name", sa.String(length=100)),
    ("ship_line1", sa.String(length=200)),
    ("ship_line2", sa.String(length=200)),
    ("ship_city", sa.String(length=100)),
    ("ship_region", sa.String(length=100)),
    ("ship_postal_code", sa.String(length=16)),
    ("ship_country", sa.String(length=2)),
    ("ship_phone", sa.String(length=20)),
    ("shipping_amount", MONEY),
    ("duties_amount", MONEY),
    ("incoterm", sa.String(length=3)),
    ("carrier", sa.String(length=40)),
    ("tracking_number", sa.String(length=40)),
)


def upgrade() -> None:
    for name, type_ in PRODUCT_COLUMNS:
        op.add_column('products', sa.Column(name, type_, nullable=True))
    for name, type_ in ORDER_COLUMNS:
        op.add_column('orders', sa.Column(name, type_, nullable=True))
    op.create_table('addresses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('line1', sa.String(length=200), nullable=False),
    sa.Column('line2', sa.String(length=200), nullable=True),
    sa.Column('city', sa.String(length=100), nullable=False),
    sa.Column('region', sa.String(length=100), nullable=True),
    sa.Column('postal_code', sa.String(length=16), nullable=True),
    sa.Column('country', sa.String(length=2), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('created_at', orders.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', orders.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_addresses_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_addresses'))
    )
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_addresses_user_id'), ['user_id'], unique=False)
    op.create_table('shipping_tables',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('scope', sa.String(length=48), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('zones', sa.JSON(), nullable=False),
    sa.Column('updated_at', orders.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shipping_tables')),
    sa.UniqueConstraint('scope', 'currency', name='uq_shipping_tables_scope_currency')
    )


def downgrade() -> None:
    op.drop_table('shipping_tables')
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_addresses_user_id'))
    op.drop_table('addresses')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        for name, _ in reversed(ORDER_COLUMNS):
            batch_op.drop_column(name)
    with op.batch_alter_table('products', schema=None) as batch_op:
        for name, _ in reversed(PRODUCT_COLUMNS):
            batch_op.drop_column(name)
