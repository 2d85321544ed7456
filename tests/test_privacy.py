"""Personal data (issue 15): callers' numbers masked for roles that do not need them and for every
confidential caller, the audited 显示号码, and the access log of reads of personal data (who,
role, when, what, which order, why, from where) that supervisors read on /staff/audit and
GET /api/v1/audit/access."""

from __future__ import annotations

import csv
import functools
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher

from agent_ui import accounts
from agent_ui.context import SERVICES
from agent_ui.exports import XLSX_TYPE
from hotline.config import Settings
from tests.conftest import Api, make_settings
from tests.test_attachments import PDF, upload
from tests.waiting import wait_until
from tickets.access import mask_for, mask_name
from tickets.db import Database
from tickets.model import Caller, Channel, NewTicket, Role
from tickets.tables import access_log

PHONE, NAME = "13812345678", "王保密"
OTHER = "13987654321"


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap = functools.partial(PasswordHasher, time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(accounts, "PasswordHasher", cheap, raising=False)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    return make_settings(db_url, HOTLINE__ATTACHMENTS__DIR=str(tmp_path / "files"))


# -- the one masking rule ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("role", "shown"),
    [
        (Role.AGENT, PHONE),
        (Role.DISPATCHER, PHONE),
        (Role.SUPERVISOR, PHONE),
        (Role.DEPARTMENT, PHONE),
        (Role.MANAGER, "138****5678"),
        (Role.ADMIN, "138****5678"),
    ],
)
def test_mask_for_shows_numbers_only_to_roles_that_need_them(role: Role, shown: str) -> None:
    assert mask_for(role, PHONE) == shown
    assert mask_for(role, None) is None


def test_mask_name_keeps_the_family_name() -> None:
    assert [mask_name(n) for n in ("王保密", "李四", "欧阳娜娜娜", "王", None)] == [
        "王**",
        "李*",
        "欧***",
        "*",
        None,
    ]


# -- a world: a confidential order with a document and a voicemail, an ordinary order -----------
async def make_world(app_client: Any, api: Any, tmp_path: Path) -> dict[str, Any]:
    citizen: Api = await api()
    created = await citizen.post(
        "/requests",
        {"content": "举报单位违规用工", "name": NAME, "phone": PHONE, "confidential": True},
        201,
    )
    dispatcher: Api = await api("dispatcher")
    secret = await dispatcher.get(f"/tickets/by-number/{created['number']}")
    secret = await dispatcher.act(secret, "dispatch", lead="150100-housing")
    agent: Api = await api("agent")
    status, _ = await upload(agent, secret["id"], ("材料.pdf", PDF))
    assert status == 201
    wav = tmp_path / "voicemail.wav"
    wav.write_bytes(b"RIFF....WAVEfmt ")  # the bytes are not the point here
    voicemail = await app_client.app[SERVICES].tickets.submit(
        NewTicket(
            channel=Channel.PHONE,
            content="电话留言",
            caller=Caller(phone=OTHER),
            attachments=({"type": "recording", "name": "留言录音.wav", "path": str(wav)},),
        )
    )
    ordinary = await agent.post("/tickets", {"content": "路灯不亮", "phone": OTHER}, 201)
    return {"secret": secret, "voicemail": voicemail.id, "ordinary": ordinary}


async def entries(client: Api, **params: Any) -> list[dict[str, Any]]:
    return list((await client.get("/audit/access", **params))["items"])


