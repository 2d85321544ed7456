"""Text normalisation and jieba segmentation into the token space the model was trained in."""

from __future__ import annotations

import html
import logging
import os
import re
import sys
import tempfile
import unicodedata
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from classifier.dagcut import DagCutter

DATA_DIR = Path(__file__).resolve().parent / "data"
USERDICT_PATH = DATA_DIR / "userdict.txt"
STOPWORDS_PATH = DATA_DIR / "stopwords.txt"
#: The words of jieba's dictionary that occur in the corpora (`python -m classifier dictionary`),
#: shipped without jieba's data; ensure_dictionary builds DICTIONARY_PATH from them and the
#: installed jieba (pinned), the file the classifier trains and predicts with.
WORDS_PATH = DATA_DIR / "jieba_words.txt"
DICTIONARY_PATH = DATA_DIR / "jieba_dict.txt"  # built, not in the repository

# Spreadsheet exports leave literal carriage-return escapes in cells.
_EXCEL_CR = re.compile(r"_x000[dD]_")
# Zero-width and BOM characters that scraping leaves between Chinese characters.
_INVISIBLE = re.compile("[\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_SPACE = re.compile(r"[^\S\n]+")  # whitespace other than line breaks
_BREAKS = re.compile(r"\s*\n\s*")  # a run of whitespace with a line break in it
# A token carries content when it has a letter, digit or CJK character; the rest is punctuation.
_CONTENT = re.compile(r"\w")
# The longest user-dictionary entry we re-join from adjacent tokens (in tokens).
_MAX_MERGE = 4


def normalize(text: str) -> str:
    """Canonical form of a message: full-width → half-width, whitespace runs collapsed.

    NFKC folds full-width letters and digits (Ａ１ → A1), the ideographic space \\u3000 and the
    no-break space \\xa0 into their plain forms; HTML entities from scraped pages are decoded.
    A whitespace run becomes one space, or one line break if it held one (the title/body break).
    """
    text = html.unescape(text)
    text = _EXCEL_CR.sub("\n", text)
    text = unicodedata.normalize("NFKC", text)
    text = _INVISIBLE.sub("", text)
    text = _SPACE.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _BREAKS.sub("\n", text).strip()


def read_word_list(path: Path) -> list[str]:
    """Words of a one-word-per-line file; `#` starts a comment, extra fields are ignored."""
    words = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            words.append(line.split()[0])
    return words


def default_cache_dir() -> Path:
    """Where jieba keeps its prefix-dictionary cache: $HOTLINE_JIEBA_CACHE, else the user cache."""
    env = os.environ.get("HOTLINE_JIEBA_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hotline" / "jieba"


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=path, delete=True)  # noqa: SIM115
        probe.close()
        return path
    except OSError:
        return Path(tempfile.gettempdir())


def ensure_dictionary(path: Path = DICTIONARY_PATH, words: Path = WORDS_PATH) -> Path:
    """`path`, built first from `words` and the installed jieba's dict.txt when it is missing
    (about a second, once; written atomically, so processes starting together agree)."""
    if not path.is_file():
        import jieba

        from classifier.lexicon import dictionary_from_words

        text = dictionary_from_words(words, Path(jieba.__file__).with_name("dict.txt"))
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


def read_dictionary(path: Path) -> tuple[dict[str, int], int]:
    """jieba's prefix dictionary (word → frequency, proper prefix → 0) and its total, as written
    by lexicon.dictionary_text: `#` header lines with a `# total: N` line, then `word freq` lines.

    The total is the sum of frequencies of the dictionary it was cut from: jieba scores a word as
    log(freq / total), so keeping the full total is what makes the trimmed dictionary segment
    text whose words it holds exactly as the full one does.
    """
    text = path.read_text(encoding="utf-8")
    total, start = 0, 0
    while text.startswith("#", start):
        end = text.find("\n", start) + 1 or len(text)
        if text.startswith("# total:", start):
            total = int(text[start + len("# total:") : end])
        start = end
    fields = text[start:].split()
    if total <= 0 or len(fields) % 2:
        raise ValueError(f"{path}: not a dictionary written by `python -m classifier dictionary`")
    # one split and one dict() in C: ~0.1 s for 100,000 entries
    return dict(zip(fields[0::2], map(int, fields[1::2]), strict=True)), total


def _import_jieba() -> Any:
    """`import jieba` without pkg_resources, which jieba imports only to find its own data files
    (and which costs ~0.3 s, a third of loading a model): without it jieba opens them by path."""
    if "jieba" in sys.modules or "pkg_resources" in sys.modules:
        import jieba

        return jieba
    sys.modules["pkg_resources"] = None  # type: ignore[assignment]  # import → ImportError
    try:
        import jieba
    finally:
        del sys.modules["pkg_resources"]
    return jieba


def jieba_tokenizer(
    userdict: Path | None = None,
    cache_dir: Path | None = None,
    dictionary: Path | None = None,
) -> Any:
    """An initialised, quiet jieba.Tokenizer (plain jieba when `userdict` is None).

    With `dictionary` (a file read_dictionary reads, e.g. DICTIONARY_PATH) jieba's own
    349,000-word dictionary is never read: ~0.1 s instead of ~0.6-1 s to load.
    Without it, the first use builds jieba's prefix-dictionary cache (~0.6 s to load afterwards)
    in `cache_dir`, default_cache_dir(), or the temp dir, whichever is writable first.
    jieba attaches a DEBUG stderr handler at import and logs "Building prefix dict ..." on first
    use, and its _compat imports pkg_resources, which warns on new setuptools: both kept quiet.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jieba = _import_jieba()
    jieba.setLogLevel(logging.WARNING)
    if dictionary is not None:
        tokenizer = jieba.Tokenizer(dictionary=str(dictionary))
        # What Tokenizer.initialize() would set, from our file instead of jieba's cache.
        tokenizer.FREQ, tokenizer.total = read_dictionary(dictionary)
        tokenizer.initialized = True
    else:
        tokenizer = jieba.Tokenizer()
        tokenizer.tmp_dir = str(_writable_dir(cache_dir or default_cache_dir()))
        tokenizer.initialize()
    if userdict is not None:
        tokenizer.load_userdict(str(userdict))
    return tokenizer


class Segmenter:
    """jieba with the hotline's user dictionary and the stop-word list, initialised once.

    Raw text and already-segmented text (space-separated tokens, as in the TipDM training set)
    both come out as the same kind of token list: lower-cased, no punctuation, no stop words, and
    adjacent tokens re-joined where they spell a user-dictionary term. After construction it only
    reads its tables, so one instance can serve many threads.

    `dictionary` None is jieba's full dictionary (search uses it); the classifier trains and
    predicts with the trimmed DICTIONARY_PATH, the same file at both ends (it ships in the model).
    """

    def __init__(
        self,
        userdict: Path | None = USERDICT_PATH,
        stopwords: Path | Iterable[str] | None = STOPWORDS_PATH,
        cache_dir: Path | None = None,
        dictionary: Path | None = None,
    ) -> None:
        tokenizer = jieba_tokenizer(userdict, cache_dir, dictionary)
        self.terms: frozenset[str] = frozenset()
        if userdict is not None:
            self.terms = frozenset(w.lower() for w in read_word_list(userdict))
        # Every proper prefix of a term: a token that starts none of them cannot start a merge.
        self._term_prefixes = frozenset(t[:i] for t in self.terms for i in range(1, len(t)))
        if isinstance(stopwords, Path):
            stopwords = read_word_list(stopwords)
        words = list(stopwords or ())
        self.stopwords: frozenset[str] = frozenset(w.lower() for w in words if w == w.lower())
        # A stop word with capitals is matched as written: the segmented training set lost the
        # anonymised city letter "A" (A市, A3区 …) but kept a lower-case "a", so raw text must
        # lose exactly "A" (in about a quarter of the raw messages) and nothing else.
        self.cased_stopwords: frozenset[str] = frozenset(w for w in words if w != w.lower())
        self._tokenizer = tokenizer
        # jieba's words, ~1.5x faster (classifier/dagcut.py); its tables take 0.05 s to build
        # for the trimmed dictionary but 0.6 s for jieba's full one, which search uses: not there
        self._cut = DagCutter(tokenizer).cut if dictionary is not None else tokenizer.cut

    def cut(self, text: str) -> list[str]:
        """jieba's segmentation of normalised text, punctuation and stop words kept."""
        return [w for w in self._cut(normalize(text)) if not w.isspace()]

    def tokens(self, text: str) -> list[str]:
        """Model tokens of raw text."""
        return self.tokens_of_normalized(normalize(text))

    def tokens_of_normalized(self, text: str) -> list[str]:
        """Model tokens of text that already went through normalize()."""
        return self._merge_terms(self._keep(self._cut(text)))

    def search_tokens(self, text: str) -> list[str]:
        """Tokens for search: the same dictionary and stop words, but dictionary words only
        (HMM guesses split one phrase differently by context: 路灯 vs 的路 灯不亮) and, as in
        jieba's search mode, also the dictionary words inside a long word."""
        words = self._tokenizer.cut_for_search(normalize(text), HMM=False)
        return self._merge_terms(self._keep(words))

    def retokenize(self, segmented: str) -> list[str]:
        """Model tokens of text that was segmented elsewhere (tokens separated by spaces)."""
        return self._merge_terms(self._keep(normalize(segmented).split()))

    def _keep(self, words: Iterable[str]) -> list[str]:
        kept = []
        cased, stop = self.cased_stopwords, self.stopwords
        for word in words:
            w = word.strip()
            if not w or w in cased:
                continue
            w = w.lower()
            if w not in stop and _CONTENT.search(w):
                kept.append(w)
        return kept

    def _merge_terms(self, tokens: list[str]) -> list[str]:
        if not self.terms:
            return tokens
        out: list[str] = []
        prefixes = self._term_prefixes
        i, n_tokens = 0, len(tokens)
        while i < n_tokens:
            if tokens[i] in prefixes:  # most tokens start no term: skip the joins
                for n in range(min(_MAX_MERGE, n_tokens - i), 1, -1):
                    joined = "".join(tokens[i : i + n])
                    if joined in self.terms:
                        out.append(joined)
                        i += n
                        break
                else:
                    out.append(tokens[i])
                    i += 1
            else:
                out.append(tokens[i])
                i += 1
        return out
