"""llm-eff: make LLMs and agents cheaper to adapt, run and evaluate.

Every technique is judged by what a correct answer costs: systems produce `Attempt`s carrying a
`Usage`, and the evaluation layer (`evals`) turns them into accuracy, pass@k, cost-of-pass and TEP.
"""

__version__ = "0.1.0"

import warnings as _warnings

# peft's PeftModel and trl's trainers use transformers' deprecated `*gradient_checkpointing*`
# names on every wrap, which printed FutureWarnings on every fine-tune; nothing a user can act on.
_warnings.filterwarnings(
    "ignore", message=r"`\w*gradient_checkpointing\w*` is deprecated", category=FutureWarning
)
