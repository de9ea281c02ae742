"""Tests for the latent traversal demo: frames, static HTML, live widget and input checks."""

from __future__ import annotations

import base64
import io
import json
import re
from importlib import resources

import numpy as np
import pytest
import torch
from bs4 import BeautifulSoup
from PIL import Image
from torch import nn

from r2ska.widgets import (
    LatentTraversal,
    precompute_traversal,
    static_traversal_html,
    traversal_demo,
    traversal_grid_png,
)

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
DATA_URI_PREFIX = "data:image/png;base64,"

LATENT_DIM = 3
HEIGHT, WIDTH = 4, 6
BLOCK = WIDTH // LATENT_DIM  # columns of the image that each latent coordinate controls
Z = np.array([1.0, -2.0, 0.5])
DIMS = [0, 2]
VALUES = np.linspace(-3.0, 3.0, 7)


def block_decoder(codes: torch.Tensor) -> torch.Tensor:
    """Decode (B, 3) codes to (B, 1, 4, 6) images whose column block k is 0.5 + 0.1 * z[k]."""
    columns = codes.repeat_interleave(BLOCK, dim=1)  # (B, 6)
    return (0.5 + 0.1 * columns)[:, None, None, :].expand(-1, 1, HEIGHT, WIDTH)


def expected_frame(dim: int, value: float) -> np.ndarray:
    """Compute by hand the image block_decoder makes from Z with z[dim] set to value."""
    code = Z.copy()
    code[dim] = value
    return np.repeat(0.5 + 0.1 * code, BLOCK)[None, :].repeat(HEIGHT, axis=0)


def png_pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def data_uri_pixels(uri: str) -> np.ndarray:
    assert uri.startswith(DATA_URI_PREFIX), uri[:40]
    return png_pixels(base64.b64decode(uri[len(DATA_URI_PREFIX) :]))


def as_uint8(frame: np.ndarray) -> np.ndarray:
    return np.round(frame * 255.0).astype(np.uint8)


def frames_payload(html: str) -> dict:
    soup = BeautifulSoup(html, "html.parser")
    return json.loads(soup.select_one("script.r2ska-traversal-frames").string)


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return precompute_traversal(block_decoder, Z, DIMS, VALUES)


@pytest.fixture(scope="module")
def static_html(frames: np.ndarray) -> str:
    return static_traversal_html(frames, DIMS, VALUES, title="Block decoder")


# precompute_traversal


def test_precompute_shape_and_range(frames: np.ndarray) -> None:
    assert frames.shape == (len(DIMS), len(VALUES), HEIGHT, WIDTH)
    assert frames.dtype == np.float32
    assert frames.min() >= 0.0
    assert frames.max() <= 1.0


def test_precompute_matches_hand_computed_frames(frames: np.ndarray) -> None:
    for row, dim in enumerate(DIMS):
        for column, value in enumerate(VALUES):
            np.testing.assert_allclose(frames[row, column], expected_frame(dim, value), atol=1e-6)


def test_precompute_rows_change_only_their_block(frames: np.ndarray) -> None:
    for row, dim in enumerate(DIMS):
        changed = np.abs(frames[row] - frames[row, 0]).max(axis=(0, 1)) > 1e-6  # (W,)
        expected = np.zeros(WIDTH, dtype=bool)
        expected[dim * BLOCK : (dim + 1) * BLOCK] = True
        assert changed.tolist() == expected.tolist(), f"row {row} (z[{dim}])"


def test_precompute_clips_decoder_overshoot() -> None:
    frames = precompute_traversal(lambda codes: 4.0 * block_decoder(codes) - 1.5, Z, [1], VALUES)

    assert frames.min() == 0.0
    assert frames.max() == 1.0


def test_precompute_decodes_without_grad() -> None:
    grad_enabled = []

    def decode(codes: torch.Tensor) -> torch.Tensor:
        grad_enabled.append(torch.is_grad_enabled())
        return block_decoder(codes)

    precompute_traversal(decode, torch.tensor(Z, requires_grad=True), DIMS, VALUES)

    assert grad_enabled == [False, False]


