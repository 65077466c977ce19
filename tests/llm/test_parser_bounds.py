"""The parser's worst cases under a time bound (issue 16 item 2), and its input cap.

Times are CPU seconds of this process (``time.process_time``), the best of three
calls with the garbage collector off, as ``timeit`` measures: a busy shared machine
and the collector's passes over the rest of the test process's objects then do not
count as the parser's work. The linear parser takes about 0.11 s CPU on its slowest
input at the cap (8,192 list lines), the previous one 12 s there and 15 s on 1,600
blanks before a label.
"""

from __future__ import annotations

import gc
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flexbench.llm.labels import PromptMode
from flexbench.llm.parsing import MAX_PARSE_CHARS, NO_LIST, TOO_LONG, parse_ranking

IDS = tuple(f"B0{j:03d}XYZ" for j in range(30))
BOUND_S = 0.5
# Pieces that drove the old parser's regexes and line scans into backtracking or quadratic work.
FRAGMENTS = (" ", "\t", "\n", "\r\n", "\u2028", ">", "#", "*", "_", ":", "[", "]", "[ ", "[1]", "[1]\n", "[ 1 ]",
             "[1,", "[1, 2]", '["3", ', '"', "1.", "1. ", "-", "x", "a", "Answer", "Answer:", "Answer:\n", "final ",
             "Final ranking:\n", "ranked ", "list", "rank ", "no.", "【", "７", "\u200b", "ﷺ", "[#", "#1")


def _cpu_seconds(text: str, mode: PromptMode, repeats: int = 3) -> float:
    enabled = gc.isenabled()
    gc.disable()
    try:
        times = []
        for _ in range(repeats):
            start = time.process_time()
            parse_ranking(text, IDS, mode=mode)
            times.append(time.process_time() - start)
        return min(times)
    finally:
        if enabled:
            gc.enable()


WORST = {
    "blanks then a late label": " " * (MAX_PARSE_CHARS - 4) + "x[1]",
    "blank lines then a label": "\n" * (MAX_PARSE_CHARS - 3) + "[1]",
    "list lines to the cap": "[1]\n" * (MAX_PARSE_CHARS // 4),
    "markers and labels": "Answer:\n[1] " * (MAX_PARSE_CHARS // 12),
    "numbered lines with words": "1. [1] x\n" * (MAX_PARSE_CHARS // 9),
    "open brackets": "[ " * (MAX_PARSE_CHARS // 2),
    "unfinished arrays": "[1," * (MAX_PARSE_CHARS // 3),
    "18-fold NFKC expansion": "ﷺ" * MAX_PARSE_CHARS,
}


@pytest.mark.parametrize("mode", list(PromptMode))
@pytest.mark.parametrize("name", list(WORST))
def test_known_worst_cases_parse_within_the_bound(name: str, mode: PromptMode) -> None:
    text = WORST[name]
    assert len(text) <= MAX_PARSE_CHARS
    assert _cpu_seconds(text, mode) < BOUND_S, name


def test_the_issue_cases_keep_their_answers() -> None:
    late = parse_ranking(" " * 1600 + "x[1]", IDS)
    assert late.parsed and [e.raw for e in late.entries] == ["[1]"]
    assert [e.raw for e in parse_ranking("\n" * 16000 + "[1]", IDS).entries] == ["[1]"]
    many = parse_ranking("[1]\n" * 8000, IDS)
    assert len(many.entries) == 8000 and many.n_duplicate == 7999


def test_inputs_over_the_cap_are_a_counted_parse_failure() -> None:
    at_cap = "[3]\n" + " " * (MAX_PARSE_CHARS - 4)
    assert parse_ranking(at_cap, IDS).parsed
    over = parse_ranking(at_cap + " ", IDS)
    assert not over.parsed and over.entries == () and over.failure == TOO_LONG
    assert parse_ranking("no list here", IDS).failure == NO_LIST
    assert parse_ranking("[3]", IDS).failure is None


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(unit=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=4),
       tail=st.lists(st.sampled_from(FRAGMENTS), max_size=6),
       fill=st.floats(min_value=0.05, max_value=1.0), mode=st.sampled_from(list(PromptMode)))
def test_adversarial_inputs_up_to_the_cap_parse_within_the_bound(unit: list[str], tail: list[str], fill: float,
                                                                  mode: PromptMode) -> None:
    """A repeated unit of hostile pieces filling up to the cap, then a tail: linear work."""
    piece, end = "".join(unit), "".join(tail)
    text = (piece * int(fill * (MAX_PARSE_CHARS - len(end)) // len(piece)) + end)[:MAX_PARSE_CHARS]
    assert _cpu_seconds(text, mode) < BOUND_S
