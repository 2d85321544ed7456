"""Features and the linear model: fitted with scikit-learn, served by a small numpy scorer.

Training uses TfidfVectorizer and a scikit-learn linear classifier. For serving, the fitted
vocabularies, idf weights, coefficients and calibration are exported to plain arrays and scored
here directly: the numbers are the same as scikit-learn's (tests check it), a single request takes
well under a millisecond instead of the ~3.5 ms of scikit-learn's per-call validation, and the
artifact is arrays only, so loading it can never run code.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from itertools import repeat
from typing import Any

import numpy as np
import numpy.typing as npt

from classifier.config import FAMILIES

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """Word n-grams over the tokens plus character n-grams over the tokens run together.

    Character n-grams of the concatenation do not depend on where jieba put the boundaries, which
    is what differs between the pre-segmented training set and raw text segmented here.

    A third block repeats the character n-grams of the first `head_tokens` tokens (roughly the
    title: 8 tokens at the median), scaled by `head_weight` after its l2 normalisation. The title
    names the matter; the body's many incidental words (places, dates, who did what) blur it.
    The training set has no title/body split, so the head is a fixed number of tokens for every
    text, raw or segmented. bench/classifier.py: +0.7 point CV macro-F1, gained in every fold.
    """

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (1, 3)
    min_df: int = 2
    max_word_features: int = 50_000
    max_char_features: int = 50_000
    # Raw text is classified on its first max_chars characters: the title and opening carry the
    # category, and the tail of a long letter only adds segmentation time (bench/classifier.py).
    max_chars: int = 800
    head_tokens: int = 10  # 0: no head block
    head_weight: float = 0.6
    max_head_features: int = 50_000

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        return cls(
            word_ngrams=(int(data["word_ngrams"][0]), int(data["word_ngrams"][1])),
            char_ngrams=(int(data["char_ngrams"][0]), int(data["char_ngrams"][1])),
            min_df=int(data["min_df"]),
            max_word_features=int(data["max_word_features"]),
            max_char_features=int(data["max_char_features"]),
            max_chars=int(data["max_chars"]),
            # models from before the head block have none
            head_tokens=int(data.get("head_tokens", 0)),
            head_weight=float(data.get("head_weight", 0.0)),
            max_head_features=int(data.get("max_head_features", 0)),
        )


def views(tokens: Sequence[str]) -> tuple[str, str]:
    """The two strings the vectorizers read: tokens separated by spaces, and run together."""
    return " ".join(tokens), "".join(tokens)


def head_view(tokens: Sequence[str], n: int) -> str:
    """What the head block reads: the first n tokens run together."""
    return "".join(tokens[:n])


def word_ngrams(tokens: Sequence[str], lo: int, hi: int) -> list[str]:
    grams: list[str] = []
    for n in range(lo, hi + 1):
        grams.extend(" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    return grams


def char_ngrams(text: str, lo: int, hi: int) -> list[str]:
    grams: list[str] = []
    for n in range(lo, min(hi, len(text)) + 1):
        grams.extend(text[i : i + n] for i in range(len(text) - n + 1))
    return grams


def sklearn_vectorizers(spec: FeatureSpec) -> tuple[Any, Any, Any]:
    """The TfidfVectorizers that fit the vocabularies (sublinear tf, l2 per block).

    The third (head) is None when spec.head_tokens is 0.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    word = TfidfVectorizer(
        analyzer=_WordAnalyzer(spec.word_ngrams),
        min_df=spec.min_df,
        max_features=spec.max_word_features,
        sublinear_tf=True,
        lowercase=False,
        dtype=np.float64,
    )
    char = TfidfVectorizer(
        analyzer=_CharAnalyzer(spec.char_ngrams),
        min_df=spec.min_df,
        max_features=spec.max_char_features,
        sublinear_tf=True,
        lowercase=False,
        dtype=np.float64,
    )
    head = None
    if spec.head_tokens > 0:
        head = TfidfVectorizer(
            analyzer=_CharAnalyzer(spec.char_ngrams),
            min_df=spec.min_df,
            max_features=spec.max_head_features,
            sublinear_tf=True,
            lowercase=False,
            dtype=np.float64,
        )
    return word, char, head


class _WordAnalyzer:
    """Callable analyzer for TfidfVectorizer: the same n-grams the serving code produces."""

    def __init__(self, ngrams: tuple[int, int]) -> None:
        self.ngrams = ngrams

    def __call__(self, doc: str) -> list[str]:
        return word_ngrams(doc.split(" ") if doc else [], *self.ngrams)


class _CharAnalyzer:
    def __init__(self, ngrams: tuple[int, int]) -> None:
        self.ngrams = ngrams

    def __call__(self, doc: str) -> list[str]:
        return char_ngrams(doc, *self.ngrams)


