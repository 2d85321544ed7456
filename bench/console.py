#!/usr/bin/env python3
"""Softphone benchmark: N agents in headless Chromium pages, each in a call bridged through the
browser softphone (SIPp caller → pjsua2 worker → aiortc on the worker's media thread → page),
held for --duration seconds, everything on this machine.

Starts a private `hotline serve` (temp SQLite, --workers SIP worker processes of 4 callers each,
answered by browser agents, which take no call slot), one Chromium with N logged-in pages whose
fake microphone plays a tone, and the callers: SIPp (PCMA tone + keys 1, 2 → queue) for all but
one; that one is a Python RTP socket sending 100 ms bursts every 2 s, and its agent's page sends
back what it hears (WebAudio), so the round trip caller → page → caller is measured. One more
call goes to a desk-phone agent (a SIPp UAS whose socket echoes): the same round trip without
the softphone, under the same load; half the difference is the delay the softphone adds each way.

Once every call is up it measures for --duration s:
- CPU per call of the SIP workers (the softphone "gateway": pjsua2 + aiortc), of the main
  process, of Chromium and SIPp, and the machine's load (/proc);
- late and lost frames: into the call (the worker's jitter buffer ran dry: `to_call_late`),
  towards the browser (frames the worker dropped, and samples Chromium concealed because a
  packet was late or lost: getStats concealedSamples / totalSamplesReceived);
- the round trips above (median and p95).

--busy K keeps K more processes spinning at normal priority while it measures (a machine that
other work keeps busy, reproducibly); --worker-rt P runs the SIP workers at [telephony]
realtime_priority P (default: config.toml's, 10; 0: normal scheduling).

    .venv/bin/python bench/console.py --agents 16 --duration 60
    .venv/bin/python bench/console.py --agents 16 --duration 60 --busy 1 --worker-rt 0

Everything runs on 127.0.0.1; processes started here are stopped by their PIDs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
from _common import add_worker_rt_argument, worker_rt_env
from playwright.async_api import expect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hotline.config import load_settings  # noqa: E402
from hotline.db import open_database  # noqa: E402
from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.conftest import FAST_HASHER, PASSWORD  # noqa: E402
from tests.hotline_server import Server  # noqa: E402
from tests.ports import RTP_HIGH, RTP_LOW, free_port, free_port_block  # noqa: E402
from tests.sip.pcap import write_rtp_pcap  # noqa: E402
from tests.sip.rtp_phone import RtpPhone, onsets  # noqa: E402
from tests.sip.sipp import SippProcess, start_sipp  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
PROBE_HZ = 1000
WAIT_S = 120
WAIT_MS = WAIT_S * 1000
ECHO_JS = """async () => {
  const call = window.hotlineSoftphone.call;
  const ctx = new AudioContext({latencyHint: "interactive"});
  const dst = ctx.createMediaStreamDestination();
  ctx.createMediaStreamSource(call.remote).connect(dst);
  const sender = call.pc.getSenders().find((s) => s.track && s.track.kind === "audio");
  await sender.replaceTrack(dst.stream.getAudioTracks()[0]);
  window.benchEcho = ctx;
  return ctx.state;
}"""


# -- processes and CPU ---------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, utime + stime in ticks)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _stat(int(name))
            if st is not None:
                children.setdefault(st[0], []).append(int(name))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def cpu_ticks(pids: set[int]) -> int:
    return sum(st[1] for pid in pids if (st := _stat(pid)) is not None)


def machine() -> tuple[int, int]:
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle, sum(parts)


# -- set-up --------------------------------------------------------------------------------------
def tone_wav(path: Path, hz: float = 1400, seconds: float = 900) -> Path:
    rate = 48_000
    t = np.arange(int(rate * 0.5)) / rate
    beep = np.where(t < 0.4, np.sin(2 * np.pi * hz * t), 0.0) * 0.5 * 32767
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(np.tile(beep.astype("<i2"), int(seconds / 0.5)).tobytes())
    return path


def add_users(db_url: str, names: list[str], supervisor: str) -> None:
    from agent_ui.accounts import Accounts
    from hotline.app import load_routing
    from tickets.model import Role

    settings = load_settings(REPO / "config.toml", environ={"HOTLINE__DATABASE__URL": db_url})
    db = open_database(settings)
    try:
        accounts = Accounts(db, load_routing(settings), hasher=FAST_HASHER)
        for name in names:
            accounts.create_user_sync(name, PASSWORD, Role.AGENT, None, name)
        accounts.create_user_sync(supervisor, PASSWORD, Role.SUPERVISOR, None, supervisor)
    finally:
        db.close()


async def api_login(base: str, username: str) -> tuple[aiohttp.ClientSession, str]:
    session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with session.post(
        base + "/api/v1/session", json={"username": username, "password": PASSWORD}
    ) as resp:
        resp.raise_for_status()
        return session, (await resp.json())["user"]["csrf_token"]


async def open_page(browser: Any, base: str, username: str) -> Any:
    ctx = await browser.new_context(base_url=base, locale="zh-CN")
    ctx.set_default_timeout(WAIT_S * 1000)
    resp = await ctx.request.post(
        "/api/v1/session", data={"username": username, "password": PASSWORD}
    )
    assert resp.ok, await resp.text()
    page = await ctx.new_page()
    await page.goto("/staff/softphone")
    # (locators, not wait_for_function: the page's CSP forbids evaluating strings)
    await expect(page.locator('[data-sp="conn"]')).to_have_text("已连接", timeout=WAIT_MS)
    await page.click('[data-sp-action="login"]')
    await expect(page.locator('[data-sp="state"]')).to_have_text(
        re.compile("^示忙"), timeout=WAIT_MS
    )
    return page


async def available(page: Any) -> None:
    await page.click('[data-sp-action="available"]')
    await expect(page.locator('[data-sp="state"]')).to_have_text("空闲", timeout=WAIT_MS)


async def answer_when_rung(page: Any) -> None:
    """Answer the next call that rings this page; a failed answer (the ring ran out on a busy
    machine, media failed) waits for the queue to ring it again."""
    deadline = time.monotonic() + 3 * WAIT_S
    status = page.locator('[data-sp="call-status"]')
    while time.monotonic() < deadline:
        await page.wait_for_selector('[data-sp="ring"]:not([hidden])', timeout=WAIT_MS)
        await page.click('[data-sp-action="answer"]')
        with contextlib.suppress(AssertionError):
            await expect(status).to_have_text(
                re.compile("^(通话中|接听失败|未接听)"), timeout=WAIT_MS
            )
        text = await status.inner_text()
        if text.startswith("通话中"):
            return
        error = await page.locator('[data-sp="error"]').inner_text()
        print(f"  a page could not answer ({text}: {error}); waiting for the next ring", flush=True)
        # the queue paused the agent (未接听): ready again for the next caller
        await expect(page.locator('[data-sp="ring"]')).to_be_hidden(timeout=WAIT_MS)
        with contextlib.suppress(Exception):
            await page.click('[data-sp-action="available"]', timeout=10_000)
    raise TimeoutError("a page never got a call through")


async def page_stats(page: Any) -> dict[str, float]:
    got = await page.evaluate("() => window.hotlineSoftphone.mediaStats()")
    inbound = (got or {}).get("inbound") or {}
    return {
        "samples": float(inbound.get("totalSamplesReceived", 0)),
        "concealed": float(inbound.get("concealedSamples", 0)),
        "packets": float(inbound.get("packetsReceived", 0)),
        "lost": float(inbound.get("packetsLost", 0)),
        "jb_delay": float(inbound.get("jitterBufferDelay", 0)),
        "jb_emitted": float(inbound.get("jitterBufferEmittedCount", 0)),
    }


def round_trips(phone: RtpPhone, since: float, until: float) -> list[float]:
    arrivals = onsets(phone, PROBE_HZ)
    out = []
    for sent in phone.burst_times:
        if since <= sent <= until:
            back = [a - sent for a in arrivals if 0.02 < a - sent < 1.5]
            if back:
                out.append(back[0])
    return out


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# -- the run -------------------------------------------------------------------------------------
async def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    n = args.agents
    workers = args.workers or math.ceil(n / 4) + 1  # the last one takes the desk-phone call
    agents = [f"bench{i:02d}" for i in range(n)]
    db_url = f"sqlite:///{work / 'hotline.db'}"
    open_database(
        load_settings(REPO / "config.toml", environ={"HOTLINE__DATABASE__URL": db_url})
    ).close()
    add_users(db_url, [*agents, "desk"], supervisor="boss")
    ice = free_port_block(4 * n + 8, tcp=False, low=RTP_LOW, high=RTP_HIGH)
    base_port = free_port_block(workers)
    hold_s = args.duration + 120
    server = Server(
        work,
        db_url,
        env={
            "HOTLINE__TRIAGE__ENABLED": "false",
            "HOTLINE__SERVER__PUBLIC_URL": "http://127.0.0.1:{http_port}",
            "HOTLINE__TELEPHONY__WORKERS": str(workers),
            "HOTLINE__TELEPHONY__WORKER_BASE_PORT": str(base_port),
            "HOTLINE__TELEPHONY__CALLERS_PER_WORKER": "4",
            "HOTLINE__TELEPHONY__RING_AGENT_S": "60",
            "HOTLINE__TELEPHONY__WRAPUP_S": "0",
            "HOTLINE__TELEPHONY__QUEUE_TIMEOUT_S": "600",
            "HOTLINE__TELEPHONY__ANNOUNCE_EVERY_S": "600",
            "HOTLINE__TELEPHONY__MAX_INVITES_PER_S": "200",
            "HOTLINE__TELEPHONY__WEBRTC__PORT_MIN": str(ice),
            "HOTLINE__TELEPHONY__WEBRTC__PORT_MAX": str(ice + 4 * n + 7),
            "HOTLINE__TELEPHONY__WEBRTC__JITTER_FRAMES": str(args.jitter_frames),
            **worker_rt_env(args.worker_rt),
            # every page holds two WebSockets (console, softphone) and Chromium's HTTP pool, all
            # from 127.0.0.1: beyond the default cap of 64 per address the rest would be refused
            "HOTLINE__SERVER__MAX_CONNECTIONS_PER_ADDRESS": str(8 * n + 16),
        },
    )
    sipps: list[SippProcess] = []
    phones: list[RtpPhone] = []
    busy: list[subprocess.Popen[bytes]] = []
    try:
        server.wait_ready(sip_workers=workers)
        return await _measure(
            args, work, server, agents, workers, base_port, hold_s, sipps, phones, busy
        )
    finally:
        stop_spinners(busy)
        for proc in sipps:
            proc.stop(grace_s=2)
        for phone in phones:
            phone.stop()
        server.stop()
        server.kill()


def spinners(k: int) -> list[subprocess.Popen[bytes]]:
    """k processes that each keep a core busy at normal priority until killed."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(k)]


