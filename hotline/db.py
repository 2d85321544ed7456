"""Open the database for the app and bring its schema up to date with the migrations."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Connection

from hotline.config import Settings
from tickets.db import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config(connection: Connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(db: Database, revision: str = "head") -> None:
    """Run pending migrations; on PostgreSQL under an advisory lock so processes don't race."""
    with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_lock(123450001)")
            conn.commit()
        try:
            with conn.begin():
                command.upgrade(_alembic_config(conn), revision)
        finally:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SELECT pg_advisory_unlock(123450001)")
                conn.commit()


def downgrade(db: Database, revision: str) -> None:
    with db.engine.connect() as conn, conn.begin():
        command.downgrade(_alembic_config(conn), revision)


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    d = settings.database
    db = Database(
        settings.database_url,
        pool_size=d.pool_size,
        write_batch=d.write_batch,
        echo=d.echo,
        postgres_jit=d.postgres_jit,
    )
    if migrate:
        upgrade(db)
    return db


def current_revision(db: Database) -> str | None:
    """The migration the schema is at (None: an empty database)."""
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
