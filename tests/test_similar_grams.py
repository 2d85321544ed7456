"""routing/similar.py: under a burst every new order is compared with the ~200 before it; each
order's text is segmented once, not once per comparison, and again only when it changes."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, TypeVar

from kb.analysis import Analyzer
from kb.config import SimilarSettings
from routing import similar
from routing.similar import SimilarRequests, bigrams, jaccard

T = TypeVar("T")


class CountingWords:
    """Word tokens: each Han character (enough here), counting the texts segmented."""

    def __init__(self) -> None:
        self.calls = 0

    def tokens(self, text: str) -> list[str]:
        self.calls += 1
        return list(text)


class FakeSearch:
    def __init__(self, analyzer: Analyzer) -> None:
        self.analyzer = analyzer

    async def run(self, fn: Callable[[], T]) -> T:
        return fn()


def order(i: int, content: str) -> Any:
    return SimpleNamespace(id=i, title="", content=content)


def han(i: int) -> str:
    """A distinct text of Han characters only (one segmenter call per text)."""
    return "甲乙丙丁戊己庚辛壬癸"[i % 10] + "子丑寅卯辰巳午未申酉戌亥"[i // 10]


async def test_each_order_is_segmented_once_and_again_when_its_text_changes(
    monkeypatch: Any,
) -> None:
    words = CountingWords()
    analyzer = Analyzer(words)
    s = SimilarRequests(None, FakeSearch(analyzer), None, SimilarSettings(), lambda t: None)  # type: ignore[arg-type]
    orders = [order(i, f"小区{han(i)}楼门前路灯不亮") for i in range(50)]
    first = await s.grams(orders)
    assert words.calls == 50
    assert first == [bigrams(Analyzer(CountingWords()), o.content) for o in orders]
    again = await s.grams(orders[::-1])
    assert words.calls == 50 and again == first[::-1]
    orders[3].content = "楼道里的垃圾没人清理"  # edited: segmented again, not the old grams
    (edited,) = await s.grams([orders[3]])
    assert words.calls == 51
    assert jaccard(edited, first[3]) < 0.5


async def test_the_cache_keeps_the_newest_orders_only(monkeypatch: Any) -> None:
    monkeypatch.setattr(similar, "GRAMS_KEPT", 10)
    words = CountingWords()
    s = SimilarRequests(None, FakeSearch(Analyzer(words)), None, SimilarSettings(), lambda t: None)  # type: ignore[arg-type]
    await s.grams([order(i, f"第{han(i)}个诉求") for i in range(25)])
    assert sorted(s._grams) == list(range(15, 25))
    await s.grams([order(0, f"第{han(0)}个诉求")])  # fell out: segmented again
    assert words.calls == 26
