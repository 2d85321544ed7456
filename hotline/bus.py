"""The event bus port and its in-process implementation (Redis comes with a later change).

Topics: "tickets" carries TicketEvents after commit; "cti" carries telephony CtiEvents."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

log = logging.getLogger(__name__)


class EventBus(Protocol):
    async def publish(self, events: Sequence[Any], topic: str = "tickets") -> None: ...
    def subscribe(self, maxsize: int = 1000, topic: str = "tickets") -> asyncio.Queue[Any]: ...
    def unsubscribe(self, q: asyncio.Queue[Any]) -> None: ...


def fan_out(subscribers: list[asyncio.Queue[Any]], event: Any) -> None:
    """Put `event` on every queue; a full queue loses its oldest event, never blocks."""
    for q in subscribers:
        if q.full():
            q.get_nowait()
            log.warning("event subscriber lagging; dropped its oldest event")
        q.put_nowait(event)


class InProcessBus:
    """Fan-out to asyncio queues; a slow subscriber loses its oldest events, never blocks."""

    def __init__(self) -> None:
        self._subscribers: dict[str, list[asyncio.Queue[Any]]] = {}
        self.published = 0

    async def publish(self, events: Sequence[Any], topic: str = "tickets") -> None:
        subscribers = self._subscribers.get(topic, [])
        for ev in events:
            self.published += 1
            fan_out(subscribers, ev)

    def subscribe(self, maxsize: int = 1000, topic: str = "tickets") -> asyncio.Queue[Any]:
        q: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._subscribers.setdefault(topic, []).append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Any]) -> None:
        for subscribers in self._subscribers.values():
            if q in subscribers:
                subscribers.remove(q)
