"""Knowledge-base articles: service guides (办事指南), FAQ and the reply library (答复库)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ArticleKind(StrEnum):
    GUIDE = "guide"  # 办事指南
    FAQ = "faq"  # 常见问题
    REPLY = "reply"  # 答复库: the official answer to a past order


class ArticleStatus(StrEnum):
    DRAFT = "draft"  # 草稿 (also: sent back by the reviewer)
    REVIEW = "review"  # 待审核
    PUBLISHED = "published"  # 已发布
    EXPIRED = "expired"  # 已失效 (past its validity, or withdrawn)


class KbRole(StrEnum):
    """What the knowledge base needs to know of a user (mapped from the platform's roles)."""

    CENTRE = "centre"  # reviews and publishes (dispatchers, supervisors, admins)
    AGENT = "agent"  # reads everything published, proposes FAQ drafts
    DEPARTMENT = "department"  # edits its own department's articles
    READER = "reader"  # managers: read only
    SYSTEM = "system"


ZH = "zh-Hans"
MN = "mn-Mong"
LANGUAGES = (ZH, MN)

# the standard fields of a service guide (国家政务服务事项 办事指南 要素)
GUIDE_FIELDS: tuple[tuple[str, str], ...] = (
    ("item_name", "事项名称"),
    ("item_code", "事项编码"),
    ("authority", "实施主体"),
    ("conditions", "申请条件"),
    ("materials", "申请材料"),
    ("process", "办理流程"),
    ("time_limit", "办理时限"),
    ("fees", "收费标准"),
    ("phone", "咨询电话"),
    ("legal_basis", "法律依据"),
)
FAQ_FIELDS: tuple[tuple[str, str], ...] = (("question", "问题"), ("answer", "解答"))
REPLY_FIELDS: tuple[tuple[str, str], ...] = (("request", "诉求"), ("reply", "答复"))
FIELDS: dict[ArticleKind, tuple[tuple[str, str], ...]] = {
    ArticleKind.GUIDE: GUIDE_FIELDS,
    ArticleKind.FAQ: FAQ_FIELDS,
    ArticleKind.REPLY: REPLY_FIELDS,
}
REQUIRED: dict[ArticleKind, tuple[str, ...]] = {
    ArticleKind.GUIDE: ("item_name", "item_code", "authority"),
    ArticleKind.FAQ: ("question", "answer"),
    ArticleKind.REPLY: ("reply",),
}
KIND_LABELS = {
    ArticleKind.GUIDE: "办事指南",
    ArticleKind.FAQ: "常见问题",
    ArticleKind.REPLY: "答复库",
}
STATUS_LABELS = {
    ArticleStatus.DRAFT: "草稿",
    ArticleStatus.REVIEW: "待审核",
    ArticleStatus.PUBLISHED: "已发布",
    ArticleStatus.EXPIRED: "已失效",
}
ACTION_LABELS = {
    "create": "创建",
    "edit": "修改",
    "submit": "提交审核",
    "publish": "审核通过并发布",
    "reject": "退回修改",
    "expire": "失效",
    "withdraw": "撤下",
    "import": "导入",
}


@dataclass(frozen=True, slots=True)
class Editor:
    """Who acts on the knowledge base."""

    role: KbRole
    name: str
    user_id: int | None = None
    department: str | None = None


@dataclass(frozen=True, slots=True)
class ArticleInput:
    kind: ArticleKind
    title: str
    fields: dict[str, str]
    language: str = ZH
    department: str | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    original_id: int | None = None  # a Mongolian version: its Chinese original
    ref: str | None = None  # the order (number) a reply-library entry answers


@dataclass(frozen=True, slots=True)
class Article:
    id: int
    kind: ArticleKind
    status: ArticleStatus
    language: str
    title: str  # the working (head) version
    fields: dict[str, str]
    version: int
    code: str | None
    department: str | None
    valid_from: datetime | None
    valid_until: datetime | None
    original_id: int | None
    ref: str | None
    created_at: datetime
    updated_at: datetime
    updated_by: str
    live_version: int | None = None  # the published version citizens and search see
    live_title: str | None = None
    live_fields: dict[str, str] = field(default_factory=dict)
    published_at: datetime | None = None
    note: str | None = None  # the reviewer's note when sent back

    @property
    def live(self) -> bool:
        return self.live_version is not None

    def text(self, live: bool = True) -> str:
        fields = self.live_fields if live else self.fields
        return "\n".join(v for _, v in sorted(fields.items()) if v)


@dataclass(frozen=True, slots=True)
class Version:
    article_id: int
    version: int
    title: str
    fields: dict[str, str]
    valid_from: datetime | None
    valid_until: datetime | None
    created_at: datetime
    created_by: str


@dataclass(frozen=True, slots=True)
class Event:
    article_id: int
    at: datetime
    actor: str
    action: str
    version: int | None
    note: str | None


@dataclass(frozen=True, slots=True)
class ArticleFilter:
    kind: ArticleKind | None = None
    status: ArticleStatus | None = None
    language: str | None = None
    department: str | None = None
    live_only: bool = False
    limit: int = 50
    offset: int = 0


def as_dict(a: Article) -> dict[str, Any]:
    """Export form (JSON)."""
    return {
        "id": a.id,
        "kind": a.kind.value,
        "status": a.status.value,
        "language": a.language,
        "title": a.title,
        "fields": a.fields,
        "version": a.version,
        "code": a.code,
        "department": a.department,
        "valid_from": a.valid_from.isoformat() if a.valid_from else None,
        "valid_until": a.valid_until.isoformat() if a.valid_until else None,
        "original_id": a.original_id,
        "ref": a.ref,
        "live_version": a.live_version,
    }
