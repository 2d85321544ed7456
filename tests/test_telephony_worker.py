"""The SIP worker's INVITE rate per source address (telephony/worker.py), on given clock
readings: no SIP, no waiting; and its real-time priority refused."""

from __future__ import annotations

import logging
import os

import pytest

from telephony.worker import InviteRate, use_realtime


def sends(rate: InviteRate, address: str, second: int, n: int) -> list[bool]:
    """n INVITEs from address spread over one second: which of them count as a flood."""
    return [rate.flooding(address, second + i / (n + 1)) for i in range(1, n + 1)]


def test_an_address_over_the_limit_is_refused_and_others_are_not() -> None:
    rate = InviteRate(limit=3)
    assert sends(rate, "10.0.0.1", 1000, 5) == [False, False, False, True, True]
    assert sends(rate, "10.0.0.2", 1000, 3) == [False, False, False]


def test_a_flooding_address_stays_refused_until_it_keeps_under_the_limit_for_a_second() -> None:
    rate = InviteRate(limit=3)
    sends(rate, "10.0.0.1", 1000, 10)
    # still flooding: everything it sends is refused, and counts
    assert sends(rate, "10.0.0.1", 1001, 10) == [True] * 10
    # it slows down: refused for the second before, then let in again
    assert sends(rate, "10.0.0.1", 1002, 1) == [True]
    assert sends(rate, "10.0.0.1", 1003, 3) == [False, False, False]


def test_a_quiet_gap_forgets_the_flood() -> None:
    rate = InviteRate(limit=3)
    sends(rate, "10.0.0.1", 1000, 10)
    assert sends(rate, "10.0.0.1", 1005, 1) == [False]


def test_real_time_priority_refused_is_a_warning_and_the_worker_carries_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Without CAP_SYS_NICE (or LimitRTPRIO=) the worker says what to grant and runs on at
    normal priority. Granted: tests/test_telephony_pool.py runs real workers at it."""

    def refuse(pid: int, policy: int, param: os.sched_param) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    with caplog.at_level(logging.WARNING, logger="telephony.worker"):
        assert use_realtime(10) is False
    assert "LimitRTPRIO=10" in caplog.text
    assert "Operation not permitted" in caplog.text


def test_real_time_priority_zero_leaves_scheduling_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "sched_setscheduler", lambda *a: calls.append(a))
    assert use_realtime(0) is False
    assert calls == []
