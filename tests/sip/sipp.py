"""Run SIPp (Debian sip-tester 3.6) from Python: scenarios from templates, free ports, results."""

from __future__ import annotations

import contextlib
import csv
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests import ports

SCENARIOS = Path(__file__).resolve().parent / "scenarios"

# Values for the {{placeholders}} of each template when the caller gives none.
DEFAULTS: dict[str, str] = {
    "bye_timeout_ms": "60000",
    "code": "486",
    "reason": "Busy Here",
    "expect": "488",
    "sdp_port": "[media_port]",
    # telephone-event payload type in an answer: a real phone answers with the offer's own
    # (pjsua offers 120); SIPp's answer is static, so tests that answer pjsua pass 120
    "event_pt": "101",
}

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def sipp_binary() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise RuntimeError("sipp not found: apt-get install sip-tester")
    return path


# --- ports ------------------------------------------------------------------------------------


def _port_free(host: str, port: int, kinds: Sequence[int]) -> bool:
    return ports.port_free(
        port, udp=socket.SOCK_DGRAM in kinds, tcp=socket.SOCK_STREAM in kinds, host=host
    )


def free_port(host: str = "127.0.0.1", *, udp: bool = True, tcp: bool = True) -> int:
    """A port free now for UDP and/or TCP, below the ephemeral range (tests/ports.py)."""
    return ports.free_port(udp=udp, tcp=tcp)


def free_port_block(n: int, host: str = "127.0.0.1", *, step: int = 1) -> int:
    """First of `n` consecutive free UDP ports (SIPp's -mp takes media_port and media_port+2)."""
    # RTP ports are even by habit: find one more and start at the even one
    base = ports.free_port_block(n + 1, udp=True, tcp=False, step=step)
    return base + (base & 1) * step


# --- scenarios --------------------------------------------------------------------------------


def render_scenario(name: str, out_dir: Path, **values: object) -> Path:
    """Write scenarios/<name>.xml into out_dir with its {{placeholders}} filled.

    SIPp reads play_pcap_audio's file and recv timeouts when it loads the scenario (neither
    `-key` nor `-set` reaches XML attributes), so those are filled in here instead.
    """
    text = (SCENARIOS / f"{name}.xml").read_text(encoding="iso-8859-1")
    merged = {**DEFAULTS, **{k: str(v) for k, v in values.items() if v is not None}}

    def fill(m: re.Match[str]) -> str:
        if m.group(1) not in merged:
            raise KeyError(f"scenario {name}: no value for {{{{{m.group(1)}}}}}")
        return merged[m.group(1)]

    out = Path(out_dir) / f"{name}.xml"
    out.write_text(_PLACEHOLDER.sub(fill, text), encoding="iso-8859-1")
    return out


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.xml"))


# --- results ----------------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class SippResult:
    """What one SIPp run reports once it has exited."""

    scenario: str
    returncode: int | None
    stats: dict[str, str] = field(default_factory=dict)  # last row of the -trace_stat CSV
    response_times_ms: list[float] = field(default_factory=list)  # from -trace_rtt (rtd 1)
    errors: str = ""  # -trace_err log: unexpected messages
    screen: str = ""  # -trace_screen: the final statistics screen
    logs: list[str] = field(default_factory=list)  # <log> lines (-trace_logs), e.g. "answered …"
    stderr: str = ""
    workdir: Path | None = None

    def _count(self, key: str) -> int:
        value = self.stats.get(f"{key}(C)", "0").strip()
        return int(value) if value.isdigit() else 0

    @property
    def successful(self) -> int:
        return self._count("SuccessfulCall")

    @property
    def failed(self) -> int:
        return self._count("FailedCall")

    @property
    def created(self) -> int:
        return self._count("IncomingCall") + self._count("OutgoingCall")

    @property
    def unexpected(self) -> int:
        return self._count("FailedUnexpectedMessage")

    @property
    def retransmissions(self) -> int:
        return self._count("Retransmissions")

    @property
    def p50_ms(self) -> float | None:
        return _percentile(self.response_times_ms, 50)

    @property
    def p99_ms(self) -> float | None:
        return _percentile(self.response_times_ms, 99)

    def logged(self, word: str) -> int:
        """How many <log> lines start with `word`: the UAS scenarios log "answered", "refused"
        and "ping" (OPTIONS probes also end as successful SIPp calls, so count these instead)."""
        return sum(1 for line in self.logs if line.split(" ", 1)[0] == word)

    def summary(self) -> str:
        """One line for assertion messages, plus the error log if anything went wrong."""
        line = (
            f"{self.scenario}: rc={self.returncode} created={self.created} "
            f"ok={self.successful} failed={self.failed} unexpected={self.unexpected} "
            f"p50={self.p50_ms} p99={self.p99_ms} dir={self.workdir}"
        )
        # SIPp's stderr always has pcap chatter; show it only when something went wrong.
        bad = self.returncode != 0 or self.failed or self.unexpected
        stderr = self.stderr.strip() if bad else ""
        extra = "\n".join(x for x in (stderr, self.errors.strip()[-3000:]) if x)
        return f"{line}\n{extra}" if extra else line


