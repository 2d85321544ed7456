"""Region detection: the Inner Mongolia league/city and banner/county an address or a text names."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, NoReturn

from routing.directory import Directory, Level

DEFAULT_ALIASES = Path(__file__).with_name("aliases.toml")


class GazetteerError(Exception):
    """The alias file is wrong or does not fit the directory; the message names the entry."""


class Source(StrEnum):
    ADDRESS = "address"
    TEXT = "text"


class Basis(StrEnum):
    """What the choice rests on."""

    COUNTY_IN_LEAGUE = "county_in_league"  # a banner/county and its league/city are both named
    COUNTY_UNIQUE = "county_unique"  # a banner/county name that means one place; no league named
    COUNTY_OTHER_LEAGUE = "county_other_league"  # such a name, while another league is named
    LEAGUE = "league"  # a league/city only
    COUNTY_GUESS = "county_guess"  # a name also found outside the region; no league named


@dataclass(frozen=True, slots=True)
class RegionMatch:
    code: str  # GB/T 2260 code of the league/city or banner/county
    name: str  # its official name
    level: Level
    surface: str  # the words as written, e.g. 准旗
    source: Source
    basis: Basis
    confidence: float  # 0.5 (a guess) … 1.0 (banner and its league both named)
    reason: str  # for the dispatcher, in Chinese


@dataclass(frozen=True, slots=True)
class _Name:
    codes: tuple[str, ...]  # more than one: an alias used for several banners/counties
    weak: bool


@dataclass(frozen=True, slots=True)
class _Hit:
    surface: str
    codes: tuple[str, ...]
    weak: bool


class Gazetteer:
    """Official names from the directory plus the aliases, exclusions and guards of aliases.toml."""

    def __init__(
        self, directory: Directory, aliases: Mapping[str, Any], origin: str = "aliases.toml"
    ) -> None:
        self._directory = directory
        self._names, exclusions, before, after = _read_table(directory, aliases, origin)
        self._pattern = _alternation(self._names, exclusions, before, after)

    @classmethod
    def from_directory(
        cls, directory: Directory, aliases_path: Path = DEFAULT_ALIASES
    ) -> Gazetteer:
        try:
            data = tomllib.loads(aliases_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise GazetteerError(f"地名别名文件不存在: {aliases_path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise GazetteerError(f"地名别名文件 {aliases_path} 不是合法的 TOML: {exc}") from None
        return cls(directory, data, str(aliases_path))

    def detect(self, address: str | None, text: str) -> RegionMatch | None:
        """The address decides when it names a banner/county; the text may name the banner/county
        within a league the address gives, and decides alone when the address names nothing."""
        address_hits = self._scan(address) if address else []
        text_hits = self._scan(text) if text else []
        by_address = self._resolve(address_hits, Source.ADDRESS, self._leagues(text_hits))
        if by_address is not None and by_address.level is Level.COUNTY:
            return by_address
        by_text = self._resolve(text_hits, Source.TEXT, self._leagues(address_hits))
        if by_address is None:
            return by_text
        if (
            by_text is not None
            and by_text.level is Level.COUNTY
            and self._parent(by_text.code) == by_address.code
        ):
            return by_text
        return by_address

    def canonical(self, text: str) -> str:
        """`text` with each name that points at one place written as its official name
        (呼市 → 呼和浩特市, 准旗 → 准格尔旗), for search: words that only contain a name
        (大兴安岭) and names weak alone stay as written."""

        def official(m: re.Match[str]) -> str:
            name = self._names.get(m.group())
            if name is None or name.weak or len(name.codes) != 1:
                return m.group()
            return self._directory.regions[name.codes[0]].name

        return self._pattern.sub(official, text)

    def place_names(self) -> list[str]:
        """Every league/city and banner/county name of the directory, and the aliases that
        point at one place."""
        official = [r.name for r in self._directory.regions.values() if r.level is not Level.REGION]
        aliases = [n for n, name in self._names.items() if len(name.codes) == 1 and not name.weak]
        return sorted({*official, *aliases})

    # -- matching -----------------------------------------------------------------------------
    def _scan(self, s: str) -> list[_Hit]:
        hits = []
        for m in self._pattern.finditer(s):
            name = self._names.get(m.group())
            if name is not None:  # otherwise an exclusion such as 大兴安岭: skipped over
                hits.append(_Hit(m.group(), name.codes, name.weak))
        return hits

    def _level(self, code: str) -> Level:
        return self._directory.regions[code].level

    def _parent(self, code: str) -> str | None:
        return self._directory.regions[code].parent

    def _leagues(self, hits: list[_Hit]) -> dict[str, str]:
        """League code → the first words naming it, in the order they are named."""
        out: dict[str, str] = {}
        for h in hits:
            if self._level(h.codes[0]) is Level.CITY:
                out.setdefault(h.codes[0], h.surface)
        return out

    def _resolve(
        self, hits: list[_Hit], source: Source, elsewhere: Mapping[str, str]
    ) -> RegionMatch | None:
        """Choose among the names found in one field, strongest basis first; `elsewhere` are
        leagues the other field names: they may pick out a banner/county here, but are never the
        answer themselves. Names weak alone are guessed from the address only, never the text."""
        own = self._leagues(hits)
        named = {**elsewhere, **own}
        counties = [h for h in hits if self._level(h.codes[0]) is Level.COUNTY]
        for h in counties:
            under = [c for c in h.codes if self._parent(c) in named]
            if len(under) == 1:
                league = self._parent(under[0])
                assert league is not None
                reason = f"「{h.surface}」属于同时提到的「{named[league]}」"
                if league in own:
                    return self._match(under[0], h, source, Basis.COUNTY_IN_LEAGUE, 1.0, reason)
                reason += "（见内容）" if source is Source.ADDRESS else "（见地址）"
                return self._match(under[0], h, source, Basis.COUNTY_IN_LEAGUE, 0.9, reason)
        for h in counties:
            if len(h.codes) == 1 and not h.weak:
                code = h.codes[0]
                if not own:
                    reason = f"「{h.surface}」在区内只指一处，未提盟市"
                    return self._match(code, h, source, Basis.COUNTY_UNIQUE, 0.9, reason)
                other = next(iter(own.values()))
                reason = f"「{h.surface}」只指一处，但提到的盟市是「{other}」，以旗县为准"
                return self._match(code, h, source, Basis.COUNTY_OTHER_LEAGUE, 0.6, reason)
        if own:
            code, surface = next(iter(own.items()))
            hit = _Hit(surface, (code,), False)
            if len(own) == 1:
                reason = f"只提到盟市「{surface}」"
                return self._match(code, hit, source, Basis.LEAGUE, 0.9, reason)
            reason = f"提到 {len(own)} 个盟市（{'、'.join(own.values())}），取第一个"
            return self._match(code, hit, source, Basis.LEAGUE, 0.7, reason)
        for h in counties if source is Source.ADDRESS else ():
            if len(h.codes) == 1:
                reason = f"「{h.surface}」区外也有同名地方，未提盟市，仅为推测"
                return self._match(h.codes[0], h, source, Basis.COUNTY_GUESS, 0.5, reason)
        return None

    def _match(
        self, code: str, hit: _Hit, source: Source, basis: Basis, confidence: float, reason: str
    ) -> RegionMatch:
        region = self._directory.regions[code]
        return RegionMatch(
            code, region.name, region.level, hit.surface, source, basis, confidence, reason
        )


def _read_table(
    directory: Directory, data: Mapping[str, Any], origin: str
) -> tuple[dict[str, _Name], set[str], dict[str, str], dict[str, str]]:
    """Check the alias table against the directory; every error names the entry."""

    def fail(message: str) -> NoReturn:
        raise GazetteerError(f"{origin}: {message}")

    def section(key: str, allowed: set[str] | None) -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            fail(f"[{key}] 应为表")
        if allowed is not None and set(value) - allowed:
            fail(f"[{key}] 中有未知项 {sorted(set(value) - allowed)}")
        return value

    def strings(key: str, value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            fail(f"{key} 应为非空字符串的列表")
        return list(value)

    if set(data) - {"aliases", "weak", "exclusions"}:
        fail(f"未知的表 {sorted(set(data) - {'aliases', 'weak', 'exclusions'})}")
    codes: dict[str, list[str]] = {}
    for region in directory.regions.values():
        if region.level is not Level.REGION:
            codes.setdefault(region.name, []).append(region.code)
    official = set(codes)
    for alias, value in section("aliases", None).items():
        targets = [value] if isinstance(value, str) else strings(f"aliases.{alias}", value)
        if alias in official:
            fail(f"aliases.{alias}: 与目录中的正式名称重复")
        if not targets or len(set(targets)) != len(targets):
            fail(f"aliases.{alias}: 区划代码为空或重复")
        for code in targets:
            target = directory.regions.get(code)
            if target is None:
                fail(f"aliases.{alias}: 目录中没有区划代码 {code}")
            if target.level is Level.REGION or (len(targets) > 1 and target.level is Level.CITY):
                fail(f"aliases.{alias}: 只能指盟市或旗县区，指多处时只能是旗县区")
        codes[alias] = targets
    weak = set(strings("weak.names", section("weak", {"names"}).get("names", [])))
    for name in sorted(weak):
        if name not in codes:
            fail(f"weak.names: {name} 既不是正式名称也不是别名")
        if any(directory.regions[c].level is not Level.COUNTY for c in codes[name]):
            fail(f"weak.names: {name} 不是旗县区")
    excl = section("exclusions", {"words", "not_followed_by", "not_preceded_by"})
    words = set(strings("exclusions.words", excl.get("words", [])))
    for word in sorted(words):
        if word in codes or not any(name in word for name in codes):
            fail(f"exclusions.words: {word} 应是包含地名的更长的词")
    after = _guards(excl, "not_followed_by", fail)
    before = _guards(excl, "not_preceded_by", fail)
    for key in after:
        if not any(name.endswith(key) for name in codes):
            fail(f"exclusions.not_followed_by.{key}: 没有以它结尾的地名")
    for key in before:
        if not any(name.startswith(key) for name in codes):
            fail(f"exclusions.not_preceded_by.{key}: 没有以它开头的地名")
    names = {n: _Name(tuple(c), n in weak) for n, c in codes.items()}
    return names, words, before, after


def _guards(
    section: Mapping[str, Any], key: str, fail: Callable[[str], NoReturn]
) -> dict[str, str]:
    table = section.get(key, {})
    if not isinstance(table, dict):
        fail(f"exclusions.{key} 应为表")
    for name, chars in table.items():
        if not isinstance(chars, str) or not chars:
            fail(f"exclusions.{key}.{name}: 应为非空字符串")
    return dict(table)


def _alternation(
    names: Collection[str],
    exclusions: Collection[str],
    before: Mapping[str, str],
    after: Mapping[str, str],
) -> re.Pattern[str]:
    """One regex over every name and exclusion, longest first: at each position the longest word
    wins (兴安盟 over 兴安, the exclusion 大兴安岭 over 兴安), and a guarded name fails where its
    neighbouring character makes it part of another word, letting a shorter name match instead
    (包头市场 finds 包头)."""
    parts = []
    for word in sorted({*names, *exclusions}, key=lambda w: (-len(w), w)):
        pattern = re.escape(word)
        if word in names:
            ahead = "".join(c for k, c in after.items() if word.endswith(k))
            behind = "".join(c for k, c in before.items() if word.startswith(k))
            if behind:  # after the first character, so the regex keeps its first-character scan
                first = re.escape(word[0])
                pattern = f"{first}(?<![{re.escape(behind)}]{first}){re.escape(word[1:])}"
            if ahead:
                pattern += f"(?![{re.escape(ahead)}])"
        parts.append(pattern)
    return re.compile("|".join(parts))
