"""A SIP worker process: one pjsua2 endpoint pumped from asyncio, a dialogue per call, and a
link to the call centre in the main process. Run by telephony/pool.py, one per SIP port."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from telephony.config import TelephonySettings
from telephony.ivr import Media, Session
from telephony.prompts import PromptLibrary
from telephony.protocol import CentreLink, Link, LinkError, connect
from telephony.room import Browsers, ControlError
from telephony.sip import Leg, SipConfig, SipError, SipStack
from telephony.webrtc import MediaThread

log = logging.getLogger("telephony.worker")

ENV_SETTINGS = "HOTLINE_SIP_SETTINGS"
ENV_TOKEN = "HOTLINE_SIP_TOKEN"
IDLE_WAIT_MS = 100  # an outbound call ordered by the centre may start this much later
STOP_GRACE_S = 3.0  # at shutdown, dialogues get this long to close their browser peers
REPORT_EVERY_S = 10.0  # refused INVITEs are logged in one summary per this long, not one by one
REPORT_LINES = 5  # the most frequent kinds of refusal each summary names
# standby mode: a dialogue's request waits this many centre leases for the next active centre
RELINK_WAIT_LEASES = 3


class InviteRate:
    """INVITEs per source address in one-second windows, at O(1) per INVITE. An address that
    sent more than `limit` in this second or the one before is flooding: what it sends while
    refused counts too, so it stays refused until it keeps under the limit for a second."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._second = 0
        self._now: dict[str, int] = {}
        self._before: dict[str, int] = {}

    def flooding(self, address: str, now: float) -> bool:
        second = int(now)
        if second != self._second:
            self._before = self._now if second == self._second + 1 else {}
            self._now = {}
            self._second = second
        n = self._now[address] = self._now.get(address, 0) + 1
        return n > self.limit or self._before.get(address, 0) > self.limit


