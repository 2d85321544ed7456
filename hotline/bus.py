"""The event bus port and its in-process implementation (Redis comes with a later change)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Protocol

from tickets.model import TicketEvent

log = logging.getLogger(__name__)


class EventBus(Protocol):
    async def publish(self, events: Sequence[TicketEvent]) -> None: ...
    def subscribe(self, maxsize: int = 1000) -> asyncio.Queue[TicketEvent]: ...
    def unsubscribe(self, q: asyncio.Queue[TicketEvent]) -> None: ...


class InProcessBus:
    """Fan-out to asyncio queues; a slow subscriber loses its oldest events, never blocks."""

    def __init__(self) -> None:
        self._subscribers: list[asyncio.Queue[TicketEvent]] = []
        self.published = 0

    async def publish(self, events: Sequence[TicketEvent]) -> None:
        for ev in events:
            self.published += 1
            for q in self._subscribers:
                if q.full():
                    q.get_nowait()
                    log.warning("event subscriber lagging; dropped its oldest event")
                q.put_nowait(ev)

    def subscribe(self, maxsize: int = 1000) -> asyncio.Queue[TicketEvent]:
        q: asyncio.Queue[TicketEvent] = asyncio.Queue(maxsize)
        self._subscribers.append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[TicketEvent]) -> None:
        if q in self._subscribers:
            self._subscribers.remove(q)
