"""Settings of the statistics ([stats] in config.toml): indicator weights and the ranking."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tickets.indicators import BY_KEY, DEFAULT_WEIGHTS


class StatsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # weight of each indicator in the composite score (0 leaves it out)
    weights: dict[str, Annotated[float, Field(ge=0, le=1000)]] = dict(DEFAULT_WEIGHTS)
    # a department needs this many tasks in the period to be ranked
    min_assigned: Annotated[int, Field(ge=1, le=100_000)] = 5
    # the ranking on the page shows this many best and this many worst departments
    ranking_shown: Annotated[int, Field(ge=1, le=500)] = 10
    # months of each shown department's score trend (sparkline)
    trend_months: Annotated[int, Field(ge=0, le=24)] = 6
    # the public monthly table lists departments with at least this many measured replies
    public_min_replies: Annotated[int, Field(ge=1, le=100_000)] = 3

    @field_validator("weights")
    @classmethod
    def _known_indicators(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(BY_KEY))
        if unknown:
            raise ValueError(f"未知指标 {unknown}（可选: {', '.join(BY_KEY)}）")
        if not any(w > 0 for w in v.values()):
            raise ValueError("至少一个指标的权重须大于 0")
        return v
