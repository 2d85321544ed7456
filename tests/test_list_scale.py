"""Work lists built to stay fast at a million orders, checked for the same answers: the order's
earliest running deadline kept on the order (and backfilled by migration 0700), sorting by
deadline across the timed and untimed orders, counts that stop at a limit, number prefixes as
ranges, and the staff page's "1000+" tabs and totals — on both stores."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from agent_ui import pages_list
from hotline.app import build_services
from hotline.bus import InProcessBus
from hotline.config import Settings
from hotline.db import open_database, upgrade
from tests.conftest import Api, make_settings
from tickets import store
from tickets.db import Database
from tickets.model import (
    Actor,
    Caller,
    Channel,
    ClockState,
    NewTicket,
    Role,
    Satisfaction,
    TicketFilter,
)
from tickets.service import TicketService
from tickets.tables import clocks, tickets

DISPATCHER = Actor(Role.DISPATCHER, 1, "派单员")
SUPERVISOR = Actor(Role.SUPERVISOR, 2, "督办员")
HOUSING = Actor(Role.DEPARTMENT, 3, "住建局", "150100-housing")


def next_due_mismatches(db: Database) -> list[tuple[int, Any, Any]]:
    """Orders whose next_due_at is not the earliest deadline of their running clocks."""
    earliest = (
        sa.select(sa.func.min(clocks.c.due_at))
        .where(clocks.c.ticket_id == tickets.c.id, clocks.c.state != ClockState.STOPPED.value)
        .scalar_subquery()
    )
    rows = db.run_read(
        lambda c: c.execute(sa.select(tickets.c.id, tickets.c.next_due_at, earliest)).all()
    )
    return [(r[0], r[1], r[2]) for r in rows if r[1] != r[2]]


@pytest.fixture
def service(settings: Settings, database: Database) -> TicketService:
    return build_services(settings, database, InProcessBus()).tickets


async def _order(svc: TicketService, text: str, dispatch: bool) -> int:
    t = await svc.submit(NewTicket(Channel.WEB, text, Caller(phone="13800000001")))
    if dispatch:
        t = await svc.dispatch(DISPATCHER, t.id, t.version, "150100-housing")
    return t.id


async def test_next_due_follows_the_clocks_through_the_lifecycle(
    service: TicketService, database: Database
) -> None:
    def next_due(tid: int) -> datetime | None:
        return database.run_read(
            lambda c: c.execute(
                sa.select(tickets.c.next_due_at).where(tickets.c.id == tid)
            ).scalar()
        )

    tid = await _order(service, "路灯不亮", dispatch=False)
    assert next_due(tid) is None and next_due_mismatches(database) == []
    t = await service.dispatch(DISPATCHER, tid, 1, "150100-housing")
    sign_due = t.assignments[0].sign_due
    assert sign_due is not None and next_due(tid) == sign_due  # 签收 comes before 办结
    t = await service.sign(HOUSING, tid, t.version)
    assert next_due(tid) == t.assignments[0].reply_due
    reply_due = t.assignments[0].reply_due
    assert reply_due is not None
    t = await service.request_extension(
        HOUSING, tid, t.version, reply_due + timedelta(days=5), "需要协调多个单位"
    )
    t = await service.decide_extension(SUPERVISOR, tid, t.version, approve=True)
    assert next_due(tid) is not None and next_due(tid) > reply_due  # 延期 moved it
    # (step, whether a time limit runs after it)
    steps = (
        (lambda t: service.reply(HOUSING, tid, t.version, "已修复路灯"), False),  # 待审核
        (lambda t: service.review(SUPERVISOR, tid, t.version, approve=True), True),  # 回访
        (
            lambda t: service.revisit(SUPERVISOR, tid, t.version, Satisfaction.UNSATISFIED),
            True,  # 重启: the centre's 办结 clock
        ),
        (lambda t: service.dispatch(DISPATCHER, tid, t.version, "150100-housing"), True),
        (lambda t: service.return_(HOUSING, tid, t.version, "不属于本单位职责"), True),
        (lambda t: service.dispatch(DISPATCHER, tid, t.version, "150100-housing"), True),
        (lambda t: service.sign(HOUSING, tid, t.version), True),
        (lambda t: service.reply(HOUSING, tid, t.version, "已再次修复"), False),
        (lambda t: service.review(SUPERVISOR, tid, t.version, approve=True), True),
    )
    for i, (step, timed) in enumerate(steps):
        t = await step(t)
        assert (next_due(tid) is not None) == timed, (i, t.status)
        assert next_due_mismatches(database) == [], i
    t = await service.close(SUPERVISOR, tid, t.version, "办结")
    assert next_due(tid) is None  # closed: no running clock, no deadline
    assert next_due_mismatches(database) == []


async def test_sort_by_deadline_pages_from_timed_to_untimed_orders(
    service: TicketService, database: Database
) -> None:
    ids = [await _order(service, f"诉求{i}", dispatch=i % 3 != 0) for i in range(11)]
    due = dict(
        database.run_read(
            lambda c: c.execute(
                sa.select(tickets.c.id, tickets.c.next_due_at).where(tickets.c.id.in_(ids))
            ).all()
        )
    )
    timed = sorted((i for i in ids if due[i] is not None), key=lambda i: (due[i], -i))
    untimed = sorted((i for i in ids if due[i] is None), reverse=True)
    assert timed and untimed
    expected = timed + untimed
    for size in (1, 2, 3, 4, 50):
        seen: list[int] = []
        for offset in range(0, len(ids) + size, size):
            f = TicketFilter(sort="due", limit=size, offset=offset)
            page, total = await service.list_tickets(SUPERVISOR, f)
            assert total == len(ids)
            seen += [t.id for t in page]
        assert seen == expected, size


async def test_counts_stop_at_their_limit(service: TicketService) -> None:
    for i in range(5):
        await _order(service, f"噪音扰民{i}", dispatch=False)
    everything = TicketFilter(limit=2)
    assert await service.count_tickets(SUPERVISOR, everything) == 5
    assert await service.count_tickets(SUPERVISOR, everything, limit=3) == 3
    assert await service.count_tickets(SUPERVISOR, everything, limit=9) == 5
    page, total = await service.list_tickets(SUPERVISOR, everything, count_limit=3)
    assert len(page) == 2 and total == 3  # "at least 3"
    # the last page counts itself, exactly, without a count
    last = dataclasses.replace(everything, offset=4)
    page, total = await service.list_tickets(SUPERVISOR, last, count_limit=3)
    assert len(page) == 1 and total == 5
    # past the end: counted (up to the offset at least)
    beyond = dataclasses.replace(everything, offset=8)
    page, total = await service.list_tickets(SUPERVISOR, beyond, count_limit=3)
    assert page == [] and total == 5


async def test_number_prefix_is_a_range_that_stops_at_the_next_prefix(
    service: TicketService, database: Database
) -> None:
    tid = await _order(service, "供暖不热", dispatch=False)
    now = datetime.now(UTC)
    for n in ("20251209000001", "20251210000001", "20251219000001"):
        database.run_write(
            lambda c, n=n: store.insert_ticket(
                c, NewTicket(Channel.SMS, "测试", Caller(phone="13800000002")), n, now
            )
        )

    async def numbers(prefix: str) -> set[str]:
        found, _ = await service.list_tickets(SUPERVISOR, TicketFilter(number_prefix=prefix))
        return {t.number for t in found}

    assert await numbers("2025120") == {"20251209000001"}
    assert await numbers("2025121") == {"20251210000001", "20251219000001"}
    assert await numbers("20251219") == {"20251219000001"}
    assert await numbers("20251219000001") == {"20251219000001"}
    assert await numbers("2025122") == set()
    mine = (await service.get(SUPERVISOR, tid)).number
    assert await numbers(mine) == {mine}


def test_migration_0700_backfills_the_earliest_running_deadline(db_url: str) -> None:
    db = open_database(make_settings(db_url), migrate=False)
    try:
        upgrade(db, "0600")
        now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)

        def seed(c: Any) -> list[int]:
            made = []
            for i, states in enumerate(
                (("running", "overdue"), ("stopped",), (), ("warned", "stopped"))
            ):
                tid = store.insert_ticket(
                    c,
                    NewTicket(Channel.WEB, f"旧工单{i}", Caller(phone="13800000009")),
                    f"2026120100000{i}",
                    now,
                )
                for k, state in enumerate(states):
                    due = now + timedelta(days=3 - 2 * k)
                    c.execute(
                        sa.text(
                            "INSERT INTO ticket_clocks (ticket_id, clock, state, start_at,"
                            " warn_at, due_at) VALUES (:t, :k, :s, :a, :a, :d)"
                        ),
                        {"t": tid, "k": f"c{k}", "s": state, "a": now, "d": due},
                    )
                made.append(tid)
            return made

        made = db.run_write(seed)
        upgrade(db)
        got = dict(
            db.run_read(lambda c: c.execute(sa.select(tickets.c.id, tickets.c.next_due_at)).all())
        )
        assert got == {
            made[0]: now + timedelta(days=1),  # the overdue clock's deadline is the earlier
            made[1]: None,
            made[2]: None,
            made[3]: now + timedelta(days=3),  # the stopped one does not count
        }
        assert next_due_mismatches(db) == []
    finally:
        db.close()


async def test_page_tabs_and_total_say_plus_beyond_their_limits(
    api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages_list, "TAB_COUNT_LIMIT", 2)
    monkeypatch.setattr(pages_list, "LIST_COUNT_LIMIT", 3)
    monkeypatch.setattr(pages_list, "PAGE_SIZE", 2)
    agent: Api = await api("agent")
    for i in range(5):
        await agent.post("/tickets", {"content": f"小区噪音{i}", "phone": "13811110000"}, 201)
    supervisor: Api = await api("supervisor")

    async def page(query: str) -> str:
        async with supervisor.session.get(f"{supervisor.base}/staff/tickets?{query}") as r:
            assert r.status == 200
            return await r.text()

    first = await page("view=all")
    assert "共 3+ 条，第 1 页" in first and 'rel="next"' in first
    second = await page("view=all&page=2")
    assert "共 3+ 条，第 2 页" in second and 'rel="next"' in second
    last = await page("view=all&page=3")
    summary = last[last.index("共 ") :][:20]
    assert summary.startswith("共 5 条，第 3 / 3 页"), summary
    assert 'rel="next"' not in last
    # three orders under 督办: the supervisor's tab stops counting at 2
    dispatcher: Api = await api("dispatcher")
    for item in (await supervisor.get("/tickets", limit=3))["items"]:
        t = await dispatcher.act(item, "dispatch", lead="150100-housing")
        await supervisor.act(t, "supervise", note="领导关注")
    tabs = await page("view=all")
    assert 'id="queue-supervised">督办 <span class="count">2+</span>' in tabs
    monkeypatch.setattr(pages_list, "TAB_COUNT_LIMIT", 3)
    tabs = await page("view=all")
    assert 'id="queue-supervised">督办 <span class="count">3</span>' in tabs


def test_a_kind_list_counts_and_pages_from_its_index(tmp_path: Any) -> None:
    """Migration 0710's index serves a list of one kind on SQLite: the count reads only the
    index and the newest-first page walks it, with the planner statistics a store that ran the
    earlier 0700 (statistics without this index) gets from 0710."""
    from tickets.model import Kind

    db = open_database(make_settings(f"sqlite:///{tmp_path / 'h.db'}"), migrate=False)
    try:
        upgrade(db, "0700")
        db.run_write(
            lambda c: c.exec_driver_sql("DELETE FROM sqlite_stat1 WHERE idx = 'ix_tickets_kind'")
        )
        upgrade(db)
        stat = db.run_read(
            lambda c: c.exec_driver_sql(
                "SELECT stat FROM sqlite_stat1 WHERE idx = 'ix_tickets_kind'"
            ).scalar_one()
        )
        assert stat == "1000000 166667 1"

        def plans(c: Any) -> list[str]:
            seen: list[str] = []
            c.connection.driver_connection.set_trace_callback(seen.append)
            f = TicketFilter(kind=Kind.COMPLAINT, offset=2450)
            store.count_tickets(c, f)
            store.list_tickets(c, f)
            c.connection.driver_connection.set_trace_callback(None)
            out = []
            for sql in seen:
                if sql.lstrip().upper().startswith("SELECT") and "FROM tickets" in sql:
                    rows = c.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
                    out.append(" / ".join(str(r[3]) for r in rows))
            return out

        count_plan, page_plan = db.run_read(plans)[:2]
        assert count_plan == "SEARCH tickets USING COVERING INDEX ix_tickets_kind (kind=?)"
        assert page_plan.startswith("SEARCH tickets USING INDEX ix_tickets_kind (kind=?)")
        assert "TEMP B-TREE" not in page_plan  # newest first is the index's own order
    finally:
        db.close()


def test_migration_0720_indexes_category_names_and_triggers_keep_them(db_url: str) -> None:
    """The category filter reads a table of the path's names: 0720 fills it from the orders
    already there, and triggers keep it through inserts, corrections and deletes, whoever
    writes the order (here plain SQL); on SQLite the count reads that table's primary key."""
    db = open_database(make_settings(db_url), migrate=False)
    try:
        upgrade(db, "0710")
        now = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
        paths = (("城乡建设", "住房保障"), ("城乡建设", "城乡建设"), (), ('噪音"%_',))

        def insert(c: Any, i: int, path: tuple[str, ...]) -> int:
            new = NewTicket(Channel.WEB, f"工单{i}", Caller(phone="13800000009"), category=path)
            return store.insert_ticket(c, new, f"2026120100001{i}", now)

        made = db.run_write(lambda c: [insert(c, i, p) for i, p in enumerate(paths)])
        upgrade(db)

        def names() -> set[tuple[str, int]]:
            return set(
                db.run_read(
                    lambda c: c.execute(
                        sa.text("SELECT name, ticket_id FROM ticket_categories")
                    ).all()
                )
            )

        def listed(name: str) -> set[int]:
            f = TicketFilter(category=name)
            found = db.run_read(lambda c: [t.id for t in store.list_tickets(c, f)])
            # counted from the names alone, and with another condition through the orders
            assert db.run_read(lambda c: store.count_tickets(c, f)) == len(found)
            web = dataclasses.replace(f, channel=Channel.WEB)
            assert db.run_read(lambda c: store.count_tickets(c, web)) == len(found)
            if found:
                assert db.run_read(lambda c: store.count_tickets(c, f, limit=1)) == 1
            return set(found)

        a, b, _, d = made
        assert names() == {("城乡建设", a), ("住房保障", a), ("城乡建设", b), ('噪音"%_', d)}
        assert listed("城乡建设") == {a, b} and listed('噪音"%_') == {d} and listed("噪音") == set()
        e = db.run_write(lambda c: insert(c, 9, ("教育文体",)))
        assert listed("教育文体") == {e}
        db.run_write(
            lambda c: c.execute(
                sa.text("UPDATE tickets SET category = :p WHERE id = :i"),
                {"p": '["环境保护", "城乡建设"]', "i": d},
            )
        )
        assert listed('噪音"%_') == set() and listed("环境保护") == {d}
        assert listed("城乡建设") == {a, b, d}
        db.run_write(lambda c: c.execute(sa.text("DELETE FROM tickets WHERE id = :i"), {"i": a}))
        assert listed("城乡建设") == {b, d} and listed("住房保障") == set()
        assert {t for _, t in names()} == {b, d, e}
        if db.engine.dialect.name == "sqlite":
            stat = db.run_read(
                lambda c: c.exec_driver_sql(
                    "SELECT stat FROM sqlite_stat1 WHERE tbl = 'ticket_categories'"
                ).scalar_one()
            )
            assert stat == "500264 33351 1"

            def count_plan(c: Any) -> str:
                seen: list[str] = []
                c.connection.driver_connection.set_trace_callback(seen.append)
                store.count_tickets(c, TicketFilter(category="城乡建设"))
                c.connection.driver_connection.set_trace_callback(None)
                sql = next(s for s in seen if s.lstrip().upper().startswith("SELECT"))
                rows = c.exec_driver_sql("EXPLAIN QUERY PLAN " + sql).all()
                return " / ".join(str(r[3]) for r in rows)

            assert "SEARCH ticket_categories USING PRIMARY KEY (name=?)" in db.run_read(count_plan)
    finally:
        db.close()
