"""The `hotline` command: serve, user management, database migrations, retention purge,
backup and restore."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hotline.config import ConfigError, Settings, load_settings
from tickets.errors import DomainError

if TYPE_CHECKING:
    from agent_ui.accounts import Accounts
    from tickets.db import Database


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(args.config)


def cmd_serve(args: argparse.Namespace) -> int:
    import ipaddress

    from agent_ui.server import ServeOptions, serve
    from hotline.app import make_app
    from hotline.demo import seed_demo

    settings = _settings(args)
    logging.basicConfig(
        level=settings.log.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    roles = _roles(args.role) if args.role else settings.server.roles
    if roles is None:
        print("错误: --role 取 web、sip、worker（可用逗号组合）或 all", file=sys.stderr)
        return 2
    app = make_app(settings, roles=roles)
    if args.demo:
        # before every background task (triage, SMS, the first-account hint) starts: the
        # demo's own dispatches do not race the triage, and the accounts exist when the hint
        # looks for them
        app.on_startup.insert(0, seed_demo)
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # optional speed-up
        pass
    srv = settings.server
    print(
        f"12345 热线平台已启动: http://{srv.host}:{srv.port}/ (数据库 {settings.database_url}；"
        f"角色 {'、'.join(ROLE_NAMES[r] for r in roles)}"
        f"{'；Redis ' + _redacted(settings.redis.url) if settings.redis.url else ''})",
        flush=True,
    )
    serve(
        app,
        ServeOptions(
            host=srv.host,
            port=srv.port,
            keepalive_timeout_s=srv.keepalive_timeout_s,
            shutdown_timeout_s=srv.shutdown_timeout_s,
            max_connections_per_address=srv.max_connections_per_address,
            uncapped=tuple(ipaddress.ip_network(p, strict=False) for p in srv.trusted_proxies),
            access_log=logging.getLogger("aiohttp.access") if srv.access_log else None,
        ),
    )
    return 0


ROLE_NAMES = {"web": "web（页面与接口）", "sip": "sip（呼叫中心）", "worker": "worker（后台任务）"}


def _roles(value: str) -> list[str] | None:
    """--role web|sip|worker|all, or several joined by commas (web,sip)."""
    parts = [p.strip() for p in value.split(",") if p.strip()]
    if parts == ["all"]:
        return list(ROLE_NAMES)
    if not parts or any(p not in ROLE_NAMES for p in parts):
        return None
    return list(dict.fromkeys(parts))


def _redacted(url: str) -> str:
    """A Redis URL fit for the log: its password hidden."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )
        return parts._replace(netloc=netloc).geturl()
    return url


def _accounts(settings: Settings) -> tuple[Database, Accounts]:
    from agent_ui.accounts import Accounts
    from hotline.app import load_routing
    from hotline.db import open_database

    db = open_database(settings)
    return db, Accounts(
        db, load_routing(settings), password_min_length=settings.security.password_min_length
    )


def _password(args: argparse.Namespace) -> str | None:
    """The new password: from --password-stdin (one line), an interactive prompt typed twice,
    or --password (visible in the process list and shell history: a warning says so)."""
    if args.password_stdin:
        line = sys.stdin.readline()
        return line.rstrip("\r\n") or None
    if args.password is not None:
        print(
            "警告: --password 会出现在进程列表和 shell 历史中；请改用 --password-stdin 或交互输入",
            file=sys.stderr,
        )
        return str(args.password)
    if not sys.stdin.isatty():
        print(
            "错误: 请用 --password-stdin 从标准输入提供密码，或在终端中运行以交互输入",
            file=sys.stderr,
        )
        return None
    first = getpass.getpass("新密码: ")
    if getpass.getpass("再次输入新密码: ") != first:
        print("错误: 两次输入的密码不一致", file=sys.stderr)
        return None
    return first


def _add_password_options(parser: argparse.ArgumentParser) -> None:
    how = parser.add_mutually_exclusive_group()
    how.add_argument(
        "--password-stdin", action="store_true", help="从标准输入读取密码（一行；推荐用于脚本）"
    )
    how.add_argument("--password", help="密码（不推荐：会出现在进程列表和 shell 历史中）")


def cmd_user_add(args: argparse.Namespace) -> int:
    from tickets.model import Role

    settings = _settings(args)
    db, accounts = _accounts(settings)
    try:
        from agent_ui.accounts import STAFF_ROLES

        if args.role not in {r.value for r in STAFF_ROLES}:
            allowed = ", ".join(r.value for r in STAFF_ROLES)
            print(f"错误: 未知角色 {args.role}（可选: {allowed}）", file=sys.stderr)
            return 2
        role = Role(args.role)
        password = _password(args)
        if password is None:
            return 2
        user = accounts.create_user_sync(args.username, password, role, args.department, args.name)
        print(f"已创建用户 {user.username}（{user.role.value}，ID {user.id}）")
        return 0
    finally:
        db.close()


