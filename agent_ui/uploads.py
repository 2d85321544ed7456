"""Attachments: photos and documents citizens and staff add to an order. Files live outside the
database, content-addressed (sha256) under [attachments] dir; the order keeps their metadata.
The type is read from the file's first bytes, never taken from the client; the size is counted
while streaming, so an oversized upload stops at the limit without filling memory or disk."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from aiohttp import BodyPartReader, MultipartReader, web

from agent_ui.context import MalformedJson, UnsupportedMediaType, check_text
from tickets.errors import DomainError, InvalidInput

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
# signature → (media type, extension): the types a citizen's phone or a scanner produces
SIGNATURES: tuple[tuple[bytes, str, str], ...] = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"%PDF-", "application/pdf", "pdf"),
)
KINDS = {"jpeg": "image/jpeg", "png": "image/png", "pdf": "application/pdf"}
_NAME_JUNK = re.compile(r"[\x00-\x1f\x7f/\\\\:*?\"<>|]+")


class TooLarge(DomainError):
    code = "body_too_large"


class UnsupportedType(UnsupportedMediaType):
    code = "unsupported_media_type"


class StorageFull(DomainError):
    """The attachments' file system is full: 507, nothing half-written is kept."""

    code = "storage_full"


@dataclass(frozen=True, slots=True)
class Stored:
    sha256: str
    media_type: str
    size: int
    name: str

    def meta(self) -> dict[str, Any]:
        return {
            "type": "file",
            "sha256": self.sha256,
            "media_type": self.media_type,
            "size": self.size,
            "name": self.name,
        }


def clean_name(raw: str | None, ext: str) -> str:
    """A display name: no path, no control characters, at most 80 characters. (Some clients
    percent-encode non-ASCII names, browsers send them as UTF-8: both read the same.)"""
    name = Path(unquote(raw or "")).name
    name = _NAME_JUNK.sub("_", name).strip(" ._") or f"附件.{ext}"
    return name[-80:]


class FileStore:
    def __init__(self, root: Path, max_bytes: int, kinds: list[str]) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.types = {KINDS[k] for k in kinds}

    def path(self, sha256: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", sha256):
            raise InvalidInput("附件编号无效")
        return self.root / sha256[:2] / sha256

    async def save(self, part: BodyPartReader) -> Stored:
        """Stream one uploaded file to disk; 413 past max_bytes, 415 for other types."""
        tmp_dir = self.root / "tmp"
        await asyncio.to_thread(tmp_dir.mkdir, parents=True, exist_ok=True)
        tmp = tmp_dir / secrets.token_hex(8)
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with tmp.open("wb") as out:
                while chunk := await part.read_chunk(CHUNK):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TooLarge(
                            f"附件过大（上限 {self.max_bytes // (1024 * 1024)} MB）",
                            max_bytes=self.max_bytes,
                        )
                    if len(head) < 16:
                        head += chunk[: 16 - len(head)]
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
                await asyncio.to_thread(out.flush)
                await asyncio.to_thread(os.fsync, out.fileno())
            if size == 0:
                raise InvalidInput("附件是空文件", field="file")
            media_type, ext = sniff(head)
            if media_type not in self.types:
                raise UnsupportedType("只接受 JPEG、PNG 图片和 PDF 文件", got=media_type or "")
            sha = digest.hexdigest()
            final = self.path(sha)
            await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
            await asyncio.to_thread(os.replace, tmp, final)  # the same content is one file
            return Stored(sha, media_type, size, clean_name(part.filename, ext))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                log.error("附件存储空间已满（%s）：上传被拒绝，腾出空间后自动恢复", self.root)
                raise StorageFull("附件存储空间已满，请稍后再试或联系管理员") from exc
            raise
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def sniff(head: bytes) -> tuple[str, str]:
    for signature, media_type, ext in SIGNATURES:
        if head.startswith(signature):
            return media_type, ext
    return "", "bin"


async def read_form(
    request: web.Request,
    store: FileStore,
    *,
    max_files: int,
    text_limit: int = 16_384,
    before_files: Callable[[dict[str, str]], Awaitable[None]] | None = None,
) -> tuple[dict[str, str], list[Stored]]:
    """A multipart form: its text fields (each bounded) and its files, streamed to the store.
    `before_files` sees the fields sent before the first file (a form's csrf_token comes
    first) and may refuse the upload before anything is written."""
    if not request.content_type.startswith("multipart/"):
        raise UnsupportedType("请以 multipart/form-data 上传附件", got=request.content_type)
    try:
        return await _read(request, store, max_files, text_limit, before_files)
    except ValueError as exc:  # a broken multipart body (no boundary, truncated)
        raise MalformedJson(f"表单格式错误: {exc}") from None


async def _read(
    request: web.Request,
    store: FileStore,
    max_files: int,
    text_limit: int,
    before_files: Callable[[dict[str, str]], Awaitable[None]] | None,
) -> tuple[dict[str, str], list[Stored]]:
    reader: MultipartReader = await request.multipart()
    fields: dict[str, str] = {}
    files: list[Stored] = []
    while True:
        part = await reader.next()
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            continue
        if part.filename is not None:
            if before_files is not None:
                await before_files(fields)
                before_files = None
            if part.filename == "" and part.name:  # an empty file input
                await part.release()
                continue
            if len(files) >= max_files:
                raise InvalidInput(f"附件最多 {max_files} 个", field="file")
            files.append(await store.save(part))
            continue
        data = await part.read(decode=True)
        if len(data) > text_limit:
            raise TooLarge("表单内容过长", max_bytes=text_limit)
        if part.name:
            fields[part.name] = check_text(data.decode("utf-8", "replace"), part.name)
    return fields, files
