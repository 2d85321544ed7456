"""The server-rendered pages, driven like a browser: forms parsed from the HTML and posted back."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from yarl import URL

from agent_ui import i18n
from agent_ui.pages import MONGOLIAN_FONT_CSS
from hotline.app import make_app
from hotline.db import open_database
from tests.conftest import PASSWORD, make_settings
from tickets.model import STATUS_LABELS, Kind, Status

PHONE = "13812345678"
SHANGHAI = ZoneInfo("Asia/Shanghai")


# -- a small browser ---------------------------------------------------------------------------
@dataclass
class Form:
    action: str
    method: str
    id: str
    fields: list[tuple[str, str]] = field(default_factory=list)
    options: dict[str, list[str]] = field(default_factory=dict)

    def names(self) -> set[str]:
        return {n for n, _ in self.fields}

    def value(self, name: str) -> str:
        return next(v for n, v in self.fields if n == name)

    def data(self, **values: Any) -> list[tuple[str, str]]:
        """The fields a browser would send, with `values` typed in (a list fills a multi-select)."""
        out = [(n, v) for n, v in self.fields if n not in values]
        for name, value in values.items():
            if value is None:
                continue
            for v in value if isinstance(value, list) else [value]:
                out.append((name, str(v)))
        return out


class FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: tuple[str, bool, list[str], list[str]] | None = None
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(a.get("action", ""), a.get("method", "get").lower(), a.get("id", ""))
            self.forms.append(self._form)
        elif self._form is None or ("name" not in a and tag != "option"):
            return
        elif tag == "input":
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self._form.fields.append((a["name"], a.get("value", "on")))
        elif tag == "textarea":
            self._textarea = (a["name"], [])
        elif tag == "select":
            self._select = (a["name"], "multiple" in a, [], [])
        elif tag == "option" and self._select is not None:
            self._select[2].append(a.get("value", ""))
            if "selected" in a:
                self._select[3].append(a.get("value", ""))

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "textarea" and self._textarea and self._form:
            self._form.fields.append((self._textarea[0], "".join(self._textarea[1])))
            self._textarea = None
        elif tag == "select" and self._select and self._form:
            name, multiple, options, chosen = self._select
            self._form.options[name] = options
            if not chosen and not multiple and options:
                chosen = options[:1]
            self._form.fields += [(name, v) for v in chosen]
            self._select = None


@dataclass
class Page:
    status: int
    url: URL
    text: str
    headers: Any

    @property
    def forms(self) -> list[Form]:
        parser = FormParser()
        parser.feed(self.text)
        return parser.forms

    def form(self, key: str) -> Form:
        """The form with this id, or else the POST form with this action."""
        found = [f for f in self.forms if f.id == key] or [
            f for f in self.forms if f.action == key and f.method == "post"
        ]
        assert found, f"no form {key!r} on {self.url}"
        return found[0]

    def element(self, element_id: str) -> str:
        m = re.search(rf'id="{element_id}"[^>]*>(.*?)</', self.text, re.S)
        assert m, f"no #{element_id} on {self.url}"
        return re.sub(r"<[^>]+>", "", m.group(1)).strip()


@dataclass
class Browser:
    session: aiohttp.ClientSession
    base: str

    async def _page(self, resp: aiohttp.ClientResponse, status: int | None) -> Page:
        page = Page(resp.status, resp.url, await resp.text(), resp.headers)
        if status is not None:
            assert resp.status == status, (resp.status, page.text[:2000])
        return page

    async def get(self, path: str, status: int | None = 200, follow: bool = True) -> Page:
        async with self.session.get(self.base + path, allow_redirects=follow) as resp:
            return await self._page(resp, status)

    async def post(
        self, path: str, data: Any, status: int | None = 200, follow: bool = True
    ) -> Page:
        async with self.session.post(self.base + path, data=data, allow_redirects=follow) as resp:
            return await self._page(resp, status)

    async def submit(
        self, page: Page, key: str, status: int | None = 200, follow: bool = True, **values: Any
    ) -> Page:
        form = page.form(key)
        return await self.post(form.action, form.data(**values), status, follow)

    async def login(self, username: str) -> Browser:
        page = await self.get("/staff/login")
        page = await self.submit(page, "/staff/login", username=username, password=PASSWORD)
        assert page.url.path == "/staff/tickets", page.text[:500]
        return self


@pytest.fixture
def browser(http_session: Callable[[], tuple[aiohttp.ClientSession, str]]) -> Any:
    """browser() → a citizen; browser("housing") → logged in on /staff/login as that user."""

    async def make(username: str | None = None) -> Browser:
        b = Browser(*http_session())
        return await b.login(username) if username else b

    return make


async def citizen_submits(citizen: Browser, **values: Any) -> str:
    page = await citizen.get("/")
    values = {"content": "小区供暖温度不达标，已持续一周", "phone": PHONE, **values}
    page = await citizen.submit(page, "/", **values)
    return page.element("ticket-number")


async def open_ticket(staff: Browser, number: str) -> Page:
    page = await staff.get(f"/staff/tickets/find?number={number}")
    assert re.fullmatch(r"/staff/tickets/\d+", page.url.path)
    return page


# -- the whole lifecycle through the forms -----------------------------------------------------
async def test_pages_lifecycle_walked_through_forms(browser: Any) -> None:
    citizen = await browser()
    page = await citizen.get("/")
    assert '<html lang="zh-Hans">' in page.text and "12345 政务服务便民热线" in page.text
    page = await citizen.submit(
        page,
        "/",
        content="小区供暖温度不达标，已持续一周",
        phone=PHONE,
        name="张女士",
        region="150102",
        kind="complaint",
    )
    number = page.element("ticket-number")
    assert re.fullmatch(r"\d{14}", number)

    dispatcher = await browser("dispatcher")
    listing = await dispatcher.get("/staff/tickets?channel=web&status=new")
    link = re.search(rf'href="(/staff/tickets/\d+)">{number}<', listing.text)
    assert link, listing.text
    page = await dispatcher.get(link.group(1))
    assert page.element("status-label") == "已受理"
    assert "150100-housing" in page.form("act-dispatch").options["lead"]  # the order's city
    page = await dispatcher.submit(
        page, "act-dispatch", lead="150100-housing", assists=["150100-urban"], note="请尽快处理"
    )
    assert page.url.path == link.group(1) and page.url.query["done"] == "dispatch"
    assert page.element("status-label") == "已派单"
    assert page.element("notice") == "操作成功：派单"

    housing = await browser("housing")
    assert number in (await housing.get("/staff/tickets")).text
    page = await housing.get(link.group(1))
    assert PHONE in page.element("caller")  # not confidential: the department sees the caller
    page = await housing.submit(page, "act-sign")
    assert page.element("status-label") == "办理中"
    page = await housing.submit(page, "act-reply", text="已协调供热公司整改，室温已达标。")
    assert page.element("status-label") == "已反馈待审核"

    page = await dispatcher.get(link.group(1))
    page = await dispatcher.submit(page, "act-approve")
    assert page.element("status-label") == "已审核待回访"

    page = await citizen.get(f"/track?number={number}")
    assert page.form("/track").value("number") == number
    page = await citizen.submit(page, "/track", phone=PHONE)
    assert page.element("status-label") == "已审核待回访"
    assert page.element("department") == "呼和浩特市住房和城乡建设局"
    assert page.element("answer") == "已协调供热公司整改，室温已达标。"
    page = await citizen.submit(page, "rate-form", satisfaction="satisfied", note="很及时")
    assert page.element("status-label") == "已回访"
    assert page.element("satisfaction") == "满意"
    assert "感谢您的评价" in page.text
    assert not any(f.id == "rate-form" for f in page.forms)

    page = await dispatcher.get(link.group(1))
    events = page.text[page.text.index('id="events"') :]
    for label in ("受理", "派单", "签收", "办结反馈", "审核通过", "回访"):
        assert f"<td>{label}</td>" in events
    assert "主办：呼和浩特市住房和城乡建设局；协办：呼和浩特市城市管理综合执法局" in events
    assert re.search(r"<td>\d{4}-\d\d-\d\d \d\d:\d\d</td>", events)  # local time, minutes


async def test_pages_every_action_form_carries_version_and_csrf(browser: Any) -> None:
    number = await citizen_submits(await browser())
    for user in ("dispatcher", "supervisor"):
        page = await open_ticket(await browser(user), number)
        forms = [
            f
            for f in page.forms
            if re.fullmatch(r"/staff/tickets/\d+/\w+", f.action)
            and not f.action.endswith("/attachments")  # adding a file needs no version
        ]
        assert {f.action.rsplit("/", 1)[1] for f in forms} >= {"dispatch", "answer", "edit"}
        for f in forms:
            assert f.method == "post"
            assert {"version", "csrf_token"} <= f.names(), f.action
            assert f.value("version") == "1" and f.value("csrf_token")


async def test_pages_extension_datetime_local_is_shanghai_time(browser: Any, api: Any) -> None:
    number = await citizen_submits(await browser(), region="150100")
    dispatcher = await browser("dispatcher")
    page = await open_ticket(dispatcher, number)
    await dispatcher.submit(page, "act-dispatch", lead="150100-housing")
    housing = await browser("housing")
    page = await open_ticket(housing, number)
    page = await housing.submit(page, "act-sign")
    day = (datetime.now(SHANGHAI) + timedelta(days=60)).strftime("%Y-%m-%d")
    page = await housing.submit(
        page, "act-request_extension", until=f"{day}T09:30", reason="需协调多个部门"
    )
    assert f"申请延期至 {day} 09:30" in page.text
    page = await dispatcher.get(page.url.path)
    page = await dispatcher.submit(page, "act-approve_extension", reason="同意")
    detail = await (await api("dispatcher")).get(page.url.path.replace("/staff", ""))
    assert detail["reply_due"] == f"{day}T09:30:00+08:00"
    assert f"{day} 09:30" in page.element("assignments") or f"{day} 09:30" in page.text


# -- citizens ----------------------------------------------------------------------------------
async def test_pages_mongolian_portal_is_vertical_and_remembered(browser: Any, api: Any) -> None:
    citizen = await browser()
    page = await citizen.get("/?lang=mn-Mong")
    assert '<html lang="mn-Mong">' in page.text
    assert i18n.text("submit_title", "mn-Mong") in page.text
    assert 'href="/static/site.css"' in page.text
    assert "hotline_lang=mn-Mong" in page.headers.get("Set-Cookie", "")
    page = await citizen.get("/")  # the cookie remembers the choice
    assert '<html lang="mn-Mong">' in page.text
    assert page.form("/").value("lang") == "mn-Mong"

    css = (await citizen.get("/static/site.css")).text
    rule = re.search(r'html\[lang="mn-Mong"\] :where\(main h1,[^{]*\{([^}]*)\}', css)
    assert rule, "no vertical-writing rule for Mongolian text"
    assert "writing-mode: vertical-lr" in rule.group(1)
    assert "text-orientation: mixed" in rule.group(1)
    assert '"Noto Sans Mongolian", "Mongolian Baiti", "Menksoft Qagan"' in css
    assert f'href="{MONGOLIAN_FONT_CSS}"' in page.text  # the web font, from npm

    page = await citizen.submit(page, "/", status=422, content="")  # the error in Mongolian
    assert page.status == 422 and page.element("form-error") == i18n.text("err_content", "mn-Mong")
    number = await citizen_submits(citizen, content="ᠬᠠᠯᠠᠭᠤᠨ ᠤᠰᠤ ᠪᠠᠶᠢᠬᠤ ᠦᠭᠡᠢ")
    found = await (await api("dispatcher")).get("/tickets/by-number/" + number)
    assert found["language"] == "mn-Mong"

    page = await citizen.get("/?lang=zh-Hans")
    assert '<html lang="zh-Hans">' in page.text


async def test_pages_without_the_npm_packages_pages_work_without_the_web_font(
    sqlite_url: str, tmp_path: Path, aiohttp_client: Any
) -> None:
    settings = make_settings(sqlite_url, HOTLINE__SERVER__ASSETS_DIR=str(tmp_path / "absent"))
    db = open_database(settings)
    try:
        client = await aiohttp_client(make_app(settings, db))
        resp = await client.get("/?lang=mn-Mong")
        assert resp.status == 200
        page = await resp.text()
        assert i18n.text("submit_title", "mn-Mong") in page
        assert "/static/vendor/" not in page  # no link the browser would report as a 404
        assert (await client.get(MONGOLIAN_FONT_CSS)).status == 404
    finally:
        db.close()


async def test_pages_citizen_errors_keep_the_form_values(browser: Any) -> None:
    citizen = await browser()
    page = await citizen.get("/")
    page = await citizen.submit(
        page, "/", status=422, content="   ", phone=PHONE, name="王先生", region="150203"
    )
    assert page.element("form-error") == "诉求内容不能为空"
    form = page.form("/")
    assert (form.value("phone"), form.value("name"), form.value("region")) == (
        PHONE,
        "王先生",
        "150203",
    )
    page = await citizen.submit(page, "/", status=422, content="路灯不亮", phone="12345")
    assert "电话号码格式不正确" in page.element("form-error")
    assert page.form("/").value("content") == "路灯不亮"
    page = await citizen.submit(page, "/", status=422, content="匿名", phone="", confidential="1")
    assert page.element("form-error") == "保密诉求须留联系电话以便回复"

    page = await citizen.get("/track")
    page = await citizen.submit(page, "/track", status=404, number="20260101000001", phone=PHONE)
    assert page.element("form-error") == "未找到与该号码和电话匹配的工单"
    assert page.form("/track").value("number") == "20260101000001"


async def test_pages_citizen_cannot_rate_before_the_answer(browser: Any) -> None:
    citizen = await browser()
    number = await citizen_submits(citizen)
    page = await citizen.post("/track", {"number": number, "phone": PHONE})
    assert page.element("status-label") == "已受理"
    assert page.element("department") == "尚未派单"
    assert not any(f.id == "rate-form" for f in page.forms)
    data = {"number": number, "phone": PHONE, "satisfaction": "satisfied"}
    page = await citizen.post("/track/rate", data, status=409)
    assert page.element("form-error") == i18n.text("err_cannot_rate", "zh-Hans")


async def test_pages_merged_duplicate_follows_later_merges_of_its_main_order(
    browser: Any, api: Any
) -> None:
    citizen = await browser()
    dup = await citizen_submits(citizen, phone="13900001234")
    middle = await citizen_submits(citizen, phone="13900005678", name="赵六")
    main = await citizen_submits(citizen, phone="13900009999", name="钱七")
    agent = await api("agent")
    for duplicate, into in ((dup, middle), (middle, main)):
        await agent.act(await agent.get("/tickets/by-number/" + duplicate), "merge", master=into)

    view = await (await api()).get(f"/requests/{dup}", phone="13900001234")
    assert (view["status"], view["merged_into"]["number"]) == ("merged", main)
    assert view["merged_into"]["status"] == "new" and view["merged_into"]["answer"] is None
    page = await citizen.post("/track", {"number": dup, "phone": "13900001234"})
    assert page.element("merged-number") == main
    assert page.element("main-status-label") == "已受理"
    for private in ("赵六", "钱七", "13900005678", "13900009999"):
        assert private not in page.text
    data = {"number": dup, "phone": "13900001234", "satisfaction": "satisfied"}
    page = await citizen.post("/track/rate", data, status=409)
    assert page.element("form-error") == i18n.text("err_cannot_rate", "zh-Hans")
    assert page.element("merged-number") == main


# -- staff: security ---------------------------------------------------------------------------
async def test_pages_staff_pages_redirect_to_login_when_logged_out(browser: Any) -> None:
    anon = await browser()
    page = await anon.get("/staff/tickets", status=303, follow=False)
    assert page.headers["Location"] == "/staff/login?next=%2Fstaff%2Ftickets"
    page = await anon.get("/staff/tickets/1", status=303, follow=False)
    assert page.headers["Location"].startswith("/staff/login?next=")
    page = await anon.post("/staff/tickets/1/sign", {"version": "1"}, status=303, follow=False)
    assert page.headers["Location"].startswith("/staff/login")
    page = await anon.get("/staff/tickets")  # followed: the login form, and back after login
    assert page.url.path == "/staff/login" and page.form("/staff/login").value("next")
    page = await anon.submit(page, "/staff/login", username="agent", password=PASSWORD)
    assert page.url.path == "/staff/tickets"


async def test_pages_login_errors_and_throttling_in_chinese(browser: Any) -> None:
    anon = await browser()
    page = await anon.get("/staff/login")
    for _ in range(5):
        page = await anon.submit(
            page, "/staff/login", status=401, username="agent", password="wrong-password"
        )
        assert page.element("form-error") == "用户名或密码错误"
        assert page.form("/staff/login").value("username") == "agent"
    page = await anon.submit(page, "/staff/login", status=429, username="agent", password=PASSWORD)
    assert page.element("form-error") == "登录失败次数过多，请稍后再试"
    assert int(page.headers["Retry-After"]) > 0


async def test_pages_post_without_or_with_wrong_csrf_is_403_and_changes_nothing(
    browser: Any,
) -> None:
    number = await citizen_submits(await browser())
    dispatcher = await browser("dispatcher")
    page = await open_ticket(dispatcher, number)
    form = page.form("act-dispatch")
    good = form.data(lead="150100-housing")
    for token in (None, "forged-token"):
        data = [(n, v) for n, v in good if n != "csrf_token"]
        if token:
            data.append(("csrf_token", token))
        bad = await dispatcher.post(form.action, data, status=403)
        assert "CSRF" in bad.element("form-error")
    page = await dispatcher.get(page.url.path)
    assert page.element("status-label") == "已受理" and "尚未派单" in page.text
    logout = page.form("/staff/logout")
    await dispatcher.post("/staff/logout", [], status=403)
    page = await dispatcher.post("/staff/logout", logout.data())
    assert page.url.path == "/staff/login" and "您已退出登录" in page.text
    await dispatcher.get("/staff/tickets", status=303, follow=False)


async def test_pages_stale_version_is_409_on_the_page_and_shows_what_changed(browser: Any) -> None:
    """After a 409 the form keeps the version the person saw: one more click must not override
    the colleague's change unseen; they confirm against the new state."""
    number = await citizen_submits(await browser())
    dispatcher = await browser("dispatcher")
    stale = await open_ticket(dispatcher, number)
    page = await dispatcher.submit(stale, "act-edit", summary="供暖不达标（已核实）")
    assert page.element("summary") == "供暖不达标（已核实）"
    page = await dispatcher.submit(
        stale, "act-dispatch", status=409, lead="150100-housing", note="旧页面上的派单"
    )
    assert "已被他人修改" in page.element("form-error")
    changes = page.text.split('id="changes"', 1)[1].split("</section>", 1)[0]
    assert "供暖不达标（已核实）" in changes  # what the colleague changed
    assert page.element("status-label") == "已受理"
    form = page.form("act-dispatch")
    assert form.value("version") == "1"  # still the version the person saw
    assert form.value("confirm_version") == "2"
    assert form.value("note") == "旧页面上的派单"  # what was typed is kept
    # the same click again, without confirming: still refused, nothing overridden
    again = await dispatcher.submit(page, "act-dispatch", status=409, lead="150100-housing")
    assert again.element("status-label") == "已受理"
    # confirmed against the new state: done
    done = await dispatcher.submit(page, "act-dispatch", lead="150100-housing", confirm="1")
    assert done.element("status-label") == "已派单"


