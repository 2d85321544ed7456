"""Triage of new orders: classify, find the region, pick the department, dispatch when sure.

Runs after intake has committed (intake never waits for it), from the durable work queue
(tickets/outbox.py, topic "triage", written in the order's own transaction): nothing is
dropped under load, and a triage that fails (the database away, a bug) is retried with
back-off until it is done. Confident predictions are dispatched by the system; the rest wait
in the dispatchers' review queue with the suggestion. Consultations the knowledge base can
answer stay with the agent (直接答复).

A claimed batch is read in one query, predicted in one call to the executor (off the event
loop) and written concurrently, so the group-committing writer (tickets/db.py) commits the
batch's decisions together. A job done twice is harmless: only an order still new and
pending is triaged, and the writes check that again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Protocol

from tickets.errors import DomainError
from tickets.model import SYSTEM, Kind, Status, Ticket
from tickets.outbox import Job, JobQueue, consume
from tickets.service import TicketService

log = logging.getLogger(__name__)

BATCH = 100  # orders per claim: one read, one executor call, one or two group commits


class Predictor(Protocol):
    def predict(self, text: str) -> Any: ...


class RegionFinder(Protocol):
    def detect(self, address: str | None, text: str) -> Any: ...


class Router(Protocol):
    def department_for(self, category_path: Sequence[str], region_code: str | None) -> Any: ...


class AnswerFinder(Protocol):
    """The knowledge base's hook: can this consultation be answered from it directly?"""

    def can_answer(self, text: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class TriageSettings:
    auto_dispatch: bool = True
    threshold: float = 0.85
    second_level_min: float = 0.5


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        # field by field: asdict() deep-copies every value first, which showed in the profile
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if hasattr(value, "model_dump"):  # pydantic settings (a dispatch rule)
        return _plain(value.model_dump())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


class Planner:
    """The triage's thinking, CPU only and no I/O: classify, find the region, pick the
    department, decide whether to dispatch. Runs in an executor (a thread, or a worker process
    that built its own planner: see start_worker)."""

    def __init__(
        self,
        predictor: Predictor | None,
        regions: RegionFinder,
        router: Router,
        settings: TriageSettings,
        answers: AnswerFinder | None = None,
    ) -> None:
        self.predictor = predictor
        self.regions = regions
        self.router = router
        self.settings = settings
        self.answers = answers

    def suggest(self, t: Ticket) -> tuple[dict[str, Any], str | None, float]:
        """(suggestion shown to people, department to dispatch to, confidence). CPU only."""
        text = "\n".join(x for x in (t.title, t.summary, t.content) if x)
        suggestion: dict[str, Any] = {}
        category: list[str] = list(t.category)
        confidence = 0.0
        if self.predictor is not None:
            pred = self.predictor.predict(text)
            top3 = [(str(label), float(p)) for label, p in pred.top3]
            suggestion["top3"] = [{"label": lab, "probability": round(p, 4)} for lab, p in top3]
            suggestion["kind"] = getattr(pred, "kind", None)
            for extra in ("second_level", "third_level", "model_version"):
                if getattr(pred, extra, None) is not None:
                    suggestion[extra] = _plain(getattr(pred, extra))
            if top3 and not category:
                category = [top3[0][0]]
                confidence = top3[0][1]
                # a second-level match under the top class picks finer rules (路灯 → 城管)
                second = [
                    s
                    for s in getattr(pred, "second_level", ())
                    if s.level1 == category[0] and s.score >= self.settings.second_level_min
                ]
                if second:
                    category.append(second[0].level2)
            elif top3 and category and top3[0][0] == category[0]:
                confidence = top3[0][1]
        region = t.region
        if region is None:
            match = self.regions.detect(t.address, text)
            if match is not None:
                region = match.code
                suggestion["region"] = _plain(match)
        route = self.router.department_for(category, region) if category else None
        department = None
        if route is not None:
            department = route.department
            suggestion["department"] = _plain(route)
        suggestion["category"] = category
        return suggestion, department, confidence

    def plan(self, t: Ticket) -> Plan:
        suggestion, department, confidence = self.suggest(t)
        suggestion["confidence"] = round(confidence, 4)
        answerable = (
            t.kind is Kind.CONSULT
            and self.answers is not None
            and self.answers.can_answer(t.content)
        )
        if answerable:
            suggestion["answerable"] = True
        sure = confidence >= self.settings.threshold
        auto = self.settings.auto_dispatch and sure and bool(department) and not answerable
        return Plan(suggestion, department if auto else None, answerable)

    def plan_all(self, orders: Sequence[Ticket]) -> list[Plan | Exception]:
        """Plans for a batch in one executor call; one order's failure is its own."""
        out: list[Plan | Exception] = []
        for t in orders:
            try:
                out.append(self.plan(t))
            except Exception as exc:  # retried with its job; the others go on
                out.append(exc)
        return out


PlanAll = Callable[[Sequence[Ticket]], "list[Plan | Exception]"]


class Triage:
    """Reads the orders of a claimed batch, has them planned in the executor, writes the
    decisions. `plan_all`: what the executor runs (default: this process's own planner;
    plan_in_worker for a process pool whose workers ran start_worker)."""

    def __init__(
        self,
        tickets: TicketService,
        predictor: Predictor | None,
        regions: RegionFinder,
        router: Router,
        settings: TriageSettings,
        executor: Executor | None = None,
        answers: AnswerFinder | None = None,
        *,
        plan_all: PlanAll | None = None,
    ) -> None:
        self.tickets = tickets
        self.planner = Planner(predictor, regions, router, settings, answers)
        self.executor = executor
        self.plan_all = plan_all or self.planner.plan_all

    async def _plans(self, orders: Sequence[Ticket]) -> list[Plan | Exception]:
        if not orders:
            return []
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self.plan_all, list(orders))

    async def decide(self, t: Ticket, plan: Plan) -> str:
        """Write the decision: auto | review | answerable | skipped (somebody acted first)."""
        if plan.dispatch_to is not None:
            try:
                if await self.tickets.auto_dispatch(t, plan.dispatch_to, plan.suggestion):
                    return "auto"
            except DomainError as exc:  # the rule names a department that is gone
                log.warning("auto-dispatch of %s not done: %s", t.number, exc.message)
        # not dispatched: changed since it was read (edited while pending), or unsure; a
        # no-op when somebody already routed it
        if not await self.tickets.hold_for_review(t.id, plan.suggestion):
            return "skipped"
        return "answerable" if plan.answerable else "review"

    async def triage(self, ticket_id: int) -> str:
        """Triage one order; returns what happened: auto | review | answerable | skipped."""
        t = await self.tickets.get(SYSTEM, ticket_id)
        if t.status is not Status.NEW or t.route_state != "pending":
            return "skipped"
        (plan,) = await self._plans([t])
        if isinstance(plan, Exception):
            raise plan
        return await self.decide(t, plan)

    async def handle_jobs(self, jobs: list[Job]) -> dict[int, str]:
        """Triage the orders of a claimed batch; returns {job id: error} for those to retry."""
        ids = list(dict.fromkeys(j.ticket_id for j in jobs if j.ticket_id is not None))
        orders = await self.tickets.untriaged(ids)  # done or routed by people: nothing to do
        plans = await self._plans(orders)
        todo = [(t, p) for t, p in zip(orders, plans, strict=True) if isinstance(p, Plan)]
        errors: dict[int, str] = {
            t.id: f"{type(p).__name__}: {p}"
            for t, p in zip(orders, plans, strict=True)
            if isinstance(p, Exception)
        }
        done = await asyncio.gather(*(self.decide(t, p) for t, p in todo), return_exceptions=True)
        for (t, _), result in zip(todo, done, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            if isinstance(result, BaseException):
                errors[t.id] = f"{type(result).__name__}: {result}"
        for tid, error in errors.items():
            log.debug("triage of order %d failed, will retry: %s", tid, error)
        return {j.id: errors[j.ticket_id] for j in jobs if j.ticket_id in errors}


@dataclass(frozen=True, slots=True)
class Plan:
    """What the triage decided for one order, before it is written."""

    suggestion: dict[str, Any]
    dispatch_to: str | None  # None: hold for review
    answerable: bool = False


_worker_planner: Planner | None = None


def start_worker(build: Callable[[], Planner]) -> None:
    """Initializer of a triage worker process: build its planner once (the model loads here,
    in the worker; the server process never holds it)."""
    global _worker_planner
    _worker_planner = build()


def plan_in_worker(orders: Sequence[Ticket]) -> list[Plan | Exception]:
    """Plan a batch in a worker process started with start_worker."""
    if _worker_planner is None:
        raise RuntimeError("triage worker has no planner (start_worker was not its initializer)")
    return _worker_planner.plan_all(orders)


async def run_triage(
    triage: Triage,
    queue: JobQueue,
    wake: asyncio.Event | None = None,
    idle_s: float = 1.0,
    consumers: int = 1,
) -> None:
    """Triage every new order from the durable queue, batch by batch, forever. `consumers`
    loops claim batches of their own (one per worker process keeps each of them busy while
    the others' batches are read and written)."""
    await asyncio.gather(
        *(
            consume(queue, triage.handle_jobs, batch=BATCH, idle_s=idle_s, wake=wake)
            for _ in range(max(1, consumers))
        )
    )
