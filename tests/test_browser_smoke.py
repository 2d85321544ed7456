"""The browser harness itself: Chromium reaches a real server, logs in, and fails on errors."""

from __future__ import annotations

from typing import Any

from tests.browser import *  # noqa: F403


def test_staff_login_in_chromium_lands_on_the_list(staff_page: Any) -> None:
    page = staff_page("dispatcher")
    assert page.locator("h1").inner_text() == "待人工派单"  # the dispatcher's own queue
    screenshot(page, "smoke-staff-list")  # noqa: F405


def test_citizen_portal_submits_in_chromium(page: Any) -> None:
    page.goto("/")
    page.fill("textarea[name=content]", "小区路灯不亮已经一周")
    page.fill("input[name=phone]", "13812345678")
    page.click("button[type=submit]")
    assert page.locator(".number").first.inner_text().isdigit()


def test_vendor_assets_from_npm_are_served(page: Any) -> None:
    for path in (
        "/static/vendor/echarts/echarts.min.js",
        "/static/vendor/fonts/noto-sans-mongolian/mongolian-400.css",
    ):
        resp = page.request.get(path)
        assert resp.status == 200, path
