"""The browser softphone's signalling: one WebSocket per agent at /api/v1/softphone/ws, and the
panel's page at /staff/softphone (the panel itself is static/softphone.js and .css).

The socket rides on the staff session's cookie. Another site cannot open it in an agent's
browser: the handshake's Origin must be [server] public_url's, and the first message must carry
the session's CSRF token, which only this site's pages hold. Out go the agent's own CTI events
(state, ringing, call state), and nobody else's; in come sign-in, state, the browser's SDP offer
to answer a call, and the call controls."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from agent_ui.accounts import NotAuthenticated
from agent_ui.api import route
from agent_ui.api_calls import CALL_ROLES, _agent_json, _center
from agent_ui.context import current_session, require_staff, services
from agent_ui.pages_staff import render, staff_context
from telephony.center import CallCenter
from telephony.config import TelephonySettings
from telephony.model import CtiEvent
from tickets.errors import DomainError, RoleForbidden
from tickets.model import LABELS, Role

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10
SESSION_CHECK_S = 60  # an expired or logged-out session closes the socket within this
MAX_MESSAGE = 64 * 1024  # an SDP offer is a few KB
CLOSE_REPLACED = 4000  # the agent opened the softphone in another page
CLOSE_FORBIDDEN = 4403
CLOSE_SESSION = 4401
LANGUAGES = {"cmn": "普通话", "mn": "蒙古语"}


# -- one socket per agent ------------------------------------------------------------------------
@dataclass
class Hub:
    """The open softphone of each agent (a newer page replaces an older one)."""

    sockets: dict[str, web.WebSocketResponse] = field(default_factory=dict)
    leaving: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    async def attach(self, username: str, ws: web.WebSocketResponse) -> None:
        task = self.leaving.pop(username, None)
        if task is not None:
            task.cancel()
        old = self.sockets.get(username)
        self.sockets[username] = ws
        if old is not None and not old.closed:
            await old.close(code=CLOSE_REPLACED, message="已在其他页面打开软电话".encode())

    def detach(self, username: str, ws: web.WebSocketResponse, center: CallCenter | None) -> None:
        if self.sockets.get(username) is not ws:
            return
        del self.sockets[username]
        if center is not None:
            self.leaving[username] = asyncio.ensure_future(self._sign_out(username, center))

    async def _sign_out(self, username: str, center: CallCenter) -> None:
        """The page closed: a browser agent leaves the queue (after the call it is in), or
        callers would ring a page nobody has open. A page that comes back within the
        configured grace (a reload, a dropped connection) cancels this in `attach`."""
        try:
            await asyncio.sleep(center.settings.webrtc.reconnect_grace_s)
            while True:
                agent = center.acd.agents.get(username)
                if agent is None or not agent.softphone:
                    return
                if agent.call is None:
                    await center.agent_logout(username)
                    return
                await asyncio.sleep(1)
        except DomainError:
            return
        finally:
            self.leaving.pop(username, None)


HUB = web.AppKey("softphone_hub", Hub)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{parts.scheme}://{(parts.hostname or '').lower()}{port}"


def ivr_steps(path: str, settings: TelephonySettings) -> list[str]:
    """The caller's way through the IVR in words (lang:cmn>menu:2>queue → 普通话, 投诉…)."""
    menu = {m.key: m for m in settings.menu}
    out = []
    for step in path.split(">"):
        what, _, value = step.partition(":")
        if what == "lang":
            out.append(LANGUAGES.get(value, value))
        elif what == "menu":
            entry = menu.get(value)
            if entry is None:
                out.append("未选择" if value == "none" else f"按键{value}")
            elif entry.action == "status":
                out.append("查询工单")
            elif entry.action == "agent":
                out.append("人工服务")
            else:
                out.append(LABELS.get(entry.kind, entry.kind))
        elif what == "status":
            out.append("查询结果")
        elif what == "queue":
            out.append("排队")
        elif what == "requeue":
            out.append("重新排队")
        elif what in ("agent", "primary", "consult"):
            out.append(f"坐席 {value}")
    return out


