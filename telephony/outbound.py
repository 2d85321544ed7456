"""Outbound calls the centre places through a SIP worker: an agent's call-back to the phone of a
work order, and the 回访 survey call; the number always comes from the order."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from telephony import store
from telephony.live import LiveCall, WorkerLink
from telephony.model import CallRecord
from telephony.protocol import LinkError
from tickets.access import normalize_phone
from tickets.errors import Conflict, InvalidInput
from tickets.model import Status, Ticket

if TYPE_CHECKING:
    from telephony.center import CallCenter

log = logging.getLogger(__name__)


async def originate(center: CallCenter, username: str, ticket: Ticket, purpose: str) -> str:
    """A call-back or a 回访 survey call to the phone of this work order, and only that."""
    s = center.settings
    if not s.trunk:
        raise Conflict("未配置外呼线路 (telephony.trunk)，不能外呼")
    if not ticket.caller.phone:
        raise Conflict("该工单没有来电号码，不能外呼")
    number = normalize_phone(ticket.caller.phone)
    citizen_uri = s.trunk.format(number=number)
    if purpose == "survey":
        if ticket.status not in (Status.ANSWERED, Status.REVIEWED):
            raise Conflict("工单答复并审核后才能电话回访")
        args: dict[str, Any] = {"purpose": "survey", "uri": citizen_uri, "ticket": ticket.id}
    elif purpose == "callback":
        if username not in center.acd.agents:
            raise Conflict("请先签入坐席（登记话机），再回拨")
        # reserved before the request: no queue caller may be put through meanwhile
        agent = center._acd(lambda: center.acd.reserve(username, "", center.monotonic()))
        args = {
            "purpose": "callback",
            "uri": agent.uri,
            "citizen_uri": citizen_uri,
            "agent": agent.username,
        }
    else:
        raise InvalidInput("purpose 只能是 callback 或 survey", field="purpose")
    wl = least_busy(center)
    if wl is None:
        if purpose == "callback":
            center.acd.ended("", username, center.monotonic())
        raise Conflict("没有可用的 SIP 工作进程，请稍后再试")
    # the record exists before the worker is asked: its first events (even a failure at
    # once) find the call
    call = uuid.uuid4().hex
    if purpose == "callback":
        center.acd.agents[username].call = call
    rec = CallRecord(
        id=call,
        direction="out",
        purpose=purpose,
        caller=s.caller_id,
        dialled=number,
        worker=wl.index,
        offered_at=center.now(),
        ticket_id=ticket.id,
        agent=args.get("agent"),
    )
    live = center.calls[call] = LiveCall(rec, wl.link, center.monotonic(), agent=args.get("agent"))
    wl.calls.add(call)
    try:
        await center.db.write(lambda c: store.insert_call(c, rec))
    finally:
        live.stored.set()
    try:
        await wl.link.request("originate", call=call, **args)
    except LinkError as exc:
        log.warning("originate failed: %s", exc)
        await center._end(call, "")  # recorded as failed; a reserved agent is freed
        raise Conflict("外呼失败，请稍后再试") from None
    await center._cti("call.offered", call, caller=number, purpose=purpose)
    return call


def least_busy(center: CallCenter) -> WorkerLink | None:
    ready = [w for w in center.workers.values() if not w.link.closed.is_set()]
    return min(ready, key=lambda w: len(w.calls), default=None)
