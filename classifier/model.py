"""The classifier a server loads once: predict category (top 3), kind and lower-level categories."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from classifier import artifact
from classifier.errors import ArtifactError
from classifier.features import FeatureSpec, LinearScorer, Vectorizer
from classifier.kind import suggest_kind
from classifier.taxonomy import Suggestion, Taxonomy, read_synonyms
from classifier.text import Segmenter, ensure_dictionary, normalize

if TYPE_CHECKING:
    from concurrent.futures import Executor

TOP_K = 3


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the classifier suggests for one request; the agent or dispatcher decides."""

    top3: tuple[tuple[str, float], ...]  # (first-level category, calibrated probability)
    kind: str  # consult / help / complaint / report / suggestion / praise / other
    kind_cues: tuple[str, ...]  # the words behind `kind`
    second_level: tuple[Suggestion, ...]  # under top3[0], by keyword match
    third_level: tuple[Suggestion, ...]
    model_version: str

    @property
    def label(self) -> str:
        return self.top3[0][0]

    @property
    def probability(self) -> float:
        return self.top3[0][1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "probability": round(self.probability, 4),
            "top3": [{"label": lab, "probability": round(p, 4)} for lab, p in self.top3],
            "kind": self.kind,
            "kind_cues": list(self.kind_cues),
            "second_level": [s.to_dict() for s in self.second_level],
            "third_level": [s.to_dict() for s in self.third_level],
            "model_version": self.model_version,
        }


class Classifier:
    """Segmenter + tf-idf + linear scorer + taxonomy; immutable after construction.

    Everything `predict` touches is read-only, so one instance serves any number of threads.
    Call it from a ThreadPoolExecutor (`predict_async`) so the event loop never waits on it.
    """

    def __init__(
        self,
        vectorizer: Vectorizer,
        scorer: LinearScorer,
        segmenter: Segmenter,
        taxonomy: Taxonomy,
        manifest: dict[str, Any],
        files: dict[str, bytes],
    ) -> None:
        self.vectorizer = vectorizer
        self.scorer = scorer
        self.segmenter = segmenter
        self.taxonomy = taxonomy
        self.manifest = manifest
        self._files = files
        taxonomy.prepare(segmenter.cut, read_synonyms())

    @property
    def version(self) -> str:
        return str(self.manifest.get("version", "unsaved"))

    @property
    def classes(self) -> list[str]:
        return list(self.scorer.classes)

    @classmethod
    def load(
        cls,
        model_dir: str | Path,
        *,
        cache_dir: Path | None = None,
        expected_sha256: str | None = None,
    ) -> Classifier:
        """Load a model directory after checking every file against manifest.json.

        `expected_sha256` pins model.npz (e.g. from config) so that a replaced directory with a
        self-consistent manifest is refused too. Raises ArtifactError (Chinese message).
        The segmenter uses the model's own jieba_dict.txt when it has one (never jieba's full
        dictionary, whose loading took ~85 % of the load time); `cache_dir` only matters for
        older models without it.
        """
        model_dir = Path(model_dir)
        manifest = artifact.read_manifest(model_dir)
        if artifact.DICTIONARY_FILE in manifest.get("files", {}):
            # the trimmed jieba dictionary is built from the installed jieba, not shipped;
            # its hash in the manifest then proves it is the one the model was trained with
            ensure_dictionary(model_dir / artifact.DICTIONARY_FILE)
        artifact.verify_files(model_dir, manifest, expected_sha256)
        arrays = artifact.read_arrays(model_dir)
        try:
            vectorizer, scorer = _from_arrays(arrays)
            taxonomy = Taxonomy(json.loads((model_dir / "taxonomy.json").read_text("utf-8")))
        except (KeyError, ValueError, TypeError) as exc:
            raise ArtifactError(f"模型目录 {model_dir} 的内容不完整或格式不对: {exc}") from exc
        if manifest.get("classes") != scorer.classes:
            raise ArtifactError(f"模型目录 {model_dir} 的 manifest.json 与模型文件的类别不一致")
        names = list(artifact.REQUIRED_FILES[1:])
        dictionary = None
        if artifact.DICTIONARY_FILE in manifest["files"]:  # checked by verify_files
            dictionary = model_dir / artifact.DICTIONARY_FILE
            names.append(artifact.DICTIONARY_FILE)
        segmenter = Segmenter(
            userdict=model_dir / "userdict.txt",
            stopwords=model_dir / "stopwords.txt",
            cache_dir=cache_dir,
            dictionary=dictionary,
        )
        files = {name: (model_dir / name).read_bytes() for name in names}
        return cls(vectorizer, scorer, segmenter, taxonomy, manifest, files)

    def save(self, out_dir: str | Path) -> dict[str, Any]:
        """Write the model directory (atomically); returns the manifest with hashes and version."""
        manifest = {k: v for k, v in self.manifest.items() if k not in ("files", "version")}
        manifest["classes"] = self.scorer.classes
        self.manifest = artifact.write_model_dir(
            Path(out_dir), _to_arrays(self), manifest, self._files
        )
        return self.manifest

    # -- prediction ---------------------------------------------------------------------------

    def predict(self, text: str) -> Prediction:
        # Everything works on the first max_chars characters, which bounds the time per request.
        clean = normalize(text)[: self.vectorizer.spec.max_chars]
        return self._predict(clean, self.segmenter.tokens_of_normalized(clean))

    def predict_many(self, texts: Iterable[str]) -> list[Prediction]:
        return [self.predict(t) for t in texts]

    async def predict_async(self, text: str, executor: Executor | None = None) -> Prediction:
        """predict() in `executor` (the loop's default if None), off the event loop."""
        import asyncio  # here: a CLI or worker process that never awaits need not import it

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(executor, self.predict, text)

    def top_labels(
        self, token_lists: Sequence[Sequence[str]]
    ) -> list[tuple[tuple[str, float], ...]]:
        """Top-3 (label, probability) for documents already turned into model tokens."""
        return [self._top(tokens) for tokens in token_lists]

    def _top(self, tokens: Sequence[str]) -> tuple[tuple[str, float], ...]:
        idx, val = self.vectorizer.transform_one(tokens)
        proba = self.scorer.proba(idx, val)
        order = np.argsort(-proba, kind="stable")[:TOP_K]
        return tuple((self.scorer.classes[i], float(proba[i])) for i in order)

    def _predict(self, text: str, tokens: Sequence[str]) -> Prediction:
        top = self._top(tokens)
        kind = suggest_kind(text, normalized=True)
        second, third = self.taxonomy.suggest(top[0][0], text, normalized=True)
        return Prediction(
            top3=top,
            kind=kind.kind.value,
            kind_cues=kind.cues,
            second_level=tuple(second),
            third_level=tuple(third),
            model_version=self.version,
        )