def cmd_user_list(args: argparse.Namespace) -> int:
    db, accounts = _accounts(_settings(args))
    try:
        for u in accounts.list_users_sync():
            dept = f" {u.department}" if u.department else ""
            state = "" if u.active else " (停用)"
            print(f"{u.id}\t{u.username}\t{u.role.value}{dept}\t{u.display_name}{state}")
        return 0
    finally:
        db.close()


def cmd_user_passwd(args: argparse.Namespace) -> int:
    db, accounts = _accounts(_settings(args))
    try:
        password = _password(args)
        if password is None:
            return 2
        accounts.set_password_sync(args.username, password)
        print(f"已重设 {args.username} 的密码，并注销其所有会话")
        return 0
    finally:
        db.close()


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from hotline.db import open_database

    db = open_database(_settings(args))
    db.close()
    print("数据库已迁移到最新版本")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from hotline.db import open_database
    from hotline.maintenance import purge

    settings = _settings(args)
    db = open_database(settings)
    try:
        report = purge(settings, db, dry_run=args.dry_run)
    finally:
        db.close()
    print(json.dumps(report, ensure_ascii=False))
    return 0


def examples_from_db(args: argparse.Namespace) -> list[tuple[str, str]]:
    """The centre's own decisions (manual dispatch, re-dispatch, corrections) as
    (text, first-level category) pairs for `hotline classifier train --from-db`."""
    from hotline.db import open_database
    from tickets.store import list_examples

    db = open_database(_settings(args))
    try:
        rows = db.run_read(list_examples)
    finally:
        db.close()
    return [(text, category[0]) for text, category, _dept, _src in rows if category]


def cmd_telephony_prompts(args: argparse.Namespace) -> int:
    from telephony.prompts import PromptError, build_prompts

    settings = _settings(args)
    root = settings.resolve(settings.telephony.prompts_dir)
    try:
        report = build_prompts(settings.telephony, root)
    except PromptError as exc:
        print(f"错误: {exc}", file=sys.stderr)
        return 1
    print(
        f"提示音目录 {root / 'cmn'}: 生成 {len(report.generated)} 个，"
        f"未变 {len(report.unchanged)} 个（espeak-ng {report.espeak_version}）"
    )
    return 0


