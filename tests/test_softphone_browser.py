"""The browser softphone end to end: a real `hotline serve` with its pjsua2 worker, a citizen's
call placed by SIPp whose audio is a Python RTP socket (tests/sip/rtp_phone.py), and agents in
headless Chromium pages whose fake microphone plays a tone from a WAV file.

One call walks through every control: it rings in the agent's page with the IVR path and wait,
rings there again after the agent reloads the page (still signed in, the ring re-sent), is
answered in the page, audio is checked both ways by frequency and energy (on the caller's socket
and in the page, from the decoded remote track) and again after a reload of the page during the
call (the page sends a new offer, the call goes on), hold plays music to the caller, mute silences
the agent, the keypad sends RFC 4733 keys, a blind transfer moves the caller to another agent's
page, an attended transfer consults a supervisor (the caller on hold) and completes, a three-way
call adds a department's phone (a SIPp UAS with its own socket) everyone hears, keys reach that
phone, it is dropped, and the hang-up ends the call with its record and recording.
Screenshots of each view go to var/test-artifacts/. Bounds are generous; nothing is timed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest

from tests.browser import *  # noqa: F403
from tests.browser import CHROMIUM, CHROMIUM_ARGS, WebServer, screenshot, start_web_server
from tests.conftest import PASSWORD
from tests.hotline_server import StaffClient
from tests.ports import RTP_HIGH, RTP_LOW, free_port, free_port_block
from tests.sip.rtp_phone import RtpPhone, tone_level
from tests.sip.sipp import SippProcess, sipp_server, start_sipp

WAIT_S = 60  # upper bound for every wait on a loaded machine; never asserted as a speed
CALLER = "13800000151"
CALLER_HZ = 470  # the citizen's voice (between the music-on-hold notes)
AGENT_HZ = 1400  # every agent's fake microphone (tone.wav)
DEPT_HZ = 2500  # the department's phone
HEARD = 250.0  # RMS of a tone (16-bit scale) taken as heard; silence and noise stay far below
UNHEARD = 80.0


def tone_wav(path: Path, hz: float, seconds: float = 600) -> Path:
    """The agents' microphone: beeps (0.4 s on, 0.1 s off) survive the browser's noise
    suppression better than a steady tone, which it treats as noise and fades."""
    rate = 48_000
    t = np.arange(int(rate * 0.5)) / rate
    beep = np.where(t < 0.4, np.sin(2 * np.pi * hz * t), 0.0) * 0.5 * 32767
    pcm = np.tile(beep.astype("<i2"), int(seconds / 0.5))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return path


@pytest.fixture(scope="module")
def dept_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory, dept_port: int) -> Iterator[WebServer]:
    ice = free_port_block(30, tcp=False, low=RTP_LOW, high=RTP_HIGH)
    env = {
        "HOTLINE__TELEPHONY__ENABLED": "true",
        "HOTLINE__SERVER__PUBLIC_URL": "http://127.0.0.1:{http_port}",
        "HOTLINE__TELEPHONY__WEBRTC__PORT_MIN": str(ice),
        "HOTLINE__TELEPHONY__WEBRTC__PORT_MAX": str(ice + 29),
        "HOTLINE__TELEPHONY__RING_AGENT_S": "40",
        "HOTLINE__TELEPHONY__WRAPUP_S": "8",
        "HOTLINE__TELEPHONY__QUEUE_TIMEOUT_S": "300",
        "HOTLINE__TELEPHONY__ANNOUNCE_EVERY_S": "300",
        "HOTLINE__TELEPHONY__DEPARTMENT_PHONES": (
            f'{{ "150100-housing" = "sip:housing@127.0.0.1:{dept_port}" }}'
        ),
    }
    ws = start_web_server(tmp_path_factory.mktemp("softphone"), env)
    ws.server.wait_ready(sip_workers=1)
    try:
        yield ws
    finally:
        code = ws.server.stop()
        output = ws.server.output()
        ws.server.kill()
        assert code == 0, output[-5000:]
        assert "Traceback" not in output, output[-10000:]


@contextlib.contextmanager
def chromium_with_tone(folder: Path) -> Iterator[Any]:
    """Chromium whose fake microphone plays the agents' tone (a WAV written into `folder`)."""
    wav = tone_wav(folder / "agent.wav", AGENT_HZ)
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"],
        )
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium_with_tone(tmp_path_factory.mktemp("audio")) as b:
        yield b


