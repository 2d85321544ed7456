"""The `hotline` command: user management in-process, and boot tests of `hotline serve` as a real
subprocess (starts, serves, stops cleanly on SIGTERM; --demo prints working logins)."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_ui.accounts import Accounts
from hotline.app import load_routing
from hotline.cli import main
from hotline.config import load_settings
from hotline.db import open_database
from hotline.demo import DEMO_PASSWORD, DEMO_USERS
from tests.hotline_server import Server

HOTLINE = Path(sys.executable).with_name("hotline")
BOOT_TIMEOUT_S = 90  # generous: a cold start on a loaded CI machine; never asserted as a speed
STOP_TIMEOUT_S = 30


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HOTLINE__* overrides from the environment the tests run in."""
    for name in list(os.environ):
        if name.startswith("HOTLINE__"):
            monkeypatch.delenv(name)


@pytest.fixture
def cli_env(clean_env: None, monkeypatch: pytest.MonkeyPatch, db_url: str) -> str:
    """The CLI reads its settings from os.environ: point it at this test's database only."""
    monkeypatch.setenv("HOTLINE__DATABASE__URL", db_url)
    return db_url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def run_with_stdin(
    capsys: pytest.CaptureFixture[str], stdin: str, *argv: str
) -> tuple[int, str, str]:
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return run(capsys, *argv)
    finally:
        sys.stdin = saved


def add_user(
    capsys: pytest.CaptureFixture[str], *extra: str, password: str = "secret-pass-1"
) -> tuple[int, str, str]:
    """`hotline user add … --password-stdin`, the password on standard input, as a script
    would do it (--password shows in the process list)."""
    if "--password" in extra:
        return run(capsys, "user", "add", *extra)
    return run_with_stdin(capsys, password + "\n", "user", "add", "--password-stdin", *extra)


def can_log_in(username: str, password: str) -> bool:
    settings = load_settings()
    db = open_database(settings)
    try:
        accounts = Accounts(db, load_routing(settings))
        _, session = asyncio.run(accounts.login(username, password, "test"))
        return session.user.username == username
    finally:
        db.close()


# -- user add ---------------------------------------------------------------------------------
def test_user_add_creates_users_that_can_log_in(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = add_user(capsys, "--username", "wangna", "--role", "agent", "--name", "王娜")
    assert (code, err) == (0, "")
    assert "已创建用户 wangna" in out
    code, out, err = add_user(
        capsys,
        "--username",
        "hhht-housing",
        "--role",
        "department",
        "--department",
        "150100-housing",
    )
    assert (code, err) == (0, "")
    code, out, _ = run(capsys, "user", "list")
    assert code == 0
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[1:3] for r in rows] == [
        ["wangna", "agent"],
        ["hhht-housing", "department 150100-housing"],
    ]
    assert rows[0][3] == "王娜"
    assert can_log_in("wangna", "secret-pass-1")
    assert can_log_in("hhht-housing", "secret-pass-1")


@pytest.mark.parametrize("role", ["agent", "dispatcher", "supervisor", "manager", "admin"])
def test_user_add_every_staff_role(
    cli_env: str, capsys: pytest.CaptureFixture[str], role: str
) -> None:
    code, out, _ = add_user(capsys, "--username", f"u-{role}", "--role", role)
    assert code == 0
    assert f"（{role}，" in out


