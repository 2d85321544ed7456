"""Retention (issue 15): `hotline purge` on both stores, over orders, calls, SMS and the access log
of various ages (built with an injected clock). What is gone: closed orders' callers and texts,
their files, old recordings, SMS bodies and numbers, old access-log rows. What stays: counts by
category, region and department, the events' who/what/when, the call-centre KPIs, and every
order still open or recent, untouched."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from hotline import cli
from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.config import Settings
from hotline.db import current_revision, open_database, upgrade
from hotline.maintenance import purge
from telephony import call_stats_store, sms_store
from telephony import store as call_store
from telephony.model import CallRecord
from telephony.tables import call_hours, calls, sms_inbox, sms_outbox
from tests.conftest import make_settings
from tests.test_attachments import PDF, png
from tickets import stats_store, store
from tickets.db import Database
from tickets.model import (
    CITIZEN,
    Actor,
    Caller,
    Channel,
    Kind,
    NewTicket,
    Role,
    Satisfaction,
    Ticket,
    TicketFilter,
)
from tickets.retention import MARK
from tickets.service import TicketService
from tickets.stats_tables import cube_tables, order_facts
from tickets.tables import access_log, events, examples, tickets, work_queue

NOW = datetime.now(UTC).replace(microsecond=0)
YEAR = timedelta(days=365)
DISPATCHER = Actor(Role.DISPATCHER, 1, "派单员甲")
HOUSING = Actor(Role.DEPARTMENT, 2, "住建局乙", "150100-housing")
URBAN = Actor(Role.DEPARTMENT, 3, "城管局丙", "150100-urban")
CATEGORY = ["城乡建设", "供暖"]


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(
        db_url,
        HOTLINE__ATTACHMENTS__DIR=str(tmp_path / "files"),
        HOTLINE__TELEPHONY__RECORDINGS_DIR=str(tmp_path / "recordings"),
        HOTLINE__RETENTION__PERSONAL_DATA_YEARS="5",
        HOTLINE__RETENTION__ATTACHMENT_YEARS="3",
        HOTLINE__RETENTION__SMS_BODY_DAYS="180",
        HOTLINE__RETENTION__ACCESS_LOG_YEARS="3",
        HOTLINE__TELEPHONY__RECORDING_RETENTION_DAYS="180",
    )


@dataclass
class Clock:
    at: datetime = NOW

    def __call__(self) -> datetime:
        return self.at


@dataclass
class World:
    settings: Settings
    db: Database
    tickets: TicketService
    clock: Clock
    files: Path
    orders: dict[str, Ticket] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def store_file(w: World, data: bytes, name: str) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    path = w.files / sha[:2] / sha
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    w.paths[name] = path
    return {
        "type": "file",
        "sha256": sha,
        "media_type": "application/pdf",
        "size": len(data),
        "name": name,
    }


async def closed_order(
    w: World, key: str, age: timedelta, files: tuple[tuple[bytes, str], ...] = ()
) -> Ticket:
    """An order taken, dispatched, handled, answered, rated and closed `age` ago."""
    t0 = NOW - age
    w.clock.at = t0 - timedelta(days=10)
    svc = w.tickets
    t = await svc.submit(
        NewTicket(
            channel=Channel.WEB,
            content=f"{key}：我是张三，住在新城区某小区3号楼，家里暖气不热，电话13800000001",
            caller=Caller(name="张三", phone="13800000001"),
            kind=Kind.COMPLAINT,
            category=tuple(CATEGORY),
            region="150102",
            address="新城区某小区3号楼2单元",
            title="暖气不热",
        )
    )
    t = await svc.edit(DISPATCHER, t.id, t.version, {"summary": "张三反映3号楼暖气不热"})
    for data, name in files:
        t = await svc.attach(DISPATCHER, t.id, store_file(w, data, name), max_files=9)
    t = await svc.dispatch(DISPATCHER, t.id, t.version, "150100-housing", note="请联系张三")
    t = await svc.supplement(CITIZEN, t.id, t.version, "补充：我的新电话是13900000002")
    w.clock.at = t0 - timedelta(days=5)
    t = await svc.sign(HOUSING, t.id, t.version)
    t = await svc.reply(HOUSING, t.id, t.version, "已联系张三（13800000001），暖气已修复")
    t = await svc.review(DISPATCHER, t.id, t.version, True, None)
    t = await svc.revisit(DISPATCHER, t.id, t.version, Satisfaction.SATISFIED, "张三表示满意")
    w.clock.at = t0
    t = await svc.close(DISPATCHER, t.id, t.version, "归档")
    w.orders[key] = t
    return t


@pytest.fixture
async def world(settings: Settings, database: Database) -> World:
    clock = Clock()
    services = build_services(settings, database, InProcessBus())
    services.tickets.clock = clock
    files = settings.resolve(settings.attachments.dir)
    w = World(settings, database, services.tickets, clock, files)
    shared = png()  # the same bytes on an old order and a live one: one file, kept
    # an order still open after seven years, sharing a photo with an old one
    w.clock.at = NOW - 7 * YEAR
    live = await w.tickets.submit(
        NewTicket(channel=Channel.PHONE, content="七年前的工单", caller=Caller(phone="13600000004"))
    )
    live = await w.tickets.attach(
        DISPATCHER, live.id, store_file(w, shared, "现场2.png"), max_files=9
    )
    live = await w.tickets.dispatch(DISPATCHER, live.id, live.version, "150100-urban")
    await closed_order(w, "old", 6 * YEAR, ((PDF, "身份证.pdf"), (shared, "现场.png")))
    # a duplicate merged into the open order six years ago: finished then
    dup = await w.tickets.submit(
        NewTicket(channel=Channel.SMS, content="重复：暖气不热，李四13700000003", region="150102")
    )
    w.orders["merged"] = await w.tickets.merge(DISPATCHER, dup.id, dup.version, live.number)
    w.orders["open"] = await w.tickets.get(DISPATCHER, live.id)
    await closed_order(w, "middle", 4 * YEAR, ((PDF + b"%middle", "合同.pdf"),))
    await closed_order(w, "recent", 1 * YEAR, ((PDF + b"%recent", "照片.pdf"),))
    # a voicemail 200 days ago (its recording past 180 days) and a call answered last week
    rec_dir = settings.resolve(settings.telephony.recordings_dir)
    rec_dir.mkdir(parents=True)
    for name, age in (("vm", timedelta(days=200)), ("fresh", timedelta(days=7))):
        wav = rec_dir / f"{name}.wav"
        wav.write_bytes(b"RIFF" + name.encode())
        w.paths[name] = wav
        w.clock.at = NOW - age
        order = await w.tickets.submit(
            NewTicket(
                channel=Channel.PHONE,
                content="电话留言",
                caller=Caller(phone="13500000005"),
                attachments=({"type": "recording", "name": "留言.wav", "path": str(wav)},),
            )
        )
        w.orders[name] = order
        rec = CallRecord(
            id=f"call-{name}",
            direction="in",
            purpose="intake",
            caller="13500000005",
            dialled="12345",
            worker=0,
            offered_at=NOW - age,
            queued_at=NOW - age,
            ended_at=NOW - age + timedelta(seconds=90),
            outcome="voicemail",
            ticket_id=order.id,
            recording=str(wav),
        )
        database.run_write(lambda c, r=rec: call_store.insert_call(c, r))
    old_call = CallRecord(
        id="call-old",
        direction="in",
        purpose="intake",
        caller="13800000001",
        dialled="12345",
        worker=0,
        offered_at=NOW - 6 * YEAR,
        queued_at=NOW - 6 * YEAR,
        answered_at=NOW - 6 * YEAR + timedelta(seconds=8),
        ended_at=NOW - 6 * YEAR + timedelta(minutes=3),
        outcome="answered",
        agent="agent1",
    )
    database.run_write(lambda c: call_store.insert_call(c, old_call))
    # SMS: 6 years, 200 days and 2 days old, in and out
    for key, age in (("six", 6 * YEAR), ("d200", timedelta(days=200)), ("d2", timedelta(days=2))):
        inbox = {
            "key": f"gw:{key}",
            "sender": "13800000001",
            "receiver": "12345",
            "text": f"{key} 我家暖气不热",
            "received_at": NOW - age,
            "handled_as": "supplement",
            "ticket_id": None,
        }
        outbox = {
            "recipient": "13800000001",
            "text": f"{key}【12345】您的诉求已受理",
            "purpose": "ack",
            "status": "kept",
            "created_at": NOW - age,
        }
        database.run_write(lambda c, i=inbox: sms_store.insert_inbox(c, i))
        database.run_write(lambda c, o=outbox: sms_store.enqueue(c, o))
    # access log: 4 years old (goes) and 2 years old (stays)
    for age in (4 * YEAR, 2 * YEAR):
        row = {"at": NOW - age, "actor_name": "甲", "actor_role": "agent", "kind": "phone_revealed"}
        database.run_write(lambda c, r=row: c.execute(access_log.insert().values(r)))
    w.clock.at = NOW
    return w


# -- what statistics read ----------------------------------------------------------------------
def recount(db: Database) -> dict[str, Any]:
    """The statistics aggregates recounted from the orders as they are now (what `hotline stats
    rebuild` does), every cube and each order's facts."""

    def tx(c: sa.Connection) -> dict[str, Any]:
        lo, hi = stats_store.id_bounds(c)
        stats_store.clear(c)
        call_stats_store.rebuild_calls(c)
        stats_store.rebuild_range(c, lo, hi + 1, ZoneInfo("Asia/Shanghai"), NOW)
        tables = [*cube_tables.values(), order_facts, call_hours]
        return {
            t.name: sorted(
                tuple(str(v) for k, v in r._mapping.items() if k != "updated_at")
                for r in c.execute(sa.select(t))
            )
            for t in tables
        }

    return db.run_write(tx)


