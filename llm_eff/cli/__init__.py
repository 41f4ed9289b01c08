"""`llm-eff`: evaluate systems for what a correct answer costs, write cost reports, serve the
router proxy and train routers. User mistakes print one line and exit with status 2; nothing is
half-written.

Each package declares its own commands (`evals/cli.py`, `routers/cli.py`, `routers/proxy/cli.py`,
`agents/cli.py`; the model-side ones here: depth, finetune, models, netllm, rl) and registers
them under the entry-point group `llm_eff.commands`; `llm_eff.cli.app` mounts them.
"""

from __future__ import annotations

from llm_eff.cli.app import app
from llm_eff.core.cli import plain_metavars


def main() -> None:
    """Console-script entry point."""
    import typer

    command = typer.main.get_command(app)
    plain_metavars(command)
    command(prog_name="llm-eff")


__all__ = ["app", "main"]
