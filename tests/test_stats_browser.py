"""The statistics pages in Debian's Chromium against a real `hotline serve`: charts drawn (a
canvas with pixels), no console error (CSP included), the department sees only its own
figures, the monthly report prints on A4; screenshots saved as artifacts."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser import *  # noqa: F403
from tests.browser import ARTIFACTS, WebServer, screenshot
from tests.conftest import create_users, make_settings
from tests.hotline_server import Server
from tests.test_stats_aggregates import TZ, SteppingClock, drive, make_service

DAYS_BACK = 75


def seed_orders(settings: Any, db: Any) -> None:
    """A couple of months of orders through the real service, in every lifecycle state, and a
    few call records (the hourly call counts are kept by the same store hooks)."""
    from telephony import store as call_store
    from telephony.model import CallRecord

    start = datetime.now(TZ) - timedelta(days=DAYS_BACK)
    clock = SteppingClock(start)
    svc = make_service(settings, db, clock)
    # in a thread of its own: Playwright's sync API keeps an event loop in this one
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, drive(svc, clock, random.Random(7), 420)).result()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, publish_a_case(db)).result()
    rng = random.Random(3)
    for i in range(60):
        offered = datetime.now(UTC) - timedelta(days=rng.randint(0, 20), hours=rng.randint(0, 23))
        rec = CallRecord(f"c{i}", "in", "intake", "13800000000", "12345", 0, offered)
        db.run_write(lambda c, r=rec: call_store.insert_call(c, r))
        queued = offered + timedelta(seconds=20)
        values: dict[str, Any] = {"queued_at": queued}
        if rng.random() < 0.8:
            values |= {
                "answered_at": queued + timedelta(seconds=rng.randint(2, 40)),
                "ended_at": queued + timedelta(seconds=300),
                "outcome": "answered",
            }
        else:
            values |= {"ended_at": queued + timedelta(seconds=30), "outcome": "abandoned"}
        db.run_write(lambda c, i=i, v=values: call_store.update_call(c, f"c{i}", v))


async def publish_a_case(db: Any) -> None:
    """The first answered order, published with an approved text (Chinese and Mongolian)."""
    import sqlalchemy as sa

    from tickets.case_service import CaseService, CaseText
    from tickets.model import Actor, Role
    from tickets.tables import tickets

    number = db.run_read(
        lambda c: c.execute(
            sa.select(tickets.c.number)
            .where(tickets.c.status.in_(["reviewed", "revisited", "closed"]))
            .limit(1)
        ).scalar_one()
    )
    supervisor = Actor(Role.SUPERVISOR, 1, "班长")
    cases = CaseService(db)
    draft = await cases.start(supervisor, number)
    text = CaseText(
        title="小区供暖温度不达标问题得到解决",
        question="市民反映小区冬季供暖温度偏低，多次联系物业未果。",
        answer="经协调，供热公司已对管网进行检修，室温已达到标准。",
        title_mn="ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠢ ᠰᠢᠢᠳᠪᠦᠷᠢᠯᠡᠪᠡ",
        question_mn="ᠢᠷᠭᠡᠨ ᠦ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ",
    )
    await cases.edit(supervisor, draft.id, draft.version, text, publish=True)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """`hotline serve` on a database that already holds two months of orders."""
    from hotline.db import open_database

    tmp: Path = tmp_path_factory.mktemp("stats-web")
    db_url = f"sqlite:///{tmp / 'hotline.db'}"
    env = {"HOTLINE__TELEPHONY__ENABLED": "false"}
    settings = make_settings(db_url, **env)
    db = open_database(settings)
    try:
        create_users(settings, db)
        seed_orders(settings, db)
    finally:
        db.close()
    server = Server(tmp, db_url, env=env)
    server.wait_ready()
    try:
        yield WebServer(server, db_url, tmp, env)
    finally:
        server.kill()


def period() -> str:
    today = datetime.now(TZ).date()
    return f"since={(today - timedelta(days=DAYS_BACK)).isoformat()}&until={today.isoformat()}"


def drawn_charts(page: Any) -> list[dict[str, Any]]:
    """Each drawn chart: its name and how many non-blank pixels its canvas has."""
    page.wait_for_selector("body[data-charts]")
    result: list[dict[str, Any]] = page.evaluate(
        """() => Array.from(document.querySelectorAll('.chart[data-drawn]')).map(node => {
            const canvas = node.querySelector('canvas');
            if (!canvas) return {name: node.dataset.chart, pixels: 0};
            const ctx = canvas.getContext('2d');
            const d = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
            let inked = 0;
            for (let i = 3; i < d.length; i += 4 * 7) if (d[i] > 0) inked++;
            return {name: node.dataset.chart, pixels: inked};
        })"""
    )
    return result


def test_managers_page_draws_every_chart_with_data(staff_page: Any) -> None:
    page = staff_page("manager")
    page.goto(f"/staff/stats?{period()}")
    assert page.locator("h1").inner_text() == "统计分析"
    charts = {c["name"]: c["pixels"] for c in drawn_charts(page)}
    for name in ("trend", "kinds", "categories", "by_channel", "by_kind", "by_category"):
        assert charts.get(name, 0) > 100, (name, charts)
    for name in ("by_region", "by_department", "regions", "calls"):
        assert charts.get(name, 0) > 100, (name, charts)
    assert page.locator(".spark[data-drawn] canvas").count() > 0  # the ranking's sparklines
    # each indicator's definition on hover and in the footnotes
    assert page.locator("th.defined[title*='签收时限']").count() >= 1
    assert page.locator("#def-on_time_reply_rate").inner_text().startswith("按时办结率")
    screenshot(page, "stats-manager")
    page.locator("#ranking").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "stats-manager-ranking.png"))  # the viewport only


def test_filters_are_kept_in_the_url(staff_page: Any) -> None:
    page = staff_page("supervisor")
    page.goto(f"/staff/stats?{period()}")
    page.select_option("#f-kind", "complaint")
    page.select_option("#f-channel", "phone")
    page.click(".stats-filters button[type=submit]")
    page.wait_for_url(re.compile(r".*kind=complaint.*"))
    assert "channel=phone" in page.url
    assert page.locator("#f-kind").input_value() == "complaint"
    drawn_charts(page)
    shared = page.url
    other = staff_page("manager")
    other.goto(shared)  # the link shows the same figures to someone else
    assert other.locator("#f-kind").input_value() == "complaint"
    assert other.locator(".summary").inner_text() == page.locator(".summary").inner_text()


def test_department_sees_only_its_own_figures(staff_page: Any) -> None:
    page = staff_page("housing")
    page.goto(f"/staff/stats?{period()}")
    assert "呼和浩特市住房和城乡建设局" in page.locator("h1").inner_text()
    rows = page.locator("#table-ranking tbody tr")
    assert rows.count() == 1
    assert "呼和浩特市住房和城乡建设局" in rows.first.inner_text()
    assert page.locator("#f-department").count() == 0  # no other department to choose
    assert page.locator("[data-chart=by_department], [data-chart=regions]").count() == 0
    drawn_charts(page)
    screenshot(page, "stats-department")


def test_monthly_report_prints_on_a4(staff_page: Any) -> None:
    page = staff_page("manager")
    month = (datetime.now(TZ).date().replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    page.goto(f"/staff/stats/report?month={month}")
    assert "月度通报" in page.locator("h1").inner_text()
    charts = drawn_charts(page)
    assert charts and all(c["pixels"] > 100 for c in charts), charts
    page.emulate_media(media="print")
    assert page.locator("header.site").is_hidden()
    assert page.locator(".print-button").is_hidden()
    screenshot(page, "stats-report-print")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF")


def test_public_column_in_chinese_and_vertical_mongolian(new_page: Any) -> None:
    page = new_page()
    page.goto("/public")
    assert page.locator("h1").inner_text() == "曝光纠错"
    page.click("article.case h2 a")
    assert page.locator("#question").inner_text().startswith("市民反映小区冬季供暖温度偏低")
    assert page.locator("#rating").inner_text() != ""
    screenshot(page, "public-case-zh")
    page.goto("/public?lang=mn-Mong")
    assert page.locator("html").get_attribute("lang") == "mn-Mong"
    mode = page.evaluate("getComputedStyle(document.querySelector('main h1')).writingMode")
    assert mode == "vertical-lr"
    assert page.locator("h1").inner_text() == "ᠢᠯᠡ ᠪᠣᠯᠭᠠᠵᠤ ᠵᠠᠰᠠᠬᠤ"
    screenshot(page, "public-list-mn")
    page.goto("/public/departments?lang=mn-Mong")
    screenshot(page, "public-monthly-mn")
    feed = page.request.get("/public/cases.atom")
    assert feed.status == 200 and "小区供暖温度不达标问题得到解决" in feed.text()
