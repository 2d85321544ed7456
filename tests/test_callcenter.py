"""The call centre in the main process, driven by a fake SIP worker over the real link protocol,
on SQLite and PostgreSQL: CTI events in order, call records and KPIs, opening hours, voicemail
filing (idempotent, crash-repaired), status look-ups, recording retention."""

from __future__ import annotations

import asyncio
import json
import struct
import wave
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.config import Settings
from telephony.call_stats import CallStatsService
from telephony.center import CallCenter
from telephony.model import CtiEvent
from telephony.protocol import Link, connect
from telephony.voicemail import repair_wav
from tickets.db import Database
from tickets.errors import Conflict
from tickets.model import Caller, Channel, NewTicket

from .conftest import make_settings

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai, a Friday


class Clock:
    def __init__(self) -> None:
        self.wall = NOW
        self.mono = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


@dataclass
class FakeWorker:
    """Plays a SIP worker: sends what a worker sends, records what the centre orders."""

    link: Link
    commands: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    got_command: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None


@dataclass
class Rig:
    center: CallCenter
    worker: FakeWorker
    clock: Clock
    events: asyncio.Queue[CtiEvent]
    settings: Settings
    spool: Path

    async def request(self, op: str, **args: Any) -> dict[str, Any]:
        return await self.worker.link.request(op, **args)

    async def notify(self, op: str, **args: Any) -> None:
        await self.worker.link.notify(op, **args)
        await self.settled()

    async def settled(self) -> None:
        """Until the centre has handled everything this worker sent: a request's reply comes
        after the centre read every earlier line (it reads in order and starts a handler task
        per line); then those handler tasks finish."""
        await self.worker.link.request("position", call="-")
        handlers = self.center.workers[0].link._tasks
        if handlers:
            await asyncio.wait_for(asyncio.gather(*handlers), 10)

    def drain(self) -> list[tuple[str, str | None, dict[str, Any]]]:
        out = []
        while not self.events.empty():
            ev = self.events.get_nowait()
            out.append((ev.type, ev.agent, ev.data))
        return out


async def make_rig(settings: Settings, db: Database, tmp: Path, **tel: Any) -> Rig:
    if tel:
        settings = settings.model_copy(
            update={"telephony": settings.telephony.model_copy(update=tel)}
        )
    bus = InProcessBus()
    services = build_services(settings, db, bus)
    clock = Clock()
    center = CallCenter(
        settings.telephony,
        services.tickets,
        db,
        bus,
        spool=tmp / "spool" / "voicemail",
        recordings=tmp / "recordings",
        now=clock.now,
        monotonic=clock.monotonic,
    )
    events = bus.subscribe(topic="cti")
    await center.start()
    fake: FakeWorker | None = None

    async def handler(op: str, args: dict[str, Any]) -> dict[str, Any]:
        assert fake is not None
        fake.commands.append((op, args))
        fake.got_command.set()
        return {}

    link = await connect("127.0.0.1", center.port, center.token, {"worker": 0, "pid": 1}, handler)
    fake = FakeWorker(link)
    fake.reader = asyncio.create_task(link.run())
    await asyncio.wait_for(center.worker_joined.wait(), 5)
    return Rig(center, fake, clock, events, settings, tmp / "spool")


