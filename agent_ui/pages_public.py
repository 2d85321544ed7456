"""The public 曝光纠错 column (no login), in Chinese and Mongolian: published cases, the monthly
table of departments' 按时办结率 and 满意率, and an Atom feed of newly published cases.

These pages read only the approved texts of tickets/cases (never the orders themselves)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

from agent_ui import i18n
from agent_ui.context import services
from agent_ui.pages import page_lang
from agent_ui.pages_staff import render
from tickets.cases import PublicCase
from tickets.errors import InvalidInput, NotFound
from tickets.stats import public_month
from tickets.stats_store import month_start


def _render(
    request: web.Request, template: str, lang: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    query = {k: v for k, v in request.query.items() if k != "lang"}
    links = [
        (code, name, request.path + "?" + urlencode({**query, "lang": code}))
        for code, name in i18n.LANG_NAMES.items()
    ]
    ctx = {
        "t": i18n.translator(lang),
        "lang_links": links,
        "page_path": request.path,
        **context,
    }
    resp = render(request, template, ctx, status=status, lang=lang)
    resp.headers["Cache-Control"] = "public, max-age=60"  # nothing personal on these pages
    chosen = i18n.normalize_lang(request.query.get("lang"))
    if chosen == lang and request.cookies.get(i18n.LANG_COOKIE) != lang:
        resp.set_cookie(
            i18n.LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="Lax", httponly=True
        )
    return resp


def took(case: PublicCase, lang: str) -> str:
    """How long the answer took, in days and hours."""
    hours = max(0, round(case.hours_taken))
    days, rest = divmod(hours, 24)
    t = i18n.translator(lang)
    parts = ([f"{days} {t('unit_days')}"] if days else []) + [f"{rest} {t('unit_hours')}"]
    return " ".join(parts)


def case_view(request: web.Request, case: PublicCase, lang: str) -> dict[str, Any]:
    """What the public sees of a case: the approved texts and nothing else."""
    svc = services(request)
    mn = lang == i18n.MN
    t = i18n.translator(lang)
    return {
        "id": case.id,
        "title": (case.title_mn if mn and case.title_mn else case.title),
        "title_lang": i18n.MN if mn and case.title_mn else i18n.ZH,
        "question": (case.question_mn if mn and case.question_mn else case.question),
        "question_lang": i18n.MN if mn and case.question_mn else i18n.ZH,
        "answer": (case.answer_mn if mn and case.answer_mn else case.answer),
        "answer_lang": i18n.MN if mn and case.answer_mn else i18n.ZH,
        "department": svc.directory.department_name(case.department)
        if case.department
        else t("centre"),
        "received": svc.presenter.local(case.received_at, "%Y-%m-%d"),
        "answered": svc.presenter.local(case.answered_at, "%Y-%m-%d"),
        "took": took(case, lang),
        "rating": t(f"sat_{case.satisfaction}") if case.satisfaction else t("not_rated"),
    }


async def public_list(request: web.Request) -> web.Response:
    svc = services(request)
    lang = page_lang(request)
    size = svc.features.public.page_size
    try:
        page = max(1, int(request.query.get("page", "1")))
    except ValueError:
        page = 1
    found, total = await svc.cases.published(size, (page - 1) * size)
    pages = max(1, -(-total // size))
    ctx = {
        "cases": [case_view(request, c, lang) for c in found],
        "page": page,
        "pages": pages,
        "prev_url": f"/public?page={page - 1}" if page > 1 else None,
        "next_url": f"/public?page={page + 1}" if page < pages else None,
    }
    return _render(request, "public/list.html", lang, ctx)


async def public_case(request: web.Request) -> web.Response:
    svc = services(request)
    lang = page_lang(request)
    try:
        case_id = int(request.match_info["id"])
    except ValueError:
        raise NotFound("案例不存在") from None
    case = await svc.cases.published_case(case_id)
    return _render(request, "public/case.html", lang, {"c": case_view(request, case, lang)})


async def public_monthly(request: web.Request) -> web.Response:
    svc = services(request)
    lang = page_lang(request)
    today = svc.stats.today()
    raw = request.query.get("month", "")
    if raw:
        try:
            first = month_start(date.fromisoformat(raw + "-01"))
        except ValueError:
            raise InvalidInput("参数 month 应为 YYYY-MM", field="month") from None
    else:
        first = month_start(month_start(today) - timedelta(days=1))  # last month
    rows = await public_month(svc.stats, first, svc.features.stats.public_min_replies)
    months = []
    m = month_start(today)
    for _ in range(12):
        months.append(m)
        m = month_start(m - timedelta(days=1))
    ctx = {
        "month": first,
        "months": months,
        "rows": [
            (svc.directory.department_name(code), on_time, sat, replies, ratings)
            for code, on_time, sat, replies, ratings in rows
        ],
    }
    return _render(request, "public/monthly.html", lang, ctx)


async def public_feed(request: web.Request) -> web.Response:
    """Atom (RFC 4287) feed of the newest published cases."""
    svc = services(request)
    base = svc.web.public_url.rstrip("/")
    found, _ = await svc.cases.published(svc.features.public.feed_entries)
    updated = max((c.published_at for c in found if c.published_at), default=None)
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="zh-Hans">',
        "<title>12345 政务服务便民热线 · 曝光纠错</title>",
        f"<id>{escape(base)}/public</id>",
        f'<link rel="alternate" type="text/html" href={quoteattr(base + "/public")}/>',
        '<link rel="self" type="application/atom+xml" href='
        + quoteattr(base + "/public/cases.atom")
        + "/>",
        f"<updated>{(updated or svc.stats.clock()).isoformat(timespec='seconds')}</updated>",
        "<author><name>12345 政务服务便民热线</name></author>",
    ]
    for c in found:
        view = case_view(request, c, i18n.ZH)
        url = f"{base}/public/cases/{c.id}"
        published = (c.published_at or c.updated_at).isoformat(timespec="seconds")
        text = f"{view['question']}\n\n{view['department']}：{view['answer']}"
        parts += [
            "<entry>",
            f"<id>{escape(url)}</id>",
            f"<title>{escape(view['title'])}</title>",
            f'<link rel="alternate" type="text/html" href={quoteattr(url)}/>',
            f"<published>{published}</published>",
            f"<updated>{published}</updated>",
            f"<summary>{escape(view['question'])}</summary>",
            f'<content type="text">{escape(text)}</content>',
            "</entry>",
        ]
    parts.append("</feed>")
    return web.Response(
        text="\n".join(parts),
        content_type="application/atom+xml",
        charset="utf-8",
        headers={"Cache-Control": "public, max-age=60"},
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/public", public_list)
    app.router.add_get(r"/public/cases/{id:\d{1,18}}", public_case)
    app.router.add_get("/public/departments", public_monthly)
    app.router.add_get("/public/cases.atom", public_feed)
