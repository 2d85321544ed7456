"""Build the aiohttp application: error handling, security headers, API, OpenAPI, pages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import LineTooLong
from aiohttp.web_protocol import RequestHandler

from agent_ui import (  # noqa: F401 - api_*, assist add to api.ROUTES on import
    api,
    api_audit,
    api_calls,
    api_export,
    api_kb,
    api_search,
    api_sms,
    api_stats,
    assist,
    live,
    open311,
    pages,
    pages_cases,
    pages_public,
    softphone,
)
from agent_ui.context import SERVICES, BodyTimeout, Services, check_text
from agent_ui.errors import error_body, status_for
from agent_ui.limits import Throttled
from agent_ui.openapi import build_openapi
from tickets.errors import DatabaseUnavailable, DomainError

log = logging.getLogger(__name__)


def _is_api(request: web.Request) -> bool:
    return request.path.startswith("/api/")


@web.middleware
async def errors_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except DomainError as exc:
        status = status_for(exc)
        if not _is_api(request):
            resp = await pages.error_page(request, status, exc.message)
        else:
            resp = web.json_response(
                error_body(exc.code, exc.message, dict(exc.details)),
                status=status,
                dumps=api._dumps,
            )
        if isinstance(exc, Throttled):
            resp.headers["Retry-After"] = str(exc.retry_after)
        elif isinstance(exc, BodyTimeout):
            resp.force_close()  # the rest of the body may still come: not a request
        return resp
    except DatabaseUnavailable as exc:
        # an outage: 503 and no traceback per request (the database logs its start and end)
        if not _is_api(request):
            resp = await pages.error_page(request, 503, exc.message)
        else:
            details: dict[str, object] = {"retry_after": exc.retry_after_s}
            body = error_body(exc.code, exc.message, details)
            resp = web.json_response(body, status=503, dumps=api._dumps)
        resp.headers["Retry-After"] = str(exc.retry_after_s)
        return resp
    except web.HTTPRequestEntityTooLarge:
        limit = request.app[SERVICES].web.max_body_bytes
        msg = f"请求体过大（上限 {limit} 字节）"
        if not _is_api(request):
            return await pages.error_page(request, 413, msg)
        return web.json_response(
            error_body("body_too_large", msg, {"max_bytes": limit}), status=413, dumps=api._dumps
        )
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        if not _is_api(request):
            text = {404: "页面不存在", 405: "不支持该请求方法"}.get(exc.status, exc.reason)
            page = await pages.error_page(request, exc.status, text)
            if "Allow" in exc.headers:
                page.headers["Allow"] = exc.headers["Allow"]
            return page
        codes = {404: ("not_found", "接口不存在"), 405: ("method_not_allowed", "不支持该请求方法")}
        code, msg = codes.get(exc.status, ("http_error", exc.reason))
        resp = web.json_response(error_body(code, msg), status=exc.status, dumps=api._dumps)
        if "Allow" in exc.headers:
            resp.headers["Allow"] = exc.headers["Allow"]
        return resp
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        msg = "服务器内部错误，请稍后重试"
        if not _is_api(request):
            return await pages.error_page(request, 500, msg)
        return web.json_response(error_body("internal_error", msg), status=500, dumps=api._dumps)


_GATEWAYS = "/api/v1/sms/"  # gateways' raw parameters: their handlers drop controls themselves
# multipart uploads are streamed by their handlers (agent_ui.uploads), which check their fields
_FORMS = ("application/x-www-form-urlencoded",)


@web.middleware
async def input_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Refuse control characters (NUL …) in query strings and form fields, for every route at
    once, before any handler or store sees them (JSON bodies: read_json)."""
    if not request.path.startswith(_GATEWAYS):
        for name, value in request.query.items():
            check_text(value, name)
        if request.method == "POST" and request.content_type in _FORMS:
            for name, field in (await request.post()).items():
                if isinstance(field, str):
                    check_text(field, name)
    return await handler(request)


