"""A dependency that fails on every call while it is away (Redis, the call centre's state store)
is logged twice per outage: once when it starts, once when it ends, not once per call. The
database has its own, which also measures the outage (tickets/db.py)."""

from __future__ import annotations

import asyncio
import logging


def raise_if_cancelling() -> None:
    """Raise CancelledError if this task was asked to stop. For loops that catch a
    dependency's errors: a cancel that lands while redis-py connects to a Redis that refuses
    can come out of it as a ConnectionError (seen in tests/test_jobs_redis.py), and the loop,
    taking it for an outage, would otherwise run on forever."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class OutageLog:
    """`failed(exc)` after each failing call, `ok()` after each call that worked."""

    def __init__(self, log: logging.Logger, lost: str, back: str) -> None:
        self.log = log
        self.lost = lost  # what stops working, e.g. "Redis 不可用，在线人员暂只显示本进程"
        self.back = back  # e.g. "Redis 已恢复，在线人员恢复共享"
        self.down = False

    def failed(self, exc: BaseException) -> None:
        if not self.down:
            self.down = True
            self.log.warning("%s（%s）", self.lost, exc)

    def ok(self) -> None:
        if self.down:
            self.down = False
            self.log.info("%s", self.back)
