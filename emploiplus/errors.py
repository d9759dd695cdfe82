"""The one domain error class.

Services raise `ApplicationError(code, message, status=…)`. The DRF exception handler
(`emploiplus.exceptions`) turns it into `{"detail", "code"}` with its HTTP status, and
WebSocket consumers turn it into an `error` frame `{"code", "message"}`.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A refusal the caller should see: bad input, forbidden action, unknown object."""

    status: int = 400

    def __init__(self, code: str, message: str, *, status: int | None = None, extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        if status is not None:
            self.status = status
        self.extra = extra or {}

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.extra}


class NotFound(ApplicationError):
    status = 404

    def __init__(self, message: str = "Ressource introuvable.", *, code: str = "not_found"):
        super().__init__(code, message)


class Forbidden(ApplicationError):
    status = 403

    def __init__(self, message: str = "Action interdite.", *, code: str = "forbidden"):
        super().__init__(code, message)
