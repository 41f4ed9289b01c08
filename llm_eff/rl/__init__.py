"""Code-efficiency reinforcement learning: an execution reward, PPO and GRPO (ACECode-style).

`reward.ExecutionReward` scores a program by running its tests and timing it in the sandbox;
`ppo.train_ppo` is a compact PPO over a LoRA policy with a value head; `grpo.train_grpo` runs
trl's GRPOTrainer with the same reward.
"""
