"""Wire settings, database, directory, services and the web app; one cleanup_ctx per resource."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

from aiohttp import web

from agent_ui.accounts import Accounts, LoginThrottle
from agent_ui.app import create_app
from agent_ui.context import Services, WebSettings
from agent_ui.store import count_users
from agent_ui.views import Presenter
from hotline.bus import InProcessBus
from hotline.config import Settings
from hotline.db import open_database
from routing.directory import Directory, load_directory
from routing.sla import DeadlinePolicy
from routing.watcher import DeadlineWatcher
from tickets.db import Database
from tickets.service import Limits, TicketService

log = logging.getLogger(__name__)

DATABASE = web.AppKey("database", Database)
BUS = web.AppKey("bus", InProcessBus)


def load_routing(settings: Settings) -> Directory:
    return load_directory(settings.resolve(settings.routing.directory), settings.routing)


def build_services(settings: Settings, db: Database, bus: InProcessBus) -> Services:
    tz = ZoneInfo(settings.locale.timezone)
    directory = load_routing(settings)
    lim = settings.intake
    tickets = TicketService(
        db,
        directory,
        DeadlinePolicy(settings.sla, tz),
        bus,
        timezone=settings.locale.timezone,
        limits=Limits(
            content=lim.max_content_chars,
            summary=lim.max_summary_chars,
            reply=lim.max_reply_chars,
            name=lim.max_name_chars,
            address=lim.max_address_chars,
            reason=lim.max_reason_chars,
        ),
    )
    sec = settings.security
    accounts = Accounts(
        db,
        directory,
        session_ttl=timedelta(hours=sec.session_ttl_hours),
        password_min_length=sec.password_min_length,
        throttle=LoginThrottle(sec.login_max_failures, sec.login_window_s, sec.login_lockout_s),
    )
    return Services(
        tickets=tickets,
        accounts=accounts,
        directory=directory,
        presenter=Presenter(directory, tz),
        web=WebSettings(
            max_body_bytes=settings.server.max_body_bytes,
            cookie_secure=settings.server.cookie_secure,
            public_url=settings.server.public_url,
            page_size_max=settings.intake.page_size_max,
        ),
    )


def make_app(settings: Settings, db: Database | None = None) -> web.Application:
    """The whole platform as one aiohttp app; `db` may be passed in (tests share one)."""
    owned = db is None
    database = db or open_database(settings)
    bus = InProcessBus()
    services = build_services(settings, database, bus)
    app = create_app(services)
    app[DATABASE] = database
    app[BUS] = bus

    async def database_ctx(app: web.Application) -> AsyncIterator[None]:
        yield
        if owned:
            database.close()

    async def session_purge_ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_purge_sessions(services.accounts))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def watcher_ctx(app: web.Application) -> AsyncIterator[None]:
        sla = settings.sla
        watcher = DeadlineWatcher(services.tickets, sla.watch_interval_s, sla.watch_batch)
        task = asyncio.create_task(watcher.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    app.cleanup_ctx.append(database_ctx)
    app.cleanup_ctx.append(session_purge_ctx)
    app.cleanup_ctx.append(watcher_ctx)
    app.on_startup.append(_hint_first_user)
    return app


async def _purge_sessions(accounts: Accounts, every_s: float = 3600) -> None:
    """Expired sessions are useless rows: drop them hourly."""
    while True:
        try:
            n = await accounts.purge_expired()
            if n:
                log.info("removed %d expired sessions", n)
        except Exception:  # keep purging next hour; a failure here must not stop the server
            log.exception("session purge failed")
        await asyncio.sleep(every_s)


async def _hint_first_user(app: web.Application) -> None:
    if await app[DATABASE].read(count_users) == 0:
        log.warning(
            "还没有任何工作人员账号。创建管理员: hotline user add --username admin "
            "--password '…' --role admin   （或用 make demo / hotline serve --demo 体验）"
        )
