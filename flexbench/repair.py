"""Repair of a ranker's output into a permutation of the candidates (SPEC section 4).

Following the paper (Appendix F), for the emitted IDs ``o_1, o_2, ...``:

1. keep the first occurrence of each valid candidate ID, in output order;
2. drop invalid IDs (not among the instance's candidates, compared exactly:
   normalising text into IDs is the parser's job, :mod:`flexbench.llm.parsing`)
   and later occurrences of an already kept ID (duplicates);
3. pad to ``K`` with the remaining candidates in a random order seeded by
   ``(seed, instance_id)``, so every run of every method pads the same way.

Counts: ``n_invalid`` counts every invalid occurrence (a repeated foreign ID is
invalid each time), ``n_duplicate`` counts repeats of valid IDs, ``n_padded``
the candidates appended in step 3. ``n_valid + n_invalid + n_duplicate`` equals
the number of emitted IDs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from flexbench.types import Ranking, RepairedRanking


def stable_rng(*keys: object) -> np.random.Generator:
    """A generator seeded by SHA-256 of ``keys`` (stable across processes, unlike ``hash()``)."""
    digest = hashlib.sha256("\x1f".join(map(str, keys)).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:16], "little"))


def seeded_shuffle(items: Sequence[str], seed: int, instance_id: str) -> list[str]:
    """``items`` in the random order seeded by ``(seed, instance_id)`` (the padding order)."""
    order = stable_rng(seed, instance_id).permutation(len(items))
    return [items[i] for i in order]


def repair(ranking: Ranking, candidate_ids: Sequence[str], *, seed: int) -> RepairedRanking:
    """Repair ``ranking`` against ``candidate_ids`` as described in the module docstring."""
    valid = set(candidate_ids)
    kept: list[str] = []
    seen: set[str] = set()
    n_invalid = n_duplicate = 0
    for item in ranking.item_ids:
        if item not in valid:
            n_invalid += 1
        elif item in seen:
            n_duplicate += 1
        else:
            seen.add(item)
            kept.append(item)
    remaining = [c for c in candidate_ids if c not in seen]
    padding = seeded_shuffle(remaining, seed, ranking.instance_id)
    return RepairedRanking(
        instance_id=ranking.instance_id, item_ids=tuple(kept + padding), n_valid=len(kept),
        n_invalid=n_invalid, n_duplicate=n_duplicate, n_padded=len(padding), parsed=ranking.parsed,
    )
