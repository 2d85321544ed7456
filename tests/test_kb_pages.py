"""The knowledge-base pages in Chromium: a department writes a guide, the centre publishes it,
a Mongolian version follows; citizens find both on the portal (vertical Mongolian, on a phone
too); the agent's order form suggests the guide as the request is typed."""

from __future__ import annotations

import re
from typing import Any

from tests.browser import *  # noqa: F403

FIELDS = {
    "f_item_name": "住房公积金提取",
    "f_item_code": "11150100MB1234567X4000117001",
    "f_authority": "呼和浩特市住房公积金管理中心",
    "f_materials": "身份证、银行卡、购房合同",
    "f_time_limit": "3个工作日",
}


def _publish(page: Any) -> None:
    page.click("form[action$='/publish'] button")
    page.wait_for_url(re.compile(r".*done=publish"))
    assert page.locator("#kb-status").inner_text() == "已发布"


def test_kb_guide_written_reviewed_published_and_read_in_both_languages(
    staff_page: Any, new_page: Any
) -> None:
    housing = staff_page("housing")
    housing.goto("/staff/kb/new?kind=guide")
    for name, value in FIELDS.items():
        housing.fill(f"#{name}", value)
    housing.click("form.kb-form button[type=submit]")
    housing.wait_for_url(re.compile(r".*/staff/kb/\d+$"))
    guide_url = housing.url
    housing.click("form[action$='/submit'] button")
    housing.wait_for_url(re.compile(r".*done=submit"))
    screenshot(housing, "kb-guide-submitted")  # noqa: F405

    centre = staff_page("dispatcher")
    centre.goto("/staff/kb?status=review")
    centre.click("text=住房公积金提取")
    _publish(centre)
    centre.click("text=添加蒙古文版本")
    centre.fill("#title", "ᠣᠷᠣᠨ ᠰᠠᠭᠤᠴᠠ ᠶᠢᠨ ᠨᠢᠭᠡᠳᠦᠯ ᠰᠠᠩ")
    centre.fill("#f_item_name", "ᠣᠷᠣᠨ ᠰᠠᠭᠤᠴᠠ ᠶᠢᠨ ᠨᠢᠭᠡᠳᠦᠯ ᠰᠠᠩ ᠠᠪᠬᠤ")
    centre.fill("#f_authority", "ᠬᠥᠬᠡᠬᠣᠲᠠ ᠶᠢᠨ ᠨᠢᠭᠡᠳᠦᠯ ᠰᠠᠩ ᠤᠨ ᠲᠥᠪ")
    centre.fill("#f_materials", "ᠪᠡᠶᠡ ᠶᠢᠨ ᠦᠨᠡᠮᠯᠡᠬᠦ")
    centre.click("form.kb-form button[type=submit]")
    centre.wait_for_url(re.compile(r".*/staff/kb/\d+$"))
    assert "11150100MB1234567X4000117001" in centre.content()  # the original's item code
    centre.click("form[action$='/submit'] button")
    centre.wait_for_url(re.compile(r".*done=submit"))
    _publish(centre)
    screenshot(centre, "kb-mongolian-published")  # noqa: F405

    citizen = new_page()
    citizen.goto("/guides?lang=zh-Hans")
    citizen.fill("#q", "公积金 提取材料")
    citizen.click("form.guide-search button")
    citizen.click("text=住房公积金提取")
    assert "身份证、银行卡、购房合同" in citizen.locator("dl.guide").inner_text()
    citizen.click(".guide-links a[hreflang='mn-Mong']")
    citizen.wait_for_url(re.compile(r".*lang=mn-Mong"))
    assert citizen.locator("html").get_attribute("lang") == "mn-Mong"
    # the Mongolian page's blocks run top to bottom (the phone-first layout of site.css)
    mode = citizen.evaluate("getComputedStyle(document.querySelector('main h1')).writingMode")
    assert mode == "vertical-lr"
    screenshot(citizen, "kb-guide-mongolian")  # noqa: F405
    citizen.click("nav a[hreflang='zh-Hans']")  # the switch shows the Chinese version
    assert citizen.locator("h1").inner_text() == "住房公积金提取"

    phone = new_page(viewport=PHONE_VIEWPORT)  # noqa: F405
    phone.goto("/guides?lang=mn-Mong")
    phone.click("ul.guide-list a")
    assert "ᠪᠡᠶᠡ ᠶᠢᠨ ᠦᠨᠡᠮᠯᠡᠬᠦ" in phone.locator("dl.guide").inner_text()
    width = phone.evaluate("document.documentElement.clientWidth")
    assert width <= PHONE_VIEWPORT["width"]  # noqa: F405
    screenshot(phone, "kb-guide-mongolian-phone")  # noqa: F405
    housing.goto(guide_url)
    assert "已发布第 1 版" in housing.content()


def test_kb_agent_form_suggests_and_order_search_page(staff_page: Any) -> None:
    agent = staff_page("agent")
    agent.goto("/staff/tickets/new")
    agent.fill("#content", "我想咨询一下住房公积金提取要带什么材料")
    agent.wait_for_selector("#kb-suggest a")  # the guide published by the test before
    assert "住房公积金提取" in agent.locator("#kb-suggest").inner_text()
    screenshot(agent, "kb-suggestions-order-form")  # noqa: F405
    agent.goto("/staff/search?q=公积金")
    assert agent.locator("h1").inner_text() == "工单检索"
