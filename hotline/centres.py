"""Wiring of standby call centres (telephony/standby.py): the Redis lease and state store of a
`--role sip` process when `[telephony] centres` is set, and `hotline telephony workers`, the
supervisor of SIP workers that outlive any one call centre."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from hotline.config import Settings
from hotline.lease import RedisLease
from telephony.centre_state import RedisCentreStore
from telephony.pool import PoolPaths, WorkerPool
from telephony.standby import StandbySetup

log = logging.getLogger(__name__)

LEASE_NAME = "call-centre"


def standby_setup(settings: Settings, redis: Any) -> StandbySetup | None:
    """None without `[telephony] centres` (one call centre with its own workers)."""
    tel = settings.telephony
    if not tel.centres:
        return None
    if redis is None:
        raise ValueError("telephony.centres（备用呼叫中心）需要 [redis] url")
    prefix = settings.redis.prefix
    lease = RedisLease(redis, LEASE_NAME, tel.centre_lease_s, prefix, keep_on_error=True)
    return StandbySetup(
        lease=lease,
        store=RedisCentreStore(redis, lease.key, prefix),
        holder=lease.token,
        host=tel.link_host,
        port=tel.link_port,
        token=tel.link_token,
        lease_s=tel.centre_lease_s,
    )


async def run_workers(settings: Settings) -> int:
    """The SIP workers of standby call centres, until SIGTERM: each links to the active centre
    of `[telephony] centres` and keeps its calls when that centre dies."""
    from hotline.app import ensure_prompts

    tel = settings.telephony
    if not tel.centres:
        log.error("telephony.centres 为空：SIP 工作进程由 hotline serve --role sip 自己启动")
        return 2
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, ensure_prompts, settings)
    pool = WorkerPool(
        tel,
        list(tel.centres),
        tel.link_token,
        PoolPaths(
            prompts=settings.resolve(tel.prompts_dir),
            spool=settings.resolve(tel.spool_dir),
            recordings=settings.resolve(tel.recordings_dir),
        ),
        log_level=settings.log.level,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await pool.start()
    log.info("%d SIP workers linking to %s", tel.workers, ", ".join(tel.centres))
    await stop.wait()
    await pool.stop()
    return 0
