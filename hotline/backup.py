"""`hotline backup` and `hotline restore`: the store, the call recordings, the attachments, the
voicemail spool, the prompts (operators' Mongolian recordings cannot be generated again) and
the embedded search index, in one directory with a manifest of SHA-256 checksums.

- The store: SQLite through its online backup API (a consistent copy while the platform
  runs), PostgreSQL through `pg_dump --format=custom` (a consistent snapshot; for
  point-in-time recovery use a base backup + WAL archive, see README).
- The store is copied first, then the files: files are only ever added (or purged by their
  retention), so every file the copied store refers to is in the backup.
- A backup is written under `DIR.partial` and renamed to DIR when complete: a directory
  without the suffix is a whole backup.
- A restore checks every checksum before it writes anything, refuses a target that already
  holds orders or files (unless forced), loads the store, copies the files, brings the schema
  up to date (a backup of an older version migrates), and moves the stored paths of call
  recordings to the new recordings directory when it differs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from hotline.config import Settings

FORMAT = 1
MANIFEST = "manifest.json"
CHUNK = 1 << 20
# tables whose row counts a backup records (and a restore reports)
COUNTED = ("tickets", "ticket_events", "calls", "sms_inbox", "kb_articles", "users")


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why, in Chinese."""


@dataclass(frozen=True)
class FileSet:
    name: str  # the folder's name inside the backup
    setting: str  # where it is configured
    path: Path


def file_sets(settings: Settings) -> list[FileSet]:
    tel, att = settings.telephony, settings.attachments
    return [
        FileSet("recordings", "telephony.recordings_dir", settings.resolve(tel.recordings_dir)),
        FileSet("spool", "telephony.spool_dir", settings.resolve(tel.spool_dir)),
        FileSet("prompts", "telephony.prompts_dir", settings.resolve(tel.prompts_dir)),
        FileSet("attachments", "attachments.dir", settings.resolve(att.dir)),
    ]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("内存数据库无法备份")
    return Path(database)


def _libpq(url: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy PostgreSQL URL as pg_dump/pg_restore take it; the password goes in the
    environment (PGPASSWORD), never on a command line others can read."""
    u = make_url(url)
    env = dict(os.environ)
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    plain = u.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _sqlite_copy(source: Path, target: Path) -> None:
    """SQLite's online backup: a consistent copy even while writers run."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        dst = sqlite3.connect(target)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()


def _sqlite_replace(source: Path, target: Path) -> None:
    """`target` (and its WAL files) becomes a copy of the SQLite file `source`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    _sqlite_copy(source, target)


def _counts(url: str) -> dict[str, int]:
    """What the store holds, to compare after a restore."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = set(sa.inspect(conn).get_table_names())
            out = {}
            for table in COUNTED:
                if table in names:
                    query = sa.select(sa.func.count()).select_from(sa.table(table))
                    out[table] = int(conn.execute(query).scalar_one())
            return out
    finally:
        engine.dispose()


def _revision(url: str) -> str | None:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if "alembic_version" not in sa.inspect(conn).get_table_names():
                return None
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()


def backup(settings: Settings, out: Path, progress: Any = None) -> dict[str, Any]:
    """Write a whole backup to `out` (which must not exist); returns the manifest."""
    say = progress or (lambda _msg: None)
    if out.exists():
        raise BackupError(f"备份目录已存在: {out}")
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    url = settings.database_url
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(),
        "database": "sqlite" if _is_sqlite(url) else "postgresql",
        "revision": _revision(url),
        "counts": _counts(url),
        "dirs": {fs.name: str(fs.path) for fs in file_sets(settings)},
        "files": {},
    }
    say("备份数据库 …")
    if _is_sqlite(url):
        _sqlite_copy(_sqlite_path(url), partial / "database.sqlite")
    else:
        dsn, env = _libpq(url)
        dump = partial / "database.pgdump"
        result = subprocess.run(
            ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={dump}", dsn],
            env=env,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise BackupError(f"pg_dump 失败: {result.stderr.strip()}")
    if settings.search.backend == "embedded":
        index = settings.resolve(settings.search.path)
        if index.is_file():
            say("备份检索索引 …")
            _sqlite_copy(index, partial / "search.sqlite")
    for fs in file_sets(settings):
        if not fs.path.is_dir():
            continue
        say(f"备份 {fs.name} …")
        for src in sorted(p for p in fs.path.rglob("*") if p.is_file()):
            rel = src.relative_to(fs.path)
            if fs.name == "attachments" and rel.parts[0] == "tmp":
                continue  # uploads in progress
            dst = partial / "files" / fs.name / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copy2(src, dst)
            except FileNotFoundError:  # purged meanwhile, or a voicemail that became an order
                continue
    for copied in sorted(p for p in partial.rglob("*") if p.is_file()):
        name = copied.relative_to(partial).as_posix()
        manifest["files"][name] = {"sha256": _sha256(copied), "size": copied.stat().st_size}
    (partial / MANIFEST).write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8"
    )
    _fsync_tree(partial)
    partial.rename(out)
    return manifest


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as f:
                os.fsync(f.fileno())


