"""Search fixtures shared by the test modules (imported by conftest): one real Elasticsearch
node per session, the analyser, and a Search facade over either backend."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from kb.analysis import Analyzer
from kb.search import SCHEMAS, Search
from tests.esnode import EsNode
from tests.ports import free_port

BACKENDS = ["embedded", "elasticsearch"]


def backend_env(request: pytest.FixtureRequest, backend: str) -> dict[str, str]:
    """The settings that point an app at `backend`'s search (a fresh index prefix each)."""
    if backend != "elasticsearch":
        return {}
    node = request.getfixturevalue("es_node")
    return {
        "HOTLINE__SEARCH__BACKEND": "elasticsearch",
        "HOTLINE__SEARCH__URL": node.url,
        "HOTLINE__SEARCH__INDEX_PREFIX": f"t{uuid.uuid4().hex[:10]}",
        "HOTLINE__SEARCH__REFRESH_WRITES": "true",
    }


@pytest.fixture(scope="session")
def es_node() -> Iterator[EsNode]:
    """One real Elasticsearch 8.19 node for the whole run (started, never skipped)."""
    node = EsNode(free_port(udp=False)).start()
    try:
        yield node
    finally:
        node.close()


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    from hotline.app import load_routing, load_triage_parts
    from hotline.config import load_settings
    from hotline.search import build_analyzer
    from tests.conftest import REPO

    settings = load_settings(REPO / "config.toml", environ={})
    gazetteer, _ = load_triage_parts(settings, load_routing(settings))
    return build_analyzer(gazetteer)


def make_backend(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    if kind == "embedded":
        from kb.fts_store import SqliteSearch

        return SqliteSearch(tmp_path / "search.db")
    from kb.search_es import ElasticSearch

    node: EsNode = request.getfixturevalue("es_node")
    # an index prefix of the test's own; every write visible at once
    return ElasticSearch(node.url, prefix=f"t{uuid.uuid4().hex[:10]}", refresh=True)


@pytest.fixture(params=BACKENDS)
async def search(
    request: pytest.FixtureRequest, tmp_path: Path, analyzer: Analyzer
) -> AsyncIterator[Search]:
    backend = make_backend(request.param, tmp_path, request)
    await backend.open()
    try:
        yield Search(backend, analyzer)
    finally:
        if request.param == "elasticsearch":
            for collection in SCHEMAS:
                await backend.client.options(ignore_status=404).indices.delete(
                    index=backend.index(collection)
                )
        await backend.close()
