"""JSON API of the call centre: agents sign in with their phone and set their state, the live
queue, call records and KPIs, recordings, and outbound calls tied to a work order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from agent_ui import schemas as s
from agent_ui.api import _int_query, _json, path_id, route
from agent_ui.context import (
    client_address,
    current_session,
    read_json,
    require_staff,
    services,
)
from telephony.acd import AGENT_STATE_LABELS, Agent
from telephony.center import CallCenter
from telephony.model import OUTCOME_LABELS, CallRecord
from tickets.access import mask_for, normalize_phone, time_in_range
from tickets.errors import InvalidInput, NotFound, Unavailable
from tickets.model import AccessKind, Actor, Role

# taking and placing calls is desk work; admins manage accounts and settings, not calls (an
# admin who also answers the phone has an agent account of their own: separation of duties)
CALL_ROLES = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR)
WATCH_ROLES = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)
TAG = "电话"


def _center(request: web.Request) -> CallCenter:
    center = services(request).calls
    if center is None:
        raise Unavailable("本进程没有电话接入（telephony.enabled = false，或未以 sip 角色运行）")
    if not center.active:  # a load balancer in front retries on the active one (503)
        raise Unavailable("本进程是备用呼叫中心，主用呼叫中心在其他进程运行")
    return center


async def _caller(request: web.Request, *, write: bool) -> tuple[Actor, str]:
    """The staff member taking calls: actor and user name (agents are known by name)."""
    actor = await require_staff(request, *CALL_ROLES, write=write)
    session = await current_session(request)
    assert session is not None  # require_staff checked it
    return actor, session.user.username


def _agent_json(agent: Agent) -> dict[str, Any]:
    return {
        "username": agent.username,
        "uri": agent.uri,
        "state": agent.state.value,
        "state_label": AGENT_STATE_LABELS[agent.state],
        "reason": agent.reason,
        "call": agent.call,
        "answered": agent.answered,
    }


def call_json(
    rec: CallRecord, t: Callable[[datetime | None], str | None], role: Role
) -> dict[str, Any]:
    """A call record; the citizen's number (an inbound caller, an outbound call's target)
    masked for roles that do not need it (tickets.access.mask_for)."""
    inbound = rec.direction == "in"
    return {
        "id": rec.id,
        "direction": rec.direction,
        "purpose": rec.purpose,
        "caller": mask_for(role, rec.caller) if inbound else rec.caller,
        "dialled": rec.dialled if inbound else mask_for(role, rec.dialled),
        "worker": rec.worker,
        "language": rec.language,
        "kind": rec.kind,
        "ivr_path": rec.ivr_path,
        "offered_at": t(rec.offered_at),
        "queued_at": t(rec.queued_at),
        "answered_at": t(rec.answered_at),
        "ended_at": t(rec.ended_at),
        "wait_s": rec.wait_s,
        "talk_s": rec.talk_s,
        "outcome": rec.outcome,
        "outcome_label": OUTCOME_LABELS.get(rec.outcome or "", ""),
        "agent": rec.agent,
        "ticket_id": rec.ticket_id,
        "has_recording": bool(rec.recording) and not rec.recording_purged,
    }


@route("POST", "/agent/session", "坐席签入（登记接听话机的 SIP 地址）", body=s.AgentLogin, tag=TAG)
async def agent_login(request: web.Request) -> web.Response:
    _, username = await _caller(request, write=True)
    body = await read_json(request, s.AgentLogin)
    agent = await _center(request).agent_login(username, body.uri)
    return _json(_agent_json(agent), status=201)


@route("DELETE", "/agent/session", "坐席签出", tag=TAG)
async def agent_logout(request: web.Request) -> web.Response:
    _, username = await _caller(request, write=True)
    await _center(request).agent_logout(username)
    return _json({"state": "offline"})


@route("GET", "/agent/state", "本坐席的当前状态", tag=TAG)
async def agent_get(request: web.Request) -> web.Response:
    _, username = await _caller(request, write=False)
    agent = _center(request).acd.agents.get(username)
    if agent is None:
        return _json({"username": username, "state": "offline", "state_label": "未签入"})
    return _json(_agent_json(agent))


@route(
    "PUT",
    "/agent/state",
    "设置坐席状态：空闲、小休（需原因）、话后整理",
    body=s.AgentState,
    tag=TAG,
)
async def agent_set(request: web.Request) -> web.Response:
    _, username = await _caller(request, write=True)
    body = await read_json(request, s.AgentState)
    agent = await _center(request).agent_state(username, body.state, body.reason or "")
    return _json(_agent_json(agent))


@route("GET", "/callcenter", "实时话务：坐席状态、排队来电、在线通话", tag=TAG)
async def callcenter(request: web.Request) -> web.Response:
    await require_staff(request, *WATCH_ROLES)
    return _json(_center(request).snapshot())


@route("GET", "/calls", "通话记录（可按 caller、ticket_id、outcome 筛选）", tag=TAG)
async def list_calls(request: web.Request) -> web.Response:
    actor = await require_staff(request, *WATCH_ROLES)
    q = request.query
    outcome = q.get("outcome") or None
    if outcome is not None and outcome not in OUTCOME_LABELS:
        raise InvalidInput(f"参数 outcome 的值无效（可选: {', '.join(OUTCOME_LABELS)}）")
    ticket = _int_query(request, "ticket_id", 0, 0, 2**62) or None
    caller = q.get("caller") or None
    if caller is not None:
        try:
            caller = normalize_phone(caller)
        except InvalidInput:
            caller = caller.strip()[:64]  # SIP users need not be phone numbers
    records = await _center(request).list_calls(
        caller=caller,
        ticket_id=ticket,
        outcome=outcome,
        limit=_int_query(request, "limit", 50, 1, services(request).web.page_size_max),
        offset=_int_query(request, "offset", 0, 0, 10_000_000),
    )
    t = services(request).presenter.time
    return _json({"items": [call_json(r, t, actor.role) for r in records]})


def _day_query(request: web.Request, name: str, default: datetime) -> datetime:
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"参数 {name} 应为 ISO 8601 时间", field=name) from None
    value = value if value.tzinfo else value.replace(tzinfo=services(request).presenter.tz)
    # records go back years at most; a far date would only overflow the arithmetic
    return time_in_range(
        value,
        datetime.now(UTC),
        past=timedelta(days=366 * 20),
        future=timedelta(days=366),
        field=name,
        label=f"参数 {name}",
    )


@route("GET", "/calls/stats", "话务指标：15秒接通率、接通率、放弃率、平均等待", tag=TAG)
async def call_stats(request: web.Request) -> web.Response:
    await require_staff(request, Role.SUPERVISOR, Role.MANAGER, Role.ADMIN)
    now = datetime.now(UTC)
    since = _day_query(request, "since", now - timedelta(days=1))
    until = _day_query(request, "until", now)
    if since >= until:
        raise InvalidInput("since 应早于 until", field="since")
    # from the call records: any web process answers, the call centre need not run here
    stats = await services(request).call_stats.totals(since, until)
    t = services(request).presenter.time
    return _json({"since": t(since), "until": t(until), **stats.as_dict()})


@route("GET", "/calls/{id}/recording", "通话或留言录音（WAV；每次收听记入访问日志）", tag=TAG)
async def call_recording(request: web.Request) -> web.StreamResponse:
    actor = await require_staff(request, *WATCH_ROLES)
    call_id = request.match_info["id"]
    records = [r for r in await _center(request).list_calls(limit=1, call_id=call_id)]
    rec = records[0] if records else None
    if rec is None or not rec.recording or rec.recording_purged:
        raise NotFound("录音不存在或已过保存期限", call=call_id)
    path = Path(rec.recording)
    if not await asyncio.to_thread(path.is_file):
        raise NotFound("录音文件不存在", call=call_id)
    await services(request).privacy.record(
        actor,
        AccessKind.RECORDING_PLAYED,
        ticket_id=rec.ticket_id,
        subject=f"call:{call_id}",
        client=client_address(request),
    )
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


@route(
    "POST",
    "/tickets/{id}/call",
    "外呼工单来电号码：回拨（先振铃本坐席话机）或满意度回访",
    body=s.OutboundCall,
    status=202,
    tag=TAG,
)
async def call_ticket(request: web.Request) -> web.Response:
    actor, username = await _caller(request, write=True)
    body = await read_json(request, s.OutboundCall)
    ticket = await services(request).tickets.get(actor, path_id(request))
    call = await _center(request).originate(username, ticket, body.purpose)
    return _json({"call": call, "purpose": body.purpose}, status=202)
