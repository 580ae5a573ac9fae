"""product images: the pictures an admin uploads for a product, in order

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 14:00:00

Issue 16, item 2. A new table only: one row per picture of a product, with its place in
the product's gallery, the SHA-256 of the uploaded bytes (its files are named by it) and
the pixel sizes of the resized copies. The files are in the media store, not here.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'product_images',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('product_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('sizes', sa.JSON(), nullable=False),
        sa.Column('created_at', orders.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_product_images_product_id_products')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_product_images')),
        sa.UniqueConstraint('product_id', 'content_hash', name='uq_product_images_product_hash'),
    )
    op.create_index(op.f('ix_product_images_product_id'), 'product_images', ['product_id'], unique=False)
    op.create_index(op.f('ix_product_images_content_hash'), 'product_images', ['content_hash'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_product_images_content_hash'), table_name='product_images')
    op.drop_index(op.f('ix_product_images_product_id'), table_name='product_images')
    op.drop_table('product_images')
