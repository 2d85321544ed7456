"""The citizen portal in Chromium: merged duplicates, the Mongolian portal on a phone, web fonts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from agent_ui import i18n
from tests.browser import *  # noqa: F403
from tests.browser import PHONE_VIEWPORT, WebServer, screenshot, start_web_server
from tests.conftest import PASSWORD

MN = i18n.MN
MAIN_PHONE = "13900001111"
DUP_PHONE = "13900002222"
MN_PHONE = "13900003333"
FONT_FILES = "/static/vendor/fonts/noto-sans-mongolian/files/"


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """This module's server, triage off: staff act on orders by hand, no auto-dispatch races."""
    ws = start_web_server(
        tmp_path_factory.mktemp("web-citizen"), {"HOTLINE__TRIAGE__ENABLED": "false"}
    )
    try:
        yield ws
    finally:
        ws.server.kill()


class StaffApi:
    """A staff member using the JSON API from a browser context (its cookie jar)."""

    def __init__(self, page: Any, username: str) -> None:
        self.request = page.request
        resp = self.request.post(
            "/api/v1/session", data={"username": username, "password": PASSWORD}
        )
        assert resp.status == 200, resp.text()
        self.csrf = resp.json()["user"]["csrf_token"]

    def ticket(self, number: str) -> dict[str, Any]:
        resp = self.request.get(f"/api/v1/tickets/by-number/{number}")
        assert resp.status == 200, resp.text()
        return dict(resp.json())

    def act(self, number: str, action: str, **body: Any) -> dict[str, Any]:
        t = self.ticket(number)
        resp = self.request.post(
            f"/api/v1/tickets/{t['id']}/{action}",
            data={"version": t["version"], **body},
            headers={"X-CSRF-Token": self.csrf},
        )
        assert resp.status == 200, resp.text()
        return dict(resp.json())


def submit_by_api(page: Any, **body: Any) -> str:
    resp = page.request.post("/api/v1/requests", data=body)
    assert resp.status == 201, resp.text()
    return str(resp.json()["number"])


def track(page: Any, number: str, phone: str, lang: str = i18n.ZH) -> None:
    """Open the tracking form as a citizen would and look the order up."""
    page.goto(f"/track?number={number}&lang={lang}")
    page.fill("#phone", phone)
    page.locator("form.citizen-form button[type=submit]").click()
    page.wait_for_selector("#status-label")


# -- 11: a merged duplicate shows its main order -----------------------------------------------
def test_citizen_merged_duplicate_shows_the_main_orders_status_and_answer(new_page: Any) -> None:
    staff = StaffApi(new_page(), "dispatcher")
    citizen = new_page()
    main = submit_by_api(
        citizen, content="幸福小区3号楼门前路灯不亮", phone=MAIN_PHONE, name="李四海"
    )
    dup = submit_by_api(citizen, content="幸福小区路灯坏了一周", phone=DUP_PHONE)
    staff.act(dup, "merge", master=main)

    track(citizen, dup, DUP_PHONE)
    assert citizen.locator("#status-label").inner_text() == "已合并"
    assert citizen.locator("#merged-number").inner_text() == main
    assert citizen.locator("#main-status-label").inner_text() == "已受理"
    assert citizen.locator("#main-answer").inner_text() == i18n.text("answer_pending", i18n.ZH)
    html = citizen.content()
    assert MAIN_PHONE not in html and "李四海" not in html  # the main caller stays private
    assert citizen.locator("#rate-form").count() == 0
    screenshot(citizen, "citizen-merged-before-answer")

    answer = "已安排维修人员更换3号楼门前路灯，现已恢复照明。"
    staff.act(main, "answer", text=answer)
    track(citizen, dup, DUP_PHONE)
    assert citizen.locator("#main-status-label").inner_text() == "已直接答复"
    assert citizen.locator("#main-answer").inner_text() == answer
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d", citizen.locator("#main-answered").inner_text()
    )
    # rating is the main order's caller's: the duplicate's citizen is told so, not offered a form
    assert citizen.locator("#rate-form").count() == 0
    assert citizen.locator("#merged-rating").inner_text() == i18n.text("merged_rating", i18n.ZH)
    screenshot(citizen, "citizen-merged-answered")

    track(citizen, dup, DUP_PHONE, lang=MN)
    assert citizen.locator("#main-status-label").inner_text() == i18n.text("status_answered", MN)
    assert citizen.locator("#main-answer").inner_text() == answer
    assert citizen.locator("#merged-number").inner_text() == main
    # Chinese reads across on Mongolian pages; Mongolian runs down
    across = "e => getComputedStyle(e).writingMode"
    assert citizen.locator("#main-answer").evaluate(across) == "horizontal-tb"
    assert citizen.locator("#merged-title").evaluate(across) == "vertical-lr"
    assert MAIN_PHONE not in citizen.content()
    screenshot(citizen, "citizen-merged-answered-mn")

    resp = citizen.request.get(f"/api/v1/requests/{dup}?phone={DUP_PHONE}")
    body = resp.json()
    assert body["number"] == dup and body["status"] == "merged" and body["answer"] is None
    assert body["can_rate"] is False
    assert body["merged_into"] == {
        "number": main,
        "status": "answered",
        "status_label": "已直接答复",
        "department_name": None,
        "answer": answer,
        "answered_at": body["merged_into"]["answered_at"],
    }
    assert body["merged_into"]["answered_at"].endswith("+08:00")
    rated = citizen.request.post(
        f"/api/v1/requests/{dup}/rating", data={"phone": DUP_PHONE, "satisfaction": "satisfied"}
    )
    assert rated.status == 409
    # the main order's own caller still sees and rates it as before
    own = citizen.request.get(f"/api/v1/requests/{main}?phone={MAIN_PHONE}").json()
    assert own["merged_into"] is None and own["answer"] == answer and own["can_rate"] is True


