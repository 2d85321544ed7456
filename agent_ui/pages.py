"""Server-rendered pages: the citizen portal (中文 / ᠮᠣᠩᠭᠣᠯ), tracking and rating; staff pages."""

from __future__ import annotations

import dataclasses
import html
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp_jinja2
import jinja2
from aiohttp import web
from pydantic import ValidationError

from agent_ui import (
    api_files,
    i18n,
    pages_account,
    pages_admin,
    pages_audit,
    pages_kb,
    pages_list,
    pages_sms,
    pages_stats,
    wallboard,
)
from agent_ui import pages_staff as staff
from agent_ui import schemas as s
from agent_ui.context import SERVICES, citizen_rate, citizen_track, guard_intake, services
from agent_ui.limits import Throttled
from agent_ui.uploads import read_form
from tickets.errors import DomainError, IllegalTransition, InvalidInput, NotFound
from tickets.model import (
    ACTION_LABELS,
    ASSIGNMENT_STATE_LABELS,
    LABELS,
    STATUS_LABELS,
    Kind,
    NewTicket,
    Satisfaction,
    Ticket,
    event_label,
)

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
FORM_FIELDS = ("content", "phone", "name", "address", "region", "kind")
SATISFACTIONS = ("satisfied", "basic", "unsatisfied")
# pages reached by POST switch language on the page that shows their form
_SWITCH_TO = {"/": "/", "/track": "/track", "/track/rate": "/track"}
MONGOLIAN_LETTERS = re.compile("[\u1820-\u18aa]")


# -- language ---------------------------------------------------------------------------------
def page_lang(request: web.Request, form_lang: object = None) -> str:
    """?lang= (or the form's hidden lang) wins, then the cookie, then Chinese."""
    return (
        i18n.normalize_lang(str(form_lang) if form_lang else None)
        or i18n.normalize_lang(request.query.get("lang"))
        or i18n.normalize_lang(request.cookies.get(i18n.LANG_COOKIE))
        or i18n.DEFAULT_LANG
    )


def citizen_render(
    request: web.Request,
    template: str,
    lang: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> web.Response:
    switch = _SWITCH_TO.get(request.path, "/")
    ctx = {
        "t": i18n.translator(lang),
        "lang_links": [
            (code, name, f"{switch}?lang={code}") for code, name in i18n.LANG_NAMES.items()
        ],
        "page_path": request.path,
        **context,
    }
    resp = staff.render(request, template, ctx, status=status, lang=lang)
    chosen = i18n.normalize_lang(request.query.get("lang"))
    if chosen == lang and request.cookies.get(i18n.LANG_COOKIE) != lang:
        resp.set_cookie(
            i18n.LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="Lax", httponly=True
        )
    return resp


def citizen_message(exc: DomainError, lang: str) -> str:
    """The error in the page's language; the services speak Chinese, so map the common ones."""
    if isinstance(exc, IllegalTransition):
        # the workflow's message names internal steps (回访); citizens get a plain sentence
        return i18n.text("err_cannot_rate", lang)
    if lang == i18n.ZH:
        return exc.message
    field = exc.details.get("field")
    key = "err_generic"
    if isinstance(exc, Throttled):
        key = "err_too_many"
    elif isinstance(exc, NotFound):
        key = "err_not_found"
    elif field == "content":
        key = "err_too_long" if "limit" in exc.details else "err_content"
    elif field == "phone":
        key = "err_confidential_phone" if exc.details.get("confidential") else "err_phone"
    elif field in ("region", "kind"):
        key = f"err_{field}"
    elif field == "satisfaction":
        key = "err_rating"
    elif "limit" in exc.details:
        key = "err_too_long"
    return i18n.text(key, lang)


# -- submit -----------------------------------------------------------------------------------
def _portal(
    request: web.Request,
    lang: str,
    values: dict[str, Any],
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    ctx = {
        "values": values,
        "error": error,
        "regions": staff.region_groups(services(request).directory),
        "kinds": [k.value for k in Kind],
        "max_files": services(request).max_files_per_request,
    }
    return citizen_render(request, "citizen/portal.html", lang, ctx, status=status)


async def portal(request: web.Request) -> web.Response:
    values = {k: "" for k in FORM_FIELDS} | {"confidential": False}
    return _portal(request, page_lang(request), values)


def citizen_request(values: dict[str, Any], lang: str) -> NewTicket:
    """The portal's fields checked by the API's own request model, as a new web order."""
    # an empty content goes on to the service, whose message names the rule
    data = {k: v for k, v in values.items() if v not in ("", False) or k == "content"}
    try:
        body = s.CitizenRequest.model_validate({**data, "language": lang})
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]) if exc.errors()[0]["loc"] else ""
        raise InvalidInput(staff.validation_message(exc), field=field) from None
    return body.to_new_ticket()


