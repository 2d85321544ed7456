"""The call centre's standby, end to end with real parts: two `hotline serve --role web,sip`
processes share a real Redis (tests/redisserver.py), the SIP worker runs under `hotline telephony
workers`, callers and agents' phones are SIPp with RTP from Python sockets. The active centre
is killed with SIGKILL while one caller talks to an agent and another waits in the queue: the
standby takes over, the conversation goes on (audio both ways, no BYE), the waiting caller is
still in the queue and gets the next agent, and the agents' states are as they were."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.callcentres import (
    AGENT1_HZ,
    AGENT2_HZ,
    CALLER1,
    CALLER2,
    CALLER_HZ,
    HEARD,
    Cluster,
    agent_of,
    call_in,
    choose_complaint,
    hears,
    snapshot,
    until_heard,
)
from tests.hotline_server import StaffClient
from tests.ports import free_port
from tests.sip.rtp_phone import RtpPhone
from tests.sip.sipp import sipp_server
from tests.test_telephony_sip import PASSWORD, add_user, wait_for


def test_the_standby_takes_the_queue_and_the_bridged_call_stays_up(
    cluster: Cluster, tmp_path: Path
) -> None:
    first = cluster.centre("a", cluster.links[0])
    first.wait_ready()
    for name, role in (("agent1", "agent"), ("agent2", "agent"), ("super1", "supervisor")):
        add_user(cluster.db_url, name, role)
    cluster.start_workers()
    first.wait_ready(sip_workers=1)  # the worker linked to the first centre
    second = cluster.centre("b", cluster.links[1])
    second.wait_ready()
    watch_a = StaffClient(first, "super1", PASSWORD)
    watch_b = StaffClient(second, "super1", PASSWORD)
    assert snapshot(watch_b) is None  # the standby does not run the queue

    with (
        RtpPhone(CALLER_HZ) as caller1,
        RtpPhone(CALLER_HZ) as caller2,
        RtpPhone(AGENT1_HZ) as phone1,
        RtpPhone(AGENT2_HZ) as phone2,
    ):
        ports = [free_port(), free_port()]
        with (
            sipp_server(
                "uas_rtp",
                tmp_path / "phone1",
                port=ports[0],
                values={"sdp_port": phone1.port, "bye_timeout_ms": 900_000},
            ) as desk1,
            sipp_server(
                "uas_rtp",
                tmp_path / "phone2",
                port=ports[1],
                values={"sdp_port": phone2.port, "bye_timeout_ms": 900_000},
            ) as desk2,
        ):
            agent1 = StaffClient(first, "agent1", PASSWORD)
            agent2 = StaffClient(first, "agent2", PASSWORD)
            for client, name, port in ((agent1, "agent1", ports[0]), (agent2, "agent2", ports[1])):
                status, body = client.send(
                    "POST", "/agent/session", {"uri": f"sip:{name}@127.0.0.1:{port}"}
                )
                assert status == 201, body
            status, body = agent2.send("PUT", "/agent/state", {"state": "paused", "reason": "会议"})
            assert status == 200, body
            status, body = agent1.send("PUT", "/agent/state", {"state": "available"})
            assert status == 200, body

            # caller 1 is put through to agent 1; caller 2 waits (agent 2 is in a meeting)
            talk = call_in(cluster.sip_port, caller1, CALLER1, tmp_path / "caller1")
            wait_ = call_in(cluster.sip_port, caller2, CALLER2, tmp_path / "caller2")
            try:

                def talking() -> bool:
                    snap = snapshot(watch_a)
                    return bool(snap) and agent_of(snap, "agent1")["state"] == "talking"

                def waiting() -> bool:
                    snap = snapshot(watch_a)
                    return bool(snap) and any(w["caller"] == CALLER2 for w in snap["waiting"])

                choose_complaint(caller1, talking)
                until_heard(caller1, AGENT1_HZ, "agent 1 at caller 1")
                until_heard(phone1, CALLER_HZ, "caller 1 at agent 1")
                choose_complaint(caller2, waiting)
                before = snapshot(watch_a)
                assert before is not None
                call1 = agent_of(before, "agent1")["call"]

                # -- the active centre dies ---------------------------------------------------
                first.kill()

                def taken_over() -> dict[str, Any] | None:
                    snap = snapshot(watch_b)
                    if snap and snap["workers"] and snap["calls"] == 2:
                        return snap
                    return None

                after = wait_for(taken_over, "the standby to take over with the worker's calls")
                # the conversation went on: audio both ways, nobody hung up
                assert hears(caller1, AGENT1_HZ) > HEARD
                assert hears(phone1, CALLER_HZ) > HEARD
                assert talk.running() and desk1.running()
                assert desk1.result().logged("answered") == 1
                # the agents' states and the queue are as they were
                one, two = agent_of(after, "agent1"), agent_of(after, "agent2")
                assert (one["state"], one["call"], one["answered"]) == ("talking", call1, 1)
                assert (two["state"], two["reason"]) == ("paused", "会议")
                assert [w["caller"] for w in after["waiting"]] == [CALLER2]
                assert wait_.running()

                # the waiting caller gets the next agent, through the new centre
                agent2_b = StaffClient(second, "agent2", PASSWORD)
                status, body = agent2_b.send("PUT", "/agent/state", {"state": "available"})
                assert status == 200, body
                until_heard(caller2, AGENT2_HZ, "agent 2 at caller 2")
                until_heard(phone2, CALLER_HZ, "caller 2 at agent 2")
                snap = snapshot(watch_b)
                assert snap is not None and agent_of(snap, "agent2")["state"] == "talking"

                # who is on duty, as the new centre writes it (the dead one wrote agent 2
                # paused): any web process on this Redis lists it
                def on_duty() -> dict[str, Any] | None:
                    status, body = watch_b.get("/presence")
                    rows = (
                        {p["username"]: p["agent"] for p in body["people"]} if status == 200 else {}
                    )
                    a1, a2 = rows.get("agent1"), rows.get("agent2")
                    if a1 and a2 and (a1["state"], a2["state"]) == ("talking", "talking"):
                        return rows
                    return None

                duty = wait_for(on_duty, "the new centre's agents on duty")
                assert duty["agent2"]["state_label"] == "通话中"
                assert hears(caller1, AGENT1_HZ) > HEARD  # and the first call is still up
            finally:
                talk.stop(grace_s=1)
                wait_.stop(grace_s=1)
            assert desk2.result().logged("answered") == 1

    # the calls end (the callers are gone: the worker hangs up at its stop) and the new
    # centre closes both records as answered, by the agent who took each
    workers = cluster.workers
    assert workers is not None
    workers.send_signal(signal.SIGTERM)
    assert workers.wait(timeout=60) == 0, cluster.workers_output()

    def records() -> list[dict[str, Any]] | None:
        status, body = watch_b.get("/calls?limit=50")
        done = [c for c in body["items"] if c["ended_at"]] if status == 200 else []
        return done if len(done) == 2 else None

    ended = {r["caller"]: r for r in wait_for(records, "both call records closed")}
    assert (ended[CALLER1]["outcome"], ended[CALLER1]["agent"]) == ("answered", "agent1")
    assert (ended[CALLER2]["outcome"], ended[CALLER2]["agent"]) == ("answered", "agent2")
    assert second.stop() == 0
    for out in (second.output(), cluster.workers_output()):
        assert "Traceback" not in out, out
    assert "本进程接管呼叫中心" in second.output()
