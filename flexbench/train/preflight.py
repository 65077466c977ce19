"""Before training: show the memory plan, refuse a run that cannot fit, and ``flexbench train --dry-run``.

:func:`check_before_training` runs in :func:`flexbench.train.run.train_policy`
before the model loads: on GPU it plans against the visible card (memory of
``accelerator.device``, ``accelerator.num_processes`` processes) and prints the
plan table on the main process; on CPU it plans against the machine's RAM (all
local processes together) and prints one line. A plan that does not fit raises
:class:`~flexbench.errors.FlexBenchError` with suggestions unless
``memory_check=false``.

:func:`dry_run` prints the resolved config as JSON on stdout and the plan on
stderr (so ``flexbench train flexrec --dry-run | jq`` works), for the visible GPU
or for ``--gpu-memory-gb X`` / ``--num-gpus N``; it never loads a model.
"""

from __future__ import annotations

import json
import sys
from typing import Any, TextIO

from flexbench.errors import FlexBenchError
from flexbench.train.config import TrainConfig
from flexbench.train.memory import (
    GIB,
    PHASES,
    MemoryPlan,
    Setup,
    check_fits,
    plan_memory,
    resolve_engine,
    suggestions,
)


def plan_rows(plan: MemoryPlan) -> list[tuple[str, str, str, str]]:
    """``(component, GiB, phases, note)`` rows, then the phase totals, headroom and planned peak."""
    rows = [(c.name, f"{c.bytes / GIB:.2f}", "all" if c.phases == PHASES else ", ".join(c.phases), c.note)
            for c in plan.components]
    rows += [(f"total in {p}", f"{plan.phase_bytes(p) / GIB:.2f}", p, "peak" if p == plan.peak_phase else "")
             for p in PHASES]
    rows.append(("context + fragmentation headroom", f"{plan.headroom / GIB:.2f}", "all",
                 "1 GiB CUDA context + 10 %" if plan.setup.device == "cuda" else "10 %"))
    card = plan.setup.card_bytes
    rows.append(("planned peak per process", f"{plan.total / GIB:.2f}", plan.peak_phase,
                 f"of {card / GIB:.1f} GiB: {verdict(plan)}" if card else "device memory unknown"))
    return rows


def verdict(plan: MemoryPlan) -> str:
    """``fits (N % used)``, ``DOES NOT FIT`` or ``unknown``."""
    if plan.fits is None:
        return "unknown"
    return f"fits ({plan.total / plan.setup.card_bytes:.0%} used)" if plan.fits else "DOES NOT FIT"


def plan_text(plan: MemoryPlan) -> str:
    """The plan as plain text (no dependencies; for logs and ``benchmarks/gpu_smoke.py``)."""
    rows = [("component", "GiB", "phase", "note"), *plan_rows(plan)]
    widths = [max(len(r[k]) for r in rows) for k in range(4)]
    lines = [f"memory plan: {plan.summary}"]
    lines += ["  " + "  ".join(v.ljust(w) if k != 1 else v.rjust(w) for k, (v, w) in enumerate(zip(r, widths)))
              for r in rows]
    return "\n".join(lines + [f"  note: {n}" for n in plan.notes])


