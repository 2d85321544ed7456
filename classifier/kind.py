"""Request kind (咨询/求助/投诉/举报/建议/表扬/其他) suggested from cue words.

There are no kind labels to learn from, so this is a rule table: each cue adds its weight to a
kind, cues in the title (the first line or sentence) count double, and the heaviest kind wins;
ties go to the kind listed first (report before complaint before help …). No cue → other.
The codes are tickets.model.Kind's (a test keeps the two in step; this package may not import it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from classifier.text import normalize


class RequestKind(StrEnum):
    CONSULT = "consult"
    HELP = "help"
    COMPLAINT = "complaint"
    REPORT = "report"
    SUGGESTION = "suggestion"
    PRAISE = "praise"
    OTHER = "other"


_K = RequestKind
# (kind, weight, cue). A cue is a literal, a regular expression when it starts with "re:", or a
# literal that only counts in the title when it starts with "title:".
_CUES: tuple[tuple[RequestKind, float, str], ...] = (
    (_K.REPORT, 3, "举报"),
    (_K.REPORT, 3, "检举"),
    (_K.REPORT, 3, "揭发"),
    (_K.REPORT, 1, "非法"),
    (_K.REPORT, 1, "违法"),
    (_K.REPORT, 1, "偷排"),
    (_K.REPORT, 1, "无证经营"),
    (_K.COMPLAINT, 3, "投诉"),
    (_K.COMPLAINT, 2, r"re:反映.{0,20}问题"),
    (_K.COMPLAINT, 1, "反映"),
    (_K.COMPLAINT, 1, "不作为"),
    (_K.COMPLAINT, 1, "乱收费"),
    (_K.COMPLAINT, 1, "扰民"),
    (_K.COMPLAINT, 1, "拖欠"),
    (_K.COMPLAINT, 1, "严重影响"),
    (_K.COMPLAINT, 1, "强烈要求"),
    (_K.COMPLAINT, 1, "不满"),
    (_K.COMPLAINT, 1, "态度恶劣"),
    (_K.COMPLAINT, 1, "推诿"),
    (_K.COMPLAINT, 1, "违规"),
    (_K.COMPLAINT, 1, "为何"),
    (_K.COMPLAINT, 1, "为什么"),
    (_K.COMPLAINT, 1, "占用"),
    (_K.HELP, 3, "求助"),
    (_K.HELP, 1, "帮助"),  # "请领导帮忙解决" closes many complaints: weak alone
    (_K.HELP, 1, "帮帮"),
    (_K.HELP, 1, "帮忙"),
    (_K.HELP, 2, "救救"),
    (_K.HELP, 1, "请求"),
    (_K.HELP, 1, "恳请"),
    (_K.HELP, 1, "救助"),
    (_K.HELP, 1, "走投无路"),
    (_K.HELP, 1, "生活困难"),
    (_K.SUGGESTION, 3, "建议"),
    (_K.SUGGESTION, 2, "提议"),
    (_K.SUGGESTION, 2, "倡议"),
    (_K.SUGGESTION, 2, "呼吁"),
    (_K.SUGGESTION, 1, "希望能"),
    (_K.SUGGESTION, 1, "re:(?:应该|应当)(?:增加|设置|开通|修建|出台)"),
    (_K.PRAISE, 3, "表扬"),
    (_K.PRAISE, 3, "点赞"),
    (_K.PRAISE, 3, "赞扬"),
    (_K.PRAISE, 3, "锦旗"),
    (_K.PRAISE, 3, "感谢信"),
    (_K.PRAISE, 2, "致谢"),
    (_K.PRAISE, 2, "称赞"),
    # thanks in the body mostly opens or closes a complaint ("感谢您百忙之中…"): title only
    (_K.PRAISE, 2, "title:感谢"),
    (_K.CONSULT, 3, "咨询"),
    (_K.CONSULT, 2, "请问"),
    (_K.CONSULT, 2, "想了解"),
    (_K.CONSULT, 2, "问一下"),
    (_K.CONSULT, 1, "如何"),
    (_K.CONSULT, 1, "怎么"),
    (_K.CONSULT, 1, "怎样"),
    (_K.CONSULT, 1, "能否"),
    (_K.CONSULT, 1, "是否"),
    (_K.CONSULT, 1, "什么时候"),
    (_K.CONSULT, 1, "何时"),
    (_K.CONSULT, 1, "哪里"),
    (_K.CONSULT, 1, "多少"),
    (_K.CONSULT, 1, "需要什么"),
    (_K.CONSULT, 1, "可以吗"),
)
_ORDER = (_K.REPORT, _K.COMPLAINT, _K.HELP, _K.SUGGESTION, _K.PRAISE, _K.CONSULT)
_COMPILED = tuple(
    (kind, weight, cue, re.compile(cue[3:]) if cue.startswith("re:") else None)
    for kind, weight, cue in _CUES
    if not cue.startswith("title:")
)
_TITLE_CUES = tuple(
    (kind, weight, cue[6:]) for kind, weight, cue in _CUES if cue.startswith("title:")
)
_TITLE_END = re.compile(r"[\n。！？!?]")


@dataclass(frozen=True, slots=True)
class KindGuess:
    kind: RequestKind
    cues: tuple[str, ...]  # the cue words that decided it, for the agent to see


def suggest_kind(text: str, *, normalized: bool = False) -> KindGuess:
    """Kind of a request from its wording; `text` is the title, a line break, then the body."""
    body = text if normalized else normalize(text)
    match = _TITLE_END.search(body)
    title = body[: match.start()] if match else body
    scores: dict[RequestKind, float] = {}
    cues: dict[RequestKind, list[str]] = {}
    for kind, weight, cue, pattern in _COMPILED:
        if pattern is not None:
            found = pattern.search(body)
            if not found:
                continue
            word = found.group(0)
            in_title = pattern.search(title) is not None
        else:
            if cue not in body:
                continue
            word = cue
            in_title = cue in title
        scores[kind] = scores.get(kind, 0.0) + weight * (2 if in_title else 1)
        cues.setdefault(kind, []).append(word)
    for kind, weight, cue in _TITLE_CUES:
        if cue in title:
            scores[kind] = scores.get(kind, 0.0) + weight
            cues.setdefault(kind, []).append(cue)
    if not scores:
        return KindGuess(RequestKind.OTHER, ())
    best = max(_ORDER, key=lambda k: (scores.get(k, 0.0), -_ORDER.index(k)))
    return KindGuess(best, tuple(cues[best]))
