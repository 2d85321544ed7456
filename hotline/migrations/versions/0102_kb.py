"""Knowledge base: articles (guides, FAQ, reply library) with versions and review events.

Revision ID: 0102
Revises: 0101
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from kb.tables import BigId, UTCDateTime

revision = "0102"
down_revision = "0101"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kb_articles",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("language", sa.String(16), nullable=False),
        sa.Column("code", sa.String(64)),
        sa.Column("department", sa.String(64)),
        sa.Column("original_id", BigId, sa.ForeignKey("kb_articles.id")),
        sa.Column("ref", sa.String(64)),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("valid_from", UTCDateTime),
        sa.Column("valid_until", UTCDateTime),
        sa.Column("note", sa.Text),
        sa.Column("live_version", sa.Integer),
        sa.Column("live_title", sa.String(200)),
        sa.Column("live_fields", sa.JSON),
        sa.Column("published_at", UTCDateTime),
        sa.Column("dirty", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("updated_by", sa.String(100), nullable=False),
        sa.UniqueConstraint("kind", "code", "language", name="uq_kb_code"),
    )
    op.create_index("ix_kb_status", "kb_articles", ["status", "kind"])
    op.create_index("ix_kb_original", "kb_articles", ["original_id"])
    op.create_index("ix_kb_ref", "kb_articles", ["ref"])
    op.create_index("ix_kb_dirty", "kb_articles", ["dirty"])
    op.create_table(
        "kb_versions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("article_id", BigId, sa.ForeignKey("kb_articles.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("fields", sa.JSON, nullable=False),
        sa.Column("valid_from", UTCDateTime),
        sa.Column("valid_until", UTCDateTime),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.UniqueConstraint("article_id", "version", name="uq_kb_version"),
    )
    op.create_table(
        "kb_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("article_id", BigId, sa.ForeignKey("kb_articles.id"), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer),
        sa.Column("note", sa.Text),
    )
    op.create_index("ix_kb_events_article", "kb_events", ["article_id", "id"])


def downgrade() -> None:
    op.drop_table("kb_events")
    op.drop_table("kb_versions")
    op.drop_table("kb_articles")
