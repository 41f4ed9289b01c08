"""Proxy configuration, read from YAML and validated by typed models (unknown fields refused).

```yaml
upstreams:
  gpt4o-mini: {kind: litellm, model: openai/gpt-4o-mini, timeout_s: 30, retries: 1,
               fallbacks: [local]}
  vllm: {kind: openai, base_url: "http://gpu-box:8000/v1", model: Qwen/Qwen2.5-7B-Instruct,
         api_key_env: VLLM_KEY, prompt_per_m: 0.2, completion_per_m: 0.2,
         max_output_tokens: 8192}
  local: {kind: local, model: smollm2-135m, max_output_tokens: 512}   # or smollm2-135m:quant=int8
routers:
  rules: {kind: rules, strong: gpt4o-mini, weak: local}
  random: {kind: random, strong: gpt4o-mini, weak: local}
  any: {kind: any, options: {path: runs/any-router},   # `llm-eff route train-any`
        targets: {"openai/gpt-4o-mini": gpt4o-mini, smollm2-135m: local}}
auth: {admin_key_env: LLM_EFF_ADMIN_KEY, require_keys: true, allow_anonymous: false}
database_url: sqlite:///runs/proxy-spend.db   # the default; or postgresql://user@host/db
max_body_bytes: 1000000                    # client request bodies
max_upstream_body_bytes: 16000000          # upstream answers (a stream: all its bytes)
default_max_tokens: 4096                   # output cap sent upstream when a request has none
body_timeout_s: 30                         # a request body must arrive within this
header_timeout_s: 10                       # ... and its headers within this
max_connections: 4096                      # past this, requests are answered 503
flush_interval_s: 0.5
log_level: info                            # one line per request at info
cache:                                     # response cache (off by default)
  mode: exact                              # off | exact | semantic (exact, then by meaning)
  scope: key                               # key: each caller its own entries; shared: one pool
  ttl_s: 3600
  max_entries: 20000                       # disk at most max_entries x max_entry_bytes
  semantic_threshold: 0.95                 # cosine of the last messages' MiniLM embeddings
```
Prices default to LiteLLM's cost map for `litellm` upstreams; `local` upstreams are priced
from hardware time like every local model in llm-eff.

Keys: once any virtual key exists, a request without one is refused (401) unless
`auth.allow_anonymous: true`; `require_keys: true` refuses keyless requests even before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from llm_eff.core.errors import UserError

UPSTREAM_KINDS = ("litellm", "openai", "local")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=False)


class UpstreamConfig(_Strict):
    """One model the proxy can send requests to."""

    name: str
    kind: Literal["litellm", "openai", "local"] = "litellm"
    model: str = Field(min_length=1)
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(0, ge=0, le=10)
    retry_backoff_s: float = Field(0.1, ge=0, le=30)  # first wait; doubles, with jitter, to 2 s
    fallbacks: list[str] = Field(default_factory=list)
    prompt_per_m: float | None = Field(None, ge=0)
    completion_per_m: float | None = Field(None, ge=0)
    max_output_tokens: int | None = Field(None, ge=1)  # else LiteLLM's model info, else default
    max_concurrency: int = Field(8, ge=1)  # local kind: requests decoded together
    # local kind: llama.cpp or transformers; auto = llama.cpp for GGUF models when installed
    engine: Literal["auto", "transformers", "llamacpp"] = "auto"

    @model_validator(mode="after")
    def _needs_url(self) -> UpstreamConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("kind openai needs base_url")
        return self


class RouterConfig(_Strict):
    """A named router and the upstreams it chooses between: strong and weak for a scoring
    router, or `targets` (its target name -> upstream) for an any-technique router."""

    name: str
    kind: str
    strong: str | None = None
    weak: str | None = None
    targets: dict[str, str] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _needs_upstreams(self) -> RouterConfig:
        if self.kind == "any":
            if not self.targets or "path" not in self.options:
                raise ValueError("kind any needs options.path and targets (target -> upstream)")
        elif not (self.strong and self.weak):
            raise ValueError(f"kind {self.kind} needs strong and weak upstreams")
        return self


class AuthConfig(_Strict):
    """Who may call the proxy."""

    admin_key_env: str = "LLM_EFF_ADMIN_KEY"
    require_keys: bool = False
    allow_anonymous: bool = False  # keyless requests once keys exist: refused unless true


class CacheConfig(_Strict):
    """The proxy's response cache (`routers.proxy.cache`)."""

    mode: Literal["off", "exact", "semantic"] = "off"
    scope: Literal["key", "shared"] = "key"
    ttl_s: float = Field(3600.0, gt=0)
    max_entries: int = Field(20_000, ge=1)
    max_entry_bytes: int = Field(262_144, ge=1)  # larger answers are not cached
    semantic_threshold: float = Field(0.95, gt=0, le=1)
    semantic_any_temperature: bool = False  # else semantic hits only for temperature 0
    database_url: str | None = None  # default: the proxy's own database

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        return "off" if value is False else value  # YAML reads a bare `off` as false


