"""Settings: config.toml loads, HOTLINE__SECTION__KEY overrides it, wrong values are refused with
the key named, and the file stays fully commented and complete."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from hotline.config import DEFAULT_CONFIG, REPO_ROOT, ConfigError, Settings, load_settings

CONFIG_TEXT = DEFAULT_CONFIG.read_text(encoding="utf-8")


def load(**env: str) -> Settings:
    return load_settings(DEFAULT_CONFIG, environ={f"HOTLINE__{k}": v for k, v in env.items()})


# -- loading ----------------------------------------------------------------------------------
def test_config_toml_loads_with_the_documented_defaults() -> None:
    s = load_settings(DEFAULT_CONFIG, environ={})
    assert (s.server.host, s.server.port) == ("127.0.0.1", 8080)
    assert s.server.max_body_bytes == 64 * 1024
    assert s.database.url == "sqlite:///var/hotline.db"
    assert s.database_url == f"sqlite:///{REPO_ROOT / 'var' / 'hotline.db'}"
    assert s.locale.timezone == "Asia/Shanghai"
    assert s.sla.reply_working_days["complaint"] == 15
    assert s.base_dir == REPO_ROOT
    # the file and the code agree, so a key left out of a custom file means the same thing
    assert s.model_dump(exclude={"base_dir"}) == Settings().model_dump(exclude={"base_dir"})


def test_load_settings_default_path_is_config_toml() -> None:
    assert load_settings(environ={}) == load_settings(DEFAULT_CONFIG, environ={})


def test_relative_paths_resolve_from_the_config_files_folder(tmp_path: Path) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text('[database]\nurl = "sqlite:///data/h.db"\n', encoding="utf-8")
    s = load_settings(cfg, environ={})
    assert s.database_url == f"sqlite:///{tmp_path / 'data' / 'h.db'}"
    assert s.server.port == 8080  # keys left out keep their defaults


@pytest.mark.parametrize(
    ("env", "path", "expected"),
    [
        ({"SERVER__PORT": "8081"}, "server.port", 8081),
        ({"SERVER__HOST": "0.0.0.0"}, "server.host", "0.0.0.0"),
        ({"SERVER__COOKIE_SECURE": "true"}, "server.cookie_secure", True),
        ({"SERVER__ACCESS_LOG": "false"}, "server.access_log", False),
        ({"LOCALE__LANGUAGES": '["zh-Hans"]'}, "locale.languages", ["zh-Hans"]),
        ({"SLA__WORKDAYS": "[1, 2, 3, 4, 5, 6]"}, "sla.workdays", [1, 2, 3, 4, 5, 6]),
        ({"SLA__WARN_RATIO": "0.75"}, "sla.warn_ratio", 0.75),
        ({"SLA__WORKDAY_START": "09:00"}, "sla.workday_start", "09:00"),
        ({"LOG__LEVEL": "DEBUG"}, "log.level", "DEBUG"),
        ({"LOCALE__TIMEZONE": "Asia/Urumqi"}, "locale.timezone", "Asia/Urumqi"),
        (
            {"DATABASE__URL": "postgresql+psycopg://hotline@127.0.0.1:5432/hotline"},
            "database.url",
            "postgresql+psycopg://hotline@127.0.0.1:5432/hotline",
        ),
        (
            {"SLA__REPLY_WORKING_DAYS__CONSULT": "3"},
            "sla.reply_working_days",
            {
                "consult": 3,
                "help": 10,
                "suggestion": 10,
                "complaint": 15,
                "report": 15,
                "praise": 10,
                "other": 10,
            },
        ),
    ],
)
def test_env_override_is_typed(env: dict[str, str], path: str, expected: Any) -> None:
    value: Any = load(**env)
    for part in path.split("."):
        value = getattr(value, part)
    assert value == expected
    assert type(value) is type(expected)


def _text_settings(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every setting whose declared type is text (str, str | None, Literal of strings)."""
    from hotline.config import _is_text, _strip_annotated

    out: list[tuple[str, ...]] = []
    for name, field in model.model_fields.items():
        tp = _strip_annotated(field.annotation)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            out += _text_settings(tp, (*prefix, name))
        elif _is_text(tp):
            out.append((*prefix, name))
    return out


TEXT_SETTINGS = [p for p in _text_settings(Settings) if p != ("base_dir",)]


def test_text_settings_are_found() -> None:
    assert ("sms", "sender") in TEXT_SETTINGS
    assert ("sms", "password") in TEXT_SETTINGS
    assert ("server", "host") in TEXT_SETTINGS
    assert ("server", "port") not in TEXT_SETTINGS


