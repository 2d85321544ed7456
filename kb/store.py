"""All SQL of the knowledge base: rows in, dataclasses out. Callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kb.model import (
    Article,
    ArticleFilter,
    ArticleKind,
    ArticleStatus,
    Event,
    Version,
)
from kb.tables import articles, events, versions

a = articles.c


def _article(row: Any) -> Article:
    m = row._mapping
    return Article(
        id=m["id"],
        kind=ArticleKind(m["kind"]),
        status=ArticleStatus(m["status"]),
        language=m["language"],
        title=m["title"],
        fields=dict(m["fields"] or {}),
        version=m["version"],
        code=m["code"],
        department=m["department"],
        valid_from=m["valid_from"],
        valid_until=m["valid_until"],
        original_id=m["original_id"],
        ref=m["ref"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        updated_by=m["updated_by"],
        live_version=m["live_version"],
        live_title=m["live_title"],
        live_fields=dict(m["live_fields"] or {}),
        published_at=m["published_at"],
        note=m["note"],
    )


def insert_article(conn: Connection, values: dict[str, Any]) -> int:
    return int(conn.execute(articles.insert().values(values).returning(a.id)).scalar_one())


def update_article(
    conn: Connection, article_id: int, version: int | None, values: dict[str, Any]
) -> bool:
    """Compare-and-set on the version when given (two editors: the second gets a conflict)."""
    stmt = articles.update().where(a.id == article_id)
    if version is not None:
        stmt = stmt.where(a.version == version)
    return conn.execute(stmt.values(values)).rowcount == 1


def get_article(conn: Connection, article_id: int) -> Article | None:
    row = conn.execute(sa.select(articles).where(a.id == article_id)).first()
    return _article(row) if row else None


def get_by_code(conn: Connection, kind: str, code: str, language: str) -> Article | None:
    row = conn.execute(
        sa.select(articles).where(a.kind == kind, a.code == code, a.language == language)
    ).first()
    return _article(row) if row else None


def get_by_ref(conn: Connection, ref: str) -> Article | None:
    row = conn.execute(sa.select(articles).where(a.ref == ref).order_by(a.id)).first()
    return _article(row) if row else None


def get_articles(conn: Connection, ids: Sequence[int]) -> list[Article]:
    if not ids:
        return []
    rows = conn.execute(sa.select(articles).where(a.id.in_(list(ids)))).all()
    by_id = {r.id: _article(r) for r in rows}
    return [by_id[i] for i in ids if i in by_id]


def translations(conn: Connection, article_id: int) -> list[Article]:
    rows = conn.execute(sa.select(articles).where(a.original_id == article_id).order_by(a.id))
    return [_article(r) for r in rows]


def _filtered(stmt: Any, f: ArticleFilter) -> Any:
    if f.kind is not None:
        stmt = stmt.where(a.kind == f.kind.value)
    if f.status is not None:
        stmt = stmt.where(a.status == f.status.value)
    if f.language is not None:
        stmt = stmt.where(a.language == f.language)
    if f.department is not None:
        stmt = stmt.where(a.department == f.department)
    if f.live_only:
        stmt = stmt.where(a.live_version.is_not(None))
    return stmt


def list_articles(conn: Connection, f: ArticleFilter) -> tuple[list[Article], int]:
    stmt = _filtered(sa.select(articles), f).order_by(a.updated_at.desc(), a.id.desc())
    rows = conn.execute(stmt.limit(f.limit).offset(f.offset)).all()
    total = conn.execute(_filtered(sa.select(sa.func.count()).select_from(articles), f))
    return [_article(r) for r in rows], int(total.scalar_one())


def after_id(conn: Connection, after: int, limit: int) -> list[Article]:
    rows = conn.execute(sa.select(articles).where(a.id > after).order_by(a.id).limit(limit))
    return [_article(r) for r in rows]


def insert_version(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(versions.insert().values(values))


def list_versions(conn: Connection, article_id: int) -> list[Version]:
    rows = conn.execute(
        sa.select(versions).where(versions.c.article_id == article_id).order_by(versions.c.version)
    )
    return [
        Version(
            r.article_id,
            r.version,
            r.title,
            dict(r.fields or {}),
            r.valid_from,
            r.valid_until,
            r.created_at,
            r.created_by,
        )
        for r in rows
    ]


def insert_event(
    conn: Connection,
    article_id: int,
    at: datetime,
    actor: str,
    action: str,
    version: int | None,
    note: str | None = None,
) -> None:
    conn.execute(
        events.insert().values(
            article_id=article_id, at=at, actor=actor, action=action, version=version, note=note
        )
    )


def list_events(conn: Connection, article_id: int) -> list[Event]:
    rows = conn.execute(
        sa.select(events).where(events.c.article_id == article_id).order_by(events.c.id)
    )
    return [Event(r.article_id, r.at, r.actor, r.action, r.version, r.note) for r in rows]


def expired_live(conn: Connection, now: datetime, limit: int) -> list[int]:
    """Published articles past their validity."""
    rows = conn.execute(
        sa.select(a.id)
        .where(a.live_version.is_not(None), a.valid_until.is_not(None), a.valid_until < now)
        .limit(limit)
    )
    return list(rows.scalars())


def dirty(conn: Connection, limit: int) -> list[Article]:
    rows = conn.execute(sa.select(articles).where(a.dirty.is_(True)).order_by(a.id).limit(limit))
    return [_article(r) for r in rows]


def mark_indexed(conn: Connection, done: Sequence[tuple[int, datetime]]) -> None:
    """Clear the mark unless the article changed again meanwhile (its updated_at moved)."""
    for article_id, updated_at in done:
        conn.execute(
            articles.update()
            .where(a.id == article_id, a.updated_at == updated_at)
            .values(dirty=False)
        )


def mark_all_dirty(conn: Connection) -> int:
    return conn.execute(articles.update().values(dirty=True)).rowcount
