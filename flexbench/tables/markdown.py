"""Markdown rendering of resolved tables, the critic table, the figure index and Figure 2's page.

Cell text: ``ours (paper)``; ``—`` where nothing is stored (never a guess),
``incomplete`` for a run still in progress, ``other train need`` when the stored
run was trained on a need other than the table's, ``train need not recorded`` when
a trained run's provenance does not say. Numbers are rounded to three
decimals only here (gains to one decimal, in percent). Output depends on the
stored results alone, so re-rendering the same store gives identical bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from flexbench.tables.cells import Cell, CellStatus, ResolvedRow, ResolvedTable
from flexbench.tables.critic import CriticReport, critic_cells
from flexbench.tables.joint import LEGENDS, Bar, JointPanel, Series, bar_plan
from flexbench.tables.layout import DATASET_TITLES, METRIC_TITLES, CriticLayout
from flexbench.tables.paper import PaperNumbers
from flexbench.tables.provenance import provenance_line
from flexbench.tables.significance import ALPHA, BETTER, WORSE

MISSING = "—"
LEGEND = (f"Each cell: our stored value (the paper's reported value in parentheses). {MISSING}: no stored "
          "result; 'incomplete', 'other train need', 'train need not recorded': a stored run that cannot "
          f"fill the cell. {BETTER}/{WORSE}: significantly better/worse than the strongest comparison row of the "
          f"column (paired t-test and Fisher randomization test on per-instance scores, both p < {ALPHA}). "
          "Our numbers are computed on our data scale with the models named in the last column where they "
          "differ from the paper's; they are not the paper's numbers.")
CRITIC_LEGEND = (f"Each cell: our value from the stored critic report (the paper's reported value in "
                 f"parentheses). {MISSING}: no report stored, or no number in the paper.")
STATUS_TEXT = {CellStatus.MISSING: MISSING, CellStatus.INCOMPLETE: "incomplete",
               CellStatus.OTHER_TRAIN_NEED: "other train need",
               CellStatus.TRAIN_NEED_UNRECORDED: "train need not recorded"}


def fmt_value(value: float | None, gain: bool = False) -> str:
    """``0.412`` (or ``+12.3%`` for a gain); ``—`` for None."""
    if value is None:
        return MISSING
    return f"{value:+.1f}%" if gain else f"{value:.3f}"


def cell_text(cell: Cell, gain: bool = False) -> str:
    """The Markdown text of one cell: ours, mark, paper in parentheses."""
    ours = fmt_value(cell.value, gain) + cell.mark if cell.status is CellStatus.OK else STATUS_TEXT[cell.status]
    return f"{ours} ({fmt_value(cell.paper, gain)})"


def model_text(rr: ResolvedRow, titles: Sequence[str]) -> str:
    """Our model where it differs from the paper's: one name when every filled group used it,
    else ``group: name`` pairs for the groups that differ."""
    filled = [(t, m) for t, m in zip(titles, rr.models, strict=True) if m is not None]
    differing = [(t, m) for t, m in filled if m]
    if not differing:
        return ""
    if len(differing) == len(filled) and len({m for _, m in differing}) == 1:
        return differing[0][1]
    return "; ".join(f"{t}: {m}" for t, m in differing)


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def render_table(table: ResolvedTable) -> str:
    """The Markdown of one paper table, ending with its provenance line."""
    layout = table.layout
    titles = [DATASET_TITLES.get(g.dataset, g.title) for g in layout.groups]
    header = ["Method"] + [f"{g.title} {METRIC_TITLES[m]}" for g in layout.groups for m in g.metrics]
    header.append("Model (ours, where not the paper's)")
    width = len(header)
    lines = [f"## {layout.title}", "", layout.caption]
    subtitles = [f"{g.title}: {g.subtitle}" for g in layout.groups if g.subtitle]
    if subtitles:
        lines += ["", "Columns: " + "; ".join(subtitles) + "."]
    lines += ["", LEGEND, "", _line(header), _line(["---"] * width)]
    rows = iter(table.rows)
    for section in layout.sections:
        lines.append(_line([f"**{section.title}**"] + [""] * (width - 1)))
        for _ in section.rows:
            rr = next(rows)
            cells = [cell_text(c) for group in rr.cells for c in group]
            lines.append(_line([rr.row.label, *cells, model_text(rr, titles)]))
    if table.gain is not None:
        cells = [cell_text(c, gain=True) for group in table.gain for c in group]
        lines.append(_line(["vs Qwen2.5-3B-Instruct (zero-shot)", *cells, ""]))
    lines += ["", provenance_line(table.runs), ""]
    return "\n".join(lines)


def render_critic(reports: Sequence[CriticReport], layout: CriticLayout, paper: PaperNumbers) -> str:
    """The critic quality table (paper Appendix G) with the paper's numbers in parentheses."""
    header = ["Method"] + [f"{DATASET_TITLES.get(r.dataset, r.dataset)} {t}"
                           for r in reports for t in layout.titles]
    cells = [cell_text(cell) for _, cell in critic_cells(tuple(reports), layout, paper)]
    return "\n".join([
        "## Critic quality (paper Appendix G)", "",
        ("Mean-head MSE and MAE, Pearson correlation of the predicted mean with the target and of the "
         "predicted variance with the squared error, on the held-out test split (8:1:1) of the observed "
         "interactions."),
        "", CRITIC_LEGEND, "", _line(header), _line(["---"] * len(header)), _line(["Critic", *cells]), "",
        critic_provenance(reports), ""])


