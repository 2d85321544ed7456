"""Backup and restore (issue 15), on SQLite and PostgreSQL: a backup taken while `hotline serve`
runs and takes requests, restored into an empty data directory and database, serves the same
orders, events, voicemail recording and attachment from there; a backup whose bytes changed is
refused before anything is written; a backup of an older schema is migrated on restore."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import threading
import urllib.request
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from hotline.app import build_services
from hotline.backup import BackupError, backup, restore, verify
from hotline.bus import InProcessBus
from hotline.config import Settings
from hotline.db import current_revision, open_database, upgrade
from telephony import store as call_store
from telephony.model import CallRecord
from telephony.voicemail import VoicemailFiler
from tests.conftest import PASSWORD, UNLIMITED, create_users, make_settings
from tests.hotline_server import HOTLINE, Server, StaffClient
from tests.test_attachments import PDF
from tickets import store
from tickets.db import Database
from tickets.model import Caller, Channel, NewTicket, Role, Status

_names = itertools.count()
VOLATILE = ("marks", "deadline")  # computed from "now" at each read


@pytest.fixture(params=["sqlite", "postgres"])
def two_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(the source's database, an empty one to restore into), on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'a' / 'hotline.db'}", f"sqlite:///{tmp_path / 'b' / 'h.db'}"
        return
    server = request.getfixturevalue("pg_server")
    a, b = f"bk{next(_names)}a", f"bk{next(_names)}b"
    server.create_database(a)
    server.create_database(b)
    try:
        yield server.url(a), server.url(b)
    finally:
        server.drop_database(a)
        server.drop_database(b)


def site(url: str, root: Path) -> dict[str, str]:
    """One installation's settings as environment variables: its database and folders."""
    return {
        "HOTLINE__DATABASE__URL": url,
        "HOTLINE__ATTACHMENTS__DIR": str(root / "attachments"),
        "HOTLINE__TELEPHONY__RECORDINGS_DIR": str(root / "recordings"),
        "HOTLINE__TELEPHONY__SPOOL_DIR": str(root / "spool"),
        "HOTLINE__TELEPHONY__ENABLED": "false",
        "HOTLINE__TRIAGE__ENABLED": "false",
        "HOTLINE__SIMILAR__ENABLED": "false",  # its own events (similar_found, grouped)
    }


def settings_of(env: dict[str, str]) -> Settings:
    return make_settings(env["HOTLINE__DATABASE__URL"], **env)


def hotline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE__")}
    environ.update(UNLIMITED, **env)
    return subprocess.run(
        [str(HOTLINE), *args], env=environ, capture_output=True, text=True, timeout=600
    )


def wav(path: Path, seconds: float = 0.5) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(bytes(range(256)) * int(seconds * 8000 * 2 / 256))
    return path.read_bytes()


async def seed_voicemail(settings: Settings, db: Database, spool: Path) -> None:
    """A voicemail filed as the call centre files it: a call record, the spooled WAV, the
    order with the recording attached (stored under the recordings folder)."""
    call = "c0ffee"
    offered = datetime.now(UTC)
    rec = CallRecord("c0ffee", "in", "intake", "13800000007", "12345", 0, offered, outcome="ivr")
    db.run_write(lambda c: call_store.insert_call(c, rec))
    wav(spool / f"{call}.wav")
    note = {"wav": f"{call}.wav", "started": offered.timestamp(), "caller": "13800000007"}
    (spool / f"{call}.json").write_text(json.dumps(note), encoding="utf-8")
    services = build_services(settings, db, InProcessBus())
    recordings = settings.resolve(settings.telephony.recordings_dir)
    await VoicemailFiler(services.tickets, db, spool, recordings).file(call)


def upload(client: StaffClient, ticket_id: int, name: str, data: bytes) -> Any:
    boundary = "hotlinetestboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        f"{client.server.base}/api/v1/tickets/{ticket_id}/attachments", data=body, method="POST"
    )
    req.add_header("Content-Type", f"multipart/form-data; boundary={boundary}")
    req.add_header("Cookie", client.cookie)
    req.add_header("X-CSRF-Token", client.csrf)
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 201
        return json.loads(resp.read())


def fetch(client: StaffClient, path: str) -> bytes:
    req = urllib.request.Request(client.server.base + path)
    req.add_header("Cookie", client.cookie)
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200
        return bytes(resp.read())


