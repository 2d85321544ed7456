"""The statistics API on SQLite and PostgreSQL: the departments contract after real lifecycles,
role isolation on every statistics endpoint and page, and the CSV / XLSX downloads opened with
the XLSX library and compared with what the page and the JSON show."""

from __future__ import annotations

import csv
import io
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from openpyxl import load_workbook

from agent_ui import api_stats
from hotline.config import Settings
from tests.conftest import make_settings

HOUSING, URBAN, ECOLOGY = "150100-housing", "150100-urban", "150200-ecology"
TZ = ZoneInfo("Asia/Shanghai")
API_PATHS = (
    "/stats/departments",
    "/stats/regions",
    "/stats/overview",
    "/stats/breakdown?by=category",
    "/stats/series",
    "/stats/hot-topics",
    "/stats/calls",
    "/stats/definitions",
)
PAGES = ("/staff/stats", "/staff/stats/report")


@pytest.fixture
def settings(db_url: str) -> Settings:
    # rank departments from their first task: the scenarios here are small
    return make_settings(db_url, HOTLINE__STATS__MIN_ASSIGNED="1")


Login = Callable[[str], Awaitable[Any]]


@pytest.fixture
async def login(api: Any) -> Login:
    clients: dict[str, Any] = {}

    async def get(username: str) -> Any:
        if username not in clients:
            clients[username] = await api(username)
        return clients[username]

    return get


def today() -> str:
    return datetime.now(TZ).date().isoformat()


async def scenario(login: Login) -> None:
    """Housing: two tasks, both signed, one replied, approved and rated satisfied and resolved.
    Urban: one task, returned. Ecology: nothing."""
    agent, dispatcher, housing, urban = [
        await login(u) for u in ("agent", "dispatcher", "housing", "urban")
    ]
    body = {"content": "小区供暖不达标", "phone": "13812345678", "kind": "complaint"}
    first = await agent.post("/tickets", {**body, "region": "150102"}, 201)
    first = await dispatcher.act(first, "dispatch", lead=HOUSING)
    first = await housing.act(first, "sign")
    first = await housing.act(first, "reply", text="已协调供热公司整改。")
    first = await dispatcher.act(first, "approve")
    await agent.act(first, "revisit", satisfaction="satisfied", resolved=True)
    second = await agent.post("/tickets", {**body, "region": "150103"}, 201)
    second = await dispatcher.act(second, "dispatch", lead=URBAN)
    second = await urban.act(second, "return", reason="不属于本单位职责")
    second = await dispatcher.act(second, "dispatch", lead=HOUSING)
    await housing.act(second, "sign")


async def test_departments_contract_after_real_lifecycles(login: Login) -> None:
    await scenario(login)
    manager = await login("manager")
    data = await manager.get(f"/stats/departments?since={today()}&until={today()}")
    assert (data["since"], data["until"]) == (today(), today())
    rows = {r["department"]: r for r in data["departments"]}
    assert set(rows) == {HOUSING, URBAN}
    keys = {"department", "name", "received", "on_time_sign_rate", "on_time_reply_rate"}
    keys |= {"return_rate", "reopen_rate", "satisfaction_rate", "resolution_rate", "score", "rank"}
    assert keys <= set(rows[HOUSING])
    h = rows[HOUSING]
    assert h["name"] == "呼和浩特市住房和城乡建设局"
    assert (h["received"], h["on_time_sign_rate"], h["on_time_reply_rate"]) == (2, 1.0, 1.0)
    assert (h["return_rate"], h["reopen_rate"], h["satisfaction_rate"]) == (0.0, 0.0, 1.0)
    assert h["resolution_rate"] == 1.0 and h["score"] == 100.0 and h["rank"] == 1
    u = rows[URBAN]
    assert (u["received"], u["return_rate"], u["on_time_sign_rate"]) == (1, 1.0, None)
    # only 退单率 measured (10 of the weights): too little to rank it (README, Statistics)
    assert u["satisfaction_rate"] is None and u["rank"] is None and u["score"] == 0.0
    assert [r["department"] for r in data["departments"]] == [HOUSING, URBAN]  # best first
    # the region filter keeps the departments of that region (呼和浩特), not others
    baotou = await manager.get(f"/stats/departments?since={today()}&until={today()}&region=150200")
    assert baotou["departments"] == []
    overview = await manager.get(f"/stats/overview?since={today()}&until={today()}")
    assert overview["counts"]["received"] == 2 and overview["open"] == 1
    assert overview["three_rates"]["satisfaction_rate"] == 1.0


async def test_bad_periods_and_filters_are_refused(login: Login) -> None:
    manager = await login("manager")
    for query, field in (
        ("since=2026-13-01", "since"),
        ("since=2026-11-02&until=2026-11-01", "until"),
        ("region=999999", "region"),
        ("kind=nonsense", "kind"),
        ("format=pdf", "format"),
    ):
        err = await manager.get(f"/stats/departments?{query}", 422)
        assert err["error"]["details"]["field"] == field, query


@pytest.mark.parametrize("who", ["agent", "dispatcher", None])
async def test_every_stats_endpoint_refuses_roles_without_access(
    login: Login, api: Any, who: str | None
) -> None:
    client = await login(who) if who else await api()
    for path in API_PATHS:
        await client.get(path, 403 if who else 401)


