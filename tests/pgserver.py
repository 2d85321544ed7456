"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

__all__ = ["PostgresNotFoundError", "PostgresServer", "find_bin_dir"]

HOST = "127.0.0.1"
SUPERUSER = "postgres"
INSTALL_HINT = "run `scripts/install-test-deps.sh` as root to install PostgreSQL"

# Settings that trade crash safety for speed; a test cluster is thrown away anyway.
FAST_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


class PostgresNotFoundError(RuntimeError):
    """The PostgreSQL server binaries (or the `postgres` system user) are missing."""


def find_bin_dir() -> Path:
    """The bin directory of the newest PostgreSQL server installed.

    Debian keeps the server binaries under /usr/lib/postgresql/<major>/bin (they are not on
    PATH); only if none is there do we fall back to an `initdb` found on PATH.
    """
    candidates = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    candidates = [p for p in candidates if _has_server(p)]
    if candidates:
        return max(candidates, key=lambda p: _version_key(p.parent.name))
    initdb = shutil.which("initdb")
    if initdb:
        bin_dir = Path(initdb).resolve().parent
        if _has_server(bin_dir):
            return bin_dir
    raise PostgresNotFoundError(
        "PostgreSQL server binaries (initdb, postgres) not found under "
        f"/usr/lib/postgresql/*/bin or on PATH; {INSTALL_HINT}"
    )


def _has_server(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) for name in ("initdb", "postgres"))


def _version_key(name: str) -> tuple[int, ...]:
    # "9.6" < "15" < "16": compare numerically, not as strings.
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (-1,)


def _free_port() -> int:
    # The kernel picks an unused port; postgres binds it a moment later. The tiny race with
    # other processes is handled by retrying start-up on "address in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _child_env() -> dict[str, str]:
    # The caller's PGHOST/PGPORT/PGOPTIONS/... must not redirect or alter our commands.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C.UTF-8"
    return env


