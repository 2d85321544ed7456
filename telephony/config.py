"""The [telephony] settings: SIP workers, IVR menu and prompts, queue, voicemail, recording."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

MIN_LINK_TOKEN = 16
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
_DIGITS = re.compile(r"^[0-9*#]$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MenuEntry(_Section):
    """One key of the main menu: `queue` puts the caller in line for an agent (the order kind
    comes from `kind`), `status` reads out a work order's state, `agent` queues without a kind."""

    key: Annotated[str, Field(pattern=r"^[0-9*#]$")]
    action: Literal["queue", "status", "agent"]
    kind: Literal["consult", "help", "complaint", "report", "suggestion", "praise", "other"] = (
        "other"
    )


DEFAULT_MENU: tuple[MenuEntry, ...] = (
    MenuEntry(key="1", action="queue", kind="consult"),
    MenuEntry(key="2", action="queue", kind="complaint"),
    MenuEntry(key="3", action="status"),
    MenuEntry(key="0", action="agent"),
)

# Prompt texts (Mandarin); `hotline telephony prompts` turns them into WAV files with espeak-ng.
# Keys are file names under prompts_dir/<language>/. Digits and status phrases are added by
# telephony/prompts.py from 0–9 and the work-order status labels.
DEFAULT_PROMPTS: dict[str, str] = {
    "welcome": "您好，这里是12345政务服务便民热线。普通话请按1，蒙古语请按2。",
    "menu": "政策咨询请按1，投诉举报请按2，查询工单办理情况请按3，人工服务请按0。",
    "invalid": "您的输入有误，请重新选择。",
    "no_input": "没有收到您的按键。",
    "status_enter": "请输入14位工单编号，以井号键结束。",
    "status_is": "您查询的工单当前状态是：",
    "status_unknown": "没有查到与您来电号码对应的这个工单，请核对编号。",
    "queue_enter": "正在为您转接话务员，请稍候。",
    "queue_ahead": "您前面还有",
    "queue_callers": "位来电在等候。",
    "queue_wait": "话务员正忙，请继续等候。",
    "voicemail": "话务员暂时无法接听，请在提示音后留言，说完请按井号键。",
    "closed": "现在是非工作时间，请在提示音后留言，说完请按井号键，我们会尽快回复。",
    "voicemail_saved": "您的留言已记录，工单编号是",
    "goodbye": "感谢您的来电，再见。",
    "survey": (
        "这里是12345热线回访。对您反映问题的办理结果，满意请按1，基本满意请按2，不满意请按3。"
    ),
    "survey_thanks": "感谢您的评价，再见。",
    "callback": "这里是12345热线，正在为您回拨，请稍候。",
}


class WebRtcSettings(_Section):
    """The browser softphone: agents take calls in the page over WebRTC to an aiortc peer inside
    the SIP worker that holds the call (telephony/webrtc.py)."""

    enabled: bool = True
    # Addresses the worker gathers ICE candidates on and offers to browsers (agents' browsers
    # must reach one of them), and the UDP ports it may bind for them (one per browser call).
    addresses: list[Annotated[str, Field(min_length=1, max_length=64)]] = ["127.0.0.1"]
    port_min: Annotated[int, Field(ge=1024, le=65535)] = 40000
    port_max: Annotated[int, Field(ge=1024, le=65535)] = 40999
    # STUN/TURN servers for the worker and the browsers, e.g. "stun:stun.example.gov.cn:3478";
    # empty: host candidates only (no public STUN server is ever asked by default).
    ice_servers: list[Annotated[str, Field(pattern=r"^(stun|turns?):[^\s]{1,250}$")]] = []
    # Codecs offered to browsers, cheapest first (G.711: no transcoding to the SIP side).
    codecs: list[Literal["PCMA", "PCMU"]] = ["PCMA", "PCMU"]
    # Browser → call: frames (20 ms) held before playing into the call; absorbs the two clocks
    # and scheduling on a busy machine (fewer glitched under load at 6 than at 3).
    jitter_frames: Annotated[int, Field(ge=1, le=50)] = 6
    # Seconds from the agent's click on 接听 until audio flows; then the caller goes back.
    answer_timeout_s: Annotated[float, Field(gt=0, le=120)] = 20
    # Seconds an agent stays signed in after the page's socket closes: a reload or a dropped
    # connection that comes back within this keeps the agent's state (and a ringing call); and
    # seconds a talking agent whose browser audio went stays in the call for the page to come
    # back with a new offer (telephony/room.py).
    reconnect_grace_s: Annotated[float, Field(ge=0, le=300)] = 15

    @model_validator(mode="after")
    def _ports(self) -> WebRtcSettings:
        if self.port_min > self.port_max:
            raise ValueError("port_min 应不大于 port_max")
        if not self.codecs:
            raise ValueError("codecs 不能为空")
        return self


