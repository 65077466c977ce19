"""Product Search labels from the ESCI grades (SPEC section 3; paper Appendix B.4).

    gain = 1.0 (Exact), 0.1 (Substitute), 0.01 (Complement), 0.0 (Irrelevant)

These are the values the ESCI paper states (the official trec_eval script swaps
S and C, a known upstream bug). Relevant set: the Exact items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from flexbench.errors import FlexBenchError
from flexbench.types import NeedLabels
from needs.labels import to_labels

NAME = "esci"
GRADES: dict[str, float] = {"E": 1.0, "S": 0.1, "C": 0.01, "I": 0.0}


def esci_gains(labels: Sequence[str]) -> np.ndarray:
    """Gains of a sequence of E/S/C/I labels."""
    try:
        return np.array([GRADES[x] for x in labels], dtype=np.float64)
    except KeyError as err:
        raise FlexBenchError(f"unknown ESCI label {err.args[0]!r}; expected one of E, S, C, I") from None


def esci_labels(instance_ids: Sequence[str], candidate_ids: Sequence[Sequence[str]],
                grades: Sequence[Sequence[str]]) -> list[NeedLabels]:
    """ESCI :class:`NeedLabels`; ``grades[i][j]`` is the label of ``candidate_ids[i][j]``."""
    width = max((len(c) for c in candidate_ids), default=0)
    gains = np.zeros((len(candidate_ids), width))
    relevant = []
    for i, (cands, labs) in enumerate(zip(candidate_ids, grades, strict=True)):
        gains[i, :len(cands)] = esci_gains(labs)
        relevant.append(frozenset(c for c, lab in zip(cands, labs, strict=True) if lab == "E"))
    return to_labels(NAME, instance_ids, candidate_ids, gains, relevant)
