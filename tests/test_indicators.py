"""Every indicator on hand-built orders (tickets/indicators.py is pure: no database), with the
edge cases: extensions, 退单 then re-dispatch, merges, 重办 and reopening, direct answers,
orders spanning the Spring Festival; and the composite score, the ranking and the periods."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from routing.config import SlaSettings
from routing.sla import DeadlinePolicy
from tickets.indicators import (
    BY_KEY,
    DEFAULT_WEIGHTS,
    INDICATORS,
    ClockFact,
    Facts,
    M,
    order_facts,
    rank,
    rate,
    rates,
    score,
)
from tickets.model import (
    Assignment,
    AssignmentRole,
    AssignmentState,
    Caller,
    Channel,
    ClockKind,
    ClockState,
    ExtensionState,
    Kind,
    Role,
    Status,
    Ticket,
    TicketEvent,
    Urgency,
)
from tickets.stats_store import decompose, month_start, next_month, quarter_start, week_start
from tickets.stats_tables import Grain

TZ = ZoneInfo("Asia/Shanghai")
A, B = "150100-housing", "150102-housing"


def local(y: int, mo: int, d: int, h: int = 10, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=TZ)


def day(dt: datetime) -> int:
    return dt.astimezone(TZ).date().toordinal()


T0 = local(2026, 11, 2, 9, 0)  # a Monday


def assignment(aid: int, dept: str = A, created: datetime = T0, **kw: Any) -> Assignment:
    values: dict[str, Any] = {
        "id": aid,
        "ticket_id": 1,
        "department": dept,
        "role": AssignmentRole.LEAD,
        "state": AssignmentState.ACCEPTED,
        "created_at": created,
        "sign_due": created + timedelta(hours=2),
        "reply_due": created + timedelta(days=10),
    }
    return Assignment(**(values | kw))


def ticket(status: Status, *assignments: Assignment, **kw: Any) -> Ticket:
    values: dict[str, Any] = {
        "id": 1,
        "number": "20261102000001",
        "version": 1,
        "status": status,
        "channel": Channel.PHONE,
        "kind": Kind.COMPLAINT,
        "urgency": Urgency.NORMAL,
        "content": "噪音扰民",
        "caller": Caller(phone="13812345678"),
        "created_at": T0 - timedelta(minutes=30),
        "updated_at": T0,
        "region": "150102",
        "category": ("城乡建设",),
        "assignments": assignments,
    }
    return Ticket(**(values | kw))


_ids = iter(range(1, 10_000))


def ev(action: str, at: datetime, assignment_id: int | None = None, **new: Any) -> TicketEvent:
    return TicketEvent(
        next(_ids), 1, at, Role.SYSTEM, None, "", action, None, None, None, {}, new, assignment_id
    )


def clock(
    kind: ClockKind, aid: int | None, state: ClockState, due: datetime, stopped: datetime | None
) -> ClockFact:
    return ClockFact(next(_ids), kind, aid, state, due, stopped)


def facts(t: Ticket, clocks: list[ClockFact], events: list[TicketEvent]) -> Facts:
    return order_facts(t, clocks, [ev("create", t.created_at), *events], TZ)[1]


def count(f: Facts, measure: str, dept: str | None = None, on: datetime | None = None) -> int:
    return sum(
        n
        for (d, dep, m), n in f.items()
        if m == M[measure] and (dept is None or dep == dept) and (on is None or d == day(on))
    )


# -- 受理 and the order's dimensions ------------------------------------------------------------
def test_received_counts_on_the_local_day_of_receipt() -> None:
    late_evening_utc = local(2026, 11, 2, 23, 30)  # 15:30 UTC, already the 2nd in Shanghai
    t = ticket(Status.NEW, created_at=late_evening_utc, category=())
    dims, f = order_facts(t, [], [ev("create", late_evening_utc)], TZ)
    assert count(f, "received", on=late_evening_utc) == 1
    assert count(f, "open") == 1 and count(f, "overdue") == 0
    assert dims.category == "" and dims.region == "150102"


def test_triage_suggestion_gives_region_and_category_when_not_given() -> None:
    t = ticket(
        Status.NEW,
        region=None,
        category=(),
        suggestion={"category": ["交通运输", "公路"], "region": {"code": "150203"}},
    )
    dims, _ = order_facts(t, [], [], TZ)
    assert (dims.region, dims.category) == ("150203", "交通运输")


# -- 签收 and 响应 --------------------------------------------------------------------------------
def test_sign_within_the_limit_is_on_time_and_late_sign_is_not() -> None:
    on_time = assignment(1, signed_at=T0 + timedelta(hours=1))
    f = facts(ticket(Status.ACCEPTED, on_time), [], [ev("sign", T0 + timedelta(hours=1), 1)])
    assert (count(f, "sign_due"), count(f, "sign_ok")) == (1, 1)
    assert (count(f, "respond_due"), count(f, "respond_ok")) == (1, 1)
    late = assignment(1, signed_at=T0 + timedelta(hours=3))
    f = facts(ticket(Status.ACCEPTED, late), [], [ev("sign", T0 + timedelta(hours=3), 1)])
    assert (count(f, "sign_due"), count(f, "sign_ok")) == (1, 0)


def test_unsigned_past_the_deadline_is_measured_once_even_when_signed_later() -> None:
    due = T0 + timedelta(hours=2)
    pending = assignment(1, state=AssignmentState.PENDING)
    overdue = clock(ClockKind.SIGN, 1, ClockState.OVERDUE, due, None)
    f = facts(ticket(Status.DISPATCHED, pending), [overdue], [])
    assert (count(f, "sign_due", A, on=due), count(f, "sign_ok")) == (1, 0)
    assert count(f, "overdue", A) == 1  # the snapshot too
    signed = assignment(1, signed_at=T0 + timedelta(days=1))
    stopped = clock(ClockKind.SIGN, 1, ClockState.STOPPED, due, T0 + timedelta(days=1))
    f = facts(ticket(Status.ACCEPTED, signed), [stopped], [])
    assert (count(f, "sign_due"), count(f, "sign_ok")) == (1, 0)  # moved to the day it happened
    assert count(f, "sign_due", on=T0 + timedelta(days=1)) == 1
    assert count(f, "overdue") == 0


def test_return_within_the_sign_limit_is_a_response_not_a_sign() -> None:
    back = T0 + timedelta(hours=1)
    returned = assignment(1, state=AssignmentState.RETURNED, return_reason="非本单位职责")
    f = facts(ticket(Status.RETURNED, returned), [], [ev("return", back, 1)])
    assert count(f, "sign_due") == 0
    assert (count(f, "respond_due"), count(f, "respond_ok")) == (1, 1)
    assert (count(f, "returned", A, on=back), count(f, "assigned", A)) == (1, 1)


def test_return_then_redispatch_counts_each_department_for_its_own_task() -> None:
    back = T0 + timedelta(hours=1)
    again = back + timedelta(hours=1)
    first = assignment(1, state=AssignmentState.RETURNED)
    second = assignment(2, B, again, signed_at=again + timedelta(minutes=30))
    t = ticket(Status.ACCEPTED, first, second)
    f = facts(t, [], [ev("return", back, 1), ev("dispatch", again), ev("sign", again, 2)])
    assert (count(f, "assigned", A), count(f, "returned", A), count(f, "sign_due", A)) == (1, 1, 0)
    assert (count(f, "assigned", B), count(f, "returned", B), count(f, "sign_ok", B)) == (1, 0, 1)
    totals = {m: count(f, m, A) for m in ("returned", "assigned")}
    assert rate(totals, BY_KEY["return_rate"]) == 1.0
    assert count(f, "received", B) == 1  # the order now belongs to its current lead


# -- 办结 and 延期 ------------------------------------------------------------------------------
def test_approved_extension_moves_the_reply_deadline() -> None:
    original = T0 + timedelta(days=10)
    extended = original + timedelta(days=5)
    replied = original + timedelta(days=2)  # late for the original limit, on time for the new
    a = assignment(
        1,
        signed_at=T0 + timedelta(hours=1),
        replied_at=replied,
        state=AssignmentState.REPLIED,
        reply_due=extended,
        extension_state=ExtensionState.APPROVED,
        extension_until=extended,
    )
    rc = clock(ClockKind.REPLY, 1, ClockState.STOPPED, extended, replied)
    f = facts(ticket(Status.REPLIED, a), [rc], [])
    assert (count(f, "reply_due", on=replied), count(f, "reply_ok")) == (1, 1)
    # a denied extension leaves the original limit: the same reply is late
    denied = assignment(
        1,
        replied_at=replied,
        state=AssignmentState.REPLIED,
        extension_state=ExtensionState.DENIED,
        extension_until=extended,
    )
    rc = clock(ClockKind.REPLY, 1, ClockState.STOPPED, original, replied)
    f = facts(ticket(Status.REPLIED, denied), [rc], [])
    assert (count(f, "reply_due"), count(f, "reply_ok")) == (1, 0)


def test_extension_approved_after_going_overdue_is_no_longer_missed() -> None:
    extended = T0 + timedelta(days=15)
    a = assignment(1, signed_at=T0, reply_due=extended, extension_state=ExtensionState.APPROVED)
    running_again = clock(ClockKind.REPLY, 1, ClockState.RUNNING, extended, None)
    f = facts(ticket(Status.ACCEPTED, a), [running_again], [])
    assert count(f, "reply_due") == 0 and count(f, "overdue") == 0
    assert count(f, "due", A, on=extended) == 1  # due on the new deadline's day


def test_reply_across_the_spring_festival_is_on_time_in_working_days() -> None:
    policy = DeadlinePolicy(SlaSettings(), TZ)
    received = local(2026, 2, 13, 10, 0)  # Friday before the holiday
    due = policy.reply_due(Kind.CONSULT, Urgency.NORMAL, received)  # 2 working days
    assert due == local(2026, 2, 24, 17, 30)
    replied = local(2026, 2, 23, 16, 0)  # ten calendar days later, one working day
    a = assignment(1, created=received, reply_due=due, replied_at=replied, signed_at=received)
    rc = clock(ClockKind.REPLY, 1, ClockState.STOPPED, due, replied)
    t = ticket(Status.REPLIED, a, created_at=received, kind=Kind.CONSULT)
    f = facts(t, [rc], [])
    assert (count(f, "reply_due"), count(f, "reply_ok")) == (1, 1)


def test_withdrawn_task_past_its_deadline_is_missed_and_one_before_is_not() -> None:
    due = T0 + timedelta(days=10)
    cancelled = assignment(1, state=AssignmentState.CANCELLED, signed_at=T0)
    late = clock(ClockKind.REPLY, 1, ClockState.STOPPED, due, due + timedelta(hours=1))
    assert count(facts(ticket(Status.REOPENED, cancelled), [late], []), "reply_due") == 1
    early = clock(ClockKind.REPLY, 1, ClockState.STOPPED, due, due - timedelta(days=1))
    assert count(facts(ticket(Status.REOPENED, cancelled), [early], []), "reply_due") == 0


# -- 重办, 回访, 满意, 解决 ----------------------------------------------------------------------
def test_rejected_reply_counts_rework_and_the_final_reply_for_timeliness() -> None:
    first, final = T0 + timedelta(days=2), T0 + timedelta(days=12)
    a = assignment(1, signed_at=T0, replied_at=final, state=AssignmentState.REPLIED)
    events = [
        ev("reply", first, 1, role="lead"),
        ev("reject", first + timedelta(hours=2), 1),
        ev("reply", final, 1, role="lead"),
    ]
    f = facts(ticket(Status.REPLIED, a), [], events)
    assert count(f, "reworked", A, on=first + timedelta(hours=2)) == 1
    assert (count(f, "replied", A, on=final), count(f, "reply_ok")) == (1, 0)
    assert rates({m: count(f, m, A) for m in ("reworked", "replied")})["reopen_rate"] == 1.0


def test_unsatisfied_reopen_counts_for_the_department_that_answered() -> None:
    replied, approved = T0 + timedelta(days=2), T0 + timedelta(days=3)
    rated, again = T0 + timedelta(days=4), T0 + timedelta(days=5)
    first = assignment(1, signed_at=T0, replied_at=replied, state=AssignmentState.REPLIED)
    second = assignment(
        2, B, again, signed_at=again, replied_at=again + timedelta(days=1),
        state=AssignmentState.REPLIED,
    )  # fmt: skip
    events = [
        ev("reply", replied, 1, role="lead"),
        ev("approve", approved),
        ev("reopen", rated, satisfaction="unsatisfied", resolved=False),
        ev("dispatch", again),
        ev("reply", again + timedelta(days=1), 2, role="lead"),
        ev("approve", again + timedelta(days=2)),
        ev("revisit", again + timedelta(days=3), satisfaction="basic", resolved=True),
    ]
    f = facts(ticket(Status.REVISITED, first, second), [], events)
    assert (count(f, "rated", A), count(f, "satisfied", A), count(f, "reworked", A)) == (1, 0, 1)
    assert (count(f, "resolve_asked", A), count(f, "resolved", A)) == (1, 0)
    assert (count(f, "rated", B), count(f, "satisfied", B), count(f, "reworked", B)) == (1, 1, 0)
    assert (count(f, "resolve_asked", B), count(f, "resolved", B)) == (1, 1)
    assert count(f, "concluded", A, on=approved) == 1
    assert count(f, "concluded", B) == 1
    assert count(f, "open") == 0


def test_direct_answer_and_its_rating_belong_to_the_centre() -> None:
    at = T0 + timedelta(minutes=20)
    t = ticket(Status.REVISITED, answer="已答复", answered_at=at)
    f = facts(
        t, [], [ev("answer", at), ev("revisit", at + timedelta(days=1), satisfaction="satisfied")]
    )
    assert (count(f, "answered", ""), count(f, "concluded", ""), count(f, "rated", "")) == (1, 1, 1)
    assert count(f, "satisfied", "") == 1
    assert count(f, "received", "") == 1


def test_resolution_is_measured_only_where_the_citizen_was_asked() -> None:
    at = T0 + timedelta(minutes=20)
    t = ticket(Status.REVISITED, answer="已答复", answered_at=at)
    f = facts(t, [], [ev("answer", at), ev("revisit", at, satisfaction="satisfied")])
    assert rates({m: count(f, m) for m in M})["resolution_rate"] is None
    f = facts(t, [], [ev("answer", at), ev("revisit", at, satisfaction="basic", resolved=False)])
    assert rates({m: count(f, m) for m in M})["resolution_rate"] == 0.0


def test_merged_duplicate_counts_as_received_and_merged_not_open() -> None:
    at = T0 + timedelta(minutes=10)
    t = ticket(Status.MERGED, master_id=9)
    f = facts(t, [], [ev("merge", at, master="20261101000009")])
    assert (count(f, "received"), count(f, "merged", on=at), count(f, "open")) == (1, 1, 0)


def test_open_snapshot_and_due_count_only_live_lead_clocks() -> None:
    lead = assignment(1, signed_at=T0)
    assist = assignment(2, B, role=AssignmentRole.ASSIST, signed_at=T0)
    due = T0 + timedelta(days=10)
    clocks = [
        clock(ClockKind.REPLY, 1, ClockState.WARNED, due, None),
        clock(ClockKind.REPLY, 2, ClockState.RUNNING, due, None),
    ]
    f = facts(ticket(Status.ACCEPTED, lead, assist), clocks, [])
    assert (count(f, "open", A), count(f, "due", A, on=due), count(f, "due", B)) == (1, 1, 0)


# -- rates, score, ranking ------------------------------------------------------------------------
def test_rates_are_none_when_nothing_was_measured() -> None:
    assert all(v is None for v in rates({}).values())
    assert score(rates({}), DEFAULT_WEIGHTS) is None


def test_score_weighs_only_measured_indicators_and_inverts_return_and_reopen() -> None:
    values = {"on_time_reply_rate": 0.8, "return_rate": 0.1}
    weights = {"on_time_reply_rate": 30, "return_rate": 10, "satisfaction_rate": 60}
    assert score(values, weights) == round(100 * (30 * 0.8 + 10 * 0.9) / 40, 2)


def test_ranking_best_first_ties_by_volume_and_too_small_unranked() -> None:
    good = {"assigned": 10, "reply_due": 10, "reply_ok": 10}
    tied_small = {"assigned": 6, "reply_due": 6, "reply_ok": 6}
    bad = {"assigned": 10, "reply_due": 10, "reply_ok": 2}
    tiny = {"assigned": 1, "reply_due": 1, "reply_ok": 1}
    only_returns = {"assigned": 9, "returned": 0}  # 退单率 0 % and nothing else measured
    rows = {"b": tied_small, "a": good, "c": bad, "d": tiny, "e": only_returns}
    weights = {"on_time_reply_rate": 3, "return_rate": 1}
    out = rank(rows, weights, 5)
    assert [(r.key, r.rank) for r in out] == [
        ("a", 1), ("b", 2), ("c", 3), ("e", None), ("d", None),
    ]  # fmt: skip
    assert out[0].score == 100.0 and out[2].score == (3 * 0.2 + 1 * 1.0) / 4 * 100
    assert out[3].score == 100.0  # scored on the 25 % of the weight it has: not ranked


def test_every_indicator_has_a_definition_and_known_measures() -> None:
    for i in INDICATORS:
        assert i.definition and i.label
        assert i.numerator in M and i.denominator in M


# -- periods ------------------------------------------------------------------------------------
def test_any_period_is_whole_months_weeks_and_days_covering_each_day_once() -> None:
    rng = random.Random(13)
    for _ in range(300):
        a = date(2025, 1, 1) + timedelta(days=rng.randrange(700))
        b = a + timedelta(days=rng.randrange(1, 500))
        quarters = rng.random() < 0.5
        pieces = decompose(a, b, quarters=quarters)
        covered: list[int] = list(pieces[Grain.DAY])
        covered += [w + i for w in pieces[Grain.WEEK] for i in range(7)]
        for m in pieces[Grain.MONTH]:
            first = date.fromordinal(m)
            covered += range(m, next_month(first).toordinal())
        for q in pieces.get(Grain.QUARTER, []):
            first = date.fromordinal(q)
            assert first == quarter_start(first)
            covered += range(q, next_month(next_month(next_month(first))).toordinal())
        assert sorted(covered) == list(range(a.toordinal(), b.toordinal()))
        assert all(
            date.fromordinal(w) == week_start(date.fromordinal(w)) for w in pieces[Grain.WEEK]
        )
        assert all(
            date.fromordinal(m) == month_start(date.fromordinal(m)) for m in pieces[Grain.MONTH]
        )
        assert len(pieces[Grain.DAY]) <= 24
