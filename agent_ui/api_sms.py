"""SMS gateway endpoints (Kannel MO and delivery reports, a signed JSON webhook for cloud SMS
providers) and the staff views of the outbox and the block list."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from agent_ui import schemas as s
from agent_ui.accounts import NotAuthenticated
from agent_ui.api import _int_query, _json, route
from agent_ui.context import (
    UnsupportedCharset,
    client_address,
    read_json,
    require_staff,
    services,
    strip_controls,
)
from telephony.sms import SmsService
from telephony.sms_store import Outgoing
from telephony.sms_webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, refusal
from tickets.access import mask_for
from tickets.errors import Forbidden, InvalidInput, Unavailable
from tickets.model import Role

TAG = "短信"
# Kannel's %C: the charset of %a after mo-recode (UTF-8), or what the phone sent
CHARSETS = {
    "": "utf-8",
    "utf-8": "utf-8",
    "utf8": "utf-8",
    "ucs-2": "utf-16-be",
    "ucs2": "utf-16-be",
    "utf-16be": "utf-16-be",
    "utf-16": "utf-16-be",
    "iso-8859-1": "latin-1",
    "latin1": "latin-1",
    "windows-1252": "cp1252",
    "us-ascii": "ascii",
    "gsm": "latin-1",
}
# folded: an acknowledgement carried by message folded_into; limited: over the daily cap
OUTBOX_STATUSES = ("queued", "sending", "sent", "delivered", "failed", "kept", "folded", "limited")
WATCH = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)


def _sms(request: web.Request) -> SmsService:
    sms = services(request).sms
    if sms is None:
        raise Unavailable("短信通道未启用")
    return sms


def _decoded(raw: dict[str, bytes], charset: str) -> str:
    codec = CHARSETS.get(charset.strip().lower())
    if codec is None:
        raise UnsupportedCharset(f"不支持的字符集 {charset!r}", charset=charset)
    try:
        # control characters are dropped, not refused: the citizen's message must not be lost
        return strip_controls(raw.get("text", b"").decode(codec))
    except UnicodeDecodeError:
        raise InvalidInput(f"短信内容不是合法的 {charset} 编码", field="text") from None


async def _kannel_fields(request: web.Request) -> dict[str, bytes]:
    """The parameters as bytes: Kannel URL-encodes the raw message, which is UTF-8 only after
    mo-recode; the charset parameter says how to read it."""
    pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True, encoding="latin-1")
    if request.method == "POST":
        body = await request.read()
        if request.content_type == "application/x-www-form-urlencoded":
            pairs += parse_qsl(body.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
        elif body:
            pairs.append(("text", body))  # type: ignore[arg-type]
    out: dict[str, bytes] = {}
    for k, v in pairs:
        out[k] = v if isinstance(v, bytes) else v.encode("latin-1")
    return out


def _from_gateway(request: web.Request, sms: SmsService, token: bytes | None) -> None:
    """Kannel's calls come from its own addresses (and carry the token when one is set):
    nobody else may speak for a citizen's phone or mark messages delivered."""
    remote = client_address(request)
    if remote not in sms.s.gateway_addresses:
        raise Forbidden("该地址不是已登记的短信网关", remote=remote)
    want = sms.s.gateway_token.encode()
    if want and not hmac.compare_digest(token or b"", want):
        raise NotAuthenticated("短信网关令牌错误")


GATEWAY_PARAMS = (("token", "query", {"type": "string"}, "sms.gateway_token（Kannel 的凭据）"),)


@route(
    "GET",
    "/sms/kannel",
    "Kannel 上行短信（sms-service get-url）",
    auth="public",
    tag=TAG,
    params=GATEWAY_PARAMS,
)
async def kannel_mo(request: web.Request) -> web.Response:
    sms = _sms(request)
    raw = await _kannel_fields(request)
    _from_gateway(request, sms, raw.get("token"))
    text = _decoded(raw, raw.get("charset", b"").decode("latin-1"))
    msg = sms.parse(
        raw.get("from", b"").decode("latin-1"),
        raw.get("to", b"").decode("latin-1"),
        text,
        raw.get("id", b"").decode("latin-1") or None,
    )
    outcome = await sms.receive(msg)
    # an empty 200: Kannel sends nothing back (the platform's own notices go via the outbox)
    return web.Response(
        text="", headers={"X-Hotline-Result": outcome.handled_as}, content_type="text/plain"
    )


@route(
    "POST",
    "/sms/kannel",
    "Kannel 上行短信（post-url）",
    auth="public",
    tag=TAG,
    params=GATEWAY_PARAMS,
)
async def kannel_mo_post(request: web.Request) -> web.StreamResponse:
    return await kannel_mo(request)