def statistics(db: Database) -> dict[str, Any]:
    def read(c: sa.Connection) -> dict[str, Any]:
        count = store.count_tickets
        return {
            "all": count(c, TicketFilter()),
            "category": count(c, TicketFilter(category="供暖")),
            "region": count(c, TicketFilter(regions=("150102",))),
            "department": count(c, TicketFilter(department="150100-housing")),
            "complaints": count(c, TicketFilter(kind=Kind.COMPLAINT)),
            "created_6y": store.count_created_between(c, NOW - 7 * YEAR, NOW - 5 * YEAR),
            "satisfaction": sorted(
                (r.satisfaction or "", r.n)
                for r in c.execute(
                    sa.select(tickets.c.satisfaction, sa.func.count().label("n")).group_by(
                        tickets.c.satisfaction
                    )
                )
            ),
            "calls": call_store.call_stats(c, NOW - 7 * YEAR, NOW, 15).as_dict(),
            "events": [
                (
                    r.ticket_id,
                    r.at,
                    r.actor_role,
                    r.actor_id,
                    r.actor_name,
                    r.action,
                    r.from_status,
                    r.to_status,
                )
                for r in c.execute(
                    sa.select(events).where(events.c.action != "purge").order_by(events.c.id)
                )
            ],
        }

    return {**db.run_read(read), "aggregates": recount(db)}


