"""The proxy's admin API: `/admin/keys` to create, list and revoke virtual keys (admin key
required, compared in constant time)."""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from routers.proxy.validate import KeySpec, ProxyError


def error_response(exc: ProxyError) -> JSONResponse:
    """The OpenAI-style JSON error response of a ProxyError."""
    return JSONResponse(exc.body(), status_code=exc.status)


def add_admin_routes(app: FastAPI, proxy: Any) -> None:
    """Mount the `/admin/keys` routes of `proxy` on `app`."""
    config = proxy.config

    def require_admin(request: Request) -> None:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        admin = config.admin_key
        if not admin or not token or not hmac.compare_digest(token, admin):
            raise ProxyError(401, "admin key required", "authentication_error", "invalid_admin_key")

    @app.post("/admin/keys")
    async def create_key(request: Request) -> Response:
        try:
            require_admin(request)
            try:
                spec = KeySpec.model_validate_json(await request.body() or b"{}")
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(p) for p in error["loc"]) or "body"
                raise ProxyError(400, f"{where}: {error['msg']}", code="invalid_value") from None
            plaintext, record = await asyncio.to_thread(
                proxy.keys.create, spec.name, spec.budget_usd, spec.rpm, spec.tpm
            )
        except ProxyError as exc:
            return error_response(exc)
        proxy.records[record.key_hash] = record
        return JSONResponse(
            {
                "id": record.id,
                "key": plaintext,
                "name": record.name,
                "budget_usd": record.budget_usd,
            },
            status_code=201,
        )

    @app.get("/admin/keys")
    async def list_keys(request: Request) -> Response:
        try:
            require_admin(request)
        except ProxyError as exc:
            return error_response(exc)
        return JSONResponse(
            {
                "data": [
                    {
                        "id": r.id,
                        "name": r.name,
                        "budget_usd": r.budget_usd,
                        "rpm": r.rpm,
                        "tpm": r.tpm,
                        "revoked": r.revoked is not None,
                        "spent_usd": proxy.usage[r.id].spent if r.id in proxy.usage else 0.0,
                    }
                    for r in proxy.keys.all()
                ]
            }
        )

    @app.delete("/admin/keys/{key_id}")
    async def revoke_key(key_id: str, request: Request) -> Response:
        try:
            require_admin(request)
            if not proxy.keys.revoke(key_id):
                raise ProxyError(404, f"no active key '{key_id}'", code="not_found")
        except ProxyError as exc:
            return error_response(exc)
        proxy.reload_keys()
        return JSONResponse({"id": key_id, "revoked": True})
