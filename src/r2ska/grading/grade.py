"""Grade a folder of submitted notebooks: sandboxed execution, public and hidden checks, CSV and feedback."""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from r2ska.grading.sandbox import SandboxLimits, SandboxResult, run_notebook
from r2ska.homework import ASSIGNMENTS, Assignment, Check, run_checks

CSV_COLUMNS = ("student", "question", "points", "max_points", "feedback")
"""Columns of ``grades.csv``, one row per student and question."""

HIDDEN_CHECKS_FILE = Path("homework") / "hidden_checks.py"
"""Hidden checks, relative to the repository root; never visible inside a sandbox."""

_STUDENT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
# Folders of the repository that contain solutions, hidden checks or built pages with solutions.
# .git is among them because its history contains every committed version of those files.
_PRIVATE_FOLDERS = ("homework", "solutions", "_build", ".git")
# Feedback quotes at most this many characters of one message, on one line, so that a
# submission cannot copy long text (such as a file it read) into its feedback.
_MAX_NOTE_CHARS = 200


@dataclass
class QuestionGrade:
    """Points of one student on one question, with the feedback text."""

    question: str
    points: float
    max_points: float
    feedback: str


@dataclass
class StudentGrade:
    """Everything graded for one submission."""

    student: str
    questions: list[QuestionGrade] = field(default_factory=list)
    execution: str = ""

    @property
    def total(self) -> float:
        """Sum of the question points."""
        return round(sum(q.points for q in self.questions), 2)

    @property
    def max_total(self) -> float:
        """Sum of the question maximum points."""
        return round(sum(q.max_points for q in self.questions), 2)


