"""`hotline kb …`, `hotline search …` and `hotline hotspots`: the knowledge base, the search
index and hot spots from the command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from hotline.config import Settings, load_settings


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def _gazetteer(settings: Settings) -> Any:
    from hotline.app import load_routing, load_triage_parts

    gazetteer, _ = load_triage_parts(settings, load_routing(settings))
    return gazetteer


def _print(obj: Any) -> None:
    print(json.dumps(obj, ensure_ascii=False))


def cmd_kb_eval(args: argparse.Namespace) -> int:
    import tempfile

    from hotline.search import build_analyzer, build_backend
    from kb.eval import evaluate, read_pairs
    from kb.search import SCHEMAS, Search

    settings = _settings(args)
    pairs = read_pairs(Path(args.data))
    with tempfile.TemporaryDirectory(prefix="hotline-kb-eval-") as tmp:
        # a fresh index of its own: never the platform's (embedded: a temp file; ES: a prefix)
        overrides = {"path": str(Path(tmp) / "eval.db")}
        settings = settings.model_copy(
            update={"search": settings.search.model_copy(update=overrides)}
        )
        prefix = f"{settings.search.index_prefix}-eval-{uuid.uuid4().hex[:8]}"
        backend = build_backend(settings, prefix=prefix)
        search = Search(backend, build_analyzer(_gazetteer(settings)))

        async def run() -> dict[str, Any]:
            await backend.open()
            try:
                return await evaluate(search, pairs)
            finally:
                if backend.name == "elasticsearch":
                    for collection in SCHEMAS:
                        await backend.drop(collection)
                await backend.close()

        _print(asyncio.run(run()))
    return 0


def add_subcommands(sub: Any) -> None:
    kb = sub.add_parser("kb", help="知识库").add_subparsers(dest="kb_cmd", required=True)
    ev = kb.add_parser(
        "eval", help="评测检索：以留言（subject+detail）检索答复（reply），输出 MRR@10 等 JSON"
    )
    ev.add_argument("--config", default=argparse.SUPPRESS)
    ev.add_argument("--data", required=True, help="CSV，列 subject,detail,reply")
    ev.set_defaults(fn=cmd_kb_eval)
    add_more_subcommands(sub, kb)


def _platform(settings: Settings) -> Any:
    """The database and search services of a CLI run (no web server)."""
    from hotline.app import build_services
    from hotline.bus import InProcessBus
    from hotline.db import open_database
    from hotline.search import build_search_services

    db = open_database(settings)
    bus = InProcessBus()
    services = build_services(settings, db, bus)
    return db, build_search_services(settings, db, bus, services, _gazetteer(settings))


def cmd_kb_import(args: argparse.Namespace) -> int:
    from kb.io import read_rows
    from kb.model import ArticleKind, Editor, KbRole
    from kb.service import KbError

    settings = _settings(args)
    db, svc = _platform(settings)
    who = Editor(KbRole.SYSTEM, "导入")
    kind = ArticleKind(args.kind) if args.kind else None

    async def run() -> dict[str, int]:
        await svc.kb.search.backend.open()
        counts = {"created": 0, "published": 0, "skipped": 0}
        try:
            for row in read_rows(Path(args.file), kind=kind, publish=args.publish):
                data = row.data
                if row.original_code:
                    from kb import store

                    original = await db.read(
                        lambda c, r=row: store.get_by_code(
                            c, r.data.kind.value, r.original_code or "", "zh-Hans"
                        )
                    )
                    if original is None:
                        counts["skipped"] += 1
                        continue
                    data = dataclasses.replace(data, original_id=original.id)
                try:
                    a = await svc.kb.create(who, data, action="import")
                except KbError as exc:
                    print(f"跳过: {data.title[:30]}: {exc.message}", file=sys.stderr)
                    counts["skipped"] += 1
                    continue
                counts["created"] += 1
                if row.publish:
                    await svc.kb.publish(who, a.id, a.version, "导入时发布")
                    counts["published"] += 1
            await svc.kb.sync_index()
            return counts
        finally:
            await svc.kb.search.backend.close()

    try:
        _print(asyncio.run(run()))
    finally:
        db.close()
    return 0


def cmd_kb_export(args: argparse.Namespace) -> int:
    from kb import store
    from kb.io import write_csv, write_json

    settings = _settings(args)
    db, _ = _platform(settings)
    try:
        out: list[Any] = []
        after = 0
        while True:
            page = db.run_read(lambda c, a=after: store.after_id(c, a, 1000))
            if not page:
                break
            out += page
            after = page[-1].id
        path = Path(args.out)
        (write_csv if path.suffix.lower() == ".csv" else write_json)(out, path)
        print(f"已导出 {len(out)} 篇知识到 {path}")
    finally:
        db.close()
    return 0


def cmd_search_reindex(args: argparse.Namespace) -> int:
    settings = _settings(args)
    db, svc = _platform(settings)

    async def run() -> dict[str, Any]:
        from kb.search import ARTICLES, ORDERS

        backend = svc.orders.search.backend
        await backend.open()
        try:
            if args.fresh:
                await backend.reset(ORDERS)
                await backend.reset(ARTICLES)
            if args.workers > 1:
                from hotline.search import ParallelDocuments

                build = ParallelDocuments(settings, args.workers)
                try:
                    orders = await svc.orders.reindex(build=build, ahead=build.workers)
                finally:
                    build.close()
            else:
                orders = await svc.orders.reindex()
            articles = await svc.kb.reindex()
            warmed = await backend.warm(ORDERS) + await backend.warm(ARTICLES)
            return {
                "orders": orders,
                "articles": articles,
                "backend": backend.name,
                "terms_warmed": warmed,
            }
        finally:
            await backend.close()

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)  # the pool of workers shut down on the way out

    signal.signal(signal.SIGTERM, stop)
    try:
        _print(asyncio.run(run()))
    finally:
        db.close()
    return 0


def cmd_hotspots(args: argparse.Namespace) -> int:
    from datetime import datetime

    settings = _settings(args)
    if args.data:
        from hotline.hotspots_eval import evaluate_file

        _print(
            evaluate_file(
                Path(args.data), settings, _gazetteer(settings), window_hours=args.window_hours
            )
        )
        return 0
    db, svc = _platform(settings)
    try:
        at = datetime.fromisoformat(args.at) if args.at else None
        items = asyncio.run(svc.hotspots.current(at, args.window_hours, spikes_only=args.spikes))
        _print({"items": items[: args.limit]})
    finally:
        db.close()
    return 0


def _add_config(p: Any) -> None:
    p.add_argument("--config", default=argparse.SUPPRESS)


def add_more_subcommands(sub: Any, kb: Any) -> None:
    imp = kb.add_parser("import", help="从 CSV / JSON 导入知识（TipDM 答复表作为答复库）")
    _add_config(imp)
    imp.add_argument("--file", required=True)
    imp.add_argument("--kind", choices=["guide", "faq", "reply"])
    imp.add_argument("--publish", action="store_true", help="导入后直接发布")
    imp.set_defaults(fn=cmd_kb_import)
    exp = kb.add_parser("export", help="导出全部知识（.json 或 .csv）")
    _add_config(exp)
    exp.add_argument("--out", required=True)
    exp.set_defaults(fn=cmd_kb_export)
    search = sub.add_parser("search", help="检索索引").add_subparsers(
        dest="search_cmd", required=True
    )
    re_ = search.add_parser("reindex", help="从数据库重建检索索引（工单和已发布知识）")
    _add_config(re_)
    re_.add_argument("--fresh", action="store_true", help="先清空索引")
    re_.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="分词进程数（默认每个 CPU 核一个；1 = 在本进程内，不另起进程）",
    )
    re_.set_defaults(fn=cmd_search_reindex)
    hs = sub.add_parser("hotspots", help="热点：按话题 × 盟市聚类，检测突增；--data 评测数据集")
    _add_config(hs)
    hs.add_argument("--window-hours", type=float, default=None)
    hs.add_argument("--at", help="截止时间（ISO 8601，带时区）")
    hs.add_argument("--spikes", action="store_true", help="只输出突增热点")
    hs.add_argument("--limit", type=int, default=20)
    hs.add_argument("--data", help="留言 CSV（time,subject,detail[,likes]）：按时间回放并评测")
    hs.set_defaults(fn=cmd_hotspots)