class FeatureMatrixBuilder:
    """Fits the vectorizers on token lists and returns the stacked tf-idf matrix."""

    def __init__(self, spec: FeatureSpec) -> None:
        self.spec = spec
        self.word, self.char, self.head = sklearn_vectorizers(spec)

    def fit_transform(self, token_lists: Sequence[Sequence[str]]) -> Any:
        return self._matrix(token_lists, fit=True)

    def transform(self, token_lists: Sequence[Sequence[str]]) -> Any:
        return self._matrix(token_lists, fit=False)

    def _matrix(self, token_lists: Sequence[Sequence[str]], *, fit: bool) -> Any:
        import scipy.sparse as sp

        def run(vectorizer: Any, docs: list[str]) -> Any:
            return vectorizer.fit_transform(docs) if fit else vectorizer.transform(docs)

        spaced, joined = _split_views(token_lists)
        blocks = [run(self.word, spaced), run(self.char, joined)]
        if self.head is not None:
            heads = [head_view(t, self.spec.head_tokens) for t in token_lists]
            blocks.append(run(self.head, heads) * self.spec.head_weight)
        return sp.hstack(blocks, format="csr")

    def export(self) -> Vectorizer:
        head_terms: list[str] = []
        head_idf = np.zeros(0)
        if self.head is not None:
            head_terms = _terms(self.head.vocabulary_)
            head_idf = np.asarray(self.head.idf_, dtype=np.float64)
        return Vectorizer(
            self.spec,
            _terms(self.word.vocabulary_),
            np.asarray(self.word.idf_, dtype=np.float64),
            _terms(self.char.vocabulary_),
            np.asarray(self.char.idf_, dtype=np.float64),
            head_terms,
            head_idf,
        )


def _split_views(token_lists: Sequence[Sequence[str]]) -> tuple[list[str], list[str]]:
    pairs = [views(t) for t in token_lists]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _terms(vocabulary: dict[str, int]) -> list[str]:
    terms = [""] * len(vocabulary)
    for term, index in vocabulary.items():
        terms[index] = term
    return terms


class Vectorizer:
    """Serving-side tf-idf: the exported vocabularies and idf weights, nothing else."""

    def __init__(
        self,
        spec: FeatureSpec,
        word_terms: list[str],
        word_idf: FloatArray,
        char_terms: list[str],
        char_idf: FloatArray,
        head_terms: list[str] | None = None,
        head_idf: FloatArray | None = None,
    ) -> None:
        self.spec = spec
        self.word_terms = word_terms
        self.char_terms = char_terms
        self.head_terms = head_terms or []
        self.word_idf = word_idf
        self.char_idf = char_idf
        self.head_idf = head_idf if head_idf is not None else np.zeros(0)
        if (spec.head_tokens > 0) != bool(self.head_terms):
            raise ValueError("head block settings and head vocabulary do not match")
        self._word_index = {t: i for i, t in enumerate(word_terms)}
        self._char_index = {t: i for i, t in enumerate(char_terms)}
        self._head_index = {t: i for i, t in enumerate(self.head_terms)}
        self.n_features = len(word_terms) + len(char_terms) + len(self.head_terms)

    def transform_one(self, tokens: Sequence[str]) -> tuple[npt.NDArray[np.intp], FloatArray]:
        """Column indices and values of one document's feature row (word, char, head blocks)."""
        spaced, joined = views(tokens)
        w_idx, w_val = _block(
            word_ngrams(spaced.split(" ") if spaced else [], *self.spec.word_ngrams),
            self._word_index,
            self.word_idf,
            0,
        )
        c_idx, c_val = _block(
            char_ngrams(joined, *self.spec.char_ngrams),
            self._char_index,
            self.char_idf,
            len(self.word_terms),
        )
        if not self.head_terms:
            return np.concatenate([w_idx, c_idx]), np.concatenate([w_val, c_val])
        h_idx, h_val = _block(
            char_ngrams(head_view(tokens, self.spec.head_tokens), *self.spec.char_ngrams),
            self._head_index,
            self.head_idf,
            len(self.word_terms) + len(self.char_terms),
        )
        h_val *= self.spec.head_weight
        return np.concatenate([w_idx, c_idx, h_idx]), np.concatenate([w_val, c_val, h_val])

    def transform(self, token_lists: Sequence[Sequence[str]]) -> Any:
        import scipy.sparse as sp

        indptr = [0]
        indices: list[npt.NDArray[np.intp]] = []
        data: list[FloatArray] = []
        for tokens in token_lists:
            idx, val = self.transform_one(tokens)
            indices.append(idx)
            data.append(val)
            indptr.append(indptr[-1] + len(idx))
        return sp.csr_matrix(
            (
                np.concatenate(data) if data else np.zeros(0),
                np.concatenate(indices) if indices else np.zeros(0, dtype=np.intp),
                np.asarray(indptr),
            ),
            shape=(len(token_lists), self.n_features),
        )


