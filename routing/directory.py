"""The directory of regions (自治区 / 盟市 / 旗县区) and the departments at each level."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from routing.config import RoutingSettings


class Level(StrEnum):
    REGION = "region"  # 自治区
    CITY = "city"  # 盟 / 市
    COUNTY = "county"  # 旗 / 县 / 区 / 县级市


LEVEL_LABELS = {Level.REGION: "自治区级", Level.CITY: "盟市级", Level.COUNTY: "旗县区级"}


@dataclass(frozen=True, slots=True)
class Region:
    code: str
    name: str
    level: Level
    parent: str | None

    @property
    def level_label(self) -> str:
        return LEVEL_LABELS[self.level]


@dataclass(frozen=True, slots=True)
class Department:
    code: str
    name: str  # full name, e.g. 呼和浩特市住房和城乡建设局
    short_name: str  # e.g. 住房和城乡建设局
    region: str
    level: Level
    type_key: str
    sms: str = ""


class DirectoryError(Exception):
    """The directory file is inconsistent; the message says where."""


class Directory:
    def __init__(self, regions: list[Region], departments: list[Department]) -> None:
        self.regions = {r.code: r for r in regions}
        self.departments = {d.code: d for d in departments}
        self._children: dict[str, list[str]] = {}
        for r in regions:
            if r.parent:
                self._children.setdefault(r.parent, []).append(r.code)
        self._by_region: dict[str, list[Department]] = {}
        for d in departments:
            self._by_region.setdefault(d.region, []).append(d)

    # -- the tickets.service.Directory port ---------------------------------------------------
    def has_department(self, code: str) -> bool:
        return code in self.departments

    def department(self, code: str) -> Department | None:
        return self.departments.get(code)

    def has_region(self, code: str) -> bool:
        return code in self.regions

    def can_forward(self, from_code: str, to_code: str) -> bool:
        """二级派单 goes exactly one level down, into a region under the forwarder's own."""
        src, dst = self.departments.get(from_code), self.departments.get(to_code)
        if src is None or dst is None:
            return False
        return self.regions[dst.region].parent == src.region

    # -- look-ups -----------------------------------------------------------------------------
    def root(self) -> Region:
        return next(r for r in self.regions.values() if r.parent is None)

    def children(self, region_code: str) -> list[Region]:
        return [self.regions[c] for c in self._children.get(region_code, [])]

    def departments_in(self, region_code: str) -> list[Department]:
        return list(self._by_region.get(region_code, []))

    def department_name(self, code: str) -> str:
        d = self.departments.get(code)
        return d.name if d else code

    def region_name(self, code: str) -> str:
        r = self.regions.get(code)
        return r.name if r else code

    # -- the statistics' tickets.stats.StatsDirectory port -----------------------------------
    def regions_under(self, code: str) -> list[str]:
        """`code` and every region below it."""
        out, todo = [], [code]
        while todo:
            current = todo.pop()
            out.append(current)
            todo.extend(self._children.get(current, []))
        return out

    def league_of(self, code: str) -> str | None:
        """The league or city (盟市) a region is in (itself at that level); None for the
        autonomous region itself or an unknown code."""
        r = self.regions.get(code)
        while r is not None and r.level is Level.COUNTY and r.parent:
            r = self.regions.get(r.parent)
        return r.code if r is not None and r.level is Level.CITY else None

    def department_region(self, code: str) -> str | None:
        d = self.departments.get(code)
        return d.region if d else None

    def department_codes(self) -> list[str]:
        return list(self.departments)

    def forward_targets(self, from_code: str) -> list[Department]:
        src = self.departments.get(from_code)
        if src is None:
            return []
        return [d for r in self.children(src.region) for d in self.departments_in(r.code)]


def _name_at(dtype: dict[str, Any], level: Level) -> str | None:
    name = dtype.get(f"name_{level.value}")
    return str(name) if name else None


def load_directory(path: Path, settings: RoutingSettings | None = None) -> Directory:
    """Read directory.toml; generate each region's departments from the department types."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DirectoryError(f"区划目录文件不存在: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DirectoryError(f"区划目录文件 {path} 不是合法的 TOML: {exc}") from None
    settings = settings or RoutingSettings()
    try:
        top = data["region"]
        regions = [Region(str(top["code"]), str(top["name"]), Level.REGION, None)]
        for league in data.get("leagues", []):
            regions.append(
                Region(str(league["code"]), str(league["name"]), Level.CITY, regions[0].code)
            )
            for code, name in league.get("counties", {}).items():
                regions.append(Region(str(code), str(name), Level.COUNTY, str(league["code"])))
    except KeyError as exc:
        raise DirectoryError(f"区划目录 {path} 缺少字段 {exc}") from None
    seen: set[str] = set()
    for r in regions:
        if r.code in seen:
            raise DirectoryError(f"区划代码重复: {r.code}")
        seen.add(r.code)

    departments: list[Department] = []
    for dtype in data.get("department_types", []):
        key = str(dtype["key"])
        for r in regions:
            short = _name_at(dtype, r.level)
            if not short:
                continue
            code = f"{r.code}-{key}"
            departments.append(
                Department(
                    code=code,
                    name=r.name + short,
                    short_name=short,
                    region=r.code,
                    level=r.level,
                    type_key=key,
                    sms=settings.contacts.get(code, ""),
                )
            )
    by_code = {r.code: r for r in regions}
    for extra in settings.extra_departments:
        if extra.region not in by_code:
            raise DirectoryError(
                f"routing.extra_departments: {extra.code} 的区划 {extra.region} 未知"
            )
        departments.append(
            Department(
                code=extra.code,
                name=extra.name,
                short_name=extra.name,
                region=extra.region,
                level=by_code[extra.region].level,
                type_key="extra",
                sms=extra.sms or settings.contacts.get(extra.code, ""),
            )
        )
    codes = [d.code for d in departments]
    if len(codes) != len(set(codes)):
        raise DirectoryError("承办单位代码重复")
    unknown = set(settings.contacts) - set(codes)
    if unknown:
        raise DirectoryError(f"routing.contacts 中有未知单位代码: {sorted(unknown)[:5]}")
    return Directory(regions, departments)
