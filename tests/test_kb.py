"""The knowledge base: departments write their own, the centre reviews and publishes; versions,
validity, Mongolian versions with the original's item code; the public guides; import, export,
eval and the analyser's rules."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hotline.cli import main
from kb.analysis import Analyzer, normalize
from kb.model import ArticleKind, Editor, KbRole
from kb.service import KbConflict, KbForbidden, KnowledgeBase
from routing.hotspots import HotspotEngine, Item
from tests.conftest import make_settings

GUIDE = {
    "kind": "guide",
    "fields": {
        "item_name": "住房公积金提取",
        "item_code": "11150100MB1234567X4000117001",
        "authority": "呼和浩特市住房公积金管理中心",
        "conditions": "购买、建造、翻建、大修自住住房的",
        "materials": "身份证、银行卡、购房合同",
        "process": "申请 → 受理 → 审核 → 办结",
        "time_limit": "3个工作日",
        "fees": "不收费",
        "phone": "0471-12329",
        "legal_basis": "《住房公积金管理条例》第二十四条",
    },
    "department": "150100-housing",
}
MN_GUIDE = {
    "kind": "guide",
    "title": "ᠣᠷᠣᠨ ᠰᠠᠭᠤᠴᠠ ᠶᠢᠨ ᠨᠢᠭᠡᠳᠦᠯ ᠰᠠᠩ",
    "language": "mn-Mong",
    "fields": {
        "item_name": "ᠣᠷᠣᠨ ᠰᠠᠭᠤᠴᠠ ᠶᠢᠨ ᠨᠢᠭᠡᠳᠦᠯ ᠰᠠᠩ ᠠᠪᠬᠤ",
        "authority": "ᠬᠥᠬᠡᠬᠣᠲᠠ",
        "materials": "ᠦᠨᠡᠮᠯᠡᠬᠦ ᠪᠢᠴᠢᠭ",
    },
    "department": "150100-housing",
}


async def publish(centre: Any, article: dict[str, Any]) -> dict[str, Any]:
    a = await centre.post(f"/kb/articles/{article['id']}/submit", {"version": article["version"]})
    return await centre.post(f"/kb/articles/{a['id']}/publish", {"version": a["version"]})  # type: ignore[no-any-return]


async def test_kb_department_writes_centre_reviews_public_reads(api: Any) -> None:
    housing, urban = await api("housing"), await api("urban")
    dispatcher, agent = await api("dispatcher"), await api("agent")
    a = await housing.post("/kb/articles", GUIDE, status=201)
    assert (a["status"], a["version"], a["code"]) == ("draft", 1, GUIDE["fields"]["item_code"])
    assert a["title"] == "住房公积金提取"
    await urban.post(f"/kb/articles/{a['id']}/submit", {"version": 1}, status=403)
    await agent.post("/kb/articles", GUIDE, status=403)  # agents propose FAQ only
    a = await housing.post(f"/kb/articles/{a['id']}/submit", {"version": 1})
    await housing.post(f"/kb/articles/{a['id']}/publish", {"version": 1}, status=403)
    sent_back = await dispatcher.post(
        f"/kb/articles/{a['id']}/reject", {"version": 1, "note": "补充办理地点"}
    )
    assert (sent_back["status"], sent_back["note"]) == ("draft", "补充办理地点")
    a = await publish(dispatcher, sent_back)
    assert (a["status"], a["live_version"]) == ("published", 1)
    citizen = await api()
    hits = await citizen.get("/guides", q="公积金提取 材料")
    assert [g["id"] for g in hits["items"]] == [a["id"]]
    # a new version is a draft; the published one stays live until the new one is published
    edited = await housing.request(
        "PUT",
        f"/kb/articles/{a['id']}",
        {**GUIDE, "title": "住房公积金提取（新）", "version": 1},
        200,
    )
    assert (edited["status"], edited["version"], edited["live_version"]) == ("draft", 2, 1)
    public = await citizen.get(f"/guides/{a['id']}")
    assert public["title"] == "住房公积金提取"
    await housing.request("PUT", f"/kb/articles/{a['id']}", {**GUIDE, "version": 1}, 409)
    history = await dispatcher.get(f"/kb/articles/{a['id']}/history")
    assert [v["version"] for v in history["versions"]] == [1, 2]
    assert [e["action"] for e in history["events"]] == [
        "create",
        "submit",
        "reject",
        "submit",
        "publish",
        "edit",
    ]
    await dispatcher.post(f"/kb/articles/{a['id']}/withdraw", {"version": 2, "note": "政策调整"})
    await citizen.get(f"/guides/{a['id']}", status=404)


async def test_kb_mongolian_version_shares_the_item_code(api: Any) -> None:
    housing, dispatcher = await api("housing"), await api("dispatcher")
    zh = await publish(dispatcher, await housing.post("/kb/articles", GUIDE, status=201))
    await housing.post("/kb/articles", MN_GUIDE, status=422)  # a Mongolian guide needs its original
    mn = await housing.post("/kb/articles", {**MN_GUIDE, "original_id": zh["id"]}, status=201)
    assert mn["code"] == zh["code"] and mn["fields"]["item_code"] == zh["code"]
    await housing.post("/kb/articles", {**MN_GUIDE, "original_id": zh["id"]}, status=409)
    await housing.post("/kb/articles", GUIDE, status=409)  # one code, one item
    mn = await publish(dispatcher, mn)
    citizen = await api()
    found = await citizen.get("/guides", q="ᠰᠠᠩ", lang="mn-Mong")
    assert [g["id"] for g in found["items"]] == [mn["id"]]
    listed = await citizen.get("/guides", lang="mn-Mong")
    assert [g["original_id"] for g in listed["items"]] == [zh["id"]]
    detail = await dispatcher.get(f"/kb/articles/{zh['id']}")
    assert detail["translations"] == [{"id": mn["id"], "language": "mn-Mong", "title": mn["title"]}]


async def test_kb_reply_library_is_staff_only_and_validity_expires(api: Any) -> None:
    dispatcher = await api("dispatcher")
    reply = await dispatcher.post(
        "/kb/articles",
        {
            "kind": "reply",
            "title": "小区停车费",
            "ref": "20261101000001",
            "fields": {"request": "小区乱收停车费", "reply": "经核查已责令物业退还多收费用。"},
        },
        status=201,
    )
    await publish(dispatcher, reply)
    citizen = await api()
    assert (await citizen.get("/guides", q="停车费"))["items"] == []
    await citizen.get(f"/guides/{reply['id']}", status=404)
    staff = await dispatcher.get("/kb/articles", q="停车费")
    assert [x["id"] for x in staff["items"]] == [reply["id"]]
    past = datetime.now(UTC) - timedelta(days=1)
    faq = await dispatcher.post(
        "/kb/articles",
        {
            "kind": "faq",
            "fields": {"question": "冬季供暖什么时候开始？", "answer": "10月15日。"},
            "valid_until": past.isoformat(),
        },
        status=201,
    )
    await dispatcher.post("/kb/articles", {"kind": "faq", "fields": {"question": "x"}}, status=422)
    await dispatcher.post("/kb/articles", {"kind": "faq", "fields": {"nope": "x"}}, status=422)
    faq = await publish(dispatcher, faq)
    assert (await citizen.get("/guides", q="供暖"))["items"] == []  # past its validity


async def test_kb_service_expiry_pass(database: Any) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    kb = KnowledgeBase(database, None, clock=lambda: now)
    centre = Editor(KbRole.CENTRE, "班长")
    from kb.model import ArticleInput

    a = await kb.create(
        centre,
        ArticleInput(
            ArticleKind.FAQ,
            "",
            {"question": "q", "answer": "a"},
            valid_until=now + timedelta(hours=1),
        ),
    )
    a = await kb.submit(centre, a.id, a.version)
    a = await kb.publish(centre, a.id, a.version)
    assert await kb.expire_due() == 0
    kb.clock = lambda: now + timedelta(hours=2)
    assert await kb.expire_due() == 1
    assert not (await kb.get(a.id)).live
    with pytest.raises(KbForbidden):
        await kb.publish(Editor(KbRole.DEPARTMENT, "x", department="d"), a.id, a.version)
    with pytest.raises(KbConflict):
        await kb.submit(centre, a.id, a.version)


def test_kb_import_export_and_reindex_cli(tmp_path: Path, capsys: Any) -> None:
    settings_env = make_settings(f"sqlite:///{tmp_path / 'h.db'}")
    env = {
        "HOTLINE__DATABASE__URL": settings_env.database.url,
        "HOTLINE__SEARCH__PATH": str(tmp_path / "s.db"),
    }
    replies = tmp_path / "replies.csv"
    with replies.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "time", "subject", "detail", "reply", "reply_time"])
        w.writerow(["1", "2019/1/1 10:00:00", "小区停车费", "物业乱收费", "已责令整改。", ""])
        w.writerow(["2", "2019/1/2 10:00:00", "路灯不亮", "晚上很黑", "已修复路灯。", ""])
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert main(["kb", "import", "--file", str(replies), "--publish"]) == 0
        assert json.loads(capsys.readouterr().out) == {"created": 2, "published": 2, "skipped": 0}
        out = tmp_path / "kb.json"
        assert main(["kb", "export", "--out", str(out)]) == 0
        exported = json.loads(out.read_text(encoding="utf-8"))
        assert [(x["kind"], x["ref"], x["status"]) for x in exported] == [
            ("reply", "1", "published"),
            ("reply", "2", "published"),
        ]
        capsys.readouterr()
        assert main(["search", "reindex", "--fresh"]) == 0
        assert json.loads(capsys.readouterr().out)["articles"] == 2


@pytest.mark.parametrize("backend", ["embedded", "elasticsearch"])
def test_kb_eval_cli_prints_the_metrics(
    backend: str, tmp_path: Path, capsys: Any, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "pairs.csv"
    rows = [
        ("路灯不亮", "光明路路灯坏了", "您反映的光明路路灯已修复。"),
        ("停车费", "小区乱收停车费", "经核查，物业已退还多收的停车费。"),
        ("供暖", "暖气不热", "供热公司已上门检修暖气。"),
        ("噪音", "工地夜间施工", "已责令工地停止夜间施工。"),
    ]
    with data.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "detail", "reply"])
        w.writerows(rows)
    with pytest.MonkeyPatch.context() as mp:
        if backend == "elasticsearch":
            mp.setenv("HOTLINE__SEARCH__BACKEND", "elasticsearch")
            mp.setenv("HOTLINE__SEARCH__URL", request.getfixturevalue("es_node").url)
        assert main(["kb", "eval", "--data", str(data)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"mrr_at_10", "recall_at_5", "n", "p95_ms"}
    assert result["n"] == 4 and result["mrr_at_10"] == 1.0 and result["backend"] == backend


def test_analysis_rules(analyzer: Analyzer) -> None:
    a = analyzer.document("A2区景蓉花苑")
    assert "a2" in a.words and "区景" in a.grams  # letters before Han text keep their place
    assert normalize("路燈 ＡＢ") == "路灯 ab"
    assert analyzer.query("呼市").words == analyzer.document("呼和浩特市").words
    assert "准格尔旗" in analyzer.query("准格尔期").words
    assert analyzer.query("老城区").words == analyzer.document("老城区").words  # not 新城区
    assert analyzer.document("ᠭᠡᠷᠡᠯ\u180b ᠠᠰᠠᠬᠤ").words == ("ᠭᠡᠷᠡᠯ", "ᠠᠰᠠᠬᠤ")


def test_hotspot_engine_finds_a_spike_against_a_quiet_history(analyzer: Analyzer) -> None:
    from kb.config import HotspotSettings

    s = HotspotSettings(window_hours=24, baseline_windows=7, min_count=3)
    engine = HotspotEngine(analyzer, s)
    now = datetime(2026, 12, 8, tzinfo=UTC)
    items = []
    n = 0
    for day in range(1, 8):  # a quiet week: one different complaint a day per place
        for place, text in (("150100", "小区电梯故障"), ("150200", "公交车晚点")):
            n += 1
            items.append(Item(n, now - timedelta(days=day, hours=3), f"{text}{day}", place))
    for k in range(6):  # today: a burst about a water cut in one league
        n += 1
        items.append(
            Item(
                n,
                now - timedelta(hours=k + 1),
                f"昆都仑区阿尔丁大街停水{k}小时了，没有通知",
                "150200",
                f"1380000{k}",
            )
        )
    spots = engine.compute(now, items)
    top = spots[0]
    assert (top.region, top.count, top.spike(s)) == ("150200", 6, True)
    assert "停水" in top.keywords and top.callers == 6
    assert len(top.baseline) == 7
    # a read cut at its limit: only the baseline windows wholly after the cut count, the one
    # the cut falls in (and those before) are left out rather than counted as quiet
    cut = now - timedelta(days=3, hours=2)
    top = engine.compute(now, [i for i in items if i.at >= cut], complete_from=cut)[0]
    assert (top.count, len(top.baseline), top.spike(s)) == (6, 2, True)
    # cut inside the current window: no usual volume to compare with, so no spike
    cut = now - timedelta(hours=3)
    top = engine.compute(now, [i for i in items if i.at >= cut], complete_from=cut)[0]
    assert (top.count, top.baseline, top.spike(s)) == (3, [], False)


def test_kb_migrations_build_the_declared_tables(database: Any) -> None:
    import sqlalchemy as sa

    from kb.tables import metadata

    inspector = sa.inspect(database.engine)
    for table in metadata.sorted_tables:
        got = {c["name"]: c["nullable"] for c in inspector.get_columns(table.name)}
        assert got == {c.name: c.nullable for c in table.columns}, table.name
        names = {i["name"] for i in inspector.get_indexes(table.name)}
        assert {i.name for i in table.indexes} <= names, table.name
