"""Benchmark: execution time of a chapter from a cold start.

Converts the chapter to a notebook with jupytext and runs it with nbclient in the
chapter's folder, with an empty r2ska cache so that every model is trained. Data files
come from R2SKA_DATA_MIRROR when it is set. Goal for chapter 1: under 4 minutes.

Run: ``python benchmarks/chapter_time.py [chapters/01_autoencoders.md]``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import jupytext
import nbclient

from r2ska.benchmarking import BenchmarkResult, record_result

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
GOAL_SECONDS = 240.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapter", nargs="?", type=Path,
                        default=ROOT / "chapters" / "01_autoencoders.md")
    args = parser.parse_args()
    chapter = args.chapter.resolve()

    notebook = jupytext.read(chapter)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["R2SKA_CACHE"] = cache
        client = nbclient.NotebookClient(
            notebook, timeout=1800, kernel_name="python3",
            resources={"metadata": {"path": str(chapter.parent)}},
        )
        start = time.perf_counter()
        client.execute()
        seconds = time.perf_counter() - start

    result = BenchmarkResult(
        name=f"chapter_time_{chapter.stem}",
        description=f"Cold execution time of {chapter.name} (empty weight cache)",
        value=round(seconds, 1),
        unit="s",
        goal=f"< {GOAL_SECONDS:g} s",
        met=seconds < GOAL_SECONDS,
        details={"cells": len(notebook.cells), "cpu cores": os.cpu_count()},
    )
    print(record_result(result, RESULTS).read_text())


if __name__ == "__main__":
    main()
