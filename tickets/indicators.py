"""The statistics' one definition: what each work order counts for (its facts) and how the
indicators departments are ranked on are computed from those counts. Pure code, no I/O.

An order's facts are derived from its persisted state (the order, its assignments, its deadline
clocks and its audit events), never from the action that just happened: the aggregates apply
the difference between an order's facts before and after each change, and a from-scratch
recount sums the same facts, so the two agree by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from tickets.model import (
    Action,
    AssignmentRole,
    ClockKind,
    ClockState,
    Satisfaction,
    Status,
    Ticket,
    TicketEvent,
)

# -- what is counted ------------------------------------------------------------------------------
# Each measure is a count in a cell (day, department, region, channel, kind, category). Dated
# measures fall on the local (Asia/Shanghai) day something happened; `open` and `overdue` are a
# snapshot (day 0); `due` falls on the deadline's day.
MEASURES: tuple[str, ...] = (
    "received",  # 受理: orders registered (any channel), on the day of receipt
    "answered",  # 直接答复 by the centre
    "concluded",  # 办结: the citizen got the answer (直接答复, or a department reply passed 审核)
    "merged",  # 合并 into another order (多人同诉)
    "assigned",  # 派单: tasks given to a department (主办 or 协办), on the day of dispatch
    "sign_due",  # tasks whose 签收 was measured: signed, or the 签收 deadline passed unsigned
    "sign_ok",  # … signed within the 签收 time limit
    "respond_due",  # tasks whose response was measured: signed, returned or passed down, or late
    "respond_ok",  # … responded to (签收 / 退单 / 下派) within the 签收 time limit
    "reply_due",  # tasks whose 办结反馈 was measured: replied, or the reply deadline passed
    "reply_ok",  # … replied within the reply time limit (an approved 延期 moves the limit)
    "returned",  # 退单
    "replied",  # 办结反馈 by the lead department (主办)
    "reworked",  # lead replies sent back: 审核不通过, or reopened after 不满意 / 重启
    "rated",  # 回访 answers with a satisfaction
    "satisfied",  # … 满意 or 基本满意
    "resolve_asked",  # 回访 answers saying whether the problem was resolved
    "resolved",  # … resolved
    "open",  # snapshot: orders not yet answered
    "overdue",  # snapshot: orders with a live time limit past its deadline (超期)
    "due",  # live 办结 clocks of lead tasks, on the day of their deadline
)
M = {name: i for i, name in enumerate(MEASURES)}
SNAPSHOT_MEASURES = frozenset({M["open"], M["overdue"]})
DUE_MEASURES = frozenset({M["due"]})
SNAPSHOT_DAY = 0

# not yet answered to the citizen: the order is still being handled
OPEN_STATUSES = frozenset(
    {
        Status.NEW,
        Status.DISPATCHED,
        Status.ACCEPTED,
        Status.RETURNED,
        Status.REPLIED,
        Status.REWORK,
        Status.REOPENED,
    }
)
CENTRE = ""  # the department of what the centre itself did (直接答复)
GOOD_RATINGS = frozenset({Satisfaction.SATISFIED.value, Satisfaction.BASIC.value})


@dataclass(frozen=True, slots=True)
class ClockFact:
    """The part of a deadline clock (ticket_clocks) the indicators read."""

    id: int
    kind: ClockKind
    assignment_id: int | None
    state: ClockState
    due_at: datetime
    stopped_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OrderDims:
    """An order's dimensions, the same for all its counts."""

    region: str  # GB/T 2260 code; "" when unknown
    channel: str
    kind: str
    category: str  # first-level category; "" when not yet classified


# (local day ordinal or 0, department code or "", measure index) → count
Facts = dict[tuple[int, str, int], int]


def _day(value: datetime, tz: ZoneInfo) -> int:
    try:
        return value.astimezone(tz).date().toordinal()
    except OverflowError:  # a deadline at the calendar's end (9999-12-31 UTC): its last day
        return date.max.toordinal()


def order_dims(t: Ticket) -> OrderDims:
    """Region and category as given, else as the triage suggested them."""
    s = t.suggestion or {}
    region = t.region or ""
    if not region:
        found = s.get("region")
        if isinstance(found, Mapping) and found.get("code"):
            region = str(found["code"])
        else:
            routed = s.get("department")
            if isinstance(routed, Mapping) and routed.get("region"):
                region = str(routed["region"])
    category = t.category[0] if t.category else ""
    if not category:
        suggested = s.get("category")
        if isinstance(suggested, list) and suggested:
            category = str(suggested[0])
    return OrderDims(region, t.channel.value, t.kind.value, category[:50])


