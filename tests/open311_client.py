"""A GeoReport v2 client written from the specification (http://wiki.open311.org/GeoReport_v2),
not from the server's code: the six calls, form-encoded POST, the JSON response shapes it
expects (every field the spec lists for each response), and the spec's error list."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp

# the fields each response object carries according to the specification
SERVICE_FIELDS = {
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
}
ATTRIBUTE_FIELDS = {
    "variable",
    "code",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
}
DATATYPES = {"string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"}
SERVICE_TYPES = {"realtime", "batch", "blackbox"}
REQUEST_FIELDS = {
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
}
POST_RESPONSE_FIELDS = {"service_notice", "account_id"}  # and service_request_id or token


class Open311Failure(Exception):
    """The server answered with the spec's error list."""

    def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
        super().__init__(f"{status}: {errors}")
        self.status = status
        self.errors = errors


@dataclass
class GeoReportClient:
    session: aiohttp.ClientSession
    endpoint: str  # e.g. https://host/open311/v2 (from discovery)
    jurisdiction_id: str | None = None
    api_key: str | None = None

    def _params(self, **extra: Any) -> dict[str, str]:
        out = {k: str(v) for k, v in extra.items() if v is not None}
        if self.jurisdiction_id:
            out["jurisdiction_id"] = self.jurisdiction_id
        return out

    async def _answer(self, resp: aiohttp.ClientResponse) -> Any:
        assert resp.content_type == "application/json", resp.content_type
        data = await resp.json()
        if resp.status >= 400:
            assert isinstance(data, list) and all({"code", "description"} <= set(e) for e in data)
            raise Open311Failure(resp.status, data)
        return data

    async def _get(self, path: str, **params: Any) -> Any:
        async with self.session.get(self.endpoint + path, params=self._params(**params)) as r:
            return await self._answer(r)

    async def services(self) -> list[dict[str, Any]]:
        found = await self._get("/services.json")
        for s in found:
            assert set(s) >= SERVICE_FIELDS, s
            assert s["type"] in SERVICE_TYPES and isinstance(s["metadata"], bool)
        return list(found)

    async def service_definition(self, code: str) -> dict[str, Any]:
        found = await self._get(f"/services/{code}.json")
        assert found["service_code"] == code
        for a in found["attributes"]:
            assert set(a) >= ATTRIBUTE_FIELDS, a
            assert a["datatype"] in DATATYPES
            if a["datatype"] in ("singlevaluelist", "multivaluelist"):
                assert all({"key", "name"} <= set(v) for v in a["values"])
        return dict(found)

    async def post_request(
        self,
        service_code: str,
        *,
        lat: float | None = None,
        long: float | None = None,
        address_string: str | None = None,
        description: str | None = None,
        first_name: str | None = None,
        last_name: str | None = None,
        phone: str | None = None,
        email: str | None = None,
        attributes: dict[str, str] | None = None,
        api_key: str | None = None,
    ) -> dict[str, Any]:
        form = self._params(
            api_key=api_key if api_key is not None else self.api_key,
            service_code=service_code,
            lat=lat,
            long=long,
            address_string=address_string,
            description=description,
            first_name=first_name,
            last_name=last_name,
            phone=phone,
            email=email,
        )
        for code, value in (attributes or {}).items():
            form[f"attribute[{code}]"] = value
        async with self.session.post(self.endpoint + "/requests.json", data=form) as r:
            found = await self._answer(r)
            assert r.status in (200, 201)
        assert isinstance(found, list) and len(found) == 1
        created = found[0]
        assert set(created) >= POST_RESPONSE_FIELDS
        assert "service_request_id" in created or "token" in created
        return dict(created)

    async def requests(self, **params: Any) -> list[dict[str, Any]]:
        found = await self._get("/requests.json", **params)
        for r in found:
            assert set(r) >= REQUEST_FIELDS, r
            assert r["status"] in ("open", "closed")
        return list(found)

    async def request(self, service_request_id: str) -> dict[str, Any]:
        found = await self._get(f"/requests/{service_request_id}.json")
        assert isinstance(found, list) and len(found) == 1
        assert set(found[0]) >= REQUEST_FIELDS
        return dict(found[0])


async def discover(session: aiohttp.ClientSession, base: str) -> str:
    """The production JSON endpoint a server's discovery document names."""
    async with session.get(base + "/open311/v2/discovery.json") as r:
        doc = await r.json()
    for e in doc["endpoints"]:
        if e["type"] == "production" and "application/json" in e["formats"]:
            assert e["specification"] == "http://wiki.open311.org/GeoReport_v2"
            return str(e["url"])
    raise AssertionError("no production JSON endpoint")