def test_precompute_keeps_tensor_dtype() -> None:
    dtypes = []

    def decode(codes: torch.Tensor) -> torch.Tensor:
        dtypes.append(codes.dtype)
        return block_decoder(codes)

    precompute_traversal(decode, torch.tensor(Z, dtype=torch.float64), [0], VALUES)
    precompute_traversal(decode, Z, [0], VALUES)

    assert dtypes == [torch.float64, torch.float32]


def test_precompute_rejects_wrong_decoder_shape() -> None:
    def decode(codes: torch.Tensor) -> torch.Tensor:
        return block_decoder(codes).expand(-1, 3, -1, -1)

    with pytest.raises(ValueError, match=re.escape("decode returned shape (7, 3, 4, 6)")):
        precompute_traversal(decode, Z, DIMS, VALUES)


def test_precompute_rejects_non_finite_decoder_output() -> None:
    with pytest.raises(ValueError, match="NaN or infinite pixels for latent dimension 0"):
        precompute_traversal(lambda codes: block_decoder(codes) * float("nan"), Z, DIMS, VALUES)


def test_precompute_rejects_non_tensor_output() -> None:
    with pytest.raises(TypeError, match="got ndarray"):
        precompute_traversal(lambda codes: block_decoder(codes).numpy(), Z, DIMS, VALUES)


# static_traversal_html


def test_static_html_one_data_uri_per_frame(frames: np.ndarray, static_html: str) -> None:
    uris = frames_payload(static_html)["frames"]

    assert [len(row) for row in uris] == [len(VALUES)] * len(DIMS)
    for row in range(len(DIMS)):
        for column in range(len(VALUES)):
            pixels = data_uri_pixels(uris[row][column])
            np.testing.assert_array_equal(pixels, as_uint8(frames[row, column]))
    # One URI per frame in the JSON block, plus the starting frame in the <img>.
    assert static_html.count(DATA_URI_PREFIX) == len(DIMS) * len(VALUES) + 1


def test_static_html_select_options(static_html: str) -> None:
    select = BeautifulSoup(static_html, "html.parser").select_one("select")
    options = select.find_all("option")

    assert [option.get_text() for option in options] == ["z[0]", "z[2]"]
    assert [option["value"] for option in options] == ["0", "1"]
    assert options[0].has_attr("selected")


def test_static_html_range_and_readout(static_html: str) -> None:
    soup = BeautifulSoup(static_html, "html.parser")
    slider = soup.select_one('input[type="range"]')
    middle = len(VALUES) // 2

    assert slider["min"] == "0"
    assert slider["max"] == str(len(VALUES) - 1)
    assert slider["step"] == "1"
    assert slider["value"] == str(middle)
    assert soup.select_one("output").get_text() == "0"
    assert frames_payload(static_html)["labels"] == ["-3", "-2", "-1", "0", "1", "2", "3"]


def test_static_html_starts_on_middle_frame(frames: np.ndarray, static_html: str) -> None:
    image = BeautifulSoup(static_html, "html.parser").select_one("img")
    middle = len(VALUES) // 2

    np.testing.assert_array_equal(data_uri_pixels(image["src"]), as_uint8(frames[0, middle]))
    # 168 CSS pixels over a 6-pixel-wide frame rounds to a scale of 28.
    assert image["width"] == str(WIDTH * 28)
    assert image["height"] == str(HEIGHT * 28)


def test_static_html_inlines_package_script(static_html: str) -> None:
    script_file = resources.files("r2ska.widgets").joinpath("traversal.js").read_text(encoding="utf-8")
    scripts = [
        script.string for script in BeautifulSoup(static_html, "html.parser").find_all("script") if not script.get("type")
    ]

    assert len(scripts) == 1
    inlined_lines = [line for line in scripts[0].splitlines() if line.strip()]
    assert inlined_lines == [line for line in script_file.splitlines() if line.strip()]


def test_static_html_references_no_web_url(static_html: str) -> None:
    soup = BeautifulSoup(static_html, "html.parser")

    assert re.search(r"https?:", static_html, re.IGNORECASE) is None
    assert "//" not in re.sub(r"^\s*//.*$", "", soup.find("script", type=None).string, flags=re.MULTILINE)
    for element in soup.find_all(src=True):
        assert element["src"].startswith(DATA_URI_PREFIX), element.name
    assert soup.find_all(href=True) == []


