"""The public 曝光纠错 column's data and its redaction rules: what may be shown of a case (no
names, phone numbers, ID numbers or house numbers), pure code."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class CaseState(StrEnum):
    DRAFT = "draft"  # 待审定
    PUBLISHED = "published"  # 已公开
    WITHDRAWN = "withdrawn"  # 已撤回


CASE_STATE_LABELS = {
    CaseState.DRAFT: "待审定",
    CaseState.PUBLISHED: "已公开",
    CaseState.WITHDRAWN: "已撤回",
}


@dataclass(frozen=True, slots=True)
class PublicCase:
    id: int
    ticket_id: int
    version: int
    state: str
    title: str
    question: str
    answer: str
    title_mn: str | None
    question_mn: str | None
    answer_mn: str | None
    department: str
    kind: str
    category: str
    region: str
    received_at: datetime
    answered_at: datetime
    satisfaction: str | None
    created_by: int | None
    created_at: datetime
    updated_at: datetime
    published_by: int | None
    published_at: datetime | None

    @property
    def hours_taken(self) -> float:
        return (self.answered_at - self.received_at).total_seconds() / 3600


# what must never reach the public page, each with the mask it is replaced by
_PATTERNS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("身份证号", re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"), "［身份证号］"),
    (
        "手机号",
        re.compile(r"(?<!\d)(?:\+?86[-\s]?)?1[3-9]\d[-\s]?\d{4}[-\s]?\d{4}(?!\d)"),
        "［电话］",
    ),
    ("固定电话", re.compile(r"(?<!\d)0\d{2,3}[-\s]?\d{7,8}(?!\d)"), "［电话］"),
    ("电子邮箱", re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "［邮箱］"),
    (
        "门牌号",
        re.compile(
            # not a date (11月15号) or an ordinal (第3号)
            r"(?<![月第0-9０-９一二三四五六七八九十百零〇])[0-9０-９一二三四五六七八九十百零〇]+"
            r"\s*(?:号楼|号院|号|栋|幢|单元|室|户)(?:[0-9０-９-]+\s*(?:号|室|户))?"
        ),
        "［门牌号］",
    ),
    ("门牌号", re.compile(r"(?<!\d)\d{1,4}-\d{1,4}-\d{1,5}(?!\d)"), "［门牌号］"),
)
# 刘先生 / 王女士 / 张某某: a surname with a form of address names a person
_ADDRESSED = re.compile(r"[\u4e00-\u9fff](?:先生|女士|小姐|大爷|大妈|阿姨|师傅|老师)")


def redact(text: str, names: tuple[str, ...] = ()) -> str:
    """A first redaction for the supervisor to edit: numbers, addresses and names masked."""
    out = text
    for name in sorted({n for n in names if n and len(n) >= 2}, key=len, reverse=True):
        out = out.replace(name, "市民")
    for _label, pattern, mask in _PATTERNS:
        out = pattern.sub(mask, out)
    return _ADDRESSED.sub("市民", out)


def leaks(text: str, names: tuple[str, ...] = ()) -> list[str]:
    """What in `text` may not be published (empty when it is clean)."""
    found = [label for label, pattern, _ in _PATTERNS if pattern.search(text)]
    if _ADDRESSED.search(text) or any(n and len(n) >= 2 and n in text for n in names):
        found.append("姓名")
    return list(dict.fromkeys(found))
