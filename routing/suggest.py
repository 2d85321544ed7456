"""Suggestions for a request: the knowledge-base articles that answer it and the most similar
past orders with their answers (for the agent's order form and the department's reply page)."""

from __future__ import annotations

from dataclasses import dataclass

from kb.model import Article, ArticleInput, ArticleKind, Editor
from kb.search import SearchUnavailable
from kb.service import KbError, KnowledgeBase
from routing.order_search import OrderQuery, OrderSearch
from tickets.model import Actor, Ticket


@dataclass(frozen=True, slots=True)
class Suggestions:
    articles: list[tuple[Article, float]]
    orders: list[tuple[Ticket, float]]  # answered orders, the answer included
    degraded: bool = False


class Suggester:
    def __init__(
        self, kb: KnowledgeBase, orders: OrderSearch, articles: int = 5, similar: int = 5
    ) -> None:
        self.kb = kb
        self.orders = orders
        self.n_articles = articles
        self.n_orders = similar

    async def for_text(self, actor: Actor, text: str, exclude: int | None = None) -> Suggestions:
        if not text.strip():
            return Suggestions([], [])
        try:
            articles, _ = await self.kb.find(text, public=False, limit=self.n_articles)
            hits = await self.orders.find(
                actor, OrderQuery(text=text, answered=True, limit=self.n_orders + 1)
            )
        except SearchUnavailable:
            return Suggestions([], [], degraded=True)
        except Exception as exc:  # the order search wraps the outage in its own error
            if getattr(exc, "code", None) == "search_unavailable":
                return Suggestions([], [], degraded=True)
            raise
        similar = [(t, s) for t, s in hits.tickets if t.id != exclude and t.answer]
        return Suggestions(articles, similar[: self.n_orders])

    async def for_ticket(self, actor: Actor, ticket: Ticket) -> Suggestions:
        text = "\n".join(x for x in (ticket.title, ticket.summary, ticket.content) if x)
        return await self.for_text(actor, text, exclude=ticket.id)


async def to_reply_library(kb: KnowledgeBase, editor: Editor, ticket: Ticket) -> Article:
    """答复库: an answered order's request and official answer, linked to it by its number,
    published at once (the answer was already reviewed) or, if it is already there, returned."""
    if not ticket.answer:
        raise KbError("工单还没有答复，不能加入答复库", field="answer")
    existing = await kb.by_ref(ticket.number)
    if existing is not None:
        return existing
    lead = ticket.lead
    data = ArticleInput(
        ArticleKind.REPLY,
        (ticket.title or ticket.summary or ticket.content)[:60],
        {"request": ticket.summary or ticket.content, "reply": ticket.answer},
        department=lead.department if lead else None,
        ref=ticket.number,
    )
    article = await kb.create(editor, data)
    article = await kb.submit(editor, article.id, article.version)
    return await kb.publish(editor, article.id, article.version, "来自已答复工单")
