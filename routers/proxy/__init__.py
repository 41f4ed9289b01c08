"""The OpenAI-compatible router proxy: config, upstreams, keys and spend store, FastAPI app."""

from routers.proxy.app import create_app
from routers.proxy.config import ProxyConfig, UpstreamConfig, load_config, parse_config

__all__ = ["ProxyConfig", "UpstreamConfig", "create_app", "load_config", "parse_config"]
