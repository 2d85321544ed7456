"""The call queue's rules, on an injected clock: who gets the next caller, and what each agent
state allows."""

from __future__ import annotations

import pytest

from telephony.acd import Acd, AcdError, AgentState


def make_acd(timeout: float = 60, wrapup: float = 30) -> Acd:
    return Acd(queue_timeout_s=timeout, wrapup_s=wrapup)


def available(acd: Acd, name: str, at: float) -> None:
    acd.login(name, f"sip:{name}@127.0.0.1", at)
    acd.set_state(name, AgentState.AVAILABLE, at)


def test_acd_longest_idle_agent_gets_the_first_caller() -> None:
    acd = make_acd()
    available(acd, "b", 5)
    available(acd, "a", 1)
    available(acd, "c", 3)
    acd.enqueue("call1", "consult", "138", 10)
    acd.enqueue("call2", "consult", "139", 11)
    offers = acd.offers(12)
    assert [(o.call, o.agent.username) for o in offers] == [("call1", "a"), ("call2", "c")]
    assert acd.agents["a"].state is AgentState.RINGING


def test_acd_callers_are_served_first_come_first_served() -> None:
    acd = make_acd()
    for i in range(3):
        acd.enqueue(f"call{i}", "other", "1", i)
    assert [acd.position(f"call{i}") for i in range(3)] == [1, 2, 3]
    acd.remove("call0")
    assert acd.position("call2") == 2
    available(acd, "a", 10)
    assert [o.call for o in acd.offers(11)] == ["call1"]


def test_acd_paused_and_wrapup_agents_get_no_calls() -> None:
    acd = make_acd()
    acd.login("a", "sip:a@x", 0)  # signed in: paused until the agent says ready
    available(acd, "b", 0)
    acd.set_state("b", AgentState.PAUSED, 1, "培训")
    acd.enqueue("call", "other", "1", 2)
    assert acd.offers(3) == []
    acd.set_state("b", AgentState.WRAPUP, 4)
    assert acd.offers(5) == []


def test_acd_pause_needs_a_reason() -> None:
    acd = make_acd()
    available(acd, "a", 0)
    with pytest.raises(AcdError, match="原因"):
        acd.set_state("a", AgentState.PAUSED, 1, "  ")


def test_acd_agent_state_cannot_change_while_ringing_or_talking() -> None:
    acd = make_acd()
    available(acd, "a", 0)
    acd.enqueue("call", "other", "1", 1)
    acd.offers(2)
    with pytest.raises(AcdError):
        acd.set_state("a", AgentState.PAUSED, 3, "x")
    acd.answered("call", "a", 3)
    with pytest.raises(AcdError):
        acd.logout("a")
    with pytest.raises(AcdError):
        acd.set_state("a", AgentState.AVAILABLE, 4)


def test_acd_unanswered_ring_pauses_agent_and_tries_the_next() -> None:
    acd = make_acd()
    available(acd, "a", 0)
    available(acd, "b", 1)
    acd.enqueue("call", "other", "1", 2)
    assert [o.agent.username for o in acd.offers(3)] == ["a"]
    acd.ring_failed("call", "a", 20)
    assert acd.agents["a"].state is AgentState.PAUSED
    assert acd.agents["a"].reason == "未接听"
    assert [o.agent.username for o in acd.offers(21)] == ["b"]
    assert acd.position("call") == 1  # still waiting, at the head


def test_acd_an_agent_who_missed_is_tried_after_the_others() -> None:
    acd = make_acd()
    available(acd, "a", 0)
    available(acd, "b", 0.5)
    acd.enqueue("call", "other", "1", 1)
    assert [o.agent.username for o in acd.offers(2)] == ["a"]
    acd.ring_failed("call", "a", 3)
    acd.set_state("a", AgentState.AVAILABLE, 4)  # a is the longest idle again, but missed
    assert [o.agent.username for o in acd.offers(5)] == ["b"]


def test_acd_wrapup_then_available_again_after_wrapup_seconds() -> None:
    acd = make_acd(wrapup=30)
    available(acd, "a", 0)
    acd.enqueue("call", "other", "1", 1)
    acd.offers(2)
    acd.answered("call", "a", 3)
    assert acd.position("call") is None
    acd.ended("call", "a", 100)
    assert acd.agents["a"].state is AgentState.WRAPUP
    acd.tick(129)
    assert acd.agents["a"].state is AgentState.WRAPUP
    acd.tick(130)
    agent = acd.agents["a"]
    assert agent.state is AgentState.AVAILABLE
    assert agent.idle_since == 130
    assert agent.answered == 1


def test_acd_queue_timeout_expires_waiting_callers_not_ringing_ones() -> None:
    acd = make_acd(timeout=10)
    available(acd, "a", 0)
    acd.enqueue("ringing", "other", "1", 0)
    acd.enqueue("waiting", "other", "2", 0)
    acd.offers(1)  # "ringing" rings agent a
    expired = acd.tick(10)
    assert [w.call for w in expired] == ["waiting"]
    assert acd.position("ringing") == 1
    assert acd.position("waiting") is None


def test_acd_caller_hanging_up_while_ringing_frees_the_agent() -> None:
    acd = make_acd()
    available(acd, "a", 0)
    acd.enqueue("call", "other", "1", 1)
    acd.offers(2)
    gone = acd.remove("call")
    assert gone is not None and gone.ringing == "a"
    assert acd.agents["a"].state is AgentState.AVAILABLE
    assert acd.agents["a"].call is None


def test_acd_relogin_while_talking_is_refused() -> None:
    acd = make_acd()
    available(acd, "a", 0)
    acd.enqueue("call", "other", "1", 1)
    acd.offers(2)
    acd.answered("call", "a", 3)
    with pytest.raises(AcdError):
        acd.login("a", "sip:other@x", 4)


@pytest.mark.parametrize("state", [AgentState.RINGING, AgentState.TALKING])
def test_acd_agents_cannot_set_system_states(state: AgentState) -> None:
    acd = make_acd()
    available(acd, "a", 0)
    with pytest.raises(AcdError):
        acd.set_state("a", state, 1)


def test_acd_reserved_agent_gets_no_queue_caller_and_frees_after_the_call() -> None:
    acd = make_acd(wrapup=0)
    available(acd, "a", 0)
    acd.reserve("a", "callback-1", 1)  # an outbound call-back rings the agent's phone
    acd.enqueue("call", "other", "1", 2)
    assert acd.offers(3) == []
    acd.answered("callback-1", "a", 4)
    acd.ended("callback-1", "a", 5)
    assert [o.agent.username for o in acd.offers(6)] == ["a"]
    with pytest.raises(AcdError):
        acd.reserve("a", "callback-2", 7)  # ringing for the queue caller now


def test_acd_ring_our_side_could_not_place_leaves_agent_available() -> None:
    acd = make_acd()
    available(acd, "a", 0)
    acd.enqueue("call", "other", "1", 1)
    acd.offers(2)
    acd.ring_failed("call", "a", 3, missed=False)
    assert acd.agents["a"].state is AgentState.AVAILABLE
    assert [o.agent.username for o in acd.offers(4)] == ["a"]  # tried again, not skipped


def test_acd_single_agent_who_missed_once_is_tried_again() -> None:
    acd = make_acd()
    available(acd, "a", 0)
    acd.enqueue("call", "other", "1", 1)
    acd.offers(2)
    acd.ring_failed("call", "a", 3)  # missed: paused
    acd.set_state("a", AgentState.AVAILABLE, 10)  # back at the desk
    assert [o.agent.username for o in acd.offers(11)] == ["a"]
