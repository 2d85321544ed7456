"""Tables as the statistics pages show them, and the same tables as CSV and XLSX downloads."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import xlsxwriter

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
    out = io.BytesIO()
    wb = xlsxwriter.Workbook(out, {"in_memory": True, "strings_to_numbers": False})
    bold = wb.add_format({"bold": True})
    formats = {k: wb.add_format({"num_format": v}) for k, v in _XLSX_FORMATS.items()}
    used: set[str] = set()
    for t in tables:
        ws = wb.add_worksheet(_sheet_name(t.title, used))
        ws.write_row(0, 0, [c.label for c in t.columns], bold)
        for j, col in enumerate(t.columns):
            width = max([len(col.label) * 2 + 2] + [len(str(r[j])) + 2 for r in t.rows[:200]])
            ws.set_column(j, j, min(60, width), formats.get(col.fmt))
        for i, row in enumerate(t.rows, start=1):
            for j, (value, col) in enumerate(zip(row, t.columns, strict=True)):
                if value is None or value == "":
                    continue
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    ws.write_number(i, j, value, formats.get(col.fmt))
                else:
                    ws.write_string(i, j, str(value))
        ws.freeze_panes(1, 0)
    wb.close()
    return out.getvalue()


def _sheet_name(title: str, used: set[str]) -> str:
    base = "".join(ch for ch in title if ch not in "[]:*?/\\")[:28] or "表"
    name, n = base, 2
    while name in used:
        name, n = f"{base}{n}", n + 1
    used.add(name)
    return name