class PostgresServer:
    """A PostgreSQL cluster in a temp dir, listening on 127.0.0.1 on a free port.

    Runs the server as the `postgres` system user when we are root (postgres refuses to
    run as root), otherwise as ourselves. Authentication is `trust`; the superuser is
    `postgres`. `stop()` (also run at exit) shuts down only this server and deletes its files.
    """

    def __init__(
        self,
        *,
        durable: bool = False,
        settings: Mapping[str, str] | None = None,
        base_dir: str | os.PathLike[str] | None = None,
        start_timeout: float = 60.0,
        keep: bool = False,
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        """`durable=True` keeps fsync & co. at their defaults (for benchmarks); `settings`
        adds or overrides server settings (`-c name=value`); `base_dir` is where the temp
        dir is created (default: the system temp dir; must be reachable by `postgres`).
        `keep=True` leaves the cluster's files behind on stop (`data_dir.parent`), and
        `directory` starts such a kept cluster again instead of creating one (a benchmark
        measuring a large store twice)."""
        self.keep = keep or directory is not None
        self.directory = Path(directory) if directory is not None else None
        self.durable = durable
        self.settings = dict(settings or {})
        self.base_dir = os.fspath(base_dir) if base_dir is not None else None
        self.start_timeout = start_timeout
        self.host = HOST
        self.user = SUPERUSER
        self._port: int | None = None
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._owner_pid = os.getpid()
        self._bin: Path | None = None
        self._run_as: list[str] = []

    # -- public API ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("PostgresServer is not started")
        return self._port

    @property
    def data_dir(self) -> Path:
        return self._require_tmp() / "data"

    @property
    def log_path(self) -> Path:
        """The server's stderr log (useful when a test fails on the database side)."""
        return self._require_tmp() / "server.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL for `dbname` (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{dbname}"

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq connection string, e.g. for `psycopg.connect()`."""
        return f"host={self.host} port={self.port} user={self.user} dbname={dbname}"

    def start(self) -> PostgresServer:
        if self._proc is not None:
            raise RuntimeError("PostgresServer is already started")
        self._owner_pid = os.getpid()
        self._bin = find_bin_dir()
        self._run_as = self._run_as_prefix()
        if self.directory is not None:
            if not (self.directory / "data" / "PG_VERSION").is_file():
                raise RuntimeError(f"{self.directory} holds no cluster a PostgresServer kept")
            self._tmp = self.directory
        else:
            self._tmp = Path(tempfile.mkdtemp(prefix="pgserver-", dir=self.base_dir))
        # Registered before anything can fail, so a half-started server is cleaned up too.
        atexit.register(self._atexit_stop)
        try:
            if self.directory is None:
                if os.geteuid() == 0:
                    pw = pwd.getpwnam(SUPERUSER)
                    os.chown(self._tmp, pw.pw_uid, pw.pw_gid)
                self._initdb()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Fast shutdown (as `pg_ctl stop -m fast`), then delete the temp dir (unless `keep`).
        Idempotent."""
        atexit.unregister(self._atexit_stop)
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                self._shutdown(proc)
        finally:
            if self._tmp is not None and not self.keep:
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
            self._port = None

    def pause(self) -> None:
        """An outage: stop the server (fast shutdown, as a crash or a restart looks to its
        clients) but keep its data and port, so `resume()` brings the same database back."""
        proc, self._proc = self._proc, None
        if proc is None:
            raise RuntimeError("PostgresServer is not running")
        self._shutdown(proc)

    def resume(self) -> None:
        """The end of the outage: start the paused server again on the same port and data."""
        if self._proc is not None or self._port is None:
            raise RuntimeError("PostgresServer is not paused")
        proc = self._spawn(self._port)
        self._proc = proc
        if not self._wait_ready(proc):
            self._proc = None
            raise RuntimeError(f"postgres did not come back:\n{self._log_tail()}")

    def create_database(self, name: str) -> str:
        """Create database `name`; returns its SQLAlchemy URL."""
        self.psql(f"CREATE DATABASE {_quote_ident(name)}")
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database `name` if it exists, disconnecting any clients still attached
        (e.g. a connection pool a test forgot to dispose)."""
        self.psql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def psql(self, sql: str, dbname: str = "postgres") -> str:
        """Run one SQL statement with psql (autocommit, so CREATE DATABASE works); returns
        its unaligned output."""
        psql = self._psql_path()
        cmd = [
            psql,
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            dbname,
            "-c",
            sql,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, env=_child_env())
        if result.returncode != 0:
            raise RuntimeError(f"psql failed ({sql!r}): {result.stderr.strip()}")
        return result.stdout

    def __enter__(self) -> PostgresServer:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"port={self._port} pid={self.pid}" if self.running else "stopped"
        return f"<PostgresServer {state}>"

    # -- internals ----------------------------------------------------------------------------
    def _require_tmp(self) -> Path:
        if self._tmp is None:
            raise RuntimeError("PostgresServer is not started")
        return self._tmp

    def _run_as_prefix(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise PostgresNotFoundError(
                f"running as root needs the {SUPERUSER!r} system user (created by Debian's "
                f"postgresql package); {INSTALL_HINT}"
            ) from None
        # setpriv (unlike runuser) execs in place, so our child's pid is the postmaster's.
        return ["setpriv", f"--reuid={SUPERUSER}", f"--regid={SUPERUSER}", "--init-groups"]

    def _psql_path(self) -> str:
        if self._bin is not None and os.access(self._bin / "psql", os.X_OK):
            return str(self._bin / "psql")
        found = shutil.which("psql")
        if found is None:
            raise PostgresNotFoundError(f"psql not found; {INSTALL_HINT}")
        return found

    def _initdb(self) -> None:
        assert self._bin is not None and self._tmp is not None
        cmd = [
            *self._run_as,
            str(self._bin / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--auth=trust",
            # Syncing a cluster that lives for one test run only costs time.
            "--no-sync",
        ]
        result = subprocess.run(
            cmd, capture_output=True, text=True, cwd=self._tmp, env=_child_env()
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {result.returncode}); is {self._tmp.parent} reachable by "
                f"user {SUPERUSER!r}?\n{result.stdout}{result.stderr}"
            )

    def _launch(self) -> None:
        # A port grabbed by someone else between _free_port() and bind() is retried.
        for _attempt in range(5):
            self._port = _free_port()
            proc = self._spawn(self._port)
            self._proc = proc
            if self._wait_ready(proc):
                return
            self._proc = None
            log = self._log_tail()
            if "could not bind" not in log and "could not create any TCP/IP" not in log:
                raise RuntimeError(f"postgres failed to start:\n{log}")
        raise RuntimeError(f"postgres could not bind a free port:\n{self._log_tail()}")

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        assert self._bin is not None and self._tmp is not None
        settings = {
            "listen_addresses": HOST,
            "port": str(port),
            "unix_socket_directories": str(self._tmp),
            **({} if self.durable else FAST_SETTINGS),
            **self.settings,
        }
        prefix = list(self._run_as)
        # Tie the server's life to ours: if this process dies without running stop() (SIGKILL,
        # SIGTERM), the kernel sends SIGINT = fast shutdown. The signal fires when the *thread*
        # that forked exits, so only do it from the main thread; then also put postgres in its
        # own session so a terminal Ctrl-C reaches only Python, which stops it cleanly. From
        # other threads it stays in our process group, so killing the group still kills it.
        tied = threading.current_thread() is threading.main_thread() and bool(
            shutil.which("setpriv")
        )
        if tied:
            prefix = prefix or ["setpriv"]
            prefix.append("--pdeathsig=INT")
        cmd = [*prefix, str(self._bin / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        # A fresh log per attempt, so a failed attempt's errors don't mask the next one's.
        with open(self.log_path, "wb") as log:
            return subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self._tmp,
                env=_child_env(),
                start_new_session=tied,
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> bool:
        # Like pg_ctl -w: postmaster.pid's 8th line says "ready" once connections are accepted.
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            with contextlib.suppress(FileNotFoundError):
                lines = pid_file.read_text().splitlines()
                if len(lines) >= 8 and lines[0] == str(proc.pid) and lines[7].strip() == "ready":
                    return True
            time.sleep(0.01)
        self._shutdown(proc)
        raise RuntimeError(
            f"postgres not ready after {self.start_timeout:.0f}s:\n{self._log_tail()}"
        )

    @staticmethod
    def _shutdown(proc: subprocess.Popen[bytes]) -> None:
        # SIGINT is exactly what `pg_ctl stop -m fast` sends to the postmaster; we hold its pid
        # as our own child, so signal it directly and reap it (no stale pid file to trust).
        # Escalate to immediate shutdown (SIGQUIT), then SIGKILL, if it hangs.
        for sig, timeout in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, None)):
            if proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout)
                return
            except subprocess.TimeoutExpired:
                continue

    def _log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, RuntimeError):
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])

    def _atexit_stop(self) -> None:
        # A forked child (e.g. multiprocessing) inherits atexit handlers: only the process
        # that started the server may stop it.
        if os.getpid() == self._owner_pid:
            self.stop()


def main(argv: list[str] | None = None) -> int:
    """Start a server, print its URL, and keep it running until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--durable",
        action="store_true",
        help="keep fsync/synchronous_commit/full_page_writes on (benchmarks)",
    )
    parser.add_argument(
        "--dbname",
        default="postgres",
        help="create this database (unless 'postgres') and print its URL",
    )
    parser.add_argument(
        "-c",
        dest="settings",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra server setting (repeatable)",
    )
    args = parser.parse_args(argv)
    if bad := [item for item in args.settings if "=" not in item]:
        parser.error(f"-c expects NAME=VALUE, got {bad[0]!r}")
    settings = dict(item.split("=", 1) for item in args.settings)

    def on_signal(signum: int, frame: object) -> None:
        raise SystemExit(0)

    # Install SIGINT explicitly too: a shell starts `cmd &` with SIGINT ignored, and a bench
    # script may well stop its background server with `kill -INT`.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    server = PostgresServer(durable=args.durable, settings=settings)
    t0 = time.monotonic()
    try:
        server.start()
        if args.dbname != "postgres":
            server.create_database(args.dbname)
        print(server.url(args.dbname), flush=True)
        print(
            f"# started in {time.monotonic() - t0:.2f}s; pid {server.pid}, data "
            f"{server.data_dir}, log {server.log_path}; Ctrl-C or SIGTERM to stop",
            file=sys.stderr,
            flush=True,
        )
        assert server._proc is not None
        code = server._proc.wait()  # returns only if postgres dies on its own
        print(f"# postgres exited with {code}:\n{server._log_tail()}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not interrupt the clean-up half way.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