def stop_spinners(busy: list[subprocess.Popen[bytes]]) -> None:
    """Kill the spinners (by PID) and forget them."""
    for spinner in busy:
        spinner.kill()
        spinner.wait()
    busy.clear()


async def _measure(
    args: argparse.Namespace,
    work: Path,
    server: Server,
    agents: list[str],
    workers: int,
    base_port: int,
    hold_s: float,
    sipps: list[SippProcess],
    phones: list[RtpPhone],
    busy: list[subprocess.Popen[bytes]],
) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    n = len(agents)
    base = server.base
    print(f"hotline serve {base}: {workers} SIP workers; {n} browser agents", flush=True)
    # 1. the desk-phone agent and its call (the baseline round trip), on the last worker
    desk_phone = RtpPhone(None, echo=True, event_pt=120).start()
    phones.append(desk_phone)
    desk_port = free_port()
    desk = start_sipp(
        "uas_rtp",
        work / "desk",
        port=desk_port,
        values={"sdp_port": desk_phone.port, "event_pt": 120, "bye_timeout_ms": 1_000_000},
    )
    sipps.append(desk)
    desk.wait_listening()
    desk_api, desk_csrf = await api_login(base, "desk")
    async with desk_api:
        for method, path, body in (
            ("POST", "/agent/session", {"uri": f"sip:desk@127.0.0.1:{desk_port}"}),
            ("PUT", "/agent/state", {"state": "available"}),
        ):
            async with desk_api.request(
                method, base + "/api/v1" + path, json=body, headers={"X-CSRF-Token": desk_csrf}
            ) as resp:
                resp.raise_for_status()
    desk_caller = await _probe_call(work / "desk-caller", base_port + workers - 1, sipps, phones)
    await _until(lambda: desk_phone.packets() > 50, "the desk-phone call")

    boss, _ = await api_login(base, "boss")
    async with async_playwright() as pw:
        wav = tone_wav(work / "agent.wav")
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"],
        )
        pages = await asyncio.gather(*(open_page(browser, base, a) for a in agents))
        print(f"{n} pages signed in", flush=True)
        # 2. the probe call first, to page 0 (it echoes what it hears)
        await available(pages[0])
        answered = asyncio.ensure_future(answer_when_rung(pages[0]))
        probe = await _probe_call(work / "probe", base_port, sipps, phones)
        await answered
        print("probe answered:", await pages[0].evaluate(ECHO_JS), flush=True)
        # 3. everyone else, spread over the workers (4 callers each)
        await asyncio.gather(*(available(p) for p in pages[1:]))
        tasks = [asyncio.ensure_future(answer_when_rung(p)) for p in pages[1:]]
        pcap = write_rtp_pcap(
            work / "caller.pcap",
            duration_s=hold_s + 10,
            dtmf=[(1.0, "1"), (3.0, "2")],
            tone_hz=470,
        )
        remaining = n - 1
        for w in range(workers - 1):
            count = min(4 - (1 if w == 0 else 0), remaining)
            if count <= 0:
                break
            remaining -= count
            sipps.append(
                start_sipp(
                    "caller_call",
                    work / f"callers-{w}",
                    ("127.0.0.1", base_port + w),
                    calls=count,
                    rate=2,
                    pcap=pcap,
                    values={"hold_ms": int(hold_s * 1000)},
                    keys={"caller": f"1390000{w:02d}00"},
                    timeout_s=hold_s + 300,
                )
            )
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S * 2)
        print(f"{n} browser calls up; measuring {args.duration} s", flush=True)
        # other work on the machine: --busy processes spinning at normal priority (not counted)
        busy.extend(spinners(args.busy))
        await asyncio.sleep(5)  # let the jitter buffers settle

        # 4. measure
        bench_pids = descendants(os.getpid()) - {b.pid for b in busy}
        server_pids = descendants(server.proc.pid)
        worker_pids = {p for p in server_pids if "telephony.worker" in _cmdline(p)}
        if args.worker_nice:  # as a systemd unit's Nice= would
            for pid in worker_pids:
                for tid in os.listdir(f"/proc/{pid}/task"):  # every thread: pjmedia's clock too
                    os.setpriority(os.PRIO_PROCESS, int(tid), args.worker_nice)
        desk_worker = {p for p in worker_pids if f"--index {workers - 1} " in _cmdline(p)}
        sipp_pids = {p.pid for p in sipps}
        browser_pids = bench_pids - server_pids - sipp_pids - {server.proc.pid}
        groups = {
            "workers": worker_pids - desk_worker,
            "desk_worker": desk_worker,
            "main": {server.proc.pid},
            "browser": browser_pids,
            "sipp": sipp_pids,
        }
        before = {k: cpu_ticks(v) for k, v in groups.items()}
        before_self = os.times()
        m0 = machine()
        load0 = os.getloadavg()
        s0 = await _server_stats(boss, base)
        p0 = await asyncio.gather(*(page_stats(p) for p in pages))
        t0 = time.monotonic()
        await asyncio.sleep(args.duration)
        t1 = time.monotonic()
        s1 = await _server_stats(boss, base)
        p1 = await asyncio.gather(*(page_stats(p) for p in pages))
        after = {k: cpu_ticks(v) for k, v in groups.items()}
        after_self = os.times()
        m1 = machine()
        load1 = os.getloadavg()
        stop_spinners(busy)  # the rest of the bench is not measured under it
        await boss.close()
        await browser.close()
    elapsed = t1 - t0
    cores = os.cpu_count() or 1

    def per_call(key: str) -> float:
        return 100 * (after[key] - before[key]) / TICK / elapsed / n

    bench_self = after_self.user + after_self.system - before_self.user - before_self.system
    into = {k: s1[k] - s0[k] for k in s1}
    towards = {k: sum(b[k] for b in p1) - sum(a[k] for a in p0) for k in p0[0]}
    frames_into = into["to_call_played"] + into["to_call_late"]
    samples = towards["samples"]
    soft_rtt = round_trips(probe, t0, t1)
    desk_rtt = round_trips(desk_caller, t0, t1)
    lost_into = into["to_call_late"] + into["to_call_dropped"]
    late_into = 100 * lost_into / frames_into if frames_into else float("nan")
    late_towards = 100 * towards["concealed"] / samples if samples else float("nan")
    all_frames = frames_into + samples / 160 + into["to_browser_dropped"]
    all_late = lost_into + towards["concealed"] / 160 + into["to_browser_dropped"]
    result = {
        "agents": n,
        "calls_up": n,
        "workers": workers,
        "duration_s": round(elapsed, 1),
        "cpu_per_call_workers_pct": round(per_call("workers"), 2),
        "cpu_per_call_main_pct": round(per_call("main"), 2),
        # the desk-phone call alone in its worker: caller leg + agent leg, bridged by pjsua2
        "cpu_desk_call_pct": round(
            100 * (after["desk_worker"] - before["desk_worker"]) / TICK / elapsed, 2
        ),
        "cpu_per_call_browser_pct": round(per_call("browser"), 2),
        "cpu_per_call_sipp_pct": round(per_call("sipp"), 2),
        "cpu_bench_script_pct": round(100 * bench_self / elapsed, 1),
        "machine_busy_pct": round(100 * (m1[0] - m0[0]) / max(1, m1[1] - m0[1]), 1),
        "loadavg_1m": [round(load0[0], 2), round(load1[0], 2)],
        "cores": cores,
        "late_into_call_pct": round(late_into, 3),
        "late_towards_browser_pct": round(late_towards, 3),
        "dropped_towards_browser": into["to_browser_dropped"],
        "late_all_pct": round(100 * all_late / all_frames, 3) if all_frames else None,
        "server_jitter_buffer_ms": round(20 * into["to_call_depth_sum"] / into["to_call_played"], 1)
        if into["to_call_played"]
        else None,
        "browser_jitter_buffer_ms": round(1000 * towards["jb_delay"] / towards["jb_emitted"], 1)
        if towards["jb_emitted"]
        else None,
        "rtt_softphone_ms_p50": round(1000 * pct(soft_rtt, 50), 1),
        "rtt_softphone_ms_p95": round(1000 * pct(soft_rtt, 95), 1),
        "rtt_deskphone_ms_p50": round(1000 * pct(desk_rtt, 50), 1),
        "rtt_deskphone_ms_p95": round(1000 * pct(desk_rtt, 95), 1),
        "added_one_way_ms_p50": round(
            500 * (statistics.median(soft_rtt) - statistics.median(desk_rtt)), 1
        )
        if soft_rtt and desk_rtt
        else None,
        "probes": [len(soft_rtt), len(desk_rtt)],
        "jitter_frames": args.jitter_frames,
        "worker_nice": args.worker_nice,
        "worker_rt": args.worker_rt,
        "busy": args.busy,
    }
    return result