def search_jobs(db: Database) -> Counter[int]:
    """The search index's pending jobs per order (nothing consumes them in these tests)."""
    stmt = sa.select(work_queue.c.ticket_id).where(work_queue.c.topic == "search")
    return Counter(db.run_read(lambda c: list(c.execute(stmt).scalars())))


def rows(db: Database, table: sa.Table) -> list[dict[str, Any]]:
    return db.run_read(
        lambda c: [
            dict(r._mapping) for r in c.execute(sa.select(table).order_by(*table.primary_key))
        ]
    )


def ticket_row(db: Database, ticket_id: int) -> dict[str, Any]:
    return db.run_read(
        lambda c: dict(
            c.execute(sa.select(tickets).where(tickets.c.id == ticket_id)).one()._mapping
        )
    )


def everything(db: Database) -> list[Any]:
    return [
        rows(db, t) for t in (tickets, events, calls, sms_inbox, sms_outbox, access_log, examples)
    ]


# -- the test ----------------------------------------------------------------------------------
async def test_purge_removes_exactly_what_is_past_retention_and_keeps_statistics(
    world: World,
) -> None:
    w, db = world, world.db
    before_stats = statistics(db)
    assert len(before_stats["aggregates"]["stats_order_facts"]) == len(w.orders)
    before = everything(db)
    old, merged = w.orders["old"], w.orders["merged"]
    untouched = {k: ticket_row(db, w.orders[k].id) for k in ("recent", "open", "fresh")}
    assert ticket_row(db, merged.id)["status"] == "merged"
    examples_of_old = db.run_read(
        lambda c: c.execute(
            sa.select(sa.func.count()).where(examples.c.ticket_id == old.id)
        ).scalar_one()
    )
    assert examples_of_old == 1  # the manual dispatch taught the classifier

    # a dry run counts and changes nothing
    dry = purge(w.settings, db, now=NOW, dry_run=True)
    assert everything(db) == before
    assert all(p.exists() for p in w.paths.values())

    index_jobs = search_jobs(db)
    report = purge(w.settings, db, now=NOW)
    assert report == dry | {"dry_run": False}  # the dry run counted exactly this
    # the search index is told, in the purge's transaction (its event), to re-read them
    for order in (old, merged):
        assert search_jobs(db)[order.id] == index_jobs[order.id] + 1
    assert report["personal_data"]["events"] >= 8
    expected = {
        "recordings": 1,  # the voicemail of 200 days ago; last week's stays
        # "old" and the duplicate merged six years ago: old's ID card (its photo is shared
        # with the open order), the classifier example from its manual dispatch
        "personal_data": {
            "orders": 2,
            "events": report["personal_data"]["events"],
            "examples": 1,
            "files": 1,
        },
        "order_files": {"orders": 1, "files": 1},  # "middle" (4 years): its contract
        "call_numbers": 1,
        "sms_numbers": 2,  # the six-year-old message in and out
        "sms_bodies": 4,  # 200 days and 6 years, in and out
        "access_log": 1,
    }
    assert {k: v for k, v in report.items() if k in expected} == expected

    # -- gone: the old order's identity and texts, in the row, its tasks and its events
    row = ticket_row(db, old.id)
    assert row["caller_phone"] is None
    assert (row["caller_name"], row["address"], row["content"], row["summary"]) == (MARK,) * 4
    assert (row["title"], row["satisfaction_note"], row["answer"]) == (MARK, MARK, MARK)
    assert row["purged_at"] == NOW and row["files_purged_at"] == NOW
    assert [set(a) for a in row["attachments"]] == [
        {"type", "media_type", "size", "at", "by", "purged_at"}
    ] * 2
    gone = (old.id, merged.id)
    purged_events = [e for e in rows(db, events) if e["ticket_id"] in gone]
    text = json.dumps([purged_events, row], ensure_ascii=False, default=str)
    for secret in ("张三", "李四", "13800000001", "1390000000", "1370000", "3号楼", "身份证"):
        assert secret not in text, secret
    (task,) = db.run_read(lambda c: store.get_ticket(c, old.id)).assignments  # type: ignore[union-attr]
    assert (
        task.reply == MARK and task.department == "150100-housing" and task.state.value == "replied"
    )
    assert not w.paths["身份证.pdf"].exists() and w.paths["现场.png"].exists()  # still used
    assert ticket_row(db, merged.id)["content"] == MARK
    # -- the old order's events: the same who/what/when, their details redacted, plus the purge
    old_events = db.run_read(lambda c: store.list_events(c, old.id))
    assert [e.action for e in old_events][-1] == "purge"
    details = {e.action: e for e in old_events}
    assert (
        details["dispatch"].new["lead"] == "150100-housing" and details["dispatch"].reason == MARK
    )
    assert details["supplement"].new == {"text": MARK}
    assert details["reply"].new == {"assignment_state": "replied", "role": "lead", "reply": MARK}
    assert details["edit"].new == {"summary": MARK} and details["revisit"].new == {
        "satisfaction": "satisfied"
    }
    assert details["create"].new == {"channel": "web", "number": old.number}
    # -- files only: the middle order keeps its caller, loses its contract
    middle = ticket_row(db, w.orders["middle"].id)
    assert middle["caller_phone"] == "13800000001" and middle["purged_at"] is None
    assert middle["files_purged_at"] == NOW and middle["attachments"][0]["purged_at"]
    assert middle["attachments"][0]["name"] == "合同.pdf"
    assert not w.paths["合同.pdf"].exists()
    # -- recordings: the old voicemail's file; its call record and order entry stay, marked
    assert not w.paths["vm"].exists() and w.paths["fresh"].exists()
    vm = db.run_read(lambda c: call_store.get_call(c, "call-vm"))
    assert vm is not None and vm.recording_purged and vm.ticket_id == w.orders["vm"].id
    assert ticket_row(db, w.orders["vm"].id)["attachments"][0]["purged_at"]
    # -- calls, SMS, access log
    assert db.run_read(lambda c: call_store.get_call(c, "call-old")).caller == MARK  # type: ignore[union-attr]
    inbox = {r["key"]: r for r in rows(db, sms_inbox)}
    assert (inbox["gw:six"]["text"], inbox["gw:six"]["sender"]) == (MARK, MARK)
    assert (inbox["gw:d200"]["text"], inbox["gw:d200"]["sender"]) == (MARK, "13800000001")
    assert inbox["gw:d2"]["text"] == "d2 我家暖气不热"
    outbox = sorted((r["created_at"], r["text"], r["recipient"]) for r in rows(db, sms_outbox))
    assert [(t == MARK, r == MARK) for _, t, r in outbox] == [
        (True, True),
        (True, False),
        (False, False),
    ]
    assert [r["at"] for r in rows(db, access_log)] == [NOW - 2 * YEAR]
    assert (
        db.run_read(
            lambda c: c.execute(
                sa.select(sa.func.count()).where(examples.c.ticket_id == old.id)
            ).scalar_one()
        )
        == 0
    )

    # -- stays: every figure the statistics read, and the recent, open and fresh orders as they were
    assert statistics(db) == before_stats
    for key, kept in untouched.items():
        assert ticket_row(db, w.orders[key].id) == kept, key
    assert all(w.paths[k].exists() for k in ("照片.pdf", "fresh", "现场2.png"))

    # -- idempotent: nothing more to do
    again = purge(w.settings, db, now=NOW)
    assert again["recordings"] == again["call_numbers"] == again["sms_bodies"] == 0
    assert again["personal_data"] == {"orders": 0, "events": 0, "examples": 0, "files": 0}
    assert again["order_files"] == {"orders": 0, "files": 0} and again["access_log"] == 0


