"""`hotline classifier …` and `python -m classifier …`: train, eval, promote, predict, stopwords."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from classifier.config import (
    DEFAULT_FAMILY,
    DEFAULT_LABEL_COLUMN,
    DEFAULT_MODEL_DIR,
    DEFAULT_SEED,
    EXPORTABLE,
)
from classifier.errors import ClassifierError, DataError

EXIT_ERROR = 2
EXIT_REFUSED = 3


def _err(message: str) -> None:
    print(f"错误: {message}", file=sys.stderr)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _guarded(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn the errors a user can fix into one Chinese line on stderr and a non-zero exit."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except ClassifierError as exc:
            _err(exc.message)
            return EXIT_ERROR
        except OSError as exc:
            _err(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))
            return EXIT_ERROR

    run.__name__ = fn.__name__
    return run


def cmd_train(args: argparse.Namespace) -> int:
    from classifier.features import FeatureSpec
    from classifier.train import TrainConfig, train

    config = TrainConfig(
        family=args.family, features=FeatureSpec(), seed=args.seed, holdout=args.holdout
    )
    taxonomy = args.taxonomy
    taxonomy_source = args.taxonomy or "无"
    if taxonomy is None and (DEFAULT_MODEL_DIR / "taxonomy.json").is_file():
        from classifier.taxonomy import Taxonomy

        taxonomy = Taxonomy.load_json(DEFAULT_MODEL_DIR / "taxonomy.json")
        taxonomy_source = f"沿用 {DEFAULT_MODEL_DIR / 'taxonomy.json'}"
    extra: Iterable[tuple[str, str]] = ()
    if getattr(args, "from_db", False):
        extra = list(args.extra_examples_provider(args))
        _log(f"工单库样本 {len(extra)} 条")
    if not args.data and not extra:
        raise DataError("没有训练数据: 请用 --data 指定至少一个 CSV 文件")
    clf = train(
        args.data or [],
        extra,
        taxonomy=taxonomy,
        config=config,
        label_column=args.label_column,
        log=_log,
    )
    manifest = clf.save(args.out)
    size = sum(p.stat().st_size for p in Path(args.out).iterdir())
    _log(
        f"模型 {manifest['version']} 已写入 {args.out}（{len(clf.classes)} 类，"
        f"{manifest['training']['examples_used']} 条样本，训练 "
        f"{manifest['training']['total_seconds']} 秒，{size / 1e6:.1f} MB；"
        f"分类体系: {taxonomy_source}）"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from classifier.model import Classifier
    from classifier.train import as_datasets, evaluate

    clf = Classifier.load(args.model)
    examples = [e for d in as_datasets(args.data, args.label_column) for e in d.examples]
    print(json.dumps(evaluate(clf, examples), ensure_ascii=False))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from classifier.train import compare_and_promote

    result = compare_and_promote(
        args.new, args.current, args.data, min_gain=args.min_gain, label_column=args.label_column
    )
    print(json.dumps(result.to_dict(), ensure_ascii=False))
    _log(result.message)
    return 0 if result.promoted else EXIT_REFUSED


def cmd_predict(args: argparse.Namespace) -> int:
    from classifier.model import Classifier

    clf = Classifier.load(args.model)
    texts: Sequence[str] = args.text or [line for line in sys.stdin.read().splitlines() if line]
    if not texts:
        raise DataError("没有要分类的文本（参数或标准输入，每行一条）")
    for text in texts:
        print(json.dumps(clf.predict(text).to_dict(), ensure_ascii=False))
    return 0


def cmd_stopwords(args: argparse.Namespace) -> int:
    from classifier.datasets import read_csv
    from classifier.lexicon import derive_stopwords
    from classifier.text import Segmenter

    raw: list[str] = []
    for path in args.raw:
        raw.extend(_raw_texts(Path(path)))
    segmented = [e.text for e in read_csv(args.segmented).examples]
    plain = Segmenter(userdict=None, stopwords=None)
    words = derive_stopwords(raw, segmented, plain.cut, min_df=args.min_df)
    header = (
        "# Stop words: removed from every message before features are built.\n"
        f"# Derived by `python -m classifier stopwords --min-df {args.min_df}` "
        "(classifier.lexicon.derive_stopwords):\n"
        f"# words plain jieba finds in >= {args.min_df} raw messages "
        f"({', '.join(Path(p).name for p in args.raw)})\n"
        f"# that never occur in {Path(args.segmented).name}. Most frequent first.\n"
    )
    Path(args.out).write_text(header + "\n".join(words) + "\n", encoding="utf-8")
    _log(f"{len(words)} 个停用词已写入 {args.out}")
    return 0


def cmd_dictionary(args: argparse.Namespace) -> int:
    import jieba

    from classifier.datasets import read_csv
    from classifier.lexicon import read_jieba_dictionary, trim_dictionary, words_text
    from classifier.taxonomy import SYNONYMS_PATH, Taxonomy
    from classifier.text import USERDICT_PATH, normalize, read_word_list

    full_path = Path(jieba.__file__).with_name("dict.txt")
    full, _ = read_jieba_dictionary(full_path)
    texts: list[str] = []
    for path in args.raw:
        texts.extend(_raw_texts(Path(path), with_reply=True))
    for path in args.segmented:
        texts.extend(e.text.replace(" ", "") for e in read_csv(path).examples)
    # what the segmenter cuts besides messages: user terms, taxonomy names and their synonyms
    texts.extend(read_word_list(USERDICT_PATH))
    taxonomy = (
        Taxonomy.from_csv(args.taxonomy)
        if args.taxonomy
        else Taxonomy.load_json(DEFAULT_MODEL_DIR / "taxonomy.json")
    )
    texts.extend(n for sub in taxonomy.tree.values() for l2, l3s in sub.items() for n in (l2, *l3s))
    texts.append(SYNONYMS_PATH.read_text(encoding="utf-8"))
    kept = trim_dictionary(full, (normalize(t) for t in texts))
    sources = [Path(p).name for p in [*args.raw, *args.segmented]]
    header = [
        f"jieba {jieba.__version__} dict.txt (MIT licence) cut to the {len(kept)} of its "
        f"{len(full)} words that occur in",
        f"{', '.join(sources)}, the user dictionary, the taxonomy and its synonyms.",
        "Built by `python -m classifier dictionary` (classifier.lexicon.trim_dictionary);",
        "the total is the full dictionary's, so in-vocabulary text segments as with full jieba.",
    ]
    # the repository keeps the words only; text.ensure_dictionary adds jieba's frequencies
    Path(args.out).write_text(words_text(kept, header), encoding="utf-8")
    _log(f"{len(kept)} 个词（共 {len(full)} 个）已写入 {args.out}")
    return 0


def _raw_texts(path: Path, *, with_reply: bool = False) -> list[str]:
    """subject + detail (+ reply) of every row of a raw CSV, labelled or not."""
    import csv
    import io

    if not path.is_file():
        raise DataError(f"找不到数据文件: {path}")
    rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    if not rows or not {"subject", "detail"} <= set(rows[0]):
        raise DataError(f"数据文件 {path} 需要 subject,detail 两列")
    if with_reply and "reply" in rows[0]:
        return [f"{r['subject']}\n{r['detail']}\n{r['reply']}" for r in rows]
    return [f"{r['subject']}\n{r['detail']}" for r in rows]


ExtraExamples = Callable[[argparse.Namespace], Iterable[tuple[str, str]]]


def _add_commands(sub: Any, extra_examples: ExtraExamples | None = None) -> None:
    def label_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--label-column",
            default=DEFAULT_LABEL_COLUMN,
            help=f"标签列名（默认 {DEFAULT_LABEL_COLUMN}）",
        )

    t = sub.add_parser("train", help="训练模型", description="训练一级分类模型并写入模型目录")
    t.add_argument(
        "--data",
        action="append",
        metavar="CSV",
        help="训练数据，可重复: subject,detail,label（原始文本）"
        "或 text,label / tokens,label（已分词）",
    )
    t.add_argument("--out", required=True, metavar="DIR", help="输出的模型目录")
    t.add_argument(
        "--taxonomy",
        metavar="CSV",
        help="分类体系（一级分类,二级分类,三级分类）；默认沿用随仓库发布的模型中的分类体系",
    )
    t.add_argument("--seed", type=int, default=DEFAULT_SEED, help="随机种子（默认 %(default)s）")
    t.add_argument(
        "--family",
        choices=EXPORTABLE,
        default=DEFAULT_FAMILY,
        help=f"线性模型类型（默认 {DEFAULT_FAMILY}）",
    )
    t.add_argument(
        "--holdout", type=float, default=0.1, help="用于 manifest 指标的留出比例（默认 0.1）"
    )
    label_option(t)
    t.set_defaults(fn=_guarded(cmd_train))
    if extra_examples is not None:
        t.add_argument(
            "--from-db",
            action="store_true",
            help="同时使用工单库中的人工派单、退单改派和分类更正作为训练样本",
        )
        t.set_defaults(extra_examples_provider=extra_examples)

    e = sub.add_parser("eval", help="评估模型，输出一个 JSON 对象")
    e.add_argument("--model", required=True, metavar="DIR", help="模型目录")
    e.add_argument("--data", action="append", required=True, metavar="CSV", help="带标签的数据")
    label_option(e)
    e.set_defaults(fn=_guarded(cmd_eval))

    p = sub.add_parser("promote", help="新模型在留出数据上不差于当前模型时替换之")
    p.add_argument("--new", required=True, metavar="DIR", help="新训练的模型目录")
    p.add_argument("--current", default=str(DEFAULT_MODEL_DIR), metavar="DIR", help="当前模型目录")
    p.add_argument("--data", action="append", required=True, metavar="CSV", help="留出的评估数据")
    p.add_argument("--min-gain", type=float, default=0.0, help="macro-F1 至少提高多少才替换")
    label_option(p)
    p.set_defaults(fn=_guarded(cmd_promote))

    r = sub.add_parser("predict", help="对文本分类，每条输出一行 JSON")
    r.add_argument("--model", default=str(DEFAULT_MODEL_DIR), metavar="DIR", help="模型目录")
    r.add_argument("text", nargs="*", help="要分类的文本；省略时从标准输入逐行读取")
    r.set_defaults(fn=_guarded(cmd_predict))

    s = sub.add_parser("stopwords", help="从原始文本与已分词文本的差异推导停用词表")
    s.add_argument("--raw", action="append", required=True, metavar="CSV", help="原始文本 CSV")
    s.add_argument("--segmented", required=True, metavar="CSV", help="已分词的训练数据 CSV")
    s.add_argument("--out", required=True, metavar="FILE")
    s.add_argument("--min-df", type=int, default=20)
    s.set_defaults(fn=_guarded(cmd_stopwords))

    d = sub.add_parser(
        "dictionary",
        help="把 jieba 词典裁剪为语料中出现的词（模型随附，加载更快）",
        description="把 jieba 词典裁剪为语料中出现的词",
    )
    d.add_argument("--raw", action="append", default=[], metavar="CSV", help="原始文本 CSV")
    d.add_argument(
        "--segmented", action="append", default=[], metavar="CSV", help="已分词的数据 CSV"
    )
    d.add_argument("--taxonomy", metavar="CSV", help="分类体系；默认随仓库发布的模型中的分类体系")
    d.add_argument("--out", required=True, metavar="FILE")
    d.set_defaults(fn=_guarded(cmd_dictionary))


def add_subcommands(
    subparsers: Any, *, extra_examples: ExtraExamples | None = None
) -> argparse.ArgumentParser:
    """Register `classifier train|eval|promote|predict|stopwords` under the hotline CLI.

    Each leaf sets `fn(args) -> int`, as hotline.cli.main expects. With `extra_examples`
    (args → iterable of (raw text, label)), `train` gets a `--from-db` flag that adds them.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "classifier", help="诉求分类模型: 训练、评估、替换", description="诉求分类模型"
    )
    _add_commands(
        parser.add_subparsers(dest="classifier_cmd", required=True, metavar="命令"), extra_examples
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m classifier", description="诉求分类模型")
    _add_commands(parser.add_subparsers(dest="classifier_cmd", required=True, metavar="命令"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except KeyboardInterrupt:
        return 130