async def test_pages_department_sees_only_its_own_orders(browser: Any) -> None:
    number = await citizen_submits(await browser(), confidential="1")
    dispatcher = await browser("dispatcher")
    page = await open_ticket(dispatcher, number)
    # a confidential caller is masked for the centre too, until revealed with a reason
    assert PHONE not in page.text and "138****5678" in page.element("caller")
    shown = await dispatcher.submit(page, "reveal-form", reason="回拨市民核实诉求")
    assert PHONE in shown.element("caller") and "本次查看已记录" in shown.text
    refused = await dispatcher.submit(page, "reveal-form", status=422, reason=" ")
    assert PHONE not in refused.text
    page = await dispatcher.submit(page, "act-dispatch", lead="150100-housing")
    path = page.url.path

    housing = await browser("housing")
    page = await housing.get(path)
    assert PHONE not in page.text and "保密工单" in page.element("caller")
    assert {f.id for f in page.forms} >= {"act-sign", "act-return", "act-forward"}
    forward = page.form("act-forward").options["department"]
    assert "150102-housing" in forward and "150200-ecology" not in forward

    ecology = await browser("ecology")
    page = await ecology.get(path, status=404)  # reads as an order that does not exist
    assert page.element("form-error") == "工单不存在"
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    await ecology.post(path + "/sign", {"version": "2", "csrf_token": csrf.group(1)}, status=404)
    assert number not in (await ecology.get("/staff/tickets")).text
    assert number in (await housing.get("/staff/tickets")).text
    await ecology.get("/staff/tickets/new", status=403)