async def test_purged_events_keep_who_what_when_in_the_database(world: World) -> None:
    """The database itself: an audit event's who/what/when never change; its details only
    once its order is marked purged."""
    purge(world.settings, world.db, now=NOW)
    old, recent = world.orders["old"].id, world.orders["recent"].id
    for ticket_id, values in (
        (old, {"action": "answer"}),
        (old, {"actor_name": "别人"}),
        (recent, {"reason": "改"}),
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            world.db.run_write(
                lambda c, i=ticket_id, v=values: c.execute(
                    events.update().where(events.c.ticket_id == i).values(v)
                )
            )
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        world.db.run_write(lambda c: c.execute(events.delete().where(events.c.ticket_id == old)))


async def test_purge_command_prints_its_report_and_is_idempotent(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    s = world.settings
    for key, value in {
        "HOTLINE__DATABASE__URL": s.database_url,
        "HOTLINE__ATTACHMENTS__DIR": str(s.resolve(s.attachments.dir)),
        "HOTLINE__TELEPHONY__RECORDINGS_DIR": str(s.resolve(s.telephony.recordings_dir)),
    }.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["purge", "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] and dry["personal_data"]["orders"] == 2 and dry["recordings"] == 1
    assert world.paths["vm"].exists()
    assert cli.main(["purge"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert not done["dry_run"] and done["personal_data"]["orders"] == 2
    assert cli.main(["purge"]) == 0
    assert json.loads(capsys.readouterr().out)["personal_data"]["orders"] == 0


def test_orders_from_before_statistics_migrate_past_the_retention_marks(db_url: str) -> None:
    """Migration 0200 reads existing orders to build the statistics; 0600 adds the retention
    marks to the orders later, so 0200 must not ask for them."""
    db = open_database(make_settings(db_url), migrate=False)
    try:
        upgrade(db, "0102")  # the schema before the statistics
        ticket_id = db.run_write(
            lambda c: store.insert_ticket(
                c,
                NewTicket(
                    channel=Channel.WEB, content="旧工单", caller=Caller(phone="13800000009")
                ),
                "20250101000001",
                NOW - YEAR,
            )
        )
        upgrade(db)
        assert current_revision(db) == "0730"
        facts = db.run_read(lambda c: c.execute(sa.select(order_facts.c.ticket_id)).scalars().all())
        assert list(facts) == [ticket_id]
        assert ticket_row(db, ticket_id)["purged_at"] is None
    finally:
        db.close()
