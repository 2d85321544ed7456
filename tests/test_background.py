"""Background work after intake (triage, SMS notices) is durable: it survives an outage of the
database, a failure of its own and a restart, the server listens before any catch-up, and a job
done twice does nothing twice (SQLite and a real PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient

from hotline.app import DATABASE, build_services, make_app
from hotline.bus import InProcessBus
from hotline.config import Settings
from telephony.sms import SmsService
from telephony.tables import sms_outbox
from tests.conftest import make_settings
from tests.pgserver import PostgresServer
from tests.waiting import wait_until
from tickets import outbox, stats_store
from tickets.db import Database
from tickets.model import Caller, Channel, NewTicket
from tickets.tables import clocks, events, tickets, work_queue

ADDRESS = "呼和浩特市新城区某小区"
UNSURE = "（情况待核实）"  # the fake predictor is not sure about these: review queue

Client = TestClient[Any, Any]


@dataclass
class FakePrediction:
    top3: list[tuple[str, float]]
    kind: str = "complaint"


@dataclass
class FakePredictor:
    """Sure (0.95 → dispatched by the system) unless the text says UNSURE (0.4 → review);
    raises for the first `fail_first` calls."""

    fail_first: int = 0
    calls: int = 0

    def predict(self, text: str) -> FakePrediction:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise RuntimeError("classifier hiccup")
        p = 0.4 if UNSURE in text else 0.95
        rest = (1 - p) / 2
        return FakePrediction([("城乡建设", p), ("环境保护", rest), ("交通运输", rest)])


def body(i: int) -> dict[str, str]:
    unsure = UNSURE if i % 3 == 0 else ""
    return {
        "content": f"{ADDRESS}楼道墙皮脱落，物业不维修（第{i}户）{unsure}",
        "phone": f"138{i:08d}",
        "address": ADDRESS,
    }


def settings_for(db_url: str, **env: str) -> Settings:
    # the fake predictor lives in this process: the triage runs in a thread of it
    return make_settings(
        db_url, HOTLINE__TRIAGE__ENABLED="true", HOTLINE__TRIAGE__WORKERS="0", **env
    )


async def start_app(
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    predictor: FakePredictor,
    db: Database | None = None,
) -> tuple[Client, Database]:
    monkeypatch.setattr("hotline.app.load_predictor", lambda _settings: predictor)
    app = make_app(settings, db)
    client: Client = await aiohttp_client(app)
    return client, app[DATABASE]


async def post(client: Client, i: int) -> tuple[int, str | None]:
    resp = await client.post("/api/v1/requests", json=body(i))
    data = await resp.json()
    return resp.status, data.get("number") if resp.status == 201 else None


@dataclass
class Outcome:
    route_state: str
    status: str
    live_clocks: set[str] = field(default_factory=set)
    acks: int = 0
    decisions: int = 0  # dispatch and triage_review events: the triage's own writes


def outcomes(db: Database, numbers: list[str]) -> dict[str, Outcome]:
    def read(conn: sa.Connection) -> dict[str, Outcome]:
        rows = conn.execute(
            sa.select(tickets.c.id, tickets.c.number, tickets.c.route_state, tickets.c.status)
        ).all()
        by_id = {r.id: (r.number, Outcome(r.route_state, r.status)) for r in rows}
        for tid, kind in conn.execute(
            sa.select(clocks.c.ticket_id, clocks.c.clock).where(clocks.c.state != "stopped")
        ):
            by_id[tid][1].live_clocks.add(kind)
        for tid, n in conn.execute(
            sa.select(sms_outbox.c.ticket_id, sa.func.count())
            .where(sms_outbox.c.purpose == "ack")
            .group_by(sms_outbox.c.ticket_id)
        ):
            by_id[tid][1].acks = n
        for tid, n in conn.execute(
            sa.select(events.c.ticket_id, sa.func.count())
            .where(events.c.action.in_(["dispatch", "triage_review"]))
            .group_by(events.c.ticket_id)
        ):
            by_id[tid][1].decisions = n
        return {number: o for number, o in by_id.values() if number in numbers}

    return db.run_read(read)


def done(o: Outcome) -> bool:
    """Triaged (in the review queue, or dispatched with its deadline clocks) and acknowledged."""
    reviewed = o.route_state == "review" and o.status == "new"
    dispatched = o.route_state == "auto" and o.status == "dispatched"
    return (reviewed or (dispatched and {"sign", "reply"} <= o.live_clocks)) and o.acks >= 1


async def all_done(db: Database, numbers: list[str], within: float = 120) -> dict[str, Outcome]:
    async def check() -> dict[str, Outcome] | None:
        got = await asyncio.to_thread(outcomes, db, numbers)
        return got if len(got) == len(numbers) and all(map(done, got.values())) else None

    return await wait_until(check, within=within, interval=0.2)


def assert_once(got: dict[str, Outcome]) -> None:
    assert {n: (o.acks, o.decisions) for n, o in got.items()} == {n: (1, 1) for n in got}


def queue_depth(db: Database) -> int:
    return int(
        db.run_read(
            lambda c: c.execute(sa.select(sa.func.count()).select_from(work_queue)).scalar_one()
        )
    )


# -- item 15: nothing is stranded ---------------------------------------------------------------
async def test_background_postgres_outage_during_intake_strands_no_order(
    aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL stops while the triage and the notices still have work (a burst of intake just
    before), stays down while intake goes on (refused, never acknowledged), then comes back:
    every acknowledged order is triaged, has its clocks and its acknowledgement, once."""
    with PostgresServer() as pg:  # its own server: the session's one is not stopped
        settings = settings_for(pg.create_database("outage"))
        client, db = await start_app(aiohttp_client, monkeypatch, settings, FakePredictor())
        answers = await asyncio.gather(*(post(client, i) for i in range(60)))
        acked = [n for status, n in answers if n]
        assert len(acked) == 60
        await asyncio.to_thread(pg.pause)
        refused = Counter[int]()
        i = 60
        while sum(refused.values()) < 10:  # intake during the outage
            status, number = await post(client, i)
            i += 1
            if number:
                acked.append(number)
            else:
                refused[status] += 1
        await asyncio.to_thread(pg.resume)

        async def accepted_again() -> bool:
            nonlocal i
            _, number = await post(client, i)
            i += 1
            if number:
                acked.append(number)
            return number is not None

        await wait_until(accepted_again, within=60, interval=0.2)
        got = await all_done(db, acked)
        assert_once(got)
        assert {o.route_state for o in got.values()} == {"auto", "review"}