async def test_department_sees_only_its_own_figures_and_its_rank(login: Login) -> None:
    await scenario(login)
    urban = await login("urban")
    period = f"since={today()}&until={today()}"
    data = await urban.get(f"/stats/departments?{period}")
    assert [r["department"] for r in data["departments"]] == [URBAN]
    # too little measured to be ranked; one ranked peer (README, Statistics: the coverage rule)
    assert (data["departments"][0]["rank"], data["peers"]) == (None, 1)
    housing = await (await login("housing")).get(f"/stats/departments?{period}")
    assert [r["department"] for r in housing["departments"]] == [HOUSING]
    assert (housing["departments"][0]["rank"], housing["peers"]) == (1, 1)  # its rank among peers
    err = await urban.get(f"/stats/overview?{period}&department={HOUSING}", 403)
    assert err["error"]["code"] == "department_forbidden"
    by_dept = await urban.get(f"/stats/breakdown?{period}&by=department")
    assert [i["key"] for i in by_dept["items"]] == [URBAN]
    overview = await urban.get(f"/stats/overview?{period}")
    assert overview["counts"]["assigned"] == 1 and overview["counts"]["returned"] == 1
    assert overview["counts"]["received"] == 0  # the order is housing's now
    for path in ("/stats/regions", "/stats/calls"):
        await urban.get(path, 403)
    ecology = await login("ecology")
    assert (await ecology.get(f"/stats/departments?{period}"))["departments"] == []


async def test_pages_refuse_roles_without_access(
    http_session: Callable[[], tuple[aiohttp.ClientSession, str]], login: Login
) -> None:
    session, base = http_session()
    for path in PAGES:
        async with session.get(base + path, allow_redirects=False) as resp:
            assert resp.status == 303 and "/staff/login" in resp.headers["Location"]
    agent = await login("agent")
    for path in PAGES:
        async with agent.session.get(agent.base + path) as resp:
            assert resp.status == 403
    housing = await login("housing")
    async with housing.session.get(housing.base + "/staff/stats") as resp:
        assert resp.status == 200
        assert "呼和浩特市住房和城乡建设局" in await resp.text()


async def _download(client: Any, path: str) -> tuple[str, bytes]:
    async with client.session.get(client.base + path) as resp:
        assert resp.status == 200, await resp.text()
        return resp.headers["Content-Type"], await resp.read()


async def test_xlsx_and_csv_downloads_hold_what_the_json_and_page_show(
    login: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the files are written off the event loop's thread (a big one would stall the process)
    loop_thread = threading.get_ident()
    writers: list[bool] = []
    for name in ("to_xlsx", "to_csv"):
        real = getattr(api_stats, name)

        def spy(tables: Any, real: Any = real) -> bytes:
            writers.append(threading.get_ident() != loop_thread)
            return real(tables)  # type: ignore[no-any-return]

        monkeypatch.setattr(api_stats, name, spy)
    await scenario(login)
    manager = await login("manager")
    period = f"since={today()}&until={today()}"
    data = await manager.get(f"/stats/departments?{period}")
    ctype, body = await _download(manager, f"/api/v1/stats/departments?{period}&format=xlsx")
    assert ctype.startswith("application/vnd.openxmlformats")
    ws = load_workbook(io.BytesIO(body)).active
    assert ws is not None
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0][:4] == ("名次", "单位代码", "承办单位", "派单量")
    assert [r[1] for r in rows[1:]] == [d["department"] for d in data["departments"]]
    housing = rows[1]
    col = rows[0].index("退单率")
    assert (housing[0], housing[3], housing[col]) == (1, 2, 0.0)
    assert ws.cell(row=2, column=col + 1).number_format == "0.0%"

    _, body = await _download(manager, f"/api/v1/stats/departments?{period}&format=csv")
    text = body.decode("utf-8-sig")
    table = list(csv.reader(io.StringIO(text)))
    assert table[0][:3] == ["名次", "单位代码", "承办单位"]
    assert table[2][1] == URBAN and table[2][rows[0].index("退单率")] == "100.0%"

    # the page's download: one sheet per table on the page, the ranking as shown
    _, body = await _download(manager, f"/staff/stats?{period}&format=xlsx")
    book = load_workbook(io.BytesIO(body))
    assert {"承办单位排名（月度通报）", "考核指标", "按渠道统计", "话务统计（按小时）"} <= set(
        book.sheetnames
    )
    ranking = list(book["承办单位排名（月度通报）"].iter_rows(values_only=True))
    assert [r[1] for r in ranking[1:]] == [HOUSING, URBAN]
    async with manager.session.get(manager.base + f"/staff/stats?{period}") as resp:
        page = await resp.text()
    assert "100.0%" in page and "呼和浩特市城市管理综合执法局" in page
    _, body = await _download(manager, f"/staff/stats?{period}&format=csv&table=by_channel")
    assert len(writers) == 4 and all(writers)
    lines = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert lines[0][:2] == ["代码", "渠道"] and lines[1][:3] == ["phone", "电话", "2"]
    async with manager.session.get(manager.base + f"/staff/stats?{period}&format=csv&table=x") as r:
        assert r.status == 422  # no such table on the page
