"""The deadline watcher: a background task that fires due clocks (warn, overdue → 督办)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from tickets.errors import DatabaseUnavailable
from tickets.service import TicketService

log = logging.getLogger(__name__)


class DeadlineWatcher:
    """Asks the store for clocks whose next look is due; nothing is scanned, so a pass costs
    the same with ten or a million open orders. State lives in the database: a restart picks
    up where it stopped, and with PostgreSQL several processes may watch at once."""

    def __init__(self, tickets: TicketService, interval_s: float = 30, batch: int = 500) -> None:
        self.tickets = tickets
        self.interval_s = interval_s
        self.batch = batch

    async def run_once(self) -> int:
        """Fire everything due now; returns how many clocks were handled."""
        total = 0
        while True:
            n = await self.tickets.fire_due_clocks(self.batch)
            total += n
            if n < self.batch:
                return total

    async def run(self, lease: Any = None) -> None:
        """Watch until cancelled. With a `lease` (hotline/lease.py), a pass runs only while this
        process holds it: one watcher works at a time, the others stand by."""
        while True:
            try:
                if lease is not None and not await lease.hold():
                    await asyncio.sleep(self.interval_s)
                    continue
                n = await self.run_once()
                if n:
                    log.info("deadline watcher: %d clocks fired", n)
            except DatabaseUnavailable:  # logged once per outage by the database
                pass
            except Exception:  # the next pass retries; a bad moment must not stop watching
                log.exception("deadline watcher pass failed")
            await asyncio.sleep(self.interval_s)
