"""Open311 GeoReport v2 through a client built from the specification (tests/open311_client.py):
discovery, services and their definition, filing with an API key, tracking, and what the
public may never read (confidential callers, 举报, an order's own text)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from hotline.config import Settings
from tests.conftest import make_settings
from tests.open311_client import GeoReportClient, Open311Failure, discover

KEY = "k-test-0123456789abcdef"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return make_settings(
        db_url,
        HOTLINE__OPEN311__API_KEYS=f'{{ test_app = "{KEY}" }}',
        HOTLINE__SERVER__PUBLIC_URL="{base}",
    )


@pytest.fixture
async def client(http_session: Callable[[], tuple[aiohttp.ClientSession, str]]) -> Any:
    session, base = http_session()
    endpoint = (await discover(session, base)).replace("{base}", base)
    return GeoReportClient(session, endpoint, "12345.nmg.gov.cn", KEY)


async def file(client: GeoReportClient, service_code: str = "complaint", **kw: Any) -> str:
    body = {
        "address_string": "呼和浩特市新城区海东路",
        "description": "小区门口路灯不亮已经一周",
        "phone": "13812345678",
        **kw,
    }
    created = await client.post_request(service_code, **body)
    return str(created["service_request_id"])


async def test_services_are_the_kinds_with_the_category_attribute(client: GeoReportClient) -> None:
    found = await client.services()
    assert [s["service_code"] for s in found] == [
        "consult", "help", "complaint", "report", "suggestion", "praise", "other",
    ]  # fmt: skip
    assert found[2]["service_name"] == "投诉"
    definition = await client.service_definition("complaint")
    (category,) = definition["attributes"]
    assert category["code"] == "category" and category["required"] is False
    assert {"key": "城乡建设", "name": "城乡建设"} in category["values"]
    with pytest.raises(Open311Failure) as err:
        await client.service_definition("potholes")
    assert err.value.status == 404


async def test_filing_needs_a_valid_key_a_service_a_location_and_a_description(
    client: GeoReportClient,
) -> None:
    cases: list[tuple[dict[str, Any], int]] = [
        ({"api_key": ""}, 403),
        ({"api_key": "k-wrong-0123456789abcdef"}, 403),
        ({"service_code": "potholes"}, 404),
        ({"address_string": None}, 400),
        ({"description": None}, 400),
        ({"phone": "12345"}, 400),
        ({"attributes": {"category": "不存在的分类"}}, 400),
        ({"address_string": None, "lat": 91.0, "long": 111.6}, 400),
    ]
    for overrides, status in cases:
        body: dict[str, Any] = {
            "address_string": "海东路",
            "description": "噪音扰民",
            "phone": "13812345678",
        }
        body |= overrides
        code = body.pop("service_code", "complaint")
        with pytest.raises(Open311Failure) as err:
            await client.post_request(code, **body)
        assert err.value.status == status, overrides
    other = GeoReportClient(client.session, client.endpoint, "other.example.org", KEY)
    with pytest.raises(Open311Failure) as err:
        await other.services()
    assert err.value.status == 404


async def test_filed_request_is_an_order_and_tracked_until_published(
    client: GeoReportClient, api: Any
) -> None:
    number = await file(
        client,
        service_code="complaint",
        lat=40.84,
        long=111.67,
        first_name="建国",
        last_name="张",
        attributes={"category": "城乡建设"},
    )
    assert len(number) == 14 and number.isdigit()
    dispatcher = await api("dispatcher")
    orders = await dispatcher.get("/tickets", channel="web")
    (order,) = [o for o in orders["items"] if o["number"] == number]
    assert (order["kind"], order["category"], order["caller"]["name"]) == (
        "complaint", ["城乡建设"], "张 建国",
    )  # fmt: skip
    assert {"n": 0, "type": "location", "lat": 40.84, "long": 111.67} in order["attachments"]

    tracked = await client.request(number)
    assert (tracked["status"], tracked["service_code"]) == ("open", "complaint")
    assert tracked["description"] is None and tracked["address"] is None  # never the order's own
    assert tracked["lat"] is None and tracked["long"] is None
    order = await dispatcher.act(order, "dispatch", lead="150100-housing")
    tracked = await client.request(number)
    assert tracked["agency_responsible"] == "呼和浩特市住房和城乡建设局"
    assert tracked["expected_datetime"] is not None
    listed = await client.requests(service_request_id=number)
    assert [r["service_request_id"] for r in listed] == [number]


async def test_lists_keep_out_confidential_callers_and_reports(
    client: GeoReportClient, api: Any
) -> None:
    shown = await file(client, service_code="help")
    hidden_report = await file(client, service_code="report")
    agent = await api("agent")
    confidential = await agent.post(
        "/tickets",
        {"content": "举报单位违规", "phone": "13812345678", "confidential": True, "kind": "help"},
        201,
    )
    listed = {r["service_request_id"] for r in await client.requests()}
    assert shown in listed
    assert hidden_report not in listed and confidential["number"] not in listed
    for number in (hidden_report, confidential["number"]):
        with pytest.raises(Open311Failure) as err:
            await client.request(number)
        assert err.value.status == 404
    helps = await client.requests(service_code="help", status="open")
    assert {r["service_request_id"] for r in helps} == {shown}
    assert await client.requests(status="closed") == []
    old = (datetime.now(UTC) - timedelta(days=200)).isoformat()
    with pytest.raises(Open311Failure) as err:
        await client.requests(start_date=old)
    assert err.value.status == 400