# -- helpers -----------------------------------------------------------------------------------
# the pages the test opened, by user: a timeout reports what each page showed (state, call,
# the last error, which the page hides after a few seconds)
PAGES: dict[str, Any] = {}


def pages_report() -> str:
    lines = []
    for name, page in PAGES.items():
        try:
            shown = page.evaluate(
                """() => Object.fromEntries(["conn", "state", "call-status", "error", "ring"].map(
                    (k) => [k, document.querySelector(`[data-sp="${k}"]`)?.textContent?.trim()]))"""
            )
        except Exception as exc:  # a closed or crashed page says so
            shown = repr(exc)
        lines.append(f"  {name}: {shown}")
    return "\n".join(lines)


def wait_for(check: Callable[[], Any], what: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what} (last: {last!r})\npages:\n{pages_report()}")


def sp(page: Any, name: str) -> Any:
    return page.locator(f'[data-sp="{name}"]')


def act(page: Any, action: str) -> None:
    page.locator(f'[data-sp-action="{action}"]').click()


def sign_in(page: Any, *, available: bool) -> None:
    page.goto("/staff/softphone")
    wait_for(lambda: sp(page, "conn").inner_text() == "已连接", "the softphone's socket")
    act(page, "login")
    wait_for(lambda: "示忙" in sp(page, "state").inner_text(), "signed in (paused)")
    if available:
        act(page, "available")
        wait_for(lambda: sp(page, "state").inner_text() == "空闲", "available")


PAGE_AUDIO = """async (ms) => {
  const stream = window.hotlineSoftphone.remoteStream();
  if (!stream) return null;
  const track = stream.getAudioTracks()[0].clone();
  const reader = new MediaStreamTrackProcessor({track}).readable.getReader();
  const out = [];
  let rate = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const {value, done} = await reader.read();
    if (done) break;
    rate = value.sampleRate;
    const buf = new Float32Array(value.numberOfFrames);
    value.copyTo(buf, {planeIndex: 0});
    for (const v of buf) out.push(Math.round(v * 32767));
    value.close();
  }
  reader.cancel();
  track.stop();
  return {rate, samples: out};
}"""


def page_hears(page: Any, hz: float, ms: int = 1500) -> float:
    """The level of `hz` in what the page receives from the call now (decoded remote track)."""
    got = page.evaluate(PAGE_AUDIO, ms)
    if not got or not got["samples"]:
        return 0.0
    return tone_level(np.array(got["samples"], dtype=float), hz, rate=int(got["rate"]))


def phone_hears(phone: RtpPhone, hz: float, seconds: float = 1.5) -> float:
    start = phone.mark()
    time.sleep(seconds)
    return tone_level(phone.audio_since(start), hz)


def until_heard(level: Callable[[], float], what: str) -> float:
    return float(wait_for(lambda: (lv := level()) > HEARD and lv, what))


def until_quiet(level: Callable[[], float], what: str) -> None:
    wait_for(lambda: level() < UNHEARD, what)


def call_state(page: Any) -> str:
    return str(sp(page, "call-status").inner_text())


