"""The OpenAPI 3.1 document of /api/v1, built from the route table and the pydantic models."""

from __future__ import annotations

import re
from typing import Any

from agent_ui.api import ROUTES

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "机器可读的错误码"},
                "message": {"type": "string", "description": "中文说明"},
                "details": {"type": "object"},
            },
        }
    },
}


def build_openapi(prefix: str = "/api/v1") -> dict[str, Any]:
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for r in ROUTES:
        op: dict[str, Any] = {
            "summary": r.summary,
            "tags": [r.tag],
            "operationId": r.handler.__name__,
            "responses": {
                str(r.status): {"description": "成功"},
                "4XX": {
                    "description": "错误（错误码见 error.code）",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        params = [
            {"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
            for n in re.findall(r"{(\w+)}", r.path)
        ]
        params += [
            {"name": n, "in": where, "required": False, "schema": schema, "description": text}
            for n, where, schema, text in r.params
        ]
        if params:
            op["parameters"] = params
        if r.auth == "staff":
            op["security"] = [{"session": []}]
        if r.body is not None:
            schema = r.body.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in schema.pop("$defs", {}).items():
                schemas[name] = sub
            schemas[r.body.__name__] = schema
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"$ref": f"#/components/schemas/{r.body.__name__}"}
                    }
                },
            }
        paths.setdefault(prefix + r.path, {})[r.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "12345 政务服务便民热线 API",
            "version": "1.0.0",
            "description": "工单受理、派单、签收、退单、延期、办结反馈、审核、回访、合并、督办。"
            "写操作需要会话 Cookie 和请求头 X-CSRF-Token。",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "hotline_session"}
            },
        },
    }
