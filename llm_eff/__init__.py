"""llm-eff: make LLMs and agents cheaper to adapt, run and evaluate.

Every technique is judged by what a correct answer costs: systems produce `Attempt`s carrying a
`Usage`, and the evaluation layer (`evals`) turns them into accuracy, pass@k, cost-of-pass and TEP.
"""

__version__ = "0.1.0"
