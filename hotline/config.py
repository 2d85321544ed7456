"""Load config.toml plus HOTLINE__SECTION__KEY overrides into typed, validated settings."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from agent_ui.config import Open311Settings, PublicSettings
from kb.config import HotspotSettings, KbSettings, SearchSettings, SimilarSettings
from routing.config import RoutingSettings, SlaSettings
from telephony.config import SmsSettings, TelephonySettings
from tickets.config import StatsSettings

ENV_PREFIX = "HOTLINE__"
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = REPO_ROOT / "config.toml"


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8080
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 64 * 1024
    public_url: str = "http://127.0.0.1:8080"
    cookie_secure: bool = False
    access_log: bool = False
    # npm packages (ECharts, web fonts) installed by `make run` / `make test` with `npm ci`
    assets_dir: str = "node_modules"
    # reverse proxies whose X-Forwarded-For is believed (addresses or networks)
    trusted_proxies: list[str] = []
    # slow clients: a request body must arrive within body_timeout_s (else 408); a connection
    # that sends no complete request for keepalive_timeout_s is closed; one client address
    # may hold max_connections_per_address connections (trusted proxies: no cap); a stop waits
    # at most shutdown_timeout_s for requests in progress
    body_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10
    keepalive_timeout_s: Annotated[float, Field(gt=0, le=3600)] = 15
    max_connections_per_address: Annotated[int, Field(ge=1, le=100_000)] = 64
    shutdown_timeout_s: Annotated[float, Field(ge=0, le=600)] = 5
    # what this process runs (hotline serve --role): web (pages, API, console push), sip (the
    # call centre and its SIP worker pool), worker (triage, deadline watcher, search indexing,
    # SMS notices and sending, purges)
    roles: list[Literal["web", "sip", "worker"]] = ["web", "sip", "worker"]

    @field_validator("roles")
    @classmethod
    def _some_role(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("至少要有一个角色（web、sip、worker）")
        return list(dict.fromkeys(v))

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, v: list[str]) -> list[str]:
        for item in v:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"不是 IP 地址或网段: {item!r}") from None
        return v


class DatabaseSettings(_Section):
    url: str = "sqlite:///var/hotline.db"
    pool_size: Annotated[int, Field(ge=1, le=200)] = 8
    write_batch: Annotated[int, Field(ge=1, le=1000)] = 64
    echo: bool = False
    # PostgreSQL's JIT compilation of costly queries, for the platform's sessions (see
    # tickets/db.py: off is faster for the statistics' reads)
    postgres_jit: bool = False

    @field_validator("url")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        if not (v.startswith("sqlite://") or v.startswith("postgresql")):
            raise ValueError("只支持 sqlite:/// 或 postgresql+psycopg:// 地址")
        return v


class SecuritySettings(_Section):
    session_ttl_hours: Annotated[int, Field(ge=1, le=24 * 30)] = 12
    session_idle_minutes: Annotated[int, Field(ge=1, le=24 * 60)] = 60
    login_max_failures: Annotated[int, Field(ge=1, le=100)] = 5
    login_address_failures: Annotated[int, Field(ge=1, le=10_000)] = 20
    login_window_s: Annotated[int, Field(ge=1)] = 900
    login_first_delay_s: Annotated[float, Field(gt=0, le=3600)] = 30
    login_lockout_s: Annotated[int, Field(ge=1)] = 900
    password_min_length: Annotated[int, Field(ge=8, le=128)] = 10
    lookups_per_minute: Annotated[int, Field(ge=1, le=10_000)] = 20
    lookup_misses_per_number: Annotated[int, Field(ge=1, le=1000)] = 5
    lookup_miss_window_s: Annotated[int, Field(ge=60, le=86_400)] = 3600
    intake_per_hour: Annotated[int, Field(ge=1, le=100_000)] = 30
    limit_max_keys: Annotated[int, Field(ge=100, le=10_000_000)] = 100_000


class IntakeSettings(_Section):
    max_content_chars: Annotated[int, Field(ge=10, le=100_000)] = 4000
    max_summary_chars: Annotated[int, Field(ge=10, le=100_000)] = 2000
    max_reply_chars: Annotated[int, Field(ge=10, le=100_000)] = 8000
    max_name_chars: Annotated[int, Field(ge=1, le=200)] = 50
    max_address_chars: Annotated[int, Field(ge=1, le=1000)] = 200
    max_reason_chars: Annotated[int, Field(ge=1, le=10_000)] = 1000
    max_extension_days: Annotated[int, Field(ge=1, le=3650)] = 180
    page_size_max: Annotated[int, Field(ge=1, le=1000)] = 200


class LocaleSettings(_Section):
    timezone: str = "Asia/Shanghai"
    languages: list[Literal["zh-Hans", "mn-Mong"]] = ["zh-Hans", "mn-Mong"]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"未知时区 {v!r}") from exc
        return v


class TriageSettings(_Section):
    enabled: bool = True
    auto_dispatch: bool = True
    threshold: Annotated[float, Field(ge=0, le=1)] = 0.85
    model: str = "classifier/model"
    # processes that classify new orders (each loads the model); 0: a thread of the server
    workers: Annotated[int, Field(ge=0, le=32)] = 0


class AttachmentSettings(_Section):
    dir: str = "var/attachments"
    max_bytes: Annotated[int, Field(ge=1024, le=100 * 1024 * 1024)] = 10 * 1024 * 1024
    max_per_order: Annotated[int, Field(ge=1, le=100)] = 10
    max_per_request: Annotated[int, Field(ge=0, le=10)] = 3
    types: list[Literal["jpeg", "png", "pdf"]] = ["jpeg", "png", "pdf"]


class RetentionSettings(_Section):
    # finished (closed or merged) orders: the caller's identity and the request's details
    # replaced by a marker after this many years; call records' and SMS numbers too
    personal_data_years: Annotated[int, Field(ge=1, le=100)] = 5
    # finished orders' photos and documents (and any recording still kept) deleted after
    attachment_years: Annotated[int, Field(ge=1, le=100)] = 3
    # SMS message bodies (received and sent) replaced by a marker after
    sms_body_days: Annotated[int, Field(ge=1, le=36_500)] = 180
    # the access log (who read whose personal data) kept this long
    access_log_years: Annotated[int, Field(ge=1, le=100)] = 3


class RedisSettings(_Section):
    # redis://[:password@]host:port/db; empty: everything in this one process (the default)
    url: str = ""
    # key and channel prefix, so several platforms (or test runs) can share one Redis
    prefix: str = "hotline"
    # who is on duty (open consoles, signed-in agents): an entry whose process died goes from
    # the list within this many seconds; renewed every third of it
    presence_ttl_s: float = Field(default=60.0, ge=1.0, le=3600.0)


STAFF_ROLE_NAMES = ("agent", "dispatcher", "supervisor", "department", "manager", "admin")
StaffRoleName = Literal["agent", "dispatcher", "supervisor", "department", "manager", "admin"]
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


class SsoSettings(_Section):
    """OpenID Connect single sign-on for staff (off while `issuer` is empty)."""

    issuer: str = ""
    client_id: str = ""
    client_secret: str = ""
    scopes: list[str] = ["openid", "profile"]
    role_claim: str = "hotline_role"
    department_claim: str = "hotline_department"
    username_claim: str = "preferred_username"
    name_claim: str = "name"
    roles: dict[str, StaffRoleName] = {r: r for r in STAFF_ROLE_NAMES}  # type: ignore[misc]
    local_login: Literal["all", "admins", "none"] = "all"
    rp_logout: bool = True
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10
    clock_leeway_s: Annotated[int, Field(ge=0, le=600)] = 60
    login_timeout_s: Annotated[int, Field(ge=60, le=3600)] = 600

    @property
    def enabled(self) -> bool:
        return bool(self.issuer)

    @field_validator("issuer")
    @classmethod
    def _https_issuer(cls, v: str) -> str:
        if not v:
            return v
        if v.startswith("https://"):
            return v.rstrip("/")
        host = v.removeprefix("http://").split("/", 1)[0].rsplit(":", 1)[0]
        if v.startswith("http://") and (host in _LOOPBACK_HOSTS):
            return v.rstrip("/")  # an identity provider on this host (tests, a local proxy)
        raise ValueError("身份认证服务地址必须是 https://（本机 127.0.0.1 除外）")

    @model_validator(mode="after")
    def _complete(self) -> SsoSettings:
        if self.issuer and not self.client_id:
            raise ValueError("设置了 issuer 时必须设置 client_id")
        if "openid" not in self.scopes:
            raise ValueError("scopes 必须包含 openid")
        if self.local_login != "all" and not self.issuer:
            # nobody could log in at all: only an identity provider can stand in
            raise ValueError("local_login 只有在启用统一身份认证（设置 issuer）后才能限制")
        return self


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(_Section):
    server: ServerSettings = ServerSettings()
    database: DatabaseSettings = DatabaseSettings()
    security: SecuritySettings = SecuritySettings()
    intake: IntakeSettings = IntakeSettings()
    locale: LocaleSettings = LocaleSettings()
    log: LogSettings = LogSettings()
    redis: RedisSettings = RedisSettings()
    attachments: AttachmentSettings = AttachmentSettings()
    routing: RoutingSettings = RoutingSettings()
    triage: TriageSettings = TriageSettings()
    sla: SlaSettings = SlaSettings()
    telephony: TelephonySettings = TelephonySettings()
    sms: SmsSettings = SmsSettings()
    search: SearchSettings = SearchSettings()
    kb: KbSettings = KbSettings()
    similar: SimilarSettings = SimilarSettings()
    hotspots: HotspotSettings = HotspotSettings()
    stats: StatsSettings = StatsSettings()
    public: PublicSettings = PublicSettings()
    open311: Open311Settings = Open311Settings()
    sso: SsoSettings = SsoSettings()
    retention: RetentionSettings = RetentionSettings()
    # where relative paths in settings are resolved from (the config file's folder)
    base_dir: Path = REPO_ROOT

    def resolve(self, path: str | Path) -> Path:
        p = Path(path)
        return p if p.is_absolute() else self.base_dir / p

    @property
    def database_url(self) -> str:
        """The database URL with a relative SQLite path made absolute."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str(self.resolve(url[len(prefix) :]))
        return url


