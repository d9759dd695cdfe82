"""OpenAPI helpers shared by the apps' API views (drf-spectacular)."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


def page_of(name: str, item: serializers.Serializer) -> serializers.Serializer:
    """The shape of every list response: `{"results": [...], "next_cursor": str | null}`."""
    return inline_serializer(name, {"results": item, "next_cursor": serializers.CharField(allow_null=True)})


# --- error responses every operation can give (a drf-spectacular postprocessing hook) ---------
# The views document their success answers; the errors below come from the shared layers
# (authentication, permissions, serializers, the list toolkit, the rate limit, the database
# outage handler: emploiplus.exceptions), so they are added here once, to every operation
# that can give them, with the one error shape `{"detail", "code", ...}`. The signed webhooks
# document their own (`{"error", "detail"}`) and are left alone.
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "errors": {"description": "400 `invalid`: the field errors (DRF's shape)"},
        "retry_after": {"type": "integer", "description": "429 and 503: seconds to wait, as Retry-After"},
    },
    "required": ["detail", "code"],
}
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer"}, "required": True, "description": "seconds"}}
_ERRORS = {
    "400": "Invalid input: field errors (`invalid`), `invalid_limit`, `invalid_cursor`, other refusals",
    "401": "No or bad token: `token_missing`, `token_invalid`, `token_expired`, `user_inactive`",
    "403": "The role or the ownership does not allow it (`forbidden`)",
    "404": "Unknown object, or one the caller may not see (`not_found`)",
    "409": "Conflicts with the stored state (e.g. `client_message_id_conflict`)",
    "413": "Body over 1 MiB (`payload_too_large`)",
    "429": "Rate limit (`throttled`), see Retry-After",
    "503": "The database is unavailable (`unavailable`), see Retry-After",
}


def _errors_for(path: str, method: str, operation: dict) -> list[str]:
    security = operation.get("security") or []
    has_input = bool(operation.get("parameters") or operation.get("requestBody"))
    codes = ["429", "503"]
    if any(requirement for requirement in security):
        codes.append("401")  # a bad token is refused even where none is needed
    if security and {} not in security:
        codes.append("403")
    if has_input:
        codes += ["400", "404"]
    if operation.get("requestBody"):
        codes += ["409", "413"]
    return codes


def document_error_responses(result: dict, generator, request, public) -> dict:
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    for path, operations in result.get("paths", {}).items():
        if path.startswith("/api/webhooks/"):
            continue
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            for code in _errors_for(path, method, operation):
                if code in responses:
                    continue
                response = {
                    "description": _ERRORS[code],
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
                if code in ("429", "503"):
                    response["headers"] = _RETRY_AFTER
                responses[code] = response
    return result
