"""tickets/outage.py: a dependency's outage is logged when it starts and when it ends, however
many calls fail in between; a second outage is logged again."""

from __future__ import annotations

import logging

import pytest

from tickets.outage import OutageLog

log = logging.getLogger("test.outage")


def test_each_outage_is_logged_once_at_its_start_and_once_at_its_end(
    caplog: pytest.LogCaptureFixture,
) -> None:
    o = OutageLog(log, "Redis 不可用，某功能暂停", "Redis 已恢复，某功能恢复")
    with caplog.at_level(logging.INFO, logger="test.outage"):
        o.ok()  # nothing was down: nothing to say
        for n in range(3):
            o.failed(ConnectionError(f"refused {n}"))
        assert o.down
        o.ok()
        o.ok()
        assert not o.down
        o.failed(TimeoutError("timed out"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, "Redis 不可用，某功能暂停（refused 0）"),
        (logging.INFO, "Redis 已恢复，某功能恢复"),
        (logging.WARNING, "Redis 不可用，某功能暂停（timed out）"),
    ]
