"""The paper's evaluation scale and the ``--paper-setting`` switch of ``flexbench tables``.

Paper (Appendix B.5, Section 4): 5,000 training and 1,000 test instances per
dataset and need, K = 30 candidates, Qwen2.5-3B-Instruct as the base LLM. With a
CUDA GPU the switch keeps only stored runs at that scale (1,000 test instances,
K = 30 where the run recorded K), so sample-scale runs never fill a paper-scale
table. Without one it says what it would run and falls back to every stored run
(the bundled sample).
"""

from __future__ import annotations

from dataclasses import dataclass

from flexbench.results_view import FilteredStore, ResultSource
from flexbench.types import RunResult


@dataclass(frozen=True, slots=True)
class PaperSetting:
    """The paper's scale."""

    train_instances: int = 5000
    test_instances: int = 1000
    k: int = 30
    model: str = "Qwen/Qwen2.5-3B-Instruct"

    def __post_init__(self) -> None:
        if min(self.train_instances, self.test_instances, self.k) <= 0:
            raise ValueError("instance counts and K must be positive")

    def describe(self) -> str:
        """One sentence naming the scale."""
        return (f"{self.train_instances:,} training / {self.test_instances:,} test instances per dataset "
                f"and need, K = {self.k}, {self.model}")

    def holds_for(self, run: RunResult) -> bool:
        """Whether ``run`` was evaluated at this scale (K checked where the run recorded it)."""
        config = run.provenance.get("config") or {}
        k = config.get("k") if isinstance(config, dict) else None
        return run.n_instances == self.test_instances and (k is None or int(k) == self.k)


PAPER_SETTING = PaperSetting()


class PaperScaleStore(FilteredStore):
    """A view of a store that shows only runs at the paper's scale (``setting.holds_for``)."""

    def __init__(self, store: ResultSource, setting: PaperSetting = PAPER_SETTING) -> None:
        super().__init__(store, setting.holds_for)
        self.setting = setting


def plan_paper_setting(store: ResultSource, has_cuda: bool,
                       setting: PaperSetting = PAPER_SETTING) -> tuple[ResultSource, list[str]]:
    """The store to render under ``--paper-setting`` and the lines to tell the user."""
    runs = store.load_runs()
    at_scale = sum(setting.holds_for(r) for r in runs)
    lines = [f"Paper setting: {setting.describe()}."]
    if not has_cuda:
        lines += [("No CUDA GPU here: at the paper's scale `flexbench eval --all` would rank "
                  f"{setting.test_instances:,} test instances per dataset and need with {setting.model} "
                  f"and the trainers would use {setting.train_instances:,} training instances; that needs a GPU."),
                  (f"Falling back to the bundled sample: rendering all {len(runs)} stored runs "
                  f"({at_scale} of them at the paper's scale).")]
        return store, lines
    lines.append(f"Rendering the {at_scale} of {len(runs)} stored runs at the paper's scale; "
                 "other cells are shown as missing.")
    return PaperScaleStore(store, setting), lines
