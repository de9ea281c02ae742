"""Tests for generating exercise and solution notebooks from one homework source."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from r2ska.homework import ASSIGNMENTS
from r2ska.homework.assign import (
    ANSWER_PROMPT,
    BEGIN_MARKER,
    LINE_MARKER,
    SourceFormatError,
    generate,
    main,
    split_code,
    write_all,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((REPO_ROOT / "homework").glob("*.md"))


def test_block_keeps_answer_names_only():
    source = "x = 1\n# BEGIN SOLUTION\ncounts = f(x)\nq1_counts = counts\n# END SOLUTION\nprint(q1_counts)"
    exercise, solution = split_code(source, "cell")
    assert exercise == "x = 1\n# YOUR CODE HERE\nq1_counts = ...\nprint(q1_counts)"
    assert solution == "x = 1\ncounts = f(x)\nq1_counts = counts\nprint(q1_counts)"


def test_block_without_answers_gets_ellipsis():
    exercise, _ = split_code("# BEGIN SOLUTION\nplot(x)\n# END SOLUTION", "cell")
    assert exercise == "# YOUR CODE HERE\n..."


def test_line_marker_keeps_left_side():
    exercise, solution = split_code('q4_choice = "b"  # SOLUTION', "cell")
    assert exercise == "q4_choice = ..."
    assert solution == 'q4_choice = "b"'


def test_indented_block_keeps_indent():
    source = "for i in range(3):\n    # BEGIN SOLUTION\n    q1_x = i\n    # END SOLUTION"
    exercise, _ = split_code(source, "cell")
    assert exercise == "for i in range(3):\n    # YOUR CODE HERE\n    q1_x = ..."


@pytest.mark.parametrize(
    "source",
    ["# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION", "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION"],
)
def test_unbalanced_markers_rejected(source):
    with pytest.raises(SourceFormatError, match="cell 3 of a.md"):
        split_code(source, "cell 3 of a.md")


def test_committed_notebooks_are_up_to_date():
    stale = write_all(REPO_ROOT, check=True)
    assert stale == [], f"regenerate with `python -m r2ska.homework.assign`: {stale}"


def test_check_command_reports_drift(tmp_path, capsys):
    (tmp_path / "homework").mkdir()
    for source in SOURCES:
        (tmp_path / "homework" / source.name).write_text(source.read_text())
    assert main([str(tmp_path), "--check"]) == 1
    assert "out of date" in capsys.readouterr().out
    assert main([str(tmp_path)]) == 0
    assert main([str(tmp_path), "--check"]) == 0


def test_solution_title_marked():
    pair = generate(SOURCES[0])
    exercise = nbformat.reads(pair.exercise, 4)
    solution = nbformat.reads(pair.solution, 4)
    assert exercise.cells[0].source.startswith("# Exercise 1:")
    assert solution.cells[0].source.startswith("# Solutions to Exercise 1:")


def test_generation_is_deterministic():
    first, second = generate(SOURCES[0]), generate(SOURCES[0])
    assert first == second


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_exercise_mirrors_solution(source):
    pair = generate(source)
    exercise = nbformat.reads(pair.exercise, 4)
    solution = nbformat.reads(pair.solution, 4)
    assert len(exercise.cells) == len(solution.cells)

    for ex_cell, sol_cell in zip(exercise.cells, solution.cells):
        assert ex_cell.cell_type == sol_cell.cell_type
        is_answer = "solution" in sol_cell.metadata.get("tags", [])
        if ex_cell.cell_type == "markdown" and not is_answer:
            assert ex_cell.source == sol_cell.source.replace("# Solutions to ", "# ", 1)
        if "grader.check(" in sol_cell.source:
            assert ex_cell.source == sol_cell.source
        if is_answer:
            assert ex_cell.source == ANSWER_PROMPT


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_every_question_has_check_cell_and_answers(source):
    pair = generate(source)
    assignment = ASSIGNMENTS[pair.name]
    exercise = nbformat.reads(pair.exercise, 4)
    code = [cell.source for cell in exercise.cells if cell.cell_type == "code"]
    checks = [line for cell in code for line in cell.splitlines() if line.startswith("grader.check(")]
    assert checks == [f'grader.check("{q.name}")' for q in assignment.questions]
    for name in assignment.answer_names:
        assert any(f"{name} = ..." in cell for cell in code), f"{name} is not left blank in the exercise"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_exercise_leaks_no_solution(source):
    pair = generate(source)
    solution = nbformat.reads(pair.solution, 4)
    assert BEGIN_MARKER not in pair.exercise
    assert LINE_MARKER not in pair.exercise
    solution_lines = _solution_only_lines(source.read_text())
    assert solution_lines, "the source has no solution lines"
    exercise = nbformat.reads(pair.exercise, 4)
    exercise_sources = "\n".join(cell.source for cell in exercise.cells)
    for line in solution_lines:
        assert line not in exercise_sources, f"solution line leaked into the exercise: {line!r}"
    assert all(cell.source for cell in solution.cells)


def _solution_only_lines(text: str) -> list[str]:
    lines, in_block = [], False
    for line in text.splitlines():
        if line.strip() == "# BEGIN SOLUTION":
            in_block = True
        elif line.strip() == "# END SOLUTION":
            in_block = False
        elif in_block and line.strip() and " = ..." not in line and "=" in line:
            lines.append(line.strip())
    return lines