def verify(source: Path) -> dict[str, Any]:
    """The manifest of a whole, intact backup; BackupError listing what is wrong otherwise."""
    if source.name.endswith(".partial"):
        raise BackupError(f"{source} 是未完成的备份")
    try:
        manifest: dict[str, Any] = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupError(f"读不到备份清单 {source / MANIFEST}: {exc}") from exc
    if manifest.get("format") != FORMAT:
        raise BackupError(f"不支持的备份格式 {manifest.get('format')!r}")
    problems = []
    for rel, meta in manifest["files"].items():
        path = source / rel
        if not path.is_file():
            problems.append(f"缺少 {rel}")
        elif path.stat().st_size != meta["size"] or _sha256(path) != meta["sha256"]:
            problems.append(f"校验和不符 {rel}")
    listed = set(manifest["files"]) | {MANIFEST}
    extra = [
        p.relative_to(source).as_posix()
        for p in source.rglob("*")
        if p.is_file() and p.relative_to(source).as_posix() not in listed
    ]
    problems += [f"清单外的文件 {rel}" for rel in sorted(extra)]
    if problems:
        raise BackupError("备份不完整或已损坏：\n  " + "\n  ".join(problems))
    return manifest


def restore(
    settings: Settings, source: Path, force: bool = False, progress: Any = None
) -> dict[str, Any]:
    """Restore the backup in `source` into the configured store and folders."""
    say = progress or (lambda _msg: None)
    say("校验备份 …")
    manifest = verify(source)
    url = settings.database_url
    kind = "sqlite" if _is_sqlite(url) else "postgresql"
    if manifest["database"] != kind:
        raise BackupError(
            f"备份的数据库是 {manifest['database']}，当前配置是 {kind}：请配置同类数据库后再恢复"
        )
    sets = file_sets(settings)
    if not force:
        busy = [str(fs.path) for fs in sets if fs.path.is_dir() and any(fs.path.rglob("*"))]
        if _store_in_use(url):
            busy.insert(0, "数据库（已有数据）")
        if busy:
            raise BackupError(
                "恢复目标不是空的，为免覆盖现有数据已停止："
                + "、".join(busy)
                + "（确认覆盖请加 --force）"
            )
    say("恢复数据库 …")
    if kind == "sqlite":
        _sqlite_replace(source / "database.sqlite", _sqlite_path(url))
    else:
        dsn, env = _libpq(url)
        result = subprocess.run(
            ["pg_restore", "--no-owner", "--no-privileges", "--clean", "--if-exists",
             "--exit-on-error", f"--dbname={dsn}", str(source / "database.pgdump")],
            env=env,
            capture_output=True,
            text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise BackupError(f"pg_restore 失败: {result.stderr.strip()}")
    if (source / "search.sqlite").is_file() and settings.search.backend == "embedded":
        _sqlite_replace(source / "search.sqlite", settings.resolve(settings.search.path))
    for fs in sets:
        src = source / "files" / fs.name
        if not src.is_dir():
            continue
        say(f"恢复 {fs.name} …")
        for path in src.rglob("*"):
            if path.is_file():
                dst = fs.path / path.relative_to(src)
                dst.parent.mkdir(parents=True, exist_ok=True)
                tmp = dst.with_name(dst.name + ".restoring")
                shutil.copy2(path, tmp)
                os.replace(tmp, dst)  # never a half-copied file under its real name
    old_recordings = manifest.get("dirs", {}).get("recordings")
    new_recordings = next(fs.path for fs in sets if fs.name == "recordings")
    from hotline.db import open_database

    db = open_database(settings)  # brings an older backup's schema up to date
    try:
        if old_recordings and Path(old_recordings) != new_recordings:
            db.run_write(lambda c: _move_recordings(c, old_recordings, str(new_recordings)))
    finally:
        db.close()
    manifest["restored_counts"] = _counts(url)
    return manifest


def _store_in_use(url: str) -> bool:
    if _is_sqlite(url):
        path = _sqlite_path(url)
        if not path.is_file() or path.stat().st_size == 0:
            return False
    counts = _counts(url)
    return any(counts.get(t, 0) for t in ("tickets", "users", "calls"))


def _move_recordings(conn: sa.Connection, old: str, new: str) -> None:
    """Stored recording paths under the backed-up recordings folder now point into the
    restored one (call records and the orders' recording attachments)."""
    from telephony.tables import calls
    from tickets.tables import tickets

    def moved(path: str) -> str:
        p = Path(path)
        try:
            return str(Path(new) / p.relative_to(old))
        except ValueError:
            return path

    for row in conn.execute(
        sa.select(calls.c.id, calls.c.recording).where(calls.c.recording.is_not(None))
    ):
        if row.recording:
            conn.execute(
                calls.update().where(calls.c.id == row.id).values(recording=moved(row.recording))
            )
    for row in conn.execute(sa.select(tickets.c.id, tickets.c.attachments)):
        items = row.attachments or []
        if not any(a.get("type") == "recording" for a in items):
            continue
        fixed = [
            {**a, "path": moved(str(a["path"]))}
            if a.get("type") == "recording" and a.get("path")
            else a
            for a in items
        ]
        conn.execute(tickets.update().where(tickets.c.id == row.id).values(attachments=fixed))