def test_static_html_has_no_blank_lines(static_html: str) -> None:
    assert "\n\n" not in static_html


def test_static_html_escapes_title(frames: np.ndarray) -> None:
    html = static_traversal_html(frames, DIMS, VALUES, title="<i>z</i> & friends")

    assert "&lt;i&gt;z&lt;/i&gt; &amp; friends" in html
    assert "<i>" not in html


def test_static_html_is_reproducible(frames: np.ndarray, static_html: str) -> None:
    again = static_traversal_html(frames.copy(), list(DIMS), VALUES.tolist(), title="Block decoder")

    assert again == static_html


def test_static_html_ids_depend_on_content(frames: np.ndarray, static_html: str) -> None:
    def root_id(html: str) -> str:
        return BeautifulSoup(html, "html.parser").select_one("div.r2ska-traversal")["id"]

    changed_frames = frames.copy()
    changed_frames[1, 3, 0, 0] = 0.0
    ids = {
        "original": root_id(static_html),
        "other frames": root_id(static_traversal_html(changed_frames, DIMS, VALUES, title="Block decoder")),
        "other title": root_id(static_traversal_html(frames, DIMS, VALUES, title="Another")),
        "other dims": root_id(static_traversal_html(frames, [0, 1], VALUES, title="Block decoder")),
    }

    assert re.fullmatch(r"r2ska-traversal-[0-9a-f]{12}", ids["original"])
    assert len(set(ids.values())) == len(ids), ids


# traversal_grid_png


def test_grid_png_tiles_frames(frames: np.ndarray) -> None:
    grid = png_pixels(traversal_grid_png(frames, scale=1))

    assert grid.shape == (len(DIMS) * (HEIGHT + 1) - 1, len(VALUES) * (WIDTH + 1) - 1)
    for row in range(len(DIMS)):
        for column in range(len(VALUES)):
            top, left = row * (HEIGHT + 1), column * (WIDTH + 1)
            tile = grid[top : top + HEIGHT, left : left + WIDTH]
            np.testing.assert_array_equal(tile, as_uint8(frames[row, column]))


def test_grid_png_upscales(frames: np.ndarray) -> None:
    small = png_pixels(traversal_grid_png(frames, scale=1))
    large = png_pixels(traversal_grid_png(frames, scale=3))

    np.testing.assert_array_equal(large, small.repeat(3, axis=0).repeat(3, axis=1))


# LatentTraversal


@pytest.fixture
def widget() -> LatentTraversal:
    return LatentTraversal(block_decoder, Z, DIMS, VALUES, title="Block decoder", display_width=WIDTH * 2)


def test_widget_sliders_start_at_code(widget: LatentTraversal) -> None:
    assert [slider.description for slider in widget.sliders] == ["z[0]", "z[2]"]
    assert [slider.value for slider in widget.sliders] == [1.0, 0.5]
    assert all(slider.min == -3.0 and slider.max == 3.0 for slider in widget.sliders)


def test_widget_clips_start_to_values() -> None:
    widget = LatentTraversal(block_decoder, [5.0, 0.0, -5.0], [0, 2], VALUES)

    assert [slider.value for slider in widget.sliders] == [3.0, -3.0]


def test_widget_image_shows_decoded_code(widget: LatentTraversal) -> None:
    pixels = png_pixels(widget.image.value)

    # display_width of twice the frame width upscales each pixel to 2x2.
    assert pixels.shape == (HEIGHT * 2, WIDTH * 2)
    np.testing.assert_array_equal(pixels[::2, ::2], as_uint8(expected_frame(0, Z[0])))


def test_widget_slider_change_redecodes(widget: LatentTraversal) -> None:
    before = widget.image.value

    widget.sliders[1].value = 2.5

    assert widget.image.value != before
    np.testing.assert_array_equal(png_pixels(widget.image.value)[::2, ::2], as_uint8(expected_frame(2, 2.5)))


def test_widget_precomputes_static_frames(widget: LatentTraversal, frames: np.ndarray) -> None:
    np.testing.assert_array_equal(widget.frames, frames)
    assert widget.static_html == static_traversal_html(frames, DIMS, VALUES, title="Block decoder", display_width=12)


