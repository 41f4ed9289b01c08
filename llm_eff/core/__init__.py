"""Shared core: data model, prices, run log, errors. No heavy imports here."""

from llm_eff.core.atomic import atomic_write
from llm_eff.core.errors import BackendError, SandboxError, UserError
from llm_eff.core.prices import Price, api_price, local_price
from llm_eff.core.runlog import RunLog
from llm_eff.core.types import Attempt, Cost, Task, Usage, config_hash

__all__ = [
    "Attempt",
    "BackendError",
    "Cost",
    "Price",
    "RunLog",
    "SandboxError",
    "Task",
    "Usage",
    "UserError",
    "api_price",
    "atomic_write",
    "config_hash",
    "local_price",
]
