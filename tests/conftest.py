"""Shared fixtures: the data mirror and a private cache for every test session."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from r2ska import book

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point R2SKA_CACHE at a fresh folder so tests never reuse a user's downloads."""
    cache = tmp_path_factory.mktemp("r2ska-cache")
    previous = os.environ.get("R2SKA_CACHE")
    os.environ["R2SKA_CACHE"] = str(cache)
    yield cache
    if previous is None:
        os.environ.pop("R2SKA_CACHE", None)
    else:
        os.environ["R2SKA_CACHE"] = previous


@pytest.fixture(scope="session")
def mirror_dir() -> Path:
    """The local data mirror named by R2SKA_DATA_MIRROR, which tests on real data need."""
    value = os.environ.get("R2SKA_DATA_MIRROR")
    if not value or not Path(value).is_dir():
        pytest.fail(
            f"R2SKA_DATA_MIRROR={value!r} is not a folder: set it to the course data "
            "mirror (a folder laid out like MNIST/raw/...) before running the tests.",
            pytrace=False,
        )
    return Path(value)


BOOK_FILES = ("_config.yml", "_toc.yml", "intro.md", "references.bib")
BOOK_FOLDERS = ("chapters", "benchmarks", "exercises", "solutions")


@pytest.fixture(scope="session")
def built_site(tmp_path_factory: pytest.TempPathFactory, mirror_dir: Path) -> Path:
    """Build a copy of the book with an empty weight cache, once per test session.

    The copy shows the homework solutions, so that they execute on the real data.
    """
    root = tmp_path_factory.mktemp("book")
    for name in BOOK_FILES:
        shutil.copy(REPO_ROOT / name, root / name)
    for name in BOOK_FOLDERS:
        shutil.copytree(REPO_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    config = root / "_config.yml"
    text = config.read_text()
    assert "show_solutions: false" in text, "the repository's _config.yml no longer has the switch"
    config.write_text(text.replace("show_solutions: false", "show_solutions: true"))

    exit_code = book.build_book(root)
    assert exit_code == 0, "jupyter-book build failed: see the captured output above"
    return root / "_build" / "html"