async def _probe_call(
    work: Path, port: int, sipps: list[SippProcess], phones: list[RtpPhone]
) -> RtpPhone:
    """A caller whose audio is a socket sending 100 ms bursts every 2 s; keys 1, 2 → queue."""
    phone = RtpPhone(PROBE_HZ, amplitude=12000, burst_every_s=2.0).start()
    phones.append(phone)
    proc = start_sipp(
        "caller_rtp",
        work,
        ("127.0.0.1", port),
        calls=1,
        values={"rtp_port": phone.port, "hold_ms": 3_600_000},
        keys={"caller": "13900009999"},
        timeout_s=7200,
    )
    sipps.append(proc)
    await _until(lambda: phone.packets() > 0, "the hotline's greeting")
    phone.press("1")
    await asyncio.sleep(3)
    phone.press("2")
    return phone


async def _until(check: Any, what: str, within_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(what)


async def _server_stats(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(base + "/api/v1/softphone/stats") as resp:
        resp.raise_for_status()
        data = await resp.json()
    keys = (
        "to_call_played",
        "to_call_late",
        "to_call_dropped",
        "to_call_depth_sum",
        "to_browser_sent",
        "to_browser_dropped",
    )
    total = dict.fromkeys(keys, 0.0)
    for w in data["workers"]:
        for peer in w["peers"]:
            for k in keys:
                total[k] += peer[k]
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", type=int, default=16)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--workers", type=int, default=0, help="default: agents/4 + 1")
    ap.add_argument("--jitter-frames", type=int, default=6)
    ap.add_argument(
        "--worker-nice",
        type=int,
        default=0,
        help="run the SIP workers at this nice value once the calls are up (negative: root)",
    )
    add_worker_rt_argument(ap)
    ap.add_argument(
        "--busy",
        type=int,
        default=0,
        help="processes spinning at normal priority while measuring (a machine busy elsewhere)",
    )
    args = ap.parse_args()
    if args.worker_rt is None:
        args.worker_rt = load_settings(REPO / "config.toml", environ={}).telephony.realtime_priority
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    r = result
    print()
    print(
        f"browser calls            {r['calls_up']} for {r['duration_s']} s "
        f"({r['workers']} SIP workers, jitter buffer {r['jitter_frames']} frames, real-time "
        f"priority {r['worker_rt'] or 'off'}, {r['busy']} spinning processes beside)"
    )
    print(
        f"CPU per call (% of a core): SIP workers (pjsua2 + aiortc) {r['cpu_per_call_workers_pct']}"
        f", main process {r['cpu_per_call_main_pct']}, Chromium {r['cpu_per_call_browser_pct']}"
        f", SIPp {r['cpu_per_call_sipp_pct']}"
    )
    print(f"a desk-phone call (2 SIP legs in one worker) {r['cpu_desk_call_pct']} % of a core")
    print(
        f"machine                  {r['machine_busy_pct']} % busy of {r['cores']} cores, "
        f"load {r['loadavg_1m'][0]} → {r['loadavg_1m'][1]} (other work included)"
    )
    print(
        f"late frames              into the call {r['late_into_call_pct']} % (late or dropped), "
        f"towards the browsers {r['late_towards_browser_pct']} % (concealed), dropped "
        f"{r['dropped_towards_browser']:.0f}; all {r['late_all_pct']} %"
    )
    print(
        f"round trip caller→page→caller  p50 {r['rtt_softphone_ms_p50']} ms, "
        f"p95 {r['rtt_softphone_ms_p95']} ms; desk phone p50 {r['rtt_deskphone_ms_p50']} ms, "
        f"p95 {r['rtt_deskphone_ms_p95']} ms → softphone adds ~{r['added_one_way_ms_p50']} ms "
        f"each way (browser jitter buffer {r['browser_jitter_buffer_ms']} ms)"
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
