"""Build the whole book on the real data and check the executed pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

pytestmark = pytest.mark.book

CHAPTER_1 = "chapters/01_autoencoders.html"
CHAPTERS = (
    CHAPTER_1,
    "chapters/02_embeddings.html",
    "chapters/03_lora.html",
    "chapters/benchmarks.html",
)


def _page(site: Path, name: str) -> BeautifulSoup:
    path = site / name
    assert path.is_file(), f"{name} was not built"
    return BeautifulSoup(path.read_text(), "html.parser")


def _main_text(page: BeautifulSoup) -> str:
    return " ".join(page.find("main").get_text(" ").split())


def test_chapter_has_figures(built_site):
    page = _page(built_site, CHAPTER_1)
    figures = page.select("div.cell_output img")
    assert len(figures) >= 10


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_has_no_error_output(built_site, name):
    page = _page(built_site, name)
    assert page.select("div.output.traceback") == []
    assert page.select("div.output.stderr") == []
    assert "Traceback (most recent call last)" not in page.get_text()


def test_chapter_quotes_glued_numbers(built_site):
    text = _main_text(_page(built_site, CHAPTER_1))
    assert "We train on 60000 images and evaluate on 10000 held-out test images" in text
    match = re.search(r"test reconstruction error of (\d\.\d{4}) per pixel", text)
    assert match, "glued autoencoder MSE missing from the comparison paragraph"
    assert 0 < float(match.group(1)) <= 0.02
    knn = re.search(r"reaches (\d\.\d{3}) accuracy on the autoencoder.s codes", text)
    assert knn, "glued k-NN accuracy missing"
    assert 0.8 < float(knn.group(1)) <= 1.0


def test_chapter_shows_comparison_table(built_site):
    page = _page(built_site, CHAPTER_1)
    headers = [cell.get_text(strip=True) for cell in page.select("table th")]
    for row in ("autoencoder", "VAE", "PCA"):
        assert row in headers


def test_chapter_has_static_traversal_demo(built_site):
    page = _page(built_site, CHAPTER_1)
    demos = page.select("div.r2ska-traversal")
    assert len(demos) == 1
    assert demos[0].select_one('input[type="range"]') is not None
    assert len(demos[0].select("select option")) == 6


@pytest.mark.parametrize("name", CHAPTERS)
def test_chapter_loads_no_remote_scripts(built_site, name):
    page = _page(built_site, name)
    sources = [tag.get("src", "") for tag in page.select("script[src]")]
    remote = [src for src in sources if src.startswith(("http:", "https:", "//"))]
    # The theme loads MathJax from its CDN to typeset formulas; nothing else may be remote.
    assert [src for src in remote if "mathjax" not in src.lower()] == []


def test_real_data_page_has_no_offline_notice(built_site):
    page = _page(built_site, CHAPTER_1)
    assert page.select(".r2ska-offline-notice") == []


def test_benchmarks_page_lists_results(built_site):
    text = _main_text(_page(built_site, "chapters/benchmarks.html"))
    assert "train_throughput" in text
    assert "ae_reconstruction" in text


def test_site_has_bibliography(built_site):
    text = _main_text(_page(built_site, CHAPTER_1))
    assert "reducing the dimensionality of data with neural networks" in text.lower()
    assert "auto-encoding variational" in text.lower()


def test_lora_chapter_shows_comparison_table(built_site):
    text = _main_text(_page(built_site, "chapters/03_lora.html"))
    for strategy in ("head", "full", "LoRA"):
        assert strategy in text
    # Accuracy against rank and against the number of target labels.
    assert len(_page(built_site, "chapters/03_lora.html").select("div.cell_output img")) >= 2


def test_embeddings_chapter_has_demo(built_site):
    page = _page(built_site, "chapters/02_embeddings.html")
    assert len(page.select("div.r2ska-retrieval")) == 1
    assert len(page.select("div.cell_output img")) >= 3


HOMEWORK = ("mirabest_autoencoder", "mirabest_retrieval")


@pytest.mark.parametrize("name", HOMEWORK)
def test_exercise_page_has_blanks_no_outputs(built_site, name):
    page = _page(built_site, f"exercises/{name}.html")
    text = _main_text(page)
    assert "YOUR CODE HERE" in text
    # Syntax highlighting splits code into spans, which get_text joins with spaces.
    assert 'grader.check("q1")' in text.replace(" ", "")
    assert not page.select("main .cell_output")


@pytest.mark.parametrize("name", HOMEWORK)
def test_solution_page_passes_public_checks(built_site, name):
    page = _page(built_site, f"solutions/{name}.html")
    reports = page.select("main .r2ska-check")
    assert len(reports) == 4
    for report in reports:
        assert "all checks passed" in report.get_text(), report.get_text()
    assert "Traceback" not in _main_text(page)


def test_solution_page_shows_collapse_and_fix(built_site):
    page = _page(built_site, "solutions/mirabest_autoencoder.html")
    text = _main_text(page)
    assert "sigmoid output, plain MSE" in text
    assert len(page.select("main img")) >= 3


def test_sidebar_lists_homework_and_solutions(built_site):
    page = _page(built_site, "intro.html")
    links = {a.get("href", "") for a in page.select("nav a")}
    for name in HOMEWORK:
        assert any(f"exercises/{name}.html" in link for link in links)
        assert any(f"solutions/{name}.html" in link for link in links)
