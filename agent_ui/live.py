"""Live updates for the staff console over one WebSocket per page: order events (after
commit, from the bus) and call events (CTI), filtered per person by the access rules; a page
that reconnects says the last order event it saw and gets what it missed.

What travels is small and carries no personal data: an order's id, number, the event's type
and wording, the new state; a call's id, the caller's number only to centre staff (the agent's
screen pop; masked for managers and admins, tickets.access.mask_for), never to departments.
A department receives only events of orders it may read now, as the access choke point decides."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from agent_ui.context import SERVICES, current_session, services
from telephony.presence import Entry, process_name
from tickets.access import mask_for
from tickets.errors import DomainError, Forbidden
from tickets.model import STATUS_LABELS, SYSTEM, Actor, Role, Status, TicketEvent, event_label

log = logging.getLogger(__name__)

CENTRE = frozenset({Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN})
QUEUE_SIZE = 256  # per page; a page that falls this far behind is closed and reconnects
CATCH_UP_MAX = 500  # events sent to a page that reconnects; more: it reloads
HEARTBEAT_S = 25
PAGE = re.compile(r"/(staff|kb)(/[A-Za-z0-9_./-]{0,150})?")  # a console page, as presence shows it


@dataclass(eq=False)
class Client:
    actor: Actor
    username: str
    # messages already in JSON: one event is encoded once for all the pages it goes to
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    behind: bool = False  # dropped by the hub: the page reconnects and catches up

    def offer(self, message: str) -> bool:
        """Queue a message; False when the page is too far behind (it is then dropped)."""
        try:
            self.queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            return False


class LiveHub:
    """Fans the bus's events out to the connected consoles."""

    def __init__(self) -> None:
        self.clients: set[Client] = set()
        self.sockets: set[web.WebSocketResponse] = set()  # closed on shutdown
        self.sent = 0

    def add(self, client: Client) -> None:
        self.clients.add(client)

    def remove(self, client: Client) -> None:
        self.clients.discard(client)

    async def ticket_events(self, app: web.Application, events: list[TicketEvent]) -> None:
        svc = app[SERVICES]
        for ev in events:
            if not self.clients:
                return
            try:
                ticket = await svc.tickets.get(SYSTEM, ev.ticket_id)
            except DomainError:
                continue
            message = json.dumps(ticket_message(ev, ticket.number), ensure_ascii=False)
            for client in list(self.clients):
                if may_see(client.actor, ticket):
                    self._send(client, message)

    def cti_event(self, ev: Any) -> None:
        message = {
            "type": "call",
            "event": ev.type,
            "call": ev.call,
            "caller": ev.caller,
            "agent": ev.agent,
            "at": ev.at.isoformat(),
            "data": ev.data,
        }
        encoded: dict[str | None, str] = {}  # by what the caller's number shows as
        for client in list(self.clients):
            if client.actor.role in CENTRE:
                shown = mask_for(client.actor.role, ev.caller)
                if shown not in encoded:
                    encoded[shown] = json.dumps({**message, "caller": shown}, ensure_ascii=False)
                self._send(client, encoded[shown])

    def _send(self, client: Client, message: str) -> None:
        if client.offer(message):
            self.sent += 1
        else:
            client.behind = True
            self.remove(client)


def may_see(actor: Actor, ticket: Any) -> bool:
    from tickets.access import access_ticket

    try:
        access_ticket(actor, ticket)
    except (DomainError, Forbidden):
        return False
    return True


def ticket_message(ev: TicketEvent, number: str) -> dict[str, Any]:
    status = ev.to_status.value if ev.to_status else None
    return {
        "type": "ticket",
        "id": ev.id,
        "ticket": ev.ticket_id,
        "number": number,
        "action": ev.action,
        "label": event_label(ev.action),
        "actor": {"id": ev.actor_id, "name": ev.actor_name, "role": ev.actor_role.value},
        "status": status,
        "status_label": STATUS_LABELS[Status(status)] if status else None,
        "at": ev.at.isoformat(),
    }


HUB = web.AppKey("live_hub", LiveHub)


def _origin_ok(request: web.Request) -> bool:
    """Browsers send Origin on a WebSocket handshake: only this site's own pages may open one
    (the public address, or the address the page was loaded from)."""
    origin = request.headers.get("Origin")
    if not origin:
        return False
    own = {f"{request.scheme}://{request.host}"}
    public = urlsplit(services(request).web.public_url)
    own.add(f"{public.scheme}://{public.netloc}")
    return origin.rstrip("/") in own


