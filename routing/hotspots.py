"""Hot spots (热点): orders clustered by topic × region over a sliding window, each cluster's
count compared with its usual volume in the windows before (spike detection).

Topics are found without labels: an order's text becomes a tf-idf vector of its search words
(kb.analysis), and an order joins the cluster of its region whose centroid it is most similar
to (cosine ≥ cluster_threshold), else starts one. A cluster's usual volume is the number of
orders of the same region similar to its centroid in each of the baseline windows before; it is
a spike when its count is at least min_count, `ratio` times the usual volume and `z` standard
deviations above it (the deviation of a Poisson count when the history is flat).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from kb.analysis import Analyzer
from kb.config import HotspotSettings
from tickets import search_store
from tickets.db import Database
from tickets.model import Ticket

Vector = dict[str, float]
TERMS_PER_VECTOR = 24  # an order's most telling words; the rest only cost time
KEYWORDS = 5


@dataclass(frozen=True, slots=True)
class Item:
    """One request as hot-spot detection sees it."""

    id: int
    at: datetime
    text: str
    region: str | None
    caller: str | None = None
    number: str = ""
    weight: float = 0.0  # an outside signal of heat (likes), reported, never used to cluster


@dataclass(slots=True)
class Hotspot:
    region: str | None
    keywords: list[str]
    items: list[Item]
    baseline: list[int] = field(default_factory=list)  # counts in the windows before, oldest first

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def callers(self) -> int:
        known = {i.caller for i in self.items if i.caller}
        return len(known) + sum(1 for i in self.items if not i.caller)

    @property
    def usual(self) -> float:
        return sum(self.baseline) / len(self.baseline) if self.baseline else 0.0

    @property
    def z(self) -> float:
        mean = self.usual
        if len(self.baseline) > 1:
            var = sum((b - mean) ** 2 for b in self.baseline) / (len(self.baseline) - 1)
        else:
            var = 0.0
        sd = max(math.sqrt(var), math.sqrt(max(mean, 1.0)))  # Poisson when history is flat
        return (self.count - mean) / sd

    @property
    def ratio(self) -> float:
        return self.count / max(self.usual, 0.5)

    def spike(self, s: HotspotSettings) -> bool:
        """Only against a usual volume: without a baseline window there is nothing to rise
        above (a period so busy that the read stopped inside the current window)."""
        return (
            bool(self.baseline)
            and self.count >= s.min_count
            and self.ratio >= s.ratio
            and self.z >= s.z
        )

    def as_dict(self, s: HotspotSettings, region_name: Callable[[str], str]) -> dict[str, Any]:
        return {
            "region": self.region,
            "region_name": region_name(self.region) if self.region else "未知地区",
            "keywords": self.keywords,
            "count": self.count,
            "callers": self.callers,
            "usual": round(self.usual, 2),
            "ratio": round(self.ratio, 2),
            "z": round(self.z, 2),
            "spike": self.spike(s),
            "first_at": min(i.at for i in self.items).isoformat(),
            "last_at": max(i.at for i in self.items).isoformat(),
            "numbers": [i.number for i in self.items][:50],
            "weight": sum(i.weight for i in self.items),
        }


def _norm(v: Counter[str] | Vector) -> Vector:
    n = math.sqrt(sum(x * x for x in v.values())) or 1.0
    return {t: x / n for t, x in v.items()}


def _cos(a: Vector, b: Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(x * b.get(t, 0.0) for t, x in a.items())


class HotspotEngine:
    """The computation, on plain items (the platform's orders, or a data set)."""

    def __init__(self, analyzer: Analyzer, settings: HotspotSettings) -> None:
        self.analyzer = analyzer
        self.s = settings
        self._words: dict[int, tuple[str, ...]] = {}

    def words(self, item: Item) -> tuple[str, ...]:
        cached = self._words.get(item.id)
        if cached is None:
            cached = tuple(w for w in self.analyzer.document(item.text).words if len(w) > 1)
            self._words[item.id] = cached
        return cached

    def forget(self, keep: set[int]) -> None:
        self._words = {k: v for k, v in self._words.items() if k in keep}

    def vectors(self, items: Sequence[Item]) -> dict[int, Vector]:
        df: Counter[str] = Counter()
        for it in items:
            df.update(set(self.words(it)))
        n = len(items) or 1
        out = {}
        for it in items:
            tf = Counter(self.words(it))
            weights = {t: c * math.log((n + 1) / (df[t] + 0.5)) for t, c in tf.items()}
            top = sorted(weights.items(), key=lambda kv: kv[1], reverse=True)[:TERMS_PER_VECTOR]
            out[it.id] = _norm(dict(top))
        return out

    def compute(
        self,
        now: datetime,
        items: Sequence[Item],
        window: timedelta | None = None,
        complete_from: datetime | None = None,
    ) -> list[Hotspot]:
        """Clusters of the window ending at `now`, with their usual volume from the
        baseline windows before it (`items` must cover both), hottest first.
        `complete_from`: `items` may lack orders before this time (the read was cut at its
        limit), so only the baseline windows that start after it count."""
        window = window or timedelta(hours=self.s.window_hours)
        start = now - window
        history_start = start - window * self.s.baseline_windows
        first = 0  # the first baseline window whose orders are all in `items`
        if complete_from is not None and complete_from >= history_start:
            first = int((complete_from - history_start) / window) + 1
        items = [i for i in items if history_start <= i.at < now]
        vectors = self.vectors(items)
        current = sorted((i for i in items if i.at >= start), key=lambda i: (i.at, i.id))
        spots = self._cluster(current, vectors)
        big = [h for h in spots if h.count >= self.s.min_count]
        history: dict[str | None, list[Item]] = defaultdict(list)
        for i in items:
            if i.at < start:
                history[i.region].append(i)
        for h in big:
            centroid = _norm(_sum(vectors[i.id] for i in h.items))
            counts = [0] * max(0, self.s.baseline_windows - first)
            for i in history.get(h.region, []):
                if _cos(vectors[i.id], centroid) >= self.s.cluster_threshold:
                    k = int((i.at - history_start) / window) - first
                    if 0 <= k < len(counts):
                        counts[k] += 1
            h.baseline = counts
        spots.sort(key=lambda h: (h.spike(self.s), h.z if h.baseline else 0, h.count), reverse=True)
        return spots

    def _cluster(self, items: Sequence[Item], vectors: dict[int, Vector]) -> list[Hotspot]:
        by_region: dict[str | None, list[tuple[Hotspot, Counter[str]]]] = defaultdict(list)
        for it in items:
            v = vectors[it.id]
            best: tuple[Hotspot, Counter[str]] | None = None
            best_sim = self.s.cluster_threshold
            for spot, total in by_region[it.region]:
                sim = _cos(v, _norm(total))
                if sim >= best_sim:
                    best, best_sim = (spot, total), sim
            if best is None:
                spot = Hotspot(it.region, [], [it])
                by_region[it.region].append((spot, Counter(v)))
            else:
                best[0].items.append(it)
                best[1].update(v)
        out = []
        for clusters in by_region.values():
            for spot, total in clusters:
                spot.keywords = [t for t, _ in total.most_common(KEYWORDS)]
                out.append(spot)
        return out


def _sum(vectors: Any) -> Counter[str]:
    total: Counter[str] = Counter()
    for v in vectors:
        total.update(v)
    return total


class Hotspots:
    """Hot spots of the platform's orders (`hotline hotspots`, GET /api/v1/hotspots)."""

    def __init__(
        self,
        db: Database,
        analyzer: Analyzer,
        settings: HotspotSettings,
        region_of: Callable[[Ticket], str | None],
        region_name: Callable[[str], str],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        executor: Executor | None = None,
    ) -> None:
        self.executor = executor
        self.db = db
        self.engine = HotspotEngine(analyzer, settings)
        self.s = settings
        self.region_of = region_of
        self.region_name = region_name
        self.clock = clock

    def item(self, t: Ticket) -> Item:
        text = "\n".join(x for x in (t.title, t.summary, t.content) if x)
        return Item(t.id, t.created_at, text, self.region_of(t), t.caller.phone, t.number)

    async def current(
        self,
        now: datetime | None = None,
        window_hours: float | None = None,
        spikes_only: bool = False,
    ) -> list[dict[str, Any]]:
        now = now or self.clock()
        window = timedelta(hours=window_hours or self.s.window_hours)
        since = now - window * (self.s.baseline_windows + 1)
        rows = await self.db.read(
            lambda c: search_store.tickets_between(c, since, now, self.s.max_orders)
        )

        # the read stopped at its limit: the orders before the oldest it got may be missing
        cut = rows[0].created_at if len(rows) >= self.s.max_orders else None

        def compute() -> list[dict[str, Any]]:
            items = [self.item(t) for t in rows if t.master_id is None]  # merged: counted once
            spots = self.engine.compute(now, items, window, complete_from=cut)
            self.engine.forget({i.id for i in items})
            return [h.as_dict(self.s, self.region_name) for h in spots if h.count >= 2]

        # seconds of CPU for a busy day: off the event loop, one computation at a time
        out = await asyncio.get_running_loop().run_in_executor(self.executor, compute)
        return [h for h in out if h["spike"]] if spikes_only else out