def _latest(clocks: Sequence[ClockFact], kind: ClockKind) -> dict[int | None, ClockFact]:
    out: dict[int | None, ClockFact] = {}
    for c in sorted(clocks, key=lambda c: c.id):
        if c.kind is kind:
            out[c.assignment_id] = c
    return out


def _missed(c: ClockFact | None) -> bool:
    """The deadline passed while the step was still to do (the watcher's verdict, or the clock
    was stopped for another reason after its deadline)."""
    if c is None:
        return False
    if c.state is ClockState.OVERDUE:
        return True
    return c.state is ClockState.STOPPED and c.stopped_at is not None and c.stopped_at > c.due_at


def order_facts(
    t: Ticket, clocks: Sequence[ClockFact], events: Sequence[TicketEvent], tz: ZoneInfo
) -> tuple[OrderDims, Facts]:
    """Everything one order counts for, from its state, clocks and audit events (oldest first)."""
    facts: Facts = {}

    def add(when: datetime | int, department: str, measure: str, n: int = 1) -> None:
        day = when if isinstance(when, int) else _day(when, tz)
        key = (day, department, M[measure])
        facts[key] = facts.get(key, 0) + n

    lead = t.lead
    lead_dept = lead.department if lead else CENTRE
    dept_of = {a.id: a.department for a in t.assignments}
    add(t.created_at, lead_dept, "received")

    # -- replay the audit trail: who answered, ratings, returns, rework -----------------------
    returned_at: dict[int, datetime] = {}
    passed_at: dict[int, datetime] = {}  # first 退单 or 下派 of a task
    reworked_at: dict[int, datetime] = {}
    source: int | str | None = None  # the task whose reply the citizen got, or CENTRE
    last_lead_reply: int | None = None
    for e in events:
        action = e.action
        if action == Action.REPLY and e.new.get("role") == AssignmentRole.LEAD.value:
            last_lead_reply = e.assignment_id
        elif action == Action.ANSWER:
            source = CENTRE
            add(e.at, CENTRE, "answered")
            add(e.at, CENTRE, "concluded")
        elif action == Action.APPROVE:
            source = last_lead_reply
            add(e.at, dept_of.get(last_lead_reply or -1, CENTRE), "concluded")
        elif action == Action.REJECT and e.assignment_id is not None:
            reworked_at.setdefault(e.assignment_id, e.at)
        elif action in (Action.RETURN, Action.FORWARD) and e.assignment_id is not None:
            passed_at.setdefault(e.assignment_id, e.at)
            if action == Action.RETURN:
                returned_at[e.assignment_id] = e.at
        elif action == Action.MERGE:
            add(e.at, lead_dept, "merged")
        if action in (Action.REVISIT, Action.REOPEN):
            rated_dept = CENTRE if source in (None, CENTRE) else dept_of.get(int(source), CENTRE)
            rating = e.new.get("satisfaction")
            if rating:
                add(e.at, rated_dept, "rated")
                if rating in GOOD_RATINGS:
                    add(e.at, rated_dept, "satisfied")
            resolved = e.new.get("resolved")
            if isinstance(resolved, bool):
                add(e.at, rated_dept, "resolve_asked")
                if resolved:
                    add(e.at, rated_dept, "resolved")
            if action == Action.REOPEN and isinstance(source, int):
                reworked_at.setdefault(source, e.at)

    # -- each task of a department ------------------------------------------------------------
    sign_clocks = _latest(clocks, ClockKind.SIGN)
    reply_clocks = _latest(clocks, ClockKind.REPLY)
    for a in t.assignments:
        dept = a.department
        add(a.created_at, dept, "assigned")
        sc = sign_clocks.get(a.id)
        sign_deadline = sc.due_at if sc else a.sign_due
        if a.signed_at is not None:
            add(a.signed_at, dept, "sign_due")
            if sign_deadline is None or a.signed_at <= sign_deadline:
                add(a.signed_at, dept, "sign_ok")
        elif _missed(sc):
            assert sc is not None
            add(sc.due_at, dept, "sign_due")
        responses = [x for x in (a.signed_at, passed_at.get(a.id)) if x is not None]
        if responses:
            first = min(responses)
            add(first, dept, "respond_due")
            if sign_deadline is None or first <= sign_deadline:
                add(first, dept, "respond_ok")
        elif _missed(sc):
            assert sc is not None
            add(sc.due_at, dept, "respond_due")
        rc = reply_clocks.get(a.id)
        reply_deadline = rc.due_at if rc else a.reply_due
        if a.replied_at is not None:
            add(a.replied_at, dept, "reply_due")
            if reply_deadline is None or a.replied_at <= reply_deadline:
                add(a.replied_at, dept, "reply_ok")
            if a.role is AssignmentRole.LEAD:
                add(a.replied_at, dept, "replied")
        elif _missed(rc):
            assert rc is not None
            add(rc.due_at, dept, "reply_due")
        if a.id in returned_at:
            add(returned_at[a.id], dept, "returned")
        if a.id in reworked_at:
            add(reworked_at[a.id], dept, "reworked")

    # -- the snapshot: open, overdue, due -----------------------------------------------------
    live = [c for c in clocks if c.state is not ClockState.STOPPED]
    # the one rule for 超期 (tickets/timing.overdue: a live time limit has passed), as the
    # deadline watcher last wrote it: a count cannot move with the clock between its passes
    if any(c.state is ClockState.OVERDUE for c in live):
        add(SNAPSHOT_DAY, lead_dept, "overdue")
    if t.status in OPEN_STATUSES:
        add(SNAPSHOT_DAY, lead_dept, "open")
        running = (ClockState.RUNNING, ClockState.WARNED)
        for c in live:
            if (
                c.kind is ClockKind.REPLY
                and c.state in running
                and lead
                and c.assignment_id == lead.id
            ):
                add(c.due_at, lead.department, "due")
    return order_dims(t), {k: v for k, v in facts.items() if v}


