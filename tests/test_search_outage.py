"""Elasticsearch stopped during intake: orders are still created, search says it is degraded,
and the index catches up when the node is back (its own node, killed and restarted)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hotline.config import Settings
from tests.conftest import make_settings
from tests.esnode import EsNode
from tests.ports import free_port
from tests.waiting import wait_until


@pytest.fixture
def node(tmp_path: Path) -> Iterator[EsNode]:
    node = EsNode(free_port(udp=False), home=tmp_path / "es", heap_mb=256)
    node.home.mkdir()
    node.start()
    try:
        yield node
    finally:
        node.kill()


@pytest.fixture
def settings(node: EsNode, tmp_path: Path) -> Settings:
    return make_settings(
        f"sqlite:///{tmp_path / 'hotline.db'}",
        HOTLINE__SEARCH__BACKEND="elasticsearch",
        HOTLINE__SEARCH__URL=node.url,
        HOTLINE__SEARCH__INDEX_PREFIX=f"t{uuid.uuid4().hex[:8]}",
        HOTLINE__SEARCH__REFRESH_WRITES="true",
        HOTLINE__SEARCH__TIMEOUT_S="1",
        HOTLINE__SEARCH__IDLE_S="0.2",
        HOTLINE__SEARCH__PROBE_S="0.5",
        HOTLINE__SEARCH__RETRY_MAX_S="2",
    )


async def numbers(api: Any, q: str) -> list[str]:
    data = await api.get("/search/tickets", q=q)
    return [t["number"] for t in data["items"]]


async def test_search_elasticsearch_down_during_intake_then_catches_up(
    api: Any, node: EsNode
) -> None:
    dispatcher = await api("dispatcher")
    citizen = await api()
    first = await citizen.post(
        "/requests", {"content": "新城区暖气不热", "phone": "13811110000"}, status=201
    )

    async def indexed(q: str, n: str) -> bool:
        try:
            return n in await numbers(dispatcher, q)
        except AssertionError:  # 503 while degraded
            return False

    await wait_until(lambda: indexed("暖气不热", first["number"]))

    await asyncio.get_running_loop().run_in_executor(None, node.kill)  # kill -9
    during = []
    for i in range(5):  # intake goes on: every request is accepted at once
        data = await citizen.post(
            "/requests",
            {"content": f"回民区停电第{i}天无人处理", "phone": f"1381111000{i}"},
            status=201,
        )
        during.append(data["number"])
    faq = await dispatcher.post(
        "/kb/articles",
        {"kind": "faq", "fields": {"question": "停电了找谁？", "answer": "拨打供电服务热线。"}},
        status=201,
    )
    faq = await dispatcher.post(f"/kb/articles/{faq['id']}/submit", {"version": faq["version"]})
    await dispatcher.post(f"/kb/articles/{faq['id']}/publish", {"version": faq["version"]})

    async def degraded() -> Any:
        status = await dispatcher.get("/search/status")
        return status if status["status"] == "degraded" and status["pending"] else None

    status = await wait_until(degraded)
    assert status["backend"] == "elasticsearch"
    error = await dispatcher.get("/search/tickets", status=503, q="停电")
    assert error["error"]["code"] == "search_unavailable"
    sug = await dispatcher.post("/suggestions", {"text": "停电"})
    assert sug["degraded"] is True

    await asyncio.get_running_loop().run_in_executor(None, node.start)  # same data, same port

    async def caught_up() -> bool:
        try:
            got = await numbers(dispatcher, "回民区停电")
        except AssertionError:
            return False
        return set(during) <= set(got)

    await wait_until(caught_up, within=120)
    status = await wait_until(lambda: _ok(dispatcher), within=60)
    assert status["pending"] == 0
    assert first["number"] in await numbers(dispatcher, "暖气不热")  # survived the kill

    async def faq_indexed() -> bool:
        data = await dispatcher.get("/kb/articles", q="停电找谁")
        return any(a["id"] == faq["id"] for a in data["items"])

    await wait_until(faq_indexed, within=60)


async def _ok(api: Any) -> Any:
    status = await api.get("/search/status")
    return status if status["status"] == "ok" and status["pending"] == 0 else None