@pytest.fixture
async def rig(db_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    from hotline.db import open_database

    settings = make_settings(db_url, HOTLINE__TELEPHONY__WRAPUP_S="10")
    db = open_database(settings)
    r = await make_rig(settings, db, tmp_path)
    try:
        yield r
    finally:
        await r.worker.link.close()
        await r.center.stop()
        db.close()


async def test_call_answered_by_agent_emits_cti_events_in_order_and_records_it(rig: Rig) -> None:
    c = rig.center
    await c.agent_login("agent1", "sip:agent1@127.0.0.1:5090")
    await c.agent_state("agent1", "available")
    rig.drain()
    await rig.notify("offered", call="c1", caller="13800000001", dialled="12345", worker=0)
    await rig.notify("language", call="c1", language="mn")
    rig.clock.advance(2)
    queued = await rig.request("enqueue", call="c1", kind="complaint")
    assert queued == {"queued": True, "position": 1}
    await asyncio.wait_for(rig.worker.got_command.wait(), 5)
    op, args = rig.worker.commands[0]
    assert (op, args["agent"], args["uri"]) == ("connect", "agent1", "sip:agent1@127.0.0.1:5090")
    # the worker's room rings the agent's phone and says so
    await rig.notify("ringing", call="c1", agent="agent1", path="lang:mn>menu:2>queue")
    rig.clock.advance(4)
    await rig.notify("answered", call="c1", agent="agent1", recording="/r/c1.wav")
    rig.clock.advance(60)
    await rig.notify("ended", call="c1", path="lang:mn>menu:2>queue>agent:agent1")
    events = [
        (t, a, d.get("state") or d.get("outcome") or d.get("kind")) for t, a, d in rig.drain()
    ]
    assert events == [
        ("call.offered", None, None),
        ("call.queued", None, "complaint"),
        ("agent.state", "agent1", "ringing"),
        ("call.ringing", "agent1", "complaint"),  # the screen pop for the console
        ("call.answered", "agent1", None),
        ("agent.state", "agent1", "talking"),
        ("agent.state", "agent1", "wrapup"),
        ("call.state", "agent1", None),  # the agent's console: this call is over for you
        ("call.ended", None, "answered"),
    ]
    (rec,) = await c.list_calls(caller="13800000001")
    assert (rec.outcome, rec.agent, rec.language, rec.kind) == (
        "answered",
        "agent1",
        "mn",
        "complaint",
    )
    assert (rec.wait_s, rec.talk_s) == (4.0, 60.0)
    assert rec.recording == "/r/c1.wav"
    stats = await CallStatsService(c.db).totals(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
    assert (stats.offered, stats.queued, stats.answered, stats.answered_within) == (1, 1, 1, 1)
    assert stats.answer_rate == 1.0
    rig.clock.advance(10)
    await c._tick()
    assert c.acd.agents["agent1"].state.value == "available"  # wrap-up over


async def test_hang_up_in_queue_is_abandoned_and_counts_in_the_kpis(rig: Rig) -> None:
    await rig.notify("offered", call="c2", caller="13800000002", dialled="12345", worker=0)
    await rig.request("enqueue", call="c2", kind="consult")
    rig.clock.advance(20)
    await rig.notify("ended", call="c2", path="lang:cmn>menu:1>queue")
    (rec,) = await rig.center.list_calls(caller="13800000002")
    assert rec.outcome == "abandoned"
    assert rec.wait_s == 20.0
    stats = await CallStatsService(rig.center.db).totals(
        NOW - timedelta(hours=1), NOW + timedelta(hours=1)
    )
    assert (stats.queued, stats.abandoned, stats.answered) == (1, 1, 0)
    assert stats.abandon_rate == 1.0


async def test_queue_timeout_orders_the_worker_to_take_a_voicemail(rig: Rig) -> None:
    await rig.notify("offered", call="c3", caller="13800000003", dialled="12345", worker=0)
    await rig.request("enqueue", call="c3", kind="consult")
    rig.clock.advance(rig.settings.telephony.queue_timeout_s)
    await rig.center._tick()
    await asyncio.wait_for(rig.worker.got_command.wait(), 10)  # sent by a task of the tick
    assert ("voicemail", {"call": "c3"}) in rig.worker.commands
    assert rig.center.acd.position("c3") is None


async def test_closed_hours_send_callers_to_voicemail(db_url: str, tmp_path: Path) -> None:
    from hotline.db import open_database

    settings = make_settings(db_url)
    db = open_database(settings)
    # 10:00 local: outside 18:00–22:00
    r = await make_rig(settings, db, tmp_path, open_from="18:00", open_until="22:00")
    try:
        await r.notify("offered", call="c4", caller="13800000004", dialled="12345", worker=0)
        assert await r.request("enqueue", call="c4", kind="consult") == {
            "queued": False,
            "reason": "closed",
        }
        assert r.center.is_open(NOW.replace(hour=11))  # 19:00 local
        assert not r.center.is_open(NOW.replace(hour=14))  # 22:00 local
    finally:
        await r.worker.link.close()
        await r.center.stop()
        db.close()


def write_spooled_voicemail(spool: Path, call: str, seconds: float, *, crashed: bool) -> None:
    """A voicemail as a worker leaves it; `crashed`: the WAV header was never finalised."""
    folder = spool / "voicemail"
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / f"{call}.wav"
    frames = int(8000 * seconds)
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(struct.pack(f"<{frames}h", *([3000, -3000] * (frames // 2))))
    if crashed:
        raw = bytearray(wav.read_bytes())
        raw[4:8] = struct.pack("<I", 0)
        raw[40:44] = struct.pack("<I", 0)
        wav.write_bytes(bytes(raw))
    meta = {
        "call": call,
        "caller": "13800000005",
        "kind": "complaint",
        "language": "cmn",
        "worker": 0,
        "pid": 1,
        "started": NOW.timestamp(),
        "wav": wav.name,
    }
    (folder / f"{call}.json").write_text(json.dumps(meta))


async def test_voicemail_becomes_one_order_even_when_filed_twice(rig: Rig) -> None:
    await rig.notify("offered", call="c5", caller="13800000005", dialled="12345", worker=0)
    write_spooled_voicemail(rig.spool, "c5", 3.0, crashed=False)
    first = await rig.request("voicemail", call="c5")
    # the worker asks again (its reply was lost): the spool is empty, the order stays one
    write_spooled_voicemail(rig.spool, "c5", 3.0, crashed=False)
    second = await rig.request("voicemail", call="c5")
    assert first["number"] == second["number"]
    tickets = await rig.center.tickets.track(first["number"], "13800000005")
    assert tickets.channel is Channel.PHONE
    assert tickets.attachments[0]["seconds"] == 3.0
    assert not list((rig.spool / "voicemail").iterdir())


async def test_voicemail_left_by_a_crashed_worker_is_repaired_and_filed(rig: Rig) -> None:
    write_spooled_voicemail(rig.spool, "c6", 2.5, crashed=True)
    ((call, ticket),) = await rig.center.voicemail.recover(live=set())
    assert call == "c6"
    assert ticket.caller.phone == "13800000005"
    assert ticket.attachments[0]["seconds"] == 2.5
    with wave.open(ticket.attachments[0]["path"], "rb") as w:
        assert w.getnframes() == 20000


def test_repair_wav_refuses_a_file_that_is_not_wav(tmp_path: Path) -> None:
    bad = tmp_path / "x.wav"
    bad.write_bytes(b"not a wave file at all" * 10)
    with pytest.raises(ValueError, match="不是 WAV"):
        repair_wav(bad)


async def test_status_is_told_only_to_the_phone_that_submitted_the_order(rig: Rig) -> None:
    t = await rig.center.tickets.submit(
        NewTicket(channel=Channel.WEB, content="噪音扰民", caller=Caller(phone="13800000007"))
    )
    own = await rig.request("status", call="x", number=t.number, caller="13800000007")
    other = await rig.request("status", call="x", number=t.number, caller="13800000008")
    junk = await rig.request("status", call="x", number="12ab", caller="13800000007")
    assert (own, other, junk) == ({"status": "new"}, {"status": None}, {"status": None})


async def test_recordings_past_retention_are_deleted_and_marked(rig: Rig, tmp_path: Path) -> None:
    old = tmp_path / "old.wav"
    old.write_bytes(b"RIFF")
    await rig.notify("offered", call="c8", caller="13800000009", dialled="12345", worker=0)
    await rig.notify("answered", call="c8", agent="a", recording=str(old))
    await rig.notify("ended", call="c8", path="")
    assert await rig.center.purge_recordings() == 0  # still within retention
    rig.clock.advance(86400 * (rig.settings.telephony.recording_retention_days + 1))
    assert await rig.center.purge_recordings() == 1
    assert not old.exists()
    (rec,) = await rig.center.list_calls(caller="13800000009")
    assert rec.recording_purged


async def test_a_worker_with_the_wrong_token_is_refused(rig: Rig) -> None:
    async def handler(op: str, args: dict[str, Any]) -> None:
        return None

    link = await connect("127.0.0.1", rig.center.port, "wrong", {"worker": 9}, handler)
    await asyncio.wait_for(link.run(), 5)  # the centre closes it
    assert 9 not in rig.center.workers


async def test_outbound_calls_need_a_trunk_and_an_order_phone(rig: Rig) -> None:
    t = await rig.center.tickets.submit(NewTicket(channel=Channel.PHONE, content="无号码"))
    with pytest.raises(Conflict, match="外呼线路"):
        await rig.center.originate("agent1", t, "survey")
