"""Browser tests: the static latent traversal demo plays its frames in headless Chromium."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from bs4 import BeautifulSoup

from browser import BrowserPage, chromium, is_loopback_url, recording_page, serve_folder
from r2ska.widgets import precompute_traversal, static_traversal_html

pytestmark = pytest.mark.browser

VALUES = np.linspace(-2.0, 2.0, 5)
MIDDLE = len(VALUES) // 2

PAGE_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,"></head>
<body>
{body}
</body>
</html>
"""

# Notebook front ends such as JupyterLab set an output's HTML through innerHTML,
# which does not run scripts, and then replace each <script> with a fresh copy so
# that it runs. This page does the same with a demo fragment.
INSERT_SCRIPT = """<div id="output"></div>
<script>
var output = document.getElementById("output");
output.innerHTML = {fragment};
output.querySelectorAll("script").forEach(function (old) {{
  var fresh = document.createElement("script");
  for (var i = 0; i < old.attributes.length; i++) {{
    fresh.setAttribute(old.attributes[i].name, old.attributes[i].value);
  }}
  fresh.textContent = old.textContent;
  old.replaceWith(fresh);
}});
</script>"""


def linear_decoder(codes: torch.Tensor) -> torch.Tensor:
    """Decode (B, 3) codes to (B, 1, 3, 3) images: row k of the image is 0.5 + 0.2 * z[k]."""
    rows = 0.5 + 0.2 * codes  # (B, 3)
    return rows[:, None, :, None].expand(-1, 1, 3, 3)


def demo_html(z: list[float], dims: list[int], title: str) -> str:
    frames = precompute_traversal(linear_decoder, z, dims, VALUES)
    return static_traversal_html(frames, dims, VALUES, title=title)


def frame_uris(fragment: str) -> list[list[str]]:
    """Return the data URI of every frame, [row][column], from a demo fragment."""
    soup = BeautifulSoup(fragment, "html.parser")
    return json.loads(soup.select_one("script.r2ska-traversal-frames").string)["frames"]


def root_id(fragment: str) -> str:
    return BeautifulSoup(fragment, "html.parser").select_one("div.r2ska-traversal")["id"]


@pytest.fixture(scope="module")
def demos() -> list[str]:
    return [
        demo_html([0.0, 0.5, -0.5], [0, 2], "First demo"),
        demo_html([1.0, -1.0, 0.0], [1, 2], "Second demo"),
    ]


@pytest.fixture(scope="module")
def site(demos: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("traversal-site")
    body = "\n<p>Text between the demos.</p>\n".join(demos)
    (folder / "index.html").write_text(PAGE_TEMPLATE.format(title="Two demos", body=body), encoding="utf-8")
    # "</" inside the JavaScript string would end the inline script, so it is escaped.
    fragment = json.dumps(demos[0]).replace("</", "<\\/")
    inserted = INSERT_SCRIPT.format(fragment=fragment)
    (folder / "inserted.html").write_text(PAGE_TEMPLATE.format(title="Inserted", body=inserted), encoding="utf-8")
    with serve_folder(Path(folder)) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as started:
        yield started


@pytest.fixture
def browser_page(browser: object) -> Iterator[BrowserPage]:
    with recording_page(browser) as recorded:
        yield recorded


def shown_src(browser_page: BrowserPage, demo_id: str) -> str:
    return browser_page.page.locator(f"#{demo_id} img").get_attribute("src")


def readout(browser_page: BrowserPage, demo_id: str) -> str:
    return browser_page.page.locator(f"#{demo_id} output").text_content()


def assert_stayed_on_loopback(browser_page: BrowserPage) -> None:
    assert browser_page.blocked == []
    assert [url for url in browser_page.requests if not is_loopback_url(url)] == []


def test_static_demo_follows_controls(browser_page: BrowserPage, site: str, demos: list[str]) -> None:
    page = browser_page.page
    demo_id = root_id(demos[0])
    uris = frame_uris(demos[0])
    page.goto(site + "index.html")

    assert shown_src(browser_page, demo_id) == uris[0][MIDDLE]
    assert readout(browser_page, demo_id) == "0"

    page.locator(f"#{demo_id} input[type=range]").focus()
    page.keyboard.press("ArrowRight")
    assert shown_src(browser_page, demo_id) == uris[0][MIDDLE + 1]
    assert readout(browser_page, demo_id) == "1"

    page.locator(f"#{demo_id} select").select_option(label="z[2]")
    assert shown_src(browser_page, demo_id) == uris[1][MIDDLE + 1]

    page.locator(f"#{demo_id} input[type=range]").evaluate(
        "slider => { slider.value = '0'; slider.dispatchEvent(new Event('input', { bubbles: true })); }"
    )
    assert shown_src(browser_page, demo_id) == uris[1][0]
    assert readout(browser_page, demo_id) == "-2"
    assert page.locator(f"#{demo_id} img").get_attribute("alt") == "Decoded image for z[2] = -2"

    assert browser_page.errors() == []
    assert site + "index.html" in browser_page.requests
    assert_stayed_on_loopback(browser_page)


def test_static_demos_stay_independent(browser_page: BrowserPage, site: str, demos: list[str]) -> None:
    page = browser_page.page
    first_id, second_id = root_id(demos[0]), root_id(demos[1])
    second_uris = frame_uris(demos[1])
    page.goto(site + "index.html")

    assert first_id != second_id
    assert shown_src(browser_page, second_id) == second_uris[0][MIDDLE]

    page.locator(f"#{second_id} input[type=range]").focus()
    page.keyboard.press("ArrowLeft")
    assert shown_src(browser_page, second_id) == second_uris[0][MIDDLE - 1]
    assert shown_src(browser_page, first_id) == frame_uris(demos[0])[0][MIDDLE]

    assert page.locator(".r2ska-traversal[data-r2ska-ready]").count() == 2
    assert browser_page.errors() == []
    assert_stayed_on_loopback(browser_page)


def test_static_demo_works_when_inserted(browser_page: BrowserPage, site: str, demos: list[str]) -> None:
    page = browser_page.page
    demo_id = root_id(demos[0])
    uris = frame_uris(demos[0])
    page.goto(site + "inserted.html")

    page.locator(f"#{demo_id} input[type=range]").focus()
    page.keyboard.press("End")
    assert shown_src(browser_page, demo_id) == uris[0][-1]

    page.locator(f"#{demo_id} select").select_option(value="1")
    assert shown_src(browser_page, demo_id) == uris[1][-1]
    assert readout(browser_page, demo_id) == "2"

    assert browser_page.errors() == []
    assert_stayed_on_loopback(browser_page)
