"""Server-rendered Chinese pages (placeholder until the page set lands)."""

from __future__ import annotations

import html

from aiohttp import web


def setup(app: web.Application) -> None:
    pass


async def error_page(request: web.Request, status: int, message: str) -> web.Response:
    body = (
        "<!doctype html><html lang='zh-Hans'><meta charset='utf-8'><title>错误</title>"
        f"<p>{html.escape(message)}</p></html>"
    )
    return web.Response(text=body, status=status, content_type="text/html")