def critic_provenance(reports: Sequence[CriticReport]) -> str:
    """``Provenance: kuairec: critic/kuairec/report.json (data ..., seed 0); ml-1m: no report.``"""
    parts = []
    for rep in reports:
        if rep.path is None:
            parts.append(f"{rep.dataset}: no report")
            continue
        extra = ", ".join(f"{k} {v}" for k, v in rep.provenance.items())
        state = "" if rep.complete else ", incomplete"
        parts.append(f"{rep.dataset}: {rep.path}" + (f" ({extra}{state})" if extra or state else ""))
    return "Provenance: " + "; ".join(parts) + "."


def render_figure_index(figures: Sequence) -> str:
    """Markdown listing each figure's image and the curves that are missing (never invented)."""
    lines = ["## Figures 3 and 4: validation NDCG over training steps", ""]
    for fig in figures:
        lines.append(f"### {fig.layout.title} ({DATASET_TITLES.get(fig.dataset, fig.dataset)})")
        lines.append("")
        if fig.path is not None:
            lines.append(f"![{fig.layout.title}]({fig.path})")
            lines.append("")
        drawn = ", ".join(fig.drawn) if fig.drawn else "none"
        missing = ", ".join(fig.missing) if fig.missing else "none"
        lines += [f"Curves drawn: {drawn}.", f"Curves missing (no training log stored): {missing}.", ""]
    return "\n".join(lines)



JOINT_LEGEND = ("Each cell: our stored test value. Bars and cells come from stored test runs only: zero-shot is "
                "the base model (label `zero-shot`), single-need the policy trained on the test need (label "
                "`flexrec`), joint one policy trained on all needs with `--needs all` (label `flexrec-joint`, "
                "train need `all`). "
                f"{MISSING}: no stored run; 'incomplete', 'other train need', 'train need not recorded': a stored "
                "run that cannot fill the cell. The paper shows this comparison as a figure without printed "
                "numbers, so there is no paper value to compare.")


def render_joint(panels: Sequence[JointPanel]) -> str:
    """Figure 2's page: per dataset, the image, the table of bar values and the commands for missing bars."""
    from flexbench.vocabulary import get_need

    if not panels:
        return ""
    layout = panels[0].layout
    lines = [f"## {layout.title}", "", JOINT_LEGEND, ""]
    for panel in panels:
        lines += [f"### {DATASET_TITLES.get(panel.dataset, panel.dataset)}", ""]
        if panel.path is not None:
            lines += [f"![{layout.title}]({panel.path})", ""]
        header = ["Test need"] + [f"{METRIC_TITLES[m]} {s.value}" for m in layout.metrics for s in Series]
        lines += [_line(header), _line(["---"] * len(header))]
        for need in panel.needs:
            cells = [_bar_text(panel.bar(s, need), m) for m in layout.metrics for s in Series]
            lines.append(_line([get_need(need).title, *cells]))
        lines += ["", *missing_lines(panel), provenance_line(panel.runs), ""]
    return "\n".join(lines)


def _bar_text(bar: Bar, metric: str) -> str:
    return fmt_value(bar.values[metric]) if bar.status is CellStatus.OK else STATUS_TEXT[bar.status]


def missing_lines(panel: JointPanel) -> list[str]:
    """One line per series with missing bars: which test needs, and the commands that produce them."""
    lines = []
    for series in Series:
        needs = [b.need for b in panel.missing if b.series is series]
        if not needs:
            continue
        steps = " then ".join(f"`{c}`" for c in bar_plan(panel.layout, series, panel.dataset, "N")[2])
        where = "No joint run stored" if series is Series.JOINT else f"Missing: {LEGENDS[series]}"
        lines.append(f"{where} ({', '.join(needs)}): run {steps} for each missing test need N.")
    return [*lines, ""] if lines else []
