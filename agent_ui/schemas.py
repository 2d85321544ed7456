"""Request bodies of the JSON API: strict pydantic models (unknown fields are errors)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from tickets.model import Caller, Channel, Kind, NewTicket, Satisfaction, Urgency

Lang = Literal["zh-Hans", "mn-Mong"]
# generous caps here stop absurd bodies early; the precise limits from config are enforced by
# the service, which names the field and the limit in its error
Text = Annotated[str, Field(max_length=100_000)]
Short = Annotated[str, Field(max_length=500)]
Version = Annotated[int, Field(ge=1, description="工单当前版本号（乐观锁）")]
DeptCode = Annotated[str, Field(min_length=1, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Login(Strict):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class CitizenRequest(Strict):
    """市民网上提交诉求."""

    content: Text
    phone: Short | None = None
    name: Short | None = None
    address: Short | None = None
    region: Annotated[str, Field(pattern=r"^\d{6}$")] | None = None
    language: Lang = "zh-Hans"
    title: Short | None = None
    kind: Kind | None = None
    confidential: bool = False

    def to_new_ticket(self) -> NewTicket:
        return NewTicket(
            channel=Channel.WEB,
            content=self.content,
            caller=Caller(self.name, self.phone, self.confidential),
            kind=self.kind or Kind.OTHER,
            title=self.title,
            region=self.region,
            address=self.address,
            language=self.language,
        )


class Rating(Strict):
    """市民评价答复."""

    phone: Short
    satisfaction: Satisfaction
    note: Short | None = None
    resolved: bool | None = Field(None, description="问题是否已解决（解决率）")


class StaffTicket(Strict):
    """话务员登记工单 (电话 / 来访 / 代录)."""

    channel: Channel = Channel.PHONE
    content: Text
    summary: Text | None = None
    title: Short | None = None
    kind: Kind = Kind.OTHER
    urgency: Urgency = Urgency.NORMAL
    category: list[Annotated[str, Field(max_length=50)]] = []
    region: Annotated[str, Field(pattern=r"^\d{6}$")] | None = None
    address: Short | None = None
    name: Short | None = None
    phone: Short | None = None
    confidential: bool = False
    language: Lang = "zh-Hans"

    def to_new_ticket(self) -> NewTicket:
        return NewTicket(
            channel=self.channel,
            content=self.content,
            caller=Caller(self.name, self.phone, self.confidential),
            kind=self.kind,
            urgency=self.urgency,
            title=self.title,
            summary=self.summary,
            category=tuple(self.category),
            region=self.region,
            address=self.address,
            language=self.language,
        )


class Versioned(Strict):
    version: Version


class AnswerBody(Versioned):
    text: Text


class DispatchBody(Versioned):
    lead: DeptCode
    assists: Annotated[list[DeptCode], Field(max_length=20)] = []
    note: Short | None = None


class ReasonBody(Versioned):
    reason: Text


class NoteBody(Versioned):
    note: Short | None = None


class ForwardBody(Versioned):
    department: DeptCode
    note: Short | None = None


class ExtensionBody(Versioned):
    until: datetime
    reason: Text


class DecisionBody(Versioned):
    reason: Short | None = None


class ReplyBody(Versioned):
    text: Text


class RevisitBody(Versioned):
    satisfaction: Satisfaction
    note: Short | None = None
    resolved: bool | None = Field(None, description="市民认为问题是否已解决（解决率）")


class MergeBody(Versioned):
    master: Annotated[str, Field(pattern=r"^\d{14}$", description="主工单编号")]


class EditBody(Versioned):
    summary: Text | None = None
    title: Short | None = None
    kind: Kind | None = None
    urgency: Urgency | None = None
    category: list[Annotated[str, Field(max_length=50)]] | None = None
    region: Annotated[str, Field(pattern=r"^\d{6}$")] | None = None
    address: Short | None = None


class AgentLogin(Strict):
    """坐席签入: the SIP address the queue rings (desk phone or softphone)."""

    uri: Annotated[str, Field(min_length=5, max_length=200, pattern=r"^sips?:[^\s<>\"]+$")]


class AgentState(Strict):
    state: Literal["available", "paused", "wrapup"]
    reason: Short | None = None


class OutboundCall(Strict):
    purpose: Literal["callback", "survey"]


class SmsWebhook(Strict):
    """云短信平台上行消息."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)  # providers add fields
    sender: Annotated[str, Field(alias="from", min_length=1, max_length=32)]
    to: Annotated[str, Field(max_length=32)] = ""
    text: Annotated[str, Field(max_length=20_000)]
    id: Annotated[str, Field(max_length=100)] | None = None


class BlockNumber(Strict):
    phone: Short
    reason: Annotated[str, Field(min_length=1, max_length=200)]