# -- the indicators -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Indicator:
    key: str  # the JSON name
    label: str  # 中文名
    numerator: str  # measure
    denominator: str  # measure
    higher_is_better: bool
    definition: str  # shown on the page (hover and footnote) and in the README


INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "on_time_sign_rate",
        "及时签收率",
        "sign_ok",
        "sign_due",
        True,
        "在签收时限内签收的承办任务数 ÷ 应签收的承办任务数"
        "（已签收的，加上超过签收时限仍未签收的）。按签收日（未签收的按时限到期日）统计；时限以工单的签收时限计时器为准。",
    ),
    Indicator(
        "on_time_reply_rate",
        "按时办结率",
        "reply_ok",
        "reply_due",
        True,
        "在办结时限内办结反馈的承办任务数 ÷ 应办结的承办任务数"
        "（已反馈的，加上超过办结时限仍未反馈的）。经批准的延期视为新的时限；按反馈日（未反馈的按时限到期日）统计。",
    ),
    Indicator(
        "return_rate",
        "退单率",
        "returned",
        "assigned",
        False,
        "退单次数 ÷ 派给该单位的承办任务数（主办和协办），均按发生日统计。",
    ),
    Indicator(
        "reopen_rate",
        "重办率",
        "reworked",
        "replied",
        False,
        "被退回重办的主办任务数（审核不通过，或回访不满意、重启）÷ 主办单位办结反馈的任务数。",
    ),
    Indicator(
        "satisfaction_rate",
        "满意率",
        "satisfied",
        "rated",
        True,
        "回访评价为“满意”或“基本满意”的次数 ÷ 有满意度评价的回访次数；"
        "评价计入给出该答复的单位（直接答复计入热线中心）。",
    ),
    Indicator(
        "resolution_rate",
        "解决率",
        "resolved",
        "resolve_asked",
        True,
        "回访中市民表示问题已解决的次数 ÷ 回访中回答了“是否解决”的次数。",
    ),
    Indicator(
        "response_rate",
        "响应率",
        "respond_ok",
        "respond_due",
        True,
        "在签收时限内作出响应（签收，或说明理由退单、下派）的承办任务数 ÷ 应响应的承办任务数"
        "（已响应的，加上超过签收时限仍未响应的）。",
    ),
)
BY_KEY = {i.key: i for i in INDICATORS}
# what a ranking reads: the tasks and every indicator's numerator and denominator
RANK_MEASURES: tuple[str, ...] = tuple(
    dict.fromkeys(["assigned"] + [m for i in INDICATORS for m in (i.numerator, i.denominator)])
)
# the 三率 of the hotline assessment
THREE_RATES = ("response_rate", "resolution_rate", "satisfaction_rate")
# what the composite score weighs by default ([stats] weights in config.toml overrides it)
DEFAULT_WEIGHTS: dict[str, float] = {
    "on_time_sign_rate": 15,
    "on_time_reply_rate": 25,
    "return_rate": 10,
    "reopen_rate": 10,
    "satisfaction_rate": 25,
    "resolution_rate": 15,
}
SCORE_DEFINITION = (
    "综合得分 = 100 × Σ(权重 × 指标值) ÷ Σ权重，只计有数据的指标；"
    "退单率和重办率按 (1 − 比率) 计入。权重见配置 [stats] weights。得分相同按派单量多者在前。"
    "参与排名须派单达到最少件数，且有数据的指标合计占权重一半以上。"
)


