"""Wire settings, database, directory, services and the web app; one cleanup_ctx per resource."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from concurrent.futures import (
    BrokenExecutor,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from agent_ui.accounts import Accounts
from agent_ui.app import create_app, healthz
from agent_ui.assist import Assistant
from agent_ui.context import SERVICES, Features, Services, WebSettings
from agent_ui.limits import (
    CitizenGuard,
    CitizenPolicy,
    LoginPolicy,
    LoginThrottle,
    MemoryWindows,
    Windows,
)
from agent_ui.oidc import ClaimRules, OidcClient
from agent_ui.sso import SingleSignOn
from agent_ui.store import count_users
from agent_ui.uploads import FileStore
from agent_ui.views import Presenter
from hotline.bus import EventBus, InProcessBus
from hotline.centres import standby_setup
from hotline.config import ConfigError, Settings
from hotline.db import open_database
from hotline.jobs_redis import StreamJobs
from hotline.lease import LocalLease, RedisLease
from hotline.search import build_search_services, search_ctx
from routing.calendar import HolidayCalendar
from routing.directory import Directory, DirectoryError, load_directory
from routing.gazetteer import Gazetteer, GazetteerError
from routing.rules import DispatchRules, DispatchTableError
from routing.sla import DeadlinePolicy
from routing.triage import (
    Planner,
    Predictor,
    Triage,
    TriageSettings,
    plan_in_worker,
    run_triage,
    start_worker,
)
from routing.watcher import DeadlineWatcher
from telephony.call_stats import AgentTimeRecorder, CallStatsService
from telephony.center import CallCenter
from telephony.notify import Notifier
from telephony.pool import PoolPaths, WorkerPool
from telephony.presence import (
    CentrePresence,
    LocalPresence,
    Presence,
    RedisPresence,
    keep_renewed,
)
from telephony.prompts import (
    PromptError,
    PromptLibrary,
    build_placeholder_prompts,
    build_prompts,
)
from telephony.sms import KannelGateway, SmsService
from telephony.standby import Lease, StandbySetup
from tickets.case_service import CaseService
from tickets.db import Database
from tickets.model import Role, TicketEvent
from tickets.outbox import EVENT_TOPICS, NOTICE, TRIAGE, JobQueue, WorkQueue
from tickets.privacy import AccessLog
from tickets.service import Limits, TicketService
from tickets.stats import StatsService

log = logging.getLogger(__name__)

DATABASE = web.AppKey("database", Database)
BUS = web.AppKey("bus", EventBus)
LEASE = web.AppKey("lease", Lease)
ROLES = frozenset({"web", "sip", "worker"})


def load_routing(settings: Settings) -> Directory:
    try:
        return load_directory(settings.resolve(settings.routing.directory), settings.routing)
    except DirectoryError as exc:
        raise ConfigError(str(exc)) from None


def load_triage_parts(settings: Settings, directory: Directory) -> tuple[Gazetteer, DispatchRules]:
    """Region detection and the dispatch table; a bad file or rule stops start-up."""
    try:
        gazetteer = Gazetteer.from_directory(directory, settings.resolve(settings.routing.aliases))
        rules = DispatchRules(directory, settings.routing.dispatch)
    except (GazetteerError, DispatchTableError) as exc:
        raise ConfigError(str(exc)) from None
    return gazetteer, rules


def load_predictor(settings: Settings) -> Predictor | None:
    """The shipped classifier, or None (every order then goes to the review queue)."""
    path = settings.resolve(settings.triage.model)
    if not (path / "manifest.json").exists():
        log.warning("分类模型不存在 (%s)：所有工单进入人工派单队列；用 make model 生成", path)
        return None
    from classifier.model import Classifier

    return Classifier.load(path)


def build_planner(settings: Settings) -> Planner:
    """The triage's planner as a worker process builds it (model, regions, dispatch table)."""
    gazetteer, rules = load_triage_parts(settings, load_routing(settings))
    cfg = settings.triage
    return Planner(
        load_predictor(settings), gazetteer, rules, TriageSettings(cfg.auto_dispatch, cfg.threshold)
    )


class PlannerPool(Executor):
    """Triage worker processes, started fresh (spawn: no copy of this process's threads and
    locks) with their own planner; a pool broken by a dead worker is replaced, and the batch
    that saw it fails and is retried from the work queue."""

    def __init__(self, workers: int, build: Callable[[], Planner]) -> None:
        self._workers = workers
        self._build = build
        self._pool = self._new()

    def _new(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            self._workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start_planner_worker,
            initargs=(os.getpid(), self._build),
        )

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        try:
            return self._pool.submit(fn, *args, **kwargs)
        except BrokenExecutor:
            log.warning("分类工作进程已退出，重新启动")
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new()
            return self._pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._pool.shutdown(wait=wait, cancel_futures=cancel_futures)


