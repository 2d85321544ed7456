"""`hotline serve --demo`: demo users and a few work orders in different states, logins printed."""

from __future__ import annotations

import logging

from aiohttp import web

from agent_ui.context import SERVICES, Services
from tickets.errors import Conflict
from tickets.model import Actor, Caller, Channel, Kind, NewTicket, Role, TicketFilter, Urgency

log = logging.getLogger(__name__)

DEMO_PASSWORD = "hotline-demo"
DEMO_USERS: list[tuple[str, Role, str | None, str]] = [
    ("agent", Role.AGENT, None, "话务员 王娜"),
    ("dispatcher", Role.DISPATCHER, None, "派单员 李强"),
    ("supervisor", Role.SUPERVISOR, None, "班长 张敏"),
    ("manager", Role.MANAGER, None, "热线办主任 赵刚"),
    ("admin", Role.ADMIN, None, "系统管理员"),
    ("hhht-housing", Role.DEPARTMENT, "150100-housing", "呼和浩特市住房和城乡建设局"),
    ("xincheng-housing", Role.DEPARTMENT, "150102-housing", "新城区住房和城乡建设局"),
    ("hhht-urban", Role.DEPARTMENT, "150100-urban", "呼和浩特市城市管理综合执法局"),
    ("baotou-ecology", Role.DEPARTMENT, "150200-ecology", "包头市生态环境局"),
]

DEMO_ORDERS = [
    NewTicket(
        channel=Channel.PHONE,
        kind=Kind.COMPLAINT,
        content="新城区某小区冬季供暖温度一直不达标，室内只有十四五度，多次联系物业无果。",
        summary="市民反映小区供暖温度不达标，物业不处理，要求督促供热单位整改。",
        caller=Caller("刘先生", "13904710001"),
        region="150102",
        address="呼和浩特市新城区海东路某小区",
    ),
    NewTicket(
        channel=Channel.WEB,
        kind=Kind.REPORT,
        content="包头市昆都仑区某工厂夜间偷排废气，气味刺鼻，附近居民无法开窗。",
        caller=Caller("匿名", "13847220002", confidential=True),
        region="150203",
        urgency=Urgency.URGENT,
    ),
    NewTicket(
        channel=Channel.SMS,
        kind=Kind.CONSULT,
        content="请问灵活就业人员在呼和浩特怎么缴纳城镇职工养老保险？",
        caller=Caller(None, "15004710003"),
        region="150100",
    ),
]


async def seed_demo(app: web.Application) -> None:
    svc = app[SERVICES]
    created = []
    for username, role, dept, name in DEMO_USERS:
        try:
            await svc.accounts.create_user(username, DEMO_PASSWORD, role, dept, name)
            created.append(username)
        except Conflict:
            pass
    _, total = await svc.tickets.list_tickets(
        await _actor(svc, "supervisor"), TicketFilter(limit=1)
    )
    if total == 0:
        dispatcher = await _actor(svc, "dispatcher")
        first = await svc.tickets.submit(DEMO_ORDERS[0], await _actor(svc, "agent"))
        second = await svc.tickets.submit(DEMO_ORDERS[1])
        # seeded before the triage starts (hotline.cli), so these dispatches are the first
        await svc.tickets.dispatch(dispatcher, first.id, first.version, "150102-housing")
        await svc.tickets.dispatch(
            dispatcher, second.id, second.version, "150200-ecology", ["150100-urban"]
        )
        await svc.tickets.submit(DEMO_ORDERS[2])
    lines = [f"演示账号（密码均为 {DEMO_PASSWORD}）:"]
    for username, role, dept, name in DEMO_USERS:
        extra = f"  单位 {dept}" if dept else ""
        lines.append(f"  {username:<18} {role.value:<11} {name}{extra}")
    print("\n".join(lines), flush=True)


async def _actor(svc: Services, username: str) -> Actor:
    user = await svc.accounts.user_by_name(username)
    assert user is not None, username
    return user.actor