@pytest.mark.parametrize("path", TEXT_SETTINGS, ids=".".join)
def test_env_override_of_digits_stays_text_for_every_text_setting(path: tuple[str, ...]) -> None:
    """HOTLINE__SMS__SENDER=12345 is the text "12345", never the TOML integer 12345."""
    name = "HOTLINE__" + "__".join(p.upper() for p in path)
    try:
        s = load_settings(DEFAULT_CONFIG, environ={name: "12345"})
    except ConfigError as exc:
        # a setting with its own rule (a URL, a time of day, a level) may refuse digits, but
        # with its own message, never "not a string"
        assert "valid string" not in str(exc), str(exc)
        assert name in str(exc)
        return
    value: Any = s
    for part in path:
        value = getattr(value, part)
    assert value == "12345"


@pytest.mark.parametrize(
    ("env", "path", "expected"),
    [
        ({"SMS__SUPERVISOR_PHONES": "[13800000000]"}, "sms.supervisor_phones", ["13800000000"]),
        ({"TELEPHONY__NUMBERS": '[12345, "96345"]'}, "telephony.numbers", ["12345", "96345"]),
        (
            {"ROUTING__CONTACTS__150100-HOUSING": "13800000000"},
            "routing.contacts",
            {"150100-housing": "13800000000"},
        ),
        ({"SMS__PASSWORD": "0012"}, "sms.password", "0012"),
        ({"SMS__QUIET_FROM": '"00:00"'}, "sms.quiet_from", "00:00"),  # a quoted TOML string
    ],
)
def test_env_override_of_digits_in_lists_and_tables_stays_text(
    env: dict[str, str], path: str, expected: Any
) -> None:
    value: Any = load(**env)
    for part in path.split("."):
        value = getattr(value, part)
    assert value == expected


def test_sso_settings_for_a_provider() -> None:
    s = load(
        SSO__ISSUER="https://id.example.gov.cn/realms/hotline/",
        SSO__CLIENT_ID="hotline",
        SSO__CLIENT_SECRET="0123",
        SSO__LOCAL_LOGIN="admins",
        SSO__ROLES__HOTLINE_DEPT_STAFF="department",
    )
    assert s.sso.enabled and s.sso.issuer == "https://id.example.gov.cn/realms/hotline"
    assert s.sso.client_secret == "0123"  # digits stay text
    assert s.sso.roles["hotline_dept_staff"] == "department"
    assert not load().sso.enabled
    assert load(SSO__ISSUER="http://127.0.0.1:8180/realms/h", SSO__CLIENT_ID="h").sso.enabled


def test_env_overrides_the_file(tmp_path: Path) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text("[server]\nport = 9000\n", encoding="utf-8")
    assert load_settings(cfg, environ={}).server.port == 9000
    assert load_settings(cfg, environ={"HOTLINE__SERVER__PORT": "9001"}).server.port == 9001


def test_other_environment_variables_are_ignored() -> None:
    s = load_settings(
        DEFAULT_CONFIG,
        environ={"HOTLINE_SERVER_PORT": "1", "SERVER__PORT": "2", "PATH": "/usr/bin"},
    )
    assert s.server.port == 8080


