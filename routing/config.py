"""Settings sections owned by routing: the directory file, contacts and the time-limit policy."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExtraDepartment(_Section):
    code: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z_.-]{1,63}$")]
    name: Annotated[str, Field(min_length=2, max_length=100)]
    region: Annotated[str, Field(pattern=r"^\d{6}$")]
    sms: str = ""


class DispatchRule(_Section):
    """Requests of `category` in a region (at `level`, or at any level) go to that region's
    department of `department_type`."""

    # a first-level class of the taxonomy, or "first/second"
    category: Annotated[str, Field(pattern=r"^[^/\s]+(/[^/\s]+)?$", max_length=60)]
    # "region" (自治区), "city" (盟市) or "county" (旗县区); left out: any level
    level: Literal["region", "city", "county"] | None = None
    # a [[department_types]] key of the directory
    department_type: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


def _rule(category: str, department_type: str, level: str | None = None) -> DispatchRule:
    return DispatchRule.model_validate(
        {"category": category, "department_type": department_type, "level": level}
    )


DEFAULT_DISPATCH: tuple[DispatchRule, ...] = (
    _rule("交通运输", "transport"),
    _rule("党务政务", "gov"),
    _rule("农村农业", "agri"),
    _rule("农村农业/林业管理", "nature"),  # 林业和草原局, under 自然资源
    _rule("农村农业/草原草场", "nature"),
    _rule("农村农业/野生资源管理", "nature"),
    _rule("农村农业/水利水电", "water"),
    _rule("农村农业/水库移民", "water"),
    _rule("农村农业/村务管理", "civil"),  # 村民自治
    _rule("劳动和社会保障", "hrss"),
    _rule("卫生计生", "health"),
    _rule("卫生计生/食品药品监管", "market"),
    _rule("商贸旅游", "market"),
    _rule("商贸旅游/旅游管理", "culture"),
    _rule("国土资源", "nature"),
    _rule("国土资源/海洋气象地震", "emergency"),
    _rule("城乡建设", "housing"),
    _rule("城乡建设/城市建设和市政管理", "urban"),
    _rule("城乡建设/城市建设和市政管理", "housing", "region"),  # no 城管 at the regional level
    _rule("城乡建设/安全生产", "emergency"),
    _rule("城乡建设/城乡规划", "nature"),
    _rule("城乡建设/集体土地上房屋拆迁与补偿", "nature"),
    _rule("政法", "police"),
    _rule("政法/法律服务", "gov"),  # 司法局 is not in the directory yet
    _rule("政法/法制建设", "gov"),
    _rule("政法/行政复议", "gov"),
    _rule("政法/仲裁与调解", "gov"),
    _rule("政法/诉讼", "gov"),
    _rule("政法/刑罚执行", "gov"),
    _rule("教育文体", "education"),
    _rule("教育文体/文化", "culture"),
    _rule("教育文体/体育", "culture"),
    _rule("教育文体/文物管理", "culture"),
    _rule("民政", "civil"),
    _rule("环境保护", "ecology"),
    _rule("科技与信息产业", "gov"),
    _rule("科技与信息产业/知识产权", "market"),
    _rule("纪检监察", "gov"),
    _rule("经济管理", "gov"),
    _rule("经济管理/金融财税", "tax"),
    _rule("经济管理/安全生产", "emergency"),
)


class RoutingSettings(_Section):
    directory: str = "routing/directory.toml"
    # department code -> SMS contact number for dispatch / warning notices
    contacts: dict[str, str] = {}
    extra_departments: list[ExtraDepartment] = []
    # names people write for leagues and banners besides the directory's (region detection)
    aliases: str = "routing/aliases.toml"
    # category × region level → department type; checked against the directory at start-up
    dispatch: list[DispatchRule] = list(DEFAULT_DISPATCH)


class SlaSettings(_Section):
    workday_start: str = "08:30"
    workday_end: str = "17:30"
    workdays: Annotated[list[Annotated[int, Field(ge=1, le=7)]], Field(min_length=1)] = [
        1,
        2,
        3,
        4,
        5,
    ]
    # additions to the public-holiday calendar (chinesecalendar package): days off, and 调休
    # make-up working days, e.g. for a year the installed package does not know yet
    holidays: list[date] = []
    makeup_workdays: list[date] = []
    sign_working_hours: Annotated[float, Field(gt=0, le=240)] = 2
    reply_working_days: dict[str, Annotated[int, Field(ge=1, le=365)]] = {
        "consult": 2,
        "help": 10,
        "suggestion": 10,
        "complaint": 15,
        "report": 15,
        "praise": 10,
        "other": 10,
    }
    urgent_hours: Annotated[float, Field(gt=0, le=720)] = 24
    emergency_hours: Annotated[float, Field(gt=0, le=720)] = 2
    urgent_sign_minutes: Annotated[int, Field(ge=1, le=1440)] = 60
    emergency_sign_minutes: Annotated[int, Field(ge=1, le=1440)] = 15
    warn_ratio: Annotated[float, Field(gt=0, lt=1)] = 0.8
    revisit_working_days: Annotated[int, Field(ge=1, le=60)] = 3
    watch_interval_s: Annotated[float, Field(gt=0, le=3600)] = 30
    watch_batch: Annotated[int, Field(ge=1, le=100_000)] = 500

    @field_validator("workday_start", "workday_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("时间应为 HH:MM 格式")
        return v

    @field_validator("workday_end")
    @classmethod
    def _after_start(cls, v: str, info: ValidationInfo) -> str:
        start = info.data.get("workday_start")
        if start is not None and v <= start:  # "HH:MM" strings sort as times
            raise ValueError("workday_end 必须晚于 workday_start")
        return v

    @field_validator("reply_working_days")
    @classmethod
    def _all_kinds(cls, v: dict[str, int]) -> dict[str, int]:
        kinds = {"consult", "help", "suggestion", "complaint", "report", "praise", "other"}
        unknown = set(v) - kinds
        if unknown:
            raise ValueError(f"未知诉求类型 {sorted(unknown)}")
        missing = kinds - set(v)
        if missing:
            raise ValueError(f"缺少诉求类型 {sorted(missing)}")
        return v
