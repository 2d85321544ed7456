"""Triage of new orders: classify, find the region, pick the department, dispatch when sure.

Runs after intake has committed (intake never waits for it). Confident predictions are
dispatched by the system; the rest wait in the dispatchers' review queue with the suggestion.
Consultations the knowledge base can answer stay with the agent (直接答复).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any, Protocol

from tickets.errors import DomainError
from tickets.model import SYSTEM, Kind, Status, Ticket, TicketEvent
from tickets.service import TicketService

log = logging.getLogger(__name__)


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
        return {k: _plain(v) for k, v in asdict(value).items()}
    if hasattr(value, "model_dump"):  # pydantic settings (a dispatch rule)
        return _plain(value.model_dump())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


class Triage:
    def __init__(
        self,
        tickets: TicketService,
        predictor: Predictor | None,
        regions: RegionFinder,
        router: Router,
        settings: TriageSettings,
        executor: Executor | None = None,
        answers: AnswerFinder | None = None,
    ) -> None:
        self.tickets = tickets
        self.predictor = predictor
        self.regions = regions
        self.router = router
        self.settings = settings
        self.executor = executor
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

    async def triage(self, ticket_id: int) -> str:
        """Triage one order; returns what happened: auto | review | answerable | skipped."""
        t = await self.tickets.get(SYSTEM, ticket_id)
        if t.status is not Status.NEW or t.route_state != "pending":
            return "skipped"
        loop = asyncio.get_running_loop()
        suggestion, department, confidence = await loop.run_in_executor(
            self.executor, self.suggest, t
        )
        suggestion["confidence"] = round(confidence, 4)
        answerable = (
            t.kind is Kind.CONSULT
            and self.answers is not None
            and self.answers.can_answer(t.content)
        )
        if answerable:
            suggestion["answerable"] = True
        sure = confidence >= self.settings.threshold
        if self.settings.auto_dispatch and sure and department and not answerable:
            try:
                await self.tickets.dispatch(
                    SYSTEM, t.id, t.version, department, suggestion=suggestion
                )
                return "auto"
            except DomainError as exc:  # somebody acted first, or the rule is stale
                log.info("auto-dispatch of %s not done: %s", t.number, exc.message)
                return "skipped"
        await self.tickets.hold_for_review(t.id, suggestion)
        return "answerable" if answerable else "review"


async def run_triage(triage: Triage, events: asyncio.Queue[TicketEvent]) -> None:
    """Triage every new order: first those left over from before a restart, then each
    `create` event from the bus."""
    for ticket_id in await triage.tickets.untriaged():
        await _safe(triage, ticket_id)
    while True:
        ev = await events.get()
        if ev.action == "create":
            await _safe(triage, ev.ticket_id)


async def _safe(triage: Triage, ticket_id: int) -> None:
    try:
        await triage.triage(ticket_id)
    except Exception:  # one bad order must not stop the triage of the others
        log.exception("triage of order %d failed", ticket_id)
