"""Machine-readable leaderboards for scripts: ``flexbench leaderboard --format json|csv``.

JSON (``schema: flexbench-leaderboard``, ``version: 1``)::

    {"boards": [{"dataset", "need", "split", "alpha",
                 "protocol": {dataset, split, need, fingerprints, dirty,
                              data: {k, candidates, encoder, history, need_parameters, n_instances,
                                     protocol_version}, n_instances, protocol_version, display_orders, code_versions, limited,
                              random_floor: {metric, value, source}, oracle: {metric, value, source}, data_note},
                 "runs": [{ranker, kind, complete, n_instances, n_available, n, code_version, model,
                           train_need, metrics: {name: value | null}, ci95: {name: [lo, hi] | null},
                           best: [names], worse_than_best: [names], rates: {name: value} | null,
                           order: {permutations, spread, first_slot_share, kendall_tau, chance} | null}]}],
     "need_switch": [{dataset, split, metric, needs, rows: [{ranker, kind, values: {need: value | null},
                                                           ranks: {need: rank | null}}]}]}

CSV: one line per (board, run) with the run's metrics, rates and marks and the
board's protocol fields. Values are stored at full precision (rounding is for
the human renderings only); missing values are empty (CSV) or ``null`` (JSON).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from flexbench.harness import RATE_NAMES
from flexbench.leaderboard.model import Board, NeedSwitch, Row, need_switches
from flexbench.leaderboard.protocol import ProtocolCard
from flexbench.metrics import METRIC_NAMES

ORDER_COLUMNS: tuple[str, ...] = ("permutations", "order_spread", "first_slot_share", "kendall_tau", "chance")
SCHEMA = "flexbench-leaderboard"
VERSION = 1


def card_json(card: ProtocolCard | None) -> dict[str, Any] | None:
    """The protocol card as a JSON-ready dict (``random_floor``/``oracle`` name their metric)."""
    if card is None:
        return None
    out = asdict(card)
    metric = out.pop("metric")
    for name in ("random_floor", "oracle"):
        out[name] = {"metric": metric, **out[name]}
    out["fingerprints"], out["code_versions"], out["limited"] = (list(card.fingerprints), list(card.code_versions),
                                                                 list(card.limited))
    out["dirty"] = card.dirty
    return out


def row_json(row: Row) -> dict[str, Any]:
    """One run of a board as a JSON-ready dict."""
    return {"ranker": row.ranker, "kind": row.kind, "complete": row.complete, "n_instances": row.n_instances,
            "n_available": row.n_available, "n": row.n, "code_version": row.code, "model": row.model,
            "train_need": row.train_need,
            "metrics": {m: row.cells[m].value for m in METRIC_NAMES},
            "ci95": {m: list(c.interval) if (c := row.cells[m]).interval else None for m in METRIC_NAMES},
            "best": [m for m in METRIC_NAMES if row.cells[m].best],
            "worse_than_best": [m for m in METRIC_NAMES if row.cells[m].worse],
            "rates": dict(row.rates) if row.rates is not None else None,
            "order": asdict(row.order) if row.order is not None else None}


def board_json(board: Board) -> dict[str, Any]:
    """One board as a JSON-ready dict."""
    return {"dataset": board.dataset, "need": board.need, "split": board.split, "alpha": board.alpha,
            "protocol": card_json(board.card), "runs": [row_json(r) for r in board.rows]}


def switch_json(switch: NeedSwitch) -> dict[str, Any]:
    """One need-switch matrix as a JSON-ready dict."""
    return {"dataset": switch.dataset, "split": switch.split, "metric": switch.metric, "needs": list(switch.needs),
            "rows": [{"ranker": r.ranker, "kind": r.kind, "values": {n: c.value for n, c in r.cells.items()},
                      "ranks": {n: c.rank for n, c in r.cells.items()}} for r in switch.rows]}


def leaderboard_json(boards: Sequence[Board]) -> str:
    """The whole leaderboard as JSON text (module docstring)."""
    doc = {"schema": SCHEMA, "version": VERSION, "boards": [board_json(b) for b in boards],
           "need_switch": [switch_json(s) for s in need_switches(boards)]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


CSV_COLUMNS: tuple[str, ...] = (
    "dataset", "need", "split", "ranker", "kind", "complete", "n_instances", "n_available", "code_version",
    "model", "train_need", *METRIC_NAMES, *RATE_NAMES, "best", "worse_than_best", "data_fingerprint", "k",
    "protocol_version", "random_floor", "oracle", "reference_metric", *ORDER_COLUMNS)


def _order_columns(row: Row) -> dict[str, Any]:
    """The CSV's order-robustness columns of ``row`` (empty for an incomplete run)."""
    o = row.order
    if o is None:
        return {}
    return dict(zip(ORDER_COLUMNS, (o.permutations, o.spread, o.first_slot_share, o.kendall_tau, o.chance),
                    strict=True))


def leaderboard_csv(boards: Sequence[Board]) -> str:
    """One CSV line per (board, run) with the columns of :data:`CSV_COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for board in boards:
        card = board.card
        protocol = {} if card is None else {
            "data_fingerprint": ";".join(card.fingerprints), "k": card.data.k, "protocol_version": card.protocol_version,
            "random_floor": card.random_floor.value, "oracle": card.oracle.value, "reference_metric": card.metric}
        for row in board.rows:
            data = row_json(row)
            writer.writerow({
                "dataset": board.dataset, "need": board.need, "split": board.split, "ranker": row.ranker,
                "kind": row.kind, "complete": row.complete, "n_instances": row.n_instances,
                "n_available": row.n_available, "code_version": row.code, "model": row.model,
                "train_need": row.train_need, **data["metrics"], **(data["rates"] or {}),
                "best": ";".join(data["best"]), "worse_than_best": ";".join(data["worse_than_best"]), **protocol,
                **_order_columns(row)})
    return buffer.getvalue()