def test_widget_mimebundle_has_view_and_html(widget: LatentTraversal) -> None:
    bundle = widget._repr_mimebundle_()

    assert bundle[WIDGET_VIEW]["model_id"] == widget.model_id
    assert bundle["text/html"] == widget.static_html
    assert bundle["text/plain"] == "LatentTraversal(dims=[0, 2], 7 values from -3 to 3)"
    grid = png_pixels(base64.b64decode(bundle["image/png"]))
    assert grid.shape == ((len(DIMS) * (HEIGHT + 1) - 1) * 2, (len(VALUES) * (WIDTH + 1) - 1) * 2)


class TinyDecoderModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.decoder = nn.Linear(LATENT_DIM, HEIGHT * WIDTH)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(codes)).reshape(-1, 1, HEIGHT, WIDTH)


def test_traversal_demo_uses_model_decode() -> None:
    torch.manual_seed(0)
    model = TinyDecoderModel().train()

    widget = traversal_demo(model, torch.tensor(Z, dtype=torch.float64), DIMS, VALUES)

    assert not model.training
    expected = precompute_traversal(model.decode, Z, DIMS, VALUES)
    np.testing.assert_allclose(widget.frames, expected, atol=1e-6)


def test_traversal_demo_rejects_model_without_decode() -> None:
    with pytest.raises(TypeError, match="Linear has no decode method"):
        traversal_demo(nn.Linear(3, 3), Z, DIMS, VALUES)


# Input checks


@pytest.mark.parametrize(
    ("dims", "values", "message"),
    [
        ([], VALUES, "dims is empty"),
        ([0, 3], VALUES, "Latent dimension 3 in dims is outside [0, 3)"),
        ([-1], VALUES, "Latent dimension -1 in dims is outside [0, 3)"),
        ([2, 2], VALUES, "more than once: [2, 2]"),
        (DIMS, [1.0], "at least 2 latent values to traverse, got [1.0]"),
        (DIMS, [1.0, 0.0], "strictly increasing, got [1.0, 0.0]"),
        (DIMS, [0.0, float("inf")], "finite, got [0.0, inf]"),
        (DIMS, [[0.0, 1.0]], "1-D sequence of latent values, got shape (1, 2)"),
    ],
)
def test_precompute_rejects_invalid_arguments(dims: list[int], values: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        precompute_traversal(block_decoder, Z, dims, values)
    with pytest.raises(ValueError, match=re.escape(message)):
        LatentTraversal(block_decoder, Z, dims, values)


def test_precompute_rejects_batch_of_codes() -> None:
    with pytest.raises(ValueError, match=re.escape("got shape (1, 3)")):
        precompute_traversal(block_decoder, Z[None], DIMS, VALUES)


def test_precompute_rejects_single_int_dims() -> None:
    with pytest.raises(TypeError, match=re.escape("pass [1]")):
        precompute_traversal(block_decoder, Z, 1, VALUES)


def test_precompute_rejects_float_dims() -> None:
    with pytest.raises(TypeError, match=re.escape("got 1.0")):
        precompute_traversal(block_decoder, Z, [1.0], VALUES)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda frames: frames[0], "got 3 axes with shape (7, 4, 6)"),
        (lambda frames: frames[:, :, None], "got 5 axes"),
        (lambda frames: frames[:1], "frames has 1 rows and 7 columns, but dims and values ask for 2 and 7"),
        (lambda frames: frames[:, :5], "frames has 2 rows and 5 columns"),
        (lambda frames: frames * 2.0, "got pixels from 0.4 to 1.6"),
        (lambda frames: frames - 1.0, "got pixels from -0.8 to -0.2"),
        (lambda frames: frames * np.nan, "NaN or infinite pixels"),
    ],
)
def test_static_html_rejects_invalid_frames(frames: np.ndarray, change, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        static_traversal_html(change(frames), DIMS, VALUES)


def test_static_html_rejects_bad_display_width(frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match=re.escape("display_width must be a positive number of CSS pixels, got 0")):
        static_traversal_html(frames, DIMS, VALUES, display_width=0)


def test_grid_png_rejects_bad_scale(frames: np.ndarray) -> None:
    with pytest.raises(ValueError, match=re.escape("got 1.5")):
        traversal_grid_png(frames, scale=1.5)
