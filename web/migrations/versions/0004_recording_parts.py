"""recording parts: every file of a show's recording, joined at its end

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:20:00

Issue 13: a show taken over from a dead origin node (or published again after a node
restart) is recorded into another file; each is a row here, with its start, so the
parts can be joined into one replay whose pin times stay right. Existing shows' single
recording stays in `shows.recording_path`.
"""
from alembic import op
import sqlalchemy as sa
import orders.models


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'recording_parts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('show_id', sa.Integer(), nullable=False),
        sa.Column('path', sa.String(length=500), nullable=False),
        sa.Column('started_at', orders.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['show_id'], ['shows.id'], name=op.f('fk_recording_parts_show_id_shows')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_recording_parts')),
    )
    op.create_index(op.f('ix_recording_parts_show_id'), 'recording_parts', ['show_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_recording_parts_show_id'), table_name='recording_parts')
    op.drop_table('recording_parts')
