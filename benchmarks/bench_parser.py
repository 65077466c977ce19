"""Time the output parser on realistic and adversarial answers, against the previous parser in the same run.

Reference: ``old_parse_ranking`` below is a copy of the parser before the
linear-time rewrite (commit 92e9784, ``flexbench/llm/parsing.py``), kept only here
for the comparison. Both parse the same inputs in the same process.

* **Realistic**: ``--realistic`` answers to a K = 30 prompt in the shapes models
  produce (plain, numbered, bulleted and JSON lists, reasoning then a marker and
  the list, truncated lists, prose rankings, indented notes), seeded. Printed:
  p50 / p99 / max per call for both parsers, the ratio of the medians, and how
  many results are identical (they must all be: the rewrite keeps the behaviour).
* **Adversarial**: the worst cases of issue 16 (blank runs before a late label,
  long runs of blank lines, tens of thousands of list lines, ...) at growing
  sizes. The old parser runs each size only while its previous size took under
  ``--old-budget`` seconds (it is cubic or quadratic there; larger sizes would run
  for minutes); the new one runs every size up to the cap
  :data:`~flexbench.llm.parsing.MAX_PARSE_CHARS`.

Times are CPU seconds of this process for one call (``time.process_time``; median of
``--repeats`` for adversarial inputs): on a shared, oversubscribed machine wall
times mostly measure the scheduler, CPU time measures the parser's work.

    .venv/bin/python benchmarks/bench_parser.py [--realistic 2000] [--repeats 3] [--old-budget 4]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from flexbench.llm.labels import item_by_label, label_map, normalize_char
from flexbench.llm.parsing import (
    DUPLICATE,
    INVALID,
    MAX_PARSE_CHARS,
    VALID,
    ParsedEntry,
    ParsedRanking,
    parse_ranking,
)

IDS = tuple(f"B0{j:03d}XYZ" for j in range(30))

# --- the previous parser, verbatim but for the _old prefix of its private names -------------------
_old_LABEL = re.compile(r"\[\s*#?\s*(\d{1,6})\s*\]")
_old_ELEM = r'"?#?\d{1,6}"?'
_old_JSON_ARRAY = re.compile(rf"\[\s*(?:{_old_ELEM}\s*,\s*)+(?:{_old_ELEM}\s*\])?")
_old_JSON_ELEM = re.compile(r'"?#?(\d{1,6})"?(?=\s*[,\]])')
_old_MARKER_WORDS = r"(?:final\s+)?(?:answer|ranking|ranked\s+list)"
_old_MARKER = re.compile(rf"\b{_old_MARKER_WORDS}\b(?:\s*\*\*)?\s*[:：]|^[#*_\s]*{_old_MARKER_WORDS}[#*_\s]*$",
                         re.IGNORECASE | re.MULTILINE)
_old_LEAD = re.compile(rf"^[\s>]*(?:[#*_\s]*{_old_MARKER_WORDS}[#*_\s]*[:：]?)?\s*"
                       r"(?:[-*•+]|\d{1,3}\s*[.):]|#\d{1,3}[.:)]?|(?:rank|no\.?)\s*\d{1,3}\s*[.:)]?)?"
                       r"[\s\"'`*_({]*$", re.IGNORECASE)
_old_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class _old_Hit:
    value: int
    start: int  # normalised coordinates
    end: int
    group: int  # JSON array index, or -1 for a bracketed label


def _old_label_value(raw: str) -> str:
    digits = "".join(ch for ch in "".join(normalize_char(c) for c in raw) if ch.isdigit())
    return str(int(digits)) if digits else raw


def _old_normalise(text: str) -> tuple[str, list[int]]:
    chars: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        for out in normalize_char(ch):
            chars.append(out)
            origin.append(i)
    return "".join(chars), origin


def _old_find_hits(norm: str) -> list[_old_Hit]:
    hits: list[_old_Hit] = []
    taken: list[tuple[int, int]] = []
    for g, arr in enumerate(_old_JSON_ARRAY.finditer(norm)):
        taken.append(arr.span())
        body_start = arr.start()
        for m in _old_JSON_ELEM.finditer(norm, body_start, arr.end() + 1):
            if m.start() < arr.end():
                hits.append(_old_Hit(int(m.group(1)), m.start(), m.end(), g))
    for m in _old_LABEL.finditer(norm):
        if not any(a <= m.start() < b for a, b in taken):
            hits.append(_old_Hit(int(m.group(1)), m.start(), m.end(), -1))
    return sorted(hits, key=lambda h: h.start)


def _old_run_from(hits: list[_old_Hit], i: int, norm: str, line_end: int) -> list[_old_Hit]:
    run = [hits[i]]
    for nxt in hits[i + 1:]:
        if nxt.start >= line_end or _old_LETTER.search(norm, run[-1].end, nxt.start):
            break
        run.append(nxt)
    return run


def _old_line_blocks(norm: str, line: tuple[int, int], loose: list[_old_Hit],
                     arrays: list[list[_old_Hit]]) -> tuple[list[_old_Hit] | None, list[list[_old_Hit]]]:
    """``(list-line entries or None, blocks standing alone)`` of one line."""
    start, end = line
    labels = [i for i, h in enumerate(loose) if start <= h.start < end]
    own = [a for a in arrays if start <= a[0].start < end]
    if labels and (not own or loose[labels[0]].start < own[0][0].start) \
            and _old_LEAD.match(norm[start:loose[labels[0]].start]):
        return _old_run_from(loose, labels[0], norm, end), own
    runs = [_old_run_from(loose, i, norm, end) for i in labels]
    best = max(runs, key=len, default=[])
    return None, ([best] if len(best) >= 2 else []) + own


def _old_blocks(norm: str, hits: list[_old_Hit]) -> list[list[_old_Hit]]:
    loose = [h for h in hits if h.group < 0]
    by_group: dict[int, list[_old_Hit]] = {}
    for h in hits:
        if h.group >= 0:
            by_group.setdefault(h.group, []).append(h)
    arrays = list(by_group.values())
    blocks: list[list[_old_Hit]] = []
    current: list[_old_Hit] = []
    pos = 0
    for line in norm.splitlines(keepends=True):
        span, pos = (pos, pos + len(line)), pos + len(line)
        if not any(span[0] <= h.start < span[1] for h in hits):
            continue  # label-free lines (explanations, blank lines) do not end a block
        entries, alone = _old_line_blocks(norm, span, loose, arrays)
        if entries is None and current and line[:1] in (" ", "\t"):
            continue  # an indented explanation under a list entry continues the list
        if entries is not None:
            current += entries
        if (entries is None or alone) and current:
            blocks.append(current)
            current = []
        blocks += alone
    if current:
        blocks.append(current)
    return sorted(blocks, key=lambda b: b[0].start)


def _old_select(norm: str, hits: list[_old_Hit]) -> list[_old_Hit]:
    blocks = _old_blocks(norm, hits)
    markers = [m.end() for m in _old_MARKER.finditer(norm)]
    for pos in reversed(markers):
        after = [b for b in blocks if b[0].start >= pos]
        if after:
            return after[0]
    if blocks:
        return max(reversed(blocks), key=len)
    cut = next((pos for pos in reversed(markers) if any(h.start >= pos for h in hits)), 0)
    return [h for h in hits if h.start >= cut]


def old_parse_ranking(text: str, candidate_ids: Sequence[str]) -> ParsedRanking:
    """The previous parser (verbatim but for the names)."""
    norm, origin = _old_normalise(text)
    hits = _old_find_hits(norm)
    if not hits:
        return ParsedRanking(entries=(), parsed=False)
    by_label = item_by_label(candidate_ids)
    seen: set[str] = set()
    entries = []
    for h in _old_select(norm, hits):
        span = (origin[h.start], origin[h.end - 1] + 1)
        item = by_label.get(h.value)
        status = INVALID if item is None else (DUPLICATE if item in seen else VALID)
        if item is not None:
            seen.add(item)
        entries.append(ParsedEntry(raw=text[span[0]:span[1]], item_id=item, span=span, status=status))
    return ParsedRanking(entries=tuple(entries), parsed=True)

def _result(r: ParsedRanking) -> tuple[bool, tuple[ParsedEntry, ...]]:
    return r.parsed, r.entries


def old_result(text: str, candidate_ids: Sequence[str]) -> tuple[bool, tuple[ParsedEntry, ...]]:
    return _result(old_parse_ranking(text, candidate_ids))


def new_result(text: str, candidate_ids: Sequence[str]) -> tuple[bool, tuple[ParsedEntry, ...]]:
    return _result(parse_ranking(text, candidate_ids))


# --- inputs ----------------------------------------------------------------------------------------
def realistic(n: int, seed: int = 0) -> list[str]:
    """``n`` answers in the shapes models produce for a K = 30 prompt."""
    rng = random.Random(seed)
    labels = list(label_map(IDS).values())

    def perm(k: int | None = None) -> list[str]:
        order = rng.sample(labels, len(labels))
        return order[: k or len(order)]

    words = ["the", "user", "likes", "pets", "music", "comedy", "so", "this", "one", "fits", "better",
             "than", "others", "because", "it", "is", "new"]

    def sentence(ids: list[str]) -> str:
        body = " ".join(rng.choice(words) for _ in range(rng.randint(5, 15)))
        return f"{body} " + " and ".join(f"[{i}]" for i in ids) + "."

    shapes: list[Callable[[], str]] = [
        lambda: "".join(f"[{i}]\n" for i in perm()),
        lambda: "\n".join(f"{j + 1}. [{i}]" for j, i in enumerate(perm())),
        lambda: "\n".join(f"- **[{i}]** {rng.choice(words)} clip" for i in perm()),
        lambda: '{"ranking": [' + ", ".join(f'"{i}"' for i in perm()) + "]}",
        lambda: sentence(perm(3)) + "\n\nFinal ranking:\n" + "\n".join(f"[{i}]" for i in perm()),
        lambda: "".join(f"[{i}]\n" for i in perm(rng.randint(3, 20))) + "[1",
        lambda: "I would rank " + " > ".join(f"[{i}]" for i in perm()) + ".",
        lambda: "\n".join(f"{j + 1}. [{i}] {rng.choice(words)}\n   {sentence(perm(1))}"
                          for j, i in enumerate(perm(12))),
        lambda: " ".join(sentence(perm(2)) for _ in range(6)),
    ]
    return [rng.choice(shapes)() for _ in range(n)]


ADVERSARIAL: dict[str, tuple[Callable[[int], str], tuple[int, ...]]] = {
    "blanks then x[1]": (lambda n: " " * n + "x[1]", (200, 400, 800, 1600, 3200, 6400, MAX_PARSE_CHARS - 4)),
    "blank lines then [1]": (lambda n: "\n" * n + "[1]", (2000, 4000, 8000, 16000, MAX_PARSE_CHARS - 3)),
    "'[1]\\n' lines": (lambda n: "[1]\n" * n, (1000, 2000, 4000, MAX_PARSE_CHARS // 4)),
    "'Answer:\\n' + labels": (lambda n: "Answer:\n[1] " * n, (500, 1000, 2000, MAX_PARSE_CHARS // 12)),
    "'1. [1] x' lines": (lambda n: "1. [1] x\n" * n, (1000, 2000, MAX_PARSE_CHARS // 9)),
}


def _time(fn: Callable[[str, Sequence[str]], Any], text: str, repeats: int = 1) -> float:
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn(text, IDS)
        times.append(time.process_time() - start)
    return statistics.median(times)


def _quantiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    return (statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], ordered[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--realistic", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old-budget", type=float, default=4.0,
                        help="seconds of one old-parser call past which its inputs stop growing")
    args = parser.parse_args()

    texts = realistic(args.realistic)
    old_t = [_time(old_result, t) for t in texts]
    new_t = [_time(new_result, t) for t in texts]
    same = sum(old_result(t, IDS) == new_result(t, IDS) for t in texts)
    (o50, o99, omax), (n50, n99, nmax) = _quantiles(old_t), _quantiles(new_t)
    print(f"realistic answers: {len(texts)}, mean {statistics.mean(map(len, texts)):.0f} chars; "
          f"identical results {same}/{len(texts)}")
    print("  per call (ms)   p50      p99      max")
    print(f"  old        {o50 * 1e3:8.3f} {o99 * 1e3:8.3f} {omax * 1e3:8.3f}")
    print(f"  new        {n50 * 1e3:8.3f} {n99 * 1e3:8.3f} {nmax * 1e3:8.3f}")
    print(f"  old/new    {o50 / n50:8.2f} {o99 / n99:8.2f} {omax / nmax:8.2f}")
    print(f"\nadversarial inputs (median of {args.repeats}; the old parser stops past {args.old_budget:.0f} s)")
    print(f"  {'case':24s} {'chars':>7s} {'old s':>9s} {'new s':>9s} {'old/new':>9s}")
    worst_new = 0.0
    for name, (make, sizes) in ADVERSARIAL.items():
        old_alive = True
        for n in sizes:
            text = make(n)
            new = _time(new_result, text, args.repeats)
            worst_new = max(worst_new, new)
            old = _time(old_result, text) if old_alive else None
            old_alive = old_alive and old is not None and old < args.old_budget
            cells = (f"{old:9.3f}", f"{old / new:9.0f}") if old is not None else (f"{'-':>9s}", f"{'-':>9s}")
            print(f"  {name:24s} {len(text):7d} {cells[0]} {new:9.4f} {cells[1]}")
    print(f"\nworst new-parser time on an adversarial input up to the cap ({MAX_PARSE_CHARS} chars): "
          f"{worst_new:.3f} s")


if __name__ == "__main__":
    main()
