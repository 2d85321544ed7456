"""`hotline backup` / `hotline restore`: the store (SQLite through its online backup API, while
the platform runs; PostgreSQL through pg_dump's custom format), call recordings and attachments,
with a manifest of SHA-256 sums that a restore checks before it writes anything.

The database is copied first, the files after: attachments and recordings are written before
any row names them, so every file the copied database refers to is already there to copy
(files added later are extra, harmless). IVR prompts are not backed up: they are generated
from the configuration. The knowledge base lives in the database.

A backup folder:
    manifest.json     format, time, database (dialect, file, migration), source folders, files
    SHA256SUMS        the same sums for `sha256sum -c`
    database/hotline.db | database/hotline.pgdump
    recordings/…      as under [telephony] recordings_dir
    attachments/…     as under [attachments] dir
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy.engine import Connection, make_url

from hotline.config import Settings
from hotline.db import current_revision, has_tables, open_database
from telephony import store as call_store
from tickets import privacy_store
from tickets.db import Database

FORMAT = 1
MANIFEST = "manifest.json"
SUMS = "SHA256SUMS"
CHUNK = 1024 * 1024
PG_TIMEOUT_S = 6 * 3600  # a large database takes long; a hung tool must still end


class BackupError(Exception):
    """A backup or restore cannot go on; the message says why, in Chinese."""


# -- helpers ------------------------------------------------------------------------------------
def _copy(src: Path, dst: Path) -> tuple[str, int]:
    """Copy a file, synced, returning its SHA-256 and size as copied."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return digest.hexdigest(), size


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _files(root: Path, skip: tuple[str, ...] = ()) -> Iterator[Path]:
    if not root.is_dir():
        return
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.is_file() and not (rel.parts and rel.parts[0] in skip):
            yield path


def _sqlite_path(settings: Settings) -> Path:
    return Path(settings.database_url[len("sqlite:///") :])


def _is_sqlite(settings: Settings) -> bool:
    return settings.database_url.startswith("sqlite")


def pg_tool(settings: Settings, name: str) -> str:
    """pg_dump / pg_restore: [backup] pg_bin_dir, else the newest Debian install, else PATH."""
    if settings.backup.pg_bin_dir:
        path = Path(settings.backup.pg_bin_dir) / name
        if not os.access(path, os.X_OK):
            raise BackupError(f"backup.pg_bin_dir 中没有可执行的 {name}: {path}")
        return str(path)
    found = [p for p in glob.glob(f"/usr/lib/postgresql/*/bin/{name}") if os.access(p, os.X_OK)]
    if found:
        return max(found, key=lambda p: _major(Path(p).parent.parent.name))
    which = shutil.which(name)
    if which is None:
        raise BackupError(f"找不到 {name}（请安装 postgresql-client，或设置 backup.pg_bin_dir）")
    return which


def _major(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in name.split("."))
    except ValueError:
        return (-1,)


def pg_connection(url: str) -> tuple[str, dict[str, str]]:
    """A libpq URI without the password (it goes in PGPASSWORD: not in the process list)."""
    u = make_url(url)
    host = u.host or ""
    port = f":{u.port}" if u.port else ""
    user = f"{quote(u.username, safe='')}@" if u.username else ""
    query = f"?{urlencode(dict(u.query))}" if u.query else ""
    uri = f"postgresql://{user}{host}{port}/{quote(u.database or '', safe='')}{query}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if u.password:
        env["PGPASSWORD"] = str(u.password)
    return uri, env


def _run(cmd: list[str], env: dict[str, str], what: str) -> None:
    try:
        result = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise BackupError(f"{what} 超时") from None
    if result.returncode != 0:
        raise BackupError(f"{what} 失败（退出码 {result.returncode}）: {result.stderr.strip()}")


def _roots(settings: Settings) -> dict[str, Path]:
    return {
        "recordings": settings.resolve(settings.telephony.recordings_dir),
        "attachments": settings.resolve(settings.attachments.dir),
    }


# -- backup -------------------------------------------------------------------------------------
def backup(settings: Settings, out: Path) -> dict[str, Any]:
    """Write a backup of the configured platform into `out` (new or empty)."""
    if out.exists() and any(out.iterdir()):
        raise BackupError(f"备份目录 {out} 不是空的：每次备份请用一个新目录")
    out.mkdir(parents=True, exist_ok=True)
    db = open_database(settings, migrate=False)
    try:
        revision = current_revision(db)
        if revision is None:
            raise BackupError("数据库是空的（尚未迁移），没有可备份的内容")
        if _is_sqlite(settings):
            dialect, name = "sqlite", "database/hotline.db"
            _sqlite_backup(_sqlite_path(settings), out / name)
        else:
            dialect, name = "postgresql", "database/hotline.pgdump"
            (out / "database").mkdir()
            uri, env = pg_connection(settings.database_url)
            cmd = [pg_tool(settings, "pg_dump"), "--format=custom", f"--file={out / name}", uri]
            _run(cmd, env, "pg_dump")
    finally:
        db.close()
    files: list[dict[str, Any]] = [
        {"path": name, "sha256": _sha256(out / name), "size": (out / name).stat().st_size}
    ]
    roots = _roots(settings)
    for label, root in roots.items():
        for path in _files(root, skip=("tmp",) if label == "attachments" else ()):
            rel = f"{label}/{path.relative_to(root).as_posix()}"
            try:
                sha, size = _copy(path, out / rel)
            except FileNotFoundError:  # removed since (retention): nothing names it any more
                continue
            files.append({"path": rel, "sha256": sha, "size": size})
    manifest = {
        "format": FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "database": {"dialect": dialect, "file": name, "revision": revision},
        "roots": {k: str(v) for k, v in roots.items()},
        "files": files,
    }
    sums = "".join(f"{f['sha256']}  {f['path']}\n" for f in files)
    (out / SUMS).write_text(sums, encoding="utf-8")
    tmp = out / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, out / MANIFEST)  # last: a folder without a manifest is no backup
    return {
        "out": str(out),
        "database": dialect,
        "revision": revision,
        "files": len(files),
        "bytes": sum(int(f["size"]) for f in files),
    }