# -- the socket ----------------------------------------------------------------------------------
@route(
    "GET",
    "/softphone/ws",
    "软电话信令（WebSocket；须同源 Origin，首条消息带 CSRF 令牌）",
    status=101,
    tag="电话",
)
async def softphone_ws(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request, *CALL_ROLES)
    center = _center(request)
    svc = services(request)
    if request.headers.get("Origin", "") != _origin(svc.web.public_url):
        # a page of another site (or a mistyped address) may not speak for the agent
        raise RoleForbidden("软电话只能从本平台的页面连接（Origin 与 server.public_url 不符）")
    session = await current_session(request)
    assert session is not None
    if svc.events is None:
        raise RoleForbidden("事件总线不可用")
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=MAX_MESSAGE)
    if not ws.can_prepare(request).ok:
        from tickets.errors import InvalidInput

        raise InvalidInput("这里只接受 WebSocket 连接")
    await ws.prepare(request)
    try:
        hello = await ws.receive(timeout=HELLO_TIMEOUT_S)
        token = json.loads(hello.data).get("csrf", "") if hello.type == WSMsgType.TEXT else ""
    except (TimeoutError, ValueError, AttributeError):
        token = ""
    if not isinstance(token, str) or not hmac.compare_digest(token, session.csrf_token):
        await ws.close(code=CLOSE_FORBIDDEN, message=b"csrf")
        return ws
    username = session.user.username
    hub = request.app[HUB]
    await hub.attach(username, ws)
    events = svc.events.subscribe(maxsize=1000, topic="cti")
    phone = Softphone(request, ws, center, username, actor.role.value)
    cookie = request.cookies.get("hotline_session", "")
    try:
        await phone.send(phone.welcome())
        # the page was reloaded or reconnected while a call rang for the agent, or during a
        # call (the page then brings the call's audio back: a new offer for it)
        for missed in (
            center.conversations.ring_of(username),
            center.conversations.state_of(username),
        ):
            pending = phone.event(missed) if missed is not None else None
            if pending is not None:
                await phone.send(pending)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(phone.push(events, cookie))
            tg.create_task(phone.serve())
    except* (ConnectionError, _Closed):
        pass
    finally:
        svc.events.unsubscribe(events)
        hub.detach(username, ws, center)
        if not ws.closed:
            await ws.close()
    return ws


class _Closed(Exception):
    """The socket is done (closed by either side, or the session ended)."""


