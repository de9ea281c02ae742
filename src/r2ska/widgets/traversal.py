"""Latent traversal demo: live sliders in a kernel and precomputed frames on the static site."""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import ipywidgets
import numpy as np
import torch
from PIL import Image

Decoder = Callable[[torch.Tensor], torch.Tensor]
"""A function that maps codes (B, d) to grayscale images (B, 1, H, W) in [0, 1]."""

# 28x28 MNIST digits shown 6x larger, which reads well next to the controls.
DEFAULT_DISPLAY_WIDTH = 168

# Live sliders move in this many steps between the smallest and the largest value,
# finer than the precomputed static frames, because decoding one code is cheap.
_LIVE_SLIDER_STEPS = 100


def precompute_traversal(
    decode: Decoder,
    z: torch.Tensor | np.ndarray | Sequence[float],
    dims: Sequence[int],
    values: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Decode a traversal grid: each row sets one latent dimension to each of ``values``.

    The other coordinates keep their values from ``z``. Decoding runs under
    ``torch.no_grad``, one batch of ``len(values)`` codes per row.

    Args:
        decode: Maps codes (B, d) to images (B, 1, H, W) or (B, H, W), for
            example ``model.decode`` of an autoencoder in eval mode.
        z: The code to start from, shape (d,). A tensor keeps its device and
            dtype. Anything else becomes a float32 tensor on the CPU.
        dims: Latent dimensions to vary, one row each, every one in [0, d).
        values: Strictly increasing values that replace ``z[dim]``, one column each.

    Returns:
        Frames of shape (len(dims), len(values), H, W), float32, clipped to [0, 1].

    Raises:
        ValueError: If ``z``, ``dims`` or ``values`` is invalid, or ``decode``
            returns the wrong shape or non-finite pixels.
        TypeError: If ``dims`` is not a sequence of integers, or ``decode``
            does not return a tensor.
    """
    code = _as_code(z)
    dim_list = _check_dims(dims, latent_dim=code.numel())
    value_array = _check_values(values)
    steps = torch.as_tensor(value_array, dtype=code.dtype, device=code.device)  # (V,)

    rows = []
    with torch.no_grad():
        for dim in dim_list:
            batch = code.repeat(len(steps), 1)  # (V, d)
            batch[:, dim] = steps
            rows.append(_decoded_images(decode(batch), len(steps), f"latent dimension {dim}"))
    return np.stack(rows)  # (D, V, H, W)


def static_traversal_html(
    frames: np.ndarray,
    dims: Sequence[int],
    values: Sequence[float] | np.ndarray,
    *,
    title: str | None = None,
    display_width: int = DEFAULT_DISPLAY_WIDTH,
) -> str:
    """Write a self-contained HTML fragment that plays precomputed traversal frames.

    The fragment contains the frames as PNG data URIs, a ``<select>`` for the
    latent dimension, an ``<input type="range">`` over the values with an
    ``<output>`` readout, and an inline script (the package file
    ``traversal.js``) that swaps the shown frame. It loads nothing from the
    network. It works when the HTML is part of the page source, as on the
    Jupyter Book site, and when a front end such as JupyterLab inserts it into
    a page and runs its scripts. The root element's id is a hash of the
    content, so rebuilds write the same HTML and different demos on one page
    have different ids.

    Args:
        frames: Images of shape (len(dims), len(values), H, W) in [0, 1], as
            returned by ``precompute_traversal``.
        dims: The latent dimension of each row of ``frames``.
        values: The strictly increasing latent values of the columns of ``frames``.
        title: Optional heading shown above the controls.
        display_width: Approximate width of the shown image in CSS pixels. It
            is rounded to a whole multiple of the frame width so that pixels
            stay square and sharp.

    Returns:
        The HTML fragment.

    Raises:
        ValueError: If ``frames`` has the wrong shape or pixels outside
            [0, 1], or ``dims`` or ``values`` is invalid.
        TypeError: If ``dims`` is not a sequence of integers.
    """
    dim_list = _check_dims(dims, latent_dim=None)
    value_array = _check_values(values)
    image_frames = _check_frames(frames, len(dim_list), len(value_array))
    scale = _display_scale(image_frames.shape[-1], display_width)

    payload = {
        "dimNames": [f"z[{dim}]" for dim in dim_list],
        "labels": [_format_value(value) for value in value_array],
        "frames": [[_png_data_uri(frame) for frame in row] for row in image_frames],
    }
    payload_json = json.dumps(payload, separators=(",", ":"))
    digest = hashlib.sha256(f"{title!r}\n{scale}\n{payload_json}".encode()).hexdigest()
    height, width = image_frames.shape[-2:]
    return _fragment_html(
        root_id=f"r2ska-traversal-{digest[:12]}",
        title=title,
        payload=payload,
        payload_json=payload_json,
        size=(width * scale, height * scale),
    )


def traversal_grid_png(frames: np.ndarray, *, scale: int = 2) -> bytes:
    """Tile traversal frames into one PNG, one row per latent dimension.

    Print and LaTeX builds, which cannot run the interactive versions, show this grid.

    Args:
        frames: Images of shape (D, V, H, W) in [0, 1].
        scale: Whole-number upscaling factor, applied with nearest-neighbour resampling.

    Returns:
        PNG bytes of a grid with a one-pixel white gap (before upscaling) between frames.

    Raises:
        ValueError: If ``frames`` has the wrong shape or pixels outside [0, 1],
            or ``scale`` is not a positive integer.
    """
    image_frames = _check_frames(frames, None, None)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}: use for example scale=2.")

    rows, columns, height, width = image_frames.shape
    grid = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1), dtype=np.float32)
    for row in range(rows):
        for column in range(columns):
            top, left = row * (height + 1), column * (width + 1)
            grid[top : top + height, left : left + width] = image_frames[row, column]
    return _png_bytes(grid, scale)


class LatentTraversal(ipywidgets.VBox):
    """Sliders over chosen latent dimensions that decode the edited code as they move.

    In a Jupyter kernel each slider sets one coordinate of the code, and the
    image shows ``decode`` of the result, decoded under ``torch.no_grad``
    whenever a slider moves. The other coordinates keep their values from
    ``z``, and a slider starts at its coordinate's value clipped to the range
    of ``values``.

    The constructor also precomputes the frames for ``values`` (see
    ``precompute_traversal``). The display bundle carries, next to the live
    widget view, a ``text/html`` entry with the static version from
    ``static_traversal_html`` and an ``image/png`` grid of the frames. A
    static page that ranks ``text/html`` above the widget view therefore shows
    precomputed frames driven by JavaScript, without a kernel.

    Attributes:
        frames: Precomputed frames (len(dims), len(values), H, W) in [0, 1].
        static_html: The static HTML version of the demo.
        sliders: One ``FloatSlider`` per latent dimension in ``dims``, in that order.
        image: The ``ipywidgets.Image`` that shows the current decoded code as PNG.
    """

    def __init__(
        self,
        decode: Decoder,
        z: torch.Tensor | np.ndarray | Sequence[float],
        dims: Sequence[int],
        values: Sequence[float] | np.ndarray,
        *,
        title: str | None = None,
        display_width: int = DEFAULT_DISPLAY_WIDTH,
        continuous_update: bool = True,
    ) -> None:
        """Build the sliders, decode the starting image and precompute the static frames.

        Args:
            decode: Maps codes (B, d) to images (B, 1, H, W) or (B, H, W) in [0, 1].
            z: The code to start from, shape (d,). A tensor keeps its device and dtype.
            dims: Latent dimensions that get a slider, every one in [0, d).
            values: Strictly increasing values for the static frames. The
                sliders run from the first to the last of them.
            title: Optional heading shown above the sliders.
            display_width: Approximate width of the image in CSS pixels,
                rounded to a whole multiple of the image width.
            continuous_update: Whether to decode while a slider is dragged,
                rather than only when it is released.

        Raises:
            ValueError: If ``z``, ``dims`` or ``values`` is invalid, or
                ``decode`` returns the wrong shape or non-finite pixels.
            TypeError: If ``dims`` is not a sequence of integers, or
                ``decode`` does not return a tensor.
        """
        super().__init__()
        self._decode = decode
        self._code = _as_code(z).clone()
        self._dims = _check_dims(dims, latent_dim=self._code.numel())
        self._values = _check_values(values)
        self.frames = precompute_traversal(decode, self._code, self._dims, self._values)
        self._scale = _display_scale(self.frames.shape[-1], display_width)
        self.static_html = static_traversal_html(
            self.frames, self._dims, self._values, title=title, display_width=display_width
        )

        low, high = float(self._values[0]), float(self._values[-1])
        self.sliders = [
            ipywidgets.FloatSlider(
                value=min(max(float(self._code[dim]), low), high),
                min=low,
                max=high,
                step=(high - low) / _LIVE_SLIDER_STEPS,
                description=f"z[{dim}]",
                continuous_update=continuous_update,
                readout_format=".2f",
            )
            for dim in self._dims
        ]
        self.image = ipywidgets.Image(value=self._render(), format="png")
        for slider in self.sliders:
            slider.observe(self._on_slider_change, names="value")

        heading = [ipywidgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.children = [*heading, ipywidgets.HBox([ipywidgets.VBox(self.sliders), self.image])]

    def _render(self) -> bytes:
        """Decode the code that the sliders describe and encode it as PNG."""
        code = self._code.clone()
        for dim, slider in zip(self._dims, self.sliders):
            code[dim] = slider.value
        with torch.no_grad():
            output = self._decode(code[None])  # (1, 1, H, W)
        return _png_bytes(_decoded_images(output, 1, "the live widget")[0], self._scale)

    def _on_slider_change(self, change: dict[str, Any]) -> None:
        self.image.value = self._render()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """Add the static HTML version and a PNG grid next to the live widget view."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        bundle["text/plain"] = (
            f"LatentTraversal(dims={self._dims}, {len(self._values)} values "
            f"from {_format_value(self._values[0])} to {_format_value(self._values[-1])})"
        )
        bundle["text/html"] = self.static_html
        bundle["image/png"] = base64.b64encode(traversal_grid_png(self.frames)).decode("ascii")
        return bundle


