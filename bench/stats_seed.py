"""A year of work orders for bench/stats.py (not a script itself): every region, every kind of
department the dispatch table routes to, and the lifecycle's states and events in realistic
proportions — direct answers, dispatch, 签收 on time or late, 退单 and re-dispatch, 下派,
延期 approved, 审核不通过 and 重办, 回访 with 满意 / 基本满意 / 不满意 (and 重启), merges, close —
with the deadline clocks those steps leave, deadlines from the real working-day calendar
(holidays and 调休 included). Orders too young to have finished stay in progress.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from routing.directory import Directory
from routing.rules import DispatchRules
from routing.sla import DeadlinePolicy
from tickets.model import Kind, Urgency

Row = tuple[Any, ...]

TICKET_COLS = (
    "id", "number", "version", "status", "channel", "kind", "urgency", "title", "content",
    "summary", "category", "region", "address", "language", "caller_name", "caller_phone",
    "caller_confidential", "attachments", "answer", "answered_at", "satisfaction", "master_id",
    "supervised", "urge_count", "rework_count", "reply_due", "created_at", "updated_at",
    "closed_at", "route_state", "suggestion",
)  # fmt: skip
ASSIGNMENT_COLS = (
    "id", "ticket_id", "department", "role", "state", "created_at", "sign_due", "reply_due",
    "signed_at", "replied_at", "reply", "return_reason", "extension_state", "extension_until",
    "forwarded_from",
)  # fmt: skip
EVENT_COLS = (
    "id", "ticket_id", "at", "actor_role", "actor_id", "actor_name", "action", "from_status",
    "to_status", "reason", "old", "new", "assignment_id",
)  # fmt: skip
CLOCK_COLS = (
    "id", "ticket_id", "assignment_id", "clock", "state", "start_at", "warn_at", "due_at",
    "next_at", "overdue_at", "stopped_at",
)  # fmt: skip

CATEGORIES = (
    ("城乡建设", 26), ("劳动和社会保障", 10), ("交通运输", 9), ("环境保护", 8), ("教育文体", 7),
    ("卫生计生", 7), ("商贸旅游", 6), ("农村农业", 6), ("政法", 5), ("民政", 4), ("国土资源", 4),
    ("经济管理", 3), ("党务政务", 2), ("科技与信息产业", 2), ("纪检监察", 1),
)  # fmt: skip
CHANNELS = (("phone", 68), ("web", 18), ("sms", 9), ("walk_in", 5))
KINDS = (
    ("consult", 30), ("help", 20), ("complaint", 28), ("report", 8), ("suggestion", 8),
    ("praise", 2), ("other", 4),
)  # fmt: skip
URGENCIES = ((Urgency.NORMAL, 92), (Urgency.URGENT, 7), (Urgency.EMERGENCY, 1))
# leagues weighted roughly by population; a tenth of orders name only the league
LEAGUE_WEIGHT = {
    "150100": 35, "150200": 27, "150300": 6, "150400": 40, "150500": 28, "150600": 22,
    "150700": 22, "150800": 15, "150900": 16, "152200": 15, "152500": 11, "152900": 3,
}  # fmt: skip
SUBJECTS = (
    "供暖温度不达标",
    "道路破损",
    "噪音扰民",
    "拖欠工资",
    "物业收费",
    "公交线路",
    "垃圾清运",
)


_CUMULATIVE: dict[int, tuple[list[Any], list[float]]] = {}


def _pick(rng: random.Random, weighted: Sequence[tuple[Any, float]]) -> Any:
    """A weighted choice (cumulative weights computed once per table)."""
    table = _CUMULATIVE.get(id(weighted))
    if table is None:
        items, acc, total = [], [], 0.0
        for x, w in weighted:
            total += w
            items.append(x)
            acc.append(total)
        table = _CUMULATIVE[id(weighted)] = (items, acc)
    items, acc = table
    return items[bisect.bisect_right(acc, rng.random() * acc[-1])]


@dataclass
class Chunk:
    tickets: list[Row] = field(default_factory=list)
    assignments: list[Row] = field(default_factory=list)
    events: list[Row] = field(default_factory=list)
    clocks: list[Row] = field(default_factory=list)


@dataclass
class Ids:
    ticket: int = 0
    assignment: int = 0
    event: int = 0
    clock: int = 0


class Year:
    """Orders 1..N created over the year before `now`, oldest first."""

    def __init__(
        self,
        orders: int,
        now: datetime,
        directory: Directory,
        rules: DispatchRules,
        policy: DeadlinePolicy,
        tz: ZoneInfo,
        seed: int,
    ) -> None:
        self.orders, self.now, self.tz = orders, now, tz
        self.directory, self.rules, self.policy = directory, rules, policy
        self.rng = random.Random(seed)
        self.first = now - timedelta(days=365)
        self.step = timedelta(days=365) / orders
        self.ids = Ids()
        self.numbers: dict[str, int] = {}
        self.routes: dict[tuple[str, str], str] = {}
        self.regions = self._regions()
        self.recent: list[tuple[int, str]] = []  # (id, number) of masters for merges

    def _regions(self) -> list[tuple[str, float]]:
        out: list[tuple[str, float]] = []
        for league, weight in LEAGUE_WEIGHT.items():
            counties = self.directory.children(league)
            out.append((league, weight * 0.1))
            out += [(c.code, weight * 0.9 / len(counties)) for c in counties]
        return out

    def _department(self, category: str, region: str) -> str:
        key = (category, region)
        if key not in self.routes:
            route = self.rules.department_for([category], region)
            assert route is not None
            self.routes[key] = route.department
        return self.routes[key]

    def chunk(self, lo: int, hi: int) -> Chunk:
        c = Chunk()
        for i in range(lo, hi):
            self._order(c, i)
        return c

    # -- one order ----------------------------------------------------------------------------
    def _order(self, c: Chunk, i: int) -> None:
        rng, tz = self.rng, self.tz
        day_start = self.first + self.step * (i - 1)
        local = day_start.astimezone(tz)
        # calls come in the daytime: keep the day, draw the hour (fewer at weekends)
        hour = min(23, max(0, int(rng.gauss(13, 4))))
        created = local.replace(hour=hour, minute=rng.randrange(60), second=rng.randrange(60))
        if created.weekday() >= 5 and rng.random() < 0.4:
            created -= timedelta(days=created.weekday() - 4)  # moved to Friday
        created = min(created, self.now - timedelta(minutes=30))
        ticket_id = i
        day = created.strftime("%Y%m%d")
        self.numbers[day] = self.numbers.get(day, 0) + 1
        number = f"{day}{self.numbers[day]:06d}"
        category = _pick(rng, CATEGORIES)
        region_code: str | None = _pick(rng, self.regions)
        if rng.random() < 0.03:
            region_code = None
        kind = Kind(_pick(rng, KINDS))
        urgency = _pick(rng, URGENCIES)
        given_category = rng.random() < 0.5
        suggestion = None if given_category else {"category": [category], "confidence": 0.9}
        lead = self._department(category, region_code or "150000")
        events: list[Row] = []
        status = "new"
        version = 1

        def event(at: datetime, action: str, to: str, assignment: int | None = None, **new: Any):
            nonlocal status, version
            self.ids.event += 1
            events.append(
                (
                    self.ids.event, ticket_id, at, "system", None, "系统", action, status, to,
                    None, {}, new, assignment,
                )
            )  # fmt: skip
            status = to
            version += 1

        events.append(
            (
                self.ids.event + 1, ticket_id, created, "agent", 1, "话务员", "create", None, "new",
                None, {}, {"channel": "phone", "number": number}, None,
            )
        )  # fmt: skip
        self.ids.event += 1
        t: dict[str, Any] = {
            "answer": None, "answered_at": None, "satisfaction": None, "master_id": None,
            "rework_count": 0, "reply_due": None, "closed_at": None, "updated_at": created,
            "kind": kind, "urgency": urgency,
        }  # fmt: skip
        now = self.now
        cur = created

        def later(base: datetime, minutes: float) -> datetime | None:
            at = base + timedelta(minutes=max(1.0, minutes))
            return at if at < now else None

        roll = rng.random()
        if roll < 0.02 and self.recent:  # 多人同诉: joins an earlier order
            at = later(cur, rng.uniform(5, 120))
            if at is not None:
                master_id, master_number = rng.choice(self.recent)
                t["master_id"] = master_id
                event(at, "merge", "merged", master=master_number)
                t["updated_at"] = at
        elif roll < 0.10 or (kind is Kind.CONSULT and roll < 0.25):  # 直接答复
            at = later(cur, rng.uniform(2, 60))
            if at is not None:
                t.update(answer="已答复。", answered_at=at, updated_at=at)
                event(at, "answer", "answered")
                self._revisit(c, t, event, ticket_id, at, None)
        else:
            self._dispatched(c, t, event, ticket_id, created, lead, kind, urgency)
        if rng.random() < 0.01 and len(self.recent) < 500:
            self.recent.append((ticket_id, number))
        elif self.recent and rng.random() < 0.01:
            self.recent[rng.randrange(len(self.recent))] = (ticket_id, number)
        c.events.extend(events)
        subject = rng.choice(SUBJECTS)
        c.tickets.append(
            (
                ticket_id, number, version, status, _pick(rng, CHANNELS), kind.value,
                urgency.value, subject, f"{subject}，请尽快处理。", None,
                [category] if given_category else [], region_code, None, "zh-Hans", None,
                "13800000000", False, [], t["answer"], t["answered_at"], t["satisfaction"],
                t["master_id"], False, 0, t["rework_count"], t["reply_due"], created,
                t["updated_at"], t["closed_at"], "manual" if given_category else "auto",
                suggestion,
            )
        )  # fmt: skip

    def _dispatched(
        self,
        c: Chunk,
        t: dict[str, Any],
        event: Any,
        ticket_id: int,
        created: datetime,
        lead: str,
        kind: Kind,
        urgency: Urgency,
    ) -> None:
        rng, policy = self.rng, self.policy
        reply_due = policy.reply_due(kind, urgency, created)
        t["reply_due"] = reply_due
        at = created + timedelta(minutes=rng.uniform(5, 180))
        dept = lead
        for attempt in range(3):  # 退单 → 重新派单, at most twice
            if at >= self.now:
                if attempt:  # returned, not yet re-dispatched: the centre's clock runs
                    self._centre_clock(c, ticket_id, created, reply_due)
                return
            t["updated_at"] = at
            a = self._assignment(c, ticket_id, dept, at, urgency, reply_due)
            event(at, "dispatch", "dispatched", lead=dept, assists=[])
            sign_due = a["sign_due"]
            r = rng.random()
            if r < 0.06:  # 退单 with a reason, within or after the sign limit
                back = at + (sign_due - at) * rng.uniform(0.2, 1.4)
                if back >= self.now:
                    return self._finish_assignment(c, a, "pending")
                event(back, "return", "returned", a["id"])
                self._finish_assignment(c, a, "returned", stopped=back)
                alternatives = self.directory.departments_in(
                    self.directory.department_region(dept) or "150000"
                )
                dept = rng.choice(alternatives).code if alternatives else dept
                at = back + timedelta(minutes=rng.uniform(10, 240))
                continue
            late = rng.random() < 0.08
            signed = at + (sign_due - at) * (
                rng.uniform(1.05, 3) if late else rng.uniform(0.05, 0.9)
            )
            if signed >= self.now:
                return self._finish_assignment(c, a, "pending")
            a["signed_at"] = signed
            event(signed, "sign", "accepted", a["id"], assignment_state="accepted", role="lead")
            t["updated_at"] = signed
            self._handle(c, t, event, ticket_id, a, signed, reply_due)
            return
        self._centre_clock(c, ticket_id, created, reply_due)  # returned a third time

    def _handle(
        self,
        c: Chunk,
        t: dict[str, Any],
        event: Any,
        ticket_id: int,
        a: dict[str, Any],
        signed: datetime,
        reply_due: datetime,
    ) -> None:
        rng = self.rng
        if rng.random() < 0.04:  # 延期, approved
            asked = signed + (reply_due - signed) * rng.uniform(0.3, 0.8)
            if asked < self.now:
                event(asked, "request_extension", "accepted", a["id"])
                decided = asked + timedelta(hours=rng.uniform(1, 20))
                if decided < self.now:
                    reply_due = reply_due + timedelta(days=rng.choice([5, 7, 10]))
                    a["reply_due"] = a["extension_until"] = reply_due
                    a["extension_state"] = "approved"
                    t["reply_due"] = reply_due
                    event(decided, "approve_extension", "accepted", a["id"])
        for round_ in range(3):  # a rejected reply is done again (重办)
            late = rng.random() < 0.1
            span = reply_due - signed
            replied = signed + span * (rng.uniform(1.02, 1.6) if late else rng.uniform(0.1, 0.95))
            if replied >= self.now:
                return self._finish_assignment(c, a, "accepted", signed=a["signed_at"])
            a["replied_at"] = replied
            status = "replied"
            event(replied, "reply", status, a["id"], assignment_state="replied", role="lead")
            t["updated_at"] = replied
            reviewed = replied + timedelta(hours=rng.uniform(0.5, 30))
            if reviewed >= self.now:
                return self._finish_assignment(c, a, "replied", signed=a["signed_at"], done=replied)
            if round_ < 2 and rng.random() < 0.07:
                t["rework_count"] += 1
                event(reviewed, "reject", "rework", a["id"])
                signed = reviewed
                continue
            t.update(answer="办理结果。", answered_at=reviewed, updated_at=reviewed)
            event(reviewed, "approve", "reviewed")
            self._finish_assignment(c, a, "replied", signed=a["signed_at"], done=replied)
            self._revisit(c, t, event, ticket_id, reviewed, a)
            return

    def _revisit(
        self,
        c: Chunk,
        t: dict[str, Any],
        event: Any,
        ticket_id: int,
        answered: datetime,
        a: dict[str, Any] | None,
    ) -> None:
        rng = self.rng
        due = self.policy.revisit_due(answered)
        at = answered + timedelta(hours=rng.uniform(2, 60))
        clock = [ticket_id, None, "revisit", "running", answered, due, due, due, None, None]
        if at >= self.now or rng.random() < 0.12:  # not reached (yet)
            if due < self.now:
                clock[3], clock[7], clock[8] = "overdue", None, due
            self._clock(c, clock)
            return
        clock[3], clock[7], clock[9] = "stopped", None, at
        self._clock(c, clock)
        sat = _pick(self.rng, (("satisfied", 72), ("basic", 17), ("unsatisfied", 11)))
        new: dict[str, Any] = {"satisfaction": sat}
        if rng.random() < 0.65:
            new["resolved"] = sat != "unsatisfied" and rng.random() < 0.93
        t["satisfaction"] = sat
        t["updated_at"] = at
        if sat == "unsatisfied":
            event(at, "reopen", "reopened", **new)
            t["closed_at"] = None
            # a new handling period: the centre's clock runs until it is dispatched again
            t["reply_due"] = self.policy.reply_due(t["kind"], t["urgency"], at)
            self._centre_clock(c, ticket_id, at, t["reply_due"])
            return  # waits for the dispatchers (an open order)
        event(at, "revisit", "revisited", **new)
        closed = at + timedelta(hours=rng.uniform(0.2, 24))
        if closed < self.now:
            t["closed_at"] = t["updated_at"] = closed
            event(closed, "close", "closed")

    # -- assignments and clocks -----------------------------------------------------------------
    def _assignment(
        self,
        c: Chunk,
        ticket_id: int,
        dept: str,
        at: datetime,
        urgency: Urgency,
        reply_due: datetime,
    ) -> dict[str, Any]:
        self.ids.assignment += 1
        return {
            "id": self.ids.assignment, "ticket_id": ticket_id, "department": dept,
            "created_at": at, "sign_due": self.policy.sign_due(urgency, at),
            "reply_due": reply_due, "signed_at": None, "replied_at": None,
            "extension_state": "none", "extension_until": None,
        }  # fmt: skip

    def _finish_assignment(
        self,
        c: Chunk,
        a: dict[str, Any],
        state: str,
        *,
        stopped: datetime | None = None,
        signed: datetime | None = None,
        done: datetime | None = None,
    ) -> None:
        c.assignments.append(
            (
                a["id"], a["ticket_id"], a["department"], "lead", state, a["created_at"],
                a["sign_due"], a["reply_due"], a["signed_at"], a["replied_at"],
                "已办理" if a["replied_at"] else None,
                "不属于本单位职责" if state == "returned" else None, a["extension_state"],
                a["extension_until"], None,
            )
        )  # fmt: skip
        sign_end = a["signed_at"] or stopped
        self._timed_clock(c, a, "sign", a["created_at"], a["sign_due"], sign_end)
        if state in ("accepted", "replied") or (state == "pending"):
            reply_end = done if state == "replied" else None
            start = a["created_at"]
            self._timed_clock(c, a, "reply", start, a["reply_due"], reply_end)
        elif state == "returned":
            self._timed_clock(c, a, "reply", a["created_at"], a["reply_due"], stopped)

    def _timed_clock(
        self,
        c: Chunk,
        a: dict[str, Any],
        kind: str,
        start: datetime,
        due: datetime,
        end: datetime | None,
    ) -> None:
        warn = start + (due - start) * 0.8
        if end is not None:
            overdue = due if end > due else None
            self._clock(
                c, [a["ticket_id"], a["id"], kind, "stopped", start, warn, due, None, overdue, end]
            )
        elif due < self.now:
            self._clock(
                c, [a["ticket_id"], a["id"], kind, "overdue", start, warn, due, None, due, None]
            )
        else:
            nxt = warn if warn > self.now else due
            state = "running" if warn > self.now else "warned"
            self._clock(
                c, [a["ticket_id"], a["id"], kind, state, start, warn, due, nxt, None, None]
            )

    def _centre_clock(self, c: Chunk, ticket_id: int, start: datetime, due: datetime) -> None:
        """The 办结 clock an order held by the centre keeps (退单 or 重启, tickets/clocks.py)."""
        self._timed_clock(c, {"ticket_id": ticket_id, "id": None}, "reply", start, due, None)

    def _clock(self, c: Chunk, values: list[Any]) -> None:
        self.ids.clock += 1
        c.clocks.append((self.ids.clock, *values))
