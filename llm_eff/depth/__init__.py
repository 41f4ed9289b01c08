"""Dynamic depth: Dr.LLM per-layer skip/execute/repeat routers over a frozen model.

`plans` runs a model under a layer plan, `router` holds the routers and the routed model,
`search` finds supervision plans by Monte-Carlo tree search, `tasks` generates the
multiple-choice tasks, and `train` collects plans, trains the routers and evaluates them.
"""
