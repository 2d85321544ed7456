"""Knowledge-base use cases: write and review articles, publish and expire them, keep the
search index in step (durably: a mark on the row, cleared once indexed), find them.

Departments edit their own department's articles and send them for review; the centre reviews
and publishes. A published article can be edited again: the new version is a draft while the
published one stays live until the new one is published. A Mongolian version is an article of
its own, linked to its Chinese original and sharing its item code (同一事项、同一编码).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kb import store
from kb.model import (
    FIELDS,
    LANGUAGES,
    MN,
    REQUIRED,
    Article,
    ArticleFilter,
    ArticleInput,
    ArticleKind,
    ArticleStatus,
    Editor,
    Event,
    KbRole,
    Version,
)
from kb.search import ARTICLES, Filter, Search, SearchUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")
TITLE_CHARS = 200  # the column's size
EDIT_ROLES = frozenset({KbRole.CENTRE, KbRole.DEPARTMENT, KbRole.AGENT, KbRole.SYSTEM})
REVIEW_ROLES = frozenset({KbRole.CENTRE, KbRole.SYSTEM})


class Db(Protocol):
    """The platform's database (tickets.db.Database): reads in parallel, durable writes."""

    async def read(self, fn: Callable[[Connection], T]) -> T: ...
    async def write(self, fn: Callable[[Connection], T]) -> T: ...


class KbError(Exception):
    """A rule of the knowledge base; `code` maps to an HTTP status in agent_ui."""

    code = "invalid_input"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class KbNotFound(KbError):
    code = "not_found"


class KbForbidden(KbError):
    code = "kb_forbidden"


class KbConflict(KbError):
    code = "conflict"


class KbVersionConflict(KbError):
    code = "version_conflict"


def _utcnow() -> datetime:
    return datetime.now(UTC)


