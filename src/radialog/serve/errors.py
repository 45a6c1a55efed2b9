"""API errors: one exception type, rendered as OpenAI-style JSON error bodies.

Every error response has the shape `{"error": {"message", "type", "code", "param"}}`, so
the stock `openai` client raises its usual exceptions with our message in them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# HTTP status -> OpenAI error "type".
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    503: "server_overloaded",
    504: "timeout_error",
}


@dataclass
class ApiError(Exception):
    """An error with the HTTP status and a message that says what to do."""

    status: int
    message: str
    code: str
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    type: str | None = None  # OpenAI's error type, when not the status's usual one

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict:
        return error_body(self.status, self.message, self.code, self.param, self.type)


def error_body(
    status: int, message: str, code: str, param: str | None = None, type: str | None = None
) -> dict:
    return {
        "error": {
            "message": message,
            "type": type
            or _TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
            "code": code,
            "param": param,
        }
    }