# a body must keep coming at this rate (bytes per second) after the first body_timeout_s:
# a phone on a weak link uploading a photo does, a client holding the connection does not
MIN_BODY_RATE = 8 * 1024
BODY_WATCH_S = 0.5  # how often the deadline follows the bytes received


@web.middleware
async def body_timeout_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The request body must arrive within [server] body_timeout_s, plus a second for every
    MIN_BODY_RATE bytes received (so a large upload streamed by its handler is not cut off):
    a client that sends it slowly, or never, gets 408 and its connection is closed, instead of
    holding the connection and its handler forever. The deadline is dropped as soon as the
    whole body has arrived (what the handler does with it then takes as long as it takes)."""
    if not request.body_exists:
        return await handler(request)
    base = request.app[SERVICES].web.body_timeout_s
    body = request.content
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = asyncio.timeout(start + base)

    async def follow() -> None:
        while not body.is_eof():
            deadline.reschedule(start + base + body.total_bytes / MIN_BODY_RATE)
            await asyncio.sleep(BODY_WATCH_S)
        deadline.reschedule(None)

    try:
        async with deadline:
            watch = asyncio.create_task(follow())
            try:
                return await handler(request)
            finally:
                watch.cancel()
    except TimeoutError:
        if deadline.expired() and not body.is_eof():
            raise BodyTimeout(
                f"请求体未在限定时间内收完（{base:g} 秒起）", timeout_s=base
            ) from None
        raise


@web.middleware
async def headers_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers.setdefault("X-Content-Type-Options", "nosniff")
    resp.headers.setdefault("X-Frame-Options", "DENY")
    resp.headers.setdefault("Referrer-Policy", "same-origin")
    if _is_api(request):
        resp.headers.setdefault("Cache-Control", "no-store")
    return resp


async def healthz(request: web.Request) -> web.Response:
    """200 when the platform can serve; 503 while its database is unreachable (a SELECT 1
    with a short timeout, its answer kept for a second, so probes cost next to nothing)."""
    if await request.app[SERVICES].tickets.db.ping():
        return web.json_response({"status": "ok"})
    return web.json_response(
        {"status": "unavailable", "database": "unavailable"},
        status=503,
        headers={"Retry-After": str(DatabaseUnavailable.retry_after_s)},
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI], dumps=api._dumps)


OPENAPI = web.AppKey("openapi", dict)


def _json_parser_errors() -> None:
    """Requests aiohttp cannot even parse (a URL or header line too long, a broken request
    line) never reach a middleware: aiohttp answers them itself, in plain text. aiohttp has no
    hook for that answer, so wrap its one method (once per process) to give the documented
    JSON error body instead; status, logging and closing the connection stay aiohttp's."""
    original = RequestHandler.handle_error
    if getattr(original, "_json_bodies", False):
        return

    def handle_error(
        self: RequestHandler,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        resp = original(self, request, status, exc, message)
        if status >= 500:
            return resp
        if isinstance(exc, LineTooLong):
            code, text = "line_too_long", "请求地址或请求头过长"
        else:
            code, text = "bad_request", "无法解析的 HTTP 请求"
        out = web.json_response(error_body(code, text), status=status, dumps=api._dumps)
        out.force_close()
        return out

    handle_error._json_bodies = True  # type: ignore[attr-defined]
    RequestHandler.handle_error = handle_error  # type: ignore[method-assign]


def create_app(svc: Services, bus: Any = None) -> web.Application:
    app = web.Application(
        client_max_size=svc.web.max_body_bytes,
        middlewares=[
            headers_middleware,
            errors_middleware,
            body_timeout_middleware,  # before anything reads the body (input_middleware)
            input_middleware,
            open311.open311_errors,  # errors under /open311 in that spec's format
        ],
    )
    _json_parser_errors()
    app[SERVICES] = svc
    app[OPENAPI] = build_openapi()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/openapi.json", openapi)
    api.add_routes(app)  # api_calls registered its routes in api.ROUTES on import
    pages.setup(app)
    live.setup(app, bus)
    pages_public.add_routes(app)
    pages_cases.add_routes(app)
    open311.add_routes(app)
    softphone.setup(app)
    return app