def traversal_demo(
    model: torch.nn.Module,
    z: torch.Tensor | np.ndarray | Sequence[float],
    dims: Sequence[int],
    values: Sequence[float] | np.ndarray,
    *,
    title: str | None = None,
    display_width: int = DEFAULT_DISPLAY_WIDTH,
) -> LatentTraversal:
    """Build a ``LatentTraversal`` over the decoder of an ``r2ska`` autoencoder.

    The model is switched to eval mode and stays there, because the live
    widget keeps decoding after this function returns. ``z`` moves to the
    device and dtype of the model's first parameter.

    Args:
        model: A model with a ``decode`` method, such as ``r2ska.models.ConvAutoencoder``.
        z: The code to start from, shape (latent_dim,).
        dims: Latent dimensions that get a slider and a row of static frames.
        values: Strictly increasing values that replace ``z[dim]``.
        title: Optional heading shown above the controls.
        display_width: Approximate width of the image in CSS pixels.

    Returns:
        The widget. Display it as a cell's last expression.

    Raises:
        TypeError: If ``model`` has no ``decode`` method.
        ValueError: If ``z``, ``dims`` or ``values`` is invalid.
    """
    decode = getattr(model, "decode", None)
    if not callable(decode):
        raise TypeError(
            f"{type(model).__name__} has no decode method: pass an autoencoder such as "
            "r2ska.models.ConvAutoencoder, or build LatentTraversal(decode, z, dims, values) "
            "with your own decoder function."
        )
    model.eval()
    parameter = next(model.parameters(), None)
    code = _as_code(z)
    if parameter is not None:
        code = code.to(device=parameter.device, dtype=parameter.dtype)
    return LatentTraversal(decode, code, dims, values, title=title, display_width=display_width)


