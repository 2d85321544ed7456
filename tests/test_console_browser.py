"""The staff console in Chromium: the review queue and the triage's suggestion, the history in
words (市民补充, deadline events, replies), a conflict shown before it is overridden, reopened
orders, list marks, and one rule for "overdue" shared by pages, API and clocks.

A real `hotline serve` runs the pages (triage on, threshold 1: every order waits for review);
the test process opens the same SQLite database to move time forward for the deadline clocks
(`TimeMachine`), as the watcher would at that moment."""

from __future__ import annotations

import asyncio
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.db import open_database
from tests.browser import *  # noqa: F403
from tests.browser import (
    PHONE_VIEWPORT,
    WebServer,
    expect_console_error,
    login,
    screenshot,
    start_web_server,
)
from tests.conftest import PASSWORD, make_settings
from tests.hotline_server import StaffClient

PHONE = "13912345678"
TZ = ZoneInfo("Asia/Shanghai")
WAIT_S = 60  # generous: background triage on a loaded machine; never a speed assertion


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    env = {"HOTLINE__TRIAGE__ENABLED": "true", "HOTLINE__TRIAGE__THRESHOLD": "1"}
    ws = start_web_server(tmp_path_factory.mktemp("console"), env)
    try:
        yield ws
    finally:
        ws.server.kill()


class TimeMachine:
    """The ticket service of the test process on the server's database, at a chosen time."""

    def __init__(self, ws: WebServer) -> None:
        settings = make_settings(ws.db_url)
        self.db = open_database(settings)
        self.svc = build_services(settings, self.db, InProcessBus())
        self.at = datetime.now(UTC)
        self.svc.tickets.clock = lambda: self.at

    def fire_clocks_at(self, at: datetime) -> int:
        """Let the deadline watcher run at `at` (warnings, overdue, 催办 / 督办). In a thread of
        its own: sync Playwright keeps an event loop running in this one."""
        self.at = at
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, self.svc.tickets.fire_due_clocks()).result()

    def close(self) -> None:
        self.db.close()


@pytest.fixture
def time_machine(web_server: WebServer) -> Iterator[TimeMachine]:
    tm = TimeMachine(web_server)
    try:
        yield tm
    finally:
        tm.close()


def staff(ws: WebServer, username: str) -> StaffClient:
    return StaffClient(ws.server, username, PASSWORD)


def submit(ws: WebServer, content: str, **fields: Any) -> dict[str, Any]:
    status, _, body = ws.server.request(
        "POST", "/api/v1/requests", {"content": content, "phone": PHONE, **fields}
    )
    assert status == 201, body
    return body  # type: ignore[no-any-return]


def ticket_by_number(client: StaffClient, number: str) -> dict[str, Any]:
    status, body = client.get(f"/tickets/by-number/{number}")
    assert status == 200, body
    return body  # type: ignore[no-any-return]


def wait_for_review(client: StaffClient, number: str) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        t = ticket_by_number(client, number)
        if t["route_state"] == "review":
            return t
        time.sleep(0.2)
    pytest.fail(f"order {number} never reached the review queue")


def act(client: StaffClient, t: dict[str, Any], action: str, **body: Any) -> dict[str, Any]:
    status, out = client.send(
        "POST", f"/tickets/{t['id']}/{action}", {"version": t["version"], **body}
    )
    assert status == 200, (action, out)
    return out  # type: ignore[no-any-return]


def reviewed_and_dispatched(
    ws: WebServer, content: str, edit: dict[str, Any] | None = None, **fields: Any
) -> dict[str, Any]:
    """A citizen's order the triage held for review, (corrected and) dispatched to housing."""
    dispatcher = staff(ws, "dispatcher")
    number = submit(ws, content, **fields)["number"]
    t = wait_for_review(dispatcher, number)
    if edit:
        t = act(dispatcher, t, "edit", **edit)
    return act(dispatcher, t, "dispatch", lead="150100-housing")


def row(page: Any, number: str) -> Any:
    return page.locator(f"tr[data-number='{number}']")


