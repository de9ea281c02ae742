"""Tests for the retrieval demo: precomputed neighbours, static HTML, live widget, and the static page in Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import shapely
from bs4 import BeautifulSoup

from browser import BrowserPage, chromium, is_loopback_url, recording_page, serve_folder
from r2ska.widgets import RetrievalDemo, precompute_neighbours, static_retrieval_html
from r2ska.widgets.retrieval import footprint_paths

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
K = 3

PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>Retrieval</title><link rel="icon" href="data:,"></head>
<body>
{body}
</body>
</html>
"""


def grid_footprints(columns: int = 4, rows: int = 3) -> list[shapely.Polygon]:
    """Unit-degree boxes near 65 degrees north, numbered row by row."""
    return [
        shapely.box(-166.0 + 0.1 * column, 65.0 + 0.05 * row, -165.9 + 0.1 * column, 65.05 + 0.05 * row)
        for row in range(rows)
        for column in range(columns)
    ]


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(12, 6)).astype(np.float32)


@pytest.fixture(scope="module")
def labels() -> list[str]:
    return ["water", "coast", "land"] * 4


@pytest.fixture(scope="module")
def demo(vectors: np.ndarray, labels: list[str]) -> RetrievalDemo:
    return RetrievalDemo(grid_footprints(), vectors, k=K, labels=labels, title="Neighbours", backend="numpy")


def table_names(fragment: BeautifulSoup) -> list[str]:
    return [row.find_all("td")[1].get_text() for row in fragment.select("tbody tr")]


def outlined(fragment: BeautifulSoup, role: str) -> list[int]:
    return sorted(int(path["data-chip"]) for path in fragment.select(f"path.{role}"))


# Precomputed neighbours and static HTML


def test_precompute_neighbours_leaves_self_out(vectors: np.ndarray) -> None:
    scores, indices = precompute_neighbours(vectors, k=K, backend="numpy")
    assert indices.shape == (12, K)
    for row in range(12):
        assert row not in indices[row]
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_footprint_paths_keep_aspect() -> None:
    paths, height = footprint_paths([shapely.box(0.0, 60.0, 2.0, 61.0)], width=402)
    # At 60.5 degrees north, a degree of longitude is about 0.49 of a degree of latitude.
    assert height == pytest.approx(2 + 400 / (2 * np.cos(np.radians(60.5))), abs=1)
    assert paths[0].startswith("M")
    assert paths[0].endswith("Z")


def test_static_html_shows_start_query(demo: RetrievalDemo) -> None:
    soup = BeautifulSoup(demo.static_html, "html.parser")
    assert outlined(soup, "r2ska-query") == [0]
    assert outlined(soup, "r2ska-neighbour") == sorted(demo.indices[0].tolist())
    assert table_names(soup) == [f"chip {index}" for index in demo.indices[0]]
    assert soup.select_one("select option[selected]")["value"] == "0"
    data = json.loads(soup.select_one("script.r2ska-retrieval-data").string)
    assert data["neighbours"] == demo.indices.tolist()
    assert data["labels"] == ["water", "coast", "land"] * 4


def test_static_html_self_contained(demo: RetrievalDemo) -> None:
    soup = BeautifulSoup(demo.static_html, "html.parser")
    assert soup.select("[src]") == []
    assert soup.select("link") == []
    assert "http" not in soup.select_one("script:not([type])").string


def test_static_html_stable_id(vectors: np.ndarray, demo: RetrievalDemo) -> None:
    again = RetrievalDemo(grid_footprints(), vectors, k=K, labels=["water", "coast", "land"] * 4,
                          title="Neighbours", backend="numpy")
    assert again.static_html == demo.static_html
    other = static_retrieval_html(grid_footprints(), demo.scores, demo.indices, start=5)
    root = BeautifulSoup(demo.static_html, "html.parser").select_one("div.r2ska-retrieval")
    assert BeautifulSoup(other, "html.parser").select_one("div.r2ska-retrieval")["id"] != root["id"]


def test_static_html_escapes_names(demo: RetrievalDemo) -> None:
    names = [f"</script><b>{row}" for row in range(12)]
    fragment = static_retrieval_html(grid_footprints(), demo.scores, demo.indices, names=names)
    soup = BeautifulSoup(fragment, "html.parser")
    assert json.loads(soup.select_one("script.r2ska-retrieval-data").string)["names"] == names
    assert soup.select("b") == []


