"""Tests for the grading command: real solutions, untouched exercises and hostile submissions."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

from r2ska.grading import grade
from r2ska.grading.sandbox import isolation_available
from r2ska.homework import ASSIGNMENTS, Check

REPO_ROOT = Path(__file__).resolve().parents[1]
HOMEWORK = ("mirabest_autoencoder", "mirabest_retrieval")


def _grade_command(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "r2ska.grading", *args, "--root", str(REPO_ROOT)],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    with csv_path.open(newline="") as file:
        return list(csv.DictReader(file))


def _totals(rows: list[dict[str, str]]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for row in rows:
        totals[row["student"]] = totals.get(row["student"], 0.0) + float(row["points"])
    return totals


# Unit tests of scoring and output files -----------------------------------------------


def _fails(answers):
    raise AssertionError("secret detail")


def _passes(answers):
    return None


def test_hidden_checks_earn_points():
    assignment = ASSIGNMENTS["mirabest_autoencoder"]
    hidden = {"q4": (Check("hidden letter check", _fails), Check("other", _passes))}
    grades = grade.grade_answers(assignment, hidden, {"q4_choice": "b"})
    q4 = grades[-1]
    assert q4.points == 1.0
    assert q4.max_points == 2.0
    assert "hidden checks failed: hidden letter check" in q4.feedback
    assert "secret detail" not in q4.feedback


def test_failed_public_check_voids_hidden():
    assignment = ASSIGNMENTS["mirabest_autoencoder"]
    hidden = {"q4": (Check("always passes", _passes),)}
    grades = grade.grade_answers(assignment, hidden, {"q4_choice": "z"})
    assert grades[-1].points == 0.0
    assert "must be one of" in grades[-1].feedback


def test_without_hidden_public_checks_share():
    assignment = ASSIGNMENTS["mirabest_autoencoder"]
    grades = grade.grade_answers(assignment, {}, {"q1_class_counts": [517, 552], "q1_blank_mse": 5.0})
    assert grades[0].points == 1.0


def test_feedback_is_one_short_line():
    long_value = "line one\nline two " + "x" * 5000
    assignment = ASSIGNMENTS["mirabest_autoencoder"]
    grades = grade.grade_answers(assignment, {}, {"q4_choice": long_value}, execution_note="ok")
    assert "\n" not in grades[-1].feedback
    assert "x" * 50 not in grades[-1].feedback
    assert grade.one_line("a\n b   c") == "a b c"
    assert len(grade.one_line("y" * 1000)) == 200


def test_unanswered_scores_zero():
    assignment = ASSIGNMENTS["mirabest_retrieval"]
    answers = {name: Ellipsis for name in assignment.answer_names}
    grades = grade.grade_answers(assignment, {}, answers)
    assert [g.points for g in grades] == [0.0, 0.0, 0.0, 0.0]
    assert "is still `...`" in grades[0].feedback


def test_decode_marks_ellipsis():
    decoded = grade.decode_answers({"a": {"__unsupported__": "ellipsis"}, "b": np.array([1.0])})
    assert decoded["a"] is Ellipsis
    assert decoded["b"].tolist() == [1.0]


def test_student_names_are_safe_and_unique(tmp_path):
    paths = [tmp_path / "ann smith.ipynb", tmp_path / "ann_smith.ipynb", tmp_path / "../..ipynb"]
    names = grade.student_names(paths)
    assert sorted(names.values()) == ["ann_smith", "ann_smith-2", "unnamed"]
    assert all("/" not in name for name in names.values())


def test_results_written_atomically_and_sorted(tmp_path):
    students = [
        grade.StudentGrade("zoe", [grade.QuestionGrade("q1", 1.0, 2.0, "a, \"quoted\"\nline")]),
        grade.StudentGrade("adam", [grade.QuestionGrade("q1", 2.0, 2.0, "all checks passed")]),
    ]
    csv_path = grade.write_results(students, tmp_path)
    rows = _read_rows(csv_path)
    assert [row["student"] for row in rows] == ["adam", "zoe"]
    assert list(rows[0]) == list(grade.CSV_COLUMNS)
    assert rows[1]["feedback"] == "a, \"quoted\"\nline"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feedback", "grades.csv"]
    assert (tmp_path / "feedback" / "zoe.md").read_text().startswith("# Feedback for zoe")


def test_private_paths_cover_solutions(tmp_path):
    masked = grade.private_paths(REPO_ROOT, tmp_path / "in", tmp_path / "out")
    assert REPO_ROOT / "homework" in masked
    assert REPO_ROOT / "solutions" in masked
    assert REPO_ROOT / ".git" in masked
    assert (tmp_path / "in").resolve() in masked


# Command-line errors -----------------------------------------------------------------


def test_unknown_assignment_exit_code(tmp_path):
    result = _grade_command("nope", str(tmp_path))
    assert result.returncode == 2
    assert "unknown assignment 'nope'" in result.stderr


def test_missing_folder_exit_code(tmp_path):
    result = _grade_command("mirabest_autoencoder", str(tmp_path / "absent"))
    assert result.returncode == 2
    assert "not found" in result.stderr


def test_file_as_folder_exit_code(tmp_path):
    notebook = tmp_path / "one.ipynb"
    notebook.write_text("{}")
    result = _grade_command("mirabest_autoencoder", str(notebook))
    assert result.returncode == 2
    assert "is not a folder" in result.stderr


@pytest.mark.parametrize(("option", "value"), [("--wall-seconds", "-5"), ("--memory-gib", "0"),
                                               ("--cell-seconds", "nan"), ("--wall-seconds", "inf")])
def test_invalid_limit_exit_code(tmp_path, option, value):
    (tmp_path / "one.ipynb").write_text("{}")
    result = _grade_command("mirabest_autoencoder", str(tmp_path), option, value)
    assert result.returncode == 2
    assert "invalid limit" in result.stderr
    assert "Traceback" not in result.stderr


def test_empty_folder_exit_code(tmp_path):
    result = _grade_command("mirabest_autoencoder", str(tmp_path))
    assert result.returncode == 2
    assert "no submissions (*.ipynb)" in result.stderr


# Real runs in the sandbox -------------------------------------------------------------


@pytest.fixture(scope="module")
def graded_homework(tmp_path_factory, mirror_dir) -> dict[str, list[dict[str, str]]]:
    """Grade the solutions and the untouched exercises of both assignments."""
    rows = {}
    for name in HOMEWORK:
        folder = tmp_path_factory.mktemp(f"submissions-{name}")
        shutil.copy(REPO_ROOT / "solutions" / f"{name}.ipynb", folder / "solution.ipynb")
        shutil.copy(REPO_ROOT / "exercises" / f"{name}.ipynb", folder / "untouched.ipynb")
        output = folder / "grades"
        result = _grade_command(name, str(folder), "--output", str(output))
        assert result.returncode == 0, result.stderr
        rows[name] = _read_rows(output / "grades.csv")
    return rows


@pytest.mark.parametrize("name", HOMEWORK)
def test_solutions_score_full_marks(graded_homework, name):
    rows = [row for row in graded_homework[name] if row["student"] == "solution"]
    assert len(rows) == len(ASSIGNMENTS[name].questions)
    for row in rows:
        assert row["points"] == row["max_points"], row


@pytest.mark.parametrize("name", HOMEWORK)
def test_untouched_exercise_scores_zero(graded_homework, name):
    rows = [row for row in graded_homework[name] if row["student"] == "untouched"]
    assert len(rows) == len(ASSIGNMENTS[name].questions)
    for row in rows:
        assert float(row["points"]) == 0.0
        assert "still `...`" in row["feedback"]


def _notebook(*cells: str) -> str:
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nbformat.writes(notebook)


ANSWER_Q4 = 'q4_choice = "b"'


def _hostile_submissions(folder: Path) -> None:
    hidden = REPO_ROOT / "homework" / "hidden_checks.py"
    solution = REPO_ROOT / "solutions" / "mirabest_autoencoder.ipynb"
    files = {
        "hang": _notebook(ANSWER_Q4, "while True:\n    pass"),
        "memory": _notebook(ANSWER_Q4, "block = bytearray(200 * 2**30)"),
        "exits": _notebook("import sys\nsys.exit(3)", ANSWER_Q4),
        "crash": _notebook(ANSWER_Q4, "import os\nos.kill(os.getpid(), 9)"),
        "flood": _notebook(ANSWER_Q4, "while True:\n    print('x' * 100000)"),
        "renamed": _notebook('q4_answer = "b"'),
        "no_cells": _notebook(),
        "reads_grading_files": _notebook(
            f"q4_choice = open({str(hidden)!r}).read()[:2000]",
            f"q1_class_counts = open({str(solution)!r}).read()[:2000]",
            ANSWER_Q4,
        ),
        "honest": _notebook(ANSWER_Q4),
    }
    for student, text in files.items():
        (folder / f"{student}.ipynb").write_text(text)
    (folder / "malformed.ipynb").write_text('{"cells": [ this is not json')
    (folder / "not_a_notebook.ipynb").write_text('{"hello": "world"}')


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, mirror_dir):
    folder = tmp_path_factory.mktemp("hostile")
    _hostile_submissions(folder)
    outputs = []
    for attempt in (1, 2):
        output = tmp_path_factory.mktemp(f"hostile-grades-{attempt}")
        result = _grade_command("mirabest_autoencoder", str(folder), "--output", str(output),
                                "--cell-seconds", "15", "--wall-seconds", "300")
        outputs.append((result, output))
    return outputs


def test_hostile_batch_completes(hostile_run):
    result, output = hostile_run[0]
    assert result.returncode == 0, result.stderr
    students = {row["student"] for row in _read_rows(output / "grades.csv")}
    assert students == {"hang", "memory", "exits", "crash", "flood", "renamed", "no_cells",
                        "reads_grading_files", "honest", "malformed", "not_a_notebook"}
    assert sorted(p.name for p in output.iterdir()) == ["feedback", "grades.csv"]
    assert len(list((output / "feedback").iterdir())) == 11


def test_hostile_rerun_gives_same_csv(hostile_run):
    (first, first_out), (second, second_out) = hostile_run
    assert second.returncode == 0
    assert (first_out / "grades.csv").read_bytes() == (second_out / "grades.csv").read_bytes()


@pytest.mark.parametrize(
    ("student", "points", "reason"),
    [
        ("hang", 2.0, "timeout"),
        ("memory", 2.0, "MemoryError"),
        ("exits", 2.0, "SystemExit"),
        ("crash", 0.0, "kernel-died"),
        ("flood", 2.0, "output was truncated"),
        ("renamed", 0.0, "q4_choice is not defined"),
        ("no_cells", 0.0, "q4_choice is not defined"),
        ("malformed", 0.0, "invalid-notebook"),
        ("not_a_notebook", 0.0, "invalid-notebook"),
        ("honest", 2.0, "all checks passed"),
    ],
)
def test_hostile_submission_row(hostile_run, student, points, reason):
    _, output = hostile_run[0]
    rows = [row for row in _read_rows(output / "grades.csv") if row["student"] == student]
    assert len(rows) == 4
    assert _totals(rows)[student] == points, rows
    assert any(reason in row["feedback"] for row in rows), rows


def test_grading_files_not_readable(hostile_run):
    if "mount-namespace" not in isolation_available():
        pytest.skip("mount namespaces are not available here, so files cannot be hidden")
    _, output = hostile_run[0]
    rows = [row for row in _read_rows(output / "grades.csv") if row["student"] == "reads_grading_files"]
    feedback = " ".join(row["feedback"] for row in rows)
    assert "HIDDEN_CHECKS" not in feedback
    assert "BEGIN SOLUTION" not in feedback
    assert "No such file" in feedback or "FileNotFoundError" in feedback
    assert _totals(rows)["reads_grading_files"] == 2.0