async def test_background_triage_that_raises_is_retried(
    db_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fail_first = 2  # the first batch, and its first retry
    predictor = FakePredictor(fail_first=fail_first)
    client, db = await start_app(aiohttp_client, monkeypatch, settings_for(db_url), predictor)
    acked = [n for _, n in [await post(client, i) for i in range(4)] if n]
    assert_once(await all_done(db, acked))
    assert predictor.calls > fail_first


async def test_background_notice_that_raises_is_retried(
    db_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = SmsService.notify
    calls = Counter[str]()

    async def flaky(self: SmsService, recipient: str, purpose: str, *a: Any, **kw: Any) -> Any:
        calls[purpose] += 1
        if calls[purpose] == 1:
            raise ConnectionError("database went away for a moment")
        return await real(self, recipient, purpose, *a, **kw)

    monkeypatch.setattr(SmsService, "notify", flaky)
    client, db = await start_app(aiohttp_client, monkeypatch, settings_for(db_url), FakePredictor())
    acked = [n for _, n in [await post(client, i) for i in range(3)] if n]
    assert_once(await all_done(db, acked))


async def test_background_jobs_done_twice_do_nothing_twice(
    db_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job can run twice (its lease ran out mid-way, a consumer died after the work but before
    it completed the job): triage and notices are idempotent."""
    client, db = await start_app(aiohttp_client, monkeypatch, settings_for(db_url), FakePredictor())
    acked = [n for _, n in [await post(client, i) for i in range(4)] if n]
    await all_done(db, acked)

    def again(conn: sa.Connection) -> None:
        for ev in conn.execute(sa.select(events).where(events.c.action == "create")):
            payload = {"event_id": ev.id, "action": ev.action}
            for topic in outbox.EVENT_TOPICS:
                outbox.enqueue(conn, topic, ticket_id=ev.ticket_id, payload=payload)

    await db.write(again)

    async def drained() -> bool:
        return await asyncio.to_thread(queue_depth, db) == 0

    await wait_until(drained, within=60)
    assert_once(outcomes(db, acked))


async def test_background_orders_from_before_the_upgrade_are_triaged_and_acknowledged(
    db_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders taken in before the durable queue (the schema before 0300: no job follows an
    order) and never triaged or acknowledged: more of them than the old start-up catch-up took
    (500); after the upgrade every one is triaged and acknowledged, once."""
    from alembic.script import ScriptDirectory

    from hotline.db import MIGRATIONS, open_database, upgrade

    settings = settings_for(db_url)
    db = open_database(settings, migrate=False)
    before = ScriptDirectory(str(MIGRATIONS)).get_revision("0300").down_revision
    assert isinstance(before, str)
    try:
        upgrade(db, before)
        svc = build_services(settings, db, InProcessBus()).tickets
        with monkeypatch.context() as before_upgrade:
            before_upgrade.setattr(outbox, "EVENT_TOPICS", {})
            # nor were there statistics aggregates (their tables come with a later revision)
            before_upgrade.setattr(stats_store, "record_new", lambda *_a, **_k: None)
            made = []
            for first in range(0, 520, 65):  # concurrent submits share group commits
                made += await asyncio.gather(
                    *(
                        svc.submit(
                            NewTicket(
                                Channel.WEB, body(i)["content"], Caller(phone=body(i)["phone"])
                            )
                        )
                        for i in range(first, first + 65)
                    )
                )
        assert queue_depth(db) == 0
        upgrade(db)
        await start_app(aiohttp_client, monkeypatch, settings, FakePredictor(), db)
        assert_once(await all_done(db, [t.number for t in made], within=240))
    finally:
        db.close()


async def test_background_triage_in_a_worker_process_with_the_shipped_model(
    sqlite_url: str, aiohttp_client: Any
) -> None:
    """[triage] workers = 1: the model runs in a worker process that loads it itself."""
    settings = make_settings(
        sqlite_url, HOTLINE__TRIAGE__ENABLED="true", HOTLINE__TRIAGE__WORKERS="1"
    )
    app = make_app(settings)
    client: Client = await aiohttp_client(app)
    acked = [n for _, n in [await post(client, i) for i in range(1, 3)] if n]

    async def triaged() -> dict[str, Outcome] | None:
        got = await asyncio.to_thread(outcomes, app[DATABASE], acked)
        return got if all(o.route_state in ("auto", "review") for o in got.values()) else None

    got = await wait_until(triaged, within=120, interval=0.2)
    assert all(o.decisions == 1 for o in got.values())


# -- item 16: listen first, catch up in the background -------------------------------------------
async def test_background_server_answers_while_the_catch_up_is_pending(
    db_url: str, aiohttp_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Orders of the day whose notices are not made yet (a crash, an upgrade): the server is
    up (healthz 200) while their notices wait; they are all made afterwards."""
    settings = settings_for(db_url)
    from hotline.db import open_database

    db = open_database(settings)
    try:
        svc = build_services(settings, db, InProcessBus()).tickets
        made = [
            await svc.submit(
                NewTicket(Channel.WEB, body(i)["content"], Caller(phone=body(i)["phone"]))
            )
            for i in range(30)
        ]
        gate = asyncio.Event()  # the catch-up cannot finish until the test opens it
        real = SmsService.notify

        async def slow(self: SmsService, *a: Any, **kw: Any) -> Any:
            await gate.wait()
            return await real(self, *a, **kw)

        monkeypatch.setattr(SmsService, "notify", slow)
        async with asyncio.timeout(90):  # a bound for a busy machine; the old start never ended
            client, _ = await start_app(aiohttp_client, monkeypatch, settings, FakePredictor(), db)
        resp = await client.get("/healthz")
        assert resp.status == 200
        numbers = [t.number for t in made]
        assert sum(o.acks for o in outcomes(db, numbers).values()) == 0  # still pending
        gate.set()
        assert_once(await all_done(db, numbers))
    finally:
        db.close()