# -- the test ----------------------------------------------------------------------------------
def test_softphone_call_with_every_control(
    web_server: WebServer, staff_page: Callable[..., Any], dept_port: int, tmp_path: Path
) -> None:
    server = web_server.server
    supervisor_api = StaffClient(server, "supervisor", PASSWORD)
    agent_a = staff_page("agent")
    agent_b = staff_page("dispatcher")
    boss = staff_page("supervisor")
    PAGES.clear()
    PAGES.update(agent=agent_a, dispatcher=agent_b, supervisor=boss)
    sign_in(agent_a, available=True)
    sign_in(agent_b, available=False)
    sign_in(boss, available=False)
    boss.select_option('[data-sp="reason"]', "会议")
    act(boss, "paused")
    wait_for(lambda: sp(boss, "state").inner_text() == "示忙（会议）", "示忙 with a reason")
    screenshot(agent_a, "softphone-signed-in")

    with RtpPhone(CALLER_HZ) as caller, RtpPhone(DEPT_HZ, event_pt=120) as dept:
        department: SippProcess
        with sipp_server(
            "uas_rtp",
            tmp_path / "dept",
            port=dept_port,
            values={"sdp_port": dept.port, "event_pt": 120, "bye_timeout_ms": 600_000},
        ) as department:
            citizen = start_sipp(
                "caller_rtp",
                tmp_path / "caller",
                ("127.0.0.1", server.sip_port),
                calls=1,
                values={"rtp_port": caller.port, "hold_ms": 600_000},
                keys={"caller": CALLER},
                timeout_s=900,
            )
            try:
                _walk_the_call(server, supervisor_api, agent_a, agent_b, boss, caller, dept)
                result = citizen.wait(timeout_s=WAIT_S)
            finally:
                if citizen.running():
                    citizen.stop(grace_s=2)
            assert result.successful == 1, result.summary()
            dept_result = department.stop()
        assert dept_result.logged("answered") == 1, dept_result.summary()

    record = wait_for(lambda: _record(supervisor_api), "the call record")
    assert record["outcome"] == "answered"
    assert record["agent"] == "agent"  # who answered first
    path = record["ivr_path"]
    assert path.startswith("lang:cmn>menu:2>queue>agent:agent"), path
    assert "primary:dispatcher" in path and "consult:supervisor" in path, path
    recording = server.recordings / f"{record['id']}.wav"
    with wave.open(str(recording), "rb") as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(float)
    assert tone_level(pcm, CALLER_HZ, rate=8000) > HEARD / 4  # both sides are in the recording
    assert tone_level(pcm, AGENT_HZ, rate=8000) > HEARD / 4


def _record(api: StaffClient) -> dict[str, Any] | None:
    status, body = api.get(f"/calls?caller={CALLER}")
    assert status == 200, body
    done = [c for c in body["items"] if c["ended_at"]]
    return done[0] if done else None


