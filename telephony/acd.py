"""The call queue (ACD): agent states and first-come callers matched to the longest-idle agent.

Pure logic on an injected monotonic `now`; the call centre drives it and does the I/O.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum


class AgentState(StrEnum):
    AVAILABLE = "available"  # 空闲
    PAUSED = "paused"  # 小休 (with a reason)
    WRAPUP = "wrapup"  # 话后整理
    RINGING = "ringing"  # 振铃中
    TALKING = "talking"  # 通话中


AGENT_STATE_LABELS = {
    AgentState.AVAILABLE: "空闲",
    AgentState.PAUSED: "小休",
    AgentState.WRAPUP: "话后整理",
    AgentState.RINGING: "振铃中",
    AgentState.TALKING: "通话中",
}


class AcdError(Exception):
    """An agent operation that does not fit the agent's state; the message is for the agent."""


@dataclass
class Agent:
    username: str
    uri: str  # where the agent's phone is called (desk phone or softphone)
    state: AgentState
    since: float
    idle_since: float  # when the agent last became free: the longest-idle agent is served first
    reason: str = ""
    call: str | None = None
    wrapup_until: float | None = None
    answered: int = 0
    role: str = "agent"  # the staff role (agent, dispatcher, supervisor): transfer targets
    # where a transfer's target goes back to when the transfer is taken back
    resume: tuple[AgentState, str] | None = None

    @property
    def softphone(self) -> bool:
        """Takes calls in the browser (uri "webrtc:<username>") rather than on a SIP phone."""
        return self.uri.startswith("webrtc:")


@dataclass
class Waiting:
    call: str
    kind: str
    caller: str
    queued_at: float
    deadline: float
    ringing: str | None = None  # agent whose phone is ringing for this caller
    tried: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Offer:
    call: str
    agent: Agent


