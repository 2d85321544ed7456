"""Training, evaluation, and promotion of a new model over the current one."""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from classifier import artifact
from classifier.config import DEFAULT_FAMILY, DEFAULT_LABEL_COLUMN, DEFAULT_SEED, EXPORTABLE
from classifier.datasets import (
    DataError,
    Dataset,
    Example,
    Form,
    deduplicate,
    examples_sha256,
    read_csv,
)
from classifier.errors import ArtifactError
from classifier.features import (
    FeatureMatrixBuilder,
    FeatureSpec,
    export_estimator,
    make_estimator,
)
from classifier.model import Classifier
from classifier.taxonomy import Taxonomy
from classifier.text import STOPWORDS_PATH, USERDICT_PATH, Segmenter, ensure_dictionary

_logger = logging.getLogger(__name__)
MIN_CLASS_EXAMPLES = 2
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class TrainConfig:
    family: str = DEFAULT_FAMILY  # one of config.EXPORTABLE; chosen by bench/classifier.py
    features: FeatureSpec = field(default_factory=FeatureSpec)
    seed: int = DEFAULT_SEED
    holdout: float = 0.1  # share kept aside for the metrics in manifest.json (0: none)


def _quiet(_: str) -> None:
    pass


def training_segmenter(cache_dir: Path | None = None) -> Segmenter:
    """The segmenter a new model is trained with; its files ship in the model directory."""
    return Segmenter(
        USERDICT_PATH, STOPWORDS_PATH, cache_dir=cache_dir, dictionary=ensure_dictionary()
    )


def tokens_of(segmenter: Segmenter, example: Example) -> list[str]:
    if example.form is Form.SEGMENTED:
        return segmenter.retokenize(example.text)
    return segmenter.tokens(example.text)


def as_datasets(
    datasets: Iterable[Dataset | str | Path], label_column: str = DEFAULT_LABEL_COLUMN
) -> list[Dataset]:
    return [d if isinstance(d, Dataset) else read_csv(d, label_column) for d in datasets]


def _extra(examples: Iterable[Example | tuple[str, str]]) -> list[Example]:
    out = []
    for item in examples:
        example = item if isinstance(item, Example) else Example(str(item[0]), str(item[1]))
        if example.text.strip() and example.label.strip():
            out.append(Example(example.text, example.label.strip(), example.form))
    return out


def train(
    datasets: Iterable[Dataset | str | Path],
    extra_examples: Iterable[Example | tuple[str, str]] = (),
    *,
    taxonomy: Taxonomy | str | Path | None = None,
    config: TrainConfig | None = None,
    label_column: str = DEFAULT_LABEL_COLUMN,
    cache_dir: Path | None = None,
    log: Log = _quiet,
) -> Classifier:
    """Train a classifier from CSV files plus the centre's own decisions.

    `extra_examples` are (raw text, first-level label) pairs, e.g. every manual dispatch,
    re-dispatch after 退单 and category correction from the tickets store. Labels must be
    first-level classes of the taxonomy when one is given. Raises DataError on unusable data.
    """
    config = config or TrainConfig()
    if config.family not in EXPORTABLE:
        raise DataError(f"未知的模型类型 {config.family}（可选: {', '.join(EXPORTABLE)}）")
    started = time.perf_counter()
    sets = as_datasets(datasets, label_column)
    extra = _extra(extra_examples)
    if not sets and not extra:
        raise DataError("没有训练数据: 请用 --data 指定至少一个 CSV 文件")
    if isinstance(taxonomy, (str, Path)):
        taxonomy = Taxonomy.from_csv(taxonomy)
    tax = taxonomy or Taxonomy({})
    examples = [e for d in sets for e in d.examples] + extra
    if tax.tree:
        unknown = sorted({e.label for e in examples} - set(tax.level1))
        if unknown:
            shown = "、".join(unknown[:5]) + ("…" if len(unknown) > 5 else "")
            raise DataError(f"标签不是分类体系中的一级分类: {shown}（共 {len(unknown)} 个）")
    dedup = deduplicate(examples)
    counts = Counter(e.label for e in dedup.examples)
    rare = sorted(label for label, n in counts.items() if n < MIN_CLASS_EXAMPLES)
    used = [e for e in dedup.examples if e.label not in rare]
    if len({e.label for e in used}) < 2:
        raise DataError(f"训练数据至少需要 2 个类别、每类至少 {MIN_CLASS_EXAMPLES} 条样本")
    log(
        f"样本 {len(used)} 条（去重 {dedup.duplicates}，标签冲突删除 {dedup.conflicts}"
        + (f"，样本过少的类别 {'、'.join(rare)} 未参与训练" if rare else "")
        + "）"
    )
    segmenter = training_segmenter(cache_dir)
    tokens = [tokens_of(segmenter, e) for e in used]
    labels = [e.label for e in used]
    files = {
        "taxonomy.json": _taxonomy_bytes(tax),
        "userdict.txt": USERDICT_PATH.read_bytes(),
        "stopwords.txt": STOPWORDS_PATH.read_bytes(),
        artifact.DICTIONARY_FILE: ensure_dictionary().read_bytes(),
    }
    metrics: dict[str, Any] = {}
    split = _holdout_split(labels, config)
    if split is not None:
        fit_idx, test_idx = split
        held = fit_tokens(
            [tokens[i] for i in fit_idx],
            [labels[i] for i in fit_idx],
            config,
            segmenter,
            tax,
            files,
        )
        report = evaluate(held, [used[i] for i in test_idx], tokens=[tokens[i] for i in test_idx])
        metrics = {
            "holdout": {k: report[k] for k in ("macro_f1", "accuracy", "n", "per_class")},
            "holdout_note": (
                f"{config.holdout:.0%} stratified holdout (seed {config.seed}), model refit on "
                "all rows afterwards. Optimistic: raw and tokenized copies of one message can "
                "fall on both sides. Honest figures: bench/classifier.py"
            ),
        }
        log(f"留出集 macro-F1 {report['macro_f1']:.4f}，accuracy {report['accuracy']:.4f}")
    fit_started = time.perf_counter()
    clf = fit_tokens(tokens, labels, config, segmenter, tax, files)
    fit_seconds = time.perf_counter() - fit_started
    clf.manifest = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": config.seed,
        "family": config.family,
        "features": config.features.to_dict(),
        "classes": clf.classes,
        "training": {
            "datasets": [d.summary() for d in sets],
            "extra_examples": {"n": len(extra), "sha256": examples_sha256(extra)},
            "examples_used": len(used),
            "duplicates_dropped": dedup.duplicates,
            "conflicts_dropped": dedup.conflicts,
            "rare_classes_dropped": rare,
            "label_counts": dict(sorted(Counter(labels).items())),
            "fit_seconds": round(fit_seconds, 1),
            "total_seconds": round(time.perf_counter() - started, 1),
        },
        "metrics": metrics,
        "versions": _versions(),
    }
    return clf