async def test_access_log_records_each_audited_read_and_nothing_else(
    app_client: Any, api: Any, tmp_path: Path
) -> None:
    w = await make_world(app_client, api, tmp_path)
    secret, ordinary = w["secret"], w["ordinary"]
    supervisor: Api = await api("supervisor")
    # the dispatcher opened the order by its number; dispatching and uploading are changes,
    # in the order's own audit trail (ticket_events), not reads
    (first,) = await entries(supervisor)
    assert (first["kind"], first["actor"]["role"]) == ("confidential_opened", "dispatcher")

    agent: Api = await api("agent")
    # lists and ordinary orders: not logged row by row
    await agent.get("/tickets")
    await agent.get(f"/tickets/{ordinary['id']}")
    assert len(await entries(supervisor)) == 1
    # a confidential order opened: logged, its caller masked
    opened = await agent.get(f"/tickets/{secret['id']}")
    assert opened["caller"]["phone"] == "138****5678" and opened["caller"]["masked"]
    # 显示号码 needs a reason; refused without one, and nothing logged then
    await agent.post(f"/tickets/{secret['id']}/caller", {"reason": " "}, 422)
    shown = await agent.post(f"/tickets/{secret['id']}/caller", {"reason": "回拨核实诉求"})
    assert shown["caller"] == {"name": NAME, "phone": PHONE, "confidential": True, "masked": False}
    # files: every fetch
    async with agent.session.get(f"{agent.base}/api/v1/tickets/{secret['id']}/attachments/0") as r:
        assert r.status == 200 and await r.read() == PDF
    async with agent.session.get(
        f"{agent.base}/api/v1/tickets/{w['voicemail']}/attachments/0"
    ) as r:
        assert r.status == 200
    # the department handling the confidential order: its opening is logged; no 显示号码
    housing: Api = await api("housing")
    assert (await housing.get(f"/tickets/{secret['id']}"))["caller"]["phone"] is None
    refused = await housing.post(f"/tickets/{secret['id']}/caller", {"reason": "联系市民"}, 403)
    assert refused["error"]["code"] == "role_forbidden"

    log = await entries(supervisor)
    got = [(e["kind"], e["actor"]["role"], e["ticket_id"], e["subject"], e["reason"]) for e in log]
    assert got == [  # newest first
        ("confidential_opened", "department", secret["id"], None, None),
        ("recording_played", "agent", w["voicemail"], "attachment:0", None),
        ("attachment_fetched", "agent", secret["id"], "attachment:0", None),
        ("phone_revealed", "agent", secret["id"], None, "回拨核实诉求"),
        ("confidential_opened", "agent", secret["id"], None, None),
        ("confidential_opened", "dispatcher", secret["id"], None, None),
    ]
    first = log[-2]
    assert first["actor"]["name"] == "测试-agent" and first["client"] == "127.0.0.1"
    assert first["ticket_number"] == secret["number"] and first["kind_label"] == "打开保密工单"
    assert log[0]["actor"]["department"] == "150100-housing"

    # filters
    assert [e["reason"] for e in await entries(supervisor, kind="phone_revealed")] == [
        "回拨核实诉求"
    ]
    assert len(await entries(supervisor, number=secret["number"])) == 5
    assert len(await entries(supervisor, who="housing")) == 1
    assert (await supervisor.get("/audit/access", **{"from": "2000-01-01"}))["total"] == 6
    assert (await supervisor.get("/audit/access", until="2000-01-01"))["total"] == 0
    bad = await supervisor.get("/audit/access", 422, kind="everything")
    assert bad["error"]["details"]["field"] == "kind"

    # the log is for supervisors, managers and admins, not for those it audits
    for who in ("agent", "dispatcher", "housing"):
        client: Api = await api(who)
        assert (await client.get("/audit/access", 403))["error"]["code"] == "role_forbidden"
    manager: Api = await api("manager")
    assert (await manager.get("/audit/access"))["total"] == 6

    # the page: rows and filters
    async with supervisor.session.get(f"{supervisor.base}/staff/audit?kind=phone_revealed") as r:
        page = await r.text()
    assert r.status == 200 and "回拨核实诉求" in page and "共 1 条" in page
    assert secret["number"] in page and "查看来电人号码" in page


async def test_reveal_on_the_order_page_is_logged_and_shown_once(
    app_client: Any, api: Any, tmp_path: Path
) -> None:
    w = await make_world(app_client, api, tmp_path)
    dispatcher: Api = await api("dispatcher")
    base, path = dispatcher.base, f"/staff/tickets/{w['secret']['id']}"
    async with dispatcher.session.get(base + path) as r:
        page = await r.text()
    assert PHONE not in page and "138****5678" in page and 'id="reveal-form"' in page
    data = {"csrf_token": dispatcher.csrf or "", "reason": "市民来电要求回电"}
    async with dispatcher.session.post(base + path + "/caller", data=data) as r:
        shown = await r.text()
    assert r.status == 200 and PHONE in shown and NAME in shown
    async with dispatcher.session.get(base + path) as r:  # the next view is masked again
        assert PHONE not in await r.text()
    async with dispatcher.session.post(base + path + "/caller", data={"reason": "x"}) as r:
        assert r.status == 403  # no CSRF token: refused, nothing shown
        assert PHONE not in await r.text()
    supervisor: Api = await api("supervisor")
    kinds = [e["kind"] for e in await entries(supervisor)]
    # newest first: the second view, 显示号码, the first view, the dispatcher's by number
    assert kinds == ["confidential_opened", "phone_revealed", *["confidential_opened"] * 2]


