"""`hotline kb import` / `export`: articles from and to CSV or JSON.

JSON: a list of objects {kind, title, fields{…}, language, department, valid_from,
valid_until, original_code, ref, status}. CSV with the columns of TipDM's replies
(subject, detail, reply[, id, reply_time]) becomes the reply library; any other CSV has the
columns kind, title, language, department, ref and one column per field (item_name, …).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from kb.model import FIELDS, ArticleInput, ArticleKind, as_dict

ALL_FIELDS = sorted({k for fields in FIELDS.values() for k, _ in fields})
TITLE_CHARS = 200


@dataclass(frozen=True, slots=True)
class Row:
    data: ArticleInput
    publish: bool
    original_code: str | None = None


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    t = datetime.fromisoformat(str(value))
    if t.tzinfo is None:
        raise ValueError(f"时间须带时区: {value}")
    return t


def read_rows(
    path: Path, *, kind: ArticleKind | None = None, publish: bool = False
) -> Iterator[Row]:
    if path.suffix.lower() == ".json":
        for item in json.loads(path.read_text(encoding="utf-8")):
            yield Row(
                ArticleInput(
                    ArticleKind(item.get("kind") or (kind or ArticleKind.FAQ).value),
                    item.get("title", ""),
                    {k: str(v) for k, v in (item.get("fields") or {}).items() if v is not None},
                    item.get("language", "zh-Hans"),
                    item.get("department"),
                    _time(item.get("valid_from")),
                    _time(item.get("valid_until")),
                    None,
                    item.get("ref"),
                ),
                publish or item.get("status") == "published",
                item.get("original_code"),
            )
        return
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        columns = set(reader.fieldnames or ())
        replies = {"subject", "detail", "reply"} <= columns
        for r in reader:
            if replies:
                if not (r.get("reply") or "").strip():
                    continue
                subject = (r.get("subject") or "").strip()
                yield Row(
                    ArticleInput(
                        ArticleKind.REPLY,
                        subject[:TITLE_CHARS] or "答复",
                        {
                            "request": f"{subject}\n{r.get('detail') or ''}".strip(),
                            "reply": r["reply"],
                        },
                        ref=(r.get("id") or "").strip() or None,
                    ),
                    publish,
                )
                continue
            k = ArticleKind(r.get("kind") or (kind or ArticleKind.FAQ).value)
            yield Row(
                ArticleInput(
                    k,
                    r.get("title") or "",
                    {f: r[f] for f, _ in FIELDS[k] if r.get(f)},
                    r.get("language") or "zh-Hans",
                    r.get("department") or None,
                    _time(r.get("valid_from")),
                    _time(r.get("valid_until")),
                    None,
                    r.get("ref") or None,
                ),
                publish or r.get("status") == "published",
                r.get("original_code") or None,
            )


def write_json(articles: list[Any], path: Path) -> None:
    path.write_text(
        json.dumps([as_dict(a) for a in articles], ensure_ascii=False, indent=1), encoding="utf-8"
    )


def write_csv(articles: list[Any], path: Path) -> None:
    columns = [
        "id",
        "kind",
        "status",
        "language",
        "title",
        "code",
        "department",
        "ref",
        "valid_from",
        "valid_until",
        "original_id",
        *ALL_FIELDS,
    ]
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, columns, extrasaction="ignore")
        w.writeheader()
        for a in articles:
            d = as_dict(a)
            w.writerow({**d, **d.pop("fields")})