class ProxyConfig(_Strict):
    """Everything `llm-eff serve` needs."""

    upstreams: dict[str, UpstreamConfig]
    routers: dict[str, RouterConfig] = Field(default_factory=dict)
    auth: AuthConfig = Field(default_factory=AuthConfig)
    database_url: str = "sqlite:///runs/proxy-spend.db"
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_upstream_body_bytes: int = Field(16_000_000, ge=1024)
    default_max_tokens: int = Field(4096, ge=1)
    body_timeout_s: float = Field(30.0, gt=0)
    header_timeout_s: float = Field(10.0, gt=0)
    keep_alive_s: float = Field(5.0, ge=1)
    max_connections: int = Field(4096, ge=1)
    flush_interval_s: float = Field(0.5, gt=0)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    cache: CacheConfig = Field(default_factory=CacheConfig)

    @property
    def admin_key_env(self) -> str:
        """The environment variable holding the admin key."""
        return self.auth.admin_key_env

    @property
    def require_keys(self) -> bool:
        """Whether a request without a key is refused even when no key exists yet."""
        return self.auth.require_keys

    @property
    def admin_key(self) -> str | None:
        """The admin key from the environment, if set."""
        return os.environ.get(self.auth.admin_key_env) or None


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"]) or "config"
    return f"{where}: {error['msg']}"


def parse_config(data: Any) -> ProxyConfig:
    """A validated `ProxyConfig` from parsed YAML; UserError naming the first problem."""
    if not isinstance(data, dict) or not isinstance(data.get("upstreams"), dict):
        raise UserError("proxy config: 'upstreams' must be a mapping of name -> upstream")
    raw = dict(data)
    try:
        raw["upstreams"] = {
            name: {**spec, "name": name} if isinstance(spec, dict) else spec
            for name, spec in data["upstreams"].items()
        }
        routers = data.get("routers") or {}
        if isinstance(routers, dict):
            raw["routers"] = {
                name: {"kind": name, **spec, "name": name} if isinstance(spec, dict) else spec
                for name, spec in routers.items()
            }
        config = ProxyConfig.model_validate(raw)
    except ValidationError as exc:
        raise UserError(f"proxy config: {_first_problem(exc)}") from None
    for up in config.upstreams.values():
        for fb in up.fallbacks:
            if fb not in config.upstreams:
                raise UserError(f"upstream '{up.name}': unknown fallback '{fb}'")
    for router in config.routers.values():
        sides = {f"target '{t}'": u for t, u in router.targets.items()}
        if router.kind != "any":
            sides = {"strong": router.strong, "weak": router.weak}
        for side, upstream in sides.items():
            if upstream not in config.upstreams:
                raise UserError(f"router '{router.name}': unknown {side} upstream '{upstream}'")
    return config


def load_config(path: str | Path) -> ProxyConfig:
    """Read and validate a proxy YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"proxy config not found: {path}") from None
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read proxy config {path}: {exc}") from None
    return parse_config(data or {})