def _as_code(z: torch.Tensor | np.ndarray | Sequence[float]) -> torch.Tensor:
    """Convert ``z`` to a detached 1-D floating-point tensor and check it."""
    if isinstance(z, torch.Tensor):
        code = z.detach()
        if not code.is_floating_point():
            code = code.float()
    else:
        code = torch.as_tensor(np.asarray(z, dtype=np.float32))
    if code.ndim != 1 or code.numel() == 0:
        raise ValueError(
            f"z must be one latent code of shape (d,), got shape {tuple(code.shape)}: "
            "pass a single row, for example codes[0]."
        )
    if not bool(torch.isfinite(code).all()):
        raise ValueError(f"z contains NaN or infinite values: {code.tolist()}.")
    return code


def _check_dims(dims: Sequence[int], latent_dim: int | None) -> list[int]:
    """Return ``dims`` as a list of ints after checking them against the code size."""
    if isinstance(dims, (int, np.integer)):
        raise TypeError(
            f"dims must be a sequence of latent dimension indices, got the single index {dims}: pass [{dims}]."
        )
    dim_list = list(dims)
    if not dim_list:
        raise ValueError("dims is empty: pass at least one latent dimension index, for example dims=[0, 1].")

    for dim in dim_list:
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)):
            raise TypeError(f"dims must contain integer indices, got {dim!r} in {dim_list}.")
        if latent_dim is not None and not 0 <= dim < latent_dim:
            raise ValueError(
                f"Latent dimension {dim} in dims is outside [0, {latent_dim}) for a code of size "
                f"{latent_dim}: use indices from 0 to {latent_dim - 1}."
            )
        if dim < 0:
            raise ValueError(f"Latent dimension {dim} in dims is negative: use indices from 0 to d - 1.")
    if len(set(dim_list)) != len(dim_list):
        raise ValueError(f"dims lists a latent dimension more than once: {dim_list}. List each one once.")
    return [int(dim) for dim in dim_list]