def _sqlite_backup(src_path: Path, dst_path: Path) -> None:
    """SQLite's online backup: a consistent copy while the platform keeps writing (WAL)."""
    if not src_path.is_file():
        raise BackupError(f"数据库文件不存在: {src_path}")
    dst_path.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(src_path, timeout=30)
    dst = sqlite3.connect(dst_path)
    try:
        src.backup(dst)  # all pages in one step: one snapshot, never restarted by writers
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        (check,) = dst.execute("PRAGMA integrity_check").fetchone()
        if check != "ok":
            raise BackupError(f"备份的数据库未通过完整性检查: {check}")
    finally:
        dst.close()
        src.close()


# -- verify and restore -------------------------------------------------------------------------
def verify(src: Path) -> dict[str, Any]:
    """The manifest, once every file it lists is there with its size and SHA-256 and nothing
    else is; BackupError (naming the file) otherwise."""
    try:
        manifest: dict[str, Any] = json.loads((src / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupError(f"{src} 中没有 {MANIFEST}：不是完整的备份") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BackupError(f"{MANIFEST} 已损坏: {exc}") from None
    if manifest.get("format") != FORMAT:
        raise BackupError(f"不支持的备份格式 {manifest.get('format')!r}")
    listed: set[str] = set()
    for entry in manifest.get("files", []):
        rel = str(entry.get("path", ""))
        parts = Path(rel).parts
        if not rel or Path(rel).is_absolute() or ".." in parts:
            raise BackupError(f"清单中的路径无效: {rel!r}")
        path = src / rel
        if not path.is_file():
            raise BackupError(f"校验失败: 缺少文件 {rel}")
        if path.stat().st_size != entry.get("size") or _sha256(path) != entry.get("sha256"):
            raise BackupError(f"校验失败: {rel} 的 SHA-256 与清单不符（文件已损坏或被改动）")
        listed.add(rel)
    extra = [
        p.relative_to(src).as_posix()
        for p in _files(src)
        if p.relative_to(src).as_posix() not in listed | {MANIFEST, SUMS}
    ]
    if extra:
        raise BackupError(f"校验失败: 清单之外的文件 {extra[0]}")
    if manifest.get("database", {}).get("file") not in listed:
        raise BackupError("清单中没有数据库文件")
    return manifest


def _require_empty_target(settings: Settings, db: Database, dialect: str) -> None:
    here = "sqlite" if _is_sqlite(settings) else "postgresql"
    if dialect != here:
        raise BackupError(f"备份来自 {dialect}，当前配置的数据库是 {here}：请配置同类数据库")
    if here == "sqlite":
        path = _sqlite_path(settings)
        if path.exists() and path.stat().st_size > 0:
            raise BackupError(f"目标数据库 {path} 已存在：恢复只写入空的数据目录")
    elif has_tables(db):
        raise BackupError("目标数据库不是空的：请恢复到新建的空数据库")
    for label, root in _roots(settings).items():
        if next(_files(root), None) is not None:
            raise BackupError(f"目标目录 {root}（{label}）不是空的：恢复只写入空的数据目录")


def restore(settings: Settings, src: Path) -> dict[str, Any]:
    """Check the backup, then restore it into the configured (empty) database and folders,
    bring the schema up to date and point recordings at their new folder."""
    manifest = verify(src)
    dialect = str(manifest["database"]["dialect"])
    name = str(manifest["database"]["file"])
    db = open_database(settings, migrate=False)
    try:
        _require_empty_target(settings, db, dialect)
    finally:
        db.close()
    if dialect == "sqlite":
        target = _sqlite_path(settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)  # an empty file left by a failed attempt
        source = sqlite3.connect(src / name)
        dest = sqlite3.connect(target)
        try:
            source.backup(dest)
        finally:
            dest.close()
            source.close()
    else:
        uri, env = pg_connection(settings.database_url)
        tool = pg_tool(settings, "pg_restore")
        cmd = [tool, "--no-owner", "--no-privileges", "--exit-on-error", f"--dbname={uri}"]
        _run([*cmd, str(src / name)], env, "pg_restore")
    roots = _roots(settings)
    copied = 0
    for entry in manifest["files"]:
        label, _, rel = str(entry["path"]).partition("/")
        if label not in roots:
            continue
        sha, _ = _copy(src / entry["path"], roots[label] / rel)
        if sha != entry["sha256"]:
            raise BackupError(f"复制后校验失败: {entry['path']}")
        copied += 1
    db = open_database(settings)  # migrations: a backup of an older version is brought up
    try:
        revision = current_revision(db)
        old, new = str(manifest["roots"]["recordings"]), str(roots["recordings"])
        relocated = 0
        if old != new:

            def move(conn: Connection) -> int:
                calls = call_store.relocate_recordings(conn, old, new)
                return calls + privacy_store.relocate_recording_paths(conn, old, new)

            relocated = db.run_write(move)
    finally:
        db.close()
    return {
        "from": str(src),
        "database": dialect,
        "revision_in_backup": manifest["database"]["revision"],
        "revision": revision,
        "files": copied,
        "relocated_recordings": relocated,
    }
