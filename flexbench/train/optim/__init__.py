"""Optimisation: the forward pass over packed completions (``forward``), the PPO-clip
policy loss with k3 KL and entropy (``loss``), PPO's value head and GAE (``ppo``)
and supervised fine-tuning on optimal lists (``sft``)."""