# -- 12: the Mongolian portal on a phone -------------------------------------------------------
# Where each element's box is, after the page is scrolled to its left edge; elements inside a
# box that scrolls sideways by itself (a long answer) are that box's business, not the page's.
LAYOUT_JS = """() => {
  window.scrollTo(0, 0);
  const vw = window.innerWidth, vh = window.innerHeight, out = [];
  const scroller = (el) => {
    for (let a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (["auto", "scroll", "hidden"].includes(s.overflowX)) return true;
    }
    return false;
  };
  for (const el of document.querySelectorAll("body *")) {
    const s = getComputedStyle(el), r = el.getBoundingClientRect();
    if (s.display === "none" || s.visibility === "hidden" || !r.width || !r.height) continue;
    if (el.classList.contains("skip") || scroller(el)) continue;
    out.push({tag: el.tagName.toLowerCase(), id: el.id, cls: String(el.className),
              text: (el.innerText || "").slice(0, 20), x: r.left, right: r.right,
              w: r.width, h: r.height, mode: s.writingMode});
  }
  return {vw, vh, scrollWidth: document.documentElement.scrollWidth, boxes: out};
}"""


def assert_fits_a_phone(page: Any, name: str) -> None:
    """The page scrolls down, not sideways; no box is wider than the screen; no line of
    vertical text is taller than the screen; screenshot as an artifact."""
    screenshot(page, name)
    layout = page.evaluate(LAYOUT_JS)
    vw, vh = layout["vw"], layout["vh"]
    assert layout["scrollWidth"] <= vw, f"{name}: page is {layout['scrollWidth']} px wide"
    for box in layout["boxes"]:
        where = f"{name}: {box}"
        assert box["right"] <= vw + 1 and box["w"] <= vw, "wider than the screen: " + where
        if box["mode"].startswith("vertical") and box["tag"] not in ("main", "form", "body"):
            assert box["h"] <= 0.8 * vh, "vertical text taller than the screen: " + where


def assert_control_usable(page: Any, selector: str, upright: bool = False) -> None:
    """A control a thumb can reach without sideways scrolling, of a sensible size; Mongolian
    typed into it is upright (vertical) when `upright`."""
    el = page.locator(selector)
    el.scroll_into_view_if_needed()
    box = el.bounding_box()
    vw, vh = PHONE_VIEWPORT["width"], PHONE_VIEWPORT["height"]
    assert box is not None, selector
    assert box["x"] >= 0 and box["x"] + box["width"] <= vw, (selector, box)
    assert box["y"] >= 0 and box["y"] + box["height"] <= vh, (selector, box)
    assert box["width"] >= 24 and box["height"] >= 24, (selector, box)  # a tap target
    assert box["width"] * box["height"] <= 0.4 * vw * vh, (selector, box)  # not a whole screen
    if upright:
        assert el.evaluate("e => getComputedStyle(e).writingMode") == "vertical-lr", selector