async def test_pages_agent_registers_a_phone_order(browser: Any) -> None:
    agent = await browser("agent")
    page = await agent.get("/staff/tickets/new")
    page = await agent.submit(page, "/staff/tickets/new", status=422, content="", phone=PHONE)
    assert page.element("form-error") == "请填写诉求内容"
    assert page.form("/staff/tickets/new").value("phone") == PHONE
    page = await agent.submit(
        page,
        "/staff/tickets/new",
        content="来电反映道路积水<script>alert(1)</script>",
        summary="道路积水",
        kind="help",
        urgency="urgent",
        region="150105",
        category="市政, 排水",
    )
    assert re.fullmatch(r"/staff/tickets/\d+", page.url.path)
    assert page.element("notice") == "工单已登记"
    assert page.element("status-label") == "已受理"
    assert "市政、排水" in page.text and "紧急" in page.text
    assert "<script>alert" not in page.text and "&lt;script&gt;alert(1)" in page.text
    listing = await agent.get("/staff/tickets?channel=phone&kind=help")
    assert "道路积水" in listing.text
    await agent.get("/staff/tickets?status=bogus", status=422)


# -- the catalog -------------------------------------------------------------------------------
def test_i18n_catalog_is_complete_and_mongolian_is_traditional_script() -> None:
    allowed = re.compile(r"^[\u1800-\u18AF\u202F 0-9()·!:]+$")
    for key, entry in i18n.CATALOG.items():
        assert set(entry) == set(i18n.LANGS), key
        assert allowed.match(entry["mn-Mong"]), key
        assert re.search(r"[\u1820-\u1842]", entry["mn-Mong"]), key
    for status in Status:
        assert i18n.text(f"status_{status.value}", "zh-Hans") == STATUS_LABELS[status]
    for kind in Kind:
        assert i18n.text(f"kind_{kind.value}", "mn-Mong")
    assert i18n.normalize_lang("MN-mong") == "mn-Mong" and i18n.normalize_lang("en") is None


async def test_pages_sms_outbox_shows_the_acknowledgement_nothing_sent(browser: Any) -> None:
    """Embedded default (sms.backend = outbox): notices are kept and shown, never sent."""
    number = await citizen_submits(await browser())
    agent = await browser("agent")
    for _ in range(600):  # the notifier runs after the intake commit (bound, not a speed)
        page = await agent.get("/staff/sms")
        if number in page.text:
            break
        await asyncio.sleep(0.05)
    assert number in page.text
    assert "受理回执" in page.text and "仅记录（未接短信网关）" in page.text
    assert "未接入短信网关" in page.text
    housing = await browser("housing")
    await housing.get("/staff/sms", status=403)
