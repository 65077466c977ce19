"""``run-file``: score a TREC run file produced elsewhere, under the same repair rules as every ranker.

``flexbench eval run-file --dataset D --need N --set path=system.run --set label=my-system``
reads ``qid Q0 docid rank score tag`` lines (:func:`flexbench.export.read_trec_run`;
blank and ``#`` lines skipped). Instances are matched by ID (``qid`` = instance
ID, as :mod:`flexbench.export` writes them). Per instance the emitted ranking is
the file's documents by descending score, ties by ascending rank, then by
docid -- so a run file exported by ``flexbench export`` is read back in its own
order. Everything else is the harness's job, exactly as for any other ranker:
a docid that is not a candidate is an invalid ID, a repeated docid a duplicate,
and an instance absent from the file an empty output, padded by the seeded
repair (SPEC section 4). Queries of the file that match no instance are
ignored; :attr:`RunFileRanker.n_unmatched` counts them and the run's provenance
records the count, the file's SHA-256 and its tags.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flexbench.ranker import RankerBase, RankerContext, RankerUnavailable
from flexbench.types import Instance, NeedSpec, Ranking


class RunFileRanker(RankerBase):
    """Replays a TREC run file (module docstring); option ``path`` (required)."""

    def __init__(self, ctx: RankerContext) -> None:
        from flexbench.export import read_trec_run

        path = ctx.options.get("path")
        if not path:
            raise RankerUnavailable("run-file needs a TREC run file: --set path=FILE")
        self.name = str(ctx.options.get("registry_name", "run-file"))
        self.path = Path(str(path))
        rows = read_trec_run(self.path)
        self._ranked = {qid: tuple(doc for doc, _, _ in sorted(entries, key=lambda e: (-e[2], e[1], e[0])))
                        for qid, entries in rows.items()}
        self._sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()
        self._tags = sorted({line.split()[5] for line in self.path.read_text(encoding="utf-8").splitlines()
                             if len(line.split()) == 6 and not line.lstrip().startswith("#")})
        known = {x.instance_id for x in ctx.dataset.instances()}
        self.n_unmatched = sum(qid not in known for qid in self._ranked)

    def rank(self, instances: Sequence[Instance], need: NeedSpec) -> list[Ranking]:
        """The file's ranking of each instance, as emitted (empty where the file has none)."""
        return [Ranking(x.instance_id, self._ranked.get(x.instance_id, ())) for x in instances]

    def provenance(self, need: str) -> Mapping[str, Any]:
        """The file, its digest and tags, and how many of its queries matched no instance."""
        return {"model": f"run file {self.path.name}", "run_file": str(self.path), "run_file_sha256": self._sha256,
                "run_tags": self._tags, "run_file_unmatched_queries": self.n_unmatched}