def print_plan(plan: MemoryPlan, stream: TextIO | None = None) -> None:
    """Print the plan as a rich table to ``stream`` (stderr), plain text when rich is missing."""
    stream = stream or sys.stderr
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(plan_text(plan), file=stream)
        return
    table = Table(title=f"memory plan: {plan.summary}", title_justify="left")
    for name, justify in (("component", "left"), ("GiB/process", "right"), ("phase", "left"), ("note", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    rows = plan_rows(plan)
    for k, row in enumerate(rows):
        table.add_row(*row, end_section=k in (len(plan.components) - 1, len(rows) - 2))
    console = Console(file=stream, width=max(120, Console(file=stream).width))
    console.print(table)
    for note in plan.notes:
        console.print(f"note: {note}")


def device_setup(cfg: TrainConfig, accelerator: Any) -> Setup:
    """The visible device: the GPU's memory per process, or on CPU the RAM shared by the local processes."""
    import torch

    engine = resolve_engine(cfg, gpu=torch.cuda.is_available())
    if accelerator.device.type == "cuda":
        total = torch.cuda.get_device_properties(accelerator.device).total_memory
        return Setup(accelerator.num_processes, float(total), "cuda", engine)
    try:
        import psutil
    except ImportError:
        return Setup(accelerator.num_processes, None, "cpu", engine)
    local = max(1, getattr(accelerator.state, "local_num_processes", None) or accelerator.num_processes)
    return Setup(accelerator.num_processes, psutil.virtual_memory().total / local, "cpu", engine)


def check_before_training(cfg: TrainConfig, method: Any, accelerator: Any) -> MemoryPlan | None:
    """Plan, print (main process) and check ``cfg`` on the visible device; ``None`` when the check is off."""
    if not cfg.memory_check:
        return None
    setup = device_setup(cfg, accelerator)
    plan = plan_memory(cfg, method, setup)
    if accelerator.is_main_process:
        if setup.device == "cuda":
            print_plan(plan)
        else:
            room = f"of {setup.card_bytes / GIB:.1f} GiB RAM per process" if setup.card_bytes else "(RAM unknown)"
            print(f"memory plan: {plan.total / GIB:.1f} GiB {room} ({plan.summary})", file=sys.stderr)
    check_fits(plan, cfg, method)
    return plan


def dry_run(request: Any, *, gpu_memory_gb: float | None = None, num_gpus: int | None = None,
            stdout: TextIO | None = None, stderr: TextIO | None = None) -> MemoryPlan:
    """``flexbench train METHOD --dry-run``: resolved config (JSON, stdout), then the memory plan (stderr)."""
    from flexbench.train.methods import METHODS, get_method
    from flexbench.train.run import build_config

    name = str(request.options.get("method", request.method))
    if name not in METHODS:
        raise FlexBenchError(f"--dry-run plans the policy methods ({', '.join(METHODS)}), not {name!r}")
    method = get_method(name)
    cfg = build_config(method, request)
    print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True), file=stdout or sys.stdout)
    setup = planned_setup(cfg, gpu_memory_gb, num_gpus)
    plan = plan_memory(cfg, method, setup)
    err = stderr or sys.stderr
    print_plan(plan, err)
    if setup.device == "cpu":
        print("no GPU visible: planned for this machine's CPU and RAM; pass --gpu-memory-gb X (GiB: 79.6 for "
              "an 80 GB H100, 139.8 for a 141 GB H200) and --num-gpus N to plan for GPUs", file=err)
    if plan.fits is False:
        tips = suggestions(cfg, method, setup, plan.model)
        print(f"does not fit; try: {'; '.join(tips) if tips else 'a smaller model or more GPUs'}", file=err)
    return plan


def planned_setup(cfg: TrainConfig, gpu_memory_gb: float | None, num_gpus: int | None) -> Setup:
    """The setup a dry run plans for: the flags, else the visible GPUs, else this machine's CPU and RAM."""
    import torch

    if num_gpus is not None and num_gpus < 1:
        raise FlexBenchError(f"--num-gpus must be >= 1, got {num_gpus}")
    if gpu_memory_gb is not None and not gpu_memory_gb > 0:
        raise FlexBenchError(f"--gpu-memory-gb must be > 0, got {gpu_memory_gb}")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpu_memory_gb is None and not visible:
        try:
            import psutil

            ram: float | None = psutil.virtual_memory().total / (num_gpus or 1)
        except ImportError:
            ram = None
        return Setup(num_gpus or 1, ram, "cpu", resolve_engine(cfg, gpu=False))
    card = gpu_memory_gb * GIB if gpu_memory_gb else float(torch.cuda.get_device_properties(0).total_memory)
    return Setup(num_gpus or max(1, visible), card, "cuda", resolve_engine(cfg, gpu=True))
