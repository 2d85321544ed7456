"""Recipes for the word lists in classifier/data: stop words and the trimmed jieba dictionary
derived from data, place names."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
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


def read_jieba_dictionary(path: Path) -> tuple[dict[str, int], int]:
    """word → frequency of a dictionary in jieba's format (`word freq [tag]` per line), and the
    total jieba computes from it (the sum over all lines: a repeated word counts twice, and its
    last frequency wins, as in jieba.Tokenizer.gen_pfdict)."""
    entries: dict[str, int] = {}
    total = 0
    with path.open(encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 2:
                entries[fields[0]] = int(fields[1])
                total += int(fields[1])
    return entries, total


def trim_dictionary(entries: Mapping[str, int], texts: Iterable[str]) -> dict[str, int]:
    """The entries of a jieba dictionary that occur somewhere in `texts`.

    jieba segments a sentence by looking up its substrings in the dictionary (the DAG of
    candidate words) and scoring paths by log(freq / total). A substring that is not an entry
    never enters a path, so with every entry that occurs in a text (and the full dictionary's
    total) jieba builds the same candidate words, hence the same segmentation, for that text.
    Texts must be in the form the segmenter sees (text.normalize).
    """
    prefixes = {word[:i] for word in entries for i in range(1, len(word) + 1)}
    found: set[str] = set()
    for text in texts:
        n = len(text)
        for start in range(n):
            end = start + 1
            while end <= n:
                fragment = text[start:end]
                if fragment not in prefixes:
                    break
                if fragment in entries:
                    found.add(fragment)
                end += 1
    return {word: entries[word] for word in found}


def dictionary_text(entries: Mapping[str, int], total: int, header: Iterable[str]) -> str:
    """The trimmed dictionary as text.read_dictionary reads it: jieba's prefix dictionary itself.

    Every word with its frequency, most frequent first, then every proper prefix of a word that
    is not a word itself at frequency 0 (jieba's marker for "keep reading"), so loading it is one
    split and one dict(), with no per-word loop; `total` is the full dictionary's.
    """
    prefixes = {w[:i] for w in entries for i in range(1, len(w))} - entries.keys()
    lines = [f"# {line}" for line in header]
    lines.append(f"# total: {total}")
    lines.extend(f"{w} {f}" for w, f in sorted(entries.items(), key=lambda e: (-e[1], e[0])))
    lines.extend(f"{w} 0" for w in sorted(prefixes))
    return "\n".join(lines) + "\n"


def words_text(entries: Mapping[str, int], header: Iterable[str]) -> str:
    """What the repository ships of a trimmed dictionary: its header and its words, one per
    line, without jieba's frequencies (jieba's data stays in jieba: dictionary_from_words
    rebuilds the dictionary from the installed package)."""
    lines = [f"# {line}" for line in header]
    lines.extend(sorted(entries))
    return "\n".join(lines) + "\n"


def dictionary_from_words(words_path: Path, jieba_dict: Path) -> str:
    """The trimmed dictionary (dictionary_text) of the words in `words_path` (words_text), with
    the frequencies and total of jieba's own `jieba_dict`, and the same header."""
    header: list[str] = []
    words: list[str] = []
    for line in words_path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            header.append(line[2:])
        elif line.strip():
            words.append(line.strip())
    full, total = read_jieba_dictionary(jieba_dict)
    missing = [w for w in words if w not in full]
    if missing:
        raise ValueError(
            f"{words_path}: {len(missing)} words are not in {jieba_dict} (another jieba version?)"
        )
    return dictionary_text({w: full[w] for w in words}, total, header)


def place_names(directory_toml: Path) -> list[str]:
    """League/city and banner/county names from the routing directory (routing/directory.toml)."""
    data = tomllib.loads(directory_toml.read_text(encoding="utf-8"))
    names = [data["region"]["name"]]
    for league in data.get("leagues", []):
        names.append(league["name"])
        names.extend(league.get("counties", {}).values())
    return names
