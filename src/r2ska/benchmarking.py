"""Recording and reading benchmark results for the book's benchmarks page."""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch


@dataclass
class BenchmarkResult:
    """One measured benchmark with its goal.

    Attributes:
        name: Short identifier, also the JSON file name.
        description: What was measured, in one sentence.
        value: The measured number.
        unit: Unit of ``value`` (e.g. ``"s"``, ``"x"``, ``"MSE per pixel"``).
        goal: The target, as text (e.g. ``"<= 0.010"``).
        met: Whether ``value`` meets the goal.
        details: Other measured numbers and settings.
        machine: Where it ran (filled in by :func:`record_result`).
        date: UTC time of the run (filled in by :func:`record_result`).
    """

    name: str
    description: str
    value: float
    unit: str
    goal: str
    met: bool
    details: dict[str, Any] = field(default_factory=dict)
    machine: str = ""
    date: str = ""


def describe_machine() -> str:
    """Describe the CPU count, platform and torch build, for a result's record."""
    return (
        f"{os.cpu_count()} CPU cores ({torch.get_num_threads()} torch threads), "
        f"{platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}"
    )


def record_result(result: BenchmarkResult, folder: Path) -> Path:
    """Write ``result`` to ``<folder>/<name>.json``, stamped with machine and date.

    Args:
        result: The measured result.
        folder: The results folder (created if missing).

    Returns:
        The path of the written file.
    """
    result.machine = result.machine or describe_machine()
    result.date = result.date or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result.name}.json"
    path.write_text(json.dumps(asdict(result), indent=2, sort_keys=True) + "\n")
    return path


def load_results(folder: Path) -> pd.DataFrame:
    """Read every ``*.json`` result in ``folder`` into a table indexed by name.

    Raises:
        FileNotFoundError: If ``folder`` contains no result files.
    """
    paths = sorted(Path(folder).glob("*.json"))
    if not paths:
        raise FileNotFoundError(
            f"No benchmark results (*.json) in {folder}: run the scripts in benchmarks/."
        )
    rows = [BenchmarkResult(**json.loads(path.read_text())) for path in paths]
    table = pd.DataFrame([asdict(row) for row in rows]).set_index("name")
    return table[["description", "value", "unit", "goal", "met", "machine", "date", "details"]]
