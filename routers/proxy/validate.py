"""Request checks with OpenAI-style error bodies: {"error": {"message", "type", "code"}}."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

MAX_TOKENS_LIMIT = 10_000_000
MAX_N = 128


class KeySpec(BaseModel):
    """`POST /admin/keys` body: a name and optional budget and rate limits, strictly typed."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    budget_usd: float | None = Field(None, ge=0, le=1e9, allow_inf_nan=False)
    rpm: int | None = Field(None, ge=1, le=10**9)
    tpm: int | None = Field(None, ge=1, le=10**12)


class ProxyError(Exception):
    """An error answered to the client with an HTTP status and an OpenAI-style body."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code = status, message, type_, code

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        return {"error": {"message": self.message, "type": self.type, "code": self.code}}


def _number(body: dict[str, Any], name: str, low: float, high: float) -> None:
    value = body.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ProxyError(
            400, f"'{name}' must be a number in [{low:g}, {high:g}]", code="invalid_value"
        )


def validate_chat(body: Any) -> dict[str, Any]:
    """The request body if it is a valid chat completion request; ProxyError (400) if not."""
    if not isinstance(body, dict):
        raise ProxyError(400, "request body must be a JSON object", code="invalid_json")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ProxyError(400, "'model' is required and must be a string", code="missing_model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ProxyError(400, "'messages' must be a non-empty array", code="invalid_messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise ProxyError(400, f"messages[{i}] needs a string 'role'", code="invalid_messages")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise ProxyError(
                400, f"messages[{i}].content must be a string or an array", code="invalid_messages"
            )
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                where = f"messages[{i}].content[{j}]"
                raise ProxyError(400, f"{where} needs a string 'type'", code="invalid_messages")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                where = f"messages[{i}].content[{j}].text"
                raise ProxyError(400, f"{where} must be a string", code="invalid_messages")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ProxyError(400, "'stream' must be a boolean", code="invalid_value")
    for name, most in (
        ("max_tokens", MAX_TOKENS_LIMIT),
        ("max_completion_tokens", MAX_TOKENS_LIMIT),
        ("n", MAX_N),
    ):
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most
        ):
            raise ProxyError(
                400, f"'{name}' must be an integer in [1, {most:,}]", code="invalid_value"
            )
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "max_cost_per_million_tokens", 0, 1e9)
    if "route" in body and not isinstance(body["route"], str):
        raise ProxyError(400, "'route' must be an upstream name", code="invalid_value")
    return body
