"""Prompt modes (issue 14 item 2): the ``reason`` answer format, its parse, and what the rankers record."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from baselines.zero_shot import ZeroShotRanker
from flexbench.errors import FlexBenchError
from flexbench.llm.backends.base import Generation, SamplingParams
from flexbench.llm.labels import FINAL_MARKER, PromptMode
from flexbench.llm.prompts import DEFAULT_SYSTEM, PROMPT_VERSION, REASON_SYSTEM, build_prompt
from flexbench.prepared import PreparedDataset
from flexbench.ranker import RankerContext
from flexbench.types import Instance
from flexbench.vocabulary import INTEREST


def test_reason_mode_changes_only_the_answer_format_and_system_line(mock_instances: list[Instance]) -> None:
    x = mock_instances[0]
    ids, default = build_prompt(x, INTEREST, seed=2, mode="ids"), build_prompt(x, INTEREST, seed=2)
    reason = build_prompt(x, INTEREST, seed=2, mode=PromptMode.REASON)
    assert ids == default and ids.mode is PromptMode.IDS and reason.mode is PromptMode.REASON
    assert (ids.messages[0]["content"], reason.messages[0]["content"]) == (DEFAULT_SYSTEM, REASON_SYSTEM)
    head_ids, tail_ids = ids.messages[-1]["content"].rsplit("\n\n", 1)
    head_reason, tail_reason = reason.messages[-1]["content"].rsplit("\n\n", 1)
    assert head_ids == head_reason and reason.shown_ids == ids.shown_ids and reason.labels == ids.labels
    assert "nothing else" in tail_ids and FINAL_MARKER not in tail_ids
    assert f'write the line "{FINAL_MARKER}"' in tail_reason and f"{FINAL_MARKER}\n[{ids.labels[0]}]" in tail_reason
    custom = build_prompt(x, INTEREST, seed=2, mode="reason", system="Be brief.")
    assert custom.messages[0]["content"] == "Be brief."
    assert isinstance(PROMPT_VERSION, int) and PROMPT_VERSION >= 2
    with pytest.raises(ValueError, match="choose one of ids, reason"):
        build_prompt(x, INTEREST, seed=2, mode="think")


class CannedBackend:
    """Answers every prompt with a rationale that mentions IDs, then the marker and the shown labels."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def generate(self, prompts: Sequence[str], params: SamplingParams,
                 candidate_ids: Sequence[Sequence[str]] | None = None) -> list[list[Generation]]:
        self.prompts += prompts
        out = []
        for text in prompts:
            labels = [line.split("]", 1)[0][1:] for line in text.splitlines() if line[:1] == "[" and "] " in line]
            rationale = f"[{labels[-1]}] looks off-topic.\n[{labels[-2]}] too.\n"
            out.append([Generation(rationale + FINAL_MARKER + "\n" + "".join(f"[{x}]\n" for x in labels), (), "stop")])
        return out


@pytest.mark.parametrize("mode", ["ids", "reason"])
def test_zero_shot_rankers_parse_in_their_mode_and_record_it(mock_dataset: PreparedDataset, mode: str) -> None:
    instances = mock_dataset.instances("test", limit=3)
    ranker = ZeroShotRanker(RankerContext(mock_dataset, seed=1, options={"prompt_mode": mode}),
                            backend=CannedBackend(), tokenizer=None)
    rankings = ranker.rank(instances, INTEREST)
    provenance = ranker.provenance("interest") if callable(ranker.provenance) else ranker.provenance
    assert {k: provenance[k] for k in ("prompt_mode", "prompt_version")} == {"prompt_mode": mode,
                                                                           "prompt_version": PROMPT_VERSION}
    for x, r in zip(instances, rankings, strict=True):
        assert r.parsed and r.extra["prompt_mode"] == mode and r.extra["parse_failure"] is None
        before = r.raw_output.index(FINAL_MARKER) + len(FINAL_MARKER) + 1
        if mode == "reason":  # the list under the marker, and the rationale's length before it
            assert tuple(r.item_ids) == tuple(r.extra["shown_ids"]) and r.extra["reasoning_chars"] == before
        else:  # labels only: the rationale's list lines merge with the answer (no marker boundary)
            assert len(r.item_ids) == x.k + 2 and r.extra["reasoning_chars"] == 0


def test_an_unknown_prompt_mode_is_a_clear_option_error(mock_dataset: PreparedDataset) -> None:
    with pytest.raises(FlexBenchError, match="prompt_mode='think'; choose one of ids, reason"):
        ZeroShotRanker(RankerContext(mock_dataset, options={"prompt_mode": "think"}))
