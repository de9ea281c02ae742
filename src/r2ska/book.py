"""Build the course book, re-executing chapters whenever the r2ska sources or results change."""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from r2ska.progress import PROGRESS_ENV

PACKAGE_DIR = Path(__file__).resolve().parent
FINGERPRINT_FILE = "r2ska-fingerprint.txt"
GENERATED_TOC = "_toc.generated.yml"
"""Table of contents written into ``_build/`` when the solutions are shown."""
# Files whose content can change what a chapter cell prints or draws.
_SOURCE_SUFFIXES = (".py", ".js", ".css")


def package_fingerprint(package_dir: Path = PACKAGE_DIR) -> str:
    """Hash the r2ska source files, so that any edit gives a new value.

    Args:
        package_dir: The folder of the package to hash.

    Returns:
        A hex SHA-256 digest over the relative path and bytes of every source file.
    """
    return _folder_digest(package_dir, _SOURCE_SUFFIXES)


def book_fingerprint(book_dir: Path, package_dir: Path = PACKAGE_DIR) -> str:
    """Hash everything that chapter outputs depend on besides their own cells.

    That is the package sources and the recorded benchmark results
    (``benchmarks/results/*.json``), which the benchmarks page reads.

    Args:
        book_dir: The folder with ``_config.yml``.
        package_dir: The folder of the package.

    Returns:
        A hex SHA-256 digest.
    """
    digest = hashlib.sha256(package_fingerprint(package_dir).encode())
    results = book_dir / "benchmarks" / "results"
    if results.is_dir():
        digest.update(_folder_digest(results, (".json",)).encode())
    return digest.hexdigest()


def _folder_digest(folder: Path, suffixes: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    files = sorted(path for path in folder.rglob("*") if path.is_file() and path.suffix in suffixes)
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


def invalidate_stale_outputs(build_dir: Path, fingerprint: str) -> bool:
    """Delete executed outputs that were made with other package sources or results.

    Jupyter Book's execution cache is keyed on each chapter's own code cells only,
    and Sphinx skips reading a chapter whose file did not change. Without this step
    an edit to ``r2ska`` would leave outputs of the old code on the site, so both
    the cache (``.jupyter_cache``) and Sphinx's saved state (``.doctrees``) go.

    Args:
        build_dir: The book's ``_build`` folder.
        fingerprint: The current :func:`book_fingerprint`.

    Returns:
        True if anything was deleted.
    """
    stamp = build_dir / FINGERPRINT_FILE
    recorded = stamp.read_text().strip() if stamp.is_file() else None
    deleted = False
    if recorded != fingerprint:
        for name in (".jupyter_cache", ".doctrees"):
            if (build_dir / name).exists():
                shutil.rmtree(build_dir / name)
                deleted = True

    build_dir.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint + "\n")
    return deleted


def build_book(book_dir: Path, *, strict: bool = True, package_dir: Path = PACKAGE_DIR) -> int:
    """Build the HTML site into ``<book_dir>/_build/html``.

    Args:
        book_dir: The folder with ``_config.yml`` and ``_toc.yml``.
        strict: Turn Sphinx warnings into errors (``-W -n --keep-going``).
        package_dir: The package whose sources the chapters' outputs depend on.

    Returns:
        The exit code of ``jupyter-book build``.

    Raises:
        FileNotFoundError: If ``book_dir`` has no ``_config.yml``.
    """
    book_dir = book_dir.resolve()
    if not (book_dir / "_config.yml").is_file():
        raise FileNotFoundError(
            f"No _config.yml in {book_dir}: pass the folder of the course book."
        )

    with_solutions = solutions_shown(book_dir)
    fingerprint = book_fingerprint(book_dir, package_dir) + f"-solutions-{with_solutions}"
    invalidate_stale_outputs(book_dir / "_build", fingerprint)
    command = [str(Path(sys.executable).parent / "jupyter-book"), "build", str(book_dir)]
    if with_solutions:
        command += ["--toc", str(write_toc_with_solutions(book_dir))]
    else:
        remove_built_solutions(book_dir / "_build")
    if strict:
        command += ["-W", "-n", "--keep-going"]
    # Bars drawn while the book executes would stay frozen at 0 % on the page.
    environment = {**os.environ, PROGRESS_ENV: "0"}
    return subprocess.run(command, check=False, env=environment).returncode


def solutions_shown(book_dir: Path) -> bool:
    """Read the ``r2ska: show_solutions:`` switch of ``_config.yml`` (default False).

    Raises:
        ValueError: If the switch is set to something other than true or false.
    """
    config = yaml.safe_load((book_dir / "_config.yml").read_text(encoding="utf-8")) or {}
    value = (config.get("r2ska") or {}).get("show_solutions", False)
    if not isinstance(value, bool):
        raise ValueError(
            f"r2ska.show_solutions in {book_dir / '_config.yml'} must be true or false, got {value!r}."
        )
    return value


def write_toc_with_solutions(book_dir: Path) -> Path:
    """Write ``_build/_toc.generated.yml``: the book's TOC plus a part with the solution of each exercise.

    Returns:
        The path of the generated TOC.
    """
    toc = yaml.safe_load((book_dir / "_toc.yml").read_text(encoding="utf-8"))
    exercises = [
        entry["file"]
        for part in toc.get("parts", [])
        for entry in part.get("chapters", [])
        if str(entry.get("file", "")).startswith("exercises/")
    ]
    solutions = [{"file": "solutions/" + name.split("/", 1)[1]} for name in exercises]
    toc["parts"].append({"caption": "Solutions", "chapters": solutions})
    path = book_dir / "_build" / GENERATED_TOC
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(toc, sort_keys=False), encoding="utf-8")
    return path


def remove_built_solutions(build_dir: Path) -> None:
    """Delete solution pages left by an earlier build that showed them, so they are not published."""
    for folder in (build_dir / "html" / "solutions", build_dir / "html" / "_sources" / "solutions",
                   build_dir / "jupyter_execute" / "solutions"):
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Run the ``python -m r2ska.book build [FOLDER]`` command line."""
    parser = argparse.ArgumentParser(prog="python -m r2ska.book", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="build the HTML site")
    build.add_argument("book_dir", nargs="?", default=".", type=Path,
                       help="folder with _config.yml (default: the current folder)")
    build.add_argument("--no-strict", action="store_true",
                       help="let Sphinx warnings pass instead of failing the build")
    args = parser.parse_args(argv)
    return build_book(args.book_dir, strict=not args.no_strict)


if __name__ == "__main__":
    sys.exit(main())
