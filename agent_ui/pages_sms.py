"""Staff page of the SMS outbox: with the embedded backend, where notices are read."""

from __future__ import annotations

import dataclasses

from aiohttp import web

from agent_ui.context import require_staff, services
from agent_ui.pages_staff import PAGE_SIZE, SMS_VIEW_ROLES, redirect, render, staff_context
from tickets.access import mask_for

OUTBOX_STATUS = {
    "kept": "仅记录（未接短信网关）",
    "queued": "待发送",
    "sending": "发送中",
    "sent": "已发送",
    "delivered": "已送达",
    "failed": "发送失败",
    "folded": "已合并",
    "limited": "超出每日上限，未发送",
}
OUTBOX_PURPOSE = {
    "ack": "受理回执",
    "supplement": "补充回执",
    "dispatch": "派单通知",
    "warning": "时限预警",
    "overdue": "超期督办",
    "reply": "答复通知",
    "survey": "满意度回访",
    "survey_thanks": "回访致谢",
    "stopped": "退订确认",
}


async def sms_outbox(request: web.Request) -> web.Response:
    """The outbox: with the embedded backend this is where notices are read (none are sent)."""
    actor = await require_staff(request, *SMS_VIEW_ROLES)
    svc = services(request)
    if svc.sms is None:
        return redirect("/staff/tickets")
    status = request.query.get("status") or None
    if status not in OUTBOX_STATUS:
        status = None
    messages = [
        dataclasses.replace(m, recipient=mask_for(actor.role, m.recipient) or "")
        for m in await svc.sms.outbox(status=status, limit=PAGE_SIZE)
    ]
    ctx = {
        **await staff_context(request),
        "messages": messages,
        "status": status,
        "statuses": OUTBOX_STATUS,
        "purposes": OUTBOX_PURPOSE,
        "backend": svc.sms.s.backend,
    }
    return render(request, "staff/sms.html", ctx)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/staff/sms", sms_outbox)