def watch_parent(parent: int, exit_code: int = 0) -> None:
    """A pool worker ends with the process that started it (`parent`, its pid passed in), even
    one killed with SIGKILL: a worker blocked on its queue would otherwise outlive it."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(exit_code)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _start_planner_worker(parent: int, build: Callable[[], Planner]) -> None:
    """A triage worker's start: it ends with the server, then builds its planner."""
    watch_parent(parent)
    start_worker(build)


def build_services(
    settings: Settings, db: Database, bus: EventBus, limits_store: Any = None
) -> Services:
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
            extension_days=lim.max_extension_days,
        ),
    )
    sec = settings.security
    # one store for every limit: in this process, or RedisWindows shared by all (make_app)
    limits_store = limits_store or MemoryWindows(sec.limit_max_keys)
    accounts = Accounts(
        db,
        directory,
        session_ttl=timedelta(hours=sec.session_ttl_hours),
        session_idle=timedelta(minutes=sec.session_idle_minutes),
        local_login=settings.sso.local_login,
        password_min_length=sec.password_min_length,
        throttle=LoginThrottle(
            LoginPolicy(
                free_failures=sec.login_max_failures,
                address_failures=sec.login_address_failures,
                window_s=sec.login_window_s,
                first_delay_s=sec.login_first_delay_s,
                max_delay_s=sec.login_lockout_s,
            ),
            windows=limits_store,
        ),
    )
    return Services(
        tickets=tickets,
        accounts=accounts,
        sso=build_sso(settings, db, accounts, directory, limits_store),
        citizens=CitizenGuard(
            CitizenPolicy(
                lookups_per_minute=sec.lookups_per_minute,
                misses_per_number=sec.lookup_misses_per_number,
                miss_window_s=sec.lookup_miss_window_s,
                intake_per_hour=sec.intake_per_hour,
            ),
            windows=limits_store,
        ),
        directory=directory,
        stats=StatsService(
            db,
            directory,
            timezone=settings.locale.timezone,
            weights=settings.stats.weights,
            min_assigned=settings.stats.min_assigned,
        ),
        call_stats=CallStatsService(db, settings.locale.timezone),
        cases=CaseService(db),
        features=Features(
            settings.stats,
            settings.public,
            settings.open311,
            tuple(dict.fromkeys(r.category.split("/")[0] for r in settings.routing.dispatch)),
        ),
        # marks and countdowns by the service's own clock (tests move it)
        presenter=Presenter(directory, tz, clock=tickets.now),
        privacy=AccessLog(db, tickets),
        web=WebSettings(
            max_body_bytes=settings.server.max_body_bytes,
            # Secure whenever the public address is https, whatever the flag says
            cookie_secure=settings.server.cookie_secure
            or settings.server.public_url.startswith("https://"),
            public_url=settings.server.public_url,
            page_size_max=settings.intake.page_size_max,
            assets_dir=settings.resolve(settings.server.assets_dir),
            trusted_proxies=tuple(
                ipaddress.ip_network(p, strict=False) for p in settings.server.trusted_proxies
            ),
            form_action=(_origin(settings.sso.issuer),) if settings.sso.enabled else (),
            body_timeout_s=settings.server.body_timeout_s,
        ),
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def build_sso(
    settings: Settings, db: Database, accounts: Accounts, directory: Directory, windows: Windows
) -> SingleSignOn | None:
    """Staff single sign-on with the [sso] identity provider, or None when it is off."""
    cfg = settings.sso
    if not cfg.enabled:
        return None
    public = settings.server.public_url.rstrip("/")
    client = OidcClient(
        cfg.issuer,
        cfg.client_id,
        cfg.client_secret,
        redirect_uri=public + "/staff/sso/callback",
        scopes=cfg.scopes,
        timeout_s=cfg.timeout_s,
        leeway_s=cfg.clock_leeway_s,
    )
    rules = ClaimRules(
        role_claim=cfg.role_claim,
        department_claim=cfg.department_claim,
        username_claim=cfg.username_claim,
        name_claim=cfg.name_claim,
        roles={value: Role(role) for value, role in cfg.roles.items()},
    )
    return SingleSignOn(
        client,
        db,
        accounts,
        rules,
        directory.has_department,
        login_timeout=timedelta(seconds=cfg.login_timeout_s),
        public_url=public,
        rp_logout=cfg.rp_logout,
        windows=windows,
    )


def make_app(
    settings: Settings, db: Database | None = None, roles: Iterable[str] | None = None
) -> web.Application:
    """The platform as one aiohttp app; `db` may be passed in (tests share one). `roles` (default
    [server] roles: all) choose what this process runs: "web" the pages and API, "sip" the call
    centre, "worker" the background work; a process without "web" answers only /healthz."""
    run = frozenset(roles if roles is not None else settings.server.roles)
    if not run or run - ROLES:
        raise ValueError(f"未知角色: {', '.join(sorted(run - ROLES)) or '（空）'}")
    owned = db is None
    database = db or open_database(settings)
    redis_client: Any = None
    bus: EventBus
    lease: Lease = LocalLease()
    limits_store = None
    streams = None  # with Redis: background work delivered through its streams
    if settings.redis.url:
        import redis.asyncio as aioredis

        from agent_ui.limits import RedisWindows
        from hotline.bus_redis import RedisBus

        prefix = settings.redis.prefix
        redis_client = aioredis.from_url(
            settings.redis.url, socket_timeout=5, socket_connect_timeout=5
        )
        bus = RedisBus(settings.redis.url, prefix)
        limits_store = RedisWindows(redis_client, prefix)
        lease = RedisLease(
            redis_client, "deadline-watcher", max(30.0, 3 * settings.sla.watch_interval_s), prefix
        )
        streams = StreamJobs(redis_client, prefix)
    else:
        bus = InProcessBus()
    services = build_services(settings, database, bus, limits_store)
    services.events = bus
    services.telephony = settings.telephony.enabled
    ttl = settings.redis.presence_ttl_s
    presence: Presence = (
        RedisPresence(redis_client, ttl, settings.redis.prefix)
        if redis_client is not None
        else LocalPresence(ttl)
    )
    services.presence = presence
    gazetteer, rules = load_triage_parts(settings, services.directory)
    services.search = build_search_services(settings, database, bus, services, gazetteer)
    worker = "worker" in run

    def jobs(table: WorkQueue) -> JobQueue:
        """A consumer's queue: the table itself, or with Redis the table's stream."""
        return streams(table) if streams is not None else table

    if worker:
        for follower in (services.search.orders, services.search.similar):
            assert isinstance(follower.queue, WorkQueue)
            follower.queue = jobs(follower.queue)
    app = create_app(services, bus) if "web" in run else health_app(services)
    app[DATABASE] = database
    app[BUS] = bus
    app[LEASE] = lease

    async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
        from hotline.bus_redis import RedisBus

        assert isinstance(bus, RedisBus)
        await bus.start()
        try:  # news published before the subscription is in place would be missed
            await bus.wait_ready(within_s=5)
        except TimeoutError:
            log.warning("Redis %s 暂不可用：先在本进程内运行，连上后恢复共享", settings.redis.url)
        yield
        await bus.stop()
        await redis_client.aclose()

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
        task = asyncio.create_task(watcher.run(lease))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await lease.release()

    def suggester() -> Planner:
        """The triage's suggestion logic for the order form (its own classifier, loaded on
        the first keystroke's request, not at start)."""
        cfg = settings.triage
        return Planner(
            load_predictor(settings), gazetteer, rules, TriageSettings(False, cfg.threshold)
        )

    services.assist = Assistant(suggester)
    att = settings.attachments
    services.files = FileStore(settings.resolve(att.dir), att.max_bytes, list(att.types))
    services.max_files = att.max_per_order
    services.max_files_per_request = att.max_per_request

    async def triage_ctx(app: web.Application) -> AsyncIterator[None]:
        cfg = settings.triage
        # predictions are CPU-bound and stay off the event loop: in worker processes (which
        # load the model themselves) or, with workers = 0, in one thread of this process
        executor: Executor
        if cfg.workers:
            executor = PlannerPool(cfg.workers, functools.partial(build_planner, settings))
        else:
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="triage")

        async def run() -> None:
            # the model loads in the background: the server listens meanwhile, and the
            # orders that come in wait in the durable queue
            loop = asyncio.get_running_loop()
            predictor = None
            while True:
                try:
                    if cfg.workers:  # start the workers now: each loads the model once
                        await asyncio.gather(
                            *(
                                loop.run_in_executor(executor, plan_in_worker, [])
                                for _ in range(cfg.workers)
                            )
                        )
                    else:
                        predictor = await loop.run_in_executor(executor, load_predictor, settings)
                    break
                except Exception:  # a damaged model: orders wait in the queue meanwhile
                    log.exception("分类模型无法加载，%d 秒后重试", MODEL_RETRY_S)
                    await asyncio.sleep(MODEL_RETRY_S)
            triage = Triage(
                services.tickets,
                predictor,
                gazetteer,
                rules,
                TriageSettings(cfg.auto_dispatch, cfg.threshold),
                executor,
                plan_all=plan_in_worker if cfg.workers else None,
            )
            queue = jobs(WorkQueue(database, TRIAGE, lease=JOB_LEASE))
            await run_triage(triage, queue, wake, consumers=cfg.workers)

        wake, waker = _wake_on_events(bus, TRIAGE)
        tasks = [asyncio.create_task(run()), waker]
        yield
        await _stop(tasks)
        executor.shutdown(wait=False, cancel_futures=True)

    async def sso_ctx(app: web.Application) -> AsyncIterator[None]:
        assert services.sso is not None
        await services.sso.client.start()
        yield
        await services.sso.client.close()

    app.cleanup_ctx.append(database_ctx)
    if redis_client is not None:
        app.cleanup_ctx.append(redis_ctx)
    if "web" in run or (settings.telephony.enabled and "sip" in run):
        # consoles (web) and the call centre's agents (sip) put presence entries; one task
        # renews them all (after redis_ctx: it stops before the client closes)
        app.cleanup_ctx.append(task_ctx(lambda: keep_renewed(presence)))
    if services.sso is not None and "web" in run:
        app.cleanup_ctx.append(sso_ctx)
    if worker:
        app.cleanup_ctx.append(session_purge_ctx)
        app.cleanup_ctx.append(watcher_ctx)
    # the web role queries the index, the worker role keeps it
    app.cleanup_ctx.append(search_ctx(settings, services.search, bus, background=worker))
    if settings.triage.enabled and worker:
        app.cleanup_ctx.append(triage_ctx)
    if settings.telephony.enabled and "sip" in run:
        standby = standby_setup(settings, redis_client)
        services.calls = build_call_center(settings, database, bus, services, standby)
        app.cleanup_ctx.append(agent_time_ctx(database, bus, services.calls))
        app.cleanup_ctx.append(agent_presence_ctx(presence, services.calls))
        app.cleanup_ctx.append(telephony_ctx(settings, services.calls))
    services.sms = SmsService(
        settings.sms,
        database,
        services.tickets,
        public_url=settings.server.public_url,
        timezone=settings.locale.timezone,
    )
    if worker:
        app.cleanup_ctx.append(sms_ctx(settings, services.sms, services.directory, bus, jobs))
        if streams is not None:
            app.cleanup_ctx.append(relay_ctx(streams, bus))
    if "web" in run:
        app.on_startup.append(_hint_first_user)
    return app