def test_citizen_mongolian_portal_fills_tracks_and_rates_on_a_phone(new_page: Any) -> None:
    page = new_page(viewport=PHONE_VIEWPORT)
    page.goto(f"/?lang={MN}")
    assert_fits_a_phone(page, "mn-phone-1-portal")
    assert_control_usable(page, "#content", upright=True)
    page.fill("#content", "ᠬᠠᠯᠠᠭᠤᠨ ᠤᠰᠤ ᠭᠤᠷᠪᠠᠨ ᠡᠳᠦᠷ ᠪᠠᠶᠢᠬᠤ ᠦᠭᠡᠢ")
    assert_control_usable(page, "#phone")
    page.fill("#phone", MN_PHONE)
    assert_control_usable(page, "#name", upright=True)
    page.fill("#name", "ᠪᠠᠲᠤ")
    assert_control_usable(page, "#region")
    page.select_option("#region", "150102")
    assert_control_usable(page, "#address", upright=True)
    page.fill("#address", "ᠬᠥᠬᠡᠬᠣᠲᠠ")
    assert_control_usable(page, "#kind-help")
    page.locator("#kind-help").check()
    assert_control_usable(page, "#confidential")
    submit = "form.citizen-form button[type=submit]"
    assert_control_usable(page, submit)
    assert_fits_a_phone(page, "mn-phone-2-filled")
    page.locator(submit).click()

    number = page.locator("#ticket-number").inner_text()
    assert re.fullmatch(r"\d{14}", number)
    assert_fits_a_phone(page, "mn-phone-3-submitted")
    assert_control_usable(page, "a.button")
    page.locator("a.button").click()
    assert_fits_a_phone(page, "mn-phone-4-track")
    assert_control_usable(page, "#phone")
    page.fill("#phone", MN_PHONE)
    assert_control_usable(page, submit)
    page.locator(submit).click()
    page.wait_for_selector("#status-label")
    assert_fits_a_phone(page, "mn-phone-5-status-pending")

    answer = "ᠤᠰᠤᠨ ᠤ ᠬᠣᠭᠣᠯᠠᠢ ᠵᠠᠰᠠᠪᠠ᠃ 已修复供水管道，恢复供水。"
    StaffApi(new_page(), "dispatcher").act(number, "answer", text=answer)
    track(page, number, MN_PHONE, lang=MN)
    assert_fits_a_phone(page, "mn-phone-6-status-answered")
    assert_control_usable(page, "#answer")
    assert page.locator("#answer").inner_text() == answer
    assert_control_usable(page, "#rate-form fieldset >> nth=0")  # 满意度
    assert_control_usable(page, "#rate-form fieldset >> nth=1")  # 问题是否已解决
    assert_control_usable(page, "#resolved-yes")
    assert_control_usable(page, "#sat-basic")
    page.locator("#sat-basic").check()
    assert_control_usable(page, "#note", upright=True)
    page.fill("#note", "ᠪᠠᠶᠠᠷᠯᠠᠯ᠎ᠠ")
    rate = "#rate-form button[type=submit]"
    assert_control_usable(page, rate)
    page.locator(rate).click()
    page.wait_for_selector(".notice")
    assert page.locator(".notice").inner_text() == i18n.text("rated_thanks", MN)
    assert page.locator("#satisfaction").inner_text() == i18n.text("sat_basic", MN)
    assert_fits_a_phone(page, "mn-phone-7-rated")


# -- 13: a Mongolian web font from the npm package; Chinese from the system --------------------
def platform_fonts(page: Any, selector: str) -> list[dict[str, Any]]:
    """The fonts Chromium actually drew the element's text with (DevTools protocol)."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    assert node, selector
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return list(fonts)


def test_citizen_mongolian_is_drawn_with_the_served_web_font(new_page: Any) -> None:
    page = new_page()
    fetched: list[tuple[str, int]] = []
    page.on("response", lambda r: fetched.append((r.url, r.status)))
    page.goto(f"/?lang={MN}")
    page.evaluate("document.fonts.ready.then(() => true)")
    loaded = page.evaluate(
        """[...document.fonts].filter(f => f.family.replace(/["']/g, "") ===
        "Noto Sans Mongolian" && f.status === "loaded").length"""
    )
    assert loaded >= 1, "no Noto Sans Mongolian web font loaded"
    assert page.evaluate("""document.fonts.check('16px "Noto Sans Mongolian"', 'ᠮᠣᠩᠭᠣᠯ')""")
    woff2 = [(u, s) for u, s in fetched if FONT_FILES in u and u.endswith(".woff2")]
    assert woff2 and all(s == 200 for _, s in woff2), fetched
    used = platform_fonts(page, "main h1")
    assert {"Noto Sans Mongolian"} == {f["familyName"] for f in used if f["isCustomFont"]}, used
    assert all(f["isCustomFont"] for f in used if f["familyName"] == "Noto Sans Mongolian")

    # Chinese pages: Chinese from the system's fonts; the 蒙古文 switch link from the web font
    page.goto(f"/?lang={i18n.ZH}")
    page.evaluate("document.fonts.ready.then(() => true)")
    assert not any(f["isCustomFont"] for f in platform_fonts(page, "main h1"))
    family = page.evaluate("getComputedStyle(document.querySelector('main h1')).fontFamily")
    assert "Noto Sans CJK SC" in family and family.endswith("sans-serif")
    link = platform_fonts(page, f'.langs a[lang="{MN}"]')
    assert any(f["isCustomFont"] and f["familyName"] == "Noto Sans Mongolian" for f in link)
