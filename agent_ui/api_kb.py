"""JSON API of the knowledge base: staff editing and review, and the public guides."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from aiohttp import web
from pydantic import Field

from agent_ui import schemas as s
from agent_ui.api import _enum_query, _int_query, _json, path_id, read_json, route
from agent_ui.api_search import article_brief, search_services
from agent_ui.context import require_staff, services
from kb.model import (
    ACTION_LABELS,
    KIND_LABELS,
    STATUS_LABELS,
    Article,
    ArticleFilter,
    ArticleInput,
    ArticleKind,
    ArticleStatus,
    Editor,
    KbRole,
)
from kb.service import KbConflict, KbError, KbForbidden, KbNotFound, KbVersionConflict
from routing.suggest import to_reply_library
from tickets.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    RoleForbidden,
    VersionConflict,
)
from tickets.model import Actor, Role

T = TypeVar("T")
# who may write at all (the article's own rules follow: a department its own, agents FAQ)
KB_WRITERS = (Role.AGENT, Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN, Role.DEPARTMENT)
KB_REVIEWERS = (Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN)
KB_ROLES = {
    Role.DISPATCHER: KbRole.CENTRE,
    Role.SUPERVISOR: KbRole.CENTRE,
    Role.ADMIN: KbRole.CENTRE,
    Role.AGENT: KbRole.AGENT,
    Role.DEPARTMENT: KbRole.DEPARTMENT,
    Role.MANAGER: KbRole.READER,
    Role.SYSTEM: KbRole.SYSTEM,
}
_ERRORS: list[tuple[type[KbError], type[DomainError]]] = [
    (KbNotFound, NotFound),
    (KbForbidden, RoleForbidden),
    (KbVersionConflict, VersionConflict),
    (KbConflict, Conflict),
    (KbError, InvalidInput),
]


def editor(actor: Actor) -> Editor:
    return Editor(
        KB_ROLES.get(actor.role, KbRole.READER), actor.label, actor.user_id, actor.department
    )


async def kb_call(aw: Awaitable[T]) -> T:
    """The knowledge base's errors as the platform's (one status table in agent_ui.errors)."""
    try:
        return await aw
    except KbError as exc:
        for kb_cls, domain_cls in _ERRORS:
            if isinstance(exc, kb_cls):
                raise domain_cls(exc.message, **exc.details) from None
        raise


def article_json(request: web.Request, a: Article) -> dict[str, Any]:
    p = services(request).presenter
    d = services(request).directory
    return {
        "id": a.id,
        "kind": a.kind.value,
        "kind_label": KIND_LABELS[a.kind],
        "status": a.status.value,
        "status_label": STATUS_LABELS[a.status],
        "language": a.language,
        "title": a.title,
        "fields": a.fields,
        "version": a.version,
        "code": a.code,
        "department": a.department,
        "department_name": d.department_name(a.department) if a.department else None,
        "valid_from": p.time(a.valid_from),
        "valid_until": p.time(a.valid_until),
        "original_id": a.original_id,
        "ref": a.ref,
        "note": a.note,
        "live_version": a.live_version,
        "live_title": a.live_title,
        "live_fields": a.live_fields,
        "published_at": p.time(a.published_at),
        "updated_at": p.time(a.updated_at),
        "updated_by": a.updated_by,
    }


class ArticleBody(s.Strict):
    kind: ArticleKind
    title: Annotated[str, Field(max_length=200)] = ""
    fields: dict[Annotated[str, Field(max_length=32)], Annotated[str, Field(max_length=100_000)]]
    language: s.Lang = "zh-Hans"
    department: s.DeptCode | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    original_id: int | None = None
    ref: Annotated[str, Field(max_length=64)] | None = None

    def to_input(self) -> ArticleInput:
        return ArticleInput(
            self.kind,
            self.title,
            dict(self.fields),
            self.language,
            self.department,
            self.valid_from,
            self.valid_until,
            self.original_id,
            self.ref,
        )


class EditBody(ArticleBody):
    version: s.Version


class StepBody(s.Strict):
    version: s.Version
    note: Annotated[str, Field(max_length=2000)] | None = None


def _article_id(request: web.Request) -> int:
    return path_id(request, label="知识")


def _filter(request: web.Request, *, public: bool) -> ArticleFilter:
    lang = request.query.get("lang") or request.query.get("language") or None
    if lang not in (None, "zh-Hans", "mn-Mong"):
        raise InvalidInput("language 只能是 zh-Hans 或 mn-Mong", field="language")
    return ArticleFilter(
        kind=_enum_query(request, "kind", ArticleKind),
        status=None if public else _enum_query(request, "status", ArticleStatus),
        language=lang,
        department=request.query.get("department") or None,
        limit=_int_query(request, "limit", 20, 1, 100),
        offset=_int_query(request, "offset", 0, 0, 100_000),
    )


@route(
    "GET",
    "/kb/articles",
    "知识列表（kind status language department 筛选）；带 q 时全文检索已发布知识",
    tag="知识库",
)
async def list_articles(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    kb = search_services(request).kb
    f = _filter(request, public=False)
    q = request.query.get("q", "").strip()
    if q:
        kinds = [f.kind] if f.kind else []
        found, total = await kb_call(
            kb.find(
                q, public=False, kinds=kinds, language=f.language, limit=f.limit, offset=f.offset
            )
        )
        return _json({"total": total, "items": [article_brief(a, sc) for a, sc in found]})
    items, total = await kb_call(kb.list_articles(editor(actor), f))
    return _json({"total": total, "items": [article_json(request, a) for a in items]})


@route("POST", "/kb/articles", "新建知识（草稿）", body=ArticleBody, status=201, tag="知识库")
async def create_article(request: web.Request) -> web.Response:
    actor = await require_staff(request, *KB_WRITERS, write=True)
    body = await read_json(request, ArticleBody)
    data = body.to_input()
    if actor.role is Role.DEPARTMENT and data.department is None:
        data = dataclasses.replace(data, department=actor.department)
    a = await kb_call(search_services(request).kb.create(editor(actor), data))
    return _json(article_json(request, a), status=201)


@route("GET", "/kb/articles/{id}", "知识详情（含译文列表）", tag="知识库")
async def get_article(request: web.Request) -> web.Response:
    await require_staff(request)
    kb = search_services(request).kb
    a = await kb_call(kb.get(_article_id(request)))
    translations = await kb.translations(a.id)
    return _json(
        {
            **article_json(request, a),
            "translations": [
                {"id": x.id, "language": x.language, "title": x.title} for x in translations
            ],
        }
    )


@route(
    "PUT",
    "/kb/articles/{id}",
    "修改知识（生成新版本草稿；已发布版本继续有效）",
    body=EditBody,
    tag="知识库",
)
async def edit_article(request: web.Request) -> web.Response:
    actor = await require_staff(request, *KB_WRITERS, write=True)
    kb = search_services(request).kb
    await kb_call(kb.check_edit(editor(actor), _article_id(request)))
    body = await read_json(request, EditBody)
    a = await kb_call(kb.edit(editor(actor), _article_id(request), body.version, body.to_input()))
    return _json(article_json(request, a))


@route("GET", "/kb/articles/{id}/history", "知识的版本和审核记录", tag="知识库")
async def article_history(request: web.Request) -> web.Response:
    await require_staff(request)
    p = services(request).presenter
    versions, events = await search_services(request).kb.history(_article_id(request))
    return _json(
        {
            "versions": [
                {
                    "version": v.version,
                    "title": v.title,
                    "fields": v.fields,
                    "created_at": p.time(v.created_at),
                    "created_by": v.created_by,
                }
                for v in versions
            ],
            "events": [
                {
                    "action": e.action,
                    "label": ACTION_LABELS.get(e.action, e.action),
                    "actor": e.actor,
                    "version": e.version,
                    "note": e.note,
                    "at": p.time(e.at),
                }
                for e in events
            ],
        }
    )


Step = Literal["submit", "publish", "reject", "withdraw"]


def _step_handler(step: Step) -> Any:
    async def handler(request: web.Request) -> web.Response:
        roles = KB_WRITERS if step == "submit" else KB_REVIEWERS
        actor = await require_staff(request, *roles, write=True)
        kb = search_services(request).kb
        who, article_id = editor(actor), _article_id(request)
        if step == "submit":
            await kb_call(kb.check_edit(who, article_id))
        body = await read_json(request, StepBody)
        if step == "submit":
            a = await kb_call(kb.submit(who, article_id, body.version))
        elif step == "publish":
            a = await kb_call(kb.publish(who, article_id, body.version, body.note))
        elif step == "reject":
            a = await kb_call(kb.reject(who, article_id, body.version, body.note or ""))
        else:
            a = await kb_call(kb.withdraw(who, article_id, body.version, body.note))
        return _json(article_json(request, a))

    handler.__name__ = f"kb_{step}"
    return handler


for _step, _summary in (
    ("submit", "提交审核"),
    ("publish", "审核通过并发布（热线中心）"),
    ("reject", "退回修改（须写意见）"),
    ("withdraw", "撤下已发布的知识（热线中心）"),
):
    route("POST", f"/kb/articles/{{id}}/{_step}", _summary, body=StepBody, tag="知识库")(
        _step_handler(_step)  # type: ignore[arg-type]
    )


@route(
    "POST",
    "/tickets/{id}/reply-library",
    "把已答复工单的诉求和答复加入答复库（热线中心；已加入则返回原条目）",
    status=201,
    tag="知识库",
)
async def order_to_reply_library(request: web.Request) -> web.Response:
    actor = await require_staff(request, *KB_REVIEWERS, write=True)
    ticket = await services(request).tickets.get(actor, path_id(request))
    kb = search_services(request).kb
    a = await kb_call(to_reply_library(kb, editor(actor), ticket))
    return _json(article_json(request, a), status=201)


# -- public ---------------------------------------------------------------------------------
@route(
    "GET",
    "/guides",
    "公开的办事指南和常见问题（q 检索，lang=zh-Hans|mn-Mong，kind=guide|faq）",
    auth="public",
    tag="市民",
)
async def public_guides(request: web.Request) -> web.Response:
    kb = search_services(request).kb
    f = _filter(request, public=True)
    q = request.query.get("q", "").strip()[:200]
    if q:
        kinds = [f.kind] if f.kind else [ArticleKind.GUIDE, ArticleKind.FAQ]
        found, total = await kb_call(
            kb.find(
                q, public=True, kinds=kinds, language=f.language, limit=f.limit, offset=f.offset
            )
        )
        items = [a for a, _ in found]
    else:
        items, total = await kb_call(kb.list_articles(None, f))
    return _json({"total": total, "items": [public_json(a) for a in items]})


def public_json(a: Article) -> dict[str, Any]:
    return {
        "id": a.id,
        "kind": a.kind.value,
        "language": a.language,
        "code": a.code,
        "title": a.live_title,
        "fields": a.live_fields,
        "original_id": a.original_id,
    }


@route("GET", "/guides/{id}", "公开的办事指南或常见问题详情", auth="public", tag="市民")
async def public_guide(request: web.Request) -> web.Response:
    kb = search_services(request).kb
    a = await kb_call(kb.get_public(_article_id(request)))
    return _json(public_json(a))