def health_app(services: Services) -> web.Application:
    """A process without the web role (sip, worker) still answers /healthz for its supervisor
    and load balancer's checks; nothing else."""
    app = web.Application()
    app[SERVICES] = services
    app.router.add_get("/healthz", healthz)
    return app


def build_call_center(
    settings: Settings,
    db: Database,
    bus: EventBus,
    services: Services,
    standby: StandbySetup | None = None,
) -> CallCenter:
    tel = settings.telephony
    sla = settings.sla
    return CallCenter(
        tel,
        services.tickets,
        db,
        bus,
        spool=settings.resolve(tel.spool_dir) / "voicemail",
        recordings=settings.resolve(tel.recordings_dir),
        timezone=settings.locale.timezone,
        rest_days=HolidayCalendar(sla.workdays, sla.holidays, sla.makeup_workdays),
        standby=standby,
    )


def ensure_prompts(settings: Settings) -> None:
    """Speak missing or changed prompts; without espeak-ng, tone placeholders keep the IVR
    usable by keys."""
    tel = settings.telephony
    root = settings.resolve(tel.prompts_dir)
    try:
        report = build_prompts(tel, root)
    except PromptError as exc:
        log.error("%s；IVR 暂用提示音占位（按键仍可用）", exc)
        build_placeholder_prompts(tel, root)
        return
    if report.generated:
        log.info("generated %d IVR prompts in %s", len(report.generated), root / "cmn")
    missing = PromptLibrary(root).missing("mn")
    if missing:
        log.warning(
            "蒙古语提示音缺 %d 个（如 %s），暂用普通话播放；请把录音按同名 WAV 放入 %s",
            len(missing),
            "、".join(missing[:3]),
            root / "mn",
        )