def _to_arrays(clf: Classifier) -> dict[str, Any]:
    v, s = clf.vectorizer, clf.scorer
    meta = {"features": v.spec.to_dict(), "calibration": s.calibration}
    return {
        "meta": artifact.encode_json(meta),
        "classes": artifact.encode_strings(s.classes),
        "word_terms": artifact.encode_strings(v.word_terms),
        "char_terms": artifact.encode_strings(v.char_terms),
        "word_idf": v.word_idf.astype(np.float64),
        "char_idf": v.char_idf.astype(np.float64),
        "head_terms": artifact.encode_strings(v.head_terms),
        "head_idf": v.head_idf.astype(np.float64),
        "coef": s.coef.astype(np.float32),
        "intercept": s.intercept.astype(np.float64),
        "cal_a": s.cal_a.astype(np.float64),
        "cal_b": s.cal_b.astype(np.float64),
    }


def _from_arrays(arrays: dict[str, Any]) -> tuple[Vectorizer, LinearScorer]:
    meta = artifact.decode_json(arrays["meta"])
    spec = FeatureSpec.from_dict(meta["features"])
    word_terms = artifact.decode_strings(arrays["word_terms"])
    char_terms = artifact.decode_strings(arrays["char_terms"])
    word_idf = np.asarray(arrays["word_idf"], dtype=np.float64)
    char_idf = np.asarray(arrays["char_idf"], dtype=np.float64)
    # models from before the head block have neither array
    head_terms = artifact.decode_strings(arrays.get("head_terms", np.zeros(0, dtype=np.uint8)))
    head_idf = np.asarray(arrays.get("head_idf", np.zeros(0)), dtype=np.float64)
    classes = artifact.decode_strings(arrays["classes"])
    coef = np.asarray(arrays["coef"], dtype=np.float32)
    n_scores = 1 if len(classes) == 2 else len(classes)
    if (
        len(word_terms) != word_idf.shape[0]
        or len(char_terms) != char_idf.shape[0]
        or len(head_terms) != head_idf.shape[0]
    ):
        raise ValueError("vocabulary and idf sizes differ")
    if coef.shape != (len(word_terms) + len(char_terms) + len(head_terms), n_scores):
        raise ValueError(f"coefficient shape {coef.shape} does not fit the vocabulary")
    calibration = str(meta["calibration"])
    if calibration not in ("sigmoid", "softmax"):
        raise ValueError(f"unknown calibration {calibration!r}")
    scorer = LinearScorer(
        classes,
        coef,
        np.asarray(arrays["intercept"], dtype=np.float64),
        calibration,
        np.asarray(arrays["cal_a"], dtype=np.float64),
        np.asarray(arrays["cal_b"], dtype=np.float64),
    )
    vectorizer = Vectorizer(spec, word_terms, word_idf, char_terms, char_idf, head_terms, head_idf)
    return vectorizer, scorer
