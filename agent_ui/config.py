"""Settings of the public pages ([public]) and the Open311 GeoReport v2 endpoint ([open311])."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PublicSettings(_Section):
    # cases per page of the public 曝光纠错 column
    page_size: Annotated[int, Field(ge=1, le=200)] = 20
    # newest published cases in the Atom feed
    feed_entries: Annotated[int, Field(ge=1, le=500)] = 50


class Open311Settings(_Section):
    enabled: bool = True
    # client name → API key for POST requests.json; keep keys in the environment, e.g.
    # HOTLINE__OPEN311__API_KEYS='{ citizen_app = "a-long-random-key" }'
    api_keys: dict[str, Annotated[str, Field(min_length=16, max_length=200)]] = {}
    # the jurisdiction_id clients may send (any other is refused)
    jurisdiction_id: Annotated[str, Field(min_length=1, max_length=100)] = "12345.nmg.gov.cn"
    # the newest requests GET requests.json returns at most (the spec's default is 1000)
    max_requests: Annotated[int, Field(ge=1, le=1000)] = 200

    @field_validator("api_keys")
    @classmethod
    def _distinct(cls, v: dict[str, str]) -> dict[str, str]:
        if len(set(v.values())) != len(v):
            raise ValueError("each client needs its own API key")
        return v
