"""Recipes for the word lists in classifier/data: stop words derived from data, place names."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

_CONTENT = re.compile(r"\w")


def derive_stopwords(
    raw_texts: Iterable[str],
    segmented_texts: Iterable[str],
    cut: Callable[[str], Iterable[str]],
    min_df: int = 3,
) -> list[str]:
    """Words jieba finds in raw messages that the segmented corpus never contains.

    The TipDM training set was segmented with plain jieba and then had a stop-word list applied;
    that list is not published. A word that turns up in at least `min_df` raw messages but not
    once in 8,000 segmented ones was removed on purpose, so inference must remove it too, or the
    character n-grams of raw text drift away from what the model saw.

    Words are compared as written: the segmented set has no "A" (the anonymised city letter of
    A市, in about a quarter of the raw messages) but does have "a", so "A" is a stop word and
    "a" is not. text.Segmenter matches stop words with capitals case-sensitively.
    """
    seen: set[str] = set()
    for text in segmented_texts:
        seen.update(text.split())
    df: Counter[str] = Counter()
    for text in raw_texts:
        df.update({w.strip() for w in cut(text)})
    words = [w for w, n in df.items() if n >= min_df and w and _CONTENT.search(w) and w not in seen]
    return sorted(words, key=lambda w: (-df[w], w))


def place_names(directory_toml: Path) -> list[str]:
    """League/city and banner/county names from the routing directory (routing/directory.toml)."""
    data = tomllib.loads(directory_toml.read_text(encoding="utf-8"))
    names = [data["region"]["name"]]
    for league in data.get("leagues", []):
        names.append(league["name"])
        names.extend(league.get("counties", {}).values())
    return names
