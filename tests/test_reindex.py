"""`hotline search reindex`: the documents analysed in worker processes (`--workers`) are the
ones the process itself would have written, page after page."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline.cli import main
from hotline.cli_search import _platform
from hotline.db import open_database
from hotline.search import ParallelDocuments
from kb import fts_store
from tests.conftest import make_settings
from tests.test_stats_aggregates import SteppingClock, make_service
from tickets.model import Caller, Channel, Kind, NewTicket

TEXTS = (
    "小区供暖不达标，暖气不热",
    "光明路路灯坏了，晚上很黑",
    "工地夜间施工噪音扰民",
    "物业乱收停车费",
)
REGIONS = ("150102", "150203", None)


def orders(url: str, n: int) -> None:
    db = open_database(make_settings(url))
    try:
        svc = make_service(
            make_settings(url),
            db,
            SteppingClock(datetime(2026, 11, 2, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))),
        )

        async def create() -> None:
            for i in range(n):
                await svc.submit(
                    NewTicket(
                        Channel.WEB,
                        f"第{i}号：{TEXTS[i % len(TEXTS)]}",
                        Caller(phone="13812345678"),
                        kind=Kind.COMPLAINT,
                        address=f"新城区{i}号",
                        region=REGIONS[i % len(REGIONS)],
                    ),
                )

        asyncio.run(create())
    finally:
        db.close()


def indexed(path: Path) -> tuple[list[Any], list[Any]]:
    with sqlite3.connect(path) as conn:
        return (
            conn.execute("SELECT * FROM orders_meta ORDER BY 1").fetchall(),
            conn.execute("SELECT rowid, * FROM orders_fts ORDER BY rowid").fetchall(),
        )


def test_worker_processes_write_what_one_process_writes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    orders(url, 23)

    def reindex(path: Path, workers: int) -> int:
        settings = make_settings(url, HOTLINE__SEARCH__PATH=str(path))
        db, svc = _platform(settings)

        async def run() -> int:
            await svc.orders.search.backend.open()
            build = ParallelDocuments(settings, workers) if workers > 1 else None
            try:
                # pages of 4: several in flight at once, the last one short
                return await svc.orders.reindex(batch=4, build=build, ahead=workers)
            finally:
                if build:
                    build.close()
                await svc.orders.search.backend.close()

        try:
            return asyncio.run(run())
        finally:
            db.close()

    assert reindex(tmp_path / "one.db", 1) == reindex(tmp_path / "two.db", 2) == 23
    meta, fts = indexed(tmp_path / "one.db")
    assert len(meta) == len(fts) == 23 and any("路灯" in str(row) for row in fts)
    assert indexed(tmp_path / "two.db") == (meta, fts)


def test_reindex_cli_with_workers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'h.db'}"
    orders(url, 5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOTLINE__DATABASE__URL", url)
        mp.setenv("HOTLINE__SEARCH__PATH", str(tmp_path / "s.db"))
        mp.setattr(fts_store, "WARM_FLOOR", 2)  # 5 orders: keep the terms of two or more
        assert main(["search", "reindex", "--fresh", "--workers", "2"]) == 0
    out = json.loads(capsys.readouterr().out)
    with sqlite3.connect(tmp_path / "s.db") as conn:
        kept = conn.execute("SELECT count(*) FROM orders_df").fetchone()[0]
    assert kept > 0
    assert out == {"orders": 5, "articles": 0, "backend": "embedded", "terms_warmed": kept}
    assert len(indexed(tmp_path / "s.db")[0]) == 5


CHILD = """
import asyncio, os, sys, time
from hotline.search import ParallelDocuments
from tests.conftest import make_settings

async def main():
    build = ParallelDocuments(make_settings(sys.argv[1]), 2)
    await asyncio.gather(build([], {}), build([], {}))  # both workers started
    print(" ".join(str(p) for p in build.pool._processes), flush=True)
    time.sleep(600)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_workers_do_not_outlive_a_killed_reindex(tmp_path: Path) -> None:
    """A reindex stopped with SIGKILL (or an operator's kill -9) leaves no worker behind."""
    import os
    import signal
    import subprocess
    import sys

    from tests.waiting import wait_until_sync

    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    repo = Path(__file__).resolve().parent.parent
    child = subprocess.Popen(
        [sys.executable, str(script), f"sqlite:///{tmp_path / 'h.db'}"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        workers = [int(p) for p in child.stdout.readline().split()]
        assert len(workers) == 2 and all(Path(f"/proc/{p}").exists() for p in workers)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    def running(pid: int) -> bool:  # a zombie (an init that does not reap) has ended too
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z"

    def gone() -> bool:
        return not any(running(p) for p in workers)

    wait_until_sync(gone, timeout=60)


def test_a_worker_started_after_its_parent_died_ends(tmp_path: Path) -> None:
    """A worker still starting when the reindex is killed must not take its new parent (the
    reaper) for the reindex: it is told the reindex's pid, and ends."""
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    code = (
        "import sys, time\n"
        "from hotline.search import _start_worker\n"
        "from tests.conftest import make_settings\n"
        "_start_worker(make_settings(sys.argv[1]), 0)  # no process has pid 0: gone already\n"
        "time.sleep(60)\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", code, f"sqlite:///{tmp_path / 'h.db'}"],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        timeout=50,
    )
    assert child.returncode == 1