@dataclass
class Seen:
    """What a server answered about an order: the order, its events, its files' bytes."""

    order: dict[str, Any]
    events: list[dict[str, Any]]
    files: list[bytes]


def read_order(client: StaffClient, ticket_id: int) -> Seen:
    status, order = client.get(f"/tickets/{ticket_id}")
    assert status == 200, order
    status, events = client.get(f"/tickets/{ticket_id}/events")
    assert status == 200, events
    files = [fetch(client, a["url"]) for a in order["attachments"]]
    return Seen({k: v for k, v in order.items() if k not in VOLATILE}, events["items"], files)


def submit_until(server: Server, stop: threading.Event, taken: list[str]) -> None:
    """Citizens keep submitting while the backup runs."""
    n = 0
    while not stop.is_set():
        status, _, body = server.request("POST", "/api/v1/requests", {"content": f"并发诉求{n}"})
        assert status == 201, body
        taken.append(body["number"])
        n += 1


# -- end to end: serve, back up while serving, restore elsewhere, serve the same ---------------
async def test_backup_while_serving_restores_into_an_empty_site_that_serves_the_same(
    two_urls: tuple[str, str], tmp_path: Path
) -> None:
    url_a, url_b = two_urls
    env_a, env_b = site(url_a, tmp_path / "a"), site(url_b, tmp_path / "b")
    settings_a = settings_of(env_a)
    db = open_database(settings_a)
    try:
        create_users(settings_a, db)
        await seed_voicemail(settings_a, db, tmp_path / "a" / "spool")
    finally:
        db.close()

    (tmp_path / "run-a").mkdir()
    server = Server(tmp_path / "run-a", url_a, env=env_a)
    try:
        server.wait_ready()
        agent = StaffClient(server, "agent", PASSWORD)
        dispatcher = StaffClient(server, "dispatcher", PASSWORD)
        status, order = agent.send(
            "POST", "/tickets", {"content": "路面塌陷", "phone": "13800000008", "name": "赵六"}
        )
        assert status == 201, order
        status, order = dispatcher.send(
            "POST",
            f"/tickets/{order['id']}/dispatch",
            {"version": order["version"], "lead": "150100-housing"},
        )
        assert status == 200, order
        upload(agent, order["id"], "现场.pdf", PDF)
        status, listing = dispatcher.get("/tickets?channel=phone")
        (voicemail,) = [
            t
            for t in listing["items"]
            if t["attachments"] and t["attachments"][0]["type"] == "recording"
        ]
        seen = {i: read_order(dispatcher, i) for i in (order["id"], voicemail["id"])}
        assert seen[order["id"]].files == [PDF]
        assert seen[voicemail["id"]].files[0][:4] == b"RIFF"

        stop, taken = threading.Event(), []
        writer = threading.Thread(target=submit_until, args=(server, stop, taken))
        writer.start()
        try:
            done = hotline("backup", "--out", str(tmp_path / "backup"), env=env_a)
        finally:
            stop.set()
            writer.join()
        assert done.returncode == 0, done.stderr
        assert taken, "no request was taken while the backup ran"
        summary = json.loads(done.stdout)
        assert summary["database"] == ("sqlite" if url_a.startswith("sqlite") else "postgresql")
    finally:
        assert server.stop() == 0, server.output()
    shutil.rmtree(tmp_path / "a")  # the old site is gone: nothing may be read from it

    # a changed byte anywhere: refused before anything is written
    tampered = tmp_path / "tampered"
    shutil.copytree(tmp_path / "backup", tampered)
    (pdf,) = [p for p in (tampered / "attachments").rglob("*") if p.is_file()]
    pdf.write_bytes(pdf.read_bytes().replace(b"%PDF-1.4", b"%PDF-1.5"))
    refused = hotline("restore", "--from", str(tampered), env=env_b)
    assert refused.returncode == 1
    assert "校验失败" in refused.stderr and pdf.relative_to(tampered).as_posix() in refused.stderr
    assert not (tmp_path / "b").exists()
    if not url_b.startswith("sqlite"):
        check = open_database(settings_of(env_b), migrate=False)
        try:
            assert current_revision(check) is None  # the empty database is still empty
        finally:
            check.close()

    restored = hotline("restore", "--from", str(tmp_path / "backup"), env=env_b)
    assert restored.returncode == 0, restored.stderr
    out = json.loads(restored.stdout)
    assert out["revision"] == out["revision_in_backup"] and out["files"] >= 2
    assert out["relocated_recordings"] == 2  # the call record and the order's attachment
    again = hotline("restore", "--from", str(tmp_path / "backup"), env=env_b)
    assert again.returncode == 1
    assert "不是空的" in again.stderr or "已存在" in again.stderr

    (tmp_path / "run-b").mkdir()
    server = Server(tmp_path / "run-b", url_b, env=env_b)
    try:
        server.wait_ready()
        dispatcher = StaffClient(server, "dispatcher", PASSWORD)
        for ticket_id, before in seen.items():
            assert read_order(dispatcher, ticket_id) == before
        # the orders taken while the backup ran: a consistent cut, each with its events
        status, listing = dispatcher.get("/tickets?channel=web&limit=200")
        numbers = {t["number"] for t in listing["items"]}
        assert numbers <= set(taken)
        for t in listing["items"]:
            status, events = dispatcher.get(f"/tickets/{t['id']}/events")
            assert [e["action"] for e in events["items"]] == ["create"]
    finally:
        assert server.stop() == 0, server.output()
    settings_b = settings_of(env_b)
    db = open_database(settings_b)
    try:
        call = db.run_read(lambda c: call_store.get_call(c, "c0ffee"))
        assert call is not None and call.recording is not None
        assert call.recording.startswith(str(tmp_path / "b" / "recordings"))
    finally:
        db.close()


