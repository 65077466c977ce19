"""The static page in headless Chromium: the JS runs, sorting works within kind groups, it shows the Markdown's
numbers, best and significance marks, the protocol cards and the charts; a screenshot is kept as an artefact
(the test's tmp dir, and ``$FLEXBENCH_ARTEFACTS`` when set)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from table_fixtures import add_run, scores

from flexbench.leaderboard import build_boards, write_markdown
from flexbench.results import ResultStore
from flexbench.tables.build import render_outputs
from flexbench.tables.layout import GAIN_ROW, TABLES
from flexbench.types import RunKey

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                 "(apt-get install -y chromium; .ci/setup does it when run as root)")]
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


class _Cells(HTMLParser):
    """Collects ``data-cell`` -> text and class, per-table row order of ``data-cell`` keys, <html> attributes,
    chart bars and lines (``data-ranker``/``data-line`` groups) and protocol cards."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self.order: dict[str, list[str]] = {}
        self.root: dict[str, str | None] = {}
        self.bars: list[dict[str, str | None]] = []
        self.lines: list[dict[str, str | None]] = []
        self.cards: dict[str, str] = {}
        self.strong: set[str] = set()
        self._table: str | None = None
        self._cell: str | None = None
        self._card: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.root = a
        elif tag == "table":
            self._table = a.get("id")
        elif tag == "td" and a.get("data-cell"):
            self._cell = a["data-cell"]
            self.cells[self._cell] = ""
            self.classes[self._cell] = a.get("class") or ""
            self.order.setdefault(self._table or "", []).append(self._cell)
        elif tag == "strong" and self._cell is not None:
            self.strong.add(self._cell)
        elif tag == "g" and a.get("data-ranker"):
            self.bars.append(a)
        elif tag == "g" and a.get("data-line"):
            self.lines.append(a)
        elif tag == "dl" and a.get("data-card"):
            self._card = a["data-card"]
            self.cards[self._card] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None
        elif tag == "dl":
            self._card = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self.cells[self._cell] += data
        if self._card is not None:
            self.cards[self._card] += data + " "


def _dump_dom(page: Path, fragment: str, tmp_path: Path) -> _Cells:
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                           page.resolve().as_uri() + fragment], check=False, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parser = _Cells()
    parser.feed(proc.stdout)
    return parser


def _markdown_cells(out: Path) -> dict[str, str]:
    """``table|dataset|need|row|metric`` -> cell text, read back from the Markdown files."""
    cells = {}
    for layout in TABLES:
        lines = (out / f"table{layout.table_id}.md").read_text(encoding="utf-8").splitlines()
        body = [ln for ln in lines if ln.startswith("| ") and not ln.startswith("| **")][2:]
        rankers = [r.ranker for r in layout.rows] + ([GAIN_ROW] if layout.gain_row else [])
        assert len(body) == len(rankers)
        columns = [(g, m) for g in layout.groups for m in g.metrics]
        for ranker, line in zip(rankers, body, strict=True):
            texts = [t.strip() for t in line.strip("|").split(" | ")][1:1 + len(columns)]
            for (g, m), text in zip(columns, texts, strict=True):
                cells[f"{layout.table_id}|{g.dataset}|{g.need}|{ranker}|{m}"] = text
    return cells


def _board_cells(out: Path) -> dict[str, str]:
    """``lb|dataset|need|ranker|metric`` -> cell text of the Markdown boards, without the bold markers."""
    from flexbench.metrics import METRIC_NAMES

    cells = {}
    for path in sorted(out.glob("*.md")):
        need = None
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("## ") and "(`" in line:
                need = line.split("(`")[1].split("`")[0]
            elif need and line.startswith("| ") and not line.startswith("| method"):
                texts = [t.strip() for t in line.strip("|").split(" | ")]
                for metric, text in zip(METRIC_NAMES, texts[2:8], strict=True):
                    cells[f"lb|{path.stem}|{need}|{texts[0]}|{metric}"] = text.replace("**", "")
    return cells


