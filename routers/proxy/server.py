"""Running the proxy: uvicorn with timeouts and a connection limit, logging, open-file limit.

- Headers must arrive within `header_timeout_s` of a request's first byte (and of a new
  connection), bodies within `body_timeout_s` (checked in `chat.read_body`); idle keep-alive
  connections close after `keep_alive_s`.
- Past `max_connections` open connections, requests are answered 503 with an OpenAI-style
  JSON body (uvicorn's own answer is plain text).
- The open-file soft limit is raised to the hard limit at start, so connections, not file
  descriptors, are what runs out first.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import sys
from typing import Any

from routers.proxy.config import ProxyConfig

log = logging.getLogger("llm_eff.proxy")
UNAVAILABLE = json.dumps(
    {
        "error": {
            "message": "too many connections: try again shortly",
            "type": "server_error",
            "code": "overloaded",
        }
    }
).encode()


async def _json_unavailable(scope: dict, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1")],
        }
    )
    await send({"type": "http.response.body", "body": UNAVAILABLE})


def raise_open_file_limit() -> int:
    """Raise the open-file soft limit to the hard limit where allowed; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            return soft
    return soft


def _protocol(header_timeout_s: float) -> type:
    """uvicorn's httptools protocol with a deadline on request headers, which tells the chat
    handler of a client's disconnect directly."""
    from uvicorn.protocols.http import httptools_impl

    httptools_impl.service_unavailable = _json_unavailable  # JSON 503 past the limit

    class TimedHeaders(httptools_impl.HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            super().on_headers_complete()
            if self.cycle is not None:
                self.cycle.llm_eff_hooks = True  # the handler may leave a disconnect hook

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            cycle = self.cycle
            super().connection_lost(exc)
            hook = getattr(cycle, "llm_eff_on_disconnect", None)
            if hook is not None:
                hook()  # cancels the request's upstream call (no watcher task per request)

    return TimedHeaders


def configure_logging(level: str) -> None:
    """One line per request from `llm_eff.proxy` at `level` (no prompts are logged)."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("llm_eff.proxy")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def serve(app: Any, config: ProxyConfig, host: str, port: int, log_level: str | None) -> None:
    """Run `app` with uvicorn on host:port until interrupted."""
    import uvicorn

    configure_logging(log_level or config.log_level)
    files = raise_open_file_limit()
    try:
        import httptools  # noqa: F401 - the header deadline needs uvicorn's httptools protocol

        http: Any = _protocol(config.header_timeout_s)
    except ImportError:
        http = "h11"
        log.warning("httptools not installed: request headers have no deadline")
    print(
        f"llm-eff proxy listening on http://{host}:{port} (upstreams: "
        f"{', '.join(config.upstreams)}; log level {log_level or config.log_level}; "
        f"open-file limit {files})",
        file=sys.stderr,
        flush=True,
    )
    # no X-Forwarded-* rewriting: the proxy does not use the client address
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        proxy_headers=False,
        http=http,
        limit_concurrency=config.max_connections,
        timeout_keep_alive=int(config.keep_alive_s),
    )
