"""Request checks with OpenAI-style error bodies: {"error": {"message", "type", "code"}}."""

from __future__ import annotations

from typing import Any


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
    if "stream" in body and not isinstance(body["stream"], bool):
        raise ProxyError(400, "'stream' must be a boolean", code="invalid_value")
    for name in ("max_tokens", "max_completion_tokens", "n"):
        value = body.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ProxyError(400, f"'{name}' must be a positive integer", code="invalid_value")
    _number(body, "temperature", 0, 2)
    _number(body, "top_p", 0, 1)
    _number(body, "max_cost_per_million_tokens", 0, 1e9)
    if "route" in body and not isinstance(body["route"], str):
        raise ProxyError(400, "'route' must be an upstream name", code="invalid_value")
    return body