async def live_socket(request: web.Request) -> web.StreamResponse:
    session = await current_session(request)
    if session is None:
        raise web.HTTPUnauthorized(text="请先登录")
    if not _origin_ok(request):
        raise web.HTTPForbidden(text="来源不允许")
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT_S, max_msg_size=4096)
    await ws.prepare(request)
    hub = request.app[HUB]
    client = Client(session.user.actor, session.user.username)
    hub.add(client)
    hub.sockets.add(ws)
    presence = services(request).presence
    seen = _console(client, request.query.get("page", ""))
    reader: asyncio.Task[None] | None = None
    try:
        if presence is not None:
            await presence.put([seen])
        since = _int(request.query.get("since"))
        hello = {"type": "hello", "user": client.username, "role": client.actor.role.value}
        await ws.send_json(hello)
        if since is not None:
            await _catch_up(request, ws, client, since)
        reader = asyncio.create_task(_drain_incoming(ws))
        while not ws.closed:
            getter = asyncio.create_task(client.queue.get())
            done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            await ws.send_str(getter.result())
            if client.behind:
                await ws.close(code=1013, message=b"behind: reconnect")
                break
    except ConnectionResetError:
        pass  # the page went while a message was on its way: it reconnects and catches up
    finally:
        if reader is not None:
            reader.cancel()
        hub.remove(client)
        hub.sockets.discard(ws)
        if presence is not None:
            await presence.remove([seen.key])
        with contextlib.suppress(Exception):
            await ws.close()
    return ws


def _console(client: Client, page: str) -> Entry:
    """This socket as an entry of who is on duty (telephony/presence.py)."""
    actor = client.actor
    return Entry(
        key=f"console:{uuid.uuid4().hex}",
        kind="console",
        username=client.username,
        since=datetime.now(UTC).isoformat(),
        name=actor.name,
        role=actor.role.value,
        department=actor.department,
        page=page if PAGE.fullmatch(page) else "",
        process=process_name(),
    )


async def _drain_incoming(ws: web.WebSocketResponse) -> None:
    """Pages only listen; anything they send is read and dropped (pings are automatic)."""
    async for msg in ws:
        if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
            break


async def _catch_up(
    request: web.Request, ws: web.WebSocketResponse, client: Client, since: int
) -> None:
    svc = services(request)
    events = await svc.tickets.events_after(since, CATCH_UP_MAX + 1)
    if len(events) > CATCH_UP_MAX:
        await ws.send_json({"type": "reload", "reason": "missed too much"})
        return
    numbers: dict[int, Any] = {}
    for ev in events:
        if ev.ticket_id not in numbers:
            try:
                numbers[ev.ticket_id] = await svc.tickets.get(SYSTEM, ev.ticket_id)
            except DomainError:
                numbers[ev.ticket_id] = None
        ticket = numbers[ev.ticket_id]
        if ticket is not None and may_see(client.actor, ticket):
            await ws.send_json(ticket_message(ev, ticket.number))


def _int(raw: str | None) -> int | None:
    if raw is None or not raw.isdigit() or len(raw) > 18:
        return None
    return int(raw)


def live_ctx(bus: Any) -> Any:
    """One cleanup_ctx: follow the bus's order and call topics for the hub."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        hub = app[HUB]
        tickets_q = bus.subscribe(maxsize=10_000, topic="tickets")
        cti_q = bus.subscribe(maxsize=10_000, topic="cti")

        async def follow_tickets() -> None:
            while True:
                batch = [await tickets_q.get()]
                while not tickets_q.empty() and len(batch) < 200:
                    batch.append(tickets_q.get_nowait())
                try:
                    await hub.ticket_events(app, batch)
                except Exception:  # a push failing must not stop the pushes
                    log.exception("live push failed")

        async def follow_cti() -> None:
            while True:
                hub.cti_event(await cti_q.get())

        tasks = [asyncio.create_task(follow_tickets()), asyncio.create_task(follow_cti())]
        yield
        for t in tasks:
            t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await t
        bus.unsubscribe(tickets_q)
        bus.unsubscribe(cti_q)

    return ctx


async def _close_sockets(app: web.Application) -> None:
    """On shutdown, tell every console to reconnect (1001: another process, or this one when
    it is back) instead of holding the stop until the shutdown timeout."""
    for ws in list(app[HUB].sockets):
        with contextlib.suppress(Exception):
            await ws.close(code=1001, message=b"server shutdown")


def setup(app: web.Application, bus: Any) -> None:
    app[HUB] = LiveHub()
    app.router.add_get("/api/v1/live", live_socket)
    app.on_shutdown.append(_close_sockets)
    if bus is not None:
        app.cleanup_ctx.append(live_ctx(bus))
