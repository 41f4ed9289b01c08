"""Proxy configuration, read from YAML.

```yaml
upstreams:
  gpt4o-mini: {kind: litellm, model: openai/gpt-4o-mini, timeout_s: 30, retries: 1,
               fallbacks: [local]}
  vllm: {kind: openai, base_url: "http://gpu-box:8000/v1", model: Qwen/Qwen2.5-7B-Instruct,
         api_key_env: VLLM_KEY, prompt_per_m: 0.2, completion_per_m: 0.2}
  local: {kind: local, model: smollm2-135m}
routers:
  rules: {kind: rules, strong: gpt4o-mini, weak: local}
  random: {kind: random, strong: gpt4o-mini, weak: local}
auth: {admin_key_env: LLM_EFF_ADMIN_KEY, require_keys: true}
database_url: sqlite:///proxy-spend.db     # or postgresql://user@host/db
max_body_bytes: 1000000
flush_interval_s: 0.5
```
Prices default to LiteLLM's cost map for `litellm` upstreams; `local` upstreams are priced
from hardware time like every local model in llm-eff.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_eff.core.errors import UserError

UPSTREAM_KINDS = ("litellm", "openai", "local")
TOP_LEVEL = {"upstreams", "routers", "auth", "database_url", "max_body_bytes", "flush_interval_s"}


@dataclass
class UpstreamConfig:
    """One model the proxy can send requests to."""

    name: str
    kind: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = 60.0
    retries: int = 0
    fallbacks: list[str] = field(default_factory=list)
    prompt_per_m: float | None = None
    completion_per_m: float | None = None


@dataclass
class RouterConfig:
    """A named router and the strong/weak upstreams it chooses between."""

    name: str
    kind: str
    strong: str
    weak: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class ProxyConfig:
    """Everything `llm-eff serve` needs."""

    upstreams: dict[str, UpstreamConfig]
    routers: dict[str, RouterConfig] = field(default_factory=dict)
    database_url: str = "sqlite:///proxy-spend.db"
    admin_key_env: str = "LLM_EFF_ADMIN_KEY"
    require_keys: bool = False
    max_body_bytes: int = 1_000_000
    flush_interval_s: float = 0.5

    @property
    def admin_key(self) -> str | None:
        """The admin key from the environment, if set."""
        return os.environ.get(self.admin_key_env) or None


def _upstream(name: str, raw: Any) -> UpstreamConfig:
    if not isinstance(raw, dict):
        raise UserError(f"upstream '{name}': expected a mapping")
    kind = raw.get("kind", "litellm")
    if kind not in UPSTREAM_KINDS:
        raise UserError(f"upstream '{name}': kind must be one of {', '.join(UPSTREAM_KINDS)}")
    if "model" not in raw:
        raise UserError(f"upstream '{name}': 'model' is required")
    if kind == "openai" and not raw.get("base_url"):
        raise UserError(f"upstream '{name}': kind openai needs base_url")
    known = set(UpstreamConfig.__dataclass_fields__) - {"name"}
    unknown = set(raw) - known
    if unknown:
        raise UserError(f"upstream '{name}': unknown field(s) {', '.join(sorted(unknown))}")
    return UpstreamConfig(name=name, **{k: v for k, v in raw.items() if k != "name"})


def parse_config(data: dict[str, Any]) -> ProxyConfig:
    """A validated `ProxyConfig` from parsed YAML; UserError naming the first problem."""
    if not isinstance(data, dict) or not isinstance(data.get("upstreams"), dict):
        raise UserError("proxy config: 'upstreams' must be a mapping of name -> upstream")
    unknown = set(data) - TOP_LEVEL
    if unknown:
        raise UserError(f"proxy config: unknown field(s) {', '.join(sorted(unknown))}")
    upstreams = {n: _upstream(n, raw) for n, raw in data["upstreams"].items()}
    for up in upstreams.values():
        for fb in up.fallbacks:
            if fb not in upstreams:
                raise UserError(f"upstream '{up.name}': unknown fallback '{fb}'")
    routers = {}
    for name, raw in (data.get("routers") or {}).items():
        if not isinstance(raw, dict) or "strong" not in raw or "weak" not in raw:
            raise UserError(f"router '{name}': needs 'strong' and 'weak' upstreams")
        for side in ("strong", "weak"):
            if raw[side] not in upstreams:
                raise UserError(f"router '{name}': unknown {side} upstream '{raw[side]}'")
        routers[name] = RouterConfig(
            name=name,
            kind=raw.get("kind", name),
            strong=raw["strong"],
            weak=raw["weak"],
            options=raw.get("options") or {},
        )
    auth = data.get("auth") or {}
    return ProxyConfig(
        upstreams=upstreams,
        routers=routers,
        database_url=str(data.get("database_url", "sqlite:///proxy-spend.db")),
        admin_key_env=auth.get("admin_key_env", "LLM_EFF_ADMIN_KEY"),
        require_keys=bool(auth.get("require_keys", False)),
        max_body_bytes=int(data.get("max_body_bytes", 1_000_000)),
        flush_interval_s=float(data.get("flush_interval_s", 0.5)),
    )


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
