"""Provenance facts recorded with every run: the code version and the hardware it ran on."""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any


@functools.cache
def code_version() -> dict[str, Any]:
    """``{"package", "git_commit", "dirty"}`` of the running code (git fields ``None`` outside a checkout)."""
    from flexbench import __version__

    out: dict[str, Any] = {"package": __version__, "git_commit": None, "dirty": None}
    repo = Path(__file__).resolve().parent.parent
    if shutil.which("git") and (repo / ".git").exists():
        git = ["git", "-C", str(repo)]
        try:
            out["git_commit"] = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True,
                                               text=True, timeout=10, check=True).stdout.strip()
            status = subprocess.run([*git, "status", "--porcelain", "--untracked-files=no"],
                                    capture_output=True, text=True, timeout=10, check=True).stdout
            out["dirty"] = bool(status.strip())
        except (subprocess.SubprocessError, OSError):
            pass
    return out


@functools.cache
def hardware() -> dict[str, Any]:
    """CPU model, core count and GPU name (``None`` without a visible GPU)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_count": os.cpu_count(), "gpu": _gpu_name(), "platform": platform.platform()}


def _gpu_name() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    names = [n.strip() for n in out.splitlines() if n.strip()]
    return ", ".join(names) or None
