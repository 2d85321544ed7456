"""Tables as the statistics pages show them, and the same tables as CSV and XLSX downloads."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

FORMATS = ("json", "csv", "xlsx")
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
NONE = "—"


@dataclass(frozen=True, slots=True)
class Column:
    key: str
    label: str
    fmt: str = "text"  # text | int | pct | score | num
    hint: str = ""  # the indicator's definition (shown on hover)


@dataclass(slots=True)
class Table:
    name: str  # for ?table= and the sheet
    title: str
    columns: list[Column]
    rows: list[list[Any]] = field(default_factory=list)
    note: str = ""

    def shown(self, value: Any, col: Column) -> str:
        """A cell as the page shows it."""
        return show(value, col.fmt)

    def shown_rows(self) -> list[list[str]]:
        return [[show(v, c.fmt) for v, c in zip(r, self.columns, strict=True)] for r in self.rows]


def show(value: Any, fmt: str) -> str:
    if value is None or value == "":
        return NONE
    if fmt == "pct":
        return f"{value * 100:.1f}%"
    if fmt == "score":
        return f"{value:.1f}"
    if fmt == "num":
        return f"{value:.1f}"
    if fmt == "int":
        return f"{int(value)}"
    return str(value)


def to_csv(tables: Sequence[Table]) -> bytes:
    """One table: a plain CSV. Several: each under a "# title" line, separated by a blank line.
    UTF-8 with a byte-order mark so that Excel opens the Chinese correctly."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    for i, t in enumerate(tables):
        if len(tables) > 1:
            if i:
                w.writerow([])
            w.writerow([f"# {t.title}"])
        w.writerow([c.label for c in t.columns])
        w.writerows(t.shown_rows())
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


_XLSX_FORMATS = {"pct": "0.0%", "score": "0.0", "num": "0.0", "int": "0"}


def to_xlsx(tables: Sequence[Table]) -> bytes:
    """One sheet per table; rates are numbers formatted as percentages (what the page shows)."""
    wb = Workbook(write_only=False)
    if wb.active is not None:
        wb.remove(wb.active)
    used: set[str] = set()
    for t in tables:
        title = _sheet_name(t.title, used)
        ws = wb.create_sheet(title)
        ws.append([c.label for c in t.columns])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in t.rows:
            ws.append([None if v == "" else v for v in row])
        for j, col in enumerate(t.columns, start=1):
            fmt = _XLSX_FORMATS.get(col.fmt)
            letter = get_column_letter(j)
            width = max([len(col.label) * 2 + 2] + [len(str(r[j - 1])) + 2 for r in t.rows[:200]])
            ws.column_dimensions[letter].width = min(60, width)
            if fmt:
                for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                    cell.number_format = fmt
        ws.freeze_panes = "A2"
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _sheet_name(title: str, used: set[str]) -> str:
    base = "".join(ch for ch in title if ch not in "[]:*?/\\")[:28] or "表"
    name, n = base, 2
    while name in used:
        name, n = f"{base}{n}", n + 1
    used.add(name)
    return name
