"""A browser agent's call across a call-centre failover, with real parts: two `hotline serve
--role web,sip` centres on a real Redis, the SIP worker under `hotline telephony workers`, a
citizen's call from SIPp with RTP from a Python socket, and the agent in headless Chromium, whose
page reaches the centres through a failover proxy (what nginx or a load balancer does: each new
connection goes to the first centre that accepts it).

The agent answers in the page and talks; the active centre is killed with SIGKILL. The
conversation goes on both ways (its media runs between the browser and the worker, which outlives
the centre), the page's signalling reconnects to the standby once it has taken over and shows
the agent still in the call, and the agent's 挂断 in the page ends the citizen's call through
the new centre, which records it."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser import login, screenshot
from tests.callcentres import CALLER_HZ, HEARD, Cluster, call_in, choose_complaint, hears, snapshot
from tests.hotline_server import StaffClient
from tests.ports import RTP_HIGH, RTP_LOW, free_port_block
from tests.sip.rtp_phone import RtpPhone
from tests.test_softphone_browser import (
    AGENT_HZ,
    PAGES,
    act,
    call_state,
    chromium_with_tone,
    page_hears,
    sign_in,
    sp,
    until_heard,
    wait_for,
)
from tests.test_telephony_sip import PASSWORD, add_user

CALLER = "13800000431"
# the page's signalling socket is a new one, open (the old one is kept in window.signalling)
RECONNECTED = """() => window.hotlineSoftphone.ws !== window.signalling
    && window.hotlineSoftphone.ws.readyState === WebSocket.OPEN"""


class FailoverProxy:
    """TCP on a port of its own; each connection is piped to the first backend that accepts it
    (a dead centre refuses, so new connections go to the other one)."""

    def __init__(self) -> None:
        self.backends: list[int] = []  # HTTP ports, in order of preference
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])
        self.connections: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        for port in self.backends:
            try:
                upstream = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                continue
        else:
            client.close()
            return
        upstream.settimeout(None)
        self.connections += [client, upstream]
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True).start()
        _pipe(client, upstream)

    def close(self) -> None:
        self.sock.close()
        for s in self.connections:
            with contextlib.suppress(OSError):
                s.close()


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:  # one side gone: so is the other (a killed centre drops its clients)
        for s in (src, dst):
            # shutdown first: close() alone leaves the socket open while the other direction's
            # thread is blocked reading it, and the browser would never see its centre go
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    with chromium_with_tone(tmp_path) as b:
        yield b


def test_a_browser_agents_call_survives_the_centres_death_and_ends_from_the_page(
    cluster: Cluster, browser: Any, tmp_path: Path
) -> None:
    # both centres are reached through the proxy, so the page's origin is the proxy's
    proxy = FailoverProxy()
    base = f"http://127.0.0.1:{proxy.port}"
    ice = free_port_block(20, tcp=False, low=RTP_LOW, high=RTP_HIGH)
    cluster.env.update(
        HOTLINE__SERVER__PUBLIC_URL=base,
        HOTLINE__TELEPHONY__WEBRTC__PORT_MIN=str(ice),
        HOTLINE__TELEPHONY__WEBRTC__PORT_MAX=str(ice + 19),
        HOTLINE__TELEPHONY__RING_AGENT_S="60",
    )
    first = cluster.centre("a", cluster.links[0])
    first.wait_ready()
    add_user(cluster.db_url, "agent1", "agent")
    add_user(cluster.db_url, "super1", "supervisor")
    cluster.start_workers()
    first.wait_ready(sip_workers=1)
    second = cluster.centre("b", cluster.links[1])
    second.wait_ready()
    proxy.backends = [first.port, second.port]
    watch_b = StaffClient(second, "super1", PASSWORD)
    ctx = browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(15_000)
    try:
        page = login(ctx.new_page(), "agent1", PASSWORD)
        PAGES.clear()
        PAGES.update(agent1=page)
        sign_in(page, available=True)
        with RtpPhone(CALLER_HZ) as caller:
            citizen = call_in(cluster.sip_port, caller, CALLER, tmp_path / "caller")
            try:
                choose_complaint(caller, lambda: sp(page, "ring").is_visible())
                act(page, "answer")
                wait_for(lambda: call_state(page) == "通话中", "the agent talking")
                until_heard(lambda: page_hears(page, CALLER_HZ), "the caller in the page")
                wait_for(lambda: hears(caller, AGENT_HZ) > HEARD, "the agent at the caller")

                # -- the active centre dies ---------------------------------------------------
                page.evaluate("() => { window.signalling = window.hotlineSoftphone.ws; }")
                first.kill()
                wait_for(
                    lambda: (snap := snapshot(watch_b)) and snap["workers"] and snap["calls"] == 1,
                    "the standby to take over the worker's call",
                )
                # the page's socket went down with the centre and comes back to the standby
                wait_for(
                    lambda: (
                        page.evaluate(RECONNECTED) and sp(page, "conn").inner_text() == "已连接"
                    ),
                    "the page reconnected",
                )
                wait_for(lambda: sp(page, "state").inner_text() == "通话中", "still in the call")
                assert call_state(page) == "通话中"
                screenshot(page, "softphone-after-failover")
                # the conversation went on, both ways, through the worker
                until_heard(lambda: page_hears(page, CALLER_HZ), "the caller after the failover")
                wait_for(lambda: hears(caller, AGENT_HZ) > HEARD, "the agent after the failover")

                # -- the agent hangs up in the page: the new centre ends the citizen's call ---
                act(page, "hangup")
                wait_for(lambda: not citizen.running(), "the citizen's call ended")
                result = citizen.wait(timeout_s=120)
                assert result.successful == 1, result.summary()  # a BYE, not a dropped call
                wait_for(lambda: call_state(page) == "通话已结束", "the end shown in the page")
            finally:
                if citizen.running():
                    citizen.stop(grace_s=2)
        status, body = watch_b.get(f"/calls?caller={CALLER}")
        assert status == 200, body
        done = [c for c in body["items"] if c["ended_at"]]
        assert done and done[0]["agent"] == "agent1" and done[0]["outcome"] == "answered", body
    finally:
        ctx.close()
        proxy.close()