def cmd_telephony_workers(args: argparse.Namespace) -> int:
    import asyncio

    from hotline.centres import run_workers

    settings = _settings(args)
    logging.basicConfig(
        level=settings.log.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    return asyncio.run(run_workers(settings))


def cmd_telephony_kamailio(args: argparse.Namespace) -> int:
    from telephony.kamailio import write_kamailio_config

    settings = _settings(args)
    tel = settings.telephony
    if tel.workers < 2:
        print(
            "错误: 只有一个 SIP 工作进程时它直接监听 telephony.port，无需 Kamailio；"
            "请先把 telephony.workers 设为 2 以上",
            file=sys.stderr,
        )
        return 1
    out = Path(args.out) if args.out else settings.resolve(tel.kamailio_dir)
    for path in write_kamailio_config(tel, out):
        print(path)
    return 0


def cmd_telephony_kannel(args: argparse.Namespace) -> int:
    from urllib.parse import urlsplit

    from telephony.kannel import mo_url, write_kannel_config

    settings = _settings(args)
    sms = settings.sms
    missing = [
        key
        for key, value in (
            ("sms.gateway_token", sms.gateway_token),
            ("sms.username", sms.username),
            ("sms.password", sms.password),
        )
        if not value
    ]
    if missing:
        print(
            f"错误: 请先设置 {'、'.join(missing)}（Kannel 调用平台时带令牌，平台用用户名和"
            "密码调用 sendsms；秘密放在环境变量 HOTLINE__SMS__…）",
            file=sys.stderr,
        )
        return 1
    if args.smsc_group is None and args.fake_smsc_port is None:
        print(
            "错误: 请用 --smsc-group 给出运营商的 smsc 配置段（或测试用 --fake-smsc-port）",
            file=sys.stderr,
        )
        return 1
    try:
        smsc_group = Path(args.smsc_group).read_text("utf-8") if args.smsc_group else None
    except OSError as exc:
        print(f"错误: 读不到 smsc 配置段文件 {args.smsc_group}: {exc}", file=sys.stderr)
        return 1
    sendsms = urlsplit(sms.sendsms_url)
    host = settings.server.host if settings.server.host not in ("0.0.0.0", "::") else "127.0.0.1"
    platform = args.platform_url or f"http://{host}:{settings.server.port}"
    out = Path(args.out) if args.out else settings.resolve("var/kannel")
    path = write_kannel_config(
        out,
        bearerbox_admin_port=args.admin_port,
        smsbox_port=sendsms.port or 13013,
        smsbox_bearer_port=args.box_port,
        fake_smsc_port=args.fake_smsc_port,
        smsc_group=smsc_group,
        # every MO carries the token; delivery reports use the dlr-url of each sendsms request
        # (the platform's own, with its outbox id and the token), so no default one here
        sms_url=mo_url(platform, sms.gateway_token),
        dlr_url=None,
        username=sms.username,
        password=sms.password,
        sender=sms.sender,
        interface=sendsms.hostname or "127.0.0.1",
        allow_ip=sendsms.hostname or "127.0.0.1",
    )
    print(path)
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from hotline.backup import BackupError, backup, verify

    settings = _settings(args)
    try:
        if args.verify:
            manifest = verify(Path(args.verify))
            print(
                f"备份完整：{len(manifest['files'])} 个文件校验和一致（{manifest['created_at']}）"
            )
            return 0
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out = Path(args.out) if args.out else settings.resolve("var/backups") / stamp
        manifest = backup(settings, out, progress=lambda m: print(m, file=sys.stderr))
    except BackupError as exc:
        print(f"错误: {exc}", file=sys.stderr)
        return 1
    counts = "，".join(f"{k} {v}" for k, v in manifest["counts"].items())
    print(f"备份完成: {out}（{len(manifest['files'])} 个文件；{counts}）")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from hotline.backup import BackupError, restore

    settings = _settings(args)
    try:
        manifest = restore(
            settings,
            Path(args.source),
            force=args.force,
            progress=lambda m: print(m, file=sys.stderr),
        )
    except BackupError as exc:
        print(f"错误: {exc}", file=sys.stderr)
        return 1
    counts = "，".join(f"{k} {v}" for k, v in manifest["restored_counts"].items())
    print(f"恢复完成（备份于 {manifest['created_at']}）：{counts}")
    if settings.search.backend != "embedded":
        print("检索索引在 Elasticsearch 中：请运行 hotline search reindex 重建")
    return 0


def cmd_stats_rebuild(args: argparse.Namespace) -> int:
    """Recount the statistics aggregates from the orders (after a change of the indicators'
    definitions or of [locale] timezone). One transaction: readers see the old figures until it
    commits; writers wait, so run it while the platform is quiet or stopped."""
    import time
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from hotline.db import open_database
    from telephony import call_stats_store
    from tickets import stats_store

    settings = _settings(args)
    db = open_database(settings)
    tz = ZoneInfo(settings.locale.timezone)
    t0 = time.perf_counter()

    def tx(conn: Any) -> int:
        lo, hi = stats_store.id_bounds(conn)
        stats_store.clear(conn)
        call_stats_store.rebuild_calls(conn)
        done = 0
        for start in range(lo, hi + 1, args.batch):
            done += stats_store.rebuild_range(
                conn, start, start + args.batch, tz, datetime.now(UTC)
            )
            print(f"  {done:,} 张工单…", end="\r", file=sys.stderr, flush=True)
        return done

    try:
        done = db.run_write(tx)
    finally:
        db.close()
    print(f"统计汇总已重算：{done:,} 张工单，用时 {time.perf_counter() - t0:.1f} 秒")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hotline", description="12345 政务服务便民热线平台")
    p.add_argument("--config", help="配置文件路径（默认为仓库根目录的 config.toml）")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="启动平台")
    serve.add_argument("--config", default=argparse.SUPPRESS)
    serve.add_argument("--demo", action="store_true", help="写入演示用户、单位和工单并打印登录信息")
    serve.add_argument(
        "--role",
        help="本进程运行的部分: web（页面与接口）、sip（呼叫中心）、worker（后台任务），"
        "可用逗号组合，all 为全部（默认取 [server] roles）",
    )
    serve.set_defaults(fn=cmd_serve)

    user = sub.add_parser("user", help="用户管理").add_subparsers(dest="user_cmd", required=True)
    add = user.add_parser("add", help="添加用户")
    add.add_argument("--config", default=argparse.SUPPRESS)
    add.add_argument("--username", required=True)
    _add_password_options(add)
    add.add_argument(
        "--role",
        required=True,
        help="agent, dispatcher, supervisor, department, manager, admin",
    )
    add.add_argument("--department", help="承办单位代码（department 角色必填）")
    add.add_argument("--name", help="显示名称")
    add.set_defaults(fn=cmd_user_add)
    ls = user.add_parser("list", help="列出用户")
    ls.add_argument("--config", default=argparse.SUPPRESS)
    ls.set_defaults(fn=cmd_user_list)
    pw = user.add_parser("passwd", help="重设密码")
    pw.add_argument("--config", default=argparse.SUPPRESS)
    pw.add_argument("--username", required=True)
    _add_password_options(pw)
    pw.set_defaults(fn=cmd_user_passwd)

    from classifier.cli import add_subcommands

    add_subcommands(sub, extra_examples=examples_from_db)

    from hotline.cli_search import add_subcommands as add_search_subcommands

    add_search_subcommands(sub)

    tel = sub.add_parser("telephony", help="电话接入").add_subparsers(
        dest="telephony_cmd", required=True
    )
    pr = tel.add_parser("prompts", help="用 espeak-ng 生成（或更新）语音提示文件")
    pr.add_argument("--config", default=argparse.SUPPRESS)
    pr.set_defaults(fn=cmd_telephony_prompts)
    wk = tel.add_parser("workers", help="运行 SIP 工作进程（备用呼叫中心：telephony.centres）")
    wk.add_argument("--config", default=argparse.SUPPRESS)
    wk.set_defaults(fn=cmd_telephony_workers)
    kc = tel.add_parser("kamailio-config", help="生成 Kamailio 配置（多个 SIP 工作进程之前）")
    kc.add_argument("--config", default=argparse.SUPPRESS)
    kc.add_argument("--out", help="输出目录（默认 telephony.kamailio_dir）")
    kc.set_defaults(fn=cmd_telephony_kamailio)
    kn = tel.add_parser("kannel-config", help="生成 Kannel 配置（get-url 带 gateway_token）")
    kn.add_argument("--config", default=argparse.SUPPRESS)
    kn.add_argument("--out", help="输出目录（默认 var/kannel）")
    kn.add_argument("--platform-url", help="Kannel 访问平台的地址（默认 http://server.host:port）")
    kn.add_argument("--smsc-group", help="运营商 smsc 配置段所在的文件（smpp 等）")
    kn.add_argument("--fake-smsc-port", type=int, help="测试用：Kannel 自带的假 SMSC 端口")
    kn.add_argument("--admin-port", type=int, default=13000, help="bearerbox 管理端口")
    kn.add_argument("--box-port", type=int, default=13001, help="smsbox 与 bearerbox 之间的端口")
    kn.set_defaults(fn=cmd_telephony_kannel)

    stats = sub.add_parser("stats", help="统计").add_subparsers(dest="stats_cmd", required=True)
    rb = stats.add_parser("rebuild", help="从工单重算统计汇总（指标定义或时区变更后）")
    rb.add_argument("--config", default=argparse.SUPPRESS)
    rb.add_argument("--batch", type=int, default=5000, help="每批读取的工单数")
    rb.set_defaults(fn=cmd_stats_rebuild)
    pu = sub.add_parser("purge", help="按 [retention] 保存期限清除个人信息、录音、附件和短信内容")
    pu.add_argument("--config", default=argparse.SUPPRESS)
    pu.add_argument("--dry-run", action="store_true", help="只统计将清除的内容，不改动任何数据")
    pu.set_defaults(fn=cmd_purge)

    bk = sub.add_parser("backup", help="备份数据库、录音、附件和检索索引（带校验和）")
    bk.add_argument("--config", default=argparse.SUPPRESS)
    bk.add_argument("--out", help="备份目录（默认 var/backups/<UTC 时间>，不能已存在）")
    bk.add_argument("--verify", metavar="DIR", help="只校验已有备份的完整性")
    bk.set_defaults(fn=cmd_backup)
    rs = sub.add_parser("restore", help="从备份恢复（先校验；目标须为空，除非 --force）")
    rs.add_argument("--config", default=argparse.SUPPRESS)
    rs.add_argument("source", help="hotline backup 写出的目录")
    rs.add_argument("--force", action="store_true", help="目标已有数据时仍然覆盖")
    rs.set_defaults(fn=cmd_restore)

    db = sub.add_parser("db", help="数据库").add_subparsers(dest="db_cmd", required=True)
    up = db.add_parser("upgrade", help="执行迁移")
    up.add_argument("--config", default=argparse.SUPPRESS)
    up.set_defaults(fn=cmd_db_upgrade)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except DomainError as exc:
        print(f"错误: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