def _check_values(values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Return ``values`` as a float64 array after checking that it can drive a slider."""
    value_array = np.asarray(values, dtype=np.float64)
    if value_array.ndim != 1:
        raise ValueError(f"values must be a 1-D sequence of latent values, got shape {value_array.shape}.")
    if value_array.size < 2:
        raise ValueError(
            f"values must contain at least 2 latent values to traverse, got {value_array.tolist()}: "
            "use for example np.linspace(-3, 3, 11)."
        )
    if not np.all(np.isfinite(value_array)):
        raise ValueError(f"values must be finite, got {value_array.tolist()}.")
    if np.any(np.diff(value_array) <= 0):
        raise ValueError(
            f"values must be strictly increasing, got {value_array.tolist()}: "
            "sort them and drop repeats, for example with np.unique(values)."
        )
    return value_array


def _check_frames(frames: np.ndarray, rows: int | None, columns: int | None) -> np.ndarray:
    """Return ``frames`` as float32 after checking its shape (D, V, H, W) and range."""
    frame_array = np.asarray(frames, dtype=np.float32)
    if frame_array.ndim != 4:
        raise ValueError(
            f"frames must have shape (len(dims), len(values), H, W), got {frame_array.ndim} axes "
            f"with shape {frame_array.shape}: use the output of precompute_traversal."
        )
    expected = (rows, columns)
    if rows is not None and frame_array.shape[:2] != expected:
        raise ValueError(
            f"frames has {frame_array.shape[0]} rows and {frame_array.shape[1]} columns, but "
            f"dims and values ask for {rows} and {columns}: pass the dims and values used to "
            "compute the frames."
        )
    if frame_array.size == 0:
        raise ValueError(f"frames is empty, with shape {frame_array.shape}.")
    if not np.all(np.isfinite(frame_array)):
        raise ValueError("frames contains NaN or infinite pixels.")
    low, high = float(frame_array.min()), float(frame_array.max())
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"frames must lie in [0, 1], got pixels from {low:g} to {high:g}: "
            "rescale them, or clip them with np.clip(frames, 0, 1)."
        )
    return frame_array


def _decoded_images(output: Any, count: int, context: str) -> np.ndarray:
    """Check a decoder output (B, 1, H, W) or (B, H, W) and return (B, H, W) in [0, 1]."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"decode must return a torch.Tensor of images (B, 1, H, W), got {type(output).__name__} "
            f"for {context}."
        )
    images = output.detach().float().cpu().numpy()
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or images.shape[0] != count:
        raise ValueError(
            f"decode returned shape {tuple(output.shape)} for {context}; expected ({count}, 1, H, W) "
            "grayscale images, one per code."
        )
    if not np.all(np.isfinite(images)):
        raise ValueError(f"decode returned NaN or infinite pixels for {context}: check the model's weights.")
    # Decoders without a final sigmoid overshoot [0, 1] a little; display clips, as imshow does.
    return np.clip(images, 0.0, 1.0)


