from pathlib import Path

import pytest

from r2ska import book


def _write_package(folder: Path) -> Path:
    (folder / "sub").mkdir(parents=True)
    (folder / "__init__.py").write_text("x = 1\n")
    (folder / "sub" / "helper.js").write_text("var a = 1;\n")
    (folder / "notes.txt").write_text("not a source file\n")
    return folder


def test_fingerprint_changes_with_source_edit(tmp_path):
    package = _write_package(tmp_path / "pkg")
    before = book.package_fingerprint(package)

    (package / "__init__.py").write_text("x = 2\n")
    assert book.package_fingerprint(package) != before


def test_fingerprint_tracks_javascript_and_renames(tmp_path):
    package = _write_package(tmp_path / "pkg")
    before = book.package_fingerprint(package)

    (package / "sub" / "helper.js").rename(package / "sub" / "other.js")
    assert book.package_fingerprint(package) != before


def test_fingerprint_ignores_non_source_files(tmp_path):
    package = _write_package(tmp_path / "pkg")
    before = book.package_fingerprint(package)

    (package / "notes.txt").write_text("edited\n")
    assert book.package_fingerprint(package) == before


def test_fingerprint_covers_installed_package():
    files = {path.name for path in book.PACKAGE_DIR.rglob("*.py")}
    assert "book.py" in files
    assert len(book.package_fingerprint()) == 64


def _fill_build(build: Path) -> None:
    for name in (".jupyter_cache", ".doctrees"):
        (build / name).mkdir(parents=True, exist_ok=True)
        (build / name / "state").write_text("outputs")


def test_stale_outputs_are_deleted(tmp_path):
    build = tmp_path / "_build"
    book.invalidate_stale_outputs(build, "old")
    _fill_build(build)

    assert book.invalidate_stale_outputs(build, "new") is True
    assert not (build / ".jupyter_cache").exists()
    assert not (build / ".doctrees").exists()
    assert (build / book.FINGERPRINT_FILE).read_text().strip() == "new"


def test_matching_outputs_are_kept(tmp_path):
    build = tmp_path / "_build"
    book.invalidate_stale_outputs(build, "same")
    _fill_build(build)

    assert book.invalidate_stale_outputs(build, "same") is False
    assert (build / ".jupyter_cache" / "state").exists()
    assert (build / ".doctrees" / "state").exists()


def test_outputs_without_stamp_are_deleted(tmp_path):
    build = tmp_path / "_build"
    _fill_build(build)

    assert book.invalidate_stale_outputs(build, "new") is True
    assert not (build / ".jupyter_cache").exists()


def test_html_output_is_kept(tmp_path):
    build = tmp_path / "_build"
    (build / "html").mkdir(parents=True)
    (build / "html" / "index.html").write_text("site")

    book.invalidate_stale_outputs(build, "new")
    assert (build / "html" / "index.html").exists()


def test_build_book_rejects_folder_without_config(tmp_path):
    with pytest.raises(FileNotFoundError, match="_config.yml"):
        book.build_book(tmp_path)


def test_book_fingerprint_tracks_benchmark_results(tmp_path):
    package = _write_package(tmp_path / "pkg")
    results = tmp_path / "book" / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "speed.json").write_text('{"value": 1}')
    before = book.book_fingerprint(tmp_path / "book", package)

    (results / "speed.json").write_text('{"value": 2}')
    assert book.book_fingerprint(tmp_path / "book", package) != before


def test_book_fingerprint_tracks_package(tmp_path):
    package = _write_package(tmp_path / "pkg")
    (tmp_path / "book").mkdir()
    before = book.book_fingerprint(tmp_path / "book", package)

    (package / "__init__.py").write_text("x = 3\n")
    assert book.book_fingerprint(tmp_path / "book", package) != before