Totals = Mapping[str, int]


def rate(totals: Totals, indicator: Indicator) -> float | None:
    """numerator ÷ denominator, None when nothing was measured."""
    den = totals.get(indicator.denominator, 0)
    if den <= 0:
        return None
    return min(1.0, max(0.0, totals.get(indicator.numerator, 0) / den))


_RATES = tuple((i.key, i.numerator, i.denominator) for i in INDICATORS)


def rates(totals: Totals) -> dict[str, float | None]:
    """Every indicator of `totals` (the same as `rate` for each; rankings call this a lot)."""
    out: dict[str, float | None] = {}
    get = totals.get
    for key, num, den in _RATES:
        d = get(den, 0)
        out[key] = None if d <= 0 else min(1.0, max(0.0, get(num, 0) / d))
    return out


def score(values: Mapping[str, float | None], weights: Mapping[str, float]) -> float | None:
    """The composite score (0–100) over the indicators that have a value, or None."""
    num = den = 0.0
    for key, weight in weights.items():
        value = values.get(key)
        if value is None or weight <= 0:
            continue
        good = value if BY_KEY[key].higher_is_better else 1.0 - value
        num += weight * good
        den += weight
    return round(100 * num / den, 2) if den > 0 else None


@dataclass(frozen=True, slots=True)
class Ranked:
    key: str  # department or region code
    totals: dict[str, int]
    rates: dict[str, float | None]
    score: float | None
    rank: int | None  # 1 = best; None when not ranked (nothing measured, or too few orders)


MIN_COVERAGE = 0.5  # a score needs indicators carrying at least half of the weight


def coverage(values: Mapping[str, float | None], weights: Mapping[str, float]) -> float:
    """The share of the weight whose indicators have a value."""
    total = sum(w for w in weights.values() if w > 0)
    measured = sum(w for k, w in weights.items() if w > 0 and values.get(k) is not None)
    return measured / total if total else 0.0


def rank(
    rows: Mapping[str, Totals],
    weights: Mapping[str, float],
    min_assigned: int = 1,
    tiebreak: Callable[[str], str] = str,
) -> list[Ranked]:
    """Score and rank: best first; equal scores by more tasks, then by code. Rows with too few
    tasks, or whose measured indicators carry less than half of the weight (a score from the
    退单率 alone says little), come last, unranked."""
    scored = []
    for key, totals in rows.items():
        values = rates(totals)
        s = score(values, weights)
        scored.append((key, dict(totals), values, s))
    ranked: list[Any] = []
    rest: list[Any] = []
    for x in scored:
        eligible = (
            x[3] is not None
            and x[1].get("assigned", 0) >= min_assigned
            and coverage(x[2], weights) >= MIN_COVERAGE
        )
        (ranked if eligible else rest).append(x)
    ranked.sort(key=lambda x: (-(x[3] or 0.0), -x[1].get("assigned", 0), tiebreak(x[0])))
    rest.sort(key=lambda x: (-x[1].get("assigned", 0), tiebreak(x[0])))
    out = [Ranked(k, t, v, s, i + 1) for i, (k, t, v, s) in enumerate(ranked)]
    out += [Ranked(k, t, v, s, None) for k, t, v, s in rest]
    return out


def local_day(value: datetime, tz: ZoneInfo) -> date:
    return value.astimezone(tz).date()