async def test_numbers_masked_for_managers_and_admins_in_orders_and_sms(
    app_client: Any, api: Any
) -> None:
    citizen: Api = await api()
    created = await citizen.post("/requests", {"content": "路灯不亮", "phone": OTHER}, 201)
    for who, phone in [
        ("agent", OTHER),
        ("dispatcher", OTHER),
        ("supervisor", OTHER),
        ("manager", "139****4321"),
        ("admin", "139****4321"),
    ]:
        client: Api = await api(who)
        t = await client.get(f"/tickets/by-number/{created['number']}")
        assert (t["caller"]["phone"], t["caller"]["masked"]) == (phone, phone != OTHER), who
        listed = (await client.get("/tickets"))["items"][0]
        assert listed["caller"]["phone"] == phone, who

        async def outbox(c: Api = client) -> list[Any]:
            return list((await c.get("/sms/outbox"))["items"])

        (ack,) = await wait_until(outbox)  # the acknowledgement to the citizen
        assert ack["recipient"] == phone, who
    # a manager may still reveal one, with a reason (logged)
    manager: Api = await api("manager")
    t = await manager.get(f"/tickets/by-number/{created['number']}")
    shown = await manager.post(f"/tickets/{t['id']}/caller", {"reason": "核查投诉处理"})
    assert shown["caller"]["phone"] == OTHER


async def test_access_log_is_append_only_and_keeps_a_year(database: Database) -> None:
    now = datetime.now(UTC)

    def insert(at: datetime) -> int:
        values = {"at": at, "actor_name": "甲", "actor_role": "agent", "kind": "phone_revealed"}
        return int(
            database.run_write(
                lambda c: c.execute(
                    access_log.insert().values(values).returning(access_log.c.id)
                ).scalar_one()
            )
        )

    recent, old = insert(now - timedelta(days=300)), insert(now - timedelta(days=400))
    row = access_log.c.id
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        database.run_write(
            lambda c: c.execute(access_log.update().where(row == old).values(reason="改"))
        )
    with pytest.raises(sa.exc.DBAPIError, match="younger than a year"):
        database.run_write(lambda c: c.execute(access_log.delete().where(row == recent)))
    assert database.run_write(lambda c: c.execute(access_log.delete().where(row == old)).rowcount)


# -- exports ------------------------------------------------------------------------------------
async def export(client: Api, **params: str) -> list[list[str]]:
    url = f"{client.base}/api/v1/exports/tickets"
    async with client.session.get(url, params=params) as r:
        assert r.status == 200, await r.text()
        assert r.headers["Content-Type"].startswith("text/csv")
        assert "attachment" in r.headers["Content-Disposition"]
        body = await r.read()
    assert body.startswith("\ufeff".encode())  # Excel reads the Chinese right
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


async def test_exports_mask_numbers_by_role_and_are_logged(
    app_client: Any, api: Any, tmp_path: Path
) -> None:
    w = await make_world(app_client, api, tmp_path)
    secret, ordinary = w["secret"], w["ordinary"]

    def callers(rows: list[list[str]]) -> dict[str, tuple[str, str]]:
        header = rows[0]
        number, name, phone = (header.index(k) for k in ("工单编号", "来电人", "联系电话"))
        return {r[number]: (r[name], r[phone]) for r in rows[1:]}

    for who, ordinary_phone in [
        ("agent", OTHER),
        ("supervisor", OTHER),
        ("manager", "139****4321"),
    ]:
        client: Api = await api(who)
        got = callers(await export(client))
        assert got[ordinary["number"]] == ("—", ordinary_phone), who
        assert got[secret["number"]] == ("王**", "138****5678"), who  # confidential: masked
    # a department: its own orders only, a confidential caller never
    housing: Api = await api("housing")
    assert callers(await export(housing)) == {secret["number"]: ("—", "—")}
    # the list's filters apply
    agent: Api = await api("agent")
    assert set(callers(await export(agent, q="路灯"))) == {ordinary["number"]}
    bad = await agent.get("/exports/tickets", 422, kind="everything")
    assert bad["error"]["details"]["field"] == "kind"
    bad = await agent.get("/exports/tickets", 422, format="pdf")
    assert bad["error"]["details"]["field"] == "format"
    # XLSX: the same rows, the manager's numbers masked in the sheet too
    manager: Api = await api("manager")
    async with manager.session.get(
        f"{manager.base}/api/v1/exports/tickets", params={"format": "xlsx"}
    ) as r:
        assert r.status == 200 and r.headers["Content-Type"] == XLSX_TYPE
        sheet = await r.read()
    with zipfile.ZipFile(io.BytesIO(sheet)) as z:  # every part: the cells and any string table
        strings = "".join(z.read(n).decode() for n in z.namelist())
    assert "139****4321" in strings and OTHER not in strings and PHONE not in strings

    supervisor: Api = await api("supervisor")
    log = await entries(supervisor, kind="orders_exported")
    got_log = [(e["actor"]["role"], e["subject"]) for e in log]
    assert got_log == [  # newest first; the refused one is not there
        ("manager", "export:3/3:号码打码"),
        ("agent", "export:1/1:号码完整"),
        ("department", "export:1/1:号码完整"),
        ("manager", "export:3/3:号码打码"),
        ("supervisor", "export:3/3:号码完整"),
        ("agent", "export:3/3:号码完整"),
    ]
    assert log[0]["kind_label"] == "导出工单列表"
