"""The static page in headless Chromium: the JS runs, sorting works, and it shows the Markdown's numbers."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

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
    """Collects ``data-cell`` -> text, per-table row order of ``data-cell`` keys, and <html> attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: dict[str, str] = {}
        self.order: dict[str, list[str]] = {}
        self.root: dict[str, str | None] = {}
        self._table: str | None = None
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "html":
            self.root = a
        elif tag == "table":
            self._table = a.get("id")
        elif tag == "td" and a.get("data-cell"):
            self._cell = a["data-cell"]
            self.cells[self._cell] = ""
            self.order.setdefault(self._table or "", []).append(self._cell)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self.cells[self._cell] += data


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


def test_page_renders_the_markdown_numbers(fixed_store: ResultStore, fixed_checkpoints: Path,
                                           tmp_path: Path) -> None:
    out = tmp_path / "out"
    page = render_outputs(fixed_store, out, checkpoints=fixed_checkpoints)[-1]
    dom = _dump_dom(page, "#sort=lb-kuairec-interest-test:1:asc", tmp_path)
    assert dom.root.get("data-sortable") == "ready"  # the inline script ran

    expected = _markdown_cells(out)
    shown = {k: re.sub(r"\s+", " ", v).strip() for k, v in dom.cells.items() if k.split("|")[0] in
             {t.table_id for t in TABLES}}
    assert shown == expected
    assert shown["1|kuairec|interest|flexrec|ndcg@5"].startswith("0.553▲ (0.597)")
    assert dom.cells["critic|kuairec||critic|mse"] == "0.410 (0.328)"

    assert dom.cells["lb|esci|esci|rec-r1|ndcg@5"] == "—"  # unfinished run: no partial mean
    board = dom.order["lb-kuairec-interest-test"]
    ndcg5 = [k.split("|")[3] for k in board if k.endswith("|ndcg@5")]
    assert ndcg5 == ["zero-shot", "star", "flexrec-noncausal", "flexrec"]  # sorted ascending by the hash
    for ranker in ndcg5:
        stored = fixed_store.load_run(RunKey(ranker, "kuairec", "interest")).metrics["ndcg@5"]
        assert dom.cells[f"lb|kuairec|interest|{ranker}|ndcg@5"] == f"{stored:.3f}"