def _walk_the_call(
    server: Any,
    api: StaffClient,
    a: Any,
    b: Any,
    boss: Any,
    caller: RtpPhone,
    dept: RtpPhone,
) -> None:
    # -- the IVR: 1 普通话, 2 投诉举报 → the queue rings agent A's page ------------------------
    wait_for(lambda: caller.packets() > 0, "the hotline's first audio")
    caller.press("1")
    time.sleep(3)

    def queued() -> bool:
        _, snap = api.get("/callcenter")
        return any(w["caller"] == CALLER for w in snap["waiting"]) or any(
            ag["state"] == "ringing" for ag in snap["agents"]
        )

    for _ in range(3):  # a key pressed before the menu listened is dropped: press again
        caller.press("2")
        try:
            wait_for(queued, "the caller in the queue", timeout=12)
            break
        except pytest.fail.Exception:
            continue
    wait_for(lambda: sp(a, "ring").is_visible(), "the call ringing in agent A's page")
    assert sp(a, "ring-caller").inner_text() == CALLER
    assert sp(a, "ring-path").inner_text() == "普通话 → 投诉 → 排队"
    assert sp(a, "ring-kind").inner_text() == "投诉"
    wait_for(lambda: sp(a, "ring-wait").inner_text() not in ("", "00:00"), "the wait shown")
    screenshot(a, "softphone-ringing")

    # -- agent A reloads the page while it rings: still signed in, and the ring is shown again
    a.reload()
    wait_for(lambda: sp(a, "conn").inner_text() == "已连接", "agent A's page reconnected")
    wait_for(lambda: sp(a, "ring").is_visible(), "the ring shown again after the reload")
    assert sp(a, "ring-caller").inner_text() == CALLER
    assert sp(a, "ring-path").inner_text() == "普通话 → 投诉 → 排队"

    # -- answer in the page: audio both ways ------------------------------------------------
    act(a, "answer")
    wait_for(lambda: call_state(a) == "通话中", "agent A talking")
    screenshot(a, "softphone-in-call")
    until_heard(lambda: page_hears(a, CALLER_HZ), "the caller's voice in agent A's page")
    until_heard(lambda: phone_hears(caller, AGENT_HZ), "agent A's voice at the caller")
    assert phone_hears(caller, CALLER_HZ) < UNHEARD  # no echo of the caller's own voice

    # -- agent A reloads the page during the call: the call goes on, its audio comes back ----
    a.reload()
    wait_for(lambda: sp(a, "conn").inner_text() == "已连接", "agent A's page back in the call")
    wait_for(lambda: call_state(a) == "通话中", "the call shown again after the reload")
    assert sp(a, "call-caller").inner_text() == CALLER
    until_heard(lambda: page_hears(a, CALLER_HZ), "the caller's voice back in agent A's page")
    until_heard(lambda: phone_hears(caller, AGENT_HZ), "agent A's voice back at the caller")

    # -- hold: music for the caller, not the agent ------------------------------------------
    act(a, "hold")
    wait_for(lambda: "保持" in call_state(a), "held")
    until_quiet(lambda: phone_hears(caller, AGENT_HZ), "the agent off the caller's line")
    start = caller.mark()
    time.sleep(2)
    music = caller.audio_since(start)
    assert music.size and float(np.sqrt((music**2).mean())) > HEARD, "music on hold"
    screenshot(a, "softphone-hold")
    act(a, "unhold")
    wait_for(lambda: call_state(a) == "通话中", "unheld")
    until_heard(lambda: phone_hears(caller, AGENT_HZ), "agent A again after hold")

    # -- mute: the browser sends silence ----------------------------------------------------
    act(a, "mute")
    until_quiet(lambda: phone_hears(caller, AGENT_HZ), "agent A muted")
    assert "已静音" in call_state(a)
    act(a, "unmute")
    until_heard(lambda: phone_hears(caller, AGENT_HZ), "agent A unmuted")

    # -- keypad: keys reach the caller's phone as RFC 4733 events ---------------------------
    since = caller.mark()
    a.locator('[data-sp-digit="5"]').click()
    wait_for(lambda: "5" in caller.keys_since(since), "key 5 at the caller")

    # -- blind transfer to agent B ----------------------------------------------------------
    act(b, "available")
    wait_for(lambda: sp(b, "state").inner_text() == "空闲", "B available")
    act(a, "refresh-targets")
    wait_for(lambda: a.locator('[data-sp="target"] option[value="dispatcher"]').count(), "B")
    a.select_option('[data-sp="target"]', "dispatcher")
    act(a, "blind")
    wait_for(lambda: not sp(a, "parties").is_visible(), "agent A out of the call")
    wait_for(lambda: sp(a, "state").inner_text() == "话后整理", "agent A in wrap-up")
    wait_for(lambda: "剩余" in sp(a, "state-timer").inner_text(), "the wrap-up timer")
    screenshot(a, "softphone-wrapup")
    wait_for(lambda: sp(b, "ring").is_visible(), "the transfer ringing in B's page")
    assert sp(b, "ring-title").inner_text() == "转接来电"
    assert sp(b, "ring-caller").inner_text() == CALLER
    act(b, "answer")
    wait_for(lambda: call_state(b) == "通话中", "B talking")
    until_heard(lambda: page_hears(b, CALLER_HZ), "the caller in B's page")
    until_heard(lambda: phone_hears(caller, AGENT_HZ), "B at the caller")

    # -- attended transfer: B consults the supervisor, the caller on hold, then completes ---
    act(b, "refresh-targets")
    wait_for(lambda: b.locator('[data-sp="target"] option[value="supervisor"]').count(), "S")
    b.select_option('[data-sp="target"]', "supervisor")
    # the list refreshes by itself too (when a call comes up): a refresh keeps the choice
    b.evaluate("() => window.hotlineSoftphone.refreshTargets()")
    assert b.locator('[data-sp="target"]').input_value() == "supervisor"
    act(b, "attended")
    wait_for(lambda: sp(boss, "ring").is_visible(), "the consultation ringing for the supervisor")
    act(boss, "answer")
    wait_for(lambda: "咨询" in call_state(boss), "the supervisor consulted")
    wait_for(lambda: "通话中" in call_state(b), "B sees the consultation up")
    screenshot(b, "softphone-consult")
    until_heard(lambda: page_hears(boss, AGENT_HZ), "B's voice in the supervisor's page")
    assert page_hears(boss, CALLER_HZ) < UNHEARD  # the caller is on hold, not in the consultation
    assert phone_hears(caller, AGENT_HZ) < UNHEARD  # and hears music, not the agents
    act(b, "complete")
    wait_for(lambda: not sp(b, "parties").is_visible(), "B out of the call")
    wait_for(lambda: call_state(boss) == "通话中", "the supervisor with the caller")
    until_heard(lambda: page_hears(boss, CALLER_HZ), "the caller in the supervisor's page")
    until_heard(lambda: phone_hears(caller, AGENT_HZ), "the supervisor at the caller")

    # -- three-way call with the department's phone ----------------------------------------
    boss.select_option('[data-sp="department"]', "150100-housing")
    act(boss, "conference")
    wait_for(
        lambda: boss.locator('[data-sp="parties"] li', has_text="单位").count(), "the department"
    )
    wait_for(
        lambda: "通话中" in boss.locator('[data-sp="parties"] li', has_text="单位").inner_text(),
        "the department answered",
    )
    screenshot(boss, "softphone-three-way")
    until_heard(lambda: page_hears(boss, DEPT_HZ), "the department in the supervisor's page")
    until_heard(lambda: phone_hears(caller, DEPT_HZ), "the department at the caller")
    until_heard(lambda: phone_hears(dept, CALLER_HZ), "the caller at the department")
    until_heard(lambda: phone_hears(dept, AGENT_HZ), "the supervisor at the department")
    assert page_hears(boss, CALLER_HZ) > HEARD  # everyone hears everyone
    since = dept.mark()
    boss.locator('[data-sp-digit="7"]').click()  # keys go to the department's phone
    wait_for(lambda: "7" in dept.keys_since(since), "key 7 at the department's phone")
    boss.locator("[data-sp-drop]").click()
    wait_for(
        lambda: boss.locator('[data-sp="parties"] li', has_text="单位").count() == 0,
        "the department dropped",
    )
    until_quiet(lambda: phone_hears(caller, DEPT_HZ), "the department off the line")

    # -- the supervisor hangs up: goodbye to the caller, wrap-up for the supervisor ----------
    act(boss, "hangup")
    wait_for(lambda: "通话已结束" in call_state(boss), "the call over in the page")
    screenshot(boss, "softphone-ended")
    events = boss.evaluate("() => JSON.stringify(window.hotlineSoftphone.agent)")
    assert json.loads(events)["state"] == "wrapup"