# -- wrong values name the key ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SERVER__PORT": "abc"}, "server.port"),
        ({"SERVER__PORT": "70000"}, "server.port"),
        ({"SERVER__PORT": "0"}, "server.port"),
        ({"SERVER__PORT": "80.5"}, "server.port"),
        ({"SERVER__COOKIE_SECURE": "maybe"}, "server.cookie_secure"),
        ({"SERVER__MAX_BODY_BYTES": "10"}, "server.max_body_bytes"),
        ({"SERVER__BOGUS": "1"}, "server.bogus"),
        ({"NOPE__KEY": "1"}, "nope"),
        ({"SERVER__PORT__DEEPER": "1"}, "server.port"),
        ({"DATABASE__URL": "mysql://root@127.0.0.1/hotline"}, "database.url"),
        ({"SECURITY__LOGIN_MAX_FAILURES": "0"}, "security.login_max_failures"),
        ({"INTAKE__MAX_CONTENT_CHARS": "-1"}, "intake.max_content_chars"),
        ({"LOCALE__TIMEZONE": "Mars/Olympus_Mons"}, "locale.timezone"),
        ({"LOCALE__LANGUAGES": '["en"]'}, "locale.languages"),
        ({"LOG__LEVEL": "TRACE"}, "log.level"),
        ({"SLA__WORKDAY_START": "25:00"}, "sla.workday_start"),
        ({"SLA__WORKDAY_START": "8:30"}, "sla.workday_start"),
        ({"SLA__WORKDAY_START": "morning"}, "sla.workday_start"),
        ({"SLA__WORKDAYS": "[0, 1]"}, "sla.workdays"),
        ({"SLA__WARN_RATIO": "1.5"}, "sla.warn_ratio"),
        ({"SLA__REPLY_WORKING_DAYS__CONSULT": "0"}, "sla.reply_working_days"),
        ({"SLA__REPLY_WORKING_DAYS__BOGUS": "3"}, "sla.reply_working_days"),
        ({"SECURITY__SESSION_IDLE_MINUTES": "0"}, "security.session_idle_minutes"),
        # an identity provider over plain http (only loopback may), or half configured
        ({"SSO__ISSUER": "http://id.example.org/realms/h", "SSO__CLIENT_ID": "h"}, "sso.issuer"),
        ({"SSO__ISSUER": "ftp://id.example.org/realms/h", "SSO__CLIENT_ID": "h"}, "sso.issuer"),
        ({"SSO__ISSUER": "https://id.example.org/realms/h"}, "client_id"),
        (
            {"SSO__ISSUER": "https://id.example.org/r", "SSO__CLIENT_ID": "h", "SSO__SCOPES": "[]"},
            "openid",
        ),
        # passwords restricted without an identity provider: nobody could log in
        ({"SSO__LOCAL_LOGIN": "admins"}, "local_login"),
        ({"SSO__LOCAL_LOGIN": "some"}, "sso.local_login"),
        ({"SSO__ROLES__BOSS": "root"}, "sso.roles"),
    ],
)
def test_wrong_env_value_raises_config_error_naming_key(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**env)
    assert key in str(info.value)


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"SLA__WORKDAY_END": "08:00"}, "sla.workday_end"),  # before workday_start 08:30
        ({"SLA__WORKDAYS": "[]"}, "sla.workdays"),  # no working day: no deadline can be computed
    ],
)
def test_inconsistent_working_time_raises_config_error(env: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(**env)
    assert key in str(info.value)


def test_env_error_names_the_variable_not_the_file() -> None:
    """The operator must look at the environment, not at a config.toml that is fine."""
    with pytest.raises(ConfigError) as info:
        load(SERVER__PORT="abc")
    assert "HOTLINE__SERVER__PORT" in str(info.value)


def test_env_without_section_raises_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        load(PORT="8081")
    assert "HOTLINE__PORT" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[server]\nbogus = 1\n", "server.bogus"),
        ("[nope]\nkey = 1\n", "nope"),
        ('[server]\nport = "abc"\n', "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ('[locale]\ntimezone = "Nowhere/City"\n', "locale.timezone"),
        ('[sla]\nworkday_start = "8am"\n', "sla.workday_start"),
        ("server = 1\n", "server"),
    ],
)
def test_wrong_file_value_raises_config_error_naming_key(
    tmp_path: Path, text: str, key: str
) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert key in str(info.value)


def test_invalid_toml_raises_config_error_naming_file(tmp_path: Path) -> None:
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[server\nport = \n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert str(cfg) in str(info.value)


def test_missing_config_file_raises_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(missing, environ={})
    assert str(missing) in str(info.value)


# -- config.toml stays complete and commented -------------------------------------------------
_KEY = re.compile(r"""^\s*("[^"]*"|[A-Za-z0-9_\-]+)\s*=""")


def _inline_comment(line: str) -> bool:
    """A `#` outside double-quoted strings."""
    in_string = False
    for i, ch in enumerate(line):
        if ch == '"' and (i == 0 or line[i - 1] != "\\"):
            in_string = not in_string
        elif ch == "#" and not in_string:
            return True
    return False


def undocumented_keys(text: str) -> list[str]:
    """Keys that have neither an inline comment nor a comment line above their group of keys."""
    lines = text.splitlines()
    section = ""
    missing = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped.strip("[]")
            continue
        m = _KEY.match(line)
        if not m or stripped.startswith("#"):
            continue
        if _inline_comment(line):
            continue
        j = i - 1
        while j >= 0 and _KEY.match(lines[j]) and not lines[j].strip().startswith("#"):
            j -= 1  # a group of related keys shares the comment above it
        if j < 0 or not lines[j].strip().startswith("#"):
            missing.append(f"{section}.{m.group(1).strip(chr(34))}")
    return missing


def test_undocumented_keys_checker_finds_keys_without_comment() -> None:
    text = '[a]\n# about x and y\nx = 1\ny = 2\n\nz = 3  # about z\n[b]\nw = "#"\n'
    assert undocumented_keys(text) == ["b.w"]


def test_every_key_in_config_toml_is_commented() -> None:
    assert undocumented_keys(CONFIG_TEXT) == []


def _field_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += _field_paths(ann, path + ".")
        else:
            out.append(path)
    return out


def test_every_setting_appears_in_config_toml() -> None:
    data = tomllib.loads(CONFIG_TEXT)
    missing = []
    for path in _field_paths(Settings):
        if path == "base_dir":  # derived from where the file is, not a setting
            continue
        node: Any = data
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        # optional tables may appear as a commented example, e.g. [[routing.extra_departments]]
        if node is None and path not in CONFIG_TEXT:
            missing.append(path)
    assert missing == []
