"""Attachments: staff and citizens add photos and documents, stored as files outside the
database; the type comes from the bytes, the size is capped while streaming; only those who may
read the order fetch them, and a caller's voicemail stays with the centre."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent_ui.context import SERVICES
from hotline.config import Settings
from tests.conftest import Api, make_settings
from tickets.db import Database
from tickets.model import Caller, Channel, NewTicket

PHONE = "13812345678"


def png(width: int = 2, height: int = 2) -> bytes:
    """A real, tiny PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        db_url,
        HOTLINE__ATTACHMENTS__DIR=str(tmp_path / "files"),
        HOTLINE__ATTACHMENTS__MAX_BYTES="4096",
        HOTLINE__ATTACHMENTS__MAX_PER_ORDER="3",
    )


async def upload(client: Api, ticket_id: int, *files: tuple[str, bytes]) -> tuple[int, Any]:
    form = aiohttp.FormData()
    for name, data in files:
        form.add_field("file", data, filename=name, content_type="application/octet-stream")
    async with client.session.post(
        f"{client.base}/api/v1/tickets/{ticket_id}/attachments",
        data=form,
        headers={"X-CSRF-Token": client.csrf or ""},
    ) as resp:
        return resp.status, await resp.json()


async def fetch(client: Api, url: str) -> tuple[int, bytes, Any]:
    async with client.session.get(client.base + url) as resp:
        return resp.status, await resp.read(), resp.headers


async def dispatched(api: Any) -> dict[str, Any]:
    agent: Api = await api("agent")
    t = await agent.post("/tickets", {"content": "小区围墙倒塌", "phone": PHONE}, 201)
    return await (await api("dispatcher")).act(t, "dispatch", lead="150100-housing")  # type: ignore[no-any-return]


async def test_department_adds_a_photo_others_cannot_see_it(api: Any, tmp_path: Path) -> None:
    t = await dispatched(api)
    housing: Api = await api("housing")
    status, body = await upload(housing, t["id"], ("现场.png", png()))
    assert status == 201, body
    (a,) = body["attachments"]
    assert (a["name"], a["media_type"], a["type"]) == ("现场.png", "image/png", "file")
    assert "path" not in a and "sha256" not in a  # no server paths or store keys leave
    status, data, headers = await fetch(housing, a["url"])
    assert (status, data) == (200, png())
    assert headers["Content-Type"] == "image/png"
    assert "sandbox" in headers["Content-Security-Policy"]
    # on disk, outside the database, once
    assert len([p for p in (tmp_path / "files").rglob("*") if p.is_file()]) == 1
    ecology: Api = await api("ecology")
    assert (await fetch(ecology, a["url"]))[0] == 404
    assert (await upload(ecology, t["id"], ("x.png", png())))[0] == 404
    manager: Api = await api("manager")
    assert (await fetch(manager, a["url"]))[0] == 200  # managers read everything
    assert (await upload(manager, t["id"], ("x.png", png())))[0] == 403
    trail = await (await api("supervisor")).get(f"/tickets/{t['id']}/events")
    assert trail["items"][-1]["action"] == "attach"


async def test_type_comes_from_the_bytes_and_size_is_capped(api: Any, tmp_path: Path) -> None:
    t = await dispatched(api)
    agent: Api = await api("agent")
    status, body = await upload(agent, t["id"], ("看起来是图片.jpg", b"<script>alert(1)</script>"))
    assert (status, body["error"]["code"]) == (415, "unsupported_media_type")
    status, body = await upload(agent, t["id"], ("大.png", png() + b"\x00" * 5000))
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    # nothing half-written is left behind
    assert [p for p in (tmp_path / "files").rglob("*") if p.is_file()] == []
    status, body = await upload(agent, t["id"], ("材料.pdf", PDF))
    assert status == 201
    assert body["attachments"][0]["media_type"] == "application/pdf"
    _, _, headers = await fetch(agent, body["attachments"][0]["url"])
    assert headers["Content-Disposition"].startswith("attachment;")  # PDFs download


async def test_files_per_order_are_limited(api: Any) -> None:
    t = await dispatched(api)
    agent: Api = await api("agent")
    for i in range(3):
        assert (await upload(agent, t["id"], (f"{i}.png", png(2 + i))))[0] == 201
    status, body = await upload(agent, t["id"], ("4.png", png(9)))
    assert (status, body["error"]["code"]) == (422, "invalid_input")


async def test_voicemail_recording_stays_with_the_centre(
    api: Any, app_client: Any, tmp_path: Path
) -> None:
    wav = tmp_path / "vm.wav"
    wav.write_bytes(b"RIFF....WAVEfmt ")
    svc = app_client.app[SERVICES]
    t = await svc.tickets.submit(
        NewTicket(
            Channel.PHONE,
            "电话留言",
            Caller(phone=PHONE),
            attachments=({"type": "recording", "name": "留言录音.wav", "path": str(wav)},),
        )
    )
    dispatcher: Api = await api("dispatcher")
    seen = await dispatcher.get(f"/tickets/{t.id}")
    (a,) = seen["attachments"]
    assert "path" not in a
    assert (await fetch(dispatcher, a["url"]))[0] == 200
    await dispatcher.act(seen, "dispatch", lead="150100-housing")
    housing: Api = await api("housing")
    assert (await fetch(housing, a["url"]))[0] == 404


async def test_citizen_attaches_photos_at_submission(api: Any, database: Database) -> None:
    citizen: Api = await api()
    form = aiohttp.FormData()
    form.add_field("lang", "zh-Hans")
    form.add_field("content", "路边垃圾堆积，见照片")
    form.add_field("phone", PHONE)
    form.add_field("files", png(), filename="垃圾.png", content_type="image/png")
    async with citizen.session.post(citizen.base + "/", data=form) as resp:
        assert resp.status == 200, await resp.text()
    agent: Api = await api("agent")
    (t,) = (await agent.get("/tickets"))["items"]
    assert [a["name"] for a in t["attachments"]] == ["垃圾.png"]