_PHONE_TARGET = re.compile(
    r"^(sips?:[A-Za-z0-9._~+-]{1,64}@[A-Za-z0-9.:\[\]-]{1,260}|[0-9+*#]{2,32})$"
)


class TelephonySettings(_Section):
    enabled: bool = True
    # Where SIP is answered (UDP and TCP). With one worker it listens here itself; with more,
    # the workers take worker_base_port, worker_base_port+1, … and Kamailio takes this port.
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 5060
    transports: list[Literal["udp", "tcp"]] = ["udp", "tcp"]
    workers: Annotated[int, Field(ge=1, le=500)] = 1
    # the number of this host's first worker: each host running `hotline telephony workers`
    # against the same call centres takes its own range (host B: 100 …), so no two workers
    # share a number; ports are counted from the host's first worker
    first_worker: Annotated[int, Field(ge=0, le=100_000)] = 0
    worker_base_port: Annotated[int, Field(ge=1, le=65535)] = 5070
    # RTP ports: each worker takes rtp_ports_per_worker ports from rtp_base_port on.
    rtp_base_port: Annotated[int, Field(ge=1024, le=65000)] = 20000
    rtp_ports_per_worker: Annotated[int, Field(ge=8, le=1000)] = 40
    # Numbers (request-URI user part) this hotline answers; others get 404. Empty: any.
    numbers: list[Annotated[str, Field(pattern=r"^[0-9A-Za-z+*#._-]{1,32}$")]] = ["12345"]
    # The SIP worker waits up to this long for SIP events before serving its other work (ms).
    pump_interval_ms: Annotated[int, Field(ge=1, le=100)] = 20
    # INVITEs per second a worker accepts from one source address; more are refused with 503.
    max_invites_per_s: Annotated[int, Field(ge=1, le=10_000)] = 50
    # Callers one worker takes (it holds 4 calls; a caller talking to an agent needs 2):
    # 2 = every caller can always be put through; up to 4 for IVR-only traffic.
    callers_per_worker: Annotated[int, Field(ge=1, le=4)] = 2
    # Real-time priority (SCHED_RR, 1–99) for every thread of each SIP worker, so that other
    # work on the machine cannot delay call audio; 0: normal scheduling. Needs CAP_SYS_NICE or
    # an RLIMIT_RTPRIO at least this high (systemd: LimitRTPRIO=); without it, a warning.
    realtime_priority: Annotated[int, Field(ge=0, le=99)] = 10
    # Hosts agents' phones may be on (the SIP address an agent signs in with): the queue and
    # call-backs dial these addresses, so they must be the centre's own phones or registrar.
    agent_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = ["127.0.0.1"]

    # IVR: seconds to wait for the first key, retries before an agent takes over.
    digit_timeout_s: Annotated[float, Field(gt=0, le=60)] = 6
    menu_retries: Annotated[int, Field(ge=0, le=5)] = 2
    language_keys: dict[str, Literal["cmn", "mn"]] = {"1": "cmn", "2": "mn"}
    menu: list[MenuEntry] = list(DEFAULT_MENU)

    # Queue: after queue_timeout_s without an agent the caller goes to voicemail; position and
    # wait are announced every announce_every_s; an agent's phone rings ring_agent_s before the
    # next agent is tried; after a call the agent is in wrap-up for wrapup_s.
    queue_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60
    announce_every_s: Annotated[float, Field(gt=0, le=600)] = 30
    ring_agent_s: Annotated[float, Field(gt=0, le=120)] = 15
    wrapup_s: Annotated[float, Field(ge=0, le=3600)] = 30
    # Agents take calls in these local hours (24:00 = midnight); outside them → voicemail.
    open_from: str = "00:00"
    open_until: str = "24:00"
    # Closed on public holidays and weekends per the [sla] calendar (a 24-hour hotline: false).
    closed_on_rest_days: bool = False

    # Voicemail: at most voicemail_max_s seconds; # ends it.
    voicemail_max_s: Annotated[float, Field(gt=0, le=600)] = 120

    # Files: generated prompts (and operators' Mongolian recordings), call recordings, and the
    # spool where voicemails wait until they are work orders.
    prompts_dir: str = "var/prompts"
    recordings_dir: str = "var/recordings"
    spool_dir: str = "var/spool"
    recording_retention_days: Annotated[int, Field(ge=1, le=3650)] = 180
    prompts: dict[str, str] = dict(DEFAULT_PROMPTS)

    # Outbound calls (voicemail call-back, 回访 survey) go to this SIP URI template, {number}
    # being the work order's phone number. Empty: outbound calls are disabled.
    trunk: str = ""
    caller_id: Annotated[str, Field(pattern=r"^[0-9A-Za-z+*#._-]{1,32}$")] = "12345"
    # Kamailio (hotline telephony kamailio-config): where its files go.
    kamailio_dir: str = "var/kamailio"
    # Kamailio's flood guard (pike): more than kamailio_pike_requests requests from one
    # address within 2 s and that address is ignored until it slows down (the workers' own
    # guard stays as a second line).
    kamailio_pike_requests: Annotated[int, Field(ge=2, le=100_000)] = 30
    # Addresses or networks (CIDR) whose traffic the flood guard does not count: the carrier's
    # trunk or SBC, which brings every caller of the region from one or two addresses (hundreds
    # of requests in 2 s at a busy hour), and other gateways of the centre's own. The workers'
    # own guard still applies to them.
    kamailio_trusted: list[Annotated[str, Field(min_length=1, max_length=64)]] = []
    # Standby (several call-centre processes): the SIP workers run under `hotline telephony
    # workers` (a unit of their own, so they outlive a call centre) and link to whichever
    # centre is active, trying `centres` (every `--role sip` process's link address, host:port)
    # in turn. The active one holds a Redis lease ([redis] url is required) and writes the queue
    # and agent state through to Redis; the others wait and take over within centre_lease_s of
    # its death. []: one call-centre process that starts its own workers (the default).
    centres: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9.\[\]:-]{1,260}:\d{1,5}$")]] = []
    # This process's link address in that mode (reachable from the workers' hosts).
    link_host: str = "127.0.0.1"
    link_port: Annotated[int, Field(ge=1, le=65535)] = 5170
    # The workers' shared secret on the link (HOTLINE__TELEPHONY__LINK_TOKEN); with `centres`
    # it is required. Without: a new random one per start (the workers are the process's own).
    link_token: str = ""
    centre_lease_s: Annotated[float, Field(ge=2, le=300)] = 10
    # The browser softphone (WebRTC).
    webrtc: WebRtcSettings = WebRtcSettings()
    # Department phones for three-way calls (三方通话) from the softphone: department code →
    # a SIP address, or a number dialled through `trunk`. Agents pick a department, never a number.
    department_phones: dict[str, str] = {}

    @field_validator("open_from", "open_until")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v):
            raise ValueError("时间应为 HH:MM（24:00 表示午夜）")
        return v

    @field_validator("language_keys")
    @classmethod
    def _language_keys(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not _DIGITS.match(key):
                raise ValueError(f"按键 {key!r} 不是 0–9、* 或 #")
        if "cmn" not in v.values():
            raise ValueError("至少要有一个按键选择普通话 (cmn)")
        return v

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: dict[str, str]) -> dict[str, str]:
        missing = sorted(set(DEFAULT_PROMPTS) - set(v))
        if missing:
            raise ValueError(f"缺少提示音文字: {', '.join(missing)}")
        for key in v:
            if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", key):
                raise ValueError(f"提示音名 {key!r} 只能用小写字母、数字和下划线")
        return v

    @field_validator("trunk")
    @classmethod
    def _trunk(cls, v: str) -> str:
        if v and (not v.startswith(("sip:", "sips:")) or "{number}" not in v):
            raise ValueError("trunk 应为含 {number} 的 SIP 地址，例如 sip:{number}@10.0.0.1:5060")
        return v

    @field_validator("kamailio_trusted")
    @classmethod
    def _kamailio_trusted(cls, v: list[str]) -> list[str]:
        nets = []
        for item in v:
            try:
                nets.append(str(ipaddress.ip_network(item.strip(), strict=False)))
            except ValueError:
                raise ValueError(
                    f"kamailio_trusted: {item!r} 不是 IP 地址或网段（如 10.1.2.3、10.1.0.0/16）"
                ) from None
        return nets

    @field_validator("department_phones")
    @classmethod
    def _department_phones(cls, v: dict[str, str]) -> dict[str, str]:
        for code, target in v.items():
            if not _PHONE_TARGET.match(target):
                raise ValueError(f"department_phones.{code}: 应为 sip:用户@主机 或电话号码")
        return v

    @model_validator(mode="after")
    def _menu_keys(self) -> TelephonySettings:
        keys = [m.key for m in self.menu]
        if len(set(keys)) != len(keys):
            raise ValueError("menu 中有重复的按键")
        if not self.menu:
            raise ValueError("menu 不能为空")
        if self.open_from >= self.open_until:
            raise ValueError("open_from 应早于 open_until")
        if self.centres and len(self.link_token) < MIN_LINK_TOKEN:
            raise ValueError(
                f"telephony.centres 需要 link_token（至少 {MIN_LINK_TOKEN} 个字符，"
                "放在环境变量 HOTLINE__TELEPHONY__LINK_TOKEN）"
            )
        last_worker_port = self.worker_base_port + self.workers - 1
        if self.workers > 1 and self.worker_base_port <= self.port <= last_worker_port:
            raise ValueError("worker_base_port 起的端口段不能包含 port")
        return self

    @property
    def worker_indexes(self) -> range:
        """The numbers of this host's workers."""
        return range(self.first_worker, self.first_worker + self.workers)

    def worker_port(self, index: int) -> int:
        """SIP port of worker `index` (the only worker answers on `port` itself)."""
        if self.workers == 1:
            return self.port
        return self.worker_base_port + index - self.first_worker

    def rtp_port(self, index: int) -> int:
        return self.rtp_base_port + (index - self.first_worker) * self.rtp_ports_per_worker

    def department_uri(self, code: str) -> str | None:
        """The SIP address a three-way call to this department dials (None: none set)."""
        target = self.department_phones.get(code)
        if target is None:
            return None
        if target.startswith(("sip:", "sips:")):
            return target
        return self.trunk.format(number=target) if self.trunk else None


