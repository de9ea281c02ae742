"""Open the built chapter in headless Chromium and drive its static traversal demo."""

from __future__ import annotations

import pytest

from browser import chromium_page, serve_folder
from test_book_build import CHAPTER_1

pytestmark = [pytest.mark.book, pytest.mark.browser]


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
    assert browser_page.blocked == []
    assert browser_page.page_errors == []
