"""Staff pages of personal data: the order page's 显示号码 form (audited with a reason) and the
access log for supervisors, with its filters kept in the URL."""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from agent_ui.api_audit import AUDIT_ROLES
from agent_ui.context import client_address, require_staff, services
from agent_ui.filters import ACCESS_KEYS, read_access_filter
from agent_ui.pages_list import MAX_PAGE, PAGE_SIZE
from agent_ui.pages_staff import CsrfFailed, detail_page, http_status, render, staff_context
from tickets.access import REVEAL_ROLES
from tickets.errors import DomainError, InvalidInput
from tickets.model import ACCESS_KIND_LABELS, LABELS


async def reveal_caller(request: web.Request) -> web.Response:
    """The order page again, with the caller in full (no redirect: the full number is shown
    for this one answer, never kept in a URL or the page that reloads)."""
    ticket_id = int(request.match_info["id"])
    actor = await require_staff(request, *REVEAL_ROLES)
    svc = services(request)
    await svc.tickets.get(actor, ticket_id)  # the order before the form
    try:
        await require_staff(request, write=True)
        form = await request.post()
        reason = str(form.get("reason", ""))
        caller = await svc.privacy.reveal_caller(actor, ticket_id, reason, client_address(request))
    except (CsrfFailed, DomainError) as exc:
        return await detail_page(
            request, actor, ticket_id, error=exc.message, status=http_status(exc)
        )
    return await detail_page(request, actor, ticket_id, revealed=caller)


async def audit_page(request: web.Request) -> web.Response:
    await require_staff(request, *AUDIT_ROLES)
    svc = services(request)
    query = request.query
    raw = query.get("page") or "1"
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidInput(f"页码应在 1–{MAX_PAGE} 之间", field="page")
    page = int(raw)
    f = read_access_filter(
        query, limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, tz=svc.presenter.tz
    )
    found, total = await svc.privacy.list(f)
    filters = {k: query[k] for k in ACCESS_KEYS if query.get(k)}
    pages = max(1, -(-total // PAGE_SIZE))

    def page_url(n: int) -> str:
        return "/staff/audit?" + urlencode({**filters, "page": n})

    ctx = {
        **await staff_context(request),
        "items": found,
        "total": total,
        "filters": filters,
        "kinds": ACCESS_KIND_LABELS,
        "roles": LABELS,
        "page": page,
        "pages": pages,
        "prev_url": page_url(page - 1) if page > 1 else None,
        "next_url": page_url(page + 1) if page < pages else None,
    }
    return render(request, "staff/audit.html", ctx)


def add_routes(app: web.Application) -> None:
    """Before the order page's action route, which would take "caller" for an action."""
    app.router.add_post(r"/staff/tickets/{id:\d{1,18}}/caller", reveal_caller)
    app.router.add_get("/staff/audit", audit_page)
