"""`hotline backup` / `hotline restore` through the CLI, as an operator runs them: a platform
with orders, their history, an uploaded attachment, a voicemail recording and its search index
is backed up, restored into an empty directory (and an empty PostgreSQL database) and serves the
same orders, events, files and search hits; a damaged backup is refused before anything is
written; a target that holds data is not overwritten unless forced."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent_ui.context import SERVICES
from hotline.app import make_app
from hotline.db import open_database
from tests.conftest import PASSWORD, USERS, create_users, make_settings
from tests.waiting import wait_until
from tickets.model import Caller, Channel, NewTicket

REPO = Path(__file__).resolve().parent.parent
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
_names = itertools.count(1)


def site(root: Path, db_url: str | None = None) -> dict[str, str]:
    """The environment of a platform living under `root` (its own store and folders)."""
    return {
        "HOTLINE__DATABASE__URL": db_url or f"sqlite:///{root / 'hotline.db'}",
        "HOTLINE__TELEPHONY__RECORDINGS_DIR": str(root / "recordings"),
        "HOTLINE__TELEPHONY__SPOOL_DIR": str(root / "spool"),
        "HOTLINE__TELEPHONY__PROMPTS_DIR": str(root / "prompts"),
        "HOTLINE__ATTACHMENTS__DIR": str(root / "attachments"),
        "HOTLINE__SEARCH__PATH": str(root / "search.db"),
    }


def hotline(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hotline.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def write_wav(path: Path, seconds: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * int(seconds * 8000 * 2 / 256))


async def session(base: str, username: str) -> tuple[aiohttp.ClientSession, str]:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))  # an IP address
    async with s.post(
        f"{base}/api/v1/session", json={"username": username, "password": PASSWORD}
    ) as resp:
        assert resp.status == 200, await resp.text()
        csrf = (await resp.json())["user"]["csrf_token"]
    return s, csrf


async def what_it_serves(aiohttp_client: Any, env: dict[str, str]) -> dict[str, Any]:
    """Orders, their events, attachment bytes and a search, as staff see them."""
    settings = make_settings(env["HOTLINE__DATABASE__URL"], **env)
    client = await aiohttp_client(make_app(settings))
    base = str(client.make_url("")).rstrip("/")
    s, _ = await session(base, "supervisor")
    try:
        async with s.get(f"{base}/api/v1/tickets?limit=50") as resp:
            listing = await resp.json()
        out: dict[str, Any] = {}
        for item in sorted(listing["items"], key=lambda t: t["number"]):
            async with s.get(f"{base}/api/v1/tickets/{item['id']}") as resp:
                t = await resp.json()
            async with s.get(f"{base}/api/v1/tickets/{item['id']}/events") as resp:
                events = await resp.json()
            files = []
            for a in t["attachments"]:
                async with s.get(base + a["url"]) as resp:
                    assert resp.status == 200, a
                    files.append((a["type"], a.get("name"), await resp.read()))
            out[t["number"]] = {
                "content": t["content"],
                "status": t["status"],
                "events": [(e["action"], e["at"]) for e in events["items"]],
                "files": files,
            }

        async def searched() -> list[str]:  # the indexer follows the queue in the background
            async with s.get(f"{base}/api/v1/search/tickets", params={"q": "供暖"}) as resp:
                hits = await resp.json()
            return sorted(h["number"] for h in hits["items"])

        out["search"] = await wait_until(searched, within=60)
        return out
    finally:
        await s.close()


async def build_site(aiohttp_client: Any, env: dict[str, str], root: Path) -> None:
    settings = make_settings(
        env["HOTLINE__DATABASE__URL"], **env, HOTLINE__SEARCH__REFRESH_WRITES="true"
    )
    db = open_database(settings)
    create_users(settings, db)
    db.close()
    app = make_app(settings)
    client = await aiohttp_client(app)
    base = str(client.make_url("")).rstrip("/")
    s, csrf = await session(base, "agent")
    try:
        body = {"content": "小区供暖温度不达标，室温只有十四度", "phone": "13812345678"}
        async with s.post(f"{base}/api/v1/tickets", json=body, headers={"X-CSRF-Token": csrf}) as r:
            t = await r.json()
            assert r.status == 201, t
        form = aiohttp.FormData()
        form.add_field("file", PDF, filename="供暖缴费单.pdf", content_type="application/pdf")
        async with s.post(
            f"{base}/api/v1/tickets/{t['id']}/attachments",
            data=form,
            headers={"X-CSRF-Token": csrf},
        ) as r:
            assert r.status == 201, await r.text()
    finally:
        await s.close()
    # a voicemail, as telephony/voicemail.py leaves it: the recording under recordings_dir
    wav = root / "recordings" / "2026" / "12" / "03" / "c-1.wav"
    write_wav(wav)
    await app[SERVICES].tickets.submit(
        NewTicket(
            channel=Channel.PHONE,
            content="电话留言（1 秒），来电号码 13900000001。请收听录音并回拨市民。",
            caller=Caller(phone="13900000001"),
            attachments=(
                {"type": "recording", "name": "留言录音.wav", "path": str(wav), "seconds": 1.0},
            ),
        )
    )
    await client.close()


@pytest.fixture
def pg_target(pg_server: Any) -> Any:
    name = f"restore{next(_names)}"
    pg_server.create_database(name)
    yield pg_server.url(name)
    pg_server.drop_database(name)


async def test_backup_restored_into_an_empty_place_serves_the_same_platform(
    db_url: str, tmp_path: Path, aiohttp_client: Any, request: pytest.FixtureRequest
) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    src = site(old, db_url if db_url.startswith("postgresql") else None)
    target_db = request.getfixturevalue("pg_target") if db_url.startswith("postgresql") else None
    dst = site(new, target_db)
    await build_site(aiohttp_client, src, old)
    before = await what_it_serves(aiohttp_client, src)
    assert len(before) == 3 and before["search"]  # two orders and the search

    out = hotline(src, "backup", "--out", str(tmp_path / "backup"))
    assert out.returncode == 0, out.stderr
    assert "备份完成" in out.stdout
    manifest = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert manifest["counts"]["tickets"] == 2
    assert any(k.startswith("files/recordings/") for k in manifest["files"])
    assert any(k.startswith("files/attachments/") for k in manifest["files"])
    assert hotline(src, "backup", "--verify", str(tmp_path / "backup")).returncode == 0

    out = hotline(dst, "restore", str(tmp_path / "backup"))
    assert out.returncode == 0, out.stderr
    assert "恢复完成" in out.stdout
    after = await what_it_serves(aiohttp_client, dst)
    assert after == before  # the same orders, events, attachment and recording bytes, search

    # the recording's stored path moved with the folder: nothing refers to the old place
    settings = make_settings(dst["HOTLINE__DATABASE__URL"], **dst)
    db = open_database(settings)
    try:
        import sqlalchemy as sa

        from tickets.tables import tickets

        rows = db.run_read(lambda c: c.execute(sa.select(tickets.c.attachments)).all())
        paths = [a["path"] for r in rows for a in r.attachments if a.get("type") == "recording"]
        assert paths and all(p.startswith(str(new / "recordings")) for p in paths)
    finally:
        db.close()


def test_a_damaged_backup_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    src = site(old)
    settings = make_settings(src["HOTLINE__DATABASE__URL"], **src)
    open_database(settings).close()
    write_wav(old / "recordings" / "a.wav")
    assert hotline(src, "backup", "--out", str(tmp_path / "b")).returncode == 0
    (tmp_path / "b" / "files" / "recordings" / "a.wav").write_bytes(b"RIFF-damaged")
    (tmp_path / "b" / "stray.txt").write_text("?")

    checked = hotline(src, "backup", "--verify", str(tmp_path / "b"))
    assert checked.returncode == 1
    assert "校验和不符 files/recordings/a.wav" in checked.stderr
    assert "清单外的文件 stray.txt" in checked.stderr
    out = hotline(site(new), "restore", str(tmp_path / "b"))
    assert out.returncode == 1 and "备份不完整或已损坏" in out.stderr
    assert not new.exists()  # nothing written


def test_restore_does_not_overwrite_a_platform_in_use_unless_forced(tmp_path: Path) -> None:
    old = tmp_path / "old"
    src = site(old)
    settings = make_settings(src["HOTLINE__DATABASE__URL"], **src)
    db = open_database(settings)
    create_users(settings, db)
    db.close()
    assert hotline(src, "backup", "--out", str(tmp_path / "b")).returncode == 0
    assert hotline(src, "backup", "--out", str(tmp_path / "b")).returncode == 1  # exists

    refused = hotline(src, "restore", str(tmp_path / "b"))
    assert refused.returncode == 1
    assert "恢复目标不是空的" in refused.stderr and "--force" in refused.stderr
    forced = hotline(src, "restore", "--force", str(tmp_path / "b"))
    assert forced.returncode == 0, forced.stderr
    assert f"users {len(USERS)}" in forced.stdout  # the restored store, counted


def test_a_backup_of_one_kind_of_store_is_not_restored_into_another(tmp_path: Path) -> None:
    src = site(tmp_path / "old")
    open_database(make_settings(src["HOTLINE__DATABASE__URL"], **src)).close()
    assert hotline(src, "backup", "--out", str(tmp_path / "b")).returncode == 0
    manifest = tmp_path / "b" / "manifest.json"
    data = json.loads(manifest.read_text())
    assert data["database"] == "sqlite"
    out = hotline(
        site(tmp_path / "new", "postgresql+psycopg://nobody@127.0.0.1:1/none"),
        "restore",
        str(tmp_path / "b"),
    )
    assert out.returncode == 1
    assert "备份的数据库是 sqlite" in out.stderr
