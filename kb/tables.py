"""SQL tables of the knowledge base (SQLAlchemy Core); the migrations build them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData()
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Naive UTC in the database, aware UTC in Python (as tickets/tables.py does)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: store times in UTC with tzinfo")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - SQLite raw strings
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC)


articles = sa.Table(
    "kb_articles",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("language", sa.String(16), nullable=False),
    sa.Column("code", sa.String(64)),  # 事项编码: one code for one item at every level
    sa.Column("department", sa.String(64)),
    sa.Column("original_id", BigId, sa.ForeignKey("kb_articles.id")),
    sa.Column("ref", sa.String(64)),  # the order a reply answers
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
    # set by every change of what search shows, cleared once the index has it: a durable
    # "to index" mark that survives a search outage
    sa.Column("dirty", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("updated_by", sa.String(100), nullable=False),
    sa.UniqueConstraint("kind", "code", "language", name="uq_kb_code"),
    sa.Index("ix_kb_status", "status", "kind"),
    sa.Index("ix_kb_original", "original_id"),
    sa.Index("ix_kb_ref", "ref"),
    sa.Index("ix_kb_dirty", "dirty"),
)

versions = sa.Table(
    "kb_versions",
    metadata,
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

events = sa.Table(
    "kb_events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("article_id", BigId, sa.ForeignKey("kb_articles.id"), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("version", sa.Integer),
    sa.Column("note", sa.Text),
    sa.Index("ix_kb_events_article", "article_id", "id"),
)