class Acd:
    """Agents and waiting callers; every method is O(agents + callers) at most."""

    def __init__(self, queue_timeout_s: float, wrapup_s: float) -> None:
        self.queue_timeout_s = queue_timeout_s
        self.wrapup_s = wrapup_s
        self.agents: dict[str, Agent] = {}
        self.waiting: OrderedDict[str, Waiting] = OrderedDict()

    # -- agents -------------------------------------------------------------------------------
    def login(self, username: str, uri: str, now: float, role: str = "agent") -> Agent:
        agent = self.agents.get(username)
        if agent is not None and agent.call is not None:
            raise AcdError("通话中不能重新签入")
        agent = Agent(username, uri, AgentState.PAUSED, now, now, reason="刚签入", role=role)
        self.agents[username] = agent
        return agent

    def logout(self, username: str) -> Agent:
        agent = self._agent(username)
        if agent.call is not None:
            raise AcdError("通话中不能签出")
        del self.agents[username]
        return agent

    def set_state(self, username: str, state: AgentState, now: float, reason: str = "") -> Agent:
        agent = self._agent(username)
        if state not in (AgentState.AVAILABLE, AgentState.PAUSED, AgentState.WRAPUP):
            raise AcdError("只能设为空闲、小休或话后整理")
        if agent.state in (AgentState.RINGING, AgentState.TALKING):
            raise AcdError("振铃或通话中不能改变状态")
        if state is AgentState.PAUSED and not reason.strip():
            raise AcdError("小休需要填写原因")
        if state is AgentState.AVAILABLE and agent.state is not AgentState.AVAILABLE:
            agent.idle_since = now
        agent.state, agent.since, agent.reason = state, now, reason.strip()
        agent.wrapup_until = now + self.wrapup_s if state is AgentState.WRAPUP else None
        return agent

    def _agent(self, username: str) -> Agent:
        agent = self.agents.get(username)
        if agent is None:
            raise AcdError("坐席未签入")
        return agent

    # -- callers ------------------------------------------------------------------------------
    def enqueue(self, call: str, kind: str, caller: str, now: float) -> int:
        self.waiting[call] = Waiting(call, kind, caller, now, now + self.queue_timeout_s)
        return len(self.waiting)

    def position(self, call: str) -> int | None:
        for i, key in enumerate(self.waiting, 1):
            if key == call:
                return i
        return None

    def remove(self, call: str) -> Waiting | None:
        """The caller left the queue (hung up, or voicemail); a ringing agent is freed."""
        waiting = self.waiting.pop(call, None)
        if waiting is not None and waiting.ringing is not None:
            agent = self.agents.get(waiting.ringing)
            if agent is not None and agent.call == call:
                self._free(agent, agent.since, wrapup=False)
        return waiting

    def offers(self, now: float) -> list[Offer]:
        """Ring the longest-idle available agent for each caller not yet ringing, in order."""
        free = sorted(
            (a for a in self.agents.values() if a.state is AgentState.AVAILABLE),
            key=lambda a: a.idle_since,
        )
        out: list[Offer] = []
        for waiting in self.waiting.values():
            if not free:
                break
            if waiting.ringing is not None:
                continue
            agent = next((a for a in free if a.username not in waiting.tried), None)
            if agent is None:
                # everyone free was tried once: try them again rather than let the caller wait
                # for the timeout (a single agent on a night shift who missed one ring)
                waiting.tried.clear()
                agent = free[0]
            free.remove(agent)
            waiting.ringing = agent.username
            waiting.tried.add(agent.username)
            agent.state, agent.since, agent.call = AgentState.RINGING, now, waiting.call
            out.append(Offer(waiting.call, agent))
        return out

    def answered(self, call: str, username: str, now: float) -> Waiting | None:
        """The agent picked up: the caller leaves the queue, the agent is talking."""
        waiting = self.waiting.pop(call, None)
        agent = self.agents.get(username)
        if agent is not None:
            agent.state, agent.since, agent.call = AgentState.TALKING, now, call
            agent.answered += 1
            agent.resume = None
        return waiting

    def ring_failed(self, call: str, username: str, now: float, *, missed: bool = True) -> None:
        """The agent's phone was not answered (`missed`: paused, so the next caller is not sent
        there) or could not be rung from our side (available again); the caller waits on at the
        head of the queue."""
        agent = self.agents.get(username)
        if agent is not None and agent.call == call:
            agent.call = None
            if missed:
                agent.state, agent.since, agent.reason = AgentState.PAUSED, now, "未接听"
            else:
                agent.state, agent.since, agent.reason = AgentState.AVAILABLE, now, ""
        waiting = self.waiting.get(call)
        if waiting is not None:
            waiting.ringing = None
            if not missed:
                waiting.tried.discard(username)

    def reserve(self, username: str, call: str, now: float) -> Agent:
        """An outbound call-back rings this agent's phone: no queue caller meanwhile."""
        agent = self._agent(username)
        if agent.state not in (AgentState.AVAILABLE, AgentState.PAUSED, AgentState.WRAPUP):
            raise AcdError("坐席正在振铃或通话中，不能回拨")
        agent.state, agent.since, agent.call = AgentState.RINGING, now, call
        return agent

    def transfer_to(self, username: str, call: str, now: float) -> Agent:
        """A transfer or consultation rings this agent: an agent must be free; a supervisor
        may be paused or in wrap-up (the one they go back to if it is taken back)."""
        agent = self._agent(username)
        free: tuple[AgentState, ...] = (AgentState.AVAILABLE,)
        if agent.role != "agent":
            free = (AgentState.AVAILABLE, AgentState.PAUSED, AgentState.WRAPUP)
        if agent.state not in free or agent.call is not None:
            raise AcdError(f"{username} 当前{AGENT_STATE_LABELS[agent.state]}，不能转接")
        agent.resume = (agent.state, agent.reason)
        agent.state, agent.since, agent.call = AgentState.RINGING, now, call
        return agent

    def left(self, call: str, username: str, now: float, *, wrapup: bool) -> None:
        """The agent is out of a call that goes on (transferred away, consultation over):
        wrap-up after talking, else back to where a transfer found them."""
        agent = self.agents.get(username)
        if agent is None or agent.call != call:
            return
        if wrapup:
            self._free(agent, now, wrapup=self.wrapup_s > 0)
            return
        state, reason = agent.resume or (AgentState.AVAILABLE, "")
        agent.call, agent.resume = None, None
        agent.state, agent.since, agent.reason = state, now, reason
        if state is AgentState.AVAILABLE:
            agent.idle_since = now
        agent.wrapup_until = now + self.wrapup_s if state is AgentState.WRAPUP else None

    def ended(self, call: str, username: str, now: float) -> None:
        """The conversation is over: wrap-up, then available again."""
        agent = self.agents.get(username)
        if agent is not None and agent.call == call:
            self._free(agent, now, wrapup=self.wrapup_s > 0)

    def _free(self, agent: Agent, now: float, *, wrapup: bool) -> None:
        agent.call = None
        agent.resume = None
        if wrapup:
            agent.state, agent.since, agent.reason = AgentState.WRAPUP, now, ""
            agent.wrapup_until = now + self.wrapup_s
        else:
            agent.state, agent.since, agent.reason = AgentState.AVAILABLE, now, ""
            agent.idle_since = now
            agent.wrapup_until = None

    def tick(self, now: float) -> list[Waiting]:
        """Finish due wrap-ups; returns callers whose queue time ran out (they leave the queue)."""
        for agent in self.agents.values():
            if (
                agent.state is AgentState.WRAPUP
                and agent.wrapup_until is not None
                and agent.wrapup_until <= now
            ):
                self._free(agent, now, wrapup=False)
        expired = [w for w in self.waiting.values() if w.deadline <= now and w.ringing is None]
        for waiting in expired:
            del self.waiting[waiting.call]
        return expired
