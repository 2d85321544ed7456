"""Leases: one holder at a time for work that several processes could each do (the deadline
watcher). With Redis, a key set only when absent (SET NX PX) and renewed only by its holder (a
compare-and-renew script), so a holder that dies lets go after `ttl_s`. Without Redis there is
one process and the lease is always held.

A lease saves duplicate work; it is not what keeps the work correct. The watcher's steps are
idempotent in the store (each clock's state moves in the transaction of its event, and on
PostgreSQL concurrent watchers skip each other's locked rows), so while Redis is unreachable
the holder keeps watching (failing open, logged once) rather than letting deadlines pass."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

from tickets.outage import OutageLog, raise_if_cancelling

log = logging.getLogger(__name__)

# renew only while the key still names us; 1 when renewed (or taken), 0 when someone else holds it
_RENEW = """
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class LocalLease:
    """One process: always the holder."""

    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class RedisLease:
    def __init__(
        self,
        redis: Any,
        name: str,
        ttl_s: float,
        prefix: str = "hotline",
        *,
        keep_on_error: bool = False,
    ) -> None:
        """`keep_on_error`: while Redis is unreachable the holder keeps the work and others
        keep waiting (the call centre: two active ones would split the queue), instead of
        everyone working (the deadline watcher, whose steps are idempotent)."""
        self.redis = redis
        self.keep_on_error = keep_on_error
        self.key = f"{prefix}:lease:{name}"
        self.ttl_ms = max(1000, int(ttl_s * 1000))
        self.token = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.held = False
        meanwhile = "保持现状" if keep_on_error else "继续执行"
        self.outage = OutageLog(
            log,
            f"Redis 不可用，无法确认租约 {self.key}，本进程{meanwhile}",
            f"Redis 已恢复，租约 {self.key} 恢复",
        )

    async def hold(self) -> bool:
        """Take or renew the lease; True while this process holds it."""
        try:
            got = bool(await self.redis.eval(_RENEW, 1, self.key, self.token, self.ttl_ms))
        except Exception as exc:  # fail open: see the module's docstring
            raise_if_cancelling()
            self.outage.failed(exc)
            return self.held if self.keep_on_error else True
        self.outage.ok()
        if got != self.held:
            log.info("租约 %s %s", self.key, "已取得" if got else "由其他进程持有")
        self.held = got
        return got

    async def release(self) -> None:
        """Let go at a clean stop, so a standby takes over without waiting for the TTL."""
        if not self.held:
            return
        try:
            if await self.redis.get(self.key) == self.token.encode():
                await self.redis.delete(self.key)
        except Exception:  # it expires by itself
            pass
        self.held = False