def test_user_add_duplicate_username_exits_1(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert add_user(capsys, "--username", "lina", "--role", "agent")[0] == 0
    code, out, err = add_user(capsys, "--username", "lina", "--role", "dispatcher")
    assert code == 1
    assert out == ""
    assert "用户名 lina 已存在" in err
    _, listing, _ = run(capsys, "user", "list")
    assert [line.split("\t")[1:3] for line in listing.splitlines()] == [["lina", "agent"]]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--role", "department"], "必须指定 --department"),
        (["--role", "department", "--department", "999999-nowhere"], "未知承办单位"),
        (["--role", "agent", "--department", "150100-housing"], "只有承办单位账号"),
        (["--role", "agent", "--password", "short"], "密码至少10位"),
        (["--role", "agent", "--password", "1234567890"], "太容易被猜到"),
        (["--role", "agent", "--password", "passwordpassword"], "太容易被猜到"),
        (["--role", "agent", "--password", "zhaogang-2026!"], "不能包含用户名"),
        (["--role", "agent", "--password", "x" * 257], "不能超过256位"),
    ],
)
def test_user_add_invalid_input_exits_1_in_chinese(
    cli_env: str, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code, out, err = add_user(capsys, "--username", "zhaogang", *extra)
    assert code == 1
    assert out == ""
    assert message in err
    assert run(capsys, "user", "list")[1] == ""


def test_user_add_bad_username_exits_1(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = add_user(capsys, "--username", "a b", "--role", "agent")
    assert code == 1
    assert "用户名" in err


@pytest.mark.parametrize("role", ["boss", "citizen", "system", "AGENT"])
def test_user_add_unknown_role_exits_2(
    cli_env: str, capsys: pytest.CaptureFixture[str], role: str
) -> None:
    code, out, err = add_user(capsys, "--username", "zhaogang", "--role", role)
    assert code == 2
    assert out == ""
    assert "角色" in err
    assert run(capsys, "user", "list")[1] == ""


def test_user_add_without_a_password_and_no_terminal_exits_2(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_with_stdin(
        capsys, "", "user", "add", "--username", "xiaoli", "--role", "agent"
    )
    assert code == 2
    assert "--password-stdin" in err
    assert run(capsys, "user", "list")[1] == ""


def test_user_add_password_option_warns_it_is_visible(
    cli_env: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--username", "lina", "--role", "agent", "--password", "secret-pass-1"]
    code, _, err = add_user(capsys, *argv)
    assert code == 0
    assert "进程列表" in err  # kept for scripts, with a warning
    assert can_log_in("lina", "secret-pass-1")


def test_user_add_prompts_twice_on_a_terminal(
    cli_env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["typed-secret-9", "typed-secret-9", "typed-secret-9", "other-secret-9"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    code, out, _ = run(capsys, "user", "add", "--username", "lina", "--role", "agent")
    assert code == 0 and "已创建用户 lina" in out
    assert can_log_in("lina", "typed-secret-9")
    code, _, err = run(capsys, "user", "add", "--username", "wangna", "--role", "agent")
    assert code == 2 and "不一致" in err


def test_user_passwd_changes_the_password(cli_env: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert add_user(capsys, "--username", "lina", "--role", "agent")[0] == 0
    code, _, _ = run_with_stdin(
        capsys, "new-pass-22\n", "user", "passwd", "--username", "lina", "--password-stdin"
    )
    assert code == 0
    assert can_log_in("lina", "new-pass-22")
    code, _, err = run_with_stdin(
        capsys, "new-pass-22\n", "user", "passwd", "--username", "nobody", "--password-stdin"
    )
    assert code == 1
    assert "不存在" in err


# -- wrong configuration ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "argv",
    [
        ["user", "list"],
        ["user", "add", "--username", "lina", "--password", "secret-pass-1", "--role", "agent"],
        ["db", "upgrade"],
        ["serve"],
    ],
    ids=["user-list", "user-add", "db-upgrade", "serve"],
)
def test_wrong_config_value_exits_2_naming_the_key(
    clean_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
) -> None:
    monkeypatch.setenv("HOTLINE__SERVER__PORT", "abc")
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "server.port" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("where", ["before", "after"])
def test_missing_config_file_exits_2(
    clean_env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path, where: str
) -> None:
    missing = str(tmp_path / "nowhere.toml")
    argv = ["--config", missing, "user", "list"]
    if where == "after":
        argv = ["user", "list", "--config", missing]
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert missing in err


# -- boot tests: the real `hotline serve` process -------------------------------------------------
@pytest.fixture
def serve(tmp_path: Path, db_url: str) -> Iterator[Any]:
    started: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(tmp_path, db_url, *args)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


def test_serve_boots_serves_and_stops_on_sigterm(serve: Any) -> None:
    server: Server = serve()
    server.wait_ready()
    status, _, body = server.request(
        "POST", "/api/v1/requests", {"content": "小区路灯不亮", "phone": "13812345678"}
    )
    assert status == 201, body
    number = body["number"]
    status, _, tracked = server.request("GET", f"/api/v1/requests/{number}?phone=13812345678")
    assert (status, tracked["status"]) == (200, "new")
    assert server.stop() == 0, server.output()
    assert "Traceback" not in server.output()


def test_serve_demo_prints_logins_that_work(serve: Any) -> None:
    server: Server = serve("--demo")
    server.wait_ready()
    printed = server.stdout_path.read_text("utf-8")
    assert f"演示账号（密码均为 {DEMO_PASSWORD}）" in printed
    for username, role, _, _ in DEMO_USERS:
        assert any(line.split()[:2] == [username, role.value] for line in printed.splitlines()), (
            username
        )
    status, headers, body = server.request(
        "POST", "/api/v1/session", {"username": "dispatcher", "password": DEMO_PASSWORD}
    )
    assert status == 200, body
    assert body["user"]["role"] == "dispatcher"
    cookie = headers["Set-Cookie"].split(";", 1)[0]
    assert cookie.startswith("hotline_session=")
    status, _, listing = server.request("GET", "/api/v1/tickets", cookie=cookie)
    assert status == 200
    assert listing["total"] == 3
    assert server.stop() == 0, server.output()
    # a first run prints nothing untrue: the accounts exist before the "no account" hint
    # would look, and the seeding does not race the triage over the orders it dispatches
    out = server.output()
    assert "还没有任何工作人员账号" not in out, out
    assert "not done" not in out, out
    warnings = [ln for ln in out.splitlines() if " WARNING " in ln and "蒙古语提示音" not in ln]
    assert not warnings, out  # (Mongolian prompts are missing indeed: recordings come later)


def test_telephony_kamailio_config_writes_a_config_kamailio_accepts(
    clean_env: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from telephony.kamailio import check_config

    monkeypatch.setenv("HOTLINE__TELEPHONY__WORKERS", "3")
    code, out, err = run(capsys, "telephony", "kamailio-config", "--out", str(tmp_path))
    assert code == 0, err
    cfg, listing = (Path(line) for line in out.split())
    check_config(cfg)  # `kamailio -c` parses it
    assert listing.read_text().count("sip:127.0.0.1:") == 3


def test_telephony_kamailio_config_with_one_worker_explains_why_not(
    clean_env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "telephony", "kamailio-config", "--out", str(tmp_path))
    assert code == 1
    assert "telephony.workers" in err
    assert not list(tmp_path.iterdir())


def test_telephony_prompts_speaks_every_prompt(
    clean_env: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOTLINE__TELEPHONY__PROMPTS_DIR", str(tmp_path))
    code, out, err = run(capsys, "telephony", "prompts")
    assert code == 0, err
    assert (tmp_path / "cmn" / "welcome.wav").is_file()
    assert (tmp_path / "cmn" / "status_accepted.wav").is_file()
    code, out, _ = run(capsys, "telephony", "prompts")
    assert "生成 0 个" in out  # nothing changed: nothing regenerated


KANNEL_TOKEN = "k4nnel-token-of-the-test"


def test_kannel_config_command_puts_the_token_into_kannels_get_url(
    clean_env: None,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HOTLINE__SMS__BACKEND", "kannel")
    monkeypatch.setenv("HOTLINE__SMS__GATEWAY_TOKEN", KANNEL_TOKEN)
    monkeypatch.setenv("HOTLINE__SMS__USERNAME", "hotline")
    monkeypatch.setenv("HOTLINE__SMS__PASSWORD", "sendsms-secret")
    code, out, err = run(
        capsys, "telephony", "kannel-config", "--out", str(tmp_path), "--fake-smsc-port", "13999"
    )
    assert code == 0, err
    conf = Path(out.strip()).read_text("utf-8")
    (get_url,) = [ln for ln in conf.splitlines() if ln.startswith("get-url")]
    assert get_url == (
        'get-url = "http://127.0.0.1:8080/api/v1/sms/kannel?'
        f'from=%p&to=%P&text=%a&charset=%C&coding=%c&id=%I&token={KANNEL_TOKEN}"'
    )
    assert 'password = "sendsms-secret"' in conf


def test_kannel_config_command_without_a_token_says_which_key(
    clean_env: None, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "telephony", "kannel-config", "--out", str(tmp_path), "--fake-smsc-port", "13999"
    )
    assert code == 1
    assert "sms.gateway_token" in err
    assert not list(tmp_path.iterdir())
