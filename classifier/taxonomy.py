"""The three-level category taxonomy, and second/third-level suggestions by keyword match.

Only first-level labels exist in the training data, so the lower levels are suggested by matching
the message against the names under the predicted first-level class: each name is split into
words (with a few everyday synonyms, e.g. 暖气 for 采暖), a word found in the message counts by
how rare it is among all the names, and a name scores the share of its weight that was found.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from classifier.errors import DataError
from classifier.text import DATA_DIR, normalize

SYNONYMS_PATH = DATA_DIR / "taxonomy_synonyms.txt"
OTHER = "其他"
# Words that name no topic of their own; they never decide a match.
_GENERIC = frozenset(
    {
        *("其他", "管理", "问题", "工作", "事务", "服务", "政策", "建设", "相关", "有关"),
        *("人员", "事业", "发展", "行业", "及", "和", "与", "的"),
    }
)
_MIN_SCORE = 0.5


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A lower-level category under `level1`; `level3` is None for a second-level suggestion."""

    level1: str
    level2: str
    level3: str | None
    score: float  # share of the name's keyword weight found in the text, 0..1

    def to_dict(self) -> dict[str, object]:
        return {
            "level1": self.level1,
            "level2": self.level2,
            "level3": self.level3,
            "score": round(self.score, 3),
        }


def read_synonyms(path: Path = SYNONYMS_PATH) -> dict[str, tuple[str, ...]]:
    """`term: 同义词 同义词 …` lines; `#` comments."""
    table: dict[str, tuple[str, ...]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if ":" in line:
            term, rest = line.split(":", 1)
            table[term.strip()] = tuple(rest.split())
    return table


class Taxonomy:
    """level1 → level2 → [level3], in file order."""

    def __init__(self, tree: dict[str, dict[str, list[str]]]) -> None:
        self.tree = tree
        self._matchers: dict[str, list[_Name]] | None = None

    @property
    def level1(self) -> list[str]:
        return list(self.tree)

    @classmethod
    def from_csv(cls, path: str | Path) -> Taxonomy:
        """The TipDM attachment-1 layout: 一级分类,二级分类,三级分类 (or level1,level2,level3)."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"找不到分类体系文件: {path}")
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"无法读取分类体系文件 {path}: {exc}") from exc
        rows = list(csv.reader(io.StringIO(text)))
        if len(rows) < 2 or len(rows[0]) < 3:
            raise DataError(f"分类体系文件 {path} 需要三列: 一级分类,二级分类,三级分类")
        tree: dict[str, dict[str, list[str]]] = {}
        for row in rows[1:]:
            if len(row) < 3 or not row[0].strip():
                continue
            l1, l2, l3 = (c.strip() for c in row[:3])
            names = tree.setdefault(l1, {}).setdefault(l2, [])
            if l3 and l3 not in names:
                names.append(l3)
        return cls(tree)

    @classmethod
    def load_json(cls, path: Path) -> Taxonomy:
        return cls(json.loads(path.read_text(encoding="utf-8")))

    def dump_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.tree, ensure_ascii=False, indent=1) + "\n", "utf-8")

    def prepare(
        self, cut: Callable[[str], Iterable[str]], synonyms: dict[str, tuple[str, ...]]
    ) -> None:
        """Split every name into weighted keywords; call once before `suggest`."""
        keywords: dict[str, list[str]] = {}
        names = {n for sub in self.tree.values() for l2, l3s in sub.items() for n in (l2, *l3s)}
        df: Counter[str] = Counter()
        for name in names:
            words = [w for w in dict.fromkeys(cut(name)) if len(w) > 1 and w not in _GENERIC]
            keywords[name] = words
            df.update(words)
        total = len(names) + 1
        idf = {w: math.log(total / n) + 1.0 for w, n in df.items()}
        matchers: dict[str, list[_Name]] = {}
        for l1, sub in self.tree.items():
            entries = matchers.setdefault(l1, [])
            for l2, l3s in sub.items():
                entries.append(_Name.build(l1, l2, None, keywords, idf, synonyms))
                entries.extend(_Name.build(l1, l2, l3, keywords, idf, synonyms) for l3 in l3s)
        self._matchers = matchers

    def suggest(
        self, level1: str, text: str, limit: int = 3, *, normalized: bool = False
    ) -> tuple[list[Suggestion], list[Suggestion]]:
        """Best second-level and third-level names under `level1` that the text mentions."""
        if self._matchers is None:
            raise RuntimeError("Taxonomy.prepare() must run before suggest()")
        entries = self._matchers.get(level1, [])
        if not entries:
            return [], []
        text = (text if normalized else normalize(text)).lower()
        second: dict[str, tuple[float, int]] = {}
        third: list[tuple[tuple[float, int], Suggestion]] = []
        for entry in entries:
            score, hits = entry.score(text)
            if score < _MIN_SCORE:
                continue
            # a third-level match is evidence for its second level too
            best, total = second.get(entry.level2, (0.0, 0))
            second[entry.level2] = (max(best, score), total + hits)
            if entry.level3 is not None:
                third.append(((score, hits), Suggestion(level1, entry.level2, entry.level3, score)))
        seconds = sorted(second.items(), key=lambda item: (-item[1][0], -item[1][1]))
        third.sort(key=lambda item: (-item[0][0], -item[0][1]))
        return (
            [Suggestion(level1, l2, None, s) for l2, (s, _) in seconds[:limit]],
            [suggestion for _, suggestion in third[:limit]],
        )


@dataclass(frozen=True, slots=True)
class _Name:
    level1: str
    level2: str
    level3: str | None
    whole: tuple[str, ...]  # the name and synonyms of the whole name: a full match
    keywords: tuple[tuple[float, tuple[str, ...]], ...]  # (weight, ways to say the word)

    @classmethod
    def build(
        cls,
        level1: str,
        level2: str,
        level3: str | None,
        keywords: dict[str, list[str]],
        idf: dict[str, float],
        synonyms: dict[str, tuple[str, ...]],
    ) -> _Name:
        name = level3 or level2
        if name == OTHER:
            return cls(level1, level2, level3, (), ())
        whole = (name, *synonyms.get(name, ()))
        parts = tuple((idf[w], (w, *synonyms.get(w, ()))) for w in keywords.get(name, []))
        return cls(level1, level2, level3, whole, parts)

    def score(self, text: str) -> tuple[float, int]:
        """(share of keyword weight found, 1.0 for the whole name; how often the words occur)."""
        hits = sum(text.count(w) for w in self.whole)
        if hits:
            return 1.0, hits
        total = found = 0.0
        for weight, ways in self.keywords:
            total += weight
            n = sum(text.count(w) for w in ways)
            if n:
                found += weight
                hits += n
        return (found / total if total else 0.0), hits