class Softphone:
    """One agent's socket: requests in, events out."""

    def __init__(
        self,
        request: web.Request,
        ws: web.WebSocketResponse,
        center: CallCenter,
        username: str,
        role: str,
    ) -> None:
        self.request = request
        self.ws = ws
        self.center = center
        self.username = username
        self.role = role

    async def send(self, msg: dict[str, Any]) -> None:
        if self.ws.closed:
            raise _Closed
        await self.ws.send_str(json.dumps(msg, ensure_ascii=False, default=str))

    def agent(self) -> dict[str, Any] | None:
        agent = self.center.acd.agents.get(self.username)
        if agent is None:
            return None
        return {
            **_agent_json(agent),
            "softphone": agent.softphone,
            "wrapup_s": _remaining(agent.wrapup_until, self.center.monotonic()),
        }

    def welcome(self) -> dict[str, Any]:
        tel = self.center.settings
        return {
            "type": "welcome",
            "username": self.username,
            "agent": self.agent(),
            "webrtc": tel.webrtc.enabled,
            "ice_servers": list(tel.webrtc.ice_servers),
            "codecs": list(tel.webrtc.codecs),
            "wrapup_s": tel.wrapup_s,
            "departments": [
                {"code": code, "name": services(self.request).directory.department_name(code)}
                for code in self.center.conversations.departments()
            ],
        }

    # -- events out ------------------------------------------------------------------------------
    async def push(self, events: asyncio.Queue[Any], cookie: str) -> None:
        accounts = services(self.request).accounts
        while True:
            try:
                async with asyncio.timeout(SESSION_CHECK_S):
                    ev = await events.get()
            except TimeoutError:
                ev = None
            if not cookie or await accounts.session(cookie) is None:
                await self.ws.close(code=CLOSE_SESSION, message=b"session")
                raise _Closed
            if isinstance(ev, CtiEvent) and ev.agent == self.username:
                msg = self.event(ev)
                if msg is not None:
                    await self.send(msg)

    def event(self, ev: CtiEvent) -> dict[str, Any] | None:
        d = ev.data
        if ev.type == "agent.state":
            return {"type": "agent", "agent": self.agent()}
        if ev.type == "call.ringing":
            steps = ivr_steps(str(d.get("ivr_path") or ""), self.center.settings)
            return {
                "type": "ringing",
                "call": ev.call,
                "caller": ev.caller,
                "ivr_path": d.get("ivr_path"),
                "ivr_steps": steps,
                "kind": d.get("kind"),
                "kind_label": LABELS.get(str(d.get("kind")), ""),
                "language": LANGUAGES.get(str(d.get("language")), ""),
                "waited_s": d.get("waited_s"),
                "transfer": d.get("transfer"),
                "softphone": d.get("softphone"),
            }
        if ev.type == "call.state":
            return {"type": "call", "call": ev.call, "caller": ev.caller, **d}
        return None

    # -- requests in -----------------------------------------------------------------------------
    async def serve(self) -> None:
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                continue
            try:
                req = json.loads(msg.data)
                if not isinstance(req, dict):
                    raise ValueError
            except ValueError:
                await self.send({"type": "error", "message": "消息不是 JSON 对象"})
                continue
            rid = req.get("id")
            try:
                result = await self.handle(str(req.get("type", "")), req)
                reply: dict[str, Any] = {"type": "result", "re": rid, "ok": True, **result}
            except DomainError as exc:
                reply = {
                    "type": "result",
                    "re": rid,
                    "ok": False,
                    "code": exc.code,
                    "message": exc.message,
                }
            except NotAuthenticated:
                raise _Closed from None
            except Exception:  # one failed request must not drop the agent's socket
                log.exception("softphone %s: %s failed", self.username, req.get("type"))
                reply = {
                    "type": "result",
                    "re": rid,
                    "ok": False,
                    "code": "internal_error",
                    "message": "服务器内部错误，请稍后重试",
                }
            await self.send(reply)
        raise _Closed

    async def handle(self, kind: str, req: dict[str, Any]) -> dict[str, Any]:
        c = self.center
        me = self.username
        from tickets.errors import InvalidInput

        def text(key: str, limit: int = 200) -> str:
            value = req.get(key, "")
            if not isinstance(value, str) or len(value) > limit:
                raise InvalidInput(f"{key} 无效", field=key)
            return value

        if kind == "login":
            uri = text("uri", 300)
            if uri:  # a desk phone: the queue dials it (it must be on telephony.agent_hosts)
                await c.agent_login(me, uri, self.role)
            else:
                await c.softphone_login(me, self.role)
        elif kind == "logout":
            await c.agent_logout(me)
        elif kind == "state":
            await c.agent_state(me, text("state", 20), text("reason", 100))
        elif kind == "answer":
            return {"sdp": await c.conversations.answer(me, text("call", 64), text("sdp", 20_000))}
        elif kind in ("pickup", "decline"):
            await c.conversations.ringing_control(me, text("call", 64), kind)
        elif kind == "control":
            args = req.get("args") or {}
            if not isinstance(args, dict):
                raise InvalidInput("args 应为对象", field="args")
            op = text("op", 20)
            if op == "conference":
                code = str(args.get("department", ""))
                args = {**args, "label": services(self.request).directory.department_name(code)}
            return await c.conversations.control(me, text("call", 64), op, args)
        elif kind == "targets":
            return {"agents": c.conversations.targets(me)}
        else:
            raise InvalidInput(f"未知消息类型 {kind!r}", field="type")
        return {"agent": self.agent()}


@route(
    "GET",
    "/softphone/stats",
    "软电话媒体统计：各 SIP 进程的 CPU 时间与每路浏览器通话的帧计数",
    tag="电话",
)
async def softphone_stats(request: web.Request) -> web.Response:
    await require_staff(request, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)
    workers = await _center(request).conversations.media_stats()
    return web.json_response({"workers": workers})


def _remaining(until: float | None, now: float) -> float | None:
    return None if until is None else round(max(0.0, until - now), 1)


# -- the page ------------------------------------------------------------------------------------
async def softphone_page(request: web.Request) -> web.Response:
    """The softphone panel on a page of its own (the console includes the same partial)."""
    await require_staff(request, *CALL_ROLES)
    ctx = await staff_context(request)
    return render(
        request, "staff/softphone.html", {**ctx, "telephony": bool(services(request).calls)}
    )


def setup(app: web.Application) -> None:
    app[HUB] = Hub()
    app.router.add_get("/staff/softphone", softphone_page)

    async def close_sockets(app: web.Application) -> None:
        hub = app[HUB]
        for task in list(hub.leaving.values()):
            task.cancel()
        for ws in list(hub.sockets.values()):
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutdown")

    app.on_shutdown.append(close_sockets)
