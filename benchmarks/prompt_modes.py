"""Parse-failure rates of the two prompt modes (``ids`` and ``reason``) with a real LLM (issue 14, item 2).

Each mode is one stored ``flexbench eval zero-shot`` run on the first ``--limit``
test instances of ``--dataset``/``--need`` (greedy, free decoding: constrained
decoding cannot fail to parse, so it would measure nothing), labelled
``zs-<mode>-<limit>`` in ``$FLEXBENCH_DATA``; a rerun reuses the stored runs.
The report re-parses every stored raw output in its mode
(:func:`flexbench.llm.parsing.parse_ranking`) and prints, per mode:

* ``parse rate``        share of outputs with a usable list; ``no-list`` / ``too-long``: the failures by reason;
* ``invalid``, ``dup``  mean invalid / duplicate entries per output (harness counts);
* ``pad``               mean candidates the harness appended (of ``k``): what the model left out;
* ``reason chars``, ``reason tokens``  mean length of the text before the list (parsed outputs);
* ``rationale``         share of parsed outputs whose text before the list holds a word other than the
  ``Final ranking:`` marker (list numbering such as ``1.`` is not a rationale);
* ``cap hits``          share of outputs whose re-tokenized length reaches ``max_new_tokens``
  (the output was cut by the cap; re-tokenizing decoded text can differ from the sampled
  token count by a token or so);
* ``NDCG@5``            the harness's score (repaired and padded).

    FLEXBENCH_DATA=/tmp/pm .venv/bin/python benchmarks/prompt_modes.py --limit 30
    .venv/bin/python benchmarks/prompt_modes.py --stages report --json out.json   # report only
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

MODES = ("ids", "reason")
WORD = re.compile(r"[^\W\d_]{2,}")  # two or more letters


def has_rationale(prefix: str) -> bool:
    """Whether the text before the list says anything beyond the final-answer marker."""
    from flexbench.llm.labels import FINAL_MARKER

    return bool(WORD.search(re.sub(re.escape(FINAL_MARKER), " ", prefix, flags=re.IGNORECASE)))


def label_of(mode: str, limit: int) -> str:
    """The stored run label of ``mode`` on ``limit`` instances."""
    return f"zs-{mode}-{limit}"


def eval_command(args: argparse.Namespace, mode: str) -> list[str]:
    """The ``flexbench eval`` invocation of one mode."""
    tokens = args.max_new_tokens_reason if mode == "reason" else args.max_new_tokens_ids
    return [sys.executable, "-m", "flexbench", "eval", "zero-shot", "--dataset", args.dataset, "--need", args.need,
            "--limit", str(args.limit), "--model", args.model, "--batch-size", str(args.batch_size),
            "--set", f"prompt_mode={mode}", "--set", f"max_new_tokens={tokens}",
            "--set", f"max_item_chars={args.max_item_chars}", "--set", f"label={label_of(mode, args.limit)}"]


def mode_stats(mode: str, records: Sequence[Any], candidates: dict[str, tuple[str, ...]], tokenizer: Any,
               max_new_tokens: int) -> dict[str, Any]:
    """The figures of one mode's stored records (module docstring)."""
    from flexbench.llm.parsing import parse_ranking

    failures: Counter[str] = Counter()
    chars, tokens, caps, rationales = [], [], 0, 0
    for r in records:
        text = r.raw_output or ""
        parsed = parse_ranking(text, candidates[r.instance_id], mode=mode)
        if not parsed.parsed:
            failures[parsed.failure or "unknown"] += 1
        else:
            chars.append(parsed.answer_start or 0)
            rationales += has_rationale(text[:parsed.answer_start or 0])
            tokens.append(len(tokenizer(text[:parsed.answer_start or 0], add_special_tokens=False)["input_ids"]))
        caps += len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= max_new_tokens
    n = len(records)
    mean = statistics.fmean
    return {
        "mode": mode, "n": n, "parse_rate": 1 - sum(failures.values()) / n, "failures": dict(failures),
        "invalid": mean(r.n_invalid for r in records), "duplicate": mean(r.n_duplicate for r in records),
        "pad": mean(r.n_padded for r in records), "k": len(next(iter(candidates.values()))),
        "reason_chars": mean(chars) if chars else None, "reason_tokens": mean(tokens) if tokens else None,
        "rationale": rationales / len(chars) if chars else None,
        "cap_hits": caps / n, "max_new_tokens": max_new_tokens, "ndcg@5": mean(r.metrics["ndcg@5"] for r in records),
    }