@route(
    "GET", "/sms/dlr", "Kannel 状态报告（dlr-url）", auth="public", tag=TAG, params=GATEWAY_PARAMS
)
async def kannel_dlr(request: web.Request) -> web.Response:
    sms = _sms(request)
    _from_gateway(request, sms, request.query.get("token", "").encode())
    msg_id = _int_query(request, "id", 0, 1, 2**62)
    report = _int_query(request, "type", 0, 0, 1024)
    found = await sms.delivery_report(msg_id, report)
    return web.Response(text="ok" if found else "unknown", content_type="text/plain")


@route(
    "POST",
    "/sms/webhook",
    '云短信平台上行（JSON；X-Timestamp: Unix 秒，X-Signature: HMAC-SHA256(密钥, 时间戳 + "." + '
    "请求体) 十六进制；时间窗外或重复的请求 401）",
    body=s.SmsWebhook,
    auth="public",
    tag=TAG,
    params=(
        (
            TIMESTAMP_HEADER,
            "header",
            {"type": "string", "pattern": "^[0-9]{1,12}$"},
            "签名时间，Unix 秒",
        ),
        (
            SIGNATURE_HEADER,
            "header",
            {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            'HMAC-SHA256(sms.webhook_secret, X-Timestamp + "." + 请求体) 的十六进制',
        ),
    ),
)
async def webhook(request: web.Request) -> web.Response:
    sms = _sms(request)
    secret = sms.s.webhook_secret
    if not secret:
        raise Unavailable("短信 webhook 未配置（sms.webhook_secret）")
    raw = await request.read()
    signature = request.headers.get(SIGNATURE_HEADER, "")
    why = refusal(
        secret,
        request.headers.get(TIMESTAMP_HEADER, ""),
        signature,
        raw,
        sms.now(),
        sms.s.webhook_window_s,
    )
    if why is not None:
        raise NotAuthenticated(why)
    body = await read_json(request, s.SmsWebhook)
    msg = sms.parse(body.sender, body.to, body.text, body.id)
    outcome = await sms.receive_signed(msg, signature)
    if outcome is None:
        raise NotAuthenticated("重复的请求：这个签名已经用过（重放）")
    return _json(
        {"result": outcome.handled_as, "number": outcome.ticket.number if outcome.ticket else None}
    )


def _out_json(
    m: Outgoing, t: Callable[[datetime | None], str | None], role: Role
) -> dict[str, Any]:
    return {
        "id": m.id,
        "recipient": mask_for(role, m.recipient),
        "text": m.text,
        "purpose": m.purpose,
        "ticket_id": m.ticket_id,
        "status": m.status,
        "attempts": m.attempts,
        "created_at": t(m.created_at),
        "sent_at": t(m.sent_at),
        "delivered_at": t(m.delivered_at),
        "last_error": m.last_error,
        "folded_into": m.folded_into,
    }


@route(
    "GET",
    "/sms/outbox",
    "短信发件箱（可按 recipient、ticket_id、status 筛选；folded：已并入 folded_into 那条的"
    "受理回执，limited：超出每日上限、未发送）",
    tag=TAG,
)
async def outbox(request: web.Request) -> web.Response:
    actor = await require_staff(request, *WATCH)
    q = request.query
    status = q.get("status") or None
    if status is not None and status not in OUTBOX_STATUSES:
        raise InvalidInput(f"status 只能是 {'、'.join(OUTBOX_STATUSES)}", field="status")
    items = await _sms(request).outbox(
        recipient=q.get("recipient") or None,
        ticket_id=_int_query(request, "ticket_id", 0, 0, 2**62) or None,
        status=status,
        limit=_int_query(request, "limit", 50, 1, services(request).web.page_size_max),
        offset=_int_query(request, "offset", 0, 0, 10_000_000),
    )
    t = services(request).presenter.time
    return _json({"items": [_out_json(m, t, actor.role) for m in items]})


@route("GET", "/sms/blocklist", "短信黑名单", tag=TAG)
async def blocklist(request: web.Request) -> web.Response:
    await require_staff(request, Role.SUPERVISOR, Role.ADMIN)
    rows = await _sms(request).blocked()
    t = services(request).presenter.time
    return _json({"items": [{"phone": p, "reason": r, "created_at": t(at)} for p, r, at in rows]})


@route(
    "POST", "/sms/blocklist", "加入短信黑名单（骚扰号码）", body=s.BlockNumber, tag=TAG, status=201
)
async def block(request: web.Request) -> web.Response:
    await require_staff(request, Role.SUPERVISOR, Role.ADMIN, write=True)
    body = await read_json(request, s.BlockNumber)
    await _sms(request).block(body.phone, body.reason)
    return _json({"phone": body.phone, "blocked": True}, status=201)


@route("DELETE", "/sms/blocklist/{phone}", "移出短信黑名单", tag=TAG)
async def unblock(request: web.Request) -> web.Response:
    await require_staff(request, Role.SUPERVISOR, Role.ADMIN, write=True)
    removed = await _sms(request).unblock(request.match_info["phone"])
    return _json({"removed": removed})
