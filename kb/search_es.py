"""The Elasticsearch adapter (the only module that imports `elasticsearch`).

One index per collection, `{prefix}-{collection}`, created by `open()` when missing: text fields
with the `whitespace` analyzer (the platform segments Chinese with jieba before indexing), BM25
with the port's field weights, keyword/boolean/date fields for filters. Works with any ES 8.x
cluster; only core features are used (mappings, bulk, bool/match/terms/range queries, delete by
id), so it also runs on the bare test node built from the Maven Central artifacts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError
from elasticsearch import ConnectionError as EsConnectionError
from elasticsearch import ConnectionTimeout as EsConnectionTimeout
from elasticsearch import TransportError as EsTransportError
from elasticsearch.helpers import async_bulk

from kb.search import (
    SCHEMAS,
    SORT_FIELD,
    TOTAL_CAP,
    WEIGHTS,
    Document,
    FieldType,
    Hit,
    Query,
    Result,
    SearchUnavailable,
    TermStats,
)

_TYPES = {
    FieldType.KEYWORD: {"type": "keyword"},
    FieldType.KEYWORDS: {"type": "keyword"},
    FieldType.BOOL: {"type": "boolean"},
    FieldType.DATE: {"type": "date"},
}
_TEXT = {"type": "text", "analyzer": "whitespace"}
_UNAVAILABLE = (EsConnectionError, EsConnectionTimeout, asyncio.TimeoutError, OSError)


def mapping(collection: str) -> dict[str, Any]:
    props: dict[str, Any] = {"title": _TEXT, "words": _TEXT, "grams": _TEXT}
    for name, kind in SCHEMAS[collection].items():
        props[name] = _TYPES[kind]
    return {"dynamic": "strict", "properties": props}


def _source(doc: Document) -> dict[str, Any]:
    out: dict[str, Any] = {"title": doc.title, "words": doc.words, "grams": doc.grams}
    for name, value in doc.fields.items():
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


class ElasticSearch:
    """SearchBackend on an Elasticsearch 8.x cluster."""

    name = "elasticsearch"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "hotline",
        shards: int = 1,
        replicas: int = 0,
        timeout_s: float = 5.0,
        refresh: bool = False,
        api_key: str | None = None,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.shards = shards
        self.replicas = replicas
        self.timeout_s = timeout_s
        self.refresh_writes = refresh  # tests: make every write visible at once
        self._api_key = api_key
        self._client: AsyncElasticsearch | None = None

    def index(self, collection: str) -> str:
        return f"{self.prefix}-{collection}"

    @property
    def client(self) -> AsyncElasticsearch:
        if self._client is None:
            self._client = AsyncElasticsearch(
                self.url,
                api_key=self._api_key,
                request_timeout=self.timeout_s,
                max_retries=0,  # the work queue retries; a request must fail fast
                retry_on_timeout=False,
                # one node or a few: try a failed node again soon (the platform probes it)
                dead_node_backoff_factor=0.5,
                max_dead_node_backoff=2.0,
            )
        return self._client

    async def _call(self, coro: Any) -> Any:
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                return await coro
        except _UNAVAILABLE as exc:
            raise SearchUnavailable(f"{type(exc).__name__}: {exc}") from exc
        except EsTransportError as exc:
            raise SearchUnavailable(str(exc)) from exc
        except ApiError as exc:
            if exc.meta.status >= 500 or exc.meta.status == 429:  # overloaded, no shards yet
                raise SearchUnavailable(f"{exc.meta.status}: {exc}") from exc
            raise

    async def open(self) -> None:
        for collection in SCHEMAS:
            await self._create(collection)

    async def _create(self, collection: str) -> None:
        index = self.index(collection)
        if await self._call(self.client.indices.exists(index=index)):
            await self._call(self.client.indices.put_mapping(index=index, **mapping(collection)))
            return
        settings = {"number_of_shards": self.shards, "number_of_replicas": self.replicas}
        try:
            await self._call(
                self.client.indices.create(
                    index=index, settings=settings, mappings=mapping(collection)
                )
            )
        except Exception as exc:  # another process created it meanwhile
            if "resource_already_exists" not in str(exc):
                raise

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def healthy(self) -> bool:
        try:
            return bool(await self._call(self.client.ping()))
        except SearchUnavailable:
            return False

    async def upsert(self, collection: str, docs: Sequence[Document]) -> None:
        if not docs:
            return
        index = self.index(collection)
        actions = [{"_index": index, "_id": str(d.id), "_source": _source(d)} for d in docs]
        await self._bulk(actions)

    async def delete(self, collection: str, ids: Sequence[int]) -> None:
        if not ids:
            return
        index = self.index(collection)
        await self._bulk([{"_op_type": "delete", "_index": index, "_id": str(i)} for i in ids])

    async def _bulk(self, actions: list[dict[str, Any]]) -> None:
        _, errors = await self._call(
            async_bulk(
                self.client,
                actions,
                raise_on_error=False,
                refresh="wait_for" if self.refresh_writes else False,
                chunk_size=1000,
            )
        )
        failed = [e for e in errors if _status(e) != 404]  # deleting a missing doc is fine
        if failed:
            raise SearchUnavailable(f"bulk: {len(failed)} failed, first {failed[0]}")

    async def reset(self, collection: str) -> None:
        await self.drop(collection)
        await self._create(collection)

    async def drop(self, collection: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._call(self.client.indices.delete(index=self.index(collection)))

    async def refresh(self, collection: str) -> None:
        await self._call(self.client.indices.refresh(index=self.index(collection)))

    async def warm(self, collection: str) -> int:
        return 0  # the index keeps exact term statistics of its own

    async def count(self, collection: str) -> int:
        resp = await self._call(self.client.count(index=self.index(collection)))
        return int(resp["count"])

    async def term_stats(
        self, collection: str, words: Sequence[str], grams: Sequence[str], cap: int | None = None
    ) -> TermStats:
        """Exact document frequencies (whatever the cap) from the term vectors of an artificial
        document."""
        resp = await self._call(
            self.client.termvectors(
                index=self.index(collection),
                doc={"words": " ".join(words), "grams": " ".join(grams)},
                fields=["words", "grams"],
                term_statistics=True,
                field_statistics=True,
                positions=False,
                offsets=False,
            )
        )
        vectors = resp.get("term_vectors", {})

        def freqs(name: str) -> dict[str, int]:
            terms = vectors.get(name, {}).get("terms", {})
            return {t: int(v.get("doc_freq", 0)) for t, v in terms.items()}

        docs = max(
            (int(v.get("field_statistics", {}).get("doc_count", 0)) for v in vectors.values()),
            default=0,
        )
        return TermStats(docs, freqs("words"), freqs("grams"))

    async def search(self, collection: str, query: Query) -> Result:
        resp = await self._call(
            self.client.search(index=self.index(collection), **self.body(collection, query))
        )
        hits = [Hit(int(h["_id"]), float(h["_score"] or 0.0)) for h in resp["hits"]["hits"]]
        total = resp["hits"].get("total") or {"value": len(hits), "relation": "eq"}
        return Result(hits, int(total["value"]), total["relation"] == "gte")

    def body(self, collection: str, q: Query) -> dict[str, Any]:
        should: list[dict[str, Any]] = []
        for name, tokens in (("title", q.words), ("words", q.words), ("grams", q.grams)):
            if tokens:
                text = " ".join(tokens)
                should.append({"match": {name: {"query": text, "boost": WEIGHTS[name]}}})
        filters: list[dict[str, Any]] = []
        for f in q.filters:
            if SCHEMAS[collection][f.field] is FieldType.DATE:
                rng = {}
                if f.gte is not None:
                    rng["gte"] = f.gte.isoformat()
                if f.lte is not None:
                    rng["lte"] = f.lte.isoformat()
                clause: dict[str, Any] = {"range": {f.field: rng}}
                if f.missing_ok:
                    missing = {"bool": {"must_not": {"exists": {"field": f.field}}}}
                    clause = {"bool": {"should": [clause, missing], "minimum_should_match": 1}}
                filters.append(clause)
            else:
                filters.append({"terms": {f.field: list(f.values)}})
        boolean: dict[str, Any] = {"filter": filters}
        if should:
            boolean["should"] = should
            boolean["minimum_should_match"] = 1
        if q.exclude:
            boolean["must_not"] = [{"ids": {"values": [str(i) for i in q.exclude]}}]
        body: dict[str, Any] = {
            "query": {"bool": boolean},
            "size": q.limit,
            "from": q.offset,
            "_source": False,
            "track_total_hits": TOTAL_CAP if q.with_total else False,
        }
        if not should:
            body["sort"] = [{SORT_FIELD[collection]: {"order": "desc", "missing": "_last"}}]
        return body


def _status(error: dict[str, Any]) -> int | None:
    for op in error.values():
        if isinstance(op, dict):
            return op.get("status")
    return None
