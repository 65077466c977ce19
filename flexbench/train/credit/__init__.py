"""Credit assignment: gains of a ranked list -> per-token advantages.

``rewards`` (causal swap, non-causal, independent, rank-level and sequence
rewards), ``grpo`` (group-relative normalisation: sequence, pooled item-level,
per-rank), ``uncertainty`` (inverse-variance rollout weights), ``tokens`` (item
and sequence advantages mapped onto token offsets) and ``assign`` (one prompt
group's credit, composed from the above per training method).
"""