# SMS texts (templates). {number} work-order number, {link} the citizen's tracking page,
# {title} the order's title or its first words, {due} a deadline (local time), {clock} which
# time limit (签收 / 办结 / 回访), {department} the department's name; ack_folded (several
# acknowledgements to one number in one text): {count} orders, {numbers} their numbers (the
# first ack_fold_max_numbers, then "等N件").
DEFAULT_SMS_TEMPLATES: dict[str, str] = {
    "ack": "【12345热线】您的诉求已受理，工单编号{number}。查询进度：{link}",
    "ack_folded": (
        "【12345热线】您近期提交的{count}件诉求均已受理，工单编号{numbers}。查询进度：{link}"
    ),
    "supplement": "【12345热线】您的补充内容已记入工单{number}。",
    "dispatch": "【12345热线】新工单{number}已派至{department}：{title}。请在{due}前签收。",
    "warning": "【12345热线】工单{number}的{clock}时限将于{due}到期，请抓紧办理。",
    "overdue": "【12345热线】工单{number}的{clock}已超期（时限{due}），已转督办。",
    "reply": "【12345热线】您的工单{number}已答复，请查看并评价：{link}",
    "survey": (
        "【12345热线】请评价工单{number}的办理结果：回复1满意，2基本满意，3不满意。回复TD退订。"
    ),
    "survey_thanks": "【12345热线】感谢您的评价。",
    "stopped": "【12345热线】您已退订回访短信。",
}
# Mongolian (traditional script) for citizens who chose it; to be checked by a native speaker.
DEFAULT_SMS_TEMPLATES_MN: dict[str, str] = {
    "ack": "【12345】ᠲᠠᠨ ᠤ ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠢ ᠬᠦᠯᠢᠶᠡᠨ ᠠᠪᠤᠯ᠎ᠠ᠃ ᠳ᠋ᠤᠭᠠᠷ: {number} {link}",
    "ack_folded": "【12345】ᠲᠠᠨ ᠤ {count} ᠭᠤᠶᠤᠴᠢᠯᠠᠯ ᠢ ᠬᠦᠯᠢᠶᠡᠨ ᠠᠪᠤᠯ᠎ᠠ᠃ ᠳ᠋ᠤᠭᠠᠷ: {numbers} {link}",
    "supplement": "【12345】ᠨᠡᠮᠡᠯᠲᠡ ᠶᠢ {number} ᠳ᠋ᠤ ᠪᠢᠴᠢᠪᠡ᠃",
    "reply": "【12345】{number} ᠳ᠋ᠤ ᠬᠠᠷᠢᠭᠤ ᠦᠭᠬᠦᠯᠡ᠃ {link}",
    "survey": "【12345】{number}: 1 ᠰᠡᠳᠬᠢᠯ ᠳ᠋ᠤ ᠨᠢᠴᠤᠭᠤᠯᠤᠨ᠎ᠠ, 2 ᠳᠤᠮᠳᠠ, 3 ᠨᠡᠶᠢᠴᠡᠬᠦ ᠦᠭᠡᠢ᠃ TD",
    "survey_thanks": "【12345】ᠪᠠᠶᠠᠷᠯᠠᠯ᠎ᠠ᠃",
    "stopped": "【12345】ᠴᠠᠭᠠᠰᠢ ᠢᠯᠡᠭᠡᠬᠦ ᠦᠭᠡᠢ᠃",
}


