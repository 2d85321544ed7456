"""Build the aiohttp application: error handling, security headers, API, OpenAPI, pages."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from agent_ui import api, api_calls, api_sms, pages  # noqa: F401 - they add to api.ROUTES
from agent_ui.accounts import LoginThrottled
from agent_ui.context import SERVICES, BodyTimeout, Services
from agent_ui.errors import error_body, status_for
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
        if isinstance(exc, LoginThrottled):
            resp.headers["Retry-After"] = str(exc.details.get("retry_after", 60))
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
            return await pages.error_page(request, exc.status, text)
        codes = {404: ("not_found", "接口不存在"), 405: ("method_not_allowed", "不支持该请求方法")}
        code, msg = codes.get(exc.status, ("http_error", exc.reason))
        return web.json_response(error_body(code, msg), status=exc.status, dumps=api._dumps)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        msg = "服务器内部错误，请稍后重试"
        if not _is_api(request):
            return await pages.error_page(request, 500, msg)
        return web.json_response(error_body("internal_error", msg), status=500, dumps=api._dumps)


@web.middleware
async def body_timeout_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Read the body before the handler, within [server] body_timeout_s: a client that sends
    it slowly (or never) gets 408 instead of holding a connection and a handler forever. The
    body is kept on the request, so the handler's own read, json() or post() uses it."""
    if request.body_exists:
        limit = request.app[SERVICES].web.body_timeout_s
        try:
            async with asyncio.timeout(limit):
                if request.content_type == "multipart/form-data":
                    await request.post()  # kept as request.post()'s answer
                else:
                    await request.read()  # over client_max_size: 413, as before
        except TimeoutError:
            raise BodyTimeout(f"请求体未在 {limit:g} 秒内收完", timeout_s=limit) from None
    return await handler(request)


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


def create_app(svc: Services) -> web.Application:
    app = web.Application(
        client_max_size=svc.web.max_body_bytes,
        middlewares=[headers_middleware, errors_middleware, body_timeout_middleware],
    )
    app[SERVICES] = svc
    app[OPENAPI] = build_openapi()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/openapi.json", openapi)
    api.add_routes(app)  # api_calls registered its routes in api.ROUTES on import
    pages.setup(app)
    return app