def _read_stats(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    rows = list(csv.reader(path.read_text(errors="replace").splitlines(), delimiter=";"))
    rows = [r for r in rows if r]
    if len(rows) < 2:
        return {}
    header, last = rows[0], rows[-1]
    return dict(zip(header, last, strict=False))


def _read_rtt(files: Sequence[Path]) -> list[float]:
    """-trace_rtt lines are `date_ms;response_time_ms;rtd_number` (after a header line)."""
    out: list[float] = []
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            parts = line.split(";")
            if len(parts) >= 2:
                try:
                    out.append(float(parts[1]))
                except ValueError:
                    continue  # the header
    return out


# --- processes --------------------------------------------------------------------------------


class SippProcess:
    """One SIPp process in the background (a UAS backend, or a UAC load generator).

    Start with `start_sipp(...)`; `wait()` for a UAC that ends on its own (-m), `stop()` for a
    UAS. Both always leave the process dead (killed by its PID) and return a SippResult.
    """

    def __init__(
        self,
        scenario: str,
        args: list[str],
        workdir: Path,
        *,
        port: int,
        media_port: int,
        transport: str,
    ) -> None:
        self.scenario = scenario
        self.args = args
        self.workdir = workdir
        self.port = port
        self.media_port = media_port
        self.transport = transport
        self._stdout = (workdir / "stdout.log").open("wb")
        self._stderr = (workdir / "stderr.log").open("wb")
        # Own process group: stop() can signal SIPp and anything it spawned (pcap play threads
        # are threads, but be safe) without touching other processes.
        self.proc = subprocess.Popen(
            args,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            start_new_session=True,
        )
        self._result: SippResult | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_listening(self, timeout_s: float = 10.0) -> None:
        """Block until SIPp has bound its SIP port (or exited, which is an error)."""
        deadline = time.monotonic() + timeout_s
        kind = socket.SOCK_STREAM if self.transport.startswith("t") else socket.SOCK_DGRAM
        while time.monotonic() < deadline:
            if not self.running():
                raise RuntimeError(f"sipp exited early:\n{self.result().summary()}")
            if not _port_free("127.0.0.1", self.port, [kind]):
                return
            time.sleep(0.05)
        raise TimeoutError(f"sipp did not bind port {self.port}")

    def wait(self, timeout_s: float = 60.0) -> SippResult:
        """Wait for SIPp to finish by itself; killed (and the result says so) after timeout_s."""
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self._kill()
        return self.result()

    def stop(self, grace_s: float = 10.0) -> SippResult:
        """Soft exit (SIGUSR1: no new calls, finish the current ones, write the final stats),
        then SIGKILL whatever is left after grace_s."""
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGUSR1)
            try:
                self.proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self._kill()
        return self.result()

    def _kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def result(self) -> SippResult:
        if self._result is not None:
            return self._result
        done = self.proc.poll() is not None
        for f in (self._stdout, self._stderr):
            f.flush()
        wd = self.workdir
        res = SippResult(
            scenario=self.scenario,
            returncode=self.proc.returncode,
            stats=_read_stats(wd / "stats.csv"),
            response_times_ms=_read_rtt(sorted(wd.glob("*_rtt.csv"))),
            errors=_read(wd / "errors.log"),
            screen=_read(wd / "screen.log"),
            logs=[x for x in _read(wd / "logs.log").splitlines() if x.strip()],
            stderr=_read(wd / "stderr.log"),
            workdir=wd,
        )
        if done:
            self._stdout.close()
            self._stderr.close()
            self._result = res
        return res

    def __enter__(self) -> SippProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.running():
            self.stop(grace_s=3.0)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def start_sipp(
    scenario: str,
    workdir: Path,
    remote: tuple[str, int] | str | None = None,
    *,
    service: str = "12345",
    calls: int | None = None,
    rate: float = 10.0,
    limit: int | None = None,
    duration_ms: int | None = None,
    pcap: Path | None = None,
    values: Mapping[str, object] | None = None,
    keys: Mapping[str, str] | None = None,
    transport: str = "u1",
    local_ip: str = "127.0.0.1",
    port: int | None = None,
    media_port: int | None = None,
    timeout_s: float | None = None,
    extra_args: Sequence[str] = (),
) -> SippProcess:
    """Start SIPp with scenarios/<scenario>.xml in `workdir` (its logs go there too).

    remote: where a UAC sends its INVITEs (None for a UAS). calls → -m, rate → -r, limit → -l,
    duration_ms → -d (length of <pause/>), pcap fills {{pcap}}, values fill other
    {{placeholders}}, keys → `-key name value` for [name] in SIP messages. timeout_s → -timeout
    (SIPp stops by itself: a safety net in case the test's own timeout is not reached).
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    filled = dict(values or {})
    if pcap is not None:
        filled["pcap"] = str(Path(pcap).resolve())
    scenario_file = render_scenario(scenario, workdir, **filled)
    port = port or free_port(local_ip, udp=True, tcp=True)
    # SIPp binds the audio port and the port two above it (video) for RTP echo; keep 4 free.
    media_port = media_port or free_port_block(4, local_ip)
    args = [
        sipp_binary(),
        "-sf",
        str(scenario_file),
        "-t",
        transport,
        "-i",
        local_ip,
        "-mi",
        local_ip,
        "-p",
        str(port),
        "-mp",
        str(media_port),
        # The control socket defaults to 8888 (+1, +2... when taken): pin it to a free one so
        # parallel runs never fight over it.
        "-cp",
        str(free_port(local_ip, udp=True, tcp=False)),
        "-s",
        service,
        "-r",
        str(rate),
        "-nostdin",
        "-trace_stat",
        "-stf",
        "stats.csv",
        "-fd",
        "1",
        "-trace_err",
        "-error_file",
        "errors.log",
        "-trace_screen",
        "-screen_file",
        "screen.log",
        "-trace_rtt",
        "-rtt_freq",
        "1",
        "-trace_logs",
        "-log_file",
        "logs.log",
    ]
    if calls is not None:
        args += ["-m", str(calls)]
    if limit is not None:
        args += ["-l", str(limit)]
    if duration_ms is not None:
        args += ["-d", str(duration_ms)]
    if timeout_s is not None:
        args += ["-timeout", f"{int(timeout_s)}s"]
    for k, v in (keys or {}).items():
        args += ["-key", k, str(v)]
    args += list(extra_args)
    if remote is not None:
        args.append(remote if isinstance(remote, str) else f"{remote[0]}:{remote[1]}")
    return SippProcess(
        scenario, args, workdir, port=port, media_port=media_port, transport=transport
    )


def _bind_failed(result: SippResult) -> bool:
    """SIPp could not bind a port (someone took it between our check and its bind)."""
    return result.returncode == 254 and "Unable to bind" in (result.errors + result.stderr)


BIND_ATTEMPTS = 3


def run_sipp(
    scenario: str,
    workdir: Path,
    remote: tuple[str, int] | str | None,
    *,
    wait_s: float = 120.0,
    **kwargs: object,
) -> SippResult:
    """Run a UAC scenario to completion (give `calls`); never leaves the process behind. A
    port taken by someone else before SIPp bound it is retried on fresh ports."""
    for attempt in range(1, BIND_ATTEMPTS + 1):
        work = workdir if attempt == 1 else Path(workdir) / f"retry{attempt}"
        proc = start_sipp(scenario, work, remote, **kwargs)  # type: ignore[arg-type]
        try:
            result = proc.wait(timeout_s=wait_s)
        finally:
            if proc.running():
                proc.stop(grace_s=2.0)
        if not _bind_failed(result) or attempt == BIND_ATTEMPTS:
            return result
    raise AssertionError("unreachable")


@contextlib.contextmanager
def sipp_server(scenario: str, workdir: Path, **kwargs: object) -> Iterator[SippProcess]:
    """A UAS in the background for the length of a with-block, listening before it yields
    (a media port taken before SIPp bound it is retried on a fresh one)."""
    for attempt in range(1, BIND_ATTEMPTS + 1):
        work = workdir if attempt == 1 else Path(workdir) / f"retry{attempt}"
        proc = start_sipp(scenario, work, None, **kwargs)  # type: ignore[arg-type]
        try:
            proc.wait_listening()
            break
        except RuntimeError:
            proc.stop(grace_s=1.0)
            if not _bind_failed(proc.result()) or attempt == BIND_ATTEMPTS:
                raise
    try:
        yield proc
    finally:
        proc.stop(grace_s=5.0)
