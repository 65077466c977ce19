"""One-line provenance of the runs behind a table: code, data, models, seeds, hardware, scale.

Only values stored in the runs' provenance are shown (no clock is read), so the
line is identical on every re-render of the same store.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from flexbench.types import RunResult


def _text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def _code(value: Any) -> str:
    if isinstance(value, dict) and value.get("git_commit"):
        dirty = "+dirty" if value.get("dirty") else ""
        return f"{str(value['git_commit'])[:12]}{dirty} (flexbench {value.get('package', '?')})"
    return _text(value) if value not in (None, "") else ""


def _hardware(value: Any) -> str:
    if isinstance(value, dict) and "cpu" in value:
        gpu = value.get("gpu")
        return f"{value['cpu']} ({value.get('cpu_count', '?')} CPUs), {gpu or 'no GPU'}"
    return _text(value) if value not in (None, "") else ""


def _distinct(values: Iterable[Any]) -> str:
    seen = sorted({_text(v) for v in values if v not in (None, "")})
    return ", ".join(seen) if seen else "not recorded"


def _span(values: Iterable[Any]) -> str:
    seen = sorted({_text(v) for v in values if v not in (None, "")})
    if not seen:
        return "not recorded"
    return seen[0] if len(seen) == 1 else f"{seen[0]} to {seen[-1]}"


def _per_dataset(runs: Iterable[RunResult], get) -> str:
    by_ds: dict[str, set[str]] = {}
    for run in runs:
        value = get(run)
        if value not in (None, ""):
            by_ds.setdefault(run.key.dataset, set()).add(_text(value))
    if not by_ds:
        return "not recorded"
    return "; ".join(f"{ds}={', '.join(sorted(v))}" for ds, v in sorted(by_ds.items()))


def provenance_fields(runs: Iterable[RunResult]) -> Mapping[str, str]:
    """Distinct provenance values over ``runs``, by field name, in display order."""
    runs = list(runs)
    if not runs:
        return {}
    prov = [r.provenance for r in runs]
    return {
        "runs": str(len(runs)),
        "code": _distinct(_code(p.get("code_version")) for p in prov),
        "data": _per_dataset(runs, lambda r: str(r.provenance.get("data_fingerprint") or "")[:12]),
        "instances": _per_dataset(runs, lambda r: r.n_instances),
        "models": _distinct(p.get("model") for p in prov),
        "seeds": _distinct(p.get("seed") for p in prov),
        "hardware": _distinct(_hardware(p.get("hardware")) for p in prov),
        "finished": _span(p.get("finished_at") for p in prov),
    }


def provenance_line(runs: Iterable[RunResult]) -> str:
    """``Provenance: runs 3 · code abc · data kuairec=f00d · ...`` or a line saying nothing is stored."""
    fields = provenance_fields(runs)
    if not fields:
        return "Provenance: no stored runs behind this table."
    return "Provenance: " + " · ".join(f"{k} {v}" for k, v in fields.items())
