"""Disk full: the store stops taking writes with a clear answer (503 "unavailable", Retry-After,
never a 500 or a half-written order), everything acknowledged before is kept, and the platform
takes requests again by itself when space returns.

The full disk is SQLite's own: `PRAGMA max_page_count` caps the file a few pages above its size
on every connection the store checks out, so SQLite answers SQLITE_FULL ("database or disk is
full") exactly where a full file system would make it answer; raising the cap is the space
coming back. The attachments' own file system is tested with the kernel's ENOSPC (/dev/full)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa
from sqlalchemy import event

from hotline.app import make_app
from hotline.db import open_database
from tests.conftest import PASSWORD, create_users, make_settings
from tests.test_background import body
from tests.waiting import wait_until
from tickets.tables import tickets

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


async def test_a_full_disk_answers_503_keeps_what_was_acknowledged_and_recovers(
    sqlite_url: str, aiohttp_client: Any
) -> None:
    settings = make_settings(sqlite_url)
    db = open_database(settings)
    cap: list[int | None] = [None]

    @event.listens_for(db.engine, "checkout")
    def _cap(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA max_page_count = {cap[0] or 1_073_741_823}")
        cur.close()

    try:
        client = await aiohttp_client(make_app(settings, db))
        first = await client.post("/api/v1/requests", json=body(0))
        assert first.status == 201
        acked = [(await first.json())["number"]]

        pages = db.run_read(lambda c: c.exec_driver_sql("PRAGMA page_count").scalar_one())
        cap[0] = int(pages) + 4  # the disk fills a few orders from now
        refused = None
        for i in range(1, 400):
            resp = await client.post("/api/v1/requests", json=body(i))
            if resp.status == 201:
                acked.append((await resp.json())["number"])
                continue
            refused = resp
            break
        assert refused is not None, "the capped file never filled"
        assert refused.status == 503
        assert refused.headers.get("Retry-After")
        error = (await refused.json())["error"]
        assert error["code"] == "unavailable" and "数据库暂时不可用" in error["message"]

        # everything acknowledged is there, and nothing that was refused
        stored = db.run_read(lambda c: c.execute(sa.select(tickets.c.number)).scalars().all())
        assert sorted(stored) == sorted(acked)

        cap[0] = None  # space returns
        resp = await client.post("/api/v1/requests", json=body(501))
        assert resp.status == 201, await resp.text()

        async def healthy() -> bool:  # the outage ends after a second without failures
            return (await client.get("/healthz")).status == 200

        await wait_until(healthy, within=30)
    finally:
        db.close()


async def test_a_full_attachment_disk_refuses_the_upload_with_507_and_recovers(
    sqlite_url: str, aiohttp_client: Any, monkeypatch: Any, tmp_path: Path
) -> None:
    """The attachments' file system is full: the kernel's own ENOSPC (the upload's temporary
    file is /dev/full), a 507 in Chinese, the order unchanged; space back, the upload goes in."""
    files = tmp_path / "attachments"
    settings = make_settings(sqlite_url, HOTLINE__ATTACHMENTS__DIR=str(files))
    db = open_database(settings)
    create_users(settings, db)
    try:
        client = await aiohttp_client(make_app(settings, db))
        base = str(client.make_url("")).rstrip("/")
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as s:
            async with s.post(
                f"{base}/api/v1/session", json={"username": "agent", "password": PASSWORD}
            ) as r:
                csrf = (await r.json())["user"]["csrf_token"]
            headers = {"X-CSRF-Token": csrf}
            async with s.post(
                f"{base}/api/v1/tickets",
                json={"content": "路灯不亮", "phone": "13800000009"},
                headers=headers,
            ) as r:
                t = await r.json()

            async def upload() -> tuple[int, Any]:
                form = aiohttp.FormData()
                form.add_field("file", PDF, filename="照片说明.pdf", content_type="application/pdf")
                url = f"{base}/api/v1/tickets/{t['id']}/attachments"
                async with s.post(url, data=form, headers=headers) as r:
                    return r.status, await r.json()

            (files / "tmp").mkdir(parents=True)
            (files / "tmp" / "full").symlink_to("/dev/full")
            monkeypatch.setattr("agent_ui.uploads.secrets.token_hex", lambda _n: "full")
            status, body = await upload()
            assert status == 507, body
            assert body["error"]["code"] == "storage_full"
            assert "存储空间已满" in body["error"]["message"]
            async with s.get(f"{base}/api/v1/tickets/{t['id']}") as r:
                assert (await r.json())["attachments"] == []  # nothing half-kept

            monkeypatch.undo()  # space returns
            status, body = await upload()
            assert status == 201, body
            assert [a["name"] for a in body["attachments"]] == ["照片说明.pdf"]
    finally:
        db.close()