def _block(
    grams: list[str], index: dict[str, int], idf: FloatArray, offset: int
) -> tuple[npt.NDArray[np.intp], FloatArray]:
    # Counting, looking up and taking logs all run in C: map() over a bound dict.get and numpy,
    # no Python-level loop over the ~1,000 distinct n-grams of a message.
    counts = Counter(grams)
    n = len(counts)
    found = np.fromiter(map(index.get, counts, repeat(-1, n)), dtype=np.intp, count=n)
    keep = found >= 0
    if not keep.any():
        return np.zeros(0, dtype=np.intp), np.zeros(0)
    cols = found[keep]
    tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=n)[keep])
    values = tf * idf[cols]
    norm = float(np.sqrt(values @ values))
    if norm > 0:
        values /= norm
    return cols + offset, values


@dataclass(slots=True)
class LinearScorer:
    """Class scores w·x + b, turned into probabilities.

    `calibration` is "sigmoid" (per-class Platt scaling fitted by CalibratedClassifierCV on
    out-of-fold scores, then normalised to sum to one) or "softmax" (logistic regression).
    """

    classes: list[str]
    coef: npt.NDArray[np.float32]  # (n_features, n_scores); n_scores is 1 for two classes
    intercept: FloatArray  # (n_scores,)
    calibration: str
    cal_a: FloatArray  # (n_scores,) sigmoid slopes; empty for softmax
    cal_b: FloatArray

    def decision(self, idx: npt.NDArray[np.intp], val: FloatArray) -> FloatArray:
        return val @ self.coef[idx] + self.intercept

    def proba_from_decision(self, d: FloatArray) -> FloatArray:
        if self.calibration == "softmax":
            if d.shape[0] == 1:  # binary logistic regression
                p1 = 1.0 / (1.0 + np.exp(-d[0]))
                return np.array([1.0 - p1, p1])
            z = np.exp(d - d.max())
            return np.asarray(z / z.sum(), dtype=np.float64)
        p = 1.0 / (1.0 + np.exp(self.cal_a * d + self.cal_b))
        if p.shape[0] == 1:
            return np.array([1.0 - p[0], p[0]])
        total = p.sum()
        if total == 0:
            return np.full(p.shape, 1.0 / p.shape[0])
        return np.asarray(p / total, dtype=np.float64)

    def proba(self, idx: npt.NDArray[np.intp], val: FloatArray) -> FloatArray:
        return self.proba_from_decision(self.decision(idx, val))


def make_estimator(family: str, seed: int, min_class_count: int = 5) -> Any:
    """A scikit-learn classifier of the family (config.FAMILIES); all but "cnb" export.

    Calibration folds shrink for tiny data sets (each class needs a member in every fold).
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
    from sklearn.model_selection import StratifiedKFold
    from sklearn.naive_bayes import ComplementNB
    from sklearn.svm import LinearSVC

    if family == "lr":
        return LogisticRegression(C=30.0, max_iter=3000, class_weight="balanced", random_state=seed)
    if family == "cnb":
        return ComplementNB(alpha=0.03)
    base: Any
    if family == "svc":
        base = LinearSVC(C=1.0, class_weight="balanced", random_state=seed)
    elif family == "sgd":
        base = SGDClassifier(
            loss="modified_huber",
            alpha=5e-5,
            class_weight="balanced",
            max_iter=50,
            tol=None,
            random_state=seed,
        )
    elif family == "ridge":
        base = RidgeClassifier(alpha=1.0, class_weight="balanced", solver="sparse_cg")
    else:
        raise ValueError(f"unknown model family {family!r}; one of {', '.join(FAMILIES)}")
    folds = max(2, min(5, min_class_count))
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return CalibratedClassifierCV(base, method="sigmoid", cv=cv, ensemble=False)


def export_estimator(estimator: Any) -> LinearScorer:
    """Arrays of a fitted exportable estimator (see make_estimator)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    classes = [str(c) for c in estimator.classes_]
    if isinstance(estimator, LogisticRegression):
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        return LinearScorer(
            classes,
            np.ascontiguousarray(coef.T, dtype=np.float32),
            np.asarray(estimator.intercept_, dtype=np.float64),
            "softmax",
            np.zeros(0),
            np.zeros(0),
        )
    if isinstance(estimator, CalibratedClassifierCV):
        (calibrated,) = estimator.calibrated_classifiers_
        base = calibrated.estimator
        coef = np.asarray(base.coef_, dtype=np.float64)
        intercept = np.broadcast_to(np.asarray(base.intercept_, dtype=np.float64), coef.shape[:1])
        a = np.array([c.a_ for c in calibrated.calibrators], dtype=np.float64)
        b = np.array([c.b_ for c in calibrated.calibrators], dtype=np.float64)
        return LinearScorer(
            classes,
            np.ascontiguousarray(coef.T, dtype=np.float32),
            np.array(intercept),
            "sigmoid",
            a,
            b,
        )
    raise TypeError(f"cannot export {type(estimator).__name__}: not a linear model")
