"""Generate the exercise and solution notebooks of each assignment from one source file.

A source is a MyST markdown notebook in ``homework/``. In its code cells, lines between
``# BEGIN SOLUTION`` and ``# END SOLUTION`` and lines ending in ``# SOLUTION`` are the
solution. The exercise keeps, of each solution block, only the answer assignments
(``q1_x = ...``) under a ``# YOUR CODE HERE`` line; a ``# SOLUTION`` line keeps its
left-hand side. Markdown cells tagged ``solution`` become an empty answer cell. Every
other cell, the ``grader.check`` cells included, is copied to both notebooks unchanged
(the solution's title gains "Solutions to"), so the two mirror each other question by
question.

Run ``python -m r2ska.homework.assign`` to regenerate ``exercises/`` and ``solutions/``,
and ``python -m r2ska.homework.assign --check`` to test that they are up to date.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

BEGIN_MARKER = "# BEGIN SOLUTION"
END_MARKER = "# END SOLUTION"
LINE_MARKER = "# SOLUTION"
YOUR_CODE = "# YOUR CODE HERE"
ANSWER_PROMPT = "*Your answer:* replace this text with your answer."

_ANSWER_ASSIGNMENT = re.compile(r"^(?P<indent>\s*)(?P<name>q\d+_\w+)\s*=")
_LINE_SOLUTION = re.compile(r"^(?P<lhs>\s*[^=#]+?)\s*=.*\s#\s*SOLUTION\s*$")


class SourceFormatError(ValueError):
    """Raised when solution markers in a homework source are unbalanced or misplaced."""


@dataclass(frozen=True)
class GeneratedPair:
    """The exercise and solution notebooks generated from one source, as JSON text."""

    name: str
    exercise: str
    solution: str


def split_code(source: str, where: str) -> tuple[str, str]:
    """Split one code cell into its exercise and solution versions.

    Args:
        source: The cell's code with solution markers.
        where: Cell description for error messages, for example ``"cell 4 of x.md"``.

    Returns:
        ``(exercise_code, solution_code)``.

    Raises:
        SourceFormatError: If a block is not closed, or closed without being opened.
    """
    exercise, solution = [], []
    in_block = False
    block_indent = ""
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN_MARKER:
            if in_block:
                raise SourceFormatError(f"Nested {BEGIN_MARKER!r} in {where}: close the first block.")
            in_block = True
            block_indent = line[: len(line) - len(line.lstrip())]
            exercise.append(block_indent + YOUR_CODE)
        elif stripped == END_MARKER:
            if not in_block:
                raise SourceFormatError(f"{END_MARKER!r} without {BEGIN_MARKER!r} in {where}.")
            in_block = False
        elif in_block:
            solution.append(line)
            match = _ANSWER_ASSIGNMENT.match(line)
            if match and match["indent"] == block_indent:
                exercise.append(f"{match['indent']}{match['name']} = ...")
        elif stripped.endswith(LINE_MARKER) and _LINE_SOLUTION.match(line):
            lhs = _LINE_SOLUTION.match(line)["lhs"]
            exercise.append(f"{lhs} = ...")
            solution.append(line[: line.rindex(LINE_MARKER)].rstrip())
        else:
            exercise.append(line)
            solution.append(line)
    if in_block:
        raise SourceFormatError(f"{BEGIN_MARKER!r} without {END_MARKER!r} in {where}.")
    return _drop_bare_ellipsis_block("\n".join(exercise)), "\n".join(solution)


def _drop_bare_ellipsis_block(code: str) -> str:
    """Give a block without answer assignments a ``...`` body, so the cell still runs."""
    lines = code.splitlines()
    result = []
    for i, line in enumerate(lines):
        result.append(line)
        is_last = i + 1 == len(lines)
        if line.strip() == YOUR_CODE and (is_last or lines[i + 1].strip() != "" and not _ANSWER_ASSIGNMENT.match(lines[i + 1])):
            result.append(line.replace(YOUR_CODE, "..."))
    return "\n".join(result)


def generate(source_path: Path) -> GeneratedPair:
    """Generate both notebooks from one MyST markdown source.

    Args:
        source_path: A ``homework/<name>.md`` file.

    Returns:
        The two notebooks as JSON text, with cell ids numbered so that the output
        depends only on the source.

    Raises:
        SourceFormatError: If the solution markers are malformed.
    """
    import jupytext

    name = source_path.stem
    notebook = jupytext.read(source_path)
    exercise_cells, solution_cells = [], []
    for index, cell in enumerate(notebook.cells):
        where = f"cell {index} of {source_path.name}"
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type == "code":
            exercise_code, solution_code = split_code(cell.source, where)
            exercise_cells.append(nbformat.v4.new_code_cell(exercise_code))
            solution_cells.append(nbformat.v4.new_code_cell(solution_code))
        elif cell.cell_type == "markdown" and "solution" in tags:
            exercise_cells.append(nbformat.v4.new_markdown_cell(ANSWER_PROMPT, metadata={"tags": ["answer"]}))
            solution_cells.append(nbformat.v4.new_markdown_cell(cell.source, metadata={"tags": ["solution"]}))
        else:
            exercise_cells.append(nbformat.v4.new_markdown_cell(cell.source))
            solution_cells.append(nbformat.v4.new_markdown_cell(_solution_title(cell.source)))

    return GeneratedPair(
        name,
        _to_json(exercise_cells, name, "exercise"),
        _to_json(solution_cells, name, "solution"),
    )


def _solution_title(markdown: str) -> str:
    """Prefix a top-level heading with "Solutions to", so that readers can distinguish the pages in the book's sidebar."""
    if markdown.startswith("# "):
        return "# Solutions to " + markdown[2:]
    return markdown


def _to_json(cells: list, name: str, version: str) -> str:
    for index, cell in enumerate(cells):
        cell["id"] = f"{version}-{index}"
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "r2ska": {"assignment": name, "version": version},
    })
    nbformat.validate(notebook)
    return nbformat.writes(notebook) + "\n"


def write_all(root: Path, check: bool = False) -> list[Path]:
    """Generate every assignment under ``root/homework`` into ``exercises/`` and ``solutions/``.

    Args:
        root: Repository root.
        check: Only compare; write nothing.

    Returns:
        The output files that differ from what the sources generate (before
        writing them, when ``check`` is False).

    Raises:
        FileNotFoundError: If ``root/homework`` has no ``.md`` source.
    """
    sources = sorted((root / "homework").glob("*.md"))
    if not sources:
        raise FileNotFoundError(f"No homework sources (*.md) in {root / 'homework'}.")
    stale = []
    for source in sources:
        pair = generate(source)
        for folder, text in (("exercises", pair.exercise), ("solutions", pair.solution)):
            target = root / folder / f"{pair.name}.ipynb"
            if not target.is_file() or target.read_text(encoding="utf-8") != text:
                stale.append(target)
                if not check:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_text(text, encoding="utf-8")
    return stale


def main(argv: list[str] | None = None) -> int:
    """Command line: regenerate the notebooks, or with ``--check`` report stale ones."""
    parser = argparse.ArgumentParser(prog="python -m r2ska.homework.assign", description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=".", type=Path, help="repository root (default: .)")
    parser.add_argument("--check", action="store_true", help="exit with 1 if a generated notebook is out of date")
    args = parser.parse_args(argv)
    stale = write_all(args.root, check=args.check)
    for path in stale:
        verb = "out of date" if args.check else "written"
        print(f"{path}: {verb}")
    if args.check and stale:
        print("Run `python -m r2ska.homework.assign` to regenerate them.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
