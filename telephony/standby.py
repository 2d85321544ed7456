"""Standby call centres: several `--role sip` processes, one active at a time. The active one
holds a lease, listens for the SIP workers' links and writes the queue, the agents and the live
calls through to a shared store; a standby waits for the lease, then loads that state, listens,
and lets each worker that links say which calls it holds (the worker's hello), reconciling
the two: a call the store knows and no worker reports within RELINK_GRACE_S is over.

The workers are not the centre's children in this mode (`hotline telephony workers` runs them),
so a centre's death costs its callers nothing but a pause in what needs the centre (queue
announcements wait, a request is repeated to the next centre); bridged conversations live in
the workers and go on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from telephony import store
from telephony.acd import AgentState
from telephony.centre_state import (
    SECTIONS,
    CentreStore,
    Entries,
    decode_agent,
    decode_waiting,
    empty,
    encode_agent,
    encode_waiting,
)
from telephony.live import LiveCall, WorkerLink, decode_call, encode_call
from telephony.model import CallRecord
from tickets.outage import OutageLog, raise_if_cancelling

if TYPE_CHECKING:
    from telephony.center import CallCenter

log = logging.getLogger(__name__)

RELINK_GRACE_S = 30.0  # a call no worker holds for this long (after a takeover) is over
SYNC_GAP_S = 0.05  # changes within this long go to the store in one write
RETRY_S = 1.0  # after a failed write (store away), the next try


class Lease(Protocol):
    """One holder at a time across processes (hotline/lease.py: Redis, or always held)."""

    async def hold(self) -> bool: ...
    async def release(self) -> None: ...


@dataclass(frozen=True)
class StandbySetup:
    lease: Lease
    store: CentreStore
    holder: str  # the lease's token: the store takes writes only from the lease holder
    host: str  # where this centre listens for workers once active
    port: int
    token: str  # the workers' shared secret
    lease_s: float


class Standby:
    def __init__(self, center: CallCenter, setup: StandbySetup) -> None:
        self.c = center
        self.setup = setup
        self.written: Entries = empty()  # what the store holds, as this centre last wrote it
        self.offset = 0.0  # wall-clock minus monotonic seconds, fixed per takeover
        self._dirty = asyncio.Event()
        self._check = asyncio.Event()
        self.outage = OutageLog(
            log,
            "呼叫中心状态写入失败，稍后重试，备用进程接管时会缺这段",
            "呼叫中心状态写入已恢复",
        )
        self._runner: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._runner = asyncio.create_task(self.run())

    def touch(self) -> None:
        self._dirty.set()

    # -- the lease ------------------------------------------------------------------------------
    async def run(self) -> None:
        """Hold the lease (or wait for it), and write changes while active; until cancelled."""
        writer = asyncio.ensure_future(self._write_loop())
        try:
            while True:
                try:
                    held = await self.setup.lease.hold()
                    if held and not self.c.active:
                        await self._take_over()
                    elif not held and self.c.active:
                        await self.step_down("租约已由其他进程持有")
                except Exception:  # the loop must go on: it is what makes this a standby
                    raise_if_cancelling()
                    log.exception("呼叫中心主备切换出错，稍后重试")
                self._check.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.setup.lease_s / 3):
                        await self._check.wait()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _take_over(self) -> None:
        c = self.c
        try:
            loaded = await self.setup.store.load()
        except Exception as exc:  # the store is away: try again at the next renewal
            log.warning("呼叫中心状态读取失败，暂不接管: %s", exc)
            return
        now = c.monotonic()
        self.offset = c.now().timestamp() - now
        agents, waiting, calls = {}, [], {}
        for section, entries in loaded.items():
            for key, text in entries.items():
                try:
                    if section == "agents":
                        agents[key] = decode_agent(key, text, self.offset)
                    elif section == "waiting":
                        waiting.append(decode_waiting(key, text, self.offset))
                    else:
                        calls[key] = live = decode_call(text, self.offset)
                        live.orphaned = now
                except (ValueError, KeyError, TypeError):
                    log.exception("呼叫中心状态 %s/%s 无法读取，已忽略", section, key)
        c.acd.agents = agents
        c.acd.waiting = OrderedDict((w.call, w) for w in sorted(waiting, key=lambda w: w.queued_at))
        c.calls = calls
        self.written = loaded
        try:
            await c.listen(self.setup.host, self.setup.port)
        except OSError as exc:
            log.error("呼叫中心无法在 %s:%d 监听: %s", self.setup.host, self.setup.port, exc)
            await self.setup.lease.release()
            self._reset()
            return
        log.warning(
            "本进程接管呼叫中心（%s:%d）：坐席 %d 人，排队 %d 人，通话 %d 通",
            self.setup.host,
            self.setup.port,
            len(agents),
            len(waiting),
            len(calls),
        )

    async def step_down(self, why: str) -> None:
        log.warning("本进程不再是主用呼叫中心（%s），转为备用", why)
        await self.c.unlisten()
        self._reset()

    def _reset(self) -> None:
        c = self.c
        c.active = False
        c.acd.agents.clear()
        c.acd.waiting.clear()
        c.calls.clear()
        c.workers.clear()
        self.written = empty()

    async def stop(self) -> None:
        """A clean stop: the last changes written, the lease let go (a standby takes over at
        once); the workers' calls go on."""
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self.c.active:
            with contextlib.suppress(Exception):
                await self._write()
            await self.c.unlisten()
            await self.setup.lease.release()

    # -- writing through ------------------------------------------------------------------------
    def entries(self) -> Entries:
        c, offset = self.c, self.offset
        out = empty()
        out["agents"] = {u: encode_agent(a, offset) for u, a in c.acd.agents.items()}
        out["waiting"] = {k: encode_waiting(w, offset) for k, w in c.acd.waiting.items()}
        out["calls"] = {
            # a call is written once its record's row is committed: a centre that loads it
            # only ever updates that row
            k: encode_call(live, offset)
            for k, live in c.calls.items()
            if live.stored.is_set()
        }
        return out

    async def _write(self) -> bool:
        now = self.entries()
        changes: dict[Any, dict[str, str | None]] = {}
        for s in SECTIONS:
            old, new = self.written[s], now[s]
            diff: dict[str, str | None] = {k: v for k, v in new.items() if old.get(k) != v}
            diff.update(dict.fromkeys(old.keys() - new.keys()))
            if diff:
                changes[s] = diff
        if not changes:
            return True
        if not await self.setup.store.write(self.setup.holder, changes):
            return False
        self.written = now
        return True

    async def _write_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            if not self.c.active:
                continue
            try:
                ok = await self._write()
            except Exception as exc:  # the store is away: keep the changes, try again
                raise_if_cancelling()
                self.outage.failed(exc)
                self._dirty.set()
                await asyncio.sleep(RETRY_S)
                continue
            self.outage.ok()
            if not ok:  # fenced: another process holds the lease now
                self._check.set()
            await asyncio.sleep(SYNC_GAP_S)

    # -- workers linking --------------------------------------------------------------------------
    def link_lost(self, wl: WorkerLink) -> None:
        """A worker's link dropped: its calls wait RELINK_GRACE_S for it to link again."""
        c = self.c
        if not c.active:
            return  # stepping down: the next centre has them
        now = c.monotonic()
        for call in wl.calls:
            live = c.calls.get(call)
            if live is not None and live.link is wl.link:
                live.link, live.orphaned = None, now

    async def sweep(self) -> None:
        """Calls no worker has reported within the grace: over (a worker that died with the
        old centre, or one that never came back)."""
        c = self.c
        now = c.monotonic()
        dead = {
            call
            for call, live in c.calls.items()
            if live.link is None
            and live.orphaned is not None
            and now - live.orphaned >= RELINK_GRACE_S
        }
        if dead:
            log.warning("%d 通电话的 SIP 工作进程没有重新连上，按已结束处理", len(dead))
            await c.calls_over(dead, "calls no worker holds")

    async def adopt(self, wl: WorkerLink, reports: list[dict[str, Any]]) -> None:
        """A worker linked with the calls it holds: take them over, end the ones it no longer
        has, and make the agents' states match its conversations."""
        c = self.c
        held = {str(r.get("call")): r for r in reports if r.get("call")}
        gone = {
            call
            for call, live in c.calls.items()
            if live.record.worker == wl.index and call not in held
        }
        touched: set[str] = set()
        for call, report in held.items():
            live = c.calls.get(call)
            if live is None:
                live = await self._restore(wl, call, report)
            live.link, live.orphaned = wl.link, None
            wl.calls.add(call)
            touched |= await self._reconcile(call, live, report)
        if held or gone:
            log.info(
                "SIP worker %d holds %d call(s); %d known call(s) of it are over",
                wl.index,
                len(held),
                len(gone),
            )
        if gone:
            await c.calls_over(gone, f"worker {wl.index}")
        c._match()
        for name in sorted(touched):
            await c._agent_event(name)

    async def _restore(self, wl: WorkerLink, call: str, report: dict[str, Any]) -> LiveCall:
        """A call the store did not know yet (begun just before the old centre died)."""
        c = self.c
        rec = await c.db.read(lambda conn: store.get_call(conn, call))
        if rec is None:
            stage = str(report.get("stage", "ivr"))
            outbound = bool(report.get("outbound"))
            rec = CallRecord(
                id=call,
                direction="out" if outbound else "in",
                purpose=stage if outbound and stage in ("survey", "callback") else "intake",
                caller=str(report.get("caller", ""))[:64],
                dialled=str(report.get("dialled", ""))[:64],
                worker=wl.index,
                offered_at=c.now(),
                language=str(report.get("language") or "") or None,
                ivr_path=str(report.get("path", ""))[:400],
            )
            new = rec
            await c.db.write(lambda conn: store.insert_call(conn, new))
        live = c.calls[call] = LiveCall(rec, wl.link, c.monotonic())
        live.stored.set()
        return live

    async def _reconcile(self, call: str, live: LiveCall, report: dict[str, Any]) -> set[str]:
        """The worker's view of one call wins: who is in its conversation, whether it waits.
        Returns the agents whose state this touched."""
        c, acd, now = self.c, self.c.acd, self.c.monotonic()
        stage = str(report.get("stage", ""))
        if stage in ("survey", "callback"):
            return set()  # outbound: the agent (a call-back's) keeps the state the store had
        room = report.get("room") or {}
        parties = [p for p in room.get("parties", []) if p.get("kind") == "agent"]
        up = {str(p["name"]) for p in parties if p.get("state") == "up"}
        ringing = {str(p["name"]) for p in parties if p.get("state") in ("ringing", "answering")}
        touched: set[str] = set()
        for agent in list(acd.agents.values()):
            if agent.call == call and agent.username not in up | ringing:
                touched.add(agent.username)
                if agent.state is AgentState.TALKING:
                    acd.ended(call, agent.username, now)
                else:  # rung by the old centre; the worker never got to ring them
                    acd.ring_failed(call, agent.username, now, missed=False)
        for name in sorted(up):
            if live.record.answered_at is None:  # answered while no centre listened
                await c._answered(call, name, str(report.get("recording") or ""))
            now_in = acd.agents.get(name)
            if now_in is not None and (
                now_in.call != call or now_in.state is not AgentState.TALKING
            ):
                acd.answered(call, name, now)
                touched.add(name)
            live.agents.add(name)
            live.agent = live.agent or name
        if room:
            live.view = {"held": bool(room.get("held")), "parties": room.get("parties", [])}
        waiting = acd.waiting.get(call)
        if stage == "queue" and waiting is None and not up and not ringing:
            acd.enqueue(call, str(report.get("kind") or "other"), live.record.caller, now)
        elif waiting is not None and stage not in ("queue", "agents"):
            acd.remove(call)
        elif waiting is not None and waiting.ringing not in ringing:
            waiting.ringing = None
        return touched
