"""The call centre's side of agents' conversations: rings and answers from browsers, controls
(hold, transfer, consultation, three-way call, keys) passed to the worker holding the call, the
agents' states as people join and leave a call, and per-agent call-state events for consoles.

The conversation itself (who hears whom) lives in the worker (telephony/room.py); this keeps what
needs the whole centre: the queue's agents, the call records and the CTI events."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from telephony.acd import AcdError, Agent, AgentState
from telephony.model import CtiEvent
from telephony.protocol import LinkError
from tickets.errors import Conflict, InvalidInput, NotFound

if TYPE_CHECKING:
    from telephony.center import CallCenter
    from telephony.live import LiveCall

log = logging.getLogger(__name__)

SOFTPHONE_SCHEME = "webrtc:"
CONTROL_OPS = frozenset(
    {"hangup", "hold", "unhold", "transfer", "complete", "cancel", "conference", "drop", "dtmf"}
)
WORKER_WAIT_S = 30.0  # an answer waits for ICE gathering in the worker


def softphone_uri(username: str) -> str:
    return f"{SOFTPHONE_SCHEME}{username}"


class Conversations:
    """Calls with agents in them, seen from the centre."""

    def __init__(self, center: CallCenter) -> None:
        self.center = center
        # the last ring of each agent, for a page that (re)connects while it rings
        self.rings: dict[str, CtiEvent] = {}

    def ring_of(self, agent: str) -> CtiEvent | None:
        """The call ringing for `agent` now, as its call.ringing event (a reloaded or
        reconnected page missed the event itself)."""
        ev = self.rings.get(agent)
        if ev is None:
            return None
        a = self.center.acd.agents.get(agent)
        if a is None or a.state is not AgentState.RINGING or a.call != ev.call:
            del self.rings[agent]
            return None
        return ev

    # -- what workers report --------------------------------------------------------------------
    async def ringing(self, call: str, agent: str, path: str, transfer: bool) -> None:
        c = self.center
        live = c.calls.get(call)
        if live is None:
            return
        rec = live.record
        if path and not transfer:
            rec.ivr_path = path[:400]
        a = c.acd.agents.get(agent)
        if rec.wait_s is not None:  # answered before (a transfer): how long they queued
            waited = rec.wait_s
        else:
            waited = c.monotonic() - (live.queued if live.queued is not None else live.started)
        self.rings[agent] = await c._cti(
            "call.ringing",
            call,
            caller=rec.caller,
            agent=agent,
            ivr_path=rec.ivr_path,
            kind=rec.kind,
            language=rec.language,
            waited_s=round(waited, 1),
            transfer=transfer,
            softphone=bool(a and a.softphone),
        )

    async def joined(self, call: str, agent: str) -> None:
        """A transfer's or consultation's target answered."""
        c = self.center
        c.acd.answered(call, agent, c.monotonic())
        live = c.calls.get(call)
        if live is not None:
            live.agents.add(agent)
        await c._agent_event(agent)

    async def left(self, call: str, agent: str, wrapup: bool) -> None:
        """An agent is out of a call that goes on (or took a consultation back)."""
        c = self.center
        c.acd.left(call, agent, c.monotonic(), wrapup=wrapup)
        live = c.calls.get(call)
        if live is not None:
            live.agents.discard(agent)
            if live.agent == agent:
                live.agent = next(iter(live.agents), None)
        await self._publish_end(call, agent, live)
        await c._agent_event(agent)

    async def conversation(self, call: str, held: bool, parties: list[dict[str, Any]]) -> None:
        live = self.center.calls.get(call)
        if live is None:
            return
        live.view = {"held": held, "parties": parties}
        for party in parties:
            if party.get("kind") == "agent":
                await self._publish(call, str(party["name"]), live)

    async def ended(self, call: str, live: LiveCall) -> None:
        names = set(live.agents)
        names |= {str(p["name"]) for p in live.view.get("parties", []) if p.get("kind") == "agent"}
        for name in sorted(names):
            await self._publish_end(call, name, live)

    def state_of(self, agent: str) -> CtiEvent | None:
        """The call `agent` is talking in now, as its call.state event (a reloaded or
        reconnected page missed the events, and brings the call's audio back from it)."""
        a = self.center.acd.agents.get(agent)
        if a is None or a.state is not AgentState.TALKING or a.call is None:
            return None
        live = self.center.calls.get(a.call)
        if live is None:
            return None
        state = self._state(agent, live)
        if state["ended"]:
            return None
        return CtiEvent("call.state", self.center.now(), a.call, live.record.caller, agent, state)

    def _state(self, agent: str, live: LiveCall) -> dict[str, Any]:
        me = next(
            (
                p
                for p in live.view.get("parties", [])
                if p.get("kind") == "agent" and p.get("name") == agent
            ),
            None,
        )
        return {
            "held": bool(live.view.get("held")),
            "parties": live.view.get("parties", []),
            "me": me["id"] if me else None,
            "ended": me is None,
        }

    async def _publish(self, call: str, agent: str, live: LiveCall) -> None:
        await self.center._cti(
            "call.state", call, caller=live.record.caller, agent=agent, **self._state(agent, live)
        )

    async def _publish_end(self, call: str, agent: str, live: LiveCall | None) -> None:
        await self.center._cti(
            "call.state",
            call,
            caller=live.record.caller if live else None,
            agent=agent,
            held=False,
            parties=[],
            me=None,
            ended=True,
        )

    # -- what agents ask for (the softphone's WebSocket) ----------------------------------------
    def _live(self, call: str) -> LiveCall:
        live = self.center.calls.get(call)
        if live is None or live.link is None:
            raise NotFound("通话不存在或已结束", call=call)
        return live

    async def _worker(self, live: LiveCall, command: str, **args: Any) -> dict[str, Any]:
        assert live.link is not None
        try:
            out = await live.link.request(
                command, wait_s=WORKER_WAIT_S, call=live.record.id, **args
            )
        except LinkError as exc:
            raise Conflict(f"通话所在的 SIP 进程无应答: {exc}") from None
        if out.get("error"):
            raise Conflict(str(out["error"]))
        return out

    async def answer(self, username: str, call: str, sdp: str) -> str:
        """The agent's browser answers a call ringing for them: its SDP offer, our answer."""
        agent = self.center.acd.agents.get(username)
        if agent is None or not agent.softphone:
            raise Conflict("请先用软电话签入")
        if agent.call != call:
            raise Conflict("该来电已不再呼叫您")
        if not sdp.startswith("v=0") or len(sdp) > 20_000:
            raise InvalidInput("无效的 SDP", field="sdp")
        out = await self._worker(self._live(call), "answer", agent=username, sdp=sdp)
        return str(out["sdp"])

    async def ringing_control(self, username: str, call: str, action: str) -> None:
        """`pickup` (the agent clicked 接听: the ring stops counting while the browser sets up
        its audio) or `decline` (拒接: the queue tries the next agent)."""
        agent = self.center.acd.agents.get(username)
        if agent is None or agent.call != call:
            raise Conflict("该来电已不再呼叫您")
        await self._worker(self._live(call), "control", agent=username, action=action, args={})

    async def control(
        self, username: str, call: str, op: str, args: dict[str, Any]
    ) -> dict[str, Any]:
        if op not in CONTROL_OPS:
            raise InvalidInput(f"未知操作 {op}", field="op")
        live = self._live(call)
        if username not in live.agents:
            raise Conflict("您不在这通电话中")
        if op == "transfer":
            return await self._transfer(username, live, args)
        if op == "conference":
            code = str(args.get("department", ""))
            uri = self.center.settings.department_uri(code)
            if uri is None:
                raise InvalidInput("该单位没有配置三方通话电话", field="department")
            label = str(args.get("label") or code)[:100]
            args = {"department": code, "uri": uri, "label": label}
        elif op == "dtmf":
            args = {"digits": str(args.get("digits", ""))[:32]}
        elif op == "drop":
            args = {"party": str(args.get("party", ""))}
        else:
            args = {}
        return await self._worker(live, "control", agent=username, action=op, args=args)

    async def _transfer(
        self, username: str, live: LiveCall, args: dict[str, Any]
    ) -> dict[str, Any]:
        c = self.center
        target_name = str(args.get("target", ""))
        mode = str(args.get("mode", "blind"))
        if mode not in ("blind", "attended"):
            raise InvalidInput("mode 只能是 blind 或 attended", field="mode")
        if target_name == username:
            raise InvalidInput("不能转接给自己", field="target")
        if target_name not in c.acd.agents:
            raise Conflict("对方未签入，不能转接")
        call = live.record.id
        try:
            target = c.acd.transfer_to(target_name, call, c.monotonic())
        except AcdError as exc:
            raise Conflict(str(exc)) from None
        await c._agent_event(target_name)
        try:
            out = await self._worker(
                live,
                "control",
                agent=username,
                action="transfer",
                args={"agent": target.username, "uri": target.uri, "mode": mode},
            )
        except Conflict:
            c.acd.left(call, target_name, c.monotonic(), wrapup=False)
            await c._agent_event(target_name)
            raise
        return out

    async def media_stats(self) -> list[dict[str, Any]]:
        """Per worker: its CPU time, calls, and each browser call's frame counters (late frames
        into the call, frames dropped towards the browser): what operators size workers by."""
        out = []
        for w in sorted(self.center.workers.values(), key=lambda w: w.index):
            try:
                stats = await w.link.request("stats", wait_s=10)
            except LinkError:
                continue
            out.append({"worker": w.index, **stats})
        return out

    def targets(self, username: str) -> list[dict[str, Any]]:
        """Whom this agent may transfer to now: signed-in agents and supervisors."""
        out = []
        for a in sorted(self.center.acd.agents.values(), key=lambda a: (a.role, a.username)):
            if a.username != username:
                out.append(_target(a))
        return out

    def departments(self) -> list[str]:
        """Departments a three-way call can reach (codes; the web layer has their names)."""
        return sorted(self.center.settings.department_phones)


def _target(a: Agent) -> dict[str, Any]:
    from telephony.acd import AGENT_STATE_LABELS

    return {
        "username": a.username,
        "role": a.role,
        "state": a.state.value,
        "state_label": AGENT_STATE_LABELS[a.state],
        "softphone": a.softphone,
    }