_STRINGS = (str, Path)


def _strip_annotated(tp: Any) -> Any:
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    return tp


def _declared_type(parts: list[str]) -> Any:
    """The annotation of the setting at `parts` (section, …, key), or None if unknown."""
    tp: Any = Settings
    for part in parts:
        tp = _strip_annotated(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(part)
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]  # a table's keys are free (contacts, prompts, …)
        else:
            return None
    return _strip_annotated(tp)


def _is_text(tp: Any) -> bool:
    """True if a setting of this type holds text only (str, str | None, Literal of str)."""
    tp = _strip_annotated(tp)
    if tp in _STRINGS:
        return True
    origin = get_origin(tp)
    if origin is Literal:
        return all(isinstance(v, str) for v in get_args(tp))
    if origin in (Union, UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        return bool(args) and all(_is_text(a) for a in args)
    return False


def _parse_env_value(raw: str, declared: Any = None) -> Any:
    """An override by the declared type of its setting: a text setting takes the raw string
    (sender numbers, passwords of digits stay text) unless it is a quoted TOML string; others
    read it as a TOML value (8081, true, ["a"]) when it is one, else as a string. A list of
    text turns numbers into text."""
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw
    if declared is not None and _is_text(declared):
        return value if isinstance(value, str) else raw  # '"08:00"' is a quoted string too
    if get_origin(declared) is list and isinstance(value, list):
        (item,) = get_args(declared) or (Any,)
        if _is_text(item):
            return [v if isinstance(v, str) else str(v) for v in value]
    return value


def _apply_env(data: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    """Merge overrides into `data`; returns dotted key → the variable that set it."""
    origin: dict[str, str] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if len(parts) < 2:
            raise ConfigError(f"环境变量 {name} 应为 HOTLINE__<SECTION>__<KEY> 形式")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"环境变量 {name}: {'.'.join(parts[:-1])} 不是一个配置节")
            node = child
        node[parts[-1]] = _parse_env_value(raw, _declared_type(parts))
        origin[".".join(parts)] = name
    return origin


def _format_errors(exc: ValidationError, source: str, origin: dict[str, str]) -> str:
    lines = [f"配置错误 ({source}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        var = next((v for k, v in origin.items() if key == k or key.startswith(k + ".")), None)
        if var is not None:
            key = f"{key} (环境变量 {var})"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "未知配置项 (unknown key)"
        elif err["type"] == "missing":
            msg = "缺少必填项 (missing)"
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


def load_settings(
    path: str | Path | None = None, environ: dict[str, str] | None = None
) -> Settings:
    """Read the TOML file, apply environment overrides, validate; raise ConfigError naming keys."""
    cfg_path = Path(path) if path else DEFAULT_CONFIG
    env = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = {}
    if cfg_path.exists():
        try:
            data = tomllib.loads(cfg_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"配置文件 {cfg_path} 不是合法的 TOML: {exc}") from exc
    elif path is not None:
        raise ConfigError(f"配置文件不存在: {cfg_path}")
    origin = _apply_env(data, env)
    data.setdefault("base_dir", str(cfg_path.resolve().parent))
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, str(cfg_path), origin)) from None