# -- 4. the review queue and the triage's suggestion ----------------------------------------------
def test_review_queue_shows_waiting_orders_with_the_suggestion(
    web_server: WebServer, staff_page: Any
) -> None:
    number = submit(
        web_server,
        "呼和浩特市新城区某小区供暖温度不达标，室内只有十四度",
        address="呼和浩特市新城区",
    )["number"]
    wait_for_review(staff(web_server, "dispatcher"), number)

    page = staff_page("dispatcher")
    assert "view=review" in page.url  # the dispatcher's day starts on the review queue
    assert page.locator("h1").inner_text() == "待人工派单"
    assert int(page.locator("#queue-review .count").inner_text()) >= 1
    r = row(page, number)
    assert r.locator(".mark-triage_review").inner_text() == "待人工派单"
    assert "分类建议" in r.inner_text() and "置信度" in r.inner_text()
    screenshot(page, "console-review-queue")

    r.locator("a").click()
    panel = page.locator("#suggestion")
    assert "待人工派单" in panel.inner_text()
    for label in ("分类建议", "建议承办", "置信度"):
        assert label in panel.inner_text(), label
    assert "等待派单员确认" in page.locator("#situation").inner_text()
    # the dispatch form comes filled in with the suggested department
    assert page.locator("#suggested-lead").count() == 1
    screenshot(page, "console-review-detail")


def test_list_filters_by_words_phone_department_and_route_state(
    web_server: WebServer, staff_page: Any
) -> None:
    dispatched = reviewed_and_dispatched(web_server, "包头市昆都仑区某路段井盖丢失，夜间行人危险")
    other = submit(web_server, "请问灵活就业人员怎么缴纳养老保险", phone="13800001111")["number"]
    page = staff_page("supervisor")

    def numbers(query: str) -> set[str]:
        page.goto("/staff/tickets?view=all&" + query)
        return set(
            page.locator("tr[data-number]").evaluate_all("rs => rs.map(r => r.dataset.number)")
        )

    assert dispatched["number"] in numbers("q=" + urllib.parse.quote("井盖 丢失"))
    assert other not in numbers("q=" + urllib.parse.quote("井盖"))
    assert other in numbers("phone=13800001111")
    assert dispatched["number"] not in numbers("phone=13800001111")
    assert dispatched["number"] in numbers("department=150100-housing")
    assert other not in numbers("department=150100-housing")
    assert dispatched["number"] in numbers("route_state=manual")
    assert dispatched["number"] not in numbers("route_state=review")
    # the form keeps what was filtered on (the URL is shareable)
    page.goto("/staff/tickets?view=all&q=" + urllib.parse.quote("井盖"))
    assert page.locator("#f-q").input_value() == "井盖"
    expect_console_error(page, "status of 422")
    page.goto("/staff/tickets?view=all&route_state=bogus")
    assert "值无效" in page.locator("main").inner_text()


# -- 5, 6. the history says what happened, in Chinese ---------------------------------------------
def test_history_shows_sms_supplement_reply_and_deadline_events_in_words(
    web_server: WebServer, staff_page: Any, time_machine: TimeMachine
) -> None:
    t = reviewed_and_dispatched(web_server, "新城区某小区电梯经常停运，老人上下楼困难")
    # the citizen adds something by SMS (Kannel's MO call): it joins the order
    text = "补充：电梯今天又停了，物业电话没人接"
    query = urllib.parse.urlencode(
        {"from": PHONE, "to": "12345", "text": text, "id": f"mo-{t['id']}"}
    )
    with urllib.request.urlopen(f"{web_server.base}/api/v1/sms/kannel?{query}", timeout=10) as resp:
        assert resp.status == 200
    housing = staff(web_server, "housing")
    t = ticket_by_number(housing, t["number"])
    t = act(housing, t, "sign")
    t = act(housing, t, "reply", text="已督促物业维修电梯并恢复运行。")
    # time passes: the reply clock of another order warns and runs out (here: this one's revisit)
    time_machine.fire_clocks_at(datetime.now(UTC) + timedelta(days=60))

    page = staff_page("dispatcher")
    page.goto(f"/staff/tickets/{t['id']}")
    history = page.locator("#events").inner_text()
    assert f"市民补充：{text}" in history
    assert "办理结果：已督促物业维修电梯并恢复运行。" in history
    for raw in ("deadline_warning", "deadline_overdue", "triage_review", "（主办）\n"):
        assert raw not in history, raw
    assert "待人工派单（分类建议）" in history
    screenshot(page, "console-history")


