"""`llm-eff`: evaluate systems for what a correct answer costs, write cost reports, serve the
router proxy and train routers. User mistakes print one line and exit with status 2; nothing is
half-written. Commands live in one module each (agent, depth, evaluate, finetune, netllm, proxy, rl,
route).
"""

from __future__ import annotations

from llm_eff.cli import agent, depth, evaluate, finetune, netllm, proxy, rl, route  # noqa: F401
from llm_eff.cli.app import app, plain_metavars


def main() -> None:
    """Console-script entry point."""
    import typer

    command = typer.main.get_command(app)
    plain_metavars(command)
    command(prog_name="llm-eff")


__all__ = ["app", "main"]
