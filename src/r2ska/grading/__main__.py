"""Command line of the grader: ``python -m r2ska.grading ASSIGNMENT SUBMISSIONS``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from r2ska.data import DataUnavailableError
from r2ska.grading.grade import (
    grade_submission,
    load_hidden_checks,
    private_paths,
    student_names,
    write_results,
)
from r2ska.grading.sandbox import SandboxLimits
from r2ska.homework import ASSIGNMENTS

# Exit status for invalid arguments or set-up, as argparse uses.
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    """Describe the command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m r2ska.grading",
        description="Grade every submitted notebook (*.ipynb) in a folder. Each one runs in "
        "its own sandboxed process; results go to OUTPUT/grades.csv and OUTPUT/feedback/.",
    )
    parser.add_argument("assignment", help=f"assignment name: {', '.join(sorted(ASSIGNMENTS))}")
    parser.add_argument("submissions", type=Path, help="folder of submitted notebooks, one per student (<student>.ipynb)")
    parser.add_argument("--output", type=Path, default=None, help="results folder (default: SUBMISSIONS/../grades-ASSIGNMENT)")
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root with homework/ (default: .)")
    parser.add_argument("--wall-seconds", type=float, default=SandboxLimits.wall_seconds,
                        help="wall-time limit per submission in seconds (default: %(default)s)")
    parser.add_argument("--cell-seconds", type=float, default=SandboxLimits.cell_seconds,
                        help="time limit per cell in seconds (default: %(default)s)")
    parser.add_argument("--memory-gib", type=float, default=SandboxLimits.memory_bytes / 2**30,
                        help="address-space limit per submission in GiB (default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Grade a folder of submissions; return 0 when every submission got a row."""
    args = build_parser().parse_args(argv)
    if args.assignment not in ASSIGNMENTS:
        print(f"error: unknown assignment {args.assignment!r}: use one of {sorted(ASSIGNMENTS)}.", file=sys.stderr)
        return EXIT_USAGE
    if not args.submissions.exists():
        print(f"error: submissions folder {str(args.submissions)!r} not found.", file=sys.stderr)
        return EXIT_USAGE
    if not args.submissions.is_dir():
        print(f"error: {str(args.submissions)!r} is not a folder: pass the folder that "
              "contains the submitted notebooks.", file=sys.stderr)
        return EXIT_USAGE
    notebooks = sorted(p for p in args.submissions.iterdir() if p.suffix == ".ipynb" and p.is_file())
    if not notebooks:
        print(f"error: no submissions (*.ipynb) in {str(args.submissions)!r}.", file=sys.stderr)
        return EXIT_USAGE

    try:
        limits = SandboxLimits(wall_seconds=args.wall_seconds, cell_seconds=args.cell_seconds,
                               memory_bytes=int(args.memory_gib * 2**30))
    except (ValueError, OverflowError) as error:
        print(f"error: invalid limit: {error}; pass a positive finite number.", file=sys.stderr)
        return EXIT_USAGE
    root = args.root.resolve()
    try:
        hidden = load_hidden_checks(root, args.assignment)
    except (FileNotFoundError, DataUnavailableError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    output = args.output or args.submissions.resolve().parent / f"grades-{args.assignment}"
    output.mkdir(parents=True, exist_ok=True)
    env = {"R2SKA_PROGRESS": "0", "R2SKA_CACHE": ".r2ska-cache"}
    if os.environ.get("R2SKA_DATA_MIRROR"):
        env["R2SKA_DATA_MIRROR"] = str(Path(os.environ["R2SKA_DATA_MIRROR"]).resolve())

    assignment = ASSIGNMENTS[args.assignment]
    masked = private_paths(root, args.submissions, output)
    grades = []
    for notebook, student in student_names(notebooks).items():
        grade = grade_submission(notebook, student, assignment, hidden, masked_paths=masked, limits=limits, env=env)
        grades.append(grade)
        print(f"{student}: {grade.total:.2f} / {grade.max_total:.2f} ({grade.execution})", file=sys.stderr)
        # Rewrite the results after every student, so an interrupted run keeps what it graded.
        csv_path = write_results(grades, output)
    print(f"Graded {len(grades)} submission(s): {csv_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