def _taxonomy_bytes(tax: Taxonomy) -> bytes:
    import json

    return (json.dumps(tax.tree, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _holdout_split(
    labels: Sequence[str], config: TrainConfig
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]] | None:
    from sklearn.model_selection import StratifiedShuffleSplit

    counts = Counter(labels)
    n_test = round(len(labels) * config.holdout)
    # every class needs a member on both sides, and enough left to calibrate on
    if config.holdout <= 0 or n_test < len(counts) or min(counts.values()) < 2 * MIN_CLASS_EXAMPLES:
        return None
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_test, random_state=config.seed)
    fit_idx, test_idx = next(splitter.split(np.zeros(len(labels)), labels))
    return fit_idx, test_idx


def fit_tokens(
    tokens: Sequence[Sequence[str]],
    labels: Sequence[str],
    config: TrainConfig,
    segmenter: Segmenter,
    tax: Taxonomy,
    files: dict[str, bytes],
) -> Classifier:
    """Fit features and model on documents already turned into tokens (no manifest yet)."""
    builder = FeatureMatrixBuilder(config.features)
    X = builder.fit_transform(tokens)
    estimator = make_estimator(config.family, config.seed, min(Counter(labels).values()))
    estimator.fit(X, np.asarray(labels))
    return Classifier(
        builder.export(),
        export_estimator(estimator),
        segmenter,
        Taxonomy(tax.tree),
        {"classes": [str(c) for c in estimator.classes_]},
        files,
    )


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for dist in ("scikit-learn", "numpy", "scipy", "jieba"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "unknown"
    return versions


# -- evaluation -----------------------------------------------------------------------------


def evaluate(
    clf: Classifier,
    examples: Sequence[Example],
    *,
    tokens: Sequence[Sequence[str]] | None = None,
) -> dict[str, Any]:
    """macro-F1, accuracy, n, ms per document and a per-class table for labelled examples.

    ms_per_doc is the wall time of the whole per-request path (segmentation, features, scoring,
    kind and taxonomy suggestions for raw text), one document at a time as a server calls it.
    """
    from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support

    if not examples:
        raise DataError("评估数据为空")
    predicted: list[str] = []
    times: list[float] = []
    for i, example in enumerate(examples):
        t0 = time.perf_counter()
        if tokens is not None:
            label = clf.top_labels([tokens[i]])[0][0][0]
        elif example.form is Form.RAW:
            label = clf.predict(example.text).label
        else:
            label = clf.top_labels([clf.segmenter.retokenize(example.text)])[0][0][0]
        times.append(time.perf_counter() - t0)
        predicted.append(label)
    truth = [e.label for e in examples]
    labels = sorted(set(truth) | set(predicted))
    p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=labels, zero_division=0)
    ms = np.asarray(times) * 1000
    return {
        "macro_f1": round(float(f1_score(truth, predicted, average="macro", zero_division=0)), 4),
        "accuracy": round(float(accuracy_score(truth, predicted)), 4),
        "n": len(examples),
        "ms_per_doc": round(float(ms.mean()), 3),
        "ms_per_doc_p95": round(float(np.percentile(ms, 95)), 3),
        "model_version": clf.version,
        "unknown_labels": sorted(set(truth) - set(clf.classes)),
        "per_class": {
            label: {
                "precision": round(float(p[i]), 4),
                "recall": round(float(r[i]), 4),
                "f1": round(float(f[i]), 4),
                "support": int(s[i]),
            }
            for i, label in enumerate(labels)
        },
    }