def _screenshot(page: Path, tmp_path: Path) -> Path:
    shot = tmp_path / "leaderboard.png"
    proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'shot-profile'}", "--hide-scrollbars",
                           "--window-size=1280,2200", f"--screenshot={shot}", page.resolve().as_uri()],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    if os.environ.get("FLEXBENCH_ARTEFACTS"):
        target = Path(os.environ["FLEXBENCH_ARTEFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / shot.name)
    return shot


def test_page_renders_the_markdown_numbers(fixed_store: ResultStore, fixed_checkpoints: Path,
                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    page = render_outputs(fixed_store, out, checkpoints=fixed_checkpoints)[-1]
    dom = _dump_dom(page, "", tmp_path)
    assert dom.root.get("data-sortable") == "ready"  # the inline script ran

    expected = _markdown_cells(out)
    shown = {k: re.sub(r"\s+", " ", v).strip() for k, v in dom.cells.items() if k.split("|")[0] in
             {t.table_id for t in TABLES}}
    assert shown == expected
    assert shown["1|kuairec|interest|flexrec|ndcg@5"].startswith("0.553▲ (0.597)")
    assert dom.cells["critic|kuairec||critic|mse"] == "0.410 (0.328)"
    assert dom.cells["lb|esci|esci|rec-r1|ndcg@5"] == "—"  # unfinished run: no partial mean


def test_boards_show_marks_cards_and_charts(fixed_store: ResultStore, fixed_checkpoints: Path,
                                            tmp_path: Path) -> None:
    add_run(fixed_store, "random", "kuairec", "interest", scores(0.20, 0.1, 9), model=None)
    add_run(fixed_store, "oracle-interest", "kuairec", "interest", scores(1.0, 0.0, 0), model=None)
    out = tmp_path / "out"
    page = render_outputs(fixed_store, out, checkpoints=fixed_checkpoints)[-1]
    boards = build_boards(fixed_store)
    write_markdown(boards, out / "boards")
    dom = _dump_dom(page, "#sort=lb-kuairec-interest-test:2:asc", tmp_path)

    board_cells = _board_cells(out / "boards")
    shown = {k: v.strip() for k, v in dom.cells.items() if k.startswith("lb|")}
    assert shown == board_cells  # the HTML boards are the Markdown boards, marks included
    assert any("†" in v for v in shown.values())
    best = "lb|kuairec|interest|oracle-interest|ndcg@5"
    assert best in dom.strong and "best" in dom.classes[best]
    assert "best" not in dom.classes["lb|kuairec|interest|flexrec|ndcg@5"]

    board = dom.order["lb-kuairec-interest-test"]
    ndcg5 = [k.split("|")[3] for k in board if k.endswith("|ndcg@5")]
    # grouped by kind (reference, oracle, classic, zero-shot, trained), sorted ascending within each kind
    assert ndcg5 == ["random", "oracle-interest", "star", "zero-shot", "flexrec-noncausal", "flexrec"]

    card = dom.cards["kuairec|interest|test"]
    assert "random floor NDCG@5" in card and "stored `random` run" in card and "c0ffee" in card

    bars = [b for b in dom.bars if b["data-ranker"] in ndcg5][:6]
    assert [b["data-ranker"] for b in bars] == ["random", "oracle-interest", "star", "zero-shot", "flexrec",
                                                "flexrec-noncausal"]  # the board's own (registry) order
    for bar in bars:
        stored = fixed_store.load_run(RunKey(bar["data-ranker"], "kuairec", "interest")).metrics["ndcg@5"]
        assert float(bar["data-mean"]) == stored
        assert float(bar["data-lo"]) <= stored <= float(bar["data-hi"])
    lines = {line["data-line"]: float(line["data-value"]) for line in dom.lines[:2]}
    random_value = fixed_store.load_run(RunKey("random", "kuairec", "interest")).metrics["ndcg@5"]
    assert lines == {"random": random_value, "oracle": 1.0}
    assert dom.cells["switch|kuairec|interest|flexrec"].endswith("(#2)")  # need-switch table: oracle first

    shot = _screenshot(page, tmp_path)
    assert shot.stat().st_size > 20_000
