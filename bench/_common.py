"""Shared machinery of the benchmark scripts in bench/ (not a script itself).

- realistic citizen requests (subjects and details of the TipDM message corpus, random mobile
  numbers and region codes), pre-encoded before the clock starts so the client stays lean;
- a closed-loop load generator: N concurrent clients on one keep-alive aiohttp connector, each
  sending its next POST /api/v1/requests as soon as the previous one answers;
- starting and stopping a private `hotline serve` (own port, own temp SQLite file or a
  throwaway PostgreSQL from tests/pgserver.py) and waiting for /healthz;
- reporting: a human-readable block and one JSON line.

The scripts put bench/ first on sys.path (Python does that for `python bench/x.py`), so they
import this module as `_common`.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

REPO_ROOT = Path(__file__).resolve().parent.parent
# `python bench/x.py` puts bench/ first on sys.path, where bench/classifier.py would shadow the
# classifier package (hotline.search imports classifier.text): the repository goes first.
if sys.path[:1] != [str(REPO_ROOT)]:
    sys.path.insert(0, str(REPO_ROOT))
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "data" / "tipdm" / "messages_unlabeled.csv"
DEFAULT_URL = "http://127.0.0.1:8080"
REQUESTS_PATH = "/api/v1/requests"
REGIONS = ("150102", "150103", "150203", "150602", "152502")
REGION_NAMES = {
    "150102": "呼和浩特市新城区",
    "150103": "呼和浩特市回民区",
    "150203": "包头市昆都仑区",
    "150602": "鄂尔多斯市东胜区",
    "152502": "锡林浩特市",
}
MAX_CONTENT_CHARS = 4000
# mainland mobile prefixes (China Mobile / Unicom / Telecom / virtual operators)
MOBILE_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139",
    "150", "151", "152", "153", "155", "156", "157", "158", "159",
    "166", "170", "171", "173", "175", "176", "177", "178",
    "180", "181", "182", "183", "184", "185", "186", "187", "188", "189",
    "191", "193", "195", "196", "197", "198", "199",
)  # fmt: skip
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜"
STREETS = (
    "新华大街",
    "中山路",
    "昭君路",
    "钢铁大街",
    "鄂尔多斯大街",
    "锡林大街",
    "团结小区",
    "民族街",
)

_FALLBACK_SUBJECTS = (
    "小区供暖温度不达标",
    "道路施工噪音扰民",
    "小区物业违规收取停车费",
    "公交线路调整后出行不便",
    "农民工工资被拖欠",
    "楼道堆放杂物存在消防隐患",
    "自来水水质浑浊",
    "路灯损坏多日无人维修",
)
_FALLBACK_DETAILS = (
    "尊敬的领导：您好！{place}一带近期出现上述问题，已持续{days}天，居民多次向社区反映未果，"
    "严重影响日常生活，恳请相关部门尽快核实处理，谢谢！",
    "我是{place}的居民，{days}天前发现该问题，联系物业后一直没有答复。希望政府督促相关单位"
    "依法依规解决，还居民一个安全舒适的生活环境。",
    "{place}附近的问题由来已久，最近{days}天尤为严重，老人和孩子都受到影响。请有关部门"
    "到现场查看并给予答复。",
)


# -- request bodies ---------------------------------------------------------------------------
def load_corpus(path: Path | None = DEFAULT_CORPUS) -> list[tuple[str, str]]:
    """(subject, detail) pairs from the TipDM CSV (id,time,subject,detail); [] if unreadable."""
    if path is None or not path.is_file():
        return []
    out: list[tuple[str, str]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as f:
            for row in csv.DictReader(f):
                subject = (row.get("subject") or "").strip()
                detail = (row.get("detail") or "").strip()
                if subject or detail:
                    out.append((subject, detail))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        print(f"warning: cannot read corpus {path}: {exc}; using generated text", file=sys.stderr)
        return []
    return out


def _generated_message(rng: random.Random) -> tuple[str, str]:
    place = REGION_NAMES[rng.choice(REGIONS)] + rng.choice(STREETS)
    detail = rng.choice(_FALLBACK_DETAILS).format(place=place, days=rng.randint(2, 40))
    return rng.choice(_FALLBACK_SUBJECTS), detail


def random_mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


@dataclass(frozen=True, slots=True)
class Body:
    """One pre-encoded POST /api/v1/requests body and the phone number it carries."""

    payload: bytes
    phone: str


def build_bodies(count: int, corpus: list[tuple[str, str]], seed: int | None = None) -> list[Body]:
    """`count` distinct JSON bodies (random phone each), encoded once before the run."""
    rng = random.Random(seed)
    bodies: list[Body] = []
    for _ in range(count):
        subject, detail = rng.choice(corpus) if corpus else _generated_message(rng)
        content = f"{subject}\n{detail}" if subject and detail else subject or detail
        region = rng.choice(REGIONS)
        phone = random_mobile(rng)
        doc: dict[str, Any] = {"content": content[:MAX_CONTENT_CHARS], "phone": phone}
        if rng.random() < 0.8:
            doc["name"] = rng.choice(SURNAMES) + rng.choice(("先生", "女士"))
        if rng.random() < 0.7:
            doc["address"] = f"{REGION_NAMES[region]}{rng.choice(STREETS)}{rng.randint(1, 300)}号"
        doc["region"] = region
        doc["language"] = "mn-Mong" if rng.random() < 0.05 else "zh-Hans"
        bodies.append(Body(json.dumps(doc, ensure_ascii=False).encode("utf-8"), phone))
    return bodies


# -- load generator ---------------------------------------------------------------------------
@dataclass
class LoadResult:
    """Every response of a run: outcome ("201", "422", "ClientOSError", …) and latency."""

    clients: int
    duration_s: float
    url: str
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0  # CPU time of this (client) process during the run
    outcomes: list[str] = field(default_factory=list)
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    accepted: list[tuple[str, str]] = field(default_factory=list)  # (number, phone)
    error_examples: dict[str, str] = field(default_factory=dict)

    def record(self, outcome: str, latency_ms: float, example: str | None = None) -> None:
        self.outcomes.append(outcome)
        self.latencies_ms.append(latency_ms)
        if example is not None and outcome not in self.error_examples:
            self.error_examples[outcome] = example[:300]

    @property
    def error_breakdown(self) -> Counter[str]:
        return Counter(o for o in self.outcomes if o != "201")

    def accepted_latencies(self) -> list[float]:
        return sorted(
            lat for o, lat in zip(self.outcomes, self.latencies_ms, strict=True) if o == "201"
        )

    def summary(self) -> dict[str, Any]:
        lat = self.accepted_latencies()
        errors = self.error_breakdown
        elapsed = self.elapsed_s or self.duration_s
        return {
            "url": self.url,
            "clients": self.clients,
            "duration_s": round(self.duration_s, 3),
            "elapsed_s": round(elapsed, 3),
            "requests": len(self.outcomes),
            "accepted": len(self.accepted),
            "accepted_per_s": round(len(self.accepted) / elapsed, 1) if elapsed > 0 else 0.0,
            "p50_ms": _pct(lat, 50),
            "p90_ms": _pct(lat, 90),
            "p99_ms": _pct(lat, 99),
            "max_ms": round(lat[-1], 2) if lat else None,
            "mean_ms": round(sum(lat) / len(lat), 2) if lat else None,
            "errors": sum(errors.values()),
            "error_breakdown": dict(errors.most_common()),
            "client_cpu_s": round(self.client_cpu_s, 2),
        }

    def human(self, title: str = "intake benchmark") -> str:
        s = self.summary()
        lines = [
            f"== {title} ==",
            f"target        {s['url']}",
            f"clients       {s['clients']}",
            f"duration      {s['duration_s']} s (elapsed {s['elapsed_s']} s)",
            f"requests      {s['requests']}",
            f"accepted 201  {s['accepted']}  ({s['accepted_per_s']}/s)",
            "latency (201) "
            f"p50 {s['p50_ms']} ms  p90 {s['p90_ms']} ms  p99 {s['p99_ms']} ms  "
            f"max {s['max_ms']} ms  mean {s['mean_ms']} ms",
            f"client CPU    {s['client_cpu_s']} s",
            f"errors        {s['errors']}",
        ]
        for kind, n in s["error_breakdown"].items():
            example = self.error_examples.get(kind, "")
            lines.append(f"  {kind:<24} {n}" + (f"   e.g. {example}" if example else ""))
        return "\n".join(lines)


def _pct(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * pct // 100))  # ceil
    return round(sorted_values[int(rank) - 1], 2)


def make_session(clients: int, timeout_s: float) -> aiohttp.ClientSession:
    """One keep-alive connector shared by every client: at most `clients` connections."""
    connector = aiohttp.TCPConnector(
        limit=clients, limit_per_host=clients, keepalive_timeout=60, ttl_dns_cache=None
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    )


async def run_load(
    url: str,
    *,
    clients: int,
    duration_s: float,
    bodies: list[Body],
    numbers_out: TextIO | None = None,
    stop: asyncio.Event | None = None,
    timeout_s: float = 30.0,
    error_backoff_s: float = 0.05,
    on_accepted: Callable[[str, str], None] | None = None,
) -> LoadResult:
    """Closed-loop load: `clients` workers POST bodies until `duration_s` passes or `stop` is set.

    Each 201's number is written to `numbers_out` as "number,phone" and flushed before the
    worker sends its next request. After an exception a worker sleeps `error_backoff_s` so a
    dead server is not hammered in a tight loop.
    """
    endpoint = url.rstrip("/") + REQUESTS_PATH
    headers = {"Content-Type": "application/json; charset=utf-8", "Accept": "application/json"}
    result = LoadResult(clients=clients, duration_s=duration_s, url=url)
    counter = iter(range(10**12))
    n_bodies = len(bodies)
    perf = time.perf_counter

    async def worker(session: aiohttp.ClientSession, deadline: float) -> None:
        while perf() < deadline and not (stop is not None and stop.is_set()):
            body = bodies[next(counter) % n_bodies]
            t0 = perf()
            try:
                async with session.post(endpoint, data=body.payload, headers=headers) as resp:
                    raw = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                result.record(type(exc).__name__, (perf() - t0) * 1000.0, str(exc))
                await asyncio.sleep(error_backoff_s)
                continue
            latency_ms = (perf() - t0) * 1000.0
            if status != 201:
                result.record(str(status), latency_ms, raw.decode("utf-8", "replace"))
                continue
            try:
                number = str(json.loads(raw)["number"])
            except (ValueError, KeyError, TypeError):
                result.record("201-bad-body", latency_ms, raw.decode("utf-8", "replace"))
                continue
            result.record("201", latency_ms)
            result.accepted.append((number, body.phone))
            if numbers_out is not None:
                numbers_out.write(f"{number},{body.phone}\n")
                numbers_out.flush()
            if on_accepted is not None:
                on_accepted(number, body.phone)

    async with make_session(clients, timeout_s) as session:
        cpu0, start = time.process_time(), perf()
        deadline = start + duration_s
        await asyncio.gather(*(worker(session, deadline) for _ in range(clients)))
        result.elapsed_s = perf() - start
        result.client_cpu_s = time.process_time() - cpu0
    return result


def install_fast_loop() -> None:
    """Use uvloop for the client when it is installed (less client CPU on a small box)."""
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()


def emit_report(
    result: LoadResult, title: str = "intake benchmark", notes: Sequence[str] = (), **extra: Any
) -> None:
    """Print the human-readable block (plus `notes` lines), then the one-line JSON summary."""
    print(result.human(title), flush=True)
    for line in notes:
        print(line)
    print(json.dumps({**result.summary(), **extra}, ensure_ascii=False), flush=True)


# -- the server under test --------------------------------------------------------------------
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hotline_command() -> list[str]:
    """`hotline` next to the running interpreter (the venv), else on PATH, else `-m`."""
    local = Path(sys.executable).parent / "hotline"
    if local.is_file():
        return [str(local)]
    venv = REPO_ROOT / ".venv" / "bin" / "hotline"
    if venv.is_file():
        return [str(venv)]
    found = shutil.which("hotline")
    return [found] if found else [sys.executable, "-m", "hotline.cli"]


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'hotline.db'}"  # absolute path → four slashes


class ServerProcess:
    """One `hotline serve` child: started with env overrides, its output in a log file."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int,
        database_url: str,
        config: str | None = None,
        extra_env: dict[str, str] | None = None,
        log_name: str = "server.log",
        serve_args: Sequence[str] = (),
    ) -> None:
        """`serve_args`: arguments after `hotline serve`, e.g. ("--role", "web")."""
        self.workdir = workdir
        self.port = port
        self.database_url = database_url
        self.config = config
        self.extra_env = dict(extra_env or {})
        self.log_path = workdir / log_name
        self.serve_args = list(serve_args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("server not started")
        return self.proc.pid

    def start(self) -> None:
        env = dict(os.environ)
        env.update(
            {
                "HOTLINE__SERVER__HOST": "127.0.0.1",
                "HOTLINE__SERVER__PORT": str(self.port),
                "HOTLINE__SERVER__PUBLIC_URL": self.url,
                "HOTLINE__DATABASE__URL": self.database_url,
                # what the server writes stays in its work dir: a search index in the
                # repository's var/ grew with every run and slowed the next ones
                "HOTLINE__SEARCH__PATH": str(self.workdir / "search.db"),
                "HOTLINE__ATTACHMENTS__DIR": str(self.workdir / "attachments"),
                "HOTLINE__TELEPHONY__PROMPTS_DIR": str(self.workdir / "prompts"),
                "HOTLINE__TELEPHONY__RECORDINGS_DIR": str(self.workdir / "recordings"),
                "HOTLINE__TELEPHONY__SPOOL_DIR": str(self.workdir / "spool"),
                "HOTLINE__TELEPHONY__KAMAILIO_DIR": str(self.workdir / "kamailio"),
                # the load comes from one address: the per-address abuse limits would stop it
                "HOTLINE__SECURITY__INTAKE_PER_HOUR": "100000",
                "HOTLINE__SECURITY__LOOKUPS_PER_MINUTE": "10000",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        cmd = hotline_command()
        if self.config:
            cmd += ["--config", self.config]
        cmd += ["serve", *self.serve_args]
        with self.log_path.open("ab") as log:
            log.write(f"\n--- {time.strftime('%H:%M:%S')} start: {' '.join(cmd)}\n".encode())
            log.flush()
            # cwd = the temp dir so nothing the server writes lands in the repository
            self.proc = subprocess.Popen(
                cmd, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL exactly the process this object started, then reap it."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM (graceful), SIGKILL after `timeout_s`; returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server has used so far, its worker processes (triage,
        SIP) included (Linux /proc)."""
        if not self.alive():
            return None
        total = 0.0
        for pid in _process_tree(self.pid):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue  # a worker that just exited
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (from /proc/PID/task/*/children)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for children in Path(f"/proc/{p}/task").glob("*/children"):
            try:
                todo += [int(c) for c in children.read_text().split()]
            except OSError:
                continue
    return out


async def wait_healthy(server: ServerProcess, timeout_s: float = 60.0) -> float:
    """Poll GET /healthz until 200; returns seconds waited. Raises if the server exits."""
    t0 = time.perf_counter()
    url = server.url + "/healthz"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while True:
            if not server.alive():
                code = server.proc.returncode if server.proc else None
                raise RuntimeError(
                    f"server exited with code {code} before /healthz answered; log tail:\n"
                    + server.log_tail()
                )
            with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return time.perf_counter() - t0
            if time.perf_counter() - t0 > timeout_s:
                raise RuntimeError(
                    f"/healthz not ready after {timeout_s:.0f} s; log tail:\n" + server.log_tail()
                )
            await asyncio.sleep(0.1)


@contextlib.contextmanager
def bench_workdir(keep: bool = False, prefix: str = "hotline-bench-") -> Iterator[Path]:
    """A temp dir for the database, logs and numbers; removed afterwards unless `keep`."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        if keep:
            print(f"kept work dir {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def database_url_for(
    workdir: Path,
    postgres: bool,
    dbname: str = "bench",
    settings: dict[str, str] | None = None,
    keep: bool = False,
    reuse: Path | None = None,
) -> Iterator[str]:
    """A temp SQLite file in `workdir`, or a database on a throwaway durable PostgreSQL (with
    `settings` as server settings); `keep` leaves the PostgreSQL cluster's files behind (its
    directory is printed) and `reuse` starts such a kept cluster again."""
    if not postgres:
        yield sqlite_url(workdir)
        return
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    from tests.pgserver import PostgresServer  # written alongside; needs initdb/postgres

    print(f"PostgreSQL: durable, settings {settings or 'as installed'}", file=sys.stderr)
    with PostgresServer(durable=True, settings=settings, keep=keep, directory=reuse) as pg:
        if reuse is None:
            pg.create_database(dbname)
        try:
            yield pg.url(dbname)
        finally:
            if keep and reuse is None:
                print(f"kept PostgreSQL cluster {pg.data_dir.parent}", file=sys.stderr)


def production_postgres_settings() -> dict[str, str]:
    """What an operator sets first (README, Deployment): shared_buffers a quarter of the memory
    (PostgreSQL's own guidance), at most 8 GB. The server's default, 128 MB, holds a fraction
    of the statistics cubes at 1,000,000 orders, so each read goes through the kernel's cache:
    the managers' page for a year and a region took 305 / 339 ms p50 / p95 with it, 220 / 240
    with 4 GB, on the same store. bench/stats.py uses these; the intake benchmarks keep the
    installed defaults (their figures over time stay comparable)."""
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    mb = max(128, min(8192, memory // 4 // 2**20))
    return {"shared_buffers": f"{mb}MB"}


def add_server_arguments(parser: Any) -> None:
    """Options shared by the scripts that start their own server."""
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="with a spawned server: use a throwaway PostgreSQL (tests/pgserver.py) not SQLite",
    )
    parser.add_argument("--config", help="config file passed to `hotline serve --config`")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the server, e.g. HOTLINE__DATABASE__WRITE_BATCH=128",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (db, logs)")


def add_worker_rt_argument(parser: Any) -> None:
    """--worker-rt P: the SIP workers' [telephony] realtime_priority (None: config.toml's)."""
    parser.add_argument(
        "--worker-rt",
        type=int,
        default=None,
        help="[telephony] realtime_priority of the SIP workers (default: config.toml's; 0: off)",
    )


def worker_rt_env(priority: int | None) -> dict[str, str]:
    """The server's environment for --worker-rt: nothing when it was not given."""
    if priority is None:
        return {}
    return {"HOTLINE__TELEPHONY__REALTIME_PRIORITY": str(priority)}


def parse_env_pairs(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--server-env expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def add_load_arguments(parser: Any, *, duration: float, clients: int = 32) -> None:
    parser.add_argument("--clients", type=int, default=clients, help="concurrent clients")
    parser.add_argument("--duration", type=float, default=duration, help="seconds of load")
    parser.add_argument(
        "--corpus",
        type=Path,
        default=DEFAULT_CORPUS,
        help="TipDM messages CSV (id,time,subject,detail); generated text if missing",
    )
    parser.add_argument("--bodies", type=int, default=4096, help="distinct bodies to cycle")
    parser.add_argument("--seed", type=int, default=None, help="random seed for the bodies")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, s")


def prepare_bodies(corpus_path: Path | None, count: int, seed: int | None) -> list[Body]:
    corpus = load_corpus(corpus_path)
    if not corpus:
        print(f"note: corpus {corpus_path} not found; using generated text", file=sys.stderr)
    return build_bodies(max(1, count), corpus, seed)


# -- background work: the triage and notice backlog, read from the database ---------------------
@dataclass(frozen=True, slots=True)
class Backlog:
    """Orders in the database, those the triage has not decided yet, and those still without
    their acknowledgement SMS (every bench request carries a mobile number)."""

    orders: int
    untriaged: int
    unacknowledged: int


class BacklogProbe:
    """Reads the backlog straight from the server's database (SQLite file or PostgreSQL), so it
    measures any version of the server and adds no HTTP load."""

    def __init__(self, database_url: str) -> None:
        if str(REPO_ROOT) not in sys.path:
            sys.path.insert(0, str(REPO_ROOT))
        import sqlalchemy as sa

        self._sa = sa
        self.engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)

    def read(self) -> Backlog:
        from telephony.tables import sms_outbox
        from tickets.tables import tickets

        sa = self._sa
        with self.engine.connect() as conn:
            orders = conn.execute(sa.select(sa.func.count()).select_from(tickets)).scalar_one()
            untriaged = conn.execute(
                sa.select(sa.func.count())
                .select_from(tickets)
                .where(tickets.c.route_state == "pending", tickets.c.status == "new")
            ).scalar_one()
            acks = conn.execute(
                sa.select(sa.func.count())
                .select_from(sms_outbox)
                .where(sms_outbox.c.purpose == "ack")
            ).scalar_one()
        return Backlog(int(orders), int(untriaged), max(0, int(orders) - int(acks)))

    async def aread(self) -> Backlog:
        return await asyncio.get_running_loop().run_in_executor(None, self.read)

    def close(self) -> None:
        self.engine.dispose()