def test_history_names_warning_and_overdue_steps(
    web_server: WebServer, staff_page: Any, time_machine: TimeMachine
) -> None:
    t = reviewed_and_dispatched(web_server, "赛罕区某街道路灯成片不亮")
    time_machine.fire_clocks_at(datetime.now(UTC) + timedelta(days=60))
    page = staff_page("supervisor")
    page.goto(f"/staff/tickets/{t['id']}")
    history = page.locator("#events").inner_text()
    assert "时限预警" in history or "超期" in history
    assert re.search(r"签收时限已超期", history)
    assert re.search(r"办结时限已超期", history)


# -- 7. a conflict is shown, then confirmed, never overridden unseen ------------------------------
def test_conflict_shows_what_changed_and_needs_confirmation(
    web_server: WebServer, staff_page: Any
) -> None:
    dispatcher = staff(web_server, "dispatcher")
    number = submit(web_server, "某小区门口占道经营，影响通行")["number"]
    t = wait_for_review(dispatcher, number)

    mine = staff_page("dispatcher")
    mine.goto(f"/staff/tickets/{t['id']}")
    # a colleague changes the summary meanwhile
    act(staff(web_server, "supervisor"), t, "edit", summary="占道经营（班长已核实：早市摊位）")

    expect_console_error(mine, "status of 409")  # the conflict page answers 409, as it should
    mine.select_option("#dispatch-lead", "150100-urban")
    mine.locator("#act-dispatch button[type=submit]").click()
    assert "已被他人修改" in mine.locator("#form-error").inner_text()
    assert "班长已核实" in mine.locator("#changes").inner_text()
    screenshot(mine, "console-conflict")
    # one more click does not override: the confirmation is required
    mine.locator("#act-dispatch button[type=submit]").click()
    assert mine.locator("#status-label").inner_text() == "已受理"
    assert ticket_by_number(dispatcher, number)["status"] == "new"
    mine.check("#act-dispatch input[name=confirm]")
    mine.locator("#act-dispatch button[type=submit]").click()
    mine.wait_for_url(re.compile(r".*done=dispatch"))
    assert mine.locator("#status-label").inner_text() == "已派单"


# -- 8. a reopened order: staff are told, the new period is kept by page and clocks ---------------
def test_reopened_order_says_redispatch_and_keeps_a_new_period(
    web_server: WebServer, staff_page: Any
) -> None:
    t = reviewed_and_dispatched(web_server, "投诉某物业公司乱收停车费", kind="complaint")
    housing = staff(web_server, "housing")
    supervisor = staff(web_server, "supervisor")
    t = act(housing, ticket_by_number(housing, t["number"]), "sign")
    until = (datetime.now(UTC) + timedelta(days=60)).replace(microsecond=0)
    t = act(housing, t, "request_extension", until=until.isoformat(), reason="需联合执法")
    t = act(supervisor, ticket_by_number(supervisor, t["number"]), "approve_extension")
    t = act(housing, ticket_by_number(housing, t["number"]), "reply", text="已责令退还多收费用。")
    t = act(supervisor, ticket_by_number(supervisor, t["number"]), "approve")
    t = act(supervisor, t, "revisit", satisfaction="unsatisfied", note="仍未退费")
    assert t["status"] == "reopened"
    granted = datetime.fromisoformat(t["reply_due"])
    assert granted == until  # the approved extension is not taken back by the reopening

    page = staff_page("dispatcher")
    page.goto("/staff/tickets?view=redispatch")
    r = row(page, t["number"])
    assert r.locator(".mark-needs_dispatch").inner_text() == "待重新派单"
    r.locator("a").click()
    assert "需要重新派单" in page.locator("#situation").inner_text()
    shown_due = page.locator("#reply-due").inner_text()
    assert shown_due == until.astimezone(TZ).strftime("%Y-%m-%d %H:%M")
    screenshot(page, "console-reopened")

    page.select_option("#dispatch-lead", "150100-housing")
    page.locator("#act-dispatch button[type=submit]").click()
    page.wait_for_url(re.compile(r".*done=dispatch"))
    assert page.locator("#reply-due").inner_text() == shown_due
    t = ticket_by_number(supervisor, t["number"])
    _, clocks = supervisor.get(f"/tickets/{t['id']}/clocks")
    live_reply = [c for c in clocks["items"] if c["kind"] == "reply" and c["state"] != "stopped"]
    assert [datetime.fromisoformat(c["due_at"]) for c in live_reply] == [until]


