"""Triage: confident predictions are dispatched by the system, the rest wait for review with the
suggestion; people's decisions are kept as labelled examples (on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from hotline.app import build_services, load_triage_parts
from hotline.bus import InProcessBus
from hotline.config import Settings
from routing.triage import Triage, TriageSettings, run_triage
from tests.waiting import wait_until
from tickets.db import Database
from tickets.model import Actor, Caller, Channel, Kind, NewTicket, Role, Status, TicketFilter
from tickets.outbox import TRIAGE, WorkQueue
from tickets.service import TicketService
from tickets.store import list_events

DISPATCHER = Actor(Role.DISPATCHER, 1, "派单员")


@dataclass
class FakePrediction:
    top3: list[tuple[str, float]]
    kind: str | None = None


@dataclass
class FakePredictor:
    """Answers with a fixed category and probability; records what it was asked."""

    label: str = "城乡建设"
    probability: float = 0.95
    seen: list[str] = field(default_factory=list)

    def predict(self, text: str) -> FakePrediction:
        self.seen.append(text)
        rest = (1 - self.probability) / 2
        return FakePrediction(
            [(self.label, self.probability), ("环境保护", rest), ("交通运输", rest)], "complaint"
        )


class KnowsEverything:
    def can_answer(self, text: str) -> bool:
        return True


@pytest.fixture
def tickets(settings: Settings, database: Database) -> TicketService:
    return build_services(settings, database, InProcessBus()).tickets


def make_triage(
    settings: Settings,
    tickets: TicketService,
    predictor: FakePredictor | None,
    threshold: float = 0.85,
    answers: Any = None,
) -> Triage:
    gazetteer, rules = load_triage_parts(settings, tickets.directory)  # type: ignore[arg-type]
    return Triage(
        tickets, predictor, gazetteer, rules, TriageSettings(True, threshold), answers=answers
    )


async def submit(tickets: TicketService, **kw: Any) -> int:
    new = NewTicket(
        Channel.WEB,
        kw.pop("content", "小区楼道墙皮脱落，物业不维修"),
        Caller(phone="13800000002"),
        **kw,
    )
    return (await tickets.submit(new)).id


async def test_confident_prediction_is_dispatched_to_the_detected_region(
    settings: Settings, tickets: TicketService, database: Database
) -> None:
    triage = make_triage(settings, tickets, FakePredictor())
    tid = await submit(tickets, address="鄂尔多斯市准格尔旗薛家湾镇某小区")
    assert await triage.triage(tid) == "auto"
    t = await tickets.get(DISPATCHER, tid)
    assert t.status is Status.DISPATCHED
    assert t.route_state == "auto"
    assert t.lead is not None and t.lead.department == "150622-housing"  # 准格尔旗住建局
    assert t.suggestion is not None
    assert t.suggestion["region"]["code"] == "150622"
    assert t.suggestion["top3"][0] == {"label": "城乡建设", "probability": 0.95}
    events = database.run_read(lambda c: list_events(c, tid))
    assert [(e.action, e.actor_role) for e in events] == [
        ("create", Role.CITIZEN),
        ("dispatch", Role.SYSTEM),
    ]
    # the system's own decision is not a labelled example
    assert await tickets.training_examples() == []


async def test_low_confidence_waits_in_the_review_queue(
    settings: Settings, tickets: TicketService
) -> None:
    triage = make_triage(settings, tickets, FakePredictor(probability=0.5))
    tid = await submit(tickets, region="150102")
    assert await triage.triage(tid) == "review"
    queue, total = await tickets.list_tickets(
        DISPATCHER, TicketFilter(route_state="review", status=Status.NEW)
    )
    assert [t.id for t in queue] == [tid] and total == 1
    t = queue[0]
    assert t.status is Status.NEW
    assert t.suggestion is not None
    assert t.suggestion["department"]["department"] == "150102-housing"
    assert t.suggestion["confidence"] == 0.5
    assert await triage.triage(tid) == "skipped"  # triaged once only


async def test_unknown_region_goes_to_the_regional_level(
    settings: Settings, tickets: TicketService
) -> None:
    triage = make_triage(settings, tickets, FakePredictor(label="环境保护"))
    tid = await submit(tickets, content="河道里有人倾倒垃圾，气味很大")
    assert await triage.triage(tid) == "auto"
    t = await tickets.get(DISPATCHER, tid)
    assert t.lead is not None and t.lead.department == "150000-ecology"  # 自治区生态环境厅


async def test_answerable_consultation_stays_with_the_agent(
    settings: Settings, tickets: TicketService
) -> None:
    triage = make_triage(settings, tickets, FakePredictor(), answers=KnowsEverything())
    tid = await submit(tickets, kind=Kind.CONSULT, content="请问社保卡丢了怎么补办？")
    assert await triage.triage(tid) == "answerable"
    t = await tickets.get(DISPATCHER, tid)
    assert t.status is Status.NEW and t.route_state == "review"
    assert t.suggestion is not None and t.suggestion["answerable"] is True


async def test_without_a_model_every_order_is_reviewed(
    settings: Settings, tickets: TicketService
) -> None:
    triage = make_triage(settings, tickets, None)
    tid = await submit(tickets, address="呼和浩特市新城区")
    assert await triage.triage(tid) == "review"
    t = await tickets.get(DISPATCHER, tid)
    assert t.suggestion is not None and t.suggestion["region"]["code"] == "150102"


async def test_people_decisions_become_labelled_examples(
    settings: Settings, tickets: TicketService
) -> None:
    triage = make_triage(settings, tickets, FakePredictor(probability=0.3))
    tid = await submit(tickets, category=("城乡建设",))
    await triage.triage(tid)
    t = await tickets.get(DISPATCHER, tid)
    t = await tickets.dispatch(DISPATCHER, tid, t.version, "150100-housing")
    assert t.route_state == "manual"
    housing = Actor(Role.DEPARTMENT, 2, "住建局", "150100-housing")
    t = await tickets.return_(housing, tid, t.version, "属于城管职责")
    t = await tickets.edit(
        DISPATCHER, tid, t.version, {"category": ["城乡建设", "城市建设和市政管理"]}
    )
    t = await tickets.dispatch(DISPATCHER, tid, t.version, "150100-urban")
    examples = await tickets.training_examples()
    assert [(cat, dept, source) for _, cat, dept, source in examples] == [
        (["城乡建设"], "150100-housing", "dispatch"),
        (["城乡建设", "城市建设和市政管理"], None, "correction"),
        (["城乡建设", "城市建设和市政管理"], "150100-urban", "redispatch"),
    ]
    assert all("墙皮脱落" in text for text, *_ in examples)


async def test_orders_are_triaged_from_the_durable_queue(
    settings: Settings, tickets: TicketService, database: Database
) -> None:
    """Orders taken in while no triage ran (a crash, a restart) wait in the work queue; the
    consumer triages them from there, one read and one prediction call per batch."""
    first = await submit(tickets)
    second = await submit(tickets)
    predictor = FakePredictor(probability=0.2)
    triage = make_triage(settings, tickets, predictor)
    task = asyncio.create_task(run_triage(triage, WorkQueue(database, TRIAGE), idle_s=0.05))

    async def states() -> list[str]:
        return [(await tickets.get(DISPATCHER, t)).route_state for t in (first, second)]

    async def held() -> bool:
        # both held for review, and their jobs done (completed after the writes)
        done = (await WorkQueue(database, TRIAGE).stats()).depth == 0
        return done and await states() == ["review", "review"]

    try:
        await wait_until(held)
    finally:
        task.cancel()
    assert len(predictor.seen) == 2


async def test_stale_dispatch_rule_sends_the_order_to_review(
    settings: Settings, tickets: TicketService
) -> None:
    """A confident prediction whose department cannot take it (a rule naming a department that
    is gone) is not left untriaged: it waits for a dispatcher with the suggestion."""

    @dataclass
    class Route:
        department: str

    class GoneDepartment:
        def department_for(self, category_path: Any, region_code: Any) -> Route:
            return Route("150100-closed")

    gazetteer, _rules = load_triage_parts(settings, tickets.directory)  # type: ignore[arg-type]
    triage = Triage(tickets, FakePredictor(), gazetteer, GoneDepartment(), TriageSettings())
    tid = await submit(tickets)
    assert await triage.triage(tid) == "review"
    assert (await tickets.get(DISPATCHER, tid)).route_state == "review"


async def test_app_triages_new_web_requests(
    db_url: str, aiohttp_client: Any, tmp_path: Any
) -> None:
    """The whole app with triage on and no model: a web request lands in the review queue."""
    from hotline.app import make_app
    from tests.conftest import create_users, make_settings

    settings = make_settings(
        db_url, HOTLINE__TRIAGE__ENABLED="true", HOTLINE__TRIAGE__MODEL=str(tmp_path / "none")
    )
    app = make_app(settings)
    client = await aiohttp_client(app)
    from hotline.app import DATABASE

    create_users(settings, app[DATABASE])
    resp = await client.post(
        "/api/v1/requests",
        json={"content": "包头市昆都仑区路灯不亮", "phone": "13800000003"},
    )
    assert resp.status == 201
    await client.post(
        "/api/v1/session", json={"username": "dispatcher", "password": "test-password-1"}
    )
    for _ in range(1500):  # an upper bound for a busy machine, not a speed
        resp = await client.get("/api/v1/tickets", params={"route_state": "review"})
        items = (await resp.json())["items"]
        if items:
            break
        await asyncio.sleep(0.02)
    assert len(items) == 1
    assert items[0]["suggestion"]["region"]["code"] == "150203"


async def test_shipped_model_feeds_the_triage(settings: Settings, tickets: TicketService) -> None:
    """Contract: the same triage with the real, shipped classifier instead of the fake."""
    from hotline.app import load_predictor

    predictor = load_predictor(settings)
    assert predictor is not None
    gazetteer, rules = load_triage_parts(settings, tickets.directory)  # type: ignore[arg-type]
    triage = Triage(tickets, predictor, gazetteer, rules, TriageSettings(True, 0.85))
    tid = await submit(
        tickets,
        content="呼和浩特市新城区某小区冬季供暖温度只有十四度，供热公司不解决，要求尽快整改",
    )
    outcome = await triage.triage(tid)
    t = await tickets.get(DISPATCHER, tid)
    assert t.suggestion is not None
    top3 = t.suggestion["top3"]
    assert len(top3) == 3
    assert top3[0]["label"] == "城乡建设"
    assert 0 < sum(x["probability"] for x in top3) <= 1.0001
    assert t.suggestion["region"]["code"] == "150102"
    if outcome == "auto":
        assert t.lead is not None and t.lead.department.startswith("150102-")
    else:
        assert outcome == "review" and t.route_state == "review"
