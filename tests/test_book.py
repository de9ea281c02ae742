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


def _write_book(folder: Path, show: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "_config.yml").write_text(f"title: t\nr2ska:\n  show_solutions: {show}\n")
    (folder / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n"
        "  - caption: Homework\n    chapters:\n"
        "      - file: exercises/one\n      - file: exercises/two\n"
    )
    return folder


def test_solutions_switch_read_from_config(tmp_path):
    assert book.solutions_shown(_write_book(tmp_path / "on", "true")) is True
    assert book.solutions_shown(_write_book(tmp_path / "off", "false")) is False


def test_solutions_switch_defaults_to_hidden(tmp_path):
    folder = tmp_path / "book"
    folder.mkdir()
    (folder / "_config.yml").write_text("title: t\n")
    assert book.solutions_shown(folder) is False


def test_solutions_switch_rejects_non_boolean(tmp_path):
    with pytest.raises(ValueError, match="show_solutions.*'yes please'"):
        book.solutions_shown(_write_book(tmp_path / "bad", "yes please"))


def test_generated_toc_adds_matching_solutions(tmp_path):
    import yaml

    toc_path = book.write_toc_with_solutions(_write_book(tmp_path / "book", "true"))
    toc = yaml.safe_load(toc_path.read_text())
    assert toc_path.parent.name == "_build"
    assert toc["parts"][-1] == {
        "caption": "Solutions",
        "chapters": [{"file": "solutions/one"}, {"file": "solutions/two"}],
    }


def test_hidden_solutions_removed_from_site(tmp_path):
    build = tmp_path / "_build"
    for folder in ("html/solutions", "html/_sources/solutions", "jupyter_execute/solutions", "html/exercises"):
        (build / folder).mkdir(parents=True)
        (build / folder / "page.html").write_text("x")
    book.remove_built_solutions(build)
    assert not (build / "html" / "solutions").exists()
    assert not (build / "html" / "_sources" / "solutions").exists()
    assert not (build / "jupyter_execute" / "solutions").exists()
    assert (build / "html" / "exercises" / "page.html").exists()


def test_repository_hides_solutions_by_default():
    assert book.solutions_shown(Path(__file__).resolve().parents[1]) is False