# -- 9, 10. marks on list rows, and one rule for "overdue" -----------------------------------------
def test_list_rows_mark_extension_emergency_and_clock_steps(
    web_server: WebServer, staff_page: Any, time_machine: TimeMachine
) -> None:
    housing = staff(web_server, "housing")
    asked = reviewed_and_dispatched(web_server, "某工地夜间施工噪音扰民")
    asked = act(housing, ticket_by_number(housing, asked["number"]), "sign")
    until = (datetime.now(UTC) + timedelta(days=40)).replace(microsecond=0)
    act(housing, asked, "request_extension", until=until.isoformat(), reason="需协调")
    urgent = reviewed_and_dispatched(
        web_server, "燃气管道泄漏，有明显气味", edit={"urgency": "emergency"}
    )
    unsigned = reviewed_and_dispatched(web_server, "某小区垃圾长期无人清运")
    # the sign-for limit (2 working hours) of the unsigned one runs out; time jumps a week
    time_machine.fire_clocks_at(datetime.now(UTC) + timedelta(days=7))

    page = staff_page("supervisor")
    page.goto("/staff/tickets?view=all")
    assert row(page, asked["number"]).locator(".mark-extension_pending").count() == 1
    assert row(page, urgent["number"]).locator(".mark-emergency").inner_text() == "特急"
    assert row(page, unsigned["number"]).locator(".mark-sign_overdue").inner_text() == "超时未签收"
    screenshot(page, "console-list-marks")

    page.goto("/staff/tickets?view=extension")
    assert row(page, asked["number"]).count() == 1


def test_returned_order_overdue_is_one_rule_for_page_api_and_clocks(
    web_server: WebServer, staff_page: Any, time_machine: TimeMachine
) -> None:
    t = reviewed_and_dispatched(web_server, "某小区绿化带被占用种菜")
    housing = staff(web_server, "housing")
    t = act(housing, ticket_by_number(housing, t["number"]), "return", reason="不属于住建职责")
    assert t["status"] == "returned"
    supervisor = staff(web_server, "supervisor")
    # far past the reply limit while the centre holds the order
    time_machine.fire_clocks_at(datetime.now(UTC) + timedelta(days=90))

    t = ticket_by_number(supervisor, t["number"])
    _, clocks = supervisor.get(f"/tickets/{t['id']}/clocks")
    overdue_clocks = [c for c in clocks["items"] if c["state"] == "overdue"]
    api_marks = {m["code"] for m in t["marks"]}
    page = staff_page("supervisor")
    page.goto("/staff/tickets?view=overdue")
    r = row(page, t["number"])
    page_marks = set(
        r.locator(".badge[class*=mark-]").evaluate_all(
            "bs => bs.map(b => [...b.classList].find(c => c.startsWith('mark-')).slice(5))"
        )
    )
    # the clocks, the API and the list agree: overdue (held by the centre), to re-dispatch
    assert any(c["kind"] == "reply" and c["assignment_id"] is None for c in overdue_clocks)
    assert {"reply_overdue", "needs_dispatch"} <= api_marks
    assert page_marks == api_marks


# -- the wallboard, and a department on a phone -------------------------------------------------
def test_wallboard_shows_the_centres_figures(web_server: WebServer, staff_page: Any) -> None:
    reviewed_and_dispatched(web_server, "某路口红绿灯故障")
    page = staff_page("supervisor")
    page.goto("/staff/wallboard")
    assert int(page.locator("#wb-received").inner_text()) >= 1
    assert page.locator("#wb-no-calls").count() == 1  # telephony is off in this server
    page.wait_for_selector("body[data-refreshed]", state="attached", timeout=20_000)
    # 在线人员: this page's own console, listed once its socket is open (refreshed every 5 s)
    me = page.locator('#wb-presence-rows tr[data-username="supervisor"]')
    me.wait_for(timeout=30_000)
    assert "话务大屏" in me.inner_text() and "班长" in me.inner_text()
    screenshot(page, "console-wallboard")
    dept = staff_page("housing")
    expect_console_error(dept, "status of 403")  # a department has no wallboard
    dept.goto("/staff/wallboard")
    assert "当前角色无权访问" in dept.locator("main").inner_text()