def test_static_html_rejects_mismatched_rows(demo: RetrievalDemo) -> None:
    with pytest.raises(ValueError, match=r"shape \(11, k\)"):
        static_retrieval_html(grid_footprints()[:11], demo.scores, demo.indices)
    with pytest.raises(ValueError, match="labels has 2 entries"):
        static_retrieval_html(grid_footprints(), demo.scores, demo.indices, labels=["a", "b"])
    with pytest.raises(ValueError, match=r"start must be a chip index in \[0, 12\)"):
        static_retrieval_html(grid_footprints(), demo.scores, demo.indices, start=12)


# Live widget


def test_live_widget_follows_dropdown(demo: RetrievalDemo) -> None:
    demo.query.value = 7
    soup = BeautifulSoup(demo.view.value, "html.parser")
    assert outlined(soup, "r2ska-query") == [7]
    assert table_names(soup) == [f"chip {index}" for index in demo.indices[7]]
    demo.query.value = 0


def test_live_widget_bundle(demo: RetrievalDemo) -> None:
    bundle = demo._repr_mimebundle_()
    assert WIDGET_VIEW in bundle
    assert bundle["text/html"] == demo.static_html
    assert bundle["text/plain"] == "RetrievalDemo(12 chips, k=3)"


def test_live_widget_rejects_mismatch(vectors: np.ndarray) -> None:
    with pytest.raises(ValueError, match="12 footprints but 5 vectors"):
        RetrievalDemo(grid_footprints(), vectors[:5], backend="numpy")
    with pytest.raises(ValueError, match="k must be an integer in"):
        RetrievalDemo(grid_footprints(), vectors, k=12, backend="numpy")


# The static demo in headless Chromium


@pytest.fixture(scope="module")
def site(demo: RetrievalDemo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("retrieval-site")
    (folder / "index.html").write_text(PAGE_TEMPLATE.format(body=demo.static_html), encoding="utf-8")
    with serve_folder(Path(folder)) as base_url:
        yield base_url


@pytest.fixture
def browser_page() -> Iterator[BrowserPage]:
    with chromium() as browser, recording_page(browser) as recorded:
        yield recorded


def shown_neighbours(browser_page: BrowserPage) -> list[str]:
    return browser_page.page.locator(".r2ska-retrieval tbody tr td:nth-child(2)").all_text_contents()


def outlined_in_page(browser_page: BrowserPage, role: str) -> list[int]:
    chips = browser_page.page.locator(f"path.{role}").evaluate_all("paths => paths.map(p => p.dataset.chip)")
    return sorted(int(chip) for chip in chips)


@pytest.mark.browser
def test_static_demo_changes_query(browser_page: BrowserPage, site: str, demo: RetrievalDemo) -> None:
    page = browser_page.page
    page.goto(site + "index.html")
    assert shown_neighbours(browser_page) == [f"chip {index}" for index in demo.indices[0]]

    page.locator(".r2ska-retrieval select").select_option(value="9")
    assert shown_neighbours(browser_page) == [f"chip {index}" for index in demo.indices[9]]
    assert outlined_in_page(browser_page, "r2ska-query") == [9]
    assert outlined_in_page(browser_page, "r2ska-neighbour") == sorted(demo.indices[9].tolist())
    assert page.locator(".r2ska-retrieval-query").text_content() == "chip 9"
    expected_scores = [f"{score:.4f}" for score in demo.scores[9]]
    assert page.locator(".r2ska-retrieval tbody tr td:nth-child(4)").all_text_contents() == expected_scores

    assert browser_page.errors() == []
    assert browser_page.blocked == []
    assert [url for url in browser_page.requests if not is_loopback_url(url)] == []


@pytest.mark.browser
def test_static_demo_click_selects_chip(browser_page: BrowserPage, site: str, demo: RetrievalDemo) -> None:
    page = browser_page.page
    page.goto(site + "index.html")
    page.locator('path[data-chip="4"]').click()
    assert page.locator(".r2ska-retrieval select").input_value() == "4"
    assert shown_neighbours(browser_page) == [f"chip {index}" for index in demo.indices[4]]
    assert outlined_in_page(browser_page, "r2ska-query") == [4]
    assert browser_page.errors() == []
