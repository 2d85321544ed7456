"""Settings sections of search and the knowledge base: [search], [kb], [similar], [hotspots]."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SearchSettings(_Section):
    # embedded: SQLite FTS5 in `path` (no server); elasticsearch: an ES 8.x cluster at `url`.
    backend: Literal["embedded", "elasticsearch"] = "embedded"
    path: str = "var/search.db"
    url: str = "http://127.0.0.1:9200"
    # ES API key (set it in the environment: HOTLINE__SEARCH__API_KEY); empty: none.
    api_key: str = ""
    index_prefix: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")] = "hotline"
    shards: Annotated[int, Field(ge=1, le=64)] = 1
    replicas: Annotated[int, Field(ge=0, le=8)] = 0
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5
    # make every write searchable before the indexer goes on (tests; slows bulk indexing)
    refresh_writes: bool = False
    # the indexer: orders per batch, pause when the queue is empty, retry back-off
    batch: Annotated[int, Field(ge=1, le=5000)] = 500
    idle_s: Annotated[float, Field(gt=0, le=60)] = 1
    retry_first_s: Annotated[float, Field(gt=0, le=3600)] = 1
    retry_max_s: Annotated[float, Field(gt=0, le=3600)] = 30
    # while degraded, the backend is probed this often; when it answers, waiting work is retried
    probe_s: Annotated[float, Field(gt=0, le=3600)] = 5


class KbSettings(_Section):
    # published articles past valid_until are expired by a pass this often
    expire_every_s: Annotated[float, Field(gt=0, le=86_400)] = 600
    max_field_chars: Annotated[int, Field(ge=100, le=100_000)] = 20_000
    # suggestions: articles and similar answered orders shown for a request
    suggest_articles: Annotated[int, Field(ge=0, le=50)] = 5
    suggest_orders: Annotated[int, Field(ge=0, le=50)] = 5


class SimilarSettings(_Section):
    enabled: bool = True
    # near-duplicates are looked for among orders received within this many hours
    window_hours: Annotated[float, Field(gt=0, le=24 * 90)] = 72
    # the same content: character-bigram Jaccard similarity at least this (0–1)
    threshold: Annotated[float, Field(gt=0, le=1)] = 0.5
    # … and the same place: the same region (when both have one) or address
    same_place: bool = True
    # a same-content request of another caller joins the matched order's 多人同诉 group
    auto_group: bool = True
    candidates: Annotated[int, Field(ge=1, le=200)] = 20


class HotspotSettings(_Section):
    # the sliding window a hot spot is counted over, and the history its usual volume comes from
    window_hours: Annotated[float, Field(gt=0, le=24 * 30)] = 24
    baseline_windows: Annotated[int, Field(ge=1, le=365)] = 14
    # a cluster is a spike when it has at least min_count orders and exceeds its usual volume
    # by `ratio` times and by `z` standard deviations (Poisson when the history is flat)
    min_count: Annotated[int, Field(ge=2, le=10_000)] = 3
    ratio: Annotated[float, Field(ge=1, le=100)] = 3
    z: Annotated[float, Field(ge=0, le=100)] = 3
    # orders join a topic cluster at this character-bigram similarity to its first order
    cluster_threshold: Annotated[float, Field(gt=0, le=1)] = 0.3
    max_orders: Annotated[int, Field(ge=100, le=1_000_000)] = 20_000
