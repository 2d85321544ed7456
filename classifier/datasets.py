"""Labelled examples: reading the two CSV forms, de-duplication, and the errors users see."""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from classifier.config import DEFAULT_LABEL_COLUMN
from classifier.errors import DataError
from classifier.text import normalize

__all__ = ["DataError", "Dataset", "Example", "Form", "deduplicate", "read_csv"]

RAW_COLUMNS = ("subject", "detail")
SEGMENTED_COLUMNS = ("text", "tokens")  # the shipped TipDM file calls its column `tokens`
_ENCODINGS = ("utf-8-sig", "gb18030")

csv.field_size_limit(16 * 1024 * 1024)


class Form(StrEnum):
    RAW = "raw"  # subject + detail as the citizen wrote them
    SEGMENTED = "segmented"  # space-separated jieba tokens, stop words already removed


@dataclass(frozen=True, slots=True)
class Example:
    text: str
    label: str
    form: Form = Form.RAW


@dataclass(slots=True)
class Dataset:
    """The usable rows of one CSV file, and what was left out."""

    name: str
    form: Form
    examples: list[Example]
    sha256: str = ""
    rows: int = 0
    skipped_empty: int = 0
    label_counts: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, object]:
        return {
            "name": self.name,
            "form": self.form.value,
            "sha256": self.sha256,
            "rows": self.rows,
            "used": len(self.examples),
            "skipped_empty": self.skipped_empty,
        }


def _decode(path: Path, data: bytes) -> str:
    for encoding in _ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DataError(f"数据文件 {path} 不是 UTF-8 或 GB18030 编码的文本")


def read_csv(path: str | Path, label_column: str = DEFAULT_LABEL_COLUMN) -> Dataset:
    """Read `subject,detail,label` (raw) or `text|tokens,label` (segmented).

    Other columns are ignored. Rows with an empty text or label are skipped and counted.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"找不到数据文件: {path}")
    if not path.is_file():
        raise DataError(f"数据路径不是文件: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"无法读取数据文件 {path}: {exc.strerror or exc}") from exc
    text = _decode(path, data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise DataError(f"数据文件 {path} 是空的（没有表头）")
        columns = [h.strip().lstrip("\ufeff").lower() for h in header]
        present = ", ".join(h.strip() for h in header)
        label_key = label_column.strip().lower()
        if label_key not in columns:
            raise DataError(f"数据文件 {path} 没有标签列 “{label_column}”（现有列: {present}）")
        form, text_idx = _text_columns(path, columns, present)
        label_idx = columns.index(label_key)
        examples: list[Example] = []
        rows = skipped = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            rows += 1
            label = row[label_idx].strip() if label_idx < len(row) else ""
            body = "\n".join(row[i] for i in text_idx if i < len(row)).strip()
            if not label or not normalize(body):
                skipped += 1
                continue
            examples.append(Example(body, label, form))
    except csv.Error as exc:
        raise DataError(f"数据文件 {path} 第 {reader.line_num} 行不是合法的 CSV: {exc}") from exc
    if not examples:
        raise DataError(f"数据文件 {path} 没有可用的数据行（需要非空的文本和标签）")
    return Dataset(
        name=path.name,
        form=form,
        examples=examples,
        sha256=hashlib.sha256(data).hexdigest(),
        rows=rows,
        skipped_empty=skipped,
        label_counts=dict(Counter(e.label for e in examples)),
    )


def _text_columns(path: Path, columns: Sequence[str], present: str) -> tuple[Form, list[int]]:
    raw = [columns.index(c) for c in RAW_COLUMNS if c in columns]
    if len(raw) == len(RAW_COLUMNS):
        return Form.RAW, raw
    for name in SEGMENTED_COLUMNS:
        if name in columns:
            return Form.SEGMENTED, [columns.index(name)]
    raise DataError(
        f"数据文件 {path} 缺少文本列: 需要 subject,detail（原始文本）或 text（已分词文本，"
        f"也接受 tokens）（现有列: {present}）"
    )


@dataclass(slots=True)
class Deduplicated:
    examples: list[Example]
    duplicates: int
    conflicts: int  # texts dropped because copies carry different labels


def deduplicate(examples: Iterable[Example]) -> Deduplicated:
    """Drop exact repeats; drop every copy of a text that is labelled two different ways.

    The TipDM files contain both (e.g. id 37042 appears twice, as 城乡建设 and as
    劳动和社会保障); a model cannot learn from a contradiction, and keeping one side at random
    would make the rebuild depend on row order.
    """
    labels: defaultdict[tuple[Form, str], set[str]] = defaultdict(set)
    items = list(examples)
    for e in items:
        labels[(e.form, normalize(e.text))].add(e.label)
    seen: set[tuple[Form, str]] = set()
    kept: list[Example] = []
    duplicates = conflicts = 0
    for e in items:
        key = (e.form, normalize(e.text))
        if len(labels[key]) > 1:
            conflicts += 1
            continue
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        kept.append(e)
    return Deduplicated(kept, duplicates, conflicts)


def examples_sha256(examples: Iterable[Example]) -> str:
    """A stable fingerprint of in-memory examples (e.g. the centre's own decisions)."""
    digest = hashlib.sha256()
    for e in examples:
        for part in (e.form.value, e.label, e.text):
            digest.update(part.encode("utf-8"))
            digest.update(b"\x00")
    return digest.hexdigest()
