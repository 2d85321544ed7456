"""The order form's live help while an agent types: the classifier's top-3 categories, the
kind, the department the dispatch table would pick and why, the region found in the address,
the caller's open orders, and open orders that look like the same problem nearby (candidates
for 合并 / 多人同诉). The model loads on first use, in a thread, and predicts off the loop."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from aiohttp import web
from pydantic import Field

from agent_ui import schemas as s
from agent_ui.api import route
from agent_ui.context import read_json, require_staff, services
from tickets.access import normalize_phone
from tickets.errors import InvalidInput
from tickets.model import (
    Actor,
    Caller,
    Channel,
    Kind,
    Role,
    Status,
    Ticket,
    TicketFilter,
    Urgency,
)
from tickets.workflow import IN_HAND

OPEN = tuple(IN_HAND)
MAX_SHOWN = 5


class Suggester(Protocol):
    def suggest(self, t: Ticket) -> tuple[dict[str, Any], str | None, float]: ...


class Assistant:
    """Holds the triage's suggestion logic, built (classifier loaded) on first use."""

    def __init__(self, build: Callable[[], Suggester]) -> None:
        self._build = build
        self._ready: Suggester | None = None
        self._lock = asyncio.Lock()

    async def suggester(self) -> Suggester:
        if self._ready is None:
            async with self._lock:
                if self._ready is None:
                    self._ready = await asyncio.to_thread(self._build)
        return self._ready

    async def suggest(
        self, content: str, address: str | None, region: str | None
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        draft = Ticket(
            id=0,
            number="",
            version=0,
            status=Status.NEW,
            channel=Channel.PHONE,
            kind=Kind.OTHER,
            urgency=Urgency.NORMAL,
            content=content,
            caller=Caller(),
            created_at=now,
            updated_at=now,
            region=region,
            address=address,
        )
        suggester = await self.suggester()
        suggestion, department, confidence = await asyncio.to_thread(suggester.suggest, draft)
        return {**suggestion, "department_code": department, "confidence": round(confidence, 4)}


class AssistBody(s.Strict):
    content: str = Field(min_length=1, max_length=4000)
    address: str | None = Field(default=None, max_length=200)
    region: str | None = Field(default=None, pattern=r"^\d{6}$")
    phone: str | None = Field(default=None, max_length=32)


def _brief(svc: Any, t: Ticket) -> dict[str, Any]:
    view = svc.presenter.ticket(t)
    keep = ("id", "number", "status", "status_label", "kind_label", "summary", "content")
    out = {k: view[k] for k in keep}
    out["content"] = (t.summary or t.content)[:80]
    out["region_name"] = view["region_name"]
    out["answer"] = (t.answer or "")[:120] or None
    out["confidential"] = t.caller.confidential
    return out


async def _open_orders(svc: Any, actor: Actor, f: TicketFilter) -> list[Ticket]:
    found, _ = await svc.tickets.list_tickets(actor, dataclasses.replace(f, statuses=OPEN))
    return found


@route(
    "POST",
    "/assist",
    "登记工单时的实时建议：分类前三、类型、建议承办单位、识别区划、该号码的未办结工单、附近相似诉求",
    body=AssistBody,
)
async def assist(request: web.Request) -> web.Response:
    actor = await require_staff(request, Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, write=True)
    body = await read_json(request, AssistBody)
    svc = services(request)
    if svc.assist is None:
        raise InvalidInput("分类建议未启用")
    out = await svc.assist.suggest(body.content, body.address, body.region)
    dept = out.get("department_code")
    out["department_name"] = svc.directory.department_name(dept) if dept else None
    phone = None
    if body.phone:
        try:
            phone = normalize_phone(body.phone)
        except InvalidInput:
            phone = None
    limit = TicketFilter(limit=MAX_SHOWN)
    mine = await _open_orders(svc, actor, dataclasses.replace(limit, phone=phone)) if phone else []
    nearby: list[Ticket] = []
    place = (body.address or "").strip()
    if len(place) >= 4:
        nearby = await _open_orders(svc, actor, dataclasses.replace(limit, q=place[:40]))
    found_region = (
        (out.get("region") or {}).get("code") if isinstance(out.get("region"), dict) else None
    )
    out["phone_orders"] = [_brief(svc, t) for t in mine]
    out["nearby"] = [_brief(svc, t) for t in nearby if t.id not in {m.id for m in mine}]
    out["region_code"] = body.region or found_region
    return web.json_response(out, dumps=_dumps)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, default=str)