def report(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Figures of every mode's stored run."""
    from flexbench.catalog import open_dataset
    from flexbench.llm.models import load_tokenizer
    from flexbench.results import ResultStore
    from flexbench.types import RunKey

    instances = open_dataset(args.dataset).instances("test", limit=args.limit)
    candidates = {x.instance_id: tuple(x.candidate_ids) for x in instances}
    tokenizer = load_tokenizer(args.model)
    store, rows = ResultStore(), []
    for mode in args.modes:
        records = store.load_records(RunKey(label_of(mode, args.limit), args.dataset, args.need, "test"))
        if len(records) < args.limit:
            raise SystemExit(f"mode {mode}: {len(records)} of {args.limit} records stored: run stage 'eval'")
        cap = args.max_new_tokens_reason if mode == "reason" else args.max_new_tokens_ids
        rows.append(mode_stats(mode, records[:args.limit], candidates, tokenizer, cap))
    return rows


def markdown(rows: Sequence[dict[str, Any]], args: argparse.Namespace) -> str:
    """The report as a Markdown table."""
    def f(v: float | None, digits: int = 3) -> str:
        return "—" if v is None else f"{v:.{digits}f}"

    title = (f"Prompt modes, zero-shot {args.model}, {args.dataset}/{args.need}, first {args.limit} test "
             f"instances, greedy free decoding, item text {args.max_item_chars} chars\n")
    header = ("| mode | max new tokens | parse rate | failures | invalid | dup | pad (of k) | reason chars | "
              "reason tokens | rationale | cap hits | NDCG@5 |")
    out = [title, header, "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        fails = ", ".join(f"{k} {v}" for k, v in sorted(r["failures"].items())) or "none"
        out.append(f"| {r['mode']} | {r['max_new_tokens']} | {r['parse_rate']:.3f} | {fails} | {f(r['invalid'], 2)} | "
                   f"{f(r['duplicate'], 2)} | {f(r['pad'], 1)} ({r['k']}) | {f(r['reason_chars'], 0)} | "
                   f"{f(r['reason_tokens'], 0)} | {f(r['rationale'])} | {r['cap_hits']:.3f} | {r['ndcg@5']:.3f} |")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="kuairec")
    p.add_argument("--need", default="interest")
    p.add_argument("--model", default="smollm2")
    p.add_argument("--limit", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-item-chars", type=int, default=40)
    p.add_argument("--max-new-tokens-ids", type=int, default=200, help="a full list of 30 labels is ~142 tokens")
    p.add_argument("--max-new-tokens-reason", type=int, default=320, help="room for a rationale and the list")
    p.add_argument("--modes", default=",".join(MODES), type=lambda s: [m for m in s.split(",") if m])
    p.add_argument("--stages", default="eval,report", type=lambda s: [x for x in s.split(",") if x])
    p.add_argument("--json", type=Path, help="also write the figures as JSON")
    p.add_argument("--md", type=Path, help="also write the table as Markdown")
    args = p.parse_args(argv)
    if "eval" in args.stages:
        for mode in args.modes:
            cmd = eval_command(args, mode)
            print("$", " ".join(cmd[2:]), flush=True)
            subprocess.run(cmd, check=True)
    if "report" in args.stages:
        rows = report(args)
        text = markdown(rows, args)
        print(text)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2) + "\n")
        if args.md:
            args.md.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
