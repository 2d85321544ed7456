"""Named domain errors; each carries a machine-readable code and a Chinese message."""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error a use case raises on purpose; the API maps the class to a 4xx."""

    code = "domain_error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    code = "not_found"


class Forbidden(DomainError):
    code = "forbidden"


class InvalidInput(DomainError):
    code = "invalid_input"


class IllegalTransition(DomainError):
    """The action is not allowed in the order's current state."""

    code = "illegal_transition"


class RoleForbidden(Forbidden):
    """The actor's role may not take this action at all."""

    code = "role_forbidden"


class DepartmentForbidden(Forbidden):
    """The order (or assignment) belongs to another department."""

    code = "department_forbidden"


class VersionConflict(DomainError):
    """Somebody else changed the order since the caller read it (optimistic concurrency)."""

    code = "version_conflict"


class Conflict(DomainError):
    code = "conflict"


class Unavailable(DomainError):
    """A capability that is switched off or has no backend right now (HTTP 503)."""

    code = "unavailable"


class DatabaseUnavailable(Exception):
    """The database cannot be reached or cannot take writes just now (an outage, a restart, a
    full disk): nothing was done, try again later (HTTP 503 with Retry-After). Not a
    DomainError: no use case raises it on purpose, and handlers that turn a DomainError into a
    message on their form must not swallow it."""

    code = "unavailable"
    retry_after_s = 5

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
