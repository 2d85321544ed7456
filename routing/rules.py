"""Dispatch rules: which department handles a category of request in a region, and why."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from routing.config import DispatchRule
from routing.directory import LEVEL_LABELS, Department, Directory, Level, Region

GOV = "gov"  # 人民政府办公室 / 办公厅: takes what no rule covers

# The category taxonomy (一级分类 → 二级分类) of the 12345 messages the classifier learns from
# (TipDM 2020 problem C, attachment 1); a rule names a first-level class or "first/second".
_TAXONOMY_TEXT = {
    "交通运输": "出租车管理 建设管理 交通运输 客货运输 其他 邮政管理",
    "党务政务": "党的建设 港澳台侨 国防外交 民族宗教 其他 群众团体 宣传舆论 政治体制",
    "农村农业": (
        "草原草场 村务管理 动物防疫 扶贫开发 惠农补贴 林业管理 农副产品流通 农垦农场 农资农技 "
        "其他 水库移民 水利水电 土地承包经营 野生资源管理"
    ),
    "劳动和社会保障": (
        "城镇居民社会保险 城镇职工社会保险 工资福利 就业培训 劳动保护 劳动关系 其他 "
        "社保基金管理 退休政策及待遇"
    ),
    "卫生计生": "公共卫生 其他 人口计生 食品药品监管 医患纠纷 医政监管",
    "商贸旅游": "旅游管理 其他 商业贸易 市场监管 质监检验检疫",
    "国土资源": "海洋气象地震 矿产资源管理 其他 土地征收 土地资源管理",
    "城乡建设": (
        "安全生产 城市建设和市政管理 城乡规划 村镇建设 工程质量 国有土地上房屋征收与补偿 "
        "集体土地上房屋拆迁与补偿 建筑市场 其他 住房保障与房地产"
    ),
    "政法": (
        "法律服务 法制建设 行政复议 户籍证件 交通管理 警务督察 其他 社会治安 诉讼 刑案侦破 "
        "刑罚执行 仲裁与调解"
    ),
    "教育文体": (
        "教师队伍和待遇 教育行政管理 教育收费 教育体制 考试招生 其他 失学辍学 体育 文化 文物管理"
    ),
    "民政": (
        "福利慈善 复退安置 基层选举和社区建设 救灾募捐 民间组织 其他 区划地名 社会服务 "
        "社会救助 优抚"
    ),
    "环境保护": "环保管理 环境污染 建设项目审批 其他",
    "科技与信息产业": "电信 科学技术 其他 信息化建设 知识产权",
    "纪检监察": "党政处分 干部作风 滥用职权 其他 失职渎职 贪污贿赂",
    "经济管理": "安全生产 保险证券期货 国资监管 宏观调控 金融财税 能源管理 其他 企业破产",
}
TAXONOMY: Mapping[str, tuple[str, ...]] = {
    first: tuple(second.split()) for first, second in _TAXONOMY_TEXT.items()
}


_DEPTH = {Level.REGION: 0, Level.CITY: 1, Level.COUNTY: 2}
_Key = tuple[str, str | None, str | None]  # (first level, second level, region level)


class DispatchTableError(Exception):
    """The dispatch table names an unknown category or department type; the message names the
    rule."""


class Fallback(StrEnum):
    UNKNOWN_REGION = "unknown_region"  # no region (or one not in the directory): 自治区 level
    PARENT_REGION = "parent_region"  # the region has no department of the type: the one above
    BROADER_RULE = "broader_rule"  # the best rule's type exists nowhere up: a less specific rule
    NO_RULE = "no_rule"  # no rule for the category: the 人民政府办公室


@dataclass(frozen=True, slots=True)
class Route:
    department: str  # department code, e.g. 150622-urban
    department_name: str
    region: str  # the region of that department
    asked_region: str | None  # the region the request is about, as given
    rule_number: int | None  # 1-based position in routing.dispatch; None: no rule applied
    rule: DispatchRule | None
    fallbacks: tuple[Fallback, ...]
    explanation: str  # for the dispatcher, in Chinese

    @property
    def fell_back(self) -> bool:
        return bool(self.fallbacks)


def describe_rule(rule: DispatchRule) -> str:
    level = f"（{LEVEL_LABELS[Level(rule.level)]}）" if rule.level else ""
    return f"{rule.category}{level} → {rule.department_type}"


class DispatchRules:
    """The dispatch table, checked against the directory and the taxonomy when built."""

    def __init__(
        self,
        directory: Directory,
        rules: Sequence[DispatchRule],
        categories: Mapping[str, Collection[str]] = TAXONOMY,
    ) -> None:
        self._directory = directory
        self._root = directory.root()
        self._departments = {(d.region, d.type_key): d for d in directory.departments.values()}
        self._index = _index(directory, rules, categories)

    def department_for(self, category_path: Sequence[str], region_code: str | None) -> Route | None:
        """The most specific rule (second level before first, the region's level before any
        level) whose department type exists in the region or above it; else the government
        office. A region that is unknown counts as the autonomous region. None only when the
        directory has no government office at all."""
        if isinstance(category_path, str):
            category_path = category_path.split("/")
        path = [p.strip() for p in category_path if p.strip()]
        region = self._directory.regions.get(region_code) if region_code else None
        fallbacks: list[Fallback] = []
        notes: list[str] = []
        if region is None:
            fallbacks.append(Fallback.UNKNOWN_REGION)
            notes.append(
                f"区划 {region_code} 不在目录中，按自治区级"
                if region_code
                else "未识别区划，按自治区级"
            )
            region = self._root
        for tried, (number, rule) in enumerate(self._candidates(path, region.level)):
            found = self._up(region, rule.department_type)
            if found is None:
                notes.append(
                    f"规则 #{number}「{describe_rule(rule)}」：{region.name}及上级均无此类单位"
                )
                continue
            if tried:
                fallbacks.append(Fallback.BROADER_RULE)
            head = f"规则 #{number}「{describe_rule(rule)}」"
            return self._route(found, region, region_code, number, rule, fallbacks, head, notes)
        found = self._up(region, GOV)
        if found is None:
            return None
        fallbacks.append(Fallback.NO_RULE)
        head = f"分类「{'/'.join(path) or '（无）'}」没有适用的派单规则，交政府办公室"
        return self._route(found, region, region_code, None, None, fallbacks, head, notes)

    def _candidates(self, path: list[str], level: Level) -> list[tuple[int, DispatchRule]]:
        if not path:
            return []
        first, second = path[0], (path[1] if len(path) > 1 else None)
        keys: list[_Key] = [(first, None, level.value), (first, None, None)]
        if second is not None:
            keys = [(first, second, level.value), (first, second, None), *keys]
        return [self._index[k] for k in keys if k in self._index]

    def _up(self, region: Region, type_key: str) -> tuple[Department, int] | None:
        """The department of that type in the region or the nearest region above it."""
        hops = 0
        current: Region | None = region
        while current is not None:
            dept = self._departments.get((current.code, type_key))
            if dept is not None:
                return dept, hops
            current = self._directory.regions.get(current.parent) if current.parent else None
            hops += 1
        return None

    def _route(
        self,
        found: tuple[Department, int],
        region: Region,
        asked: str | None,
        number: int | None,
        rule: DispatchRule | None,
        fallbacks: list[Fallback],
        head: str,
        notes: list[str],
    ) -> Route:
        dept, hops = found
        parts = [*notes, head]
        if hops:
            fallbacks = [*fallbacks, Fallback.PARENT_REGION]
            above = self._directory.region_name(dept.region)
            parts.append(f"{region.name}没有此类单位，由上级{above}承办")
        explanation = "；".join(parts) + f" → {dept.name}"
        return Route(
            dept.code, dept.name, dept.region, asked, number, rule, tuple(fallbacks), explanation
        )


def _index(
    directory: Directory, rules: Sequence[DispatchRule], categories: Mapping[str, Collection[str]]
) -> dict[_Key, tuple[int, DispatchRule]]:
    levels: dict[str, set[Level]] = {}
    for d in directory.departments.values():
        if d.type_key != "extra":  # single extra departments are not a type a rule can name
            levels.setdefault(d.type_key, set()).add(d.level)
    index: dict[_Key, tuple[int, DispatchRule]] = {}
    problems: list[str] = []
    for number, rule in enumerate(rules, 1):
        where = f"routing.dispatch 第 {number} 条「{describe_rule(rule)}」"
        first, _, second = rule.category.partition("/")
        if first not in categories:
            problems.append(f"{where}: 未知分类「{first}」")
        elif second and second not in categories[first]:
            problems.append(f"{where}: 「{second}」不是「{first}」的二级分类")
        have = levels.get(rule.department_type)
        if have is None:
            known = ", ".join(sorted(levels))
            problems.append(f"{where}: 目录中没有单位类型 {rule.department_type}（有 {known}）")
        elif rule.level is not None and all(_DEPTH[lv] > _DEPTH[Level(rule.level)] for lv in have):
            label = LEVEL_LABELS[Level(rule.level)]
            problems.append(f"{where}: {label}及以上没有 {rule.department_type} 类单位")
        key = (first, second or None, rule.level)
        if key in index:
            problems.append(f"{where}: 与第 {index[key][0]} 条重复")
        else:
            index[key] = (number, rule)
    if problems:
        raise DispatchTableError("派单规则有误:\n  " + "\n  ".join(problems))
    return index
