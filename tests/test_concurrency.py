"""Optimistic concurrency: simultaneous changes to one order at one version, one winner."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa

from hotline.app import build_services, load_routing
from hotline.bus import InProcessBus
from hotline.config import Settings
from tickets.db import Database
from tickets.errors import VersionConflict
from tickets.model import Actor, Caller, Channel, NewTicket, Role, Ticket, TicketEvent
from tickets.service import TicketService
from tickets.tables import events as events_table

HOUSING = "150100-housing"
URBAN = "150100-urban"
PHONE = "13812345678"


async def post(client: Any, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """POST through a test client, returning the status instead of asserting it."""
    async with client.session.post(
        client.base + "/api/v1" + path, json=body, headers=client._headers()
    ) as resp:
        return resp.status, await resp.json()


async def act(client: Any, t: dict[str, Any], action: str, **body: Any) -> tuple[int, Any]:
    return await post(client, f"/tickets/{t['id']}/{action}", {"version": t["version"], **body})


def one_winner(results: Sequence[tuple[int, Any]]) -> int:
    """Index of the single 200; every other result is 409 version_conflict."""
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [409] * (len(results) - 1), results
    for status, body in results:
        if status == 409:
            assert body["error"]["code"] == "version_conflict"
    return next(i for i, (status, _) in enumerate(results) if status == 200)


# -- through the app, on both backends ----------------------------------------------------------
async def test_two_dispatchers_dispatching_at_once(api: Any) -> None:
    agent, dispatcher, supervisor = (
        await api("agent"),
        await api("dispatcher"),
        await api("supervisor"),
    )
    t = await agent.post("/tickets", {"content": "路灯不亮", "phone": PHONE}, 201)
    results = await asyncio.gather(
        act(dispatcher, t, "dispatch", lead=HOUSING),
        act(supervisor, t, "dispatch", lead=URBAN),
    )
    winner = one_winner(results)
    won_lead, won_by = [(HOUSING, "测试-dispatcher"), (URBAN, "测试-supervisor")][winner]

    t = await agent.get(f"/tickets/{t['id']}")
    assert (t["status"], t["version"]) == ("dispatched", 2)
    assert [(a["department"], a["state"]) for a in t["assignments"]] == [(won_lead, "pending")]
    evs = (await agent.get(f"/tickets/{t['id']}/events"))["items"]
    assert [(e["action"], e["actor"]["name"]) for e in evs] == [
        ("create", "测试-agent"),
        ("dispatch", won_by),
    ]
    assert evs[1]["new"] == {"lead": won_lead, "assists": []}


async def test_department_signs_while_dispatcher_redispatches(api: Any) -> None:
    agent, dispatcher, housing = await api("agent"), await api("dispatcher"), await api("housing")
    t = await agent.post("/tickets", {"content": "路灯不亮", "phone": PHONE}, 201)
    t = await dispatcher.act(t, "dispatch", lead=HOUSING)
    results = await asyncio.gather(
        act(housing, t, "sign"),
        act(dispatcher, t, "dispatch", lead=URBAN),
    )
    winner = one_winner(results)

    t = await agent.get(f"/tickets/{t['id']}")
    evs = (await agent.get(f"/tickets/{t['id']}/events"))["items"]
    trail = [(e["action"], e["from_status"], e["to_status"]) for e in evs]
    assert t["version"] == 3
    if winner == 0:  # signed: the re-dispatch never happened
        assert t["status"] == "accepted"
        assert [(a["department"], a["state"]) for a in t["assignments"]] == [(HOUSING, "accepted")]
        assert trail[2:] == [("sign", "dispatched", "accepted")]
    else:  # re-dispatched: the sign never happened
        assert t["status"] == "dispatched"
        assert [(a["department"], a["state"]) for a in t["assignments"]] == [
            (HOUSING, "cancelled"),
            (URBAN, "pending"),
        ]
        assert trail[2:] == [("dispatch", "dispatched", "dispatched")]
    assert len(evs) == 3


async def test_lead_replies_while_dispatcher_supervises(api: Any) -> None:
    """Different actions, different roles, same version: still exactly one wins."""
    agent, dispatcher, housing, supervisor = (
        await api("agent"),
        await api("dispatcher"),
        await api("housing"),
        await api("supervisor"),
    )
    t = await agent.post("/tickets", {"content": "路灯不亮", "phone": PHONE}, 201)
    t = await dispatcher.act(t, "dispatch", lead=HOUSING)
    t = await housing.act(t, "sign")
    results = await asyncio.gather(
        act(housing, t, "reply", text="已修复"),
        act(supervisor, t, "supervise"),
        act(dispatcher, t, "urge"),
    )
    winner = one_winner(results)
    evs = (await agent.get(f"/tickets/{t['id']}/events"))["items"]
    assert [e["action"] for e in evs[3:]] == [["reply", "supervise", "urge"][winner]]


# -- at the service level, many at once ---------------------------------------------------------
class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[TicketEvent] = []

    async def publish(self, events: Sequence[TicketEvent]) -> None:
        self.published.extend(events)


@pytest.fixture
def service(settings: Settings, database: Database) -> TicketService:
    """The app's ticket service, publishing into a list."""
    app = build_services(settings, database, InProcessBus()).tickets
    return TicketService(
        database,
        app.directory,
        app.deadlines,
        RecordingPublisher(),
        timezone=settings.locale.timezone,
    )


