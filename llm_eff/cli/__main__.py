"""`python -m llm_eff.cli`."""

from llm_eff.cli import main

main()
