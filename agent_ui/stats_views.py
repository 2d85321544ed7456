"""The statistics' results as tables (page, CSV, XLSX) and as JSON, names in Chinese."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from agent_ui.exports import Column, Table
from telephony.call_stats import CallFigures, CallReport
from tickets.indicators import BY_KEY, INDICATORS, MEASURES, THREE_RATES, Ranked
from tickets.model import LABELS
from tickets.stats import HotTopics, Overview, Ranking, Series, StatsFilter

MEASURE_LABELS = {
    "received": "受理量",
    "answered": "直接答复",
    "concluded": "办结量",
    "merged": "合并",
    "assigned": "派单量",
    "sign_due": "应签收",
    "sign_ok": "及时签收",
    "respond_due": "应响应",
    "respond_ok": "及时响应",
    "reply_due": "应办结",
    "reply_ok": "按时办结",
    "returned": "退单",
    "replied": "主办反馈",
    "reworked": "重办",
    "rated": "回访评价",
    "satisfied": "满意及基本满意",
    "resolve_asked": "回答是否解决",
    "resolved": "已解决",
    "open": "在办",
    "overdue": "超期",
    "due": "今日到期",
}
BREAKDOWN_LABELS = {
    "channel": "渠道",
    "kind": "诉求类型",
    "category": "一级分类",
    "region": "地区",
    "department": "承办单位",
}
BREAKDOWN_COLUMNS = {
    "received": "受理量",
    "concluded": "办结量",
    "open": "在办（当前）",
    "overdue": "超期（当前）",
}
RANK_RATES = (
    "on_time_sign_rate",
    "on_time_reply_rate",
    "return_rate",
    "reopen_rate",
    "satisfaction_rate",
    "resolution_rate",
    "response_rate",
)


class Names(Protocol):
    def department_name(self, code: str) -> str: ...
    def region_name(self, code: str) -> str: ...


def name_of(names: Names, by: str, key: str) -> str:
    if by == "department":
        return names.department_name(key) if key else "热线中心"
    if by == "region":
        return names.region_name(key) if key else "未知地区"
    if by == "category":
        return key or "未分类"
    return LABELS.get(key, key)


def rate_columns() -> list[Column]:
    return [Column(k, BY_KEY[k].label, "pct", BY_KEY[k].definition) for k in RANK_RATES]


def overview_tables(o: Overview) -> list[Table]:
    """The counts (now and in the period) and the indicators with their definitions."""
    cols = [Column("name", "项目"), Column("value", "数量", "int"), Column("note", "说明")]
    rows: list[list[Any]] = [
        [MEASURE_LABELS[m], o.totals[m], ""]
        for m in ("received", "concluded", "answered", "assigned", "returned", "merged")
    ]
    rows += [
        ["在办工单", o.open, "尚未答复市民的工单（当前，不随统计期变化）"],
        [
            "超期工单",
            o.overdue,
            "签收、办结或回访时限已过的工单（当前；与工单列表的“已超期”同一规则）",
        ],
        ["今日到期", o.due_today, "今天到期、尚在时限内的主办任务"],
    ]
    rates = Table(
        "rates",
        "考核指标",
        [Column("name", "指标"), Column("value", "比率", "pct"), Column("note", "定义")],
        [[i.label, o.rates[i.key], i.definition] for i in INDICATORS],
    )
    return [Table("overview", "总体情况", cols, rows), rates]


def breakdown_table(
    names: Names, by: str, rows: Sequence[tuple[str, dict[str, int]]], limit: int | None = None
) -> Table:
    cols = [Column("key", "代码"), Column("name", BREAKDOWN_LABELS[by])]
    cols += [Column(m, BREAKDOWN_COLUMNS[m], "int") for m in BREAKDOWN_COLUMNS]
    out = [
        [key, name_of(names, by, key), *(t.get(m, 0) for m in BREAKDOWN_COLUMNS)]
        for key, t in rows[:limit]
    ]
    return Table(f"by_{by}", f"按{BREAKDOWN_LABELS[by]}统计", cols, out)


def ranking_table(names: Names, ranking: Ranking, title: str = "承办单位排名（月度通报）") -> Table:
    cols = [Column("rank", "名次", "int"), Column("department", "单位代码")]
    cols += [Column("name", "承办单位"), Column("assigned", "派单量", "int")]
    cols += [*rate_columns(), Column("score", "综合得分", "score")]
    rows = [
        [r.rank, r.key, names.department_name(r.key), r.totals.get("assigned", 0)]
        + [r.rates[k] for k in RANK_RATES]
        + [r.score]
        for r in ranking.rows
    ]
    return Table("ranking", title, cols, rows)


def regions_table(names: Names, rows: Sequence[Ranked]) -> Table:
    cols = [Column("rank", "名次", "int"), Column("region", "区划代码"), Column("name", "地区")]
    cols += [Column("assigned", "派单量", "int"), *rate_columns()]
    cols += [Column("score", "综合得分", "score")]
    out = [
        [r.rank, r.key, names.region_name(r.key), r.totals.get("assigned", 0)]
        + [r.rates[k] for k in RANK_RATES]
        + [r.score]
        for r in rows
    ]
    return Table("regions", "地区排名", cols, out)


def series_table(names: Names, s: Series, by: str | None, title: str) -> Table:
    keys = sorted(s.groups, key=lambda k: -sum(s.groups[k]))
    cols = [Column("period", {"day": "日期", "week": "周（起始日）", "month": "月份"}[s.bucket])]
    cols += [Column(k or "total", name_of(names, by, k) if by else "受理量", "int") for k in keys]
    rows = [
        [_period_label(s.bucket, start)] + [s.groups[k][i] for k in keys]
        for i, start in enumerate(s.starts)
    ]
    return Table("series" if by is None else f"series_{by}", title, cols, rows)


def _period_label(bucket: str, start: Any) -> str:
    return start.strftime("%Y-%m") if bucket == "month" else start.isoformat()


def hot_table(names: Names, by: str, changes: Sequence[Any], title: str) -> Table:
    cols = [Column("key", "代码"), Column("name", BREAKDOWN_LABELS[by])]
    cols += [Column("current", "本期", "int"), Column("previous", "上期", "int")]
    cols += [Column("delta", "增减", "int"), Column("ratio", "增幅", "pct")]
    rows = [
        [c.key, name_of(names, by, c.key), c.current, c.previous, c.delta, c.ratio] for c in changes
    ]
    return Table(f"hot_{by}", title, cols, rows)


def calls_table(report: CallReport) -> Table:
    cols = [Column("hour", "时段")]
    cols += [Column(k, label, "int") for k, label in CALL_COUNTS]
    cols += [Column(k, label, fmt) for k, label, fmt in CALL_RATES]
    rows = [_call_row(f"{h:02d}:00–{h:02d}:59", f) for h, f in enumerate(report.by_hour)]
    rows.append(_call_row("合计", report.totals))
    return Table("calls", "话务统计（按小时）", cols, rows)


CALL_COUNTS = (
    ("offered", "呼入量"),
    ("queued", "转人工"),
    ("answered", "接通"),
    ("answered_fast", "15秒内接通"),
    ("abandoned", "放弃"),
    ("voicemail", "留言"),
    ("callbacks", "回拨"),
)
CALL_RATES = (
    ("connection_rate", "接通率", "pct"),
    ("answer_rate_15s", "15秒接通率", "pct"),
    ("abandon_rate", "放弃率", "pct"),
    ("average_wait_s", "平均等待（秒）", "num"),
    ("average_talk_s", "平均通话（秒）", "num"),
    ("occupancy", "坐席占用率", "pct"),
)


def _call_row(label: str, f: CallFigures) -> list[Any]:
    return [label] + [f[k] for k, _ in CALL_COUNTS] + [getattr(f, k) for k, _, _ in CALL_RATES]


# -- JSON -----------------------------------------------------------------------------------------
def period_json(f: StatsFilter) -> dict[str, Any]:
    out: dict[str, Any] = {"since": f.since.isoformat(), "until": f.until.isoformat()}
    for k in ("region", "department", "channel", "kind"):
        if getattr(f, k):
            out[k] = getattr(f, k)
    return out


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def ranked_json(
    names: Names, r: Ranked, key: str = "department", counts: bool = False
) -> dict[str, Any]:
    name = names.department_name(r.key) if key == "department" else names.region_name(r.key)
    out: dict[str, Any] = {
        key: r.key,
        "name": name,
        "received": r.totals.get("assigned", 0),
        **{k: _r(r.rates[k]) for k in RANK_RATES},
        "score": r.score,
        "rank": r.rank,
    }
    if counts:
        out["counts"] = dict(r.totals)
    return out


def overview_json(o: Overview) -> dict[str, Any]:
    return {
        "counts": {m: o.totals[m] for m in MEASURES if m not in ("open", "overdue", "due")},
        "open": o.open,
        "overdue": o.overdue,
        "due_today": o.due_today,
        "rates": {k: _r(v) for k, v in o.rates.items()},
        "three_rates": {k: _r(o.rates[k]) for k in THREE_RATES},
    }


def hot_json(names: Names, h: HotTopics) -> dict[str, Any]:
    def one(by: str, c: Any) -> dict[str, Any]:
        return {
            "key": c.key,
            "name": name_of(names, by, c.key),
            "current": c.current,
            "previous": c.previous,
            "change": c.delta,
            "ratio": _r(c.ratio),
        }

    return {
        "previous": {"since": h.previous.since.isoformat(), "until": h.previous.until.isoformat()},
        "categories": [one("category", c) for c in h.categories],
        "regions": [one("region", c) for c in h.regions],
    }