# -- in process: older schemas, refusals ------------------------------------------------------
def test_restore_brings_an_older_backup_up_to_date(
    two_urls: tuple[str, str], tmp_path: Path
) -> None:
    url_a, url_b = two_urls
    settings_a = settings_of(site(url_a, tmp_path / "a"))
    db = open_database(settings_a, migrate=False)
    try:
        upgrade(db, "0201")  # the schema before issue 15

        def order(conn: sa.Connection) -> int:
            new = NewTicket(
                channel=Channel.WEB, content="旧版本的工单", caller=Caller(phone="13800000009")
            )
            ticket_id = store.insert_ticket(conn, new, "20250101000001", datetime.now(UTC))
            store.insert_event(
                conn,
                ticket_id=ticket_id,
                at=datetime.now(UTC),
                actor_role=Role.CITIZEN,
                actor_id=None,
                actor_name="市民",
                action="create",
                from_status=None,
                to_status=Status.NEW,
            )
            return ticket_id

        ticket_id = db.run_write(order)
    finally:
        db.close()
    summary = backup(settings_a, tmp_path / "old-backup")
    assert summary["revision"] == "0201"
    assert verify(tmp_path / "old-backup")["database"]["revision"] == "0201"

    settings_b = settings_of(site(url_b, tmp_path / "b"))
    out = restore(settings_b, tmp_path / "old-backup")
    assert (out["revision_in_backup"], out["revision"]) == ("0201", "0600")
    db = open_database(settings_b)
    try:
        t = db.run_read(lambda c: store.get_ticket(c, ticket_id))
        assert t is not None and t.content == "旧版本的工单" and t.caller.phone == "13800000009"
        assert [e.action for e in db.run_read(lambda c: store.list_events(c, ticket_id))] == [
            "create"
        ]
    finally:
        db.close()
    with pytest.raises(BackupError, match=r"不是空的|已存在"):
        restore(settings_b, tmp_path / "old-backup")


def test_backup_refusals(two_urls: tuple[str, str], tmp_path: Path) -> None:
    url_a, _ = two_urls
    settings_a = settings_of(site(url_a, tmp_path / "a"))
    open_database(settings_a).close()
    out = tmp_path / "bk"
    backup(settings_a, out)
    with pytest.raises(BackupError, match="不是空的"):
        backup(settings_a, out)  # never over an earlier backup
    (out / "extra.txt").write_text("?", encoding="utf-8")
    with pytest.raises(BackupError, match=r"清单之外的文件 extra\.txt"):
        verify(out)
    (out / "extra.txt").unlink()
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    database = out / manifest["database"]["file"]
    database.write_bytes(database.read_bytes()[:-1])
    with pytest.raises(BackupError, match="校验失败"):
        verify(out)
    (out / "manifest.json").unlink()
    with pytest.raises(BackupError, match=r"没有 manifest\.json"):
        verify(out)