def publisher(service: TicketService) -> RecordingPublisher:
    assert isinstance(service.publisher, RecordingPublisher)
    return service.publisher


def count_events(db: Database, ticket_id: int, action: str) -> int:
    stmt = (
        sa.select(sa.func.count())
        .select_from(events_table)
        .where(events_table.c.ticket_id == ticket_id, events_table.c.action == action)
    )
    return int(db.run_read(lambda c: c.execute(stmt).scalar_one()))


def split(results: Sequence[Ticket | BaseException]) -> tuple[list[Ticket], list[BaseException]]:
    won = [r for r in results if isinstance(r, Ticket)]
    lost = [r for r in results if not isinstance(r, Ticket)]
    return won, lost


async def test_service_twenty_concurrent_dispatches_one_winner(
    service: TicketService, database: Database, settings: Settings
) -> None:
    t = await service.submit(NewTicket(Channel.PHONE, "噪音扰民", Caller(phone=PHONE)))
    departments = sorted(load_routing(settings).departments)[:20]
    actors = [Actor(Role.DISPATCHER, i, f"派单员{i}") for i in range(20)]
    results = await asyncio.gather(
        *(
            service.dispatch(actor, t.id, t.version, lead=dept)
            for actor, dept in zip(actors, departments, strict=True)
        ),
        return_exceptions=True,
    )
    won, lost = split(results)
    assert len(won) == 1
    assert len(lost) == 19
    assert all(isinstance(e, VersionConflict) for e in lost), lost
    winner = won[0]
    assert winner.version == 2
    assert [(a.department, a.state.value) for a in winner.assignments] == [
        (winner.assignments[0].department, "pending")
    ]
    fresh = await service.get(actors[0], t.id, with_clocks=True)
    assert fresh == winner
    assert count_events(database, t.id, "dispatch") == 1
    dispatches = [e for e in publisher(service).published if e.action == "dispatch"]
    assert len(dispatches) == 1
    assert dispatches[0].new == {"lead": winner.assignments[0].department, "assists": []}


async def test_service_twenty_concurrent_signs_by_the_same_unit_one_winner(
    service: TicketService, database: Database
) -> None:
    desk = Actor(Role.DISPATCHER, 1, "派单员")
    unit = Actor(Role.DEPARTMENT, 2, "住建局", HOUSING)
    t = await service.submit(NewTicket(Channel.PHONE, "噪音扰民", Caller(phone=PHONE)))
    t = await service.dispatch(desk, t.id, t.version, lead=HOUSING)
    results = await asyncio.gather(
        *(service.sign(unit, t.id, t.version) for _ in range(20)), return_exceptions=True
    )
    won, lost = split(results)
    assert (len(won), len(lost)) == (1, 19)
    assert all(isinstance(e, VersionConflict) for e in lost), lost
    assert won[0].status.value == "accepted"
    assert [a.state.value for a in won[0].assignments] == ["accepted"]
    assert count_events(database, t.id, "sign") == 1


async def test_service_rounds_of_concurrent_urges_one_winner_each(
    service: TicketService, database: Database
) -> None:
    desk = [Actor(Role.DISPATCHER, i, f"派单员{i}") for i in range(20)]
    t = await service.submit(NewTicket(Channel.PHONE, "噪音扰民", Caller(phone=PHONE)))
    t = await service.dispatch(desk[0], t.id, t.version, lead=HOUSING)
    for round_ in range(1, 6):
        results = await asyncio.gather(
            *(service.urge(a, t.id, t.version) for a in desk), return_exceptions=True
        )
        won, lost = split(results)
        assert (len(won), len(lost)) == (1, 19)
        assert all(isinstance(e, VersionConflict) for e in lost), lost
        t = won[0]
        assert (t.urge_count, t.version) == (round_, 2 + round_)
    assert count_events(database, t.id, "urge") == 5
    assert [e.new for e in publisher(service).published if e.action == "urge"] == [
        {"urge_count": n} for n in range(1, 6)
    ]


# -- numbering under load -----------------------------------------------------------------------
async def test_two_hundred_concurrent_submissions_get_consecutive_numbers(
    api: Any, database: Database
) -> None:
    citizen = await api()
    results = await asyncio.gather(
        *(post(citizen, "/requests", {"content": f"诉求 {i}", "phone": PHONE}) for i in range(200))
    )
    assert [status for status, _ in results] == [201] * 200
    numbers = sorted(body["number"] for _, body in results)
    assert len(set(numbers)) == 200
    assert len({n[:8] for n in numbers}) == 1
    assert [int(n[8:]) for n in numbers] == list(range(1, 201))
    assert count_events_all(database, "create") == 200


def count_events_all(db: Database, action: str) -> int:
    stmt = (
        sa.select(sa.func.count()).select_from(events_table).where(events_table.c.action == action)
    )
    return int(db.run_read(lambda c: c.execute(stmt).scalar_one()))
