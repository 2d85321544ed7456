"""Region detection over the real directory and alias file: official names, aliases and banner
abbreviations, the league deciding ambiguous names, address before text, and the words that
contain a name but mean something else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from routing.directory import Directory, Level, load_directory
from routing.gazetteer import (
    DEFAULT_ALIASES,
    Basis,
    Gazetteer,
    GazetteerError,
    RegionMatch,
    Source,
)

DIRECTORY = load_directory(Path("routing/directory.toml"))
GAZETTEER = Gazetteer.from_directory(DIRECTORY, DEFAULT_ALIASES)
LEAGUES = [r for r in DIRECTORY.regions.values() if r.level is Level.CITY]
COUNTIES = [r for r in DIRECTORY.regions.values() if r.level is Level.COUNTY]
WEAK = {"新城区", "青山区", "东河区", "海南区", "松山区"}


def detect(address: str | None, text: str = "") -> RegionMatch | None:
    return GAZETTEER.detect(address, text)


def code_of(address: str | None, text: str = "") -> str | None:
    m = detect(address, text)
    return m.code if m else None


# -- leagues and cities -----------------------------------------------------------------------
@pytest.mark.parametrize("league", LEAGUES, ids=lambda r: r.name)
def test_detect_league_full_name_finds_league(league: Any) -> None:
    m = detect(f"{league.name}某某小区3号楼")
    assert m is not None
    assert (m.code, m.level, m.surface, m.source) == (
        league.code,
        Level.CITY,
        league.name,
        Source.ADDRESS,
    )
    assert m.basis is Basis.LEAGUE
    assert m.name == league.name


@pytest.mark.parametrize(
    ("alias", "code"),
    [
        ("呼和浩特", "150100"),
        ("呼市", "150100"),
        ("包头", "150200"),
        ("乌海", "150300"),
        ("赤峰", "150400"),
        ("昭盟", "150400"),
        ("通辽", "150500"),
        ("哲盟", "150500"),
        ("鄂尔多斯", "150600"),
        ("伊盟", "150600"),
        ("呼伦贝尔", "150700"),
        ("巴彦淖尔", "150800"),
        ("巴盟", "150800"),
        ("乌兰察布", "150900"),
        ("乌盟", "150900"),
        ("兴安", "152200"),
        ("锡林郭勒", "152500"),
        ("锡盟", "152500"),
        ("阿拉善", "152900"),
        ("阿盟", "152900"),
    ],
)
def test_detect_league_alias_finds_league(alias: str, code: str) -> None:
    m = detect(None, f"我是{alias}的，反映一下供暖不热的问题")
    assert m is not None
    assert (m.code, m.level, m.surface, m.source) == (code, Level.CITY, alias, Source.TEXT)


def test_every_league_has_a_name_without_its_suffix() -> None:
    for league in LEAGUES:
        short = league.name.removesuffix("市").removesuffix("盟")
        assert code_of(None, f"在{short}工作") == league.code, league.name


# -- banners and counties ---------------------------------------------------------------------
@pytest.mark.parametrize("county", COUNTIES, ids=lambda r: r.name)
def test_detect_county_under_its_league_finds_county(county: Any) -> None:
    league = DIRECTORY.regions[county.parent]
    m = detect(f"内蒙古{league.name}{county.name}某街道")
    assert m is not None
    assert (m.code, m.level, m.surface) == (county.code, Level.COUNTY, county.name)
    assert (m.basis, m.confidence) == (Basis.COUNTY_IN_LEAGUE, 1.0)


@pytest.mark.parametrize(
    "county", [c for c in COUNTIES if c.name not in WEAK], ids=lambda r: r.name
)
def test_detect_distinct_county_alone_finds_county(county: Any) -> None:
    m = detect(None, f"{county.name}某小区停水三天了")
    assert m is not None
    assert (m.code, m.basis) == (county.code, Basis.COUNTY_UNIQUE)


@pytest.mark.parametrize(
    ("alias", "code"),
    [
        ("土左旗", "150121"),
        ("托县", "150122"),
        ("昆区", "150203"),
        ("土右旗", "150221"),
        ("达茂旗", "150223"),
        ("克旗", "150425"),
        ("翁旗", "150426"),
        ("喀旗", "150428"),
        ("科左中旗", "150521"),
        ("科左后旗", "150522"),
        ("霍林郭勒", "150581"),
        ("康巴什", "150603"),
        ("达旗", "150621"),
        ("准旗", "150622"),
        ("薛家湾", "150622"),
        ("鄂前旗", "150623"),
        ("伊旗", "150627"),
        ("海拉尔", "150702"),
        ("阿荣旗", "150721"),
        ("莫旗", "150722"),
        ("鄂伦春旗", "150723"),
        ("鄂温克旗", "150724"),
        ("陈旗", "150725"),
        ("新左旗", "150726"),
        ("新右旗", "150727"),
        ("满洲里", "150781"),
        ("扎兰屯", "150783"),
        ("乌前旗", "150823"),
        ("乌中旗", "150824"),
        ("乌后旗", "150825"),
        ("杭后", "150826"),
        ("集宁", "150902"),
        ("察右前旗", "150926"),
        ("察右中旗", "150927"),
        ("察右后旗", "150928"),
        ("四子王旗", "150929"),
        ("乌兰浩特", "152201"),
        ("科右前旗", "152221"),
        ("科右中旗", "152222"),
        ("二连浩特", "152501"),
        ("锡林浩特", "152502"),
        ("东乌旗", "152525"),
        ("西乌旗", "152526"),
        ("阿左旗", "152921"),
        ("阿右旗", "152922"),
        ("额济纳", "152923"),
    ],
)
def test_detect_banner_abbreviation_finds_banner(alias: str, code: str) -> None:
    m = detect(f"{alias}某镇某村")
    assert m is not None
    assert (m.code, m.level, m.surface) == (code, Level.COUNTY, alias)
    # and under its league, as addresses are usually written
    league = DIRECTORY.regions[code].parent
    assert league is not None
    assert code_of(f"{DIRECTORY.region_name(league)}{alias}") == code


def test_detect_address_naming_banner_under_league_finds_banner() -> None:
    m = detect("鄂尔多斯市准格尔旗薛家湾镇")
    assert m is not None
    assert (m.code, m.name, m.level) == ("150622", "准格尔旗", Level.COUNTY)
    assert (m.surface, m.source, m.basis, m.confidence) == (
        "准格尔旗",
        Source.ADDRESS,
        Basis.COUNTY_IN_LEAGUE,
        1.0,
    )
    assert "鄂尔多斯市" in m.reason


def test_detect_county_without_league_accepted_when_unique() -> None:
    m = detect("", "准旗薛家湾镇的路灯坏了")
    assert m is not None
    assert (m.code, m.source, m.basis) == ("150622", Source.TEXT, Basis.COUNTY_UNIQUE)
    assert m.confidence < 1.0


@pytest.mark.parametrize(
    ("address", "code"),
    [
        ("通辽市扎旗鲁北镇", "150526"),  # 扎鲁特旗
        ("兴安盟扎旗音德尔镇", "152223"),  # 扎赉特旗
        ("赤峰市阿旗天山镇", "150421"),  # 阿鲁科尔沁旗
        ("锡林郭勒盟阿旗别力古台镇", "152522"),  # 阿巴嘎旗
        ("哲盟扎旗", "150526"),
    ],
)
def test_detect_ambiguous_alias_resolved_by_league(address: str, code: str) -> None:
    m = detect(address)
    assert m is not None
    assert (m.code, m.basis) == (code, Basis.COUNTY_IN_LEAGUE)


def test_detect_ambiguous_alias_without_league_finds_nothing() -> None:
    assert detect("扎旗某镇") is None
    assert detect(None, "阿旗那边的草场") is None


def test_detect_ambiguous_alias_in_text_resolved_by_league_in_address() -> None:
    m = detect("通辽市", "扎旗巨日合镇的农田灌溉问题")
    assert m is not None
    assert (m.code, m.source, m.basis) == ("150526", Source.TEXT, Basis.COUNTY_IN_LEAGUE)


def test_detect_name_also_outside_region_needs_its_league() -> None:
    m = detect("包头市青山区幸福路")
    assert m is not None and (m.code, m.confidence) == ("150204", 1.0)
    # alone in the address: only a guess; alone in the text: nothing
    guess = detect("青山区幸福路")
    assert guess is not None
    assert (guess.code, guess.basis, guess.confidence) == ("150204", Basis.COUNTY_GUESS, 0.5)
    assert detect(None, "九华作为新城区，人口迅猛增长") is None
    # its league named in the other field makes it sure
    m = detect("青山区幸福路", "包头这边的物业")
    assert m is not None and (m.code, m.basis) == ("150204", Basis.COUNTY_IN_LEAGUE)


def test_detect_county_of_another_league_prefers_the_league_named() -> None:
    # 新城区 is in 呼和浩特; in 包头 it is a new town area, not the district
    m = detect("包头市新城区某小区")
    assert m is not None
    assert (m.code, m.level, m.basis) == ("150200", Level.CITY, Basis.LEAGUE)


def test_detect_distinct_county_of_another_league_wins_with_lower_confidence() -> None:
    m = detect(None, "我是包头市的，在达拉特旗买的房子漏水")
    assert m is not None
    assert (m.code, m.basis) == ("150621", Basis.COUNTY_OTHER_LEAGUE)
    assert m.confidence < 0.9


def test_detect_longest_name_wins() -> None:
    assert code_of("阿拉善左旗巴彦浩特镇") == "152921"
    assert code_of("兴安盟") == "152200"
    assert code_of("杭锦后旗") == "150826"
    assert code_of("杭锦旗") == "150625"
    assert code_of("鄂托克前旗") == "150623"
    assert code_of("鄂托克旗") == "150624"
    assert code_of("科尔沁左翼后旗") == "150522"
    assert code_of("科尔沁区") == "150502"


# -- address and text -------------------------------------------------------------------------
@pytest.mark.parametrize("address", ["", None])
def test_detect_empty_address_uses_text(address: str | None) -> None:
    m = detect(address, "赤峰市松山区当铺地满族乡的自来水有异味")
    assert m is not None
    assert (m.code, m.source) == ("150404", Source.TEXT)


def test_detect_address_wins_over_text() -> None:
    m = detect("赤峰市红山区", "我在呼和浩特市赛罕区上班")
    assert m is not None
    assert (m.code, m.source) == ("150402", Source.ADDRESS)


def test_detect_text_names_banner_within_address_league() -> None:
    m = detect("鄂尔多斯市", "准旗大路镇的垃圾没人清运")
    assert m is not None
    assert (m.code, m.source) == ("150622", Source.TEXT)
    assert "见地址" in m.reason


def test_detect_text_banner_of_another_league_keeps_address_league() -> None:
    m = detect("鄂尔多斯市", "老家在土左旗")
    assert m is not None
    assert (m.code, m.source, m.basis) == ("150600", Source.ADDRESS, Basis.LEAGUE)


def test_detect_several_leagues_takes_the_first_with_lower_confidence() -> None:
    m = detect(None, "包头到呼和浩特的城际列车太少")
    assert m is not None
    assert (m.code, m.basis) == ("150200", Basis.LEAGUE)
    assert m.confidence < 0.9
    assert "呼和浩特" in m.reason


# -- words that contain a name ----------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "大兴安岭林区防火",
        "小兴安岭",
        "兴安岭的木材",
        "高高兴兴安安心心住进新家",
        "北侧新兴安置小区",
        "戴着包头巾",
        "大包头拖欠工资不给",
        "小包头说月底付工钱",
        "黑心包头",
        "社区干部招呼市民排队",
        "县委书记委托县政府分管领导",
        "高铁新城区域的规划",
        "标准旗舰店",
        "永丰镇市场",
        "二十五原价三十",
        "准格尔盆地的油田",
    ],
)
def test_detect_word_containing_a_name_finds_nothing(text: str) -> None:
    assert detect(None, text) is None


def test_detect_street_named_after_league_is_not_the_league() -> None:
    assert code_of(None, "呼和浩特市兴安南路") == "150100"
    assert code_of("兴安北路12号") is None
    assert code_of(None, "兴安盟科右前旗") == "152221"


def test_detect_guarded_name_falls_back_to_shorter_name() -> None:
    m = detect(None, "包头市场上的猪肉涨价")  # 包头市 + 场 is 包头 + 市场
    assert m is not None and (m.code, m.surface) == ("150200", "包头")


@pytest.mark.parametrize(
    ("address", "text"),
    [
        ("", ""),
        (None, ""),
        (None, "小区物业乱收停车费"),
        ("A市A3区五一大道", "A市西地省的噪音扰民"),
        (None, "内蒙古自治区的政策"),  # the autonomous region itself is no league or banner
    ],
)
def test_detect_nothing_named_returns_none(address: str | None, text: str) -> None:
    assert detect(address, text) is None


# -- the alias file ---------------------------------------------------------------------------
def make(aliases: dict[str, Any], directory: Directory = DIRECTORY) -> Gazetteer:
    return Gazetteer(directory, aliases, origin="test.toml")


@pytest.mark.parametrize(
    ("table", "named"),
    [
        ({"aliases": {"包头城": "159999"}}, "aliases.包头城"),
        ({"aliases": {"包头市": "150200"}}, "aliases.包头市"),
        ({"aliases": {"内蒙": "150000"}}, "aliases.内蒙"),
        ({"aliases": {"某盟": ["150100", "150200"]}}, "aliases.某盟"),
        ({"aliases": {"某旗": []}}, "aliases.某旗"),
        ({"aliases": {"某旗": [1]}}, "aliases.某旗"),
        ({"weak": {"names": ["无此地"]}}, "weak.names"),
        ({"weak": {"names": ["包头市"]}}, "weak.names"),
        ({"exclusions": {"words": ["山水"]}}, "exclusions.words"),
        ({"exclusions": {"words": ["包头市"]}}, "exclusions.words"),
        ({"exclusions": {"not_followed_by": {"镇": "场"}}}, "exclusions.not_followed_by.镇"),
        ({"exclusions": {"not_followed_by": {"市": ""}}}, "exclusions.not_followed_by.市"),
        ({"exclusions": {"not_preceded_by": {"无": "大"}}}, "exclusions.not_preceded_by.无"),
        ({"exclusions": {"bogus": []}}, "bogus"),
        ({"places": {}}, "places"),
    ],
)
def test_alias_table_error_names_the_entry(table: dict[str, Any], named: str) -> None:
    with pytest.raises(GazetteerError) as info:
        make(table)
    assert named in str(info.value)
    assert "test.toml" in str(info.value)


def test_alias_file_missing_or_invalid_raises_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "none.toml"
    with pytest.raises(GazetteerError) as info:
        Gazetteer.from_directory(DIRECTORY, missing)
    assert str(missing) in str(info.value)
    broken = tmp_path / "broken.toml"
    broken.write_text("[aliases\n", encoding="utf-8")
    with pytest.raises(GazetteerError) as info:
        Gazetteer.from_directory(DIRECTORY, broken)
    assert str(broken) in str(info.value)


def test_official_names_are_matched_without_an_alias_file() -> None:
    bare = make({})
    m = bare.detect("鄂尔多斯市准格尔旗", "")
    assert m is not None and m.code == "150622"
    assert bare.detect("准旗", "") is None
