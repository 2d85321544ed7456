"""Administration pages for admins: staff accounts (create, role and department, deactivate,
reset password) and the department directory (read from config, with each unit's accounts)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from agent_ui.accounts import STAFF_ROLES
from agent_ui.context import require_staff, services
from agent_ui.pages_staff import redirect, region_groups, render, staff_context
from tickets.errors import DomainError, InvalidInput
from tickets.model import LABELS, Role


def _text(form: Any, name: str) -> str:
    return str(form.get(name, "")).strip()


def _role(raw: str) -> Role:
    try:
        role = Role(raw)
    except ValueError:
        raise InvalidInput("请选择角色", field="role") from None
    if role not in STAFF_ROLES:
        raise InvalidInput("请选择角色", field="role")
    return role


async def users_page(
    request: web.Request, *, error: str | None = None, status: int = 200, form: Any = None
) -> web.Response:
    await require_staff(request, Role.ADMIN)
    svc = services(request)
    done = request.query.get("done", "")
    notices = {
        "create": "已创建账号",
        "role": "已修改角色（该用户需重新登录）",
        "active": "已更新账号状态",
        "password": "已重设密码（该用户的会话已全部注销）",
    }
    ctx = {
        **await staff_context(request),
        "users": await svc.accounts.list_users(),
        "roles": [(r.value, LABELS[r.value]) for r in STAFF_ROLES],
        "error": error,
        "notice": notices.get(done),
        "form": form or {},
    }
    return render(request, "staff/admin_users.html", ctx, status=status)


async def users_get(request: web.Request) -> web.Response:
    return await users_page(request)


async def users_post(request: web.Request) -> web.Response:
    admin = await require_staff(request, Role.ADMIN, write=True)
    form = await request.post()
    svc = services(request)
    op = _text(form, "op")
    try:
        if op == "create":
            role = _role(_text(form, "role"))
            await svc.accounts.create_user(
                _text(form, "username"),
                str(form.get("password", "")),
                role,
                _text(form, "department") or None,
                _text(form, "display_name") or None,
            )
        else:
            try:
                user_id = int(_text(form, "user"))
            except ValueError:
                raise InvalidInput("用户不存在", field="user") from None
            if op == "role":
                await svc.accounts.change_role(
                    admin, user_id, _role(_text(form, "role")), _text(form, "department") or None
                )
            elif op in ("deactivate", "activate"):
                await svc.accounts.set_active(admin, user_id, op == "activate")
                op = "active"
            elif op == "password":
                users = {u.id: u for u in await svc.accounts.list_users()}
                if user_id not in users:
                    raise InvalidInput("用户不存在", field="user")
                await svc.accounts.set_password(
                    users[user_id].username, str(form.get("password", ""))
                )
            else:
                raise InvalidInput("未知操作", field="op")
    except DomainError as exc:
        kept = {k: _text(form, k) for k in ("username", "display_name", "role", "department")}
        return await users_page(request, error=exc.message, status=422, form=kept)
    return redirect(f"/staff/admin/users?done={op}")


async def departments_page(request: web.Request) -> web.Response:
    await require_staff(request, Role.ADMIN)
    svc = services(request)
    d = svc.directory
    per_unit = Counter(u.department for u in await svc.accounts.list_users() if u.department)
    groups = []
    for league, counties in region_groups(d):
        regions = [league, *counties]
        rows = [(r, d.departments_in(r.code)) for r in regions]
        groups.append((league, rows))
    root = d.root()
    ctx = {
        **await staff_context(request),
        "root": root,
        "root_units": d.departments_in(root.code),
        "groups": groups,
        "accounts": per_unit,
    }
    return render(request, "staff/admin_departments.html", ctx)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/staff/admin/users", users_get)
    app.router.add_post("/staff/admin/users", users_post)
    app.router.add_get("/staff/admin/departments", departments_page)
