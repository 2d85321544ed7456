"""The event bus on Redis pub/sub, for several processes: an order event committed in one web
process reaches the consoles connected to every other one; call events from the call centre
reach all of them. Same port as hotline.bus.InProcessBus (publish / subscribe / unsubscribe).

What travels is live news, not work: durable background work (triage, notices, indexing)
goes through the store's work queue, written in the order's own transaction. So when Redis is
down the bus logs it once, drops news, and keeps reconnecting; consoles that reconnect catch up
from the store (`/api/v1/live?since=`), nothing of substance is lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hotline.bus import fan_out
from telephony.model import CtiEvent
from tickets.model import Role, Status, TicketEvent
from tickets.outage import OutageLog, raise_if_cancelling

log = logging.getLogger(__name__)

RECONNECT_MAX_S = 10.0


def encode(event: Any) -> str:
    if isinstance(event, TicketEvent):
        d = asdict(event)
        d["at"] = event.at.isoformat()
        d["actor_role"] = event.actor_role.value
        d["from_status"] = event.from_status.value if event.from_status else None
        d["to_status"] = event.to_status.value if event.to_status else None
        return json.dumps({"kind": "ticket", "e": d}, ensure_ascii=False, default=str)
    if isinstance(event, CtiEvent):
        d = asdict(event)
        d["at"] = event.at.isoformat()
        return json.dumps({"kind": "cti", "e": d}, ensure_ascii=False, default=str)
    raise TypeError(f"no wire form for {type(event).__name__}")


def decode(raw: str | bytes) -> Any:
    msg = json.loads(raw)
    d = msg["e"]
    d["at"] = datetime.fromisoformat(d["at"])
    if msg["kind"] == "ticket":
        d["actor_role"] = Role(d["actor_role"])
        d["from_status"] = Status(d["from_status"]) if d["from_status"] else None
        d["to_status"] = Status(d["to_status"]) if d["to_status"] else None
        return TicketEvent(**d)
    return CtiEvent(**d)


class RedisBus:
    """Pub/sub fan-out between processes; each process feeds its own local subscribers from one
    Redis subscription (its own publications come back the same way: delivered once)."""

    def __init__(self, url: str, prefix: str = "hotline") -> None:
        self.url = url
        self.prefix = prefix
        self._redis: aioredis.Redis | None = None
        self._subscribers: dict[str, list[asyncio.Queue[Any]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._subscribed: asyncio.Event = asyncio.Event()
        self.outage = OutageLog(
            log, "Redis 事件总线不可用，实时推送暂停，恢复后继续", "Redis 事件总线已恢复"
        )
        self.published = 0
        self.dropped = 0

    def channel(self, topic: str) -> str:
        return f"{self.prefix}:bus:{topic}"

    async def start(self) -> None:
        self._redis = aioredis.from_url(self.url, socket_timeout=5, socket_connect_timeout=5)
        self._listener = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._redis is not None:
            await self._redis.aclose()

    async def wait_ready(self, within_s: float = 30) -> None:
        """Until the subscription is in place (tests; and start-up, so no news is missed)."""
        await asyncio.wait_for(self._subscribed.wait(), within_s)

    async def publish(self, events: Sequence[Any], topic: str = "tickets") -> None:
        if self._redis is None or not events:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for ev in events:
                    pipe.publish(self.channel(topic), encode(ev))
                await pipe.execute()
            self.published += len(events)
            self.outage.ok()
        except (RedisError, OSError) as exc:
            self.dropped += len(events)
            self.outage.failed(exc)

    def subscribe(self, maxsize: int = 1000, topic: str = "tickets") -> asyncio.Queue[Any]:
        q: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._subscribers.setdefault(topic, []).append(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[Any]) -> None:
        for subscribers in self._subscribers.values():
            if q in subscribers:
                subscribers.remove(q)

    def _deliver(self, topic: str, event: Any) -> None:
        fan_out(self._subscribers.get(topic, []), event)

    async def _listen(self) -> None:
        delay = 0.1
        topics = ("tickets", "cti")
        channels = {self.channel(t): t for t in topics}
        while True:
            pubsub = None
            try:
                assert self._redis is not None
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(*channels)
                self._subscribed.set()
                self.outage.ok()
                delay = 0.1
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    if msg is None:
                        continue
                    topic = channels.get(msg["channel"].decode())
                    if topic is None:
                        continue
                    try:
                        event = decode(msg["data"])
                    except (ValueError, KeyError, TypeError):
                        log.warning("unreadable bus message on %s dropped", topic)
                        continue
                    self._deliver(topic, event)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                raise_if_cancelling()
                self._subscribed.clear()
                self.outage.failed(exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