def _fragment_html(
    *,
    root_id: str,
    title: str | None,
    payload: dict[str, list[Any]],
    payload_json: str,
    size: tuple[int, int],
) -> str:
    """Lay out the static demo's elements, frames and script, starting at the middle value."""
    dim_names, labels, uris = payload["dimNames"], payload["labels"], payload["frames"]
    start = len(labels) // 2
    options = "".join(
        f'<option value="{row}"{" selected" if row == 0 else ""}>{name}</option>'
        for row, name in enumerate(dim_names)
    )
    heading = f'<p class="r2ska-traversal-title">{html.escape(title)}</p>' if title else ""
    # "<" never occurs in data URIs or numbers, but escaping it keeps a stray
    # "</script>" from ending the JSON block early.
    safe_json = payload_json.replace("<", "\\u003c")

    lines = [
        f'<div class="r2ska-traversal" id="{root_id}">',
        f"<style>\n{_package_text('traversal.css')}</style>",
        heading,
        '<div class="r2ska-traversal-controls">',
        f'<label>Latent dimension <select autocomplete="off">{options}</select></label>',
        f'<label>Value <input type="range" min="0" max="{len(labels) - 1}" step="1" '
        f'value="{start}" autocomplete="off"></label>',
        f"<output>{labels[start]}</output>",
        "</div>",
        f'<img src="{uris[0][start]}" width="{size[0]}" height="{size[1]}" '
        f'style="image-rendering: pixelated" alt="Decoded image for {dim_names[0]} = {labels[start]}">',
        f'<script type="application/json" class="r2ska-traversal-frames">{safe_json}</script>',
        f"<script>\n{_package_text('traversal.js')}</script>",
        "</div>",
    ]
    # No blank lines, so that renderers that read HTML inside Markdown keep the
    # fragment in one HTML block.
    return "\n".join(line for line in lines if line.strip())


def _display_scale(width: int, display_width: int) -> int:
    """Return the whole-number upscaling factor that brings ``width`` closest to ``display_width``."""
    if isinstance(display_width, bool) or not isinstance(display_width, int) or display_width < 1:
        raise ValueError(
            f"display_width must be a positive number of CSS pixels, got {display_width!r}: "
            f"use for example {DEFAULT_DISPLAY_WIDTH}."
        )
    return max(1, round(display_width / width))


def _png_bytes(image: np.ndarray, scale: int = 1) -> bytes:
    """Encode a (H, W) image in [0, 1] as an 8-bit grayscale PNG, upscaled by ``scale``."""
    pixels = np.round(image * 255.0).astype(np.uint8)
    picture = Image.fromarray(pixels)
    if scale > 1:
        picture = picture.resize((pixels.shape[1] * scale, pixels.shape[0] * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _png_data_uri(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(_png_bytes(image)).decode("ascii")


def _format_value(value: float) -> str:
    # Adding 0.0 turns -0.0 into 0.0, so the readout never shows "-0".
    return f"{float(value) + 0.0:.4g}"


def _package_text(name: str) -> str:
    """Read a file shipped in this package, without its blank lines."""
    text = resources.files("r2ska.widgets").joinpath(name).read_text(encoding="utf-8")
    return "".join(line for line in text.splitlines(keepends=True) if line.strip())