def test_department_signs_and_replies_on_a_phone(web_server: WebServer, staff_page: Any) -> None:
    t = reviewed_and_dispatched(web_server, "小区消防通道被占用")
    page = staff_page("housing", viewport=PHONE_VIEWPORT)
    assert "view=inbox" in page.url
    row(page, t["number"]).locator("a").click()
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE_VIEWPORT["width"] + 1, width  # no sideways scrolling
    page.locator("#act-sign button[type=submit]").click()
    page.wait_for_url(re.compile(r".*done=sign"))
    page.fill("#reply-text", "已清理消防通道并告知物业。")
    page.locator("#act-reply button[type=submit]").click()
    page.wait_for_url(re.compile(r".*done=reply"))
    assert page.locator("#status-label").inner_text() == "已反馈待审核"
    screenshot(page, "console-department-phone")


# -- administration ------------------------------------------------------------------------------
def test_admin_manages_accounts_in_the_browser(web_server: WebServer, staff_page: Any) -> None:
    page = staff_page("admin")
    page.click("text=账号管理")
    page.fill("#new-username", "zhang-wei")
    page.fill("#new-name", "张伟")
    page.select_option("#new-role", "agent")
    expect_console_error(page, "status of 422")  # the weak password first
    page.fill("#new-password", "12345678901")
    page.click("#create-user button[type=submit]")
    assert "太容易被猜到" in page.locator("#form-error").inner_text()
    page.fill("#new-password", "grassland-horse-77")
    page.click("#create-user button[type=submit]")
    page.wait_for_url(re.compile(r".*done=create"))
    assert StaffClient(web_server.server, "zhang-wei", "grassland-horse-77").csrf
    r = page.locator("tr[data-username='zhang-wei']")
    r.locator("button:has-text('停用')").click()
    page.wait_for_url(re.compile(r".*done=active"))
    status, _, _ = web_server.server.request(
        "POST", "/api/v1/session", {"username": "zhang-wei", "password": "grassland-horse-77"}
    )
    assert status == 401  # a deactivated account cannot log in
    screenshot(page, "console-admin-users")
    page.click("text=承办单位目录")
    assert page.locator("tr[data-code='150100-housing']").count() == 1
    screenshot(page, "console-admin-departments")
    other = staff_page("supervisor")
    expect_console_error(other, "status of 403")
    other.goto("/staff/admin/users")
    assert "当前角色无权访问" in other.locator("main").inner_text()


# -- XSS: what people type is shown as text everywhere ---------------------------------------
XSS = '<img src=x onerror="window.__xss=1">"><script>window.__xss=2</script>'


def test_free_text_renders_as_text_in_every_view(web_server: WebServer, new_page: Any) -> None:
    dispatcher = staff(web_server, "dispatcher")
    number = submit(
        web_server, "诉求" + XSS, name="张" + XSS[:20], address="路" + XSS, title="题" + XSS
    )["number"]
    t = wait_for_review(dispatcher, number)
    t = act(dispatcher, t, "edit", summary="汇总" + XSS)
    t = act(dispatcher, t, "dispatch", lead="150100-housing", note="说明" + XSS)
    housing = staff(web_server, "housing")
    t = act(housing, ticket_by_number(housing, number), "sign")
    t = act(housing, t, "reply", text="答复" + XSS)
    pages = {
        "dispatcher": ["/staff/tickets?view=all", f"/staff/tickets/{t['id']}"],
        "housing": ["/staff/tickets?view=all", f"/staff/tickets/{t['id']}"],
    }
    for username, paths in pages.items():
        page = login(new_page(), username)
        for path in paths:
            page.goto(path)
            assert page.evaluate("() => window.__xss") is None, (username, path)
            assert page.locator("img[src=x]").count() == 0, (username, path)
            assert '<img src=x onerror="window.__xss=1">' in page.locator("main").inner_text()
    citizen = new_page()
    citizen.goto(f"/track?number={number}")
    citizen.fill("input[name=phone]", PHONE)
    citizen.click("button[type=submit]")
    assert citizen.evaluate("() => window.__xss") is None
    assert citizen.locator("img[src=x]").count() == 0
