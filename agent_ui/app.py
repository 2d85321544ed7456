"""Build the aiohttp application: error handling, security headers, API, OpenAPI, pages."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

# api_calls, api_sms and api_stats add their routes to api.ROUTES when imported
from agent_ui import (  # noqa: F401
    api,
    api_calls,
    api_sms,
    api_stats,
    open311,
    pages,
    pages_cases,
    pages_public,
)
from agent_ui.accounts import LoginThrottled
from agent_ui.context import SERVICES, Services
from agent_ui.errors import error_body, status_for
from agent_ui.openapi import build_openapi
from tickets.errors import DomainError

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
            return await pages.error_page(request, status, exc.message)
        resp = web.json_response(
            error_body(exc.code, exc.message, dict(exc.details)),
            status=status,
            dumps=api._dumps,
        )
        if isinstance(exc, LoginThrottled):
            resp.headers["Retry-After"] = str(exc.details.get("retry_after", 60))
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
    return web.json_response({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI], dumps=api._dumps)


OPENAPI = web.AppKey("openapi", dict)


def create_app(svc: Services) -> web.Application:
    app = web.Application(
        client_max_size=svc.web.max_body_bytes,
        middlewares=[headers_middleware, errors_middleware, open311.open311_errors],
    )
    app[SERVICES] = svc
    app[OPENAPI] = build_openapi()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/v1/openapi.json", openapi)
    api.add_routes(app)  # api_calls registered its routes in api.ROUTES on import
    pages.setup(app)
    pages_public.add_routes(app)
    pages_cases.add_routes(app)
    open311.add_routes(app)
    return app
