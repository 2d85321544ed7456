"""Text analysis shared by both search adapters: normalise, segment, bigrams, place names.

Both adapters index what this module produces (space-separated tokens; Elasticsearch through
its whitespace analyzer), so they rank the same words. Chinese runs are segmented by an injected
word segmenter (the classifier's jieba pipeline, so search and classification share one
dictionary); other scripts (Mongolian, Latin, digits) are split into words. Every Han run also
yields character bigrams, which keep a typo or a segmentation difference from losing a match.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Protocol


class WordSegmenter(Protocol):
    """Chinese word tokens of a text: lower-case, no punctuation or stop words."""

    def tokens(self, text: str) -> list[str]: ...


class _HanChars:
    """Fallback without a segmenter: every Han character is a word."""

    def tokens(self, text: str) -> list[str]:
        return [c for c in text if _HAN_CHAR.match(c)]


_HAN_CHAR = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
# a run of Han characters, or of any other letters and digits (Mongolian, Latin, numbers)
_RUNS = re.compile(r"([\u3400-\u9fff\uf900-\ufaff]+)|([^\W_]+)")
# Mongolian free variation selectors, the vowel separator and joiners: spelling variants that
# must not split or change a word for search
_MONGOLIAN_MARKS = re.compile("[\u180b-\u180f\u200c\u200d]")
# the narrow no-break space joins a Mongolian case suffix to its word: a word boundary here
_NNBSP = "\u202f"
_TO_SIMPLIFIED: Callable[[str], str] | None = None


def to_simplified(text: str) -> str:
    """Traditional → Simplified Chinese with OpenCC's t2s tables (phrases, then characters)."""
    global _TO_SIMPLIFIED
    if _TO_SIMPLIFIED is None:
        import opencc

        _TO_SIMPLIFIED = opencc.OpenCC("t2s").convert
    return _TO_SIMPLIFIED(text)


def normalize(text: str) -> str:
    """NFKC (full-width → half-width), lower case, Simplified Chinese, Mongolian marks out."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _MONGOLIAN_MARKS.sub("", text.replace(_NNBSP, " "))
    return to_simplified(text)


@dataclass(frozen=True, slots=True)
class Analyzed:
    words: tuple[str, ...]
    grams: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.words or self.grams)


class PlaceNames:
    """Place names for search: aliases rewritten to the official name (呼市 → 呼和浩特市) in
    documents and queries alike, and, in queries only, an official name with one wrong character
    (呼和浩持) corrected to it. `canonical` is the gazetteer's rewrite (it knows the words that
    contain a name but mean something else); `official` the names to correct towards."""

    MIN_FUZZY = 4  # shorter names are too close to ordinary words (新城区 / 老城区)

    def __init__(
        self, canonical: Callable[[str], str] | None = None, official: Collection[str] = ()
    ) -> None:
        self._canonical = canonical
        self._by_pattern: dict[str, str] = {}
        names = {normalize(n) for n in official if len(n) >= self.MIN_FUZZY}
        for name in names:
            for i in range(len(name)):
                key = name[:i] + "\0" + name[i + 1 :]
                # two names one character apart: correct to neither
                self._by_pattern[key] = "" if key in self._by_pattern else name
        self._names = names
        self._lengths = sorted({len(n) for n in names}, reverse=True)

    def canonical(self, text: str) -> str:
        return self._canonical(text) if self._canonical else text

    def correct(self, text: str) -> str:
        """Replace windows one character off an official name (not the name itself)."""
        if not self._names:
            return text
        out: list[str] = []
        i = 0
        while i < len(text):
            fixed = None
            for n in self._lengths:
                window = text[i : i + n]
                if len(window) < n or not _HAN_CHAR.match(window[0]):
                    continue
                if window in self._names:
                    fixed = window
                    break
                for j in range(n):
                    name = self._by_pattern.get(window[:j] + "\0" + window[j + 1 :])
                    if name:
                        fixed = name
                        break
                if fixed:
                    break
            if fixed:
                out.append(fixed)
                i += len(fixed)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)


class Analyzer:
    """Text → words and bigrams, the same way for documents and queries."""

    def __init__(
        self, segmenter: WordSegmenter | None = None, places: PlaceNames | None = None
    ) -> None:
        self.segmenter: WordSegmenter = segmenter or _HanChars()
        self.places = places or PlaceNames()

    def document(self, *texts: str | None) -> Analyzed:
        return self._analyze(" \n ".join(t for t in texts if t), query=False)

    def query(self, *texts: str | None) -> Analyzed:
        return self._analyze(" \n ".join(t for t in texts if t), query=True)

    def _analyze(self, text: str, *, query: bool) -> Analyzed:
        text = normalize(text)
        text = self.places.canonical(text)
        if query:
            text = self.places.correct(text)
        words: list[str] = []
        grams: list[str] = []
        for m in _RUNS.finditer(text):
            han, other = m.groups()
            if han:
                words.extend(self.segmenter.tokens(han))
                grams.extend(han[i : i + 2] for i in range(len(han) - 1))
            elif other:
                words.append(other)
        return Analyzed(tuple(words), tuple(grams))


def joined(tokens: Iterable[str]) -> str:
    """Tokens as the adapters store them: separated by single spaces."""
    return " ".join(tokens)
