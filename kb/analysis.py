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
_RUNS = re.compile(r"([\u3400-\u9fff\uf900-\ufaff]+)|([^\W_\u3400-\u9fff\uf900-\ufaff]+)")
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
        names = sorted({normalize(n) for n in official if len(n) >= self.MIN_FUZZY}, key=len)
        self._names = set(names)
        # a window one character off a name matches it at its first or its second character:
        # only the names starting so are compared there (longest first)
        self._by_first: dict[str, list[str]] = {}
        self._by_second: dict[str, list[str]] = {}
        for name in reversed(names):
            self._by_first.setdefault(name[0], []).append(name)
            self._by_second.setdefault(name[1], []).append(name)

    def canonical(self, text: str) -> str:
        return self._canonical(text) if self._canonical else text

    def correct(self, text: str) -> str:
        """Replace windows one character off an official name (not the name itself)."""
        if not self._names:
            return text
        out: list[str] = []
        i = 0
        n = len(text)
        while i < n:
            fixed = None
            first = self._by_first.get(text[i], [])
            second = self._by_second.get(text[i + 1], []) if i + 1 < n else []
            if first or second:
                exact = self._names_at(text, i)
                if exact:
                    fixed = max(exact, key=len)
                else:
                    found = {name for name in (*first, *second) if _one_off(text, i, name)}
                    longest = max((len(f) for f in found), default=0)
                    best = [f for f in found if len(f) == longest]
                    fixed = best[0] if len(best) == 1 else None  # two as close: neither
            if fixed:
                out.append(fixed)
                i += len(fixed)
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _names_at(self, text: str, i: int) -> set[str]:
        return {name for name in self._by_first.get(text[i], []) if text.startswith(name, i)}


def _one_off(text: str, i: int, name: str) -> bool:
    """text[i:i+len(name)] equals `name` but for at most one character."""
    if i + len(name) > len(text):
        return False
    misses = 0
    for a, b in zip(text[i : i + len(name)], name, strict=True):
        if a != b:
            misses += 1
            if misses > 1:
                return False
    return True


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
        if query:
            text = self.places.correct(text)
        text = self.places.canonical(text)
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