class KnowledgeBase:
    def __init__(
        self,
        db: Db,
        search: Search | None,
        has_department: Callable[[str], bool] = lambda code: True,
        *,
        clock: Callable[[], datetime] = _utcnow,
        max_field_chars: int = 20_000,
    ) -> None:
        self.db = db
        self.search = search
        self.has_department = has_department
        self.clock = clock
        self.max_field_chars = max_field_chars

    # -- checks -------------------------------------------------------------------------------
    def _clean(self, data: ArticleInput) -> ArticleInput:
        allowed = dict(FIELDS[data.kind])
        unknown = set(data.fields) - set(allowed)
        if unknown:
            raise KbError(
                f"{data.kind.value} 没有字段 {', '.join(sorted(unknown))}", field="fields"
            )
        fields = {k: (v or "").strip() for k, v in data.fields.items() if (v or "").strip()}
        for key, value in fields.items():
            if len(value) > self.max_field_chars:
                raise KbError(f"{allowed[key]}不能超过{self.max_field_chars}字", field=key)
        for key in REQUIRED[data.kind]:
            if key not in fields and not (key == "item_code" and data.original_id):
                raise KbError(f"请填写{allowed[key]}", field=key)
        title = (data.title or "").strip() or fields.get("item_name") or fields.get("question")
        if not title:
            raise KbError("请填写标题", field="title")
        if len(title) > TITLE_CHARS:
            raise KbError(f"标题不能超过{TITLE_CHARS}字", field="title")
        if data.language not in LANGUAGES:
            raise KbError(f"语言只能是 {' / '.join(LANGUAGES)}", field="language")
        if data.department and not self.has_department(data.department):
            raise KbError(f"未知承办单位 {data.department}", field="department")
        for when in (data.valid_from, data.valid_until):
            if when is not None and when.tzinfo is None:
                raise KbError("有效期须带时区", field="valid_until")
        if data.valid_from and data.valid_until and data.valid_until <= data.valid_from:
            raise KbError("失效时间须晚于生效时间", field="valid_until")
        return ArticleInput(
            data.kind,
            title,
            fields,
            data.language,
            data.department,
            data.valid_from,
            data.valid_until,
            data.original_id,
            (data.ref or "").strip() or None,
        )

    @staticmethod
    def _may_edit(editor: Editor, article: Article | ArticleInput) -> None:
        if editor.role not in EDIT_ROLES:
            raise KbForbidden("当前角色不能编辑知识库")
        if editor.role is KbRole.DEPARTMENT and article.department != editor.department:
            raise KbForbidden("只能编辑本单位的知识")
        if editor.role is KbRole.AGENT and article.kind is not ArticleKind.FAQ:
            raise KbForbidden("话务员只能提交常见问题")

    @staticmethod
    def _may_review(editor: Editor) -> None:
        if editor.role not in REVIEW_ROLES:
            raise KbForbidden("只有热线中心可以审核、发布或撤下知识")

    # -- writing ------------------------------------------------------------------------------
    async def create(
        self, editor: Editor, data: ArticleInput, *, action: str = "create"
    ) -> Article:
        data = self._clean(data)
        self._may_edit(editor, data)

        def tx(conn: Connection) -> int:
            now = self.clock()
            code = data.fields.get("item_code")
            if data.original_id is not None:
                original = store.get_article(conn, data.original_id)
                if original is None or original.language == data.language:
                    raise KbError("原文不存在或语言相同", field="original_id")
                if original.kind is not data.kind:
                    raise KbError("译文须与原文同类", field="original_id")
                code = original.code  # one item, one code, in every language
                fields = {**data.fields, "item_code": code} if code else data.fields
            else:
                if data.language == MN and data.kind is ArticleKind.GUIDE:
                    raise KbError("蒙古文办事指南须关联中文原文", field="original_id")
                fields = data.fields
            if code and store.get_by_code(conn, data.kind.value, code, data.language):
                raise KbConflict(f"事项编码 {code} 已有{data.language}版本", code=code)
            values = {
                "kind": data.kind.value,
                "status": ArticleStatus.DRAFT.value,
                "language": data.language,
                "code": code if data.kind is ArticleKind.GUIDE else None,
                "department": data.department,
                "original_id": data.original_id,
                "ref": data.ref,
                "version": 1,
                "title": data.title,
                "fields": fields,
                "valid_from": data.valid_from,
                "valid_until": data.valid_until,
                "dirty": False,
                "created_at": now,
                "updated_at": now,
                "updated_by": editor.name,
            }
            try:
                with conn.begin_nested():
                    article_id = store.insert_article(conn, values)
            except IntegrityError:
                raise KbConflict(f"事项编码 {code} 已存在", code=code) from None
            self._version(conn, article_id, 1, data.title, fields, data, now, editor)
            store.insert_event(conn, article_id, now, editor.name, action, 1)
            return article_id

        return await self.get(await self.db.write(tx))

    def _version(
        self,
        conn: Connection,
        article_id: int,
        version: int,
        title: str,
        fields: dict[str, str],
        data: ArticleInput,
        now: datetime,
        editor: Editor,
    ) -> None:
        store.insert_version(
            conn,
            {
                "article_id": article_id,
                "version": version,
                "title": title,
                "fields": fields,
                "valid_from": data.valid_from,
                "valid_until": data.valid_until,
                "created_at": now,
                "created_by": editor.name,
            },
        )

    async def edit(
        self, editor: Editor, article_id: int, version: int, data: ArticleInput
    ) -> Article:
        """A new version, as a draft (a published one stays live meanwhile)."""

        def tx(conn: Connection) -> None:
            now = self.clock()
            current = self._load(conn, article_id)
            self._may_edit(editor, current)
            department = data.department
            if editor.role is KbRole.DEPARTMENT:
                if department not in (None, current.department):
                    raise KbForbidden("不能把知识转给其他单位")
                department = current.department  # a department's own, always
            clean = self._clean(
                ArticleInput(**{**_input_of(data), "kind": current.kind, "department": department})
            )
            fields = dict(clean.fields)
            if current.code:
                fields["item_code"] = current.code  # the code names the item: it stays
            new = current.version + 1
            values = {
                "version": new,
                "title": clean.title,
                "fields": fields,
                "valid_from": clean.valid_from,
                "valid_until": clean.valid_until,
                "department": clean.department,
                "status": ArticleStatus.DRAFT.value,
                "note": None,
                "updated_at": now,
                "updated_by": editor.name,
            }
            if not store.update_article(conn, article_id, version, values):
                raise KbVersionConflict("知识已被他人修改，请刷新后重试")
            self._version(conn, article_id, new, clean.title, fields, clean, now, editor)
            store.insert_event(conn, article_id, now, editor.name, "edit", new)

        await self.db.write(tx)
        return await self.get(article_id)

    async def submit(self, editor: Editor, article_id: int, version: int) -> Article:
        def check(a: Article) -> None:
            self._may_edit(editor, a)
            if a.status is not ArticleStatus.DRAFT:
                raise KbConflict("只有草稿可以提交审核")

        return await self._step(editor, article_id, version, "submit", check, {"status": "review"})

    async def publish(
        self, editor: Editor, article_id: int, version: int, note: str | None = None
    ) -> Article:
        self._may_review(editor)

        def check(a: Article) -> None:
            if a.status is not ArticleStatus.REVIEW and editor.role is not KbRole.SYSTEM:
                raise KbConflict("只有待审核的知识可以发布")

        def values(a: Article, now: datetime) -> dict[str, Any]:
            return {
                "status": ArticleStatus.PUBLISHED.value,
                "live_version": a.version,
                "live_title": a.title,
                "live_fields": a.fields,
                "published_at": now,
                "note": note,
                "dirty": True,
            }

        return await self._step(editor, article_id, version, "publish", check, values, note)

    async def reject(self, editor: Editor, article_id: int, version: int, note: str) -> Article:
        self._may_review(editor)
        if not (note or "").strip():
            raise KbError("请填写退回意见", field="note")

        def check(a: Article) -> None:
            if a.status is not ArticleStatus.REVIEW:
                raise KbConflict("只有待审核的知识可以退回")

        values = {"status": ArticleStatus.DRAFT.value, "note": note.strip()}
        return await self._step(editor, article_id, version, "reject", check, values, note)

    async def withdraw(
        self, editor: Editor, article_id: int, version: int, note: str | None = None
    ) -> Article:
        """撤下: the live version goes (from the portal and from search)."""
        self._may_review(editor)

        def check(a: Article) -> None:
            if not a.live:
                raise KbConflict("该知识没有已发布的版本")

        values = {
            "status": ArticleStatus.EXPIRED.value,
            "live_version": None,
            "live_title": None,
            "live_fields": None,
            "dirty": True,
        }
        return await self._step(editor, article_id, version, "withdraw", check, values, note)

    async def _step(
        self,
        editor: Editor,
        article_id: int,
        version: int,
        action: str,
        check: Callable[[Article], None],
        values: dict[str, Any] | Callable[[Article, datetime], dict[str, Any]],
        note: str | None = None,
    ) -> Article:
        def tx(conn: Connection) -> None:
            now = self.clock()
            a = self._load(conn, article_id)
            check(a)
            if a.version != version:
                raise KbVersionConflict("知识已被他人修改，请刷新后重试", current=a.version)
            v = values(a, now) if callable(values) else values
            # a status change is not a new version of the text: the version number stays
            if not store.update_article(
                conn, article_id, version, {**v, "updated_at": now, "updated_by": editor.name}
            ):
                raise KbVersionConflict("知识已被他人修改，请刷新后重试")
            store.insert_event(conn, article_id, now, editor.name, action, a.version, note)

        await self.db.write(tx)
        article = await self.get(article_id)
        await self.sync_index()
        return article

    async def expire_due(self, limit: int = 500) -> int:
        """Published articles past valid_until stop being shown (a periodic pass)."""

        def tx(conn: Connection) -> int:
            now = self.clock()
            ids = store.expired_live(conn, now, limit)
            for article_id in ids:
                store.update_article(
                    conn,
                    article_id,
                    None,
                    {
                        "status": ArticleStatus.EXPIRED.value,
                        "live_version": None,
                        "live_title": None,
                        "live_fields": None,
                        "dirty": True,
                        "updated_at": now,
                        "updated_by": "系统",
                    },
                )
                store.insert_event(conn, article_id, now, "系统", "expire", None, "已过有效期")
            return len(ids)

        n = await self.db.write(tx)
        if n:
            await self.sync_index()
        return n

    async def check_edit(self, editor: Editor, article_id: int) -> Article:
        """May `editor` edit (or send for review) this article? For handlers: before the body."""
        article = await self.get(article_id)
        self._may_edit(editor, article)
        return article

    @staticmethod
    def check_review(editor: Editor) -> None:
        KnowledgeBase._may_review(editor)

    # -- reading ------------------------------------------------------------------------------
    def _load(self, conn: Connection, article_id: int) -> Article:
        a = store.get_article(conn, article_id)
        if a is None:
            raise KbNotFound("知识不存在", article_id=article_id)
        return a

    async def get(self, article_id: int) -> Article:
        return await self.db.read(lambda c: self._load(c, article_id))

    async def get_public(self, article_id: int) -> Article:
        """A live guide or FAQ, as citizens may read it."""
        a = await self.get(article_id)
        if not a.live or a.kind is ArticleKind.REPLY:
            raise KbNotFound("知识不存在或未发布", article_id=article_id)
        return a

    async def history(self, article_id: int) -> tuple[list[Version], list[Event]]:
        def tx(conn: Connection) -> tuple[list[Version], list[Event]]:
            return store.list_versions(conn, article_id), store.list_events(conn, article_id)

        return await self.db.read(tx)

    async def by_ref(self, ref: str) -> Article | None:
        return await self.db.read(lambda c: store.get_by_ref(c, ref))

    async def translations(self, article_id: int) -> list[Article]:
        return await self.db.read(lambda c: store.translations(c, article_id))

    async def list_articles(
        self, editor: Editor | None, f: ArticleFilter
    ) -> tuple[list[Article], int]:
        if editor is None:  # citizens: live guides and FAQ only
            if f.kind is ArticleKind.REPLY:
                return [], 0
            f = ArticleFilter(f.kind, None, f.language, f.department, True, f.limit, f.offset)
        return await self.db.read(lambda c: store.list_articles(c, f))

    async def find(
        self,
        text: str,
        *,
        public: bool,
        kinds: Sequence[ArticleKind] = (),
        language: str | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> tuple[list[tuple[Article, float]], int]:
        """Live articles matching `text`, best first (citizens: guides and FAQ only)."""
        if self.search is None:
            return [], 0
        if public:
            kinds = [k for k in kinds or list(ArticleKind) if k is not ArticleKind.REPLY]
        now = self.clock()
        filters = [
            Filter("status", (ArticleStatus.PUBLISHED.value,)),
            Filter("valid_until", gte=now, missing_ok=True),
        ]
        if kinds:
            filters.append(Filter("kind", tuple(k.value for k in kinds)))
        if language:
            filters.append(Filter("language", (language,)))
        result = await self.search.search(ARTICLES, text, filters, limit=limit, offset=offset)
        found = await self.db.read(lambda c: store.get_articles(c, [h.id for h in result.hits]))
        by_id = {x.id: x for x in found}
        out = [(by_id[h.id], h.score) for h in result.hits if h.id in by_id and by_id[h.id].live]
        return out, result.total

    # -- the search index -----------------------------------------------------------------------
    def document(self, a: Article) -> Any:
        assert self.search is not None
        fields = {
            "kind": a.kind.value,
            "code": a.code,
            "language": a.language,
            "department": a.department,
            "status": ArticleStatus.PUBLISHED.value,
            "valid_from": a.valid_from,
            "valid_until": a.valid_until,
            "updated_at": a.published_at or a.updated_at,
        }
        body = [v for k, v in sorted(a.live_fields.items()) if k != "item_code"]
        return self.search.document(a.id, a.live_title, body, fields)

    def _documents(self, articles: Sequence[Article]) -> list[Any]:
        return [self.document(a) for a in articles]

    async def sync_index(self, batch: int = 500) -> int:
        """Bring marked articles into the index (or out of it); marks stay while search is
        away, so nothing is lost: the next pass catches up."""
        if self.search is None:
            return 0
        done = 0
        while True:
            rows = await self.db.read(lambda c: store.dirty(c, batch))
            if not rows:
                return done
            live = [a for a in rows if a.live]
            gone = [a.id for a in rows if not a.live]
            try:
                docs = await self.search.run(functools.partial(self._documents, live))
                await self.search.upsert(ARTICLES, docs)
                await self.search.delete(ARTICLES, gone)
            except SearchUnavailable:
                log.warning("知识库索引暂缓：检索服务不可用（%d 篇待同步）", len(rows))
                return done
            marks = [(a.id, a.updated_at) for a in rows]
            await self.db.write(functools.partial(store.mark_indexed, done=marks))
            done += len(rows)
            if len(rows) < batch:
                return done

    async def reindex(self) -> int:
        await self.db.write(store.mark_all_dirty)
        return await self.sync_index()


def _input_of(data: ArticleInput) -> dict[str, Any]:
    return {
        "kind": data.kind,
        "title": data.title,
        "fields": data.fields,
        "language": data.language,
        "department": data.department,
        "valid_from": data.valid_from,
        "valid_until": data.valid_until,
        "original_id": data.original_id,
        "ref": data.ref,
    }