async def submit(request: web.Request) -> web.Response:
    svc = services(request)
    files: list[Any] = []
    try:
        await guard_intake(request)
        if request.content_type == "multipart/form-data":  # with photos or documents
            form, files = await read_form(request, svc.files, max_files=svc.max_files_per_request)
        else:
            form = {k: str(v) for k, v in (await request.post()).items()}
    except DomainError as exc:
        lang = page_lang(request)
        blank = {k: "" for k in FORM_FIELDS} | {"confidential": False}
        return _portal(request, lang, blank, citizen_message(exc, lang), staff.http_status(exc))
    lang = page_lang(request, form.get("lang"))
    values: dict[str, Any] = {k: str(form.get(k, "")).strip() for k in FORM_FIELDS}
    values["confidential"] = "confidential" in form
    try:
        new = citizen_request(values, lang)
        if files:
            new = dataclasses.replace(new, attachments=tuple(f.meta() for f in files))
        ticket = await svc.tickets.submit(new)
    except DomainError as exc:
        return _portal(request, lang, values, citizen_message(exc, lang), staff.http_status(exc))
    ctx = {"number": ticket.number, "has_phone": bool(ticket.caller.phone)}
    return citizen_render(request, "citizen/submitted.html", lang, ctx)


# -- track and rate ---------------------------------------------------------------------------
def _track_form(
    request: web.Request,
    lang: str,
    number: str = "",
    phone: str = "",
    error: str | None = None,
    status: int = 200,
) -> web.Response:
    ctx = {"number": number, "phone": phone, "error": error}
    return citizen_render(request, "citizen/track.html", lang, ctx, status=status)


def _status_page(
    request: web.Request,
    lang: str,
    ticket: Ticket,
    main: Ticket | None,
    phone: str,
    *,
    error: str | None = None,
    status: int = 200,
    thanks: bool = False,
    note: str = "",
) -> web.Response:
    svc = services(request)
    view = svc.presenter.citizen(ticket, main)
    shown_main = view["merged_into"]
    ctx = {
        "v": view,
        "phone": phone,
        "created": svc.presenter.local(ticket.created_at),
        "answered": svc.presenter.local(ticket.answered_at) if view["answer"] else "",
        "main_answered": (
            svc.presenter.local(main.answered_at)
            if main is not None and shown_main and shown_main["answer"]
            else ""
        ),
        "error": error,
        "thanks": thanks,
        "note": note,
        "satisfactions": SATISFACTIONS,
    }
    return citizen_render(request, "citizen/status.html", lang, ctx, status=status)


async def track_form(request: web.Request) -> web.Response:
    number = request.query.get("number", "")[:32]
    return _track_form(request, page_lang(request), number)


async def track(request: web.Request) -> web.Response:
    form = await request.post()
    lang = page_lang(request, form.get("lang"))
    number = str(form.get("number", "")).strip()[:32]
    phone = str(form.get("phone", "")).strip()[:32]
    try:
        ticket, main = await citizen_track(request, number, phone)
    except DomainError as exc:
        msg = citizen_message(exc, lang)
        return _track_form(request, lang, number, phone, msg, staff.http_status(exc))
    return _status_page(request, lang, ticket, main, phone)


async def rate(request: web.Request) -> web.Response:
    form = await request.post()
    lang = page_lang(request, form.get("lang"))
    number = str(form.get("number", "")).strip()[:32]
    phone = str(form.get("phone", "")).strip()[:32]
    note = str(form.get("note", "")).strip()
    try:
        try:
            satisfaction = Satisfaction(str(form.get("satisfaction", "")))
        except ValueError:
            raise InvalidInput("请选择满意程度", field="satisfaction") from None
        resolved = {"yes": True, "no": False}.get(str(form.get("resolved", "")))
        ticket = await citizen_rate(request, number, phone, satisfaction, note or None, resolved)
    except DomainError as exc:
        msg, code = citizen_message(exc, lang), staff.http_status(exc)
        if isinstance(exc, Throttled | NotFound):
            return _track_form(request, lang, number, phone, msg, code)
        try:
            current, main = await citizen_track(request, number, phone)
        except DomainError:
            return _track_form(request, lang, number, phone, msg, code)
        return _status_page(request, lang, current, main, phone, error=msg, status=code, note=note)
    return _status_page(request, lang, ticket, None, phone, thanks=True)