def telephony_ctx(
    settings: Settings, center: CallCenter
) -> Callable[[web.Application], AsyncIterator[None]]:
    tel = settings.telephony

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if center.standby is not None:  # the workers are `hotline telephony workers`'
            await center.start()
            yield
            await center.stop()
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, ensure_prompts, settings)
        await center.start()
        pool = WorkerPool(
            tel,
            [f"127.0.0.1:{center.port}"],
            center.token,
            PoolPaths(
                prompts=settings.resolve(tel.prompts_dir),
                spool=settings.resolve(tel.spool_dir),
                recordings=settings.resolve(tel.recordings_dir),
            ),
            log_level=settings.log.level,
        )
        await pool.start()
        purge = asyncio.create_task(_purge_recordings(center))
        if tel.workers > 1:
            log.info(
                "%d SIP workers on ports %d–%d; put Kamailio in front on %s:%d "
                "(hotline telephony kamailio-config)",
                tel.workers,
                tel.worker_port(tel.worker_indexes[0]),
                tel.worker_port(tel.worker_indexes[-1]),
                tel.host,
                tel.port,
            )
        yield
        purge.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purge
        await pool.stop()
        await center.stop()

    return ctx


def agent_time_ctx(
    db: Database, bus: EventBus, center: CallCenter
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Agents' signed-in and busy time per hour, from the CTI events (坐席占用率); written by
    the active call centre only."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        recorder = AgentTimeRecorder(db, writes=lambda: center.active)
        events = bus.subscribe(maxsize=10_000, topic="cti")
        task = asyncio.create_task(recorder.run(events))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        bus.unsubscribe(events)
        await recorder.stop()

    return ctx


def task_ctx(
    run: Callable[[], Coroutine[Any, Any, None]],
) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx running one background task while the app serves."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


def agent_presence_ctx(
    presence: Presence, center: CallCenter
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The active centre's agents and queue as presence entries (telephony/presence.py)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        centre = CentrePresence(presence, center.snapshot, lambda: center.active)
        task = asyncio.create_task(centre.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if center.standby is None:  # a standby's successor writes the same keys again
            await centre.close()

    return ctx


def sms_ctx(
    settings: Settings,
    sms: SmsService,
    directory: Directory,
    bus: EventBus,
    jobs: Callable[[WorkQueue], JobQueue] = lambda table: table,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Notices from order events into the outbox; with a gateway, the sender empties it."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        notifier = Notifier(sms, directory, settings.locale.timezone)
        wake, waker = _wake_on_events(bus, NOTICE)
        queue = jobs(WorkQueue(sms.db, NOTICE, lease=JOB_LEASE))
        tasks = [asyncio.create_task(notifier.run(queue, wake)), waker]
        session: aiohttp.ClientSession | None = None
        if settings.sms.backend == "kannel":
            session = aiohttp.ClientSession()
            dlr = settings.sms.dlr_url or settings.server.public_url.rstrip("/") + "/api/v1/sms/dlr"
            tasks.append(
                asyncio.create_task(sms.run_sender(KannelGateway(settings.sms, dlr, session)))
            )
        else:
            log.info("短信为发件箱模式（sms.backend = outbox）：通知只记录在发件箱，不发送")
        yield
        await _stop(tasks)
        if session is not None:
            await session.close()

    return ctx


def relay_ctx(
    streams: StreamJobs, bus: EventBus
) -> Callable[[web.Application], AsyncIterator[None]]:
    """With Redis: the relay of background work from the store to the streams (one process
    at a time does it), woken by order events."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        wake, waker = _wake_on_events(bus, None)
        tasks = [asyncio.create_task(streams.run(wake)), waker]
        yield
        await _stop(tasks)

    return ctx


# a claimed batch of background work is someone else's after this (a consumer that died)
JOB_LEASE = timedelta(seconds=60)
MODEL_RETRY_S = 60


def _wake_on_events(bus: EventBus, topic: str | None) -> tuple[asyncio.Event, asyncio.Task[None]]:
    """An event set when the bus carries an order event that enqueued work for `topic` (None:
    for any topic): its consumer starts at once instead of at its next poll. Only a hint — the
    work itself is in the durable queue, so an event the bus drops delays nothing by more than
    a poll."""
    wake = asyncio.Event()
    actions = EVENT_TOPICS[topic] if topic is not None else None
    events: asyncio.Queue[TicketEvent] = bus.subscribe(maxsize=10_000)

    async def watch() -> None:
        try:
            while True:
                ev = await events.get()
                if actions is None or ev.action in actions:
                    wake.set()
        finally:
            bus.unsubscribe(events)

    return wake, asyncio.create_task(watch())


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _purge_recordings(center: CallCenter, every_s: float = 3600) -> None:
    while True:
        try:
            n = await center.purge_recordings()
            if n:
                log.info("deleted %d call recordings past their retention", n)
        except Exception:  # try again next hour
            log.exception("recording purge failed")
        await asyncio.sleep(every_s)


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
