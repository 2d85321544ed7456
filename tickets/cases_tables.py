"""SQL table of the public 曝光纠错 column: the redacted, approved text of published cases."""

from __future__ import annotations

import sqlalchemy as sa

from tickets.tables import BigId, UTCDateTime, metadata

# One row per work order chosen for publication. The public pages read only this table: what a
# supervisor approved is all they can show, never a field of the order itself.
public_cases = sa.Table(
    "public_cases",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id"), nullable=False, unique=True),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("state", sa.String(12), nullable=False),  # draft | published | withdrawn
    sa.Column("title", sa.String(200), nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("title_mn", sa.String(400)),
    sa.Column("question_mn", sa.Text),
    sa.Column("answer_mn", sa.Text),
    sa.Column("department", sa.String(64), nullable=False),  # "" = the hotline centre
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("category", sa.String(50), nullable=False),
    sa.Column("region", sa.String(12), nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("answered_at", UTCDateTime, nullable=False),
    sa.Column("satisfaction", sa.String(16)),
    sa.Column("created_by", BigId),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("published_by", BigId),
    sa.Column("published_at", UTCDateTime),
    sa.Index("ix_public_cases_published", "state", "published_at"),
)