# -- promotion ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PromotionResult:
    promoted: bool
    message: str  # Chinese, for the operator
    new_macro_f1: float | None = None
    current_macro_f1: float | None = None
    n: int = 0
    backup: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "promoted": self.promoted,
            "message": self.message,
            "new_macro_f1": self.new_macro_f1,
            "current_macro_f1": self.current_macro_f1,
            "n": self.n,
            "backup": self.backup,
        }


def compare_and_promote(
    new_model_dir: str | Path,
    current_model_dir: str | Path,
    eval_data: Iterable[Dataset | str | Path] | Dataset | str | Path,
    *,
    min_gain: float = 0.0,
    label_column: str = DEFAULT_LABEL_COLUMN,
    cache_dir: Path | None = None,
) -> PromotionResult:
    """Evaluate the new model and the current one on held-out data; swap only if not worse.

    The new model replaces the current directory when its macro-F1 is at least the current one's
    plus `min_gain`. The swap is one rename(2) with RENAME_EXCHANGE on Linux (readers see the old
    or the new directory, never neither); the previous model is kept as `.<name>.previous`.
    Evaluation data that the new model was trained on is refused: the comparison would flatter it.
    """
    new_dir, current_dir = Path(new_model_dir), Path(current_model_dir)
    if isinstance(eval_data, (Dataset, str, Path)):
        eval_data = [eval_data]
    sets = as_datasets(eval_data, label_column)
    examples = [e for d in sets for e in d.examples]
    if not examples:
        raise DataError("评估数据为空")
    try:
        new = Classifier.load(new_dir, cache_dir=cache_dir)
    except ArtifactError as exc:
        return PromotionResult(False, f"新模型无法加载，未替换: {exc.message}")
    trained_on = {d.get("sha256") for d in new.manifest.get("training", {}).get("datasets", [])}
    leaked = [d.name for d in sets if d.sha256 and d.sha256 in trained_on]
    if leaked:
        return PromotionResult(
            False, f"评估数据 {', '.join(leaked)} 也是新模型的训练数据，不能用来比较；未替换"
        )
    new_report = evaluate(new, examples)
    new_f1 = float(new_report["macro_f1"])
    current_f1: float | None = None
    if current_dir.exists():
        try:
            current = Classifier.load(current_dir, cache_dir=cache_dir)
            current_f1 = float(evaluate(current, examples)["macro_f1"])
        except ArtifactError as exc:
            # an unloadable current model is no reason to keep it
            _logger.warning("当前模型无法加载（%s），将直接替换", exc.message)
    if current_f1 is not None and new_f1 < current_f1 + min_gain:
        return PromotionResult(
            False,
            f"新模型 macro-F1 {new_f1:.4f} 不高于当前模型 {current_f1:.4f}"
            + (f" + {min_gain:.4f}" if min_gain else "")
            + f"（{len(examples)} 条评估数据），拒绝替换",
            new_f1,
            current_f1,
            len(examples),
        )
    backup = _install(new_dir, current_dir)
    before = f"当前模型 {current_f1:.4f}" if current_f1 is not None else "此前没有可用模型"
    return PromotionResult(
        True,
        f"新模型 {new.version} macro-F1 {new_f1:.4f}（{before}，"
        f"{len(examples)} 条评估数据），已替换",
        new_f1,
        current_f1,
        len(examples),
        str(backup) if backup else None,
    )


def _install(new_dir: Path, current_dir: Path) -> Path | None:
    """Copy new_dir next to current_dir, verify the copy, then swap it in."""
    current_dir.parent.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".{current_dir.name}.incoming.", dir=current_dir.parent))
    try:
        shutil.copytree(new_dir, staged, dirs_exist_ok=True)
        os.chmod(staged, 0o755)
        artifact.verify_files(staged, artifact.read_manifest(staged), None)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    if not current_dir.exists():
        os.rename(staged, current_dir)
        return None
    backup = current_dir.with_name(f".{current_dir.name}.previous")
    shutil.rmtree(backup, ignore_errors=True)
    if _exchange(staged, current_dir):
        os.rename(staged, backup)  # `staged` now holds the previous model
    else:
        os.rename(current_dir, backup)
        os.rename(staged, current_dir)
    return backup


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return bool(rc == 0)
