"""Pages of the knowledge base (staff editor and reviewer; the public guides in Chinese and
Mongolian) and the staff order search."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from agent_ui import i18n
from agent_ui.api import page_id
from agent_ui.api_kb import KB_REVIEWERS, KB_WRITERS, editor, kb_call
from agent_ui.api_search import order_query, search_services
from agent_ui.context import current_session, require_staff, services
from agent_ui.i18n_kb import KB_CATALOG
from agent_ui.pages_staff import http_status, redirect, render, staff_context
from kb.model import (
    ACTION_LABELS,
    FIELDS,
    KIND_LABELS,
    STATUS_LABELS,
    ArticleFilter,
    ArticleInput,
    ArticleKind,
    ArticleStatus,
    KbRole,
)
from tickets.errors import DomainError, InvalidInput
from tickets.model import Role

i18n.CATALOG.update(KB_CATALOG)  # the citizen navigation links to the guides in every page
PAGE = 20
CENTRE_KB = (Role.DISPATCHER, Role.SUPERVISOR, Role.ADMIN)


# -- public guides ------------------------------------------------------------------------------
def _lang(request: web.Request) -> str:
    return (
        i18n.normalize_lang(request.query.get("lang"))
        or i18n.normalize_lang(request.cookies.get(i18n.LANG_COOKIE))
        or i18n.DEFAULT_LANG
    )


def _citizen(request: web.Request, template: str, lang: str, ctx: dict[str, Any]) -> web.Response:
    here = request.path
    ctx = {
        "t": i18n.translator(lang),
        "lang_links": [(c, n, f"{here}?lang={c}") for c, n in i18n.LANG_NAMES.items()],
        "page_path": here,
        "kb_css": True,
        **ctx,
    }
    resp = render(request, template, ctx, lang=lang)
    if i18n.normalize_lang(request.query.get("lang")) == lang:
        resp.set_cookie(
            i18n.LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="Lax", httponly=True
        )
    return resp


async def guides(request: web.Request) -> web.Response:
    lang = _lang(request)
    kb = search_services(request).kb
    q = request.query.get("q", "").strip()[:100]
    if q:
        found, _ = await kb_call(
            kb.find(
                q,
                public=True,
                kinds=[ArticleKind.GUIDE, ArticleKind.FAQ],
                language=lang,
                limit=PAGE,
            )
        )
        items = [a for a, _ in found]
    else:
        items, _ = await kb_call(kb.list_articles(None, ArticleFilter(language=lang, limit=PAGE)))
    return _citizen(request, "kb/guides.html", lang, {"q": q, "items": items})


async def guide(request: web.Request) -> web.Response:
    kb = search_services(request).kb
    article_id = page_id(request)
    a = await kb_call(kb.get_public(article_id))
    # the same item in the other language: its original, or a published translation
    other = None
    if a.original_id:
        original = await kb_call(kb.get(a.original_id))
        other = original if original.live else None
    else:
        other = next((x for x in await kb.translations(a.id) if x.live), None)
    wanted = i18n.normalize_lang(request.query.get("lang"))
    if wanted and wanted != a.language and other is not None and other.language == wanted:
        # the language switch asks for this item in the other language: show its version
        return redirect(f"/guides/{other.id}?lang={wanted}")
    ctx = {"a": a, "fields": FIELDS[a.kind], "other": other}
    return _citizen(request, "kb/guide.html", a.language, ctx)


# -- staff: knowledge base ----------------------------------------------------------------------
def _staff_filter(request: web.Request) -> ArticleFilter:
    def enum(name: str, cls: Any) -> Any:
        raw = request.query.get(name)
        try:
            return cls(raw) if raw else None
        except ValueError:
            return None

    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    return ArticleFilter(
        kind=enum("kind", ArticleKind),
        status=enum("status", ArticleStatus),
        language=i18n.normalize_lang(request.query.get("language")),
        department=request.query.get("department") or None,
        limit=PAGE,
        offset=(page - 1) * PAGE,
    )


async def kb_list(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    kb = search_services(request).kb
    f = _staff_filter(request)
    q = request.query.get("q", "").strip()[:200]
    if q:
        found, total = await kb_call(
            kb.find(q, public=False, kinds=[f.kind] if f.kind else [], limit=PAGE)
        )
        items = [a for a, _ in found]
    else:
        items, total = await kb_call(kb.list_articles(editor(actor), f))
    ctx = {
        **await staff_context(request),
        "items": items,
        "total": total,
        "q": q,
        "f": f,
        "kinds": KIND_LABELS,
        "statuses": STATUS_LABELS,
        "can_review": actor.role in CENTRE_KB,
        "kb_css": True,
    }
    return render(request, "kb/list.html", ctx)


def _form_input(form: Any, kind: ArticleKind, tz: ZoneInfo) -> ArticleInput:
    def when(name: str) -> datetime | None:
        raw = str(form.get(name, "")).strip()
        if not raw:
            return None
        try:
            return datetime.fromisoformat(raw).replace(tzinfo=tz)
        except ValueError:
            raise InvalidInput("日期格式应为 2026-12-31", field=name) from None

    original = str(form.get("original_id", "")).strip()
    return ArticleInput(
        kind=kind,
        title=str(form.get("title", "")),
        fields={k: str(form.get(f"f_{k}", "")) for k, _ in FIELDS[kind]},
        language=i18n.normalize_lang(str(form.get("language", ""))) or i18n.ZH,
        department=str(form.get("department", "")).strip() or None,
        valid_from=when("valid_from"),
        valid_until=when("valid_until"),
        original_id=int(original) if original.isdigit() else None,
        ref=str(form.get("ref", "")).strip() or None,
    )


async def _editor_page(
    request: web.Request,
    kind: ArticleKind,
    values: dict[str, Any],
    *,
    article: Any = None,
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    ctx = {
        **await staff_context(request),
        "kind": kind,
        "kinds": KIND_LABELS,
        "fields": FIELDS[kind],
        "v": values,
        "article": article,
        "error": error,
        "kb_css": True,
        "departments": list(services(request).directory.departments.values()),
    }
    return render(request, "kb/edit.html", ctx, status=status)


def _values(data: ArticleInput | None, tz: ZoneInfo) -> dict[str, Any]:
    if data is None:
        return {
            "title": "",
            "fields": {},
            "language": i18n.ZH,
            "department": "",
            "valid_from": "",
            "valid_until": "",
            "original_id": "",
            "ref": "",
        }
    return {
        "title": data.title,
        "fields": data.fields,
        "language": data.language,
        "department": data.department or "",
        "valid_from": data.valid_from.astimezone(tz).date().isoformat() if data.valid_from else "",
        "valid_until": (
            data.valid_until.astimezone(tz).date().isoformat() if data.valid_until else ""
        ),
        "original_id": data.original_id or "",
        "ref": data.ref or "",
    }


def _kind(request: web.Request) -> ArticleKind:
    try:
        return ArticleKind(request.query.get("kind") or "guide")
    except ValueError:
        return ArticleKind.GUIDE


async def kb_new(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    tz = services(request).presenter.tz
    values = _values(None, tz)
    values["department"] = actor.department or ""
    values["original_id"] = request.query.get("original", "")
    if request.query.get("language") == i18n.MN:
        values["language"] = i18n.MN
    return await _editor_page(request, _kind(request), values)


async def kb_create(request: web.Request) -> web.Response:
    actor = await require_staff(request, *KB_WRITERS, write=True)
    form = await request.post()
    tz = services(request).presenter.tz
    try:
        kind = ArticleKind(str(form.get("kind", "")))
    except ValueError:
        kind = ArticleKind.GUIDE
    try:
        data = _form_input(form, kind, tz)
        if actor.role is Role.DEPARTMENT and not data.department:
            data = dataclasses.replace(data, department=actor.department)
        a = await kb_call(search_services(request).kb.create(editor(actor), data))
    except DomainError as exc:
        values = _values(None, tz) | {k: str(form.get(k, "")) for k in ("title", "ref")}
        values["fields"] = {k: str(form.get(f"f_{k}", "")) for k, _ in FIELDS[kind]}
        values["language"] = str(form.get("language", i18n.ZH))
        values["department"] = str(form.get("department", ""))
        values["original_id"] = str(form.get("original_id", ""))
        return await _editor_page(request, kind, values, error=exc.message, status=http_status(exc))
    return redirect(f"/staff/kb/{a.id}")


async def kb_view(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    kb = search_services(request).kb
    a = await kb_call(kb.get(_id(request)))
    versions, events = await kb.history(a.id)
    role = editor(actor).role
    may_edit = (
        role is KbRole.CENTRE
        or (role is KbRole.DEPARTMENT and a.department == actor.department)
        or (role is KbRole.AGENT and a.kind is ArticleKind.FAQ)
    )
    ctx = {
        **await staff_context(request),
        "a": a,
        "fields": FIELDS[a.kind],
        "kinds": KIND_LABELS,
        "statuses": STATUS_LABELS,
        "versions": versions,
        "events": events,
        "event_labels": ACTION_LABELS,
        "translations": await kb.translations(a.id),
        "may_edit": may_edit,
        "may_review": actor.role in CENTRE_KB,
        "notice": request.query.get("done"),
        "kb_css": True,
    }
    return render(request, "kb/view.html", ctx)


def _id(request: web.Request) -> int:
    return page_id(request)


async def kb_edit_form(request: web.Request) -> web.Response:
    await require_staff(request)
    a = await kb_call(search_services(request).kb.get(_id(request)))
    tz = services(request).presenter.tz
    data = ArticleInput(
        a.kind,
        a.title,
        a.fields,
        a.language,
        a.department,
        a.valid_from,
        a.valid_until,
        a.original_id,
        a.ref,
    )
    return await _editor_page(request, a.kind, _values(data, tz), article=a)


async def kb_edit(request: web.Request) -> web.Response:
    actor = await require_staff(request, *KB_WRITERS, write=True)
    kb = search_services(request).kb
    a = await kb_call(kb.check_edit(editor(actor), _id(request)))
    form = await request.post()
    tz = services(request).presenter.tz
    try:
        data = _form_input(form, a.kind, tz)
        version = int(str(form.get("version", "0")))
        await kb_call(kb.edit(editor(actor), a.id, version, data))
    except (DomainError, ValueError) as exc:
        message = getattr(exc, "message", "版本号无效")
        values = _values(None, tz) | {"title": str(form.get("title", ""))}
        values["fields"] = {k: str(form.get(f"f_{k}", "")) for k, _ in FIELDS[a.kind]}
        status = http_status(exc) if isinstance(exc, DomainError) else 422
        return await _editor_page(request, a.kind, values, article=a, error=message, status=status)
    return redirect(f"/staff/kb/{a.id}?done=edit")


async def kb_step(request: web.Request) -> web.Response:
    step = request.match_info["step"]
    if step not in ("submit", "publish", "reject", "withdraw"):
        raise web.HTTPNotFound()
    actor = await require_staff(
        request, *(KB_WRITERS if step == "submit" else KB_REVIEWERS), write=True
    )
    kb = search_services(request).kb
    who, article_id = editor(actor), _id(request)
    if step == "submit":
        await kb_call(kb.check_edit(who, article_id))
    form = await request.post()
    try:
        version = int(str(form.get("version", "0")))
    except ValueError:
        version = 0
    note = str(form.get("note", "")).strip() or None
    calls = {
        "submit": lambda: kb.submit(who, article_id, version),
        "publish": lambda: kb.publish(who, article_id, version, note),
        "reject": lambda: kb.reject(who, article_id, version, note or ""),
        "withdraw": lambda: kb.withdraw(who, article_id, version, note),
    }
    await kb_call(calls[step]())
    return redirect(f"/staff/kb/{article_id}?done={step}")


# -- staff: order search --------------------------------------------------------------------------
async def order_search(request: web.Request) -> web.Response:
    actor = await require_staff(request)
    q = request.query.get("q", "").strip()
    hits = None
    error = None
    if q:
        try:
            hits = await search_services(request).orders.find(actor, order_query(request))
        except DomainError as exc:
            error = exc.message
    session = await current_session(request)
    ctx = {
        **await staff_context(request),
        "q": q,
        "hits": hits,
        "error": error,
        "status": await search_services(request).orders.status(),
        "is_department": bool(session and session.user.role is Role.DEPARTMENT),
        "kb_css": True,
    }
    return render(request, "kb/search.html", ctx)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/guides", guides)
    app.router.add_get("/guides/{id}", guide)
    app.router.add_get("/staff/kb", kb_list)
    app.router.add_get("/staff/kb/new", kb_new)
    app.router.add_post("/staff/kb/new", kb_create)
    app.router.add_get("/staff/kb/{id}", kb_view)
    app.router.add_get("/staff/kb/{id}/edit", kb_edit_form)
    app.router.add_post("/staff/kb/{id}/edit", kb_edit)
    app.router.add_post("/staff/kb/{id}/{step}", kb_step)
    app.router.add_get("/staff/search", order_search)
