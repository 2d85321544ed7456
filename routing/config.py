"""Settings sections owned by routing: the directory file, contacts and the time-limit policy."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExtraDepartment(_Section):
    code: Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z_.-]{1,63}$")]
    name: Annotated[str, Field(min_length=2, max_length=100)]
    region: Annotated[str, Field(pattern=r"^\d{6}$")]
    sms: str = ""


class RoutingSettings(_Section):
    directory: str = "routing/directory.toml"
    # department code -> SMS contact number for dispatch / warning notices
    contacts: dict[str, str] = {}
    extra_departments: list[ExtraDepartment] = []


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
