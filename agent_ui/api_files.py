"""Attachments over HTTP: add a photo or document to an order (staff: API and the order page),
and fetch one — only for those who may read the order; recordings only for the centre."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp import web

from agent_ui.api import _json, _ticket_id, _ticket_out, route
from agent_ui.context import (
    check_csrf,
    client_address,
    defer_csrf_to_form,
    require_staff,
    services,
)
from agent_ui.uploads import read_form
from tickets.errors import InvalidInput, NotFound
from tickets.model import AccessKind, Role, Ticket

CENTRE = frozenset({Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN})
STAFF_WRITERS = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.DEPARTMENT)


async def add_attachments(request: web.Request) -> Ticket:
    """Shared by the API and the page: the form's csrf_token (pages) or the header (API)."""
    if "X-CSRF-Token" not in request.headers:
        defer_csrf_to_form(request)
    actor = await require_staff(request, *STAFF_WRITERS, write=True)
    svc = services(request)
    ticket_id = _ticket_id(request)
    await svc.tickets.get(actor, ticket_id)  # may this person touch the order at all

    async def csrf_first(fields: dict[str, str]) -> None:
        if "X-CSRF-Token" not in request.headers:
            await check_csrf(request, fields.get("csrf_token"))

    _, files = await read_form(request, svc.files, max_files=svc.max_files, before_files=csrf_first)
    if not files:
        raise InvalidInput("请选择要上传的文件", field="file")
    ticket = None
    for f in files:
        ticket = await svc.tickets.attach(actor, ticket_id, f.meta(), max_files=svc.max_files)
    assert ticket is not None
    return ticket


@route(
    "POST",
    "/tickets/{id}/attachments",
    "添加附件（multipart/form-data，字段 file；JPEG、PNG、PDF）",
)
async def upload(request: web.Request) -> web.Response:
    ticket = await add_attachments(request)
    svc = services(request)
    actor = await require_staff(request)
    return _json(_ticket_out(svc.tickets, svc.presenter, actor, ticket), status=201)


@route("GET", "/tickets/{id}/attachments/{n}", "下载附件或收听留言录音（每次记入访问日志）")
async def download(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request)
    svc = services(request)
    ticket = await svc.tickets.get(actor, _ticket_id(request))
    raw = request.match_info["n"]
    n = int(raw) if raw.isdigit() and len(raw) < 4 else -1
    if not 0 <= n < len(ticket.attachments):
        raise NotFound("附件不存在")
    entry: dict[str, Any] = ticket.attachments[n]
    if entry.get("type") == "recording":
        # a caller's voice identifies them: the centre only, never a department
        if actor.role not in CENTRE:
            raise NotFound("附件不存在")
        path = Path(str(entry.get("path", "")))
        media_type, name = "audio/wav", str(entry.get("name") or "录音.wav")
    else:
        path = svc.files.path(str(entry.get("sha256", "")))
        media_type, name = str(entry.get("media_type")), str(entry.get("name") or "附件")
    if entry.get("purged_at") or not await asyncio.to_thread(path.is_file):
        raise NotFound("附件文件不存在或已过保存期限")
    kind = (
        AccessKind.RECORDING_PLAYED
        if entry.get("type") == "recording"
        else AccessKind.ATTACHMENT_FETCHED
    )
    await svc.privacy.record(  # before a byte leaves: no entry, no file
        actor, kind, ticket_id=ticket.id, subject=f"attachment:{n}", client=client_address(request)
    )
    inline = media_type.startswith(("image/", "audio/"))
    disposition = "inline" if inline else "attachment"
    return web.FileResponse(
        path,
        headers={
            "Content-Type": media_type,
            "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name)}",
            "Content-Security-Policy": "sandbox; default-src 'none'",
            "Cache-Control": "private, no-store",
        },
    )


async def page_upload(request: web.Request) -> web.Response:
    ticket = await add_attachments(request)
    return web.Response(status=303, headers={"Location": f"/staff/tickets/{ticket.id}?done=attach"})


def add_routes(app: web.Application) -> None:
    app.router.add_post(r"/staff/tickets/{id:\d{1,18}}/attachments", page_upload)
