"""Open the built chapters in headless Chromium and drive their static demos."""

from __future__ import annotations

import pytest

from browser import chromium_page, serve_folder
from test_book_build import CHAPTER_1

pytestmark = [pytest.mark.book, pytest.mark.browser]


def _errors_besides_thebe(browser_page) -> list[str]:
    """Return page errors other than Jupyter Book 1.0's known one.

    Jupyter Book 1.0.4 with sphinx-thebe 0.3.1 writes the Thebe settings script
    twice into every page, so the second copy fails with "Identifier
    'THEBE_JS_URL' has already been declared". The book does not use Thebe.
    """
    return [error for error in browser_page.page_errors if "THEBE_JS_URL" not in error]


def _blocked_besides_mathjax(browser_page) -> list[str]:
    """Return the blocked requests other than the theme's MathJax, which comes from a CDN."""
    return [url for url in browser_page.blocked if "mathjax" not in url.lower()]


def test_static_traversal_demo_responds(built_site):
    with serve_folder(built_site) as base_url, chromium_page() as browser_page:
        page = browser_page.page
        page.goto(f"{base_url}/{CHAPTER_1}")
        demo = page.locator("div.r2ska-traversal").first
        image = demo.locator("img")
        slider = demo.locator('input[type="range"]')

        before = image.get_attribute("src")
        slider.focus()
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowRight")
        after_slider = image.get_attribute("src")

        demo.locator("select").select_option(index=3)
        after_select = image.get_attribute("src")

    assert after_slider != before
    assert after_select != after_slider
    assert _blocked_besides_mathjax(browser_page) == []
    assert _errors_besides_thebe(browser_page) == []


def test_static_retrieval_demo_responds(built_site):
    with serve_folder(built_site) as base_url, chromium_page() as browser_page:
        page = browser_page.page
        page.goto(f"{base_url}/chapters/02_embeddings.html")
        demo = page.locator("div.r2ska-retrieval").first
        neighbours = demo.locator("tbody tr td:nth-child(2)")

        before = neighbours.all_text_contents()
        options = demo.locator("select option").evaluate_all("nodes => nodes.map(n => n.value)")
        current = demo.locator("select").input_value()
        other = next(value for value in options if value != current)
        demo.locator("select").select_option(value=other)
        after = neighbours.all_text_contents()

    assert len(before) >= 3
    assert after != before
    assert _blocked_besides_mathjax(browser_page) == []
    assert _errors_besides_thebe(browser_page) == []
