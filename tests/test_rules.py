"""Dispatch rules over the real directory: the most specific rule wins, each fall-back step
(parent region, unknown region, broader rule, no rule) is taken and said, and a wrong table is
refused with the rule named."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from routing.config import DEFAULT_DISPATCH, DispatchRule
from routing.directory import Level, load_directory
from routing.gazetteer import Gazetteer
from routing.rules import (
    TAXONOMY,
    DispatchRules,
    DispatchTableError,
    Fallback,
    Route,
)

DIRECTORY_TOML = Path("routing/directory.toml")
DIRECTORY = load_directory(DIRECTORY_TOML)
DEFAULT = DispatchRules(DIRECTORY, DEFAULT_DISPATCH)
ZHUNGEER = "150622"  # 准格尔旗, under 鄂尔多斯市 150600
URBAN = ("城乡建设", "城市建设和市政管理", "城管执法")


def rule(category: str, department_type: str, level: str | None = None) -> DispatchRule:
    return DispatchRule.model_validate(
        {"category": category, "department_type": department_type, "level": level}
    )


def route(rules: DispatchRules, path: tuple[str, ...] | str, region: str | None) -> Route:
    r = rules.department_for(path, region)
    assert r is not None
    return r


# -- the default table ------------------------------------------------------------------------
def test_default_table_has_a_rule_for_every_first_level_category() -> None:
    firsts = {r.category for r in DEFAULT_DISPATCH if "/" not in r.category}
    assert firsts == set(TAXONOMY)


@pytest.mark.parametrize("region", ["150000", "150600", ZHUNGEER, "152200", "152523"])
def test_default_table_every_rule_finds_a_department_without_falling_back(region: str) -> None:
    for r in DEFAULT_DISPATCH:
        if r.level is not None and r.level != DIRECTORY.regions[region].level:
            continue
        found = route(DEFAULT, tuple(r.category.split("/")), region)
        if region == "150000" and r.department_type == "urban":
            continue  # the region-level rule for the same category takes it
        assert found.fallbacks == (), (r, found.explanation)
        assert found.region == region
        assert DIRECTORY.departments[found.department].type_key == r.department_type


def test_gazetteer_and_rules_route_an_address_to_the_banner_department() -> None:
    gazetteer = Gazetteer.from_directory(DIRECTORY)
    m = gazetteer.detect("鄂尔多斯市准格尔旗薛家湾镇", "小区门口的路灯坏了一个月")
    assert m is not None
    r = route(DEFAULT, URBAN, m.code)
    assert (r.department, r.department_name) == ("150622-urban", "准格尔旗城市管理综合执法局")


# -- which rule -------------------------------------------------------------------------------
def test_first_level_rule_routes_to_the_region_department() -> None:
    r = route(DEFAULT, ("交通运输", "出租车管理"), ZHUNGEER)
    assert r.department == f"{ZHUNGEER}-transport"
    assert r.rule is not None and r.rule.category == "交通运输"
    assert r.rule_number == 1
    assert (r.fallbacks, r.fell_back) == ((), False)
    assert r.asked_region == ZHUNGEER
    assert "规则 #1" in r.explanation and "准格尔旗交通运输局" in r.explanation


def test_second_level_rule_wins_over_first_level() -> None:
    r = route(DEFAULT, URBAN, ZHUNGEER)
    assert r.department == f"{ZHUNGEER}-urban"
    assert r.rule is not None and r.rule.category == "城乡建设/城市建设和市政管理"
    other = route(DEFAULT, ("城乡建设", "住房保障与房地产"), ZHUNGEER)
    assert other.department == f"{ZHUNGEER}-housing"
    assert other.rule is not None and other.rule.category == "城乡建设"


def test_category_path_as_string_is_split() -> None:
    a = route(DEFAULT, "城乡建设/城市建设和市政管理", ZHUNGEER)
    b = route(DEFAULT, ("城乡建设", "城市建设和市政管理"), ZHUNGEER)
    assert a == b


def test_rule_for_the_region_level_wins_over_any_level() -> None:
    table = DispatchRules(
        DIRECTORY,
        [rule("民政", "civil"), rule("民政", "gov", "county"), rule("民政/优抚", "hrss", "city")],
    )
    assert route(table, ("民政", "社会救助"), ZHUNGEER).department == f"{ZHUNGEER}-gov"
    assert route(table, ("民政", "社会救助"), "150600").department == "150600-civil"
    assert route(table, ("民政", "优抚"), "150600").department == "150600-hrss"


def test_second_level_for_any_level_wins_over_first_level_for_the_region_level() -> None:
    table = DispatchRules(DIRECTORY, [rule("民政", "gov", "county"), rule("民政/优抚", "hrss")])
    assert route(table, ("民政", "优抚"), ZHUNGEER).department == f"{ZHUNGEER}-hrss"


# -- fall-backs -------------------------------------------------------------------------------
def test_region_without_the_department_type_uses_its_parents(tmp_path: Path) -> None:
    # a type with no banner/county-level department: 林业和草原局 at 自治区 and 盟市 only
    text = DIRECTORY_TOML.read_text(encoding="utf-8")
    text += '\n[[department_types]]\nkey = "forest"\nname_region = "林业和草原局"\n'
    text += 'name_city = "林业和草原局"\n'
    path = tmp_path / "directory.toml"
    path.write_text(text, encoding="utf-8")
    directory = load_directory(path)
    table = DispatchRules(directory, [rule("农村农业/林业管理", "forest")])
    r = route(table, ("农村农业", "林业管理"), ZHUNGEER)
    assert (r.department, r.region, r.asked_region) == ("150600-forest", "150600", ZHUNGEER)
    assert r.fallbacks == (Fallback.PARENT_REGION,)
    assert "上级鄂尔多斯市" in r.explanation
    # at the league itself no fall-back
    assert route(table, ("农村农业", "林业管理"), "150600").fallbacks == ()


@pytest.mark.parametrize("region", [None, "", "110000"])
def test_unknown_region_uses_the_autonomous_region(region: str | None) -> None:
    r = route(DEFAULT, ("交通运输",), region)
    assert (r.department, r.department_name) == ("150000-transport", "内蒙古自治区交通运输厅")
    assert r.fallbacks == (Fallback.UNKNOWN_REGION,)
    assert "按自治区级" in r.explanation


def test_unknown_region_without_the_type_takes_the_region_level_rule() -> None:
    r = route(DEFAULT, URBAN, None)  # no 城管 at the 自治区 level: the table says 住建厅
    assert r.department == "150000-housing"
    assert r.rule is not None and r.rule.level == "region"
    assert r.fallbacks == (Fallback.UNKNOWN_REGION,)


def test_type_missing_up_the_path_falls_to_a_broader_rule() -> None:
    table = DispatchRules(
        DIRECTORY, [rule("城乡建设", "housing"), rule("城乡建设/城市建设和市政管理", "urban")]
    )
    r = route(table, URBAN, None)
    assert r.department == "150000-housing"
    assert r.rule is not None and r.rule.category == "城乡建设"
    assert r.fallbacks == (Fallback.UNKNOWN_REGION, Fallback.BROADER_RULE)
    assert "规则 #2" in r.explanation and "规则 #1" in r.explanation


@pytest.mark.parametrize("path", [("经济管理", "宏观调控"), ("没有这一类",), ()])
def test_no_matching_rule_goes_to_the_government_office(path: tuple[str, ...]) -> None:
    table = DispatchRules(DIRECTORY, [rule("交通运输", "transport")])
    r = route(table, path, ZHUNGEER)
    assert (r.department, r.department_name) == (f"{ZHUNGEER}-gov", "准格尔旗人民政府办公室")
    assert (r.rule, r.rule_number, r.fallbacks) == (None, None, (Fallback.NO_RULE,))
    assert "没有适用的派单规则" in r.explanation


def test_no_matching_rule_and_unknown_region_goes_to_the_general_office() -> None:
    r = route(DispatchRules(DIRECTORY, []), ("交通运输",), None)
    assert (r.department, r.department_name) == ("150000-gov", "内蒙古自治区人民政府办公厅")
    assert r.fallbacks == (Fallback.UNKNOWN_REGION, Fallback.NO_RULE)


def test_route_levels_follow_the_directory() -> None:
    r = route(DEFAULT, ("教育文体", "考试招生"), "152200")
    assert DIRECTORY.departments[r.department].level is Level.CITY
    assert r.department_name == "兴安盟教育局"


# -- a wrong table ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (rule("城乡建设", "housng"), "目录中没有单位类型 housng"),
        (rule("城乡建设", "extra"), "目录中没有单位类型 extra"),
        (rule("城建", "housing"), "未知分类「城建」"),
        (rule("城乡建设/市政", "housing"), "「市政」不是「城乡建设」的二级分类"),
        (rule("交通运输/城市建设和市政管理", "urban"), "不是「交通运输」的二级分类"),
        (rule("城乡建设/城市建设和市政管理", "urban", "region"), "自治区级及以上没有 urban"),
        (rule("交通运输", "transport"), "与第 1 条重复"),
    ],
)
def test_invalid_table_is_refused_naming_the_rule(bad: DispatchRule, message: str) -> None:
    table = [rule("交通运输", "transport"), rule("民政", "civil"), bad]
    with pytest.raises(DispatchTableError) as info:
        DispatchRules(DIRECTORY, table)
    text = str(info.value)
    assert "routing.dispatch 第 3 条" in text
    assert bad.category in text
    assert message in text
    assert "第 1 条「" not in text and "第 2 条「" not in text  # only the wrong rule is named


def test_invalid_table_lists_every_wrong_rule() -> None:
    table = [rule("城建", "housing"), rule("民政", "civil"), rule("民政", "civl", "city")]
    with pytest.raises(DispatchTableError) as info:
        DispatchRules(DIRECTORY, table)
    assert "第 1 条" in str(info.value) and "第 3 条" in str(info.value)
    assert "第 2 条「" not in str(info.value)


@pytest.mark.parametrize(
    "fields",
    [
        {"category": "城乡建设/城市建设和市政管理/城管执法", "department_type": "urban"},
        {"category": "", "department_type": "urban"},
        {"category": "城乡建设", "department_type": "Urban"},
        {"category": "城乡建设", "department_type": "urban", "level": "province"},
        {"category": "城乡建设", "department_type": "urban", "dept": "x"},
        {"category": "城乡建设"},
    ],
)
def test_malformed_rule_is_refused_by_the_settings_model(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        DispatchRule.model_validate(fields)
