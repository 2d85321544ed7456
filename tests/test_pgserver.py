"""The throwaway PostgreSQL server used by the tests and benchmarks starts, serves and cleans up."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tests import pgserver
from tests.pgserver import PostgresNotFoundError, PostgresServer

REPO = Path(__file__).resolve().parent.parent


def port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        return s.connect_ex(("127.0.0.1", port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still "exists"; it is dead for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_binaries_are_installed() -> None:
    # Fails (never skips) on a machine where `make test` did not install PostgreSQL.
    bin_dir = pgserver.find_bin_dir()
    assert (bin_dir / "postgres").exists(), "run scripts/install-test-deps.sh"


def test_lifecycle_tables_databases_and_cleanup() -> None:
    server = PostgresServer()
    with server:
        port, tmp, pid = server.port, server.data_dir.parent, server.pid
        assert pid is not None and server.running
        assert port_open(port)
        assert server.url() == f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"

        with psycopg.connect(server.dsn()) as conn:
            conn.execute("CREATE TABLE t (id serial PRIMARY KEY, body text NOT NULL)")
            conn.execute("INSERT INTO t (body) VALUES (%s)", ("小区供暖温度不达标",))
            assert conn.execute("SELECT body FROM t").fetchone() == ("小区供暖温度不达标",)
            assert conn.execute("SHOW server_encoding").fetchone() == ("UTF8",)
            assert conn.execute("SHOW fsync").fetchone() == ("off",)

        url = server.create_database("second")
        assert url == server.url("second")
        # The URL is what the app gets: it must work with SQLAlchemy's psycopg dialect.
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("CREATE TABLE s (x int)"))
                conn.execute(sa.text("INSERT INTO s VALUES (42)"))
            with engine.connect() as conn:
                assert conn.execute(sa.text("SELECT x FROM s")).scalar_one() == 42
            # The engine's pool still holds an open connection: drop_database must win anyway.
            with psycopg.connect(server.dsn()) as admin:
                sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'second'"
                assert admin.execute(sql).fetchone() == (1,)
            server.drop_database("second")
        finally:
            engine.dispose()
        with psycopg.connect(server.dsn()) as conn:
            names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
        assert "second" not in names and "postgres" in names
        server.drop_database("second")  # dropping a missing database is not an error

    assert not server.running and server.pid is None
    assert not port_open(port), "server still listening after stop()"
    assert not tmp.exists(), "temp dir left behind"
    assert not pid_alive(pid)
    server.stop()  # idempotent


def test_durable_flag_and_extra_settings() -> None:
    with (
        PostgresServer(durable=True, settings={"max_connections": "42"}) as server,
        psycopg.connect(server.dsn()) as conn,
    ):
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert conn.execute("SHOW max_connections").fetchone() == ("42",)
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)


def test_two_servers_do_not_interfere() -> None:
    with PostgresServer() as a, PostgresServer() as b:
        assert a.port != b.port and a.data_dir != b.data_dir
        a_port = a.port
        a.stop()
        assert not port_open(a_port)
        with psycopg.connect(b.dsn()) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_missing_binaries_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pgserver.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(pgserver.shutil, "which", lambda name: None)
    with pytest.raises(PostgresNotFoundError, match=r"scripts/install-test-deps\.sh"):
        PostgresServer().start()


def start_main(*args: str) -> tuple[subprocess.Popen[str], str, Path]:
    """Run `python tests/pgserver.py`; returns the process, the URL it printed, its temp dir."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "pgserver.py"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    url = proc.stdout.readline().strip()
    info = proc.stderr.readline()
    assert url.startswith("postgresql+psycopg://postgres@127.0.0.1:"), (url, info)
    tmp = Path(info.split(" data ", 1)[1].split(",", 1)[0]).parent
    return proc, url, tmp


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_main_serves_until_signalled(sig: signal.Signals) -> None:
    proc, url, tmp = start_main("--dbname", "bench")
    try:
        assert url.endswith("/bench")
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT current_database()")).scalar_one() == "bench"
        engine.dispose()
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        proc.send_signal(sig)
        assert proc.wait(30) == 0
        assert not port_open(port)
        assert not tmp.exists()
    finally:
        proc.kill()
        proc.wait()


def test_server_dies_with_its_owner() -> None:
    # SIGKILL skips atexit; the parent-death signal must still shut postgres down.
    proc, url, tmp = start_main()
    try:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        assert port_open(port)
        proc.kill()
        proc.wait()
        assert wait_until(lambda: not port_open(port)), "postgres outlived its owner"
    finally:
        proc.kill()
        proc.wait()
        # Only the files stay behind after a SIGKILL; remove them ourselves.
        shutil.rmtree(tmp, ignore_errors=True)
