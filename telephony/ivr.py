"""One call's voice dialogue in a SIP worker: language, menu, status readout, queue, voicemail,
agent bridge, and the outbound call-back and 回访 survey. Decisions that need the whole centre
(queue, orders, records) are requests over the link."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from telephony.config import TelephonySettings
from telephony.prompts import PromptLibrary, concat, digits
from telephony.protocol import LinkError
from telephony.room import Browsers, Kind, Role, Room
from telephony.sip import Leg, SipError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Hangup(Exception):
    """The far end hung up: the dialogue stops where it is."""


class Center(Protocol):
    """The worker's view of the call centre (the link, or a fake in tests)."""

    async def request(self, op: str, wait_s: float = 10.0, **args: Any) -> dict[str, Any]: ...
    async def notify(self, op: str, **args: Any) -> None: ...


class Dialer(Protocol):
    def call(self, uri: str) -> Leg: ...


@dataclass
class Media:
    """Where a worker's files are."""

    prompts: PromptLibrary
    cache: Path  # concatenated prompt sequences
    spool: Path  # voicemails in progress
    recordings: Path


@dataclass
class Session:
    """The state of one caller's (or one outbound) leg as the dialogue sees it."""

    leg: Leg
    center: Center
    settings: TelephonySettings
    media: Media
    dialer: Dialer
    worker: int
    language: str = "cmn"
    path: list[str] = field(default_factory=list)
    digits: asyncio.Queue[str] = field(default_factory=asyncio.Queue)
    hungup: asyncio.Event = field(default_factory=asyncio.Event)
    media_up: asyncio.Event = field(default_factory=asyncio.Event)
    commands: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    agent_leg: Leg | None = None  # the call-back's second leg (the citizen)
    agent_up: asyncio.Event = field(default_factory=asyncio.Event)
    agent_gone: asyncio.Event = field(default_factory=asyncio.Event)
    browsers: Browsers | None = None  # the worker's WebRTC side, for browser agents
    room: Room | None = None  # the conversation with agents, once one is rung
    # where the dialogue is (ivr, queue, agents, voicemail, survey, callback) and the queue's
    # order kind: what a worker reports to a call centre that takes over
    stage: str = "ivr"
    kind: str = "other"

    @property
    def call(self) -> str:
        return self.leg.id

    def report(self) -> dict[str, Any]:
        """Where this call stands, for a call centre that takes over (the worker's hello)."""
        return {
            "call": self.call,
            "caller": self.leg.caller,
            "dialled": self.leg.dialled,
            "outbound": self.leg.outbound,
            "stage": self.stage,
            "kind": self.kind,
            "language": self.language,
            "path": ">".join(self.path),
            "room": self.room.view() if self.room is not None else None,
            "recording": str(rec.path) if (rec := self.room and self.room.recording) else "",
        }

    # -- the second leg of a call-back (legs of a room report to their party) -----------------
    def leg_up(self, leg: Leg) -> None:
        if self.agent_leg is leg:
            self.agent_up.set()

    def leg_gone(self, leg: Leg) -> None:
        if self.agent_leg is leg:
            self.agent_gone.set()
            self.agent_leg = None

    # -- waiting, interrupted by hang-up ------------------------------------------------------
    async def _until(self, aw: Awaitable[T], wait_s: float | None) -> T | None:
        """`aw`'s result, None on timeout; Hangup when the caller leaves first."""
        if self.hungup.is_set():
            if asyncio.iscoroutine(aw):
                aw.close()  # never started: say so, or Python warns it was never awaited
            raise Hangup
        task = asyncio.ensure_future(aw)
        gone = asyncio.ensure_future(self.hungup.wait())
        try:
            done, _ = await asyncio.wait(
                {task, gone}, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            gone.cancel()
        if task in done:
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if self.hungup.is_set():
            raise Hangup
        return None

    def _drain_digits(self) -> None:
        while not self.digits.empty():
            self.digits.get_nowait()

    def _sequence(self, keys: list[str]) -> Path:
        paths = [self.media.prompts.path(self.language, k) for k in keys]
        if len(paths) == 1:
            return paths[0]
        # the files' times are in the key: regenerated prompts or a new Mongolian recording
        # must not be masked by an old joined file
        stamp = "|".join(f"{p}:{p.stat().st_mtime_ns}" for p in paths)
        name = hashlib.sha256(stamp.encode()).hexdigest()[:24]
        out = self.media.cache / f"{name}.wav"
        if not out.exists():
            concat(paths, out)
        return out

    async def say(self, *keys: str, barge_in: bool = True) -> str | None:
        """Play prompts; with barge_in a key pressed meanwhile stops them and is returned."""
        length = self.leg.play(self._sequence(list(keys)))
        if not barge_in:
            await self._until(asyncio.sleep(length), None)
            return None
        digit = await self._until(self.digits.get(), length + 0.2)
        if digit is not None:
            self.leg.stop_playing()
        return digit

    async def ask(self, keys: list[str], valid: set[str]) -> str | None:
        """A one-key choice with re-prompts; None when the caller never chose a valid key."""
        for attempt in range(self.settings.menu_retries + 1):
            self._drain_digits()
            digit = await self.say(*keys)
            if digit is None:
                digit = await self._until(self.digits.get(), self.settings.digit_timeout_s)
            if digit in valid:
                return digit
            if attempt < self.settings.menu_retries:
                await self.say("no_input" if digit is None else "invalid")
        return None

    async def read_number(self, prompt: str, max_digits: int) -> str:
        """Digits up to # (or max_digits, or a pause), after a prompt the caller may cut short."""
        self._drain_digits()
        first = await self.say(prompt)
        got = [] if first is None or first == "#" else [first]
        while len(got) < max_digits:
            digit = await self._until(self.digits.get(), self.settings.digit_timeout_s)
            if digit is None or digit == "#":
                break
            if digit.isdigit():
                got.append(digit)
        return "".join(got)

    # -- the inbound dialogue -----------------------------------------------------------------
    async def run_inbound(self) -> None:
        try:
            await self._until(self.media_up.wait(), 5)
            await self.center.notify(
                "offered",
                call=self.call,
                caller=self.leg.caller,
                dialled=self.leg.dialled,
                worker=self.worker,
            )
            await self._inbound()
        except Hangup:
            pass
        except LinkError as exc:
            log.warning("call %s: call centre unreachable (%s); ending the call", self.call, exc)
        except Exception:  # a broken prompt file, a pjsua2 error: end this call, keep the rest
            log.exception("call %s failed", self.call)
        finally:
            await self._finish()

    async def _finish(self) -> None:
        """Hang up whatever is still up and tell the centre the call is over."""
        if self.agent_leg is not None:
            self.agent_leg.hangup()
        self.leg.hangup()
        with contextlib.suppress(LinkError):
            await self.center.notify("ended", call=self.call, path=">".join(self.path))

    async def _inbound(self) -> None:
        s = self.settings
        choice = await self.ask(["welcome"], set(s.language_keys))
        self.language = s.language_keys.get(choice or "", "cmn")
        self.path.append(f"lang:{self.language}")
        await self.center.notify("language", call=self.call, language=self.language)
        menu = {m.key: m for m in s.menu}
        while True:
            key = await self.ask(["menu"], set(menu))
            if key is None:
                self.path.append("menu:none")
                await self.queue("other")
                return
            entry = menu[key]
            self.path.append(f"menu:{key}")
            if entry.action == "status":
                await self.status_check()
                continue  # back to the menu
            await self.queue(entry.kind if entry.action == "queue" else "other")
            return

    async def status_check(self) -> None:
        number = await self.read_number("status_enter", 20)
        found = await self.center.request(
            "status", call=self.call, number=number, caller=self.leg.caller
        )
        self.path.append(f"status:{found.get('status') or 'unknown'}")
        if found.get("status"):
            await self.say("status_is", f"status_{found['status']}")
        else:
            await self.say("status_unknown")

    async def _enqueue(self, kind: str) -> bool:
        answer = await self.center.request(
            "enqueue",
            call=self.call,
            kind=kind,
            caller=self.leg.caller,
            language=self.language,
            path=">".join(self.path),
        )
        return bool(answer.get("queued"))

    async def queue(self, kind: str) -> None:
        self.kind = kind
        if not await self._enqueue(kind):
            self.path.append("closed")
            await self.voicemail(kind, "closed")
            return
        self.path.append("queue")
        self.stage = "queue"
        await self.say("queue_enter", barge_in=False)
        next_announce = time.monotonic() + self.settings.announce_every_s
        self.leg.play(self.media.prompts.path(self.language, "moh"), loop=True)
        while True:
            wait = max(0.1, next_announce - time.monotonic())
            cmd = await self._until(self.commands.get(), wait)
            if cmd is None:  # time to say where the caller is
                pos = await self.center.request("position", call=self.call)
                if pos.get("position"):
                    n = int(pos["position"]) - 1
                    if n > 0:
                        await self.say(
                            "queue_ahead", *digits(str(n)), "queue_callers", barge_in=False
                        )
                    else:
                        await self.say("queue_wait", barge_in=False)
                self.leg.play(self.media.prompts.path(self.language, "moh"), loop=True)
                next_announce = time.monotonic() + self.settings.announce_every_s
                continue
            if cmd["op"] == "voicemail":
                self.path.append("timeout")
                await self.voicemail(kind, "voicemail")
                return
            if cmd["op"] == "connect":
                outcome = await self.connect_agent(cmd["agent"], cmd["uri"])
                if outcome == "talked":
                    return
                if outcome == "requeue":  # a blind transfer nobody answered: back in line
                    self.path.append("requeue")
                    if not await self._enqueue(kind):
                        await self.voicemail(kind, "voicemail")
                        return
                self.leg.play(self.media.prompts.path(self.language, "moh"), loop=True)

    async def connect_agent(self, agent: str, uri: str) -> str:
        """Ring the agent (desk phone or browser); then the conversation, with its controls,
        until it is over: "talked", "requeue", or "missed" / "unavailable" when the agent never
        answered."""
        room = Room(self, self.browsers)
        self.room = room
        self.stage = "agents"
        try:
            room.ring(Kind.AGENT, agent, uri, Role.PRIMARY)
            outcome = await room.run()
        finally:
            self.room = None
            self.stage = "queue"
        if outcome == "talked":
            # the agents hung up first: the caller is told goodbye and released
            with contextlib.suppress(Hangup):
                await self.say("goodbye", barge_in=False)
        return outcome

    async def voicemail(self, kind: str, prompt: str) -> None:
        """The caller's message goes to the spool first; the centre turns it into an order."""
        s = self.settings
        self.stage = "voicemail"
        await self.say(prompt, barge_in=False)
        await self.say("beep", barge_in=False)
        self.media.spool.mkdir(parents=True, exist_ok=True)
        wav = self.media.spool / f"{self.call}.wav"
        meta = {
            "call": self.call,
            "caller": self.leg.caller,
            "kind": kind,
            "language": self.language,
            "worker": self.worker,
            "pid": os.getpid(),
            "started": time.time(),
            "wav": wav.name,
        }
        write_durably(self.media.spool / f"{self.call}.json", json.dumps(meta).encode())
        self._drain_digits()
        self.leg.record(wav)
        self.path.append("voicemail")
        hung_up = False
        try:
            while True:
                digit = await self._until(self.digits.get(), s.voicemail_max_s)
                if digit is None or digit == "#":
                    break
        except Hangup:
            hung_up = True
        self.leg.stop_recording()
        result = await self.center.request("voicemail", wait_s=30, call=self.call)
        if hung_up:
            raise Hangup
        number = str(result.get("number") or "")
        await self.say("voicemail_saved", *digits(number), "goodbye", barge_in=False)

    # -- outbound -----------------------------------------------------------------------------
    async def run_survey(self, ticket: int) -> None:
        """回访: the citizen presses 1 满意, 2 基本满意, 3 不满意; the centre records it."""
        answer: str | None = None
        self.stage = "survey"
        try:
            await self._until(self.media_up.wait(), self.settings.ring_agent_s * 4)
            if self.media_up.is_set():  # nobody answered: nothing to ask
                self.path.append("survey")
                await self.center.notify("answered", call=self.call, agent="", recording="")
                answer = await self.ask(["survey"], {"1", "2", "3"})
                if answer is not None:
                    await self.say("survey_thanks", barge_in=False)
        except Hangup:
            pass
        except Exception:  # the call must still end and be recorded
            log.exception("survey call %s failed", self.call)
        finally:
            if answer is not None:
                with contextlib.suppress(LinkError):
                    await self.center.notify(
                        "survey_done", call=self.call, ticket=ticket, answer=answer
                    )
            await self._finish()

    async def run_callback(self, agent: str, citizen_uri: str) -> None:
        """Call-back: the agent's phone (this leg) first, then the citizen, bridged."""
        self.stage = "callback"
        try:
            await self._until(self.media_up.wait(), self.settings.ring_agent_s)
            if not self.media_up.is_set():
                raise Hangup
            await self.say("callback", barge_in=False)
            other = self.dialer.call(citizen_uri)
            self.agent_leg = other
            other.owner = self
            if not await self._until(self.agent_up.wait(), 60):
                other.hangup()
                raise Hangup
            if not self.leg.bridge(other):
                raise Hangup
            self.leg.record(self.media.recordings / f"{self.call}.wav", with_peer=True)
            await self.center.notify(
                "answered",
                call=self.call,
                agent=agent,
                recording=str(self.media.recordings / f"{self.call}.wav"),
            )
            await self._until(self.agent_gone.wait(), None)
        except (Hangup, SipError):
            pass
        except Exception:  # the call must still end and be recorded
            log.exception("call-back %s failed", self.call)
        finally:
            await self._finish()


def write_durably(path: Path, data: bytes) -> None:
    """Write, fsync, rename, fsync the folder: the file is there after a crash, whole."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


Starter = Callable[[Session], Awaitable[None]]