# -- the signalling socket: who may open it, and what each agent receives ----------------------
def test_softphone_socket_is_same_origin_csrf_checked_and_per_agent(web_server: WebServer) -> None:
    """Refusals (anonymous 401, departments and managers 403, another site's Origin 403, a
    wrong CSRF token closes the socket), and isolation: an agent's socket carries that agent's
    events only, while another agent's states change. Run on a thread of its own: this module's
    Chromium keeps the main thread's event loop."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _socket_checks(web_server.base)).result(timeout=WAIT_S * 3)


async def _login(base: str, username: str) -> tuple[aiohttp.ClientSession, str]:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.post(
        base + "/api/v1/session", json={"username": username, "password": PASSWORD}
    ) as resp:
        assert resp.status == 200
        return session, (await resp.json())["user"]["csrf_token"]


async def _open(
    session: aiohttp.ClientSession, base: str, csrf: str, origin: str | None = None
) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(base + "/api/v1/softphone/ws", headers={"Origin": origin or base})
    await ws.send_json({"type": "hello", "csrf": csrf})
    return ws


async def _next(ws: aiohttp.ClientWebSocketResponse, type_: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT_S):
        while True:
            msg = await ws.receive_json()
            if msg["type"] == type_:
                return dict(msg)


async def _signed_out_everyone(base: str) -> None:
    """The module's other test closed its pages: each closed page signs its agent out once the
    server has seen its socket close, which a busy machine may take a while to do."""
    watcher, _ = await _login(base, "supervisor")
    async with watcher, asyncio.timeout(WAIT_S):
        while True:
            async with watcher.get(base + "/api/v1/callcenter") as resp:
                assert resp.status == 200
                if not (await resp.json())["agents"]:
                    return
            await asyncio.sleep(0.2)


async def _socket_checks(base: str) -> None:
    await _signed_out_everyone(base)
    url = base + "/api/v1/softphone/ws"
    async with aiohttp.ClientSession() as anonymous:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await anonymous.ws_connect(url, headers={"Origin": base})
        assert refused.value.status == 401
    for username in ("housing", "manager"):
        session, csrf = await _login(base, username)
        async with session:
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await _open(session, base, csrf)
            assert refused.value.status == 403, username

    agent, agent_csrf = await _login(base, "agent")
    other, other_csrf = await _login(base, "dispatcher")
    async with agent, other:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await _open(agent, base, agent_csrf, origin="http://evil.example")
        assert refused.value.status == 403  # another site's page cannot speak for the agent
        forged = await _open(agent, base, "not-the-token")
        assert (await forged.receive()).type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert forged.close_code == 4403

        mine = await _open(agent, base, agent_csrf)
        theirs = await _open(other, base, other_csrf)
        assert (await _next(mine, "welcome"))["username"] == "agent"
        assert (await _next(theirs, "welcome"))["username"] == "dispatcher"
        await theirs.send_json({"id": 0, "type": "login", "uri": "sip:8001@evil.example"})
        reply = await _next(theirs, "result")
        assert not reply["ok"] and "agent_hosts" in reply["message"]  # not a phone of ours
        await theirs.send_json({"id": 1, "type": "login"})
        reply = await _next(theirs, "result")
        assert reply["ok"] and reply["agent"]["state"] == "paused", reply
        await theirs.send_json({"id": 2, "type": "state", "state": "paused", "reason": "培训"})
        await _next(theirs, "result")
        await mine.send_json({"id": 1, "type": "login"})
        reply = await _next(mine, "result")
        assert reply["agent"]["username"] == "agent"
        await mine.send_json({"id": 2, "type": "state", "state": "paused", "reason": ""})
        refused_reply = await _next(mine, "result")
        assert not refused_reply["ok"] and "原因" in refused_reply["message"]
        await mine.send_json({"id": 3, "type": "targets"})
        targets = (await _next(mine, "result"))["agents"]
        assert [t["username"] for t in targets] == ["dispatcher"]
        # everything the agent's socket carried was about the agent
        seen: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2):
                while True:
                    seen.append(await mine.receive_json())
        for msg in seen:
            if msg["type"] == "agent":
                assert msg["agent"]["username"] == "agent", msg
            assert (
                "dispatcher" not in json.dumps(msg, ensure_ascii=False) or msg["type"] == "result"
            )

        # a second page replaces the first; a page that comes back soon after its socket closed
        # (a reload, a blip) finds the agent still signed in; closing it for good signs the
        # browser agent out once the grace (telephony.webrtc.reconnect_grace_s) is over
        again = await _open(agent, base, agent_csrf)
        await _next(again, "welcome")
        await mine.receive()
        assert mine.close_code == 4000
        await again.close()
        back = await _open(agent, base, agent_csrf)
        welcome = await _next(back, "welcome")
        assert welcome["agent"] and welcome["agent"]["username"] == "agent", welcome
        await back.close()
        await theirs.send_json({"id": 9, "type": "targets"})
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            await theirs.send_json({"id": 9, "type": "targets"})
            names = [t["username"] for t in (await _next(theirs, "result"))["agents"]]
            if "agent" not in names:
                break
            await asyncio.sleep(0.3)
        assert "agent" not in names
        await theirs.send_json({"id": 10, "type": "logout"})
        await _next(theirs, "result")
        await theirs.close()
