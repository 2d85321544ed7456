"""Domain error classes → HTTP statuses, and the JSON error body, shared by the API and pages."""

from __future__ import annotations

from agent_ui.accounts import NotAuthenticated
from agent_ui.context import (
    BodyTimeout,
    CsrfFailed,
    MalformedJson,
    RequestValidation,
    UnsupportedMediaType,
)
from agent_ui.limits import Throttled
from agent_ui.oidc import SsoFailed, SsoStateInvalid
from agent_ui.uploads import StorageFull, TooLarge
from telephony.sms import TooLong
from tickets.errors import (
    Conflict,
    DomainError,
    Forbidden,
    IllegalTransition,
    InvalidInput,
    NotFound,
    Unavailable,
    VersionConflict,
)

# most specific first
HTTP_STATUS: list[tuple[type[DomainError], int]] = [
    (NotAuthenticated, 401),
    (SsoFailed, 401),
    (SsoStateInvalid, 400),
    (Throttled, 429),
    (CsrfFailed, 403),
    (Forbidden, 403),
    (NotFound, 404),
    (UnsupportedMediaType, 415),
    (BodyTimeout, 408),
    (MalformedJson, 400),
    (RequestValidation, 422),
    (TooLong, 413),
    (TooLarge, 413),
    (StorageFull, 507),
    (InvalidInput, 422),
    (VersionConflict, 409),
    (IllegalTransition, 409),
    (Conflict, 409),
    (Unavailable, 503),
]


def status_for(exc: DomainError) -> int:
    for cls, status in HTTP_STATUS:
        if isinstance(exc, cls):
            return status
    return 400


def error_body(code: str, message: str, details: dict[str, object] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}
