"""SQL table of call records (one row per call: the source of the call-centre KPIs)."""

from __future__ import annotations

import sqlalchemy as sa

from tickets.tables import BigId, UTCDateTime, metadata

calls = sa.Table(
    "calls",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # our call id (uuid hex)
    sa.Column("direction", sa.String(8), nullable=False),  # in | out
    sa.Column("purpose", sa.String(16), nullable=False),  # intake | callback | survey
    sa.Column("caller", sa.String(64), nullable=False),
    sa.Column("dialled", sa.String(64), nullable=False),
    sa.Column("worker", sa.Integer, nullable=False),
    sa.Column("language", sa.String(8)),
    sa.Column("ivr_path", sa.String(400), nullable=False),
    sa.Column("kind", sa.String(16)),
    sa.Column("offered_at", UTCDateTime, nullable=False),
    sa.Column("queued_at", UTCDateTime),
    sa.Column("answered_at", UTCDateTime),
    sa.Column("ended_at", UTCDateTime),
    # answered | abandoned | voicemail | ivr | rejected | failed | survey | callback
    sa.Column("outcome", sa.String(16)),
    sa.Column("agent", sa.String(64)),
    sa.Column("ticket_id", BigId, sa.ForeignKey("tickets.id")),
    sa.Column("recording", sa.String(300)),
    sa.Column("recording_purged", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index("ix_calls_offered", "offered_at"),
    sa.Index("ix_calls_caller", "caller", "offered_at"),
    sa.Index("ix_calls_ticket", "ticket_id"),
)
