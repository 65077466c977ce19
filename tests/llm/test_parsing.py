"""Parser tests on realistic and adversarial model outputs; spans and token mapping."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flexbench.llm.labels import INVALID_PREFIX, item_by_label
from flexbench.llm.parsing import (
    DUPLICATE,
    INVALID,
    VALID,
    decode_with_offsets,
    parse_ranking,
    token_entry_index,
)

IDS = tuple(f"B0{j:03d}XYZ" for j in range(30))
ITEM = item_by_label(IDS)

# (name, output, expected labels in order (None = parse failure), statuses if not all valid)
CORPUS: list[tuple[str, str, list[int] | None, list[str] | None]] = [
    ("plain list", "[3]\n[7]\n[12]\n", [3, 7, 12], None),
    ("numbered list", "1. [3]\n2. [7]\n3) [12]", [3, 7, 12], None),
    ("bullets and bold", "- **[3]** comedy\n* [7] music\n• [12]", [3, 7, 12], None),
    ("titles and indented notes", "1. [3] Comedy clip\n   Better than [9] for this user.\n2. [7] Music\n3. [12] Pets",
     [3, 7, 12], None),
    ("json numbers", '{"ranking": [3, 7, 12]}', [3, 7, 12], None),
    ("json strings", '["3", "7", "12"]', [3, 7, 12], None),
    ("json bracketed strings", '{"ranking": ["[3]", "[7]", "[12]"]}', [3, 7, 12], None),
    ("pretty json", '{\n  "ranking": [\n    "[3]",\n    "[7]",\n    "[12]"\n  ]\n}', [3, 7, 12], None),
    ("reasoning then marker", ("The user likes pets, so [5] and [9] look good, but [2] less.\n\n"
                               "Answer:\n[3]\n[7]\n[12]"), [3, 7, 12], None),
    ("reasoning with a list before the final answer",
     "Candidates about pets: [5], [9], [11], [14].\n\n### Final answer\n1. [3]\n2. [7]", [3, 7], None),
    ("reasoning without marker", "I think [5] is fun and [9] is great.\n[3]\n[7]\n[12]\n[1]", [3, 7, 12, 1], None),
    ("answer then explanation", "[3]\n[7]\n[12]\n\nI put [3] first because [3] and [7] are pets.",
     [3, 7, 12], None),
    ("inline after sentence", "After weighing everything, the ranking is [3] > [7] > [12].", [3, 7, 12], None),
    ("marker inline", "Final ranking: [3], [7], [12]", [3, 7, 12], None),
    ("glued punctuation", "[3],[7];[12].[1]!", [3, 7, 12, 1], None),
    ("glued to words", "IDs:[3][7][12]", [3, 7, 12], None),
    ("spaces and hash", "[ 3 ]\n[#7]\n[ 12]", [3, 7, 12], None),
    ("leading zeros", "[03]\n[007]", [3, 7], None),
    ("fullwidth look-alikes", "［３］\n［７］\n［１２］", [3, 7, 12], None),
    ("lenticular brackets", "【3】【7】【12】", [3, 7, 12], None),
    ("zero-width inside", "[\u200b3]\n[7\u200d]\n[1\u200b2]", [3, 7, 12], None),
    ("arabic-indic digits", "[٣]\n[٧]", [3, 7], None),
    ("truncated list", "[3]\n[7]\n[1", [3, 7], None),
    ("truncated json", '["3", "7", "1', [3, 7], None),
    ("invalid and duplicate", "[3]\n[45]\n[3]\n[0]\n[7]", [3, 45, 3, 0, 7],
     [VALID, INVALID, DUPLICATE, INVALID, VALID]),
    ("prose ranking", "I would put [3] first, then [7], and finally [12].", [3, 7, 12], None),
    ("raw item IDs are not labels", "B0003XYZ, B0007XYZ\n[7]", [7], None),
    ("no IDs", "I cannot rank these items.", None, None),
    ("empty", "", None, None),
    ("numbers without brackets", "3, 7, 12", None, None),
]


@pytest.mark.parametrize(("name", "text", "labels", "statuses"), CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(name: str, text: str, labels: list[int] | None, statuses: list[str] | None) -> None:
    result = parse_ranking(text, IDS)
    if labels is None:
        assert not result.parsed and result.entries == ()
        return
    assert result.parsed
    got = [ITEM.get(int("".join(c for c in _digits(e.raw))), None) for e in result.entries]
    assert got == [ITEM.get(v) for v in labels]
    assert [e.status for e in result.entries] == (statuses or [VALID] * len(labels))
    for entry in result.entries:
        assert text[entry.span[0]:entry.span[1]] == entry.raw
    starts = [e.span[0] for e in result.entries]
    assert starts == sorted(starts)


def _digits(raw: str) -> str:
    import unicodedata

    return "".join(str(unicodedata.digit(c)) for c in unicodedata.normalize("NFKC", raw) if c.isdigit())


def test_emitted_ids_and_counts() -> None:
    result = parse_ranking("[3]\n[45]\n[3]\n[7]", IDS)
    assert result.emitted_ids == (ITEM[3], f"{INVALID_PREFIX}45", ITEM[3], ITEM[7])
    assert result.item_ids == (ITEM[3], ITEM[7])
    assert (result.n_invalid, result.n_duplicate) == (1, 1)


def test_labels_do_not_depend_on_candidate_order() -> None:
    text = "[3]\n[7]\n[12]"
    assert parse_ranking(text, IDS).item_ids == parse_ranking(text, tuple(reversed(IDS))).item_ids


@settings(max_examples=60, deadline=None)
@given(perm=st.permutations(list(range(1, 31))), sep=st.sampled_from(["\n", ", ", " > ", "\n\n", " "]),
       numbered=st.booleans())
def test_any_well_formed_permutation_round_trips(perm: list[int], sep: str, numbered: bool) -> None:
    prefix = (lambda i: f"{i + 1}. ") if numbered and "\n" in sep else (lambda i: "")
    text = sep.join(f"{prefix(i)}[{label}]" for i, label in enumerate(perm))
    result = parse_ranking(text, IDS)
    assert result.item_ids == tuple(ITEM[label] for label in perm)
    assert result.n_invalid == result.n_duplicate == 0


def test_token_entry_index_overlap_rules() -> None:
    spans = [(2, 5), (6, 10)]
    offsets = [(0, 2), (2, 3), (3, 5), (5, 7), (7, 10), (10, 11), (0, 0), (4, 8)]
    # (5, 7) overlaps entry 1 by one char; (4, 8) overlaps entry 0 by 1 and entry 1 by 2
    assert token_entry_index(offsets, spans).tolist() == [-1, 0, 0, 1, 1, -1, -1, 1]
    assert token_entry_index(offsets, []).tolist() == [-1] * len(offsets)
    assert token_entry_index([], spans).shape == (0,)


ANSWER = "Reasoning: [5] is close.\nAnswer:\n1. [3]\n2. [12]\n3. 【7】\n4. [29]"


@pytest.mark.parametrize("tokenizer_name", ["smollm2_tokenizer", "minilm_tokenizer"])
def test_spans_map_to_the_right_tokens(tokenizer_name: str, request: pytest.FixtureRequest) -> None:
    tok = request.getfixturevalue(tokenizer_name)
    result = parse_ranking(ANSWER, IDS)
    assert [e.item_id for e in result.entries] == [ITEM[3], ITEM[12], ITEM[7], ITEM[29]]
    enc = tok(ANSWER, return_offsets_mapping=True, add_special_tokens=False)
    index = token_entry_index(enc["offset_mapping"], result.spans)
    for j, (start, end) in enumerate(result.spans):
        mine = [k for k, e in enumerate(index) if e == j]
        assert mine, f"entry {j} got no token"
        covered = "".join(ANSWER[a:b] for a, b in (enc["offset_mapping"][k] for k in mine))
        assert _digits(covered) == _digits(ANSWER[start:end])  # the label's digits are all there
        for k in mine:
            a, b = enc["offset_mapping"][k]
            assert min(b, end) > max(a, start)
    outside = [k for k, e in enumerate(index) if e == -1]
    for k in outside:
        a, b = enc["offset_mapping"][k]
        assert all(min(b, e) <= max(a, s) for s, e in result.spans)


def test_decode_with_offsets_lines_up_generated_tokens(smollm2_tokenizer) -> None:
    tok = smollm2_tokenizer
    ids = tok.encode(ANSWER, add_special_tokens=False) + [tok.eos_token_id]
    text, offsets = decode_with_offsets(tok, ids)
    assert text == ANSWER
    assert offsets[-1][0] == offsets[-1][1]  # EOS is zero-width
    assert "".join(text[a:b] for a, b in offsets) == text
    result = parse_ranking(text, IDS)
    index = token_entry_index(offsets, result.spans)
    pieces = {j: "".join(text[a:b] for (a, b), e in zip(offsets, index, strict=True) if e == j)
              for j in range(len(result.entries))}
    assert pieces[0].strip() == "[3]" and pieces[1].strip() == "[12]"
    assert np.count_nonzero(index >= 0) >= 4 * 3


RATIONALE_LINES = "[5] is about pets, a good fit.\n[9] is music, less so.\n\n"
# (name, output, labels in ids mode, labels in reason mode); None = parse failure
REASON_CORPUS: list[tuple[str, str, list[int] | None, list[int] | None]] = [
    ("list-shaped rationale then marker", RATIONALE_LINES + "Final ranking:\n[3]\n[7]\n[12]",
     [5, 9, 3, 7, 12], [3, 7, 12]),
    ("rationale run then marker", "Pets: [5], [9], [11], [14] fit.\nFinal ranking:\n[3]\n[7]", [3, 7], [3, 7]),
    ("truncated before the list", "The user likes pets, so [5] and [9] look good, but [2]", [5, 9, 2], None),
    ("rationale then unmarked list", "I think [5] is fun and [9] is great.\n[3]\n[7]\n[12]\n[1]",
     [3, 7, 12, 1], [3, 7, 12, 1]),
    ("marker in the rationale, then the final one",
     "The answer: it depends. [5] is good.\n[6] too.\nFinal ranking:\n1. [3]\n2. [7]", [6, 3, 7], [3, 7]),
    ("json after marker", "Pets matter, so [5].\nFinal ranking:\n[3, 7, 12]", [3, 7, 12], [3, 7, 12]),
    ("inline run after marker", "Short reason.\nFinal ranking: [3] > [7] > [12]", [3, 7, 12], [3, 7, 12]),
    ("prose after marker", "Reason.\nFinal ranking: I pick [3], then [7].", [3, 7], [3, 7]),
    ("ids only", "[3]\n[7]\n[12]", [3, 7, 12], [3, 7, 12]),
]


@pytest.mark.parametrize(("name", "text", "ids_labels", "reason_labels"), REASON_CORPUS,
                         ids=[c[0] for c in REASON_CORPUS])
def test_reason_mode_takes_the_last_complete_list(name: str, text: str, ids_labels: list[int] | None,
                                                   reason_labels: list[int] | None) -> None:
    for mode, labels in (("ids", ids_labels), ("reason", reason_labels)):
        result = parse_ranking(text, IDS, mode=mode)
        if labels is None:
            assert not result.parsed and result.failure == "no-list", mode
            continue
        assert result.parsed and result.failure is None, mode
        assert [e.item_id for e in result.entries] == [ITEM[v] for v in labels], mode
        assert text[result.answer_start:].startswith(result.entries[0].raw)


def test_reasoning_length_is_the_text_before_the_list() -> None:
    rationale = "The user watches pets; [5] is one, but [3] is newer.\nFinal ranking:\n"
    result = parse_ranking(rationale + "[3]\n[5]\n", IDS, mode="reason")
    assert result.answer_start == len(rationale) and result.item_ids == (ITEM[3], ITEM[5])
    assert parse_ranking("[3]\n[5]", IDS).answer_start == 0
    assert parse_ranking("nothing", IDS).answer_start is None


@settings(max_examples=30, deadline=None)
@given(perm=st.permutations(list(range(1, 31))), mentioned=st.lists(st.integers(1, 30), max_size=8),
       list_shaped=st.booleans())
def test_reason_mode_round_trips_any_list_after_any_rationale(perm: list[int], mentioned: list[int],
                                                              list_shaped: bool) -> None:
    if list_shaped:
        rationale = "".join(f"[{m}] looks relevant here.\n" for m in mentioned)
    else:
        rationale = "I weighed " + ", ".join(f"[{m}]" for m in mentioned) + " against the rest.\n"
    text = rationale + "\nFinal ranking:\n" + "\n".join(f"[{label}]" for label in perm)
    result = parse_ranking(text, IDS, mode="reason")
    assert result.item_ids == tuple(ITEM[label] for label in perm) and result.n_duplicate == 0