# A token Kannel must present on every MO and delivery-report call (backend = "kannel").
MIN_GATEWAY_TOKEN = 16

SMS_PLACEHOLDERS = ("number", "link", "title", "department", "due", "clock", "count", "numbers")


def _check_placeholders(templates: dict[str, str]) -> dict[str, str]:
    """A typo in a placeholder must stop start-up, not fail each message at send time."""
    for key, text in templates.items():
        try:
            text.format(**dict.fromkeys(SMS_PLACEHOLDERS, ""))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"短信模板 {key} 的占位符无效: {exc}") from None
    return templates


class SmsSettings(_Section):
    # outbox: messages are kept and shown (GET /api/v1/sms/outbox), nothing is sent;
    # kannel: sent through Kannel's sendsms interface.
    backend: Literal["outbox", "kannel"] = "outbox"
    sendsms_url: str = "http://127.0.0.1:13013/cgi-bin/sendsms"
    username: str = ""
    password: str = ""  # set it in the environment: HOTLINE__SMS__PASSWORD
    sender: Annotated[str, Field(pattern=r"^[0-9A-Za-z+]{1,20}$")] = "12345"
    # Where Kannel reports deliveries; empty: server.public_url + /api/v1/sms/dlr.
    dlr_url: str = ""
    # HMAC-SHA256 key of the generic JSON webhook (POST /api/v1/sms/webhook); empty: disabled.
    webhook_secret: str = ""
    # A webhook request's X-Timestamp may differ from the platform's clock by this much
    # (seconds); older or later ones are refused, and each signature is taken once.
    webhook_window_s: Annotated[float, Field(ge=10, le=3600)] = 300
    # Kannel's MO and delivery-report calls are accepted only from these addresses, and, when
    # gateway_token is set, only with &token=<it> in the URL (letters, digits, . _ ~ -). With
    # backend = "kannel" the token is required: an address alone is no proof (a reverse proxy
    # or any other local process shares it).
    gateway_addresses: list[str] = ["127.0.0.1", "::1"]
    gateway_token: Annotated[
        str, Field(pattern=r"^[A-Za-z0-9._~-]{0,128}$", validate_default=True)
    ] = ""
    max_text_chars: Annotated[int, Field(ge=70, le=10_000)] = 1000
    per_number_per_hour: Annotated[int, Field(ge=1, le=10_000)] = 20
    # Acknowledgements to one number: at most one text per ack_window_s seconds (0: no folding);
    # the ones due meanwhile are folded into one text listing up to ack_fold_max_numbers numbers.
    ack_window_s: Annotated[float, Field(ge=0, le=86_400)] = 600
    ack_fold_max_numbers: Annotated[int, Field(ge=1, le=30)] = 10
    # Citizen-facing texts to one number within 24 hours; more are kept as "limited", not sent.
    citizen_texts_per_day: Annotated[int, Field(ge=1, le=10_000)] = 20
    quiet_from: str = "21:30"
    quiet_until: str = "08:00"
    send_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10
    retry_base_s: Annotated[float, Field(gt=0, le=3600)] = 5
    retry_max_s: Annotated[float, Field(gt=0, le=86_400)] = 600
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 100
    poll_interval_s: Annotated[float, Field(gt=0, le=60)] = 1
    survey_days: Annotated[int, Field(ge=1, le=90)] = 7
    # No longer used (notices are jobs of the durable work queue; nothing to catch up at
    # start); accepted so that config files which set it still load.
    catch_up_hours: Annotated[float, Field(ge=0, le=24 * 30)] = 24
    supervisor_phones: list[Annotated[str, Field(pattern=r"^1\d{10}$")]] = []
    templates: dict[str, str] = dict(DEFAULT_SMS_TEMPLATES)
    templates_mn: dict[str, str] = dict(DEFAULT_SMS_TEMPLATES_MN)

    @field_validator("quiet_from", "quiet_until")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        if not _HHMM.match(v) or v == "24:00":
            raise ValueError("时间应为 HH:MM")
        return v

    @field_validator("gateway_token")
    @classmethod
    def _token_for_kannel(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("backend") == "kannel" and len(v) < MIN_GATEWAY_TOKEN:
            raise ValueError(
                f'backend = "kannel" 时必须设置 sms.gateway_token（至少 {MIN_GATEWAY_TOKEN} 个'
                "字符，仅字母、数字和 . _ ~ -），建议放在环境变量 HOTLINE__SMS__GATEWAY_TOKEN；"
                "hotline telephony kannel-config 会把它写进 Kannel 的 get-url"
            )
        return v

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: dict[str, str]) -> dict[str, str]:
        missing = sorted(set(DEFAULT_SMS_TEMPLATES) - set(v))
        if missing:
            raise ValueError(f"缺少短信模板: {', '.join(missing)}")
        return _check_placeholders(v)

    @field_validator("templates_mn")
    @classmethod
    def _templates_mn(cls, v: dict[str, str]) -> dict[str, str]:
        return _check_placeholders(v)

    @model_validator(mode="after")
    def _kannel_needs(self) -> SmsSettings:
        if self.backend == "kannel" and not self.sendsms_url.startswith(("http://", "https://")):
            raise ValueError("backend = kannel 需要 sendsms_url（http://…/cgi-bin/sendsms）")
        return self
