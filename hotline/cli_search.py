"""`hotline kb …`, `hotline search …` and `hotline hotspots`: the knowledge base, the search
index and hot spots from the command line."""

from __future__ import annotations

import argparse
import asyncio
import json
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
