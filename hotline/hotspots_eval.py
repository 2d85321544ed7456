"""`hotline hotspots --data CSV`: replay a message board (TipDM 附件3) week by week through
hot-spot detection and see whether the hot spots are where the likes went.

Likes are a weak signal of how hot a topic was (many people shared the problem). Reported:
how much more often the most-liked messages fall in multi-message hot spots than messages do
in general (lift), the rank correlation of a hot spot's size with its likes, and the likes per
message of spikes against the average."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hotline.config import Settings
from hotline.search import build_analyzer
from routing.gazetteer import Gazetteer
from routing.hotspots import HotspotEngine, Item

# the data set's anonymised places: A市, A3区, K8县 …; the finest one named is the region
_PLACE = re.compile(r"[A-Z]\d+[区县市]|[A-Z]市")
_FORMATS = ("%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M")


def _when(raw: str, tz: ZoneInfo) -> datetime | None:
    for fmt in _FORMATS:
        try:
            return datetime.strptime(raw.strip(), fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    return None


def _region(text: str) -> str | None:
    places = _PLACE.findall(text)
    fine = [p for p in places if p[-1] != "市" or len(p) > 2]
    return (fine or places or [None])[0]


def read_items(path: Path, tz: ZoneInfo) -> list[Item]:
    out = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        for i, r in enumerate(csv.DictReader(fh)):
            at = _when(r.get("time") or "", tz)
            if at is None:
                continue
            text = f"{r.get('subject') or ''}\n{r.get('detail') or ''}"
            try:
                likes = float(r.get("likes") or 0)
            except ValueError:
                likes = 0.0
            out.append(
                Item(i + 1, at, text, _region(text), r.get("user") or None, r.get("id", ""), likes)
            )
    return sorted(out, key=lambda x: x.at)


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    def ranks(v: Sequence[float]) -> list[float]:
        order = sorted(range(len(v)), key=lambda i: v[i])
        r = [0.0] * len(v)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and v[order[j + 1]] == v[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r

    if len(xs) < 3:
        return 0.0
    rx, ry = ranks(xs), ranks(ys)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sx = sum((a - mx) ** 2 for a in rx) ** 0.5
    sy = sum((b - my) ** 2 for b in ry) ** 0.5
    return cov / (sx * sy) if sx and sy else 0.0


def evaluate_file(
    path: Path, settings: Settings, gazetteer: Gazetteer | None, window_hours: float | None = None
) -> dict[str, Any]:
    tz = ZoneInfo(settings.locale.timezone)
    s = settings.hotspots
    items = read_items(path, tz)
    engine = HotspotEngine(build_analyzer(gazetteer), s)
    window = timedelta(hours=window_hours or 24 * 7)
    dense = [i for i in items if i.at >= items[len(items) // 100].at]  # skip stray early posts
    start = dense[0].at + window * min(s.baseline_windows, 4)
    spots: list[Any] = []
    now = start
    while now <= dense[-1].at + window:
        spots += [h for h in engine.compute(now, dense, window) if h.count >= 1]
        now += window
    covered = [i for h in spots for i in h.items]
    weights = sorted((i.weight for i in covered), reverse=True)
    hot_cut = weights[max(0, len(weights) // 20 - 1)] if weights else 0  # top 5 % by likes
    in_hot_spot = {i.id for h in spots if h.count >= s.min_count for i in h.items}
    hot = [i for i in covered if i.weight >= hot_cut and i.weight > 0]
    base_rate = len(in_hot_spot) / len(covered) if covered else 0.0
    hot_rate = sum(1 for i in hot if i.id in in_hot_spot) / len(hot) if hot else 0.0
    multi = [h for h in spots if h.count >= 2]
    spikes = [h for h in spots if h.spike(s)]
    mean_likes = sum(i.weight for i in covered) / len(covered) if covered else 0.0

    def per_message(hs: Sequence[Any]) -> float:
        n = sum(h.count for h in hs)
        return sum(i.weight for h in hs for i in h.items) / n if n else 0.0

    top = sorted(multi, key=lambda h: (h.spike(s), h.count), reverse=True)[:10]
    return {
        "messages": len(covered),
        "windows": round((now - start) / window),
        "window_hours": window.total_seconds() / 3600,
        "clusters_2plus": len(multi),
        "spikes": len(spikes),
        "share_in_hot_spots": round(base_rate, 4),
        "share_of_top5pct_liked_in_hot_spots": round(hot_rate, 4),
        "lift": round(hot_rate / base_rate, 2) if base_rate else None,
        "spearman_size_likes": round(
            spearman([h.count for h in multi], [sum(i.weight for i in h.items) for h in multi]), 3
        ),
        "likes_per_message": {
            "all": round(mean_likes, 2),
            "clusters_2plus": round(per_message(multi), 2),
            "spikes": round(per_message(spikes), 2),
        },
        "top": [
            {
                "region": h.region,
                "keywords": h.keywords,
                "count": h.count,
                "likes": sum(i.weight for i in h.items),
                "spike": h.spike(s),
                "from": min(i.at for i in h.items).date().isoformat(),
            }
            for h in top
        ],
    }
