#!/usr/bin/env python3
"""The baseline our classifier must beat: plain word TF-IDF + LinearSVC on jieba words.

Segmented rows (`text`/`tokens` columns) are used as they are; raw rows (subject + detail) are cut
with plain jieba (default dictionary, nothing removed) and joined with spaces. Then scikit-learn
defaults: TfidfVectorizer() and LinearSVC(). TfidfVectorizer's default token pattern keeps words
of two or more characters; `--keep-single` keeps one-character words too (a slightly stronger
variant; bench/classifier.py reports both and compares against the stronger).

Run from the repository root (reads ../shared/data/tipdm):

    .venv/bin/python bench/baseline.py             # 5-fold CV macro-F1 on messages_tokenized.csv
    .venv/bin/python bench/baseline.py --keep-single
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "tipdm"
SKLEARN_DEFAULT_PATTERN = r"(?u)\b\w\w+\b"
SINGLE_CHAR_PATTERN = r"(?u)\b\w+\b"


class Baseline:
    """fit/predict on (text, form) pairs; form is "raw" or "segmented"."""

    def __init__(self, keep_single: bool = False, seed: int = 0) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import make_pipeline
        from sklearn.svm import LinearSVC

        pattern = SINGLE_CHAR_PATTERN if keep_single else SKLEARN_DEFAULT_PATTERN
        self.pipeline = make_pipeline(
            TfidfVectorizer(token_pattern=pattern), LinearSVC(random_state=seed)
        )
        self._jieba: Any = None

    def _words(self, text: str, form: str) -> str:
        if form != "raw":
            return text
        if self._jieba is None:
            self._jieba = _plain_jieba()
        return " ".join(self._jieba.lcut(text))

    def fit(self, docs: Sequence[tuple[str, str]], labels: Sequence[str]) -> Baseline:
        self.pipeline.fit([self._words(t, f) for t, f in docs], list(labels))
        return self

    def predict(self, docs: Sequence[tuple[str, str]]) -> list[str]:
        return [str(x) for x in self.pipeline.predict([self._words(t, f) for t, f in docs])]


def _plain_jieba() -> Any:
    from classifier.text import jieba_tokenizer

    return jieba_tokenizer(userdict=None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, help="default: the classifier's training seed")
    parser.add_argument("--keep-single", action="store_true")
    args = parser.parse_args(argv)
    if args.seed is None:
        from classifier.config import DEFAULT_SEED

        args.seed = DEFAULT_SEED

    import numpy as np
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    from classifier.datasets import deduplicate, read_csv

    examples = deduplicate(read_csv(args.data_dir / "messages_tokenized.csv").examples).examples
    docs = [(e.text, e.form.value) for e in examples]
    y = np.array([e.label for e in examples])
    scores = []
    started = time.perf_counter()
    folds = StratifiedKFold(args.folds, shuffle=True, random_state=args.seed)
    for train_idx, test_idx in folds.split(np.zeros(len(y)), y):
        model = Baseline(args.keep_single, args.seed).fit(
            [docs[i] for i in train_idx], y[train_idx]
        )
        predicted = model.predict([docs[i] for i in test_idx])
        scores.append(f1_score(y[test_idx], predicted, average="macro"))
    print(
        json.dumps(
            {
                "baseline": "keep_single" if args.keep_single else "sklearn_defaults",
                "cv_macro_f1": round(float(np.mean(scores)), 4),
                "cv_std": round(float(np.std(scores)), 4),
                "n": len(y),
                "seconds": round(time.perf_counter() - started, 1),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
    sys.path.insert(0, str(REPO))
    sys.exit(main())
