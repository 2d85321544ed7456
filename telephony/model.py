"""Telephony data: call records, call-centre KPIs and the CTI events put on the bus."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

OUTCOME_LABELS = {
    "answered": "已接听",
    "abandoned": "排队放弃",
    "voicemail": "留言",
    "ivr": "自助服务结束",
    "rejected": "拒绝",
    "failed": "失败",
    "survey": "回访",
    "callback": "回拨",
}


@dataclass
class CallRecord:
    id: str
    direction: str  # in | out
    purpose: str  # intake | callback | survey
    caller: str
    dialled: str
    worker: int
    offered_at: datetime
    ivr_path: str = ""
    language: str | None = None
    kind: str | None = None
    queued_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    outcome: str | None = None
    agent: str | None = None
    ticket_id: int | None = None
    recording: str | None = None
    recording_purged: bool = False

    @property
    def wait_s(self) -> float | None:
        if self.queued_at is None:
            return None
        end = self.answered_at or self.ended_at
        return (end - self.queued_at).total_seconds() if end else None

    @property
    def talk_s(self) -> float | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.answered_at).total_seconds()


@dataclass(frozen=True)
class CallStats:
    offered: int
    queued: int
    answered: int
    answered_within: int  # answered within the answer target (15 s)
    abandoned: int
    voicemail: int
    average_wait_s: float

    @property
    def answer_rate(self) -> float:
        """15 秒接通率: answered within the target / callers who asked for an agent."""
        return self.answered_within / self.queued if self.queued else 0.0

    @property
    def connection_rate(self) -> float:
        """接通率: answered / callers who asked for an agent."""
        return self.answered / self.queued if self.queued else 0.0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.queued if self.queued else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "answer_rate": round(self.answer_rate, 4),
            "connection_rate": round(self.connection_rate, 4),
            "abandon_rate": round(self.abandon_rate, 4),
        }


@dataclass(frozen=True)
class CtiEvent:
    """Call offered / queued / answered / ended, agent state: what a console reacts to."""

    type: str  # call.offered | call.queued | call.answered | call.ended | agent.state
    at: datetime
    call: str | None = None
    caller: str | None = None
    agent: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