def text_lang(text: str) -> str:
    """The language tag for a text shown to citizens that nobody tagged (an answer): Mongolian
    when it has Mongolian letters, else Chinese, which departments write in."""
    return i18n.MN if MONGOLIAN_LETTERS.search(text) else i18n.ZH


# -- errors -----------------------------------------------------------------------------------
async def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """What the error middleware shows for a DomainError outside /api/."""
    is_staff = request.path.startswith("/staff")
    if status == 401 and is_staff and request.path != "/staff/login":
        target = request.path_qs if request.method == "GET" else "/staff/tickets"
        return staff.redirect("/staff/login?" + urlencode({"next": target}))
    try:
        if is_staff:
            # 503: the database is away, and with it the session the header would show
            known = await staff.staff_context(request) if status != 503 else staff.NO_SESSION
            ctx = {**known, "message": message, "status": status}
            return staff.render(request, "staff/error.html", ctx, status=status)
        lang = page_lang(request)
        ctx = {"message": message, "status": status}
        return citizen_render(request, "citizen/error.html", lang, ctx, status=status)
    except Exception:  # the error page must not fail; fall back to plain HTML
        log.exception("error page failed to render")
        body = (
            "<!doctype html><html lang='zh-Hans'><meta charset='utf-8'><title>错误</title>"
            f"<p>{html.escape(message)}</p></html>"
        )
        return web.Response(text=body, status=status, content_type="text/html")


# -- wiring -----------------------------------------------------------------------------------
# npm package → (URL under /static/vendor/, folder inside the package) served from assets_dir
MONGOLIAN_FONT = "@fontsource/noto-sans-mongolian"
VENDOR = {
    "echarts": ("echarts", "dist"),
    MONGOLIAN_FONT: ("fonts/noto-sans-mongolian", ""),
}
# the package's @font-face for the Mongolian block only (family "Noto Sans Mongolian")
MONGOLIAN_FONT_CSS = "/static/vendor/fonts/noto-sans-mongolian/mongolian-400.css"


def add_vendor_routes(app: web.Application, assets_dir: Path | None) -> set[str]:
    """Serve the front-end packages npm installed (never copies in the repository);
    returns the packages served."""
    missing, served = [], set()
    for package, (url, sub) in VENDOR.items():
        folder = (assets_dir / package / sub) if assets_dir else None
        if folder is None or not folder.is_dir():
            missing.append(package)
            continue
        app.router.add_static(f"/static/vendor/{url}", folder)
        served.add(package)
    if missing:
        log.warning(
            "前端资源未安装 (%s)：图表和蒙古文字体不可用；在仓库目录运行 npm ci 安装",
            ", ".join(missing),
        )
    return served


async def favicon(request: web.Request) -> web.FileResponse:
    return web.FileResponse(
        HERE / "static" / "favicon.svg", headers={"Content-Type": "image/svg+xml"}
    )


def setup(app: web.Application) -> None:
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    presenter = app[SERVICES].presenter
    directory = app[SERVICES].directory
    env.filters["local"] = presenter.local
    env.filters["text_lang"] = text_lang
    env.globals.update(
        LABELS=LABELS,
        STATUS_LABELS=STATUS_LABELS,
        ACTION_LABELS=ACTION_LABELS,
        event_label=event_label,
        ASSIGNMENT_STATE_LABELS=ASSIGNMENT_STATE_LABELS,
        dept_name=directory.department_name,
        region_name=directory.region_name,
    )
    app.router.add_get("/", portal)
    app.router.add_post("/", submit)
    app.router.add_get("/track", track_form)
    app.router.add_post("/track", track)
    app.router.add_post("/track/rate", rate)
    api_files.add_routes(app)  # before the action route, which would take "attachments"
    pages_audit.add_routes(app)  # and "caller"
    staff.add_routes(app)
    pages_list.add_routes(app)
    wallboard.add_routes(app)
    pages_admin.add_routes(app)
    pages_sms.add_routes(app)
    pages_account.add_routes(app)
    pages_kb.add_routes(app)
    pages_stats.add_routes(app)
    served = add_vendor_routes(app, app[SERVICES].web.assets_dir)
    # linked only when served: without the package pages fall back to system fonts, with no
    # 404 for the browser to report
    env.globals["mongolian_font_css"] = MONGOLIAN_FONT_CSS if MONGOLIAN_FONT in served else ""
    app.router.add_static("/static", HERE / "static")
    # browsers ask for /favicon.ico whatever the page links; answer with the same icon
    app.router.add_get("/favicon.ico", favicon)