def load_hidden_checks(root: Path, assignment: str) -> dict[str, tuple[Check, ...]]:
    """Import the hidden checks of one assignment from the repository's homework folder.

    Args:
        root: Repository root, with ``homework/hidden_checks.py``.
        assignment: Assignment name.

    Returns:
        Hidden checks by question name; questions without any map to ``()``.

    Raises:
        FileNotFoundError: If the hidden-checks file is missing.
        DataUnavailableError: If the data the hidden checks compare with is missing.
    """
    path = root / HIDDEN_CHECKS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"Hidden checks not found at {path}: pass the repository root with --root."
        )
    spec = importlib.util.spec_from_file_location("r2ska_hidden_checks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if hasattr(module, "prepare"):
        module.prepare()
    return dict(module.HIDDEN_CHECKS.get(assignment, {}))


def student_names(paths: Sequence[Path]) -> dict[Path, str]:
    """Derive a unique, file-name-safe student name from each submission's file name.

    Characters other than letters, digits, ``_``, ``.`` and ``-`` become ``_``, and a
    name that is already in use gets a ``-2``, ``-3``... suffix, in sorted path order.
    """
    names: dict[Path, str] = {}
    used_names: set[str] = set()
    for path in sorted(paths):
        base = _STUDENT_NAME.sub("_", path.stem).strip("._") or "unnamed"
        name, suffix = base, 2
        while name in used_names:
            name, suffix = f"{base}-{suffix}", suffix + 1
        used_names.add(name)
        names[path] = name
    return names


def grade_answers(
    assignment: Assignment,
    hidden: Mapping[str, Sequence[Check]],
    answers: Mapping[str, Any],
    execution_note: str = "",
) -> list[QuestionGrade]:
    """Score answers: a question's points are shared among its hidden checks.

    The public checks test the form of an answer (type, shape, range) and the hidden
    checks its correctness, so only the hidden checks earn points, and each counts
    only when every public check of the question passes too. A question without
    hidden checks shares its points among its public checks.

    Args:
        assignment: The assignment graded.
        hidden: Hidden checks by question name.
        answers: Answer values by variable name, as the sandbox exported them.
        execution_note: Sentence about how the notebook ran, added to the feedback
            of every question when not empty.

    Returns:
        One grade per question, in assignment order.
    """
    grades = []
    for question in assignment.questions:
        public = run_checks(question.checks, answers)
        secret = run_checks(tuple(hidden.get(question.name, ())), answers)
        public_passed = all(outcome.passed for outcome in public)
        if secret:
            earned = sum(outcome.passed for outcome in secret) if public_passed else 0
            points = round(question.points * earned / len(secret), 2)
        else:
            points = round(question.points * sum(o.passed for o in public) / len(public), 2)

        notes = [execution_note] if execution_note else []
        for outcome in public:
            if not outcome.passed:
                notes.append(one_line(f"{outcome.description}: {outcome.message}"))
        failed_hidden = [outcome.description for outcome in secret if not outcome.passed]
        if failed_hidden:
            notes.append("hidden checks failed: " + "; ".join(failed_hidden))
        if not notes:
            notes.append("all checks passed")
        grades.append(QuestionGrade(question.name, points, float(question.points), " | ".join(notes)))
    return grades


def one_line(text: str, limit: int = _MAX_NOTE_CHARS) -> str:
    """Collapse whitespace to single spaces and cut the text to ``limit`` characters."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def decode_answers(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Turn exported values back into Python objects: ``...`` for an unanswered question."""
    decoded = {}
    for name, value in raw.items():
        if isinstance(value, dict) and value.get("__unsupported__") == "ellipsis":
            decoded[name] = Ellipsis
        elif isinstance(value, np.ndarray) and value.dtype == object:
            decoded[name] = value.tolist()
        else:
            decoded[name] = value
    return decoded


def execution_note(result: SandboxResult) -> str:
    """Describe how a submission ran, for its feedback; empty when it ran cleanly."""
    parts = []
    if result.status != "ok":
        parts.append(one_line(f"execution {result.status}: {result.reason}"))
    if result.errors:
        parts.append(one_line(f"{len(result.errors)} cell(s) raised an error, first: {result.errors[0]}"))
    if result.output_truncated:
        parts.append("output was truncated")
    return "; ".join(parts)


def grade_submission(
    notebook: Path,
    student: str,
    assignment: Assignment,
    hidden: Mapping[str, Sequence[Check]],
    *,
    masked_paths: Sequence[Path],
    limits: SandboxLimits,
    env: Mapping[str, str],
) -> StudentGrade:
    """Run one submission in the sandbox and grade the answers it exported."""
    result = run_notebook(notebook, assignment.answer_names, masked_paths=masked_paths, limits=limits, env=env)
    note = execution_note(result)
    answers = decode_answers(result.answers)
    return StudentGrade(student, grade_answers(assignment, hidden, answers, note), note or "ok")


def write_results(grades: Sequence[StudentGrade], output: Path) -> Path:
    """Write ``grades.csv`` and ``feedback/<student>.md`` atomically; return the CSV path."""
    output.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for grade in sorted(grades, key=lambda g: g.student):
        for question in grade.questions:
            writer.writerow([grade.student, question.question, f"{question.points:.2f}",
                             f"{question.max_points:.2f}", question.feedback])
    csv_path = output / "grades.csv"
    write_atomically(csv_path, buffer.getvalue())

    feedback_dir = output / "feedback"
    feedback_dir.mkdir(exist_ok=True)
    for grade in grades:
        write_atomically(feedback_dir / f"{grade.student}.md", feedback_text(grade))
    return csv_path


def feedback_text(grade: StudentGrade) -> str:
    """Format one student's feedback as markdown."""
    lines = [f"# Feedback for {grade.student}", "",
             f"Total: {grade.total:.2f} / {grade.max_total:.2f} points", "",
             f"Execution: {grade.execution}", ""]
    for question in grade.questions:
        lines.append(f"## {question.question}: {question.points:.2f} / {question.max_points:.2f}")
        lines.append("")
        lines.extend(f"- {note}" for note in question.feedback.split(" | "))
        lines.append("")
    return "\n".join(lines)


def write_atomically(path: Path, text: str) -> None:
    """Write text to a temporary file beside ``path`` and rename it over ``path``."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def private_paths(root: Path, submissions: Path, output: Path) -> list[Path]:
    """Paths hidden from every sandbox: solutions, hidden checks, built pages, git history, submissions and results.

    NOTE: only these paths are masked. A copy of the solutions elsewhere on the
    machine (another checkout, a book built in a temporary folder) stays readable.
    """
    paths = [root / folder for folder in _PRIVATE_FOLDERS if (root / folder).exists()]
    return paths + [submissions.resolve(), output.resolve()]