class Worker:
    """Owns the SIP stack; turns leg events into dialogue events and centre commands into calls."""

    def __init__(self, settings: TelephonySettings, index: int, media: Media) -> None:
        self.settings = settings
        self.index = index
        self.media = media
        self.stack = SipStack(
            SipConfig(
                host=settings.host,
                port=settings.worker_port(index),
                transports=tuple(settings.transports),
                rtp_port=settings.rtp_port(index),
                rtp_ports=settings.rtp_ports_per_worker,
                user=settings.caller_id,
            ),
            self,
        )
        self.browsers: Browsers | None = None
        if settings.webrtc.enabled:
            # aiortc runs on a thread of its own: this loop blocks in pjsip's select()
            self.browsers = Browsers(settings.webrtc, MediaThread(), self.stack)
        self.link: Link | CentreLink | None = None
        self.sessions: dict[str, Session] = {}  # by the leg id of the caller's (first) leg
        self._rate = InviteRate(settings.max_invites_per_s)
        self._refused: Counter[str] = Counter()  # refusals since the last report, by kind
        self._report_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    # -- LegHandler (called while pumping, on the loop's thread) -------------------------------
    def screen(self, dialled: str, source: str) -> int:
        """Every new INVITE, before pjsua opens sockets for it: what is refused here costs
        next to nothing (no sockets, no log line of its own), so a flood cannot take the
        worker down, nor keep other callers waiting."""
        s = self.settings
        address = source.rsplit(":", 1)[0]
        if self._rate.flooding(address, time.monotonic()):
            return self._refuse(503, f"INVITE flood from {address} (over {s.max_invites_per_s}/s)")
        if s.numbers and dialled not in s.numbers:
            return self._refuse(404, f"calls to unknown numbers from {address}")
        if self.link is None or not self.link.connected:
            return 503  # no call centre: a proxy in front tries another worker
        callers = sum(1 for x in self.stack.legs.values() if not x.outbound)
        if callers >= s.callers_per_worker:
            # keep call slots for the agents' legs these callers will need (486: Kamailio
            # tries the next worker)
            return 486
        return 0

    def on_incoming(self, leg: Leg, dialled: str, caller: str, source: str) -> int:
        """An INVITE screen() let in, now with its sockets: the caller's dialogue starts."""
        if self.link is None or not self.link.connected:
            return 503
        session = self._session(leg)
        self._spawn(session.run_inbound())
        return 200

    def _refuse(self, code: int, kind: str) -> int:
        self._refused[kind] += 1
        if time.monotonic() >= self._report_at:
            self._report()
        return code

    def _report(self) -> None:
        """Log the refusals since the last report: the first one at once, then a summary at
        most every REPORT_EVERY_S (a line per refused INVITE would be a flood of its own)."""
        if self._refused:
            top = self._refused.most_common(REPORT_LINES)
            for kind, n in top:
                log.warning("%s: %d INVITE(s) refused", kind, n)
            rest = len(self._refused) - len(top)
            if rest:
                log.warning("and %d more kinds of refused INVITEs (other addresses)", rest)
            self._refused.clear()
        self._report_at = time.monotonic() + REPORT_EVERY_S

    def on_confirmed(self, leg: Leg) -> None:
        self._maybe_up(leg)

    def on_media(self, leg: Leg) -> None:
        self._maybe_up(leg)

    def _maybe_up(self, leg: Leg) -> None:
        """A leg is up when answered (200, ACK) AND its audio flows: early media (183 with
        ringback) is not an answer, on an agent's phone or a citizen's."""
        if not leg.media_ready or (leg.outbound and leg.state != "confirmed"):
            return
        session = self.sessions.get(leg.id)
        if session is not None:
            session.media_up.set()
            return
        if leg.owner is not None:  # a room's party, or a call-back's second leg
            leg.owner.leg_up(leg)

    def on_dtmf(self, leg: Leg, digit: str) -> None:
        session = self.sessions.get(leg.id)
        if session is not None:
            session.digits.put_nowait(digit)

    def on_disconnected(self, leg: Leg, code: int, reason: str) -> None:
        session = self.sessions.pop(leg.id, None)
        if session is not None:
            session.hungup.set()
            return
        if leg.owner is not None:
            leg.owner.leg_gone(leg)

    def _session(self, leg: Leg) -> Session:
        session = Session(
            leg=leg,
            center=self._center(),
            settings=self.settings,
            media=self.media,
            dialer=self.stack,
            worker=self.index,
            browsers=self.browsers,
        )
        self.sessions[leg.id] = session
        return session

    def _center(self) -> Link | CentreLink:
        assert self.link is not None
        return self.link

    def hello(self) -> dict[str, Any]:
        """How this worker introduces itself to a call centre: with the calls it holds."""
        calls = [s.report() for s in self.sessions.values()]
        return {"worker": self.index, "pid": os.getpid(), "calls": calls}

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- commands from the call centre --------------------------------------------------------
    async def on_command(self, op: str, args: dict[str, Any]) -> dict[str, Any] | None:
        if op in ("connect", "voicemail"):
            session = self.sessions.get(str(args.get("call")))
            if session is None:
                raise KeyError("no such call")
            session.commands.put_nowait({"op": op, **args})
            return {}
        if op in ("answer", "control"):
            return await self._room_command(op, args)
        if op == "originate":
            return self._originate(args)
        if op == "stats":
            t = os.times()
            return {
                "pid": os.getpid(),
                "cpu_s": round(t.user + t.system, 3),
                "calls": len(self.stack.legs),
                "ports": len(self.stack.ports),
                "peers": [
                    {"call": call, **st}
                    for call, sn in self.sessions.items()
                    if sn.room is not None
                    for st in sn.room.stats()
                ],
            }
        if op == "ping":
            return {"calls": len(self.stack.legs), "pid": os.getpid()}
        raise ValueError(f"unknown op {op!r}")

    async def _room_command(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """An agent's answer (a browser's SDP offer) or control of a call in this worker."""
        session = self.sessions.get(str(args.get("call")))
        room = session.room if session is not None else None
        agent = str(args.get("agent", ""))
        try:
            if room is None:
                raise ControlError("通话已结束")
            if op == "answer":
                return {"sdp": await room.answer(agent, str(args["sdp"]))}
            return room.control(agent, str(args["action"]), dict(args.get("args") or {}))
        except ControlError as exc:
            return {"error": str(exc)}

    def _originate(self, args: dict[str, Any]) -> dict[str, Any]:
        """Outbound calls only come from the centre, which takes the number from a work order."""
        purpose = args["purpose"]
        if purpose not in ("survey", "callback"):
            raise ValueError(f"unknown purpose {purpose!r}")
        leg = self.stack.call(str(args["uri"]), str(args.get("call") or "") or None)
        session = self._session(leg)
        if purpose == "survey":
            self._spawn(session.run_survey(int(args["ticket"])))
        elif purpose == "callback":
            self._spawn(session.run_callback(str(args["agent"]), str(args["citizen_uri"])))
        else:
            raise ValueError(f"unknown purpose {purpose!r}")
        return {"call": leg.id}

    # -- life cycle ---------------------------------------------------------------------------
    async def run(self, centres: list[tuple[str, int]], token: str) -> None:
        """Serve calls until SIGTERM. With one call centre (the default) the worker is its
        child and ends with its link; in standby mode (telephony.centres) it outlives a centre
        and links to the next active one, its calls going on meanwhile."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        relink = bool(self.settings.centres)
        if relink:
            wait_s = RELINK_WAIT_LEASES * self.settings.centre_lease_s
            self.link = CentreLink(centres, token, self.hello, self.on_command, wait_s)
        else:
            host, port = centres[0]
            self.link = await connect(host, port, token, self.hello(), self.on_command)
        reader = asyncio.create_task(self.link.run())
        self.stack.start()
        log.info(
            "SIP worker %d listening on %s:%d (%s)",
            self.index,
            self.settings.host,
            self.settings.worker_port(self.index),
            "+".join(self.settings.transports),
        )
        # pjsip waits in select() for SIP packets (they wake it at once); the loop gets a turn
        # at least every pump_interval_ms during calls, every IDLE_WAIT_MS without: a pool of
        # idle workers then costs little (polling every 10 ms cost ~1.5 % of a core each)
        busy_ms = self.settings.pump_interval_ms
        try:
            while not stop.is_set() and (relink or self.link.connected):
                self.stack.pump(busy_ms if self.stack.legs else IDLE_WAIT_MS)
                self.stack.collect_garbage()  # browser agents' retired media ports
                if self._refused and time.monotonic() >= self._report_at:
                    self._report()
                await asyncio.sleep(0)
        finally:
            self._report()
            for session in list(self.sessions.values()):
                session.hungup.set()
            # dialogues end first (rooms close browser peers and their ports) with SIP pumped
            deadline = time.monotonic() + STOP_GRACE_S
            while self._tasks and time.monotonic() < deadline:
                self.stack.pump(5)
                self.stack.collect_garbage()
                await asyncio.sleep(0.01)
            self.stack.shutdown()
            if self.browsers is not None:
                self.browsers.media.stop()
            for task in list(self._tasks):
                task.cancel()
            await self.link.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, LinkError):
                await reader


def use_realtime(priority: int) -> bool:
    """Put the process's threads on SCHED_RR at `priority`, before the worker starts its own:
    pjmedia's clock thread, aiortc's and Python's threads inherit it, so the whole worker
    (whose threads share one GIL) runs ahead of normal work; pjmedia's clock thread then lifts
    itself as high as it may (99 as root), as it does under any real-time policy. Not with
    SCHED_RESET_ON_FORK: the kernel applies that to new threads too (a worker starts no other
    program). Logs why not when the process may not (no CAP_SYS_NICE, or RLIMIT_RTPRIO below
    `priority`) and carries on at normal priority."""
    if priority <= 0:
        return False
    policy = os.SCHED_RR
    param = os.sched_param(priority)
    try:
        os.sched_setscheduler(0, policy, param)
        for tid in os.listdir("/proc/self/task"):  # threads libraries started at import
            with contextlib.suppress(ProcessLookupError):
                os.sched_setscheduler(int(tid), policy, param)
    except OSError as exc:
        log.warning(
            "real-time priority %d not granted (%s): running at normal priority; give the "
            "service CAP_SYS_NICE or LimitRTPRIO=%d",
            priority,
            exc.strerror or exc,
            priority,
        )
        return False
    log.info("threads at real-time priority %d (SCHED_RR)", priority)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m telephony.worker")
    ap.add_argument("--index", type=int, required=True)
    ap.add_argument(
        "--center", required=True, help="host:port[,host:port…] of the call centre link(s)"
    )
    ap.add_argument("--prompts", type=Path, required=True)
    ap.add_argument("--spool", type=Path, required=True)
    ap.add_argument("--recordings", type=Path, required=True)
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format=f"%(asctime)s %(levelname)s sip-worker-{args.index} %(name)s: %(message)s",
    )
    settings = TelephonySettings.model_validate(json.loads(os.environ[ENV_SETTINGS]))
    token = os.environ[ENV_TOKEN]
    use_realtime(settings.realtime_priority)  # first: the threads started below inherit it
    centres = [(h, int(p)) for h, p in (a.rsplit(":", 1) for a in args.center.split(","))]
    cache = args.spool / "prompt-cache"
    cache.mkdir(parents=True, exist_ok=True)
    media = Media(PromptLibrary(args.prompts), cache, args.spool / "voicemail", args.recordings)
    worker = Worker(settings, args.index, media)
    try:
        asyncio.run(worker.run(centres, token))
    except (ConnectionError, OSError, SipError) as exc:
        log.error("SIP worker %d cannot start: %s", args.index, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
