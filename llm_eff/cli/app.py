"""The root `llm-eff` app: the composition root. It mounts the commands every package declares
(entry-point group `llm_eff.commands`: evals, routers, the proxy, agents and the model-side
commands of llm_eff) and imports none of those packages itself."""

from __future__ import annotations

import typer

ENTRY_POINT_GROUP = "llm_eff.commands"


def build_app() -> typer.Typer:
    """The app with every installed package's commands."""
    from importlib.metadata import entry_points

    app = typer.Typer(
        name="llm-eff",
        help="Make LLMs and agents cheaper to adapt, run and evaluate: every system is judged by "
        "what a correct answer costs (accuracy, pass@k, cost-of-pass, TEP).",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        point.load().register(app)
    return app


app = build_app()
