"""`hotline kb eval`: how well the configured backend finds the reply a message got.

A fresh index holds every reply of the file (the reply text only: indexing the question too
would make the task trivial); each message's subject + detail is the query; the reply it got is
the answer to find (replies with the same text count alike). Prints MRR@10, recall@5, the
number of queries and the 95th percentile of query latency.
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.search import ARTICLES, Search

BATCH = 500


@dataclass(frozen=True, slots=True)
class Pair:
    subject: str
    detail: str
    reply: str


def read_pairs(path: Path) -> list[Pair]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"subject", "detail", "reply"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: 缺少列 {', '.join(sorted(missing))}")
        return [
            Pair(r["subject"] or "", r["detail"] or "", r["reply"] or "")
            for r in reader
            if (r["reply"] or "").strip()
        ]


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, math.ceil(q / 100 * len(ordered)) - 1)
    return ordered[k]


async def evaluate(search: Search, pairs: Sequence[Pair], k: int = 10) -> dict[str, Any]:
    """Index the replies into a fresh articles collection, query, score (resets it first)."""
    await search.backend.reset(ARTICLES)
    same: dict[str, int] = {}
    group = []  # doc id → id of the first doc with the same reply text
    for i, p in enumerate(pairs):
        group.append(same.setdefault(p.reply.strip(), i))
    for first in range(0, len(pairs), BATCH):
        docs = [
            search.document(i, None, [p.reply], {"kind": "reply", "status": "published"})
            for i, p in enumerate(pairs[first : first + BATCH], first)
        ]
        await search.upsert(ARTICLES, docs)
    await search.backend.refresh(ARTICLES)
    rr = 0.0
    found5 = 0
    took: list[float] = []
    for i, p in enumerate(pairs):
        start = time.perf_counter()
        result = await search.search(
            ARTICLES, f"{p.subject}\n{p.detail}", limit=k, with_total=False
        )
        took.append((time.perf_counter() - start) * 1000)
        for rank, hit in enumerate(result.hits, 1):
            if group[hit.id] == group[i]:
                rr += 1 / rank
                found5 += int(rank <= 5)
                break
    n = len(pairs)
    return {
        "mrr_at_10": round(rr / n, 4) if n else 0.0,
        "recall_at_5": round(found5 / n, 4) if n else 0.0,
        "n": n,
        "p95_ms": round(percentile(took, 95), 2),
        "backend": search.backend.name,
    }
