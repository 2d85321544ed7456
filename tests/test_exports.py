"""The XLSX and CSV writers every download goes through (agent_ui/exports.py), read back with
openpyxl, an independent library."""

from __future__ import annotations

import io
import zipfile

from openpyxl import load_workbook

from agent_ui.exports import Column, Table, to_csv, to_xlsx

COLUMNS = [
    Column("rank", "名次", "int"),
    Column("name", "承办单位"),
    Column("rate", "按时办结率", "pct"),
    Column("score", "综合得分", "score"),
    Column("other", "承办单位"),  # the same label twice
]


def test_xlsx_sheets_hold_the_tables_as_numbers_text_and_empty_cells() -> None:
    ranking = Table(
        "ranking",
        "承办单位排名（月度通报）",
        COLUMNS,
        [[1, '=HYPERLINK("http://x")', 0.925, 87.5, ""], [2, "+1-2", None, None, "住建局"]],
    )
    empty = Table(
        "calls", "话务统计（按小时）", [Column("hour", "时段"), Column("n", "呼入", "int")]
    )
    same_title = Table("again", "承办单位排名（月度通报）", [Column("x", "甲")], [["a"]])
    body = to_xlsx([ranking, empty, same_title])
    book = load_workbook(io.BytesIO(body))
    assert book.sheetnames == [
        "承办单位排名（月度通报）",
        "话务统计（按小时）",
        "承办单位排名（月度通报）2",
    ]
    ws = book["承办单位排名（月度通报）"]
    rows = list(ws.iter_rows(values_only=True))
    assert rows[0] == ("名次", "承办单位", "按时办结率", "综合得分", "承办单位（2）")
    # text that looks like a formula stays text; "" and None are empty cells (the page's "—")
    assert rows[1] == (1, '=HYPERLINK("http://x")', 0.925, 87.5, None)
    assert rows[2] == (2, "+1-2", None, None, "住建局")
    assert ws.cell(row=2, column=2).data_type == "s"
    assert ws.cell(row=2, column=3).number_format == "0.0%"
    assert ws.cell(row=2, column=4).number_format == "0.0"
    assert ws.cell(row=1, column=1).font.b and ws.freeze_panes == "A2"
    # a table without rows: its header alone
    assert list(book["话务统计（按小时）"].iter_rows(values_only=True)) == [("时段", "呼入")]
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        assert not [n for n in z.namelist() if "calcChain" in n or "vba" in n.lower()]


def test_csv_shows_cells_as_the_page_does() -> None:
    table = Table("ranking", "排名", COLUMNS, [[1, "住建局", 0.925, 87.54, ""]])
    text = to_csv([table]).decode("utf-8")
    assert text.startswith("\ufeff名次,承办单位,按时办结率,综合得分,承办单位\r\n")
    assert text.endswith("1,住建局,92.5%,87.5,—\r\n")
