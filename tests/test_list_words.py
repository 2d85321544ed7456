"""A work list's word filter (`q`) answered by the search port, on both backends: the words
match as search matches them (short forms, traditional characters), the list's other
conditions and the department's scope still apply, a note says when only the best matches
were listed, and while search is unreachable the store matches the words itself."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from agent_ui import filters
from hotline.config import Settings
from tests.conftest import Api, make_settings
from tests.ports import free_port
from tests.search_fixtures import BACKENDS, backend_env
from tests.waiting import wait_until

URBAN = "150100-urban"


@pytest.fixture(params=[*BACKENDS, "unreachable"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    env = {"HOTLINE__SEARCH__IDLE_S": "0.2", "HOTLINE__SEARCH__PROBE_S": "0.5"}
    env |= backend_env(request, request.param)
    if request.param == "unreachable":  # nothing listens there: search stays degraded
        env |= {
            "HOTLINE__SEARCH__BACKEND": "elasticsearch",
            "HOTLINE__SEARCH__URL": f"http://127.0.0.1:{free_port(udp=False)}",
        }
    yield make_settings(f"sqlite:///{tmp_path / 'hotline.db'}", **env)


async def listed(api: Api, **query: str) -> tuple[list[str], str | None]:
    data = await api.get("/tickets?" + urlencode(query))
    return [t["number"] for t in data["items"]], data.get("note")


async def page(api: Api, **query: str) -> str:
    async with api.session.get(f"{api.base}/staff/tickets?{urlencode(query)}") as r:
        assert r.status == 200
        return await r.text()


async def test_list_words_through_search(
    api: Any, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    citizen = await api()
    dispatcher = await api("dispatcher")
    lamp = (
        await citizen.post(
            "/requests",
            {"content": "呼和浩特市新城区光明路路灯不亮已经一周", "phone": "13812345678"},
            status=201,
        )
    )["number"]
    other = (
        await citizen.post(
            "/requests",
            {"content": "新城区海东路路灯整夜不亮", "phone": "13812345679"},
            status=201,
        )
    )["number"]
    backend = request.node.callspec.params["settings"]

    if backend == "unreachable":
        # the store matches the words itself, literally, and says search is away
        numbers, note = await listed(dispatcher, q="光明路 路灯")
        assert numbers == [lamp] and note and "检索服务暂不可用" in note
        assert (await listed(dispatcher, q="呼市 路燈"))[0] == []  # no analyser here
        assert "检索服务暂不可用" in await page(dispatcher, view="all", q="光明路")
        return

    async def indexed() -> bool:
        return set((await listed(dispatcher, q="路灯 不亮"))[0]) == {lamp, other}

    await wait_until(indexed, within=60)
    # a short form and a traditional character: search's analyser, not LIKE, matched them
    assert (await listed(dispatcher, q="呼市 光明路"))[0] == [lamp]
    assert lamp in (await listed(dispatcher, q="光明路 路燈"))[0]
    # the list's own conditions still apply to the search's matches
    assert (await listed(dispatcher, q="路灯", status="closed"))[0] == []
    assert set((await listed(dispatcher, q="路灯", status="new"))[0]) == {lamp, other}
    # a department sees only its own orders, words or not
    urban = await api("urban")
    assert (await listed(urban, q="路灯"))[0] == []
    t = await dispatcher.get(f"/tickets/by-number/{lamp}")
    await dispatcher.act(t, "dispatch", lead=URBAN)

    async def urban_sees_it() -> bool:
        return (await listed(urban, q="路灯"))[0] == [lamp]

    await wait_until(urban_sees_it, within=60)
    html = await page(dispatcher, view="all", q="呼市 光明路")
    assert lamp in html and 'id="words-note"' not in html
    # more matches than the search is asked for: the best ones, and a note saying so
    monkeypatch.setattr(filters, "WORD_CANDIDATES", 1)
    numbers, note = await listed(dispatcher, q="路灯 不亮")
    assert len(numbers) == 1 and note and "最相关的 1 条" in note
    assert 'id="words-note"' in await page(dispatcher, view="all", q="路灯 不亮")
