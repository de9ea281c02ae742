"""Matplotlib figures for image grids, reconstructions, latent maps and training curves."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from r2ska.training import History

# Each function closes its figure in pyplot before returning it. A notebook then
# displays the returned Figure once, as a cell's last expression, and not a second
# time when the inline backend shows the open figures. fig.savefig still works.


def _as_image_array(images: torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    """Convert (N, 1, H, W) or (N, H, W) tensors or arrays to a float array (N, H, W)."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    array = np.asarray(images)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]  # (N, H, W)
    if array.ndim != 3:
        raise ValueError(f"{name} must have shape (N, 1, H, W) or (N, H, W), got {array.shape}.")
    if array.dtype == np.uint8:
        return array / 255.0
    return array.astype(np.float32, copy=False)


def _show_image(ax: Axes, image: np.ndarray, title: str | None = None) -> None:
    """Draw one grey-scale image in [0, 1] without ticks.

    Unlike ``ax.axis("off")``, this keeps the axis labels visible.
    """
    ax.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title is not None:
        ax.set_title(title, fontsize=8)


def _image_pairs(
    originals: torch.Tensor | np.ndarray, reconstructions: torch.Tensor | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Convert originals and their reconstructions to arrays (N, H, W) of one shape."""
    top = _as_image_array(originals, "originals")
    bottom = _as_image_array(reconstructions, "reconstructions")
    if top.shape != bottom.shape:
        raise ValueError(
            "originals and reconstructions must have the same shape, "
            f"got {top.shape} and {bottom.shape}."
        )
    return top, bottom


def _image_axes(nrows: int, ncols: int, cell_size: float) -> tuple[Figure, np.ndarray]:
    """Create a figure with an (nrows, ncols) array of square image axes, each ``cell_size`` inches."""
    return plt.subplots(
        nrows,
        ncols,
        figsize=(cell_size * ncols, cell_size * nrows),
        squeeze=False,
        layout="constrained",
    )


def _finish(fig: Figure) -> Figure:
    plt.close(fig)
    return fig


def image_grid(
    images: torch.Tensor | np.ndarray,
    nrows: int = 1,
    *,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    cell_size: float = 1.0,
) -> Figure:
    """Draw images in a grid, row by row.

    Args:
        images: Images (N, 1, H, W) or (N, H, W), floats in [0, 1] or uint8.
        nrows: Number of rows; the number of columns is ceil(N / nrows).
        titles: Optional title for each image.
        suptitle: Optional title of the whole figure.
        cell_size: Width and height of one image in inches.

    Returns:
        The Figure with nrows * ncols axes (cells past N stay blank), already
        closed in pyplot so that a notebook displays it once.

    Raises:
        ValueError: If the shapes do not fit or ``nrows`` is not positive.
    """
    array = _as_image_array(images, "images")
    if nrows < 1:
        raise ValueError(f"nrows must be a positive integer, got {nrows!r}.")
    if titles is not None and len(titles) != len(array):
        raise ValueError(
            f"titles must have one entry per image: got {len(titles)} for {len(array)} images."
        )
    ncols = max(1, math.ceil(len(array) / nrows))

    fig, axes = _image_axes(nrows, ncols, cell_size)
    for index, ax in enumerate(axes.flat):
        if index < len(array):
            _show_image(ax, array[index], None if titles is None else titles[index])
        else:
            ax.set_axis_off()
    if suptitle is not None:
        fig.suptitle(suptitle)
    return _finish(fig)


def plot_reconstructions(
    originals: torch.Tensor | np.ndarray,
    reconstructions: torch.Tensor | np.ndarray,
    *,
    n: int = 8,
    cell_size: float = 1.0,
) -> Figure:
    """Draw the first ``n`` originals above their reconstructions.

    Args:
        originals: Images (N, 1, H, W) or (N, H, W).
        reconstructions: Images of the same shape, for example ``model(originals)``.
        n: Number of columns; fewer when N is smaller.
        cell_size: Width and height of one image in inches.

    Returns:
        The Figure with 2 * min(n, N) axes, already closed in pyplot.

    Raises:
        ValueError: If the two image sets have different shapes.
    """
    top, bottom = _image_pairs(originals, reconstructions)
    n = min(n, len(top))

    fig, axes = plt.subplots(
        2, n, figsize=(cell_size * n, cell_size * 2), squeeze=False, layout="constrained"
    )
    for column in range(n):
        _show_image(axes[0, column], top[column])
        _show_image(axes[1, column], bottom[column])
    axes[0, 0].set_ylabel("original", fontsize=8)
    axes[1, 0].set_ylabel("reconstruction", fontsize=8)
    return _finish(fig)


def _scatter_classes(
    ax: Axes, xy: np.ndarray, labels: np.ndarray, class_names: Sequence[str] | None
) -> None:
    """Scatter ``xy`` with one colour and legend entry per label value."""
    colours = plt.get_cmap("tab10" if len(np.unique(labels)) <= 10 else "tab20")
    for index, label in enumerate(np.unique(labels)):
        chosen = labels == label
        name = class_names[int(label)] if class_names is not None else str(label)
        colour = colours(index % colours.N)
        ax.scatter(xy[chosen, 0], xy[chosen, 1], s=3, alpha=0.6, color=colour, label=name)
    ax.legend(
        markerscale=4, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False
    )
    ax.set_xticks([])
    ax.set_yticks([])


def plot_latent_map(
    xy: np.ndarray,
    labels: np.ndarray | torch.Tensor,
    class_names: Sequence[str] | None = None,
    title: str = "",
    *,
    figsize: tuple[float, float] = (5.0, 5.0),
) -> Figure:
    """Scatter 2-D latent codes coloured by class.

    Args:
        xy: Points (N, 2), for example from ``r2ska.latent.project_2d``.
        labels: Integer class of each point (N,).
        class_names: Name of each class index for the legend; None shows the numbers.
        title: Axes title, for example the model and projection method.
        figsize: Figure size in inches.

    Returns:
        The Figure with one axes, already closed in pyplot.

    Raises:
        ValueError: If ``xy`` is not (N, 2) or ``labels`` does not match it.
    """
    xy, labels = _check_points(xy, labels)
    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    _scatter_classes(ax, xy, labels, class_names)
    ax.set_title(title)
    return _finish(fig)


def _check_points(
    xy: np.ndarray, labels: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    xy = np.asarray(xy)
    labels = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(
            f"xy must have shape (N, 2), got {xy.shape}: "
            "project codes with r2ska.latent.project_2d."
        )
    if labels.shape != (len(xy),):
        raise ValueError(f"labels must have shape ({len(xy)},) to match xy, got {labels.shape}.")
    return xy, labels


def plot_history(histories: Mapping[str, History], *, log_scale: bool = False) -> Figure:
    """Plot training and validation loss per epoch, one panel per run.

    Runs get separate panels because their losses have different units, for
    example MSE per pixel for an autoencoder and nats per image for a VAE.

    Args:
        histories: Run name -> History, as returned by ``r2ska.training.train_model``.
        log_scale: Whether to use a logarithmic loss axis.

    Returns:
        The Figure with one axes per run, already closed in pyplot.

    Raises:
        ValueError: If ``histories`` is empty.
    """
    if not histories:
        raise ValueError("histories is empty: pass a dict such as {'AE': history}.")

    fig, axes = plt.subplots(
        1, len(histories), figsize=(4.0 * len(histories), 3.2), squeeze=False, layout="constrained"
    )
    for ax, (name, history) in zip(axes.flat, histories.items()):
        epochs = np.arange(1, len(history.train_loss) + 1)
        ax.plot(epochs, history.train_loss, marker="o", label="train")
        if history.val_loss:
            val_epochs = epochs[: len(history.val_loss)]
            ax.plot(val_epochs, history.val_loss, marker="s", label="validation")
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss")
        if log_scale:
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    return _finish(fig)


def plot_traversal(
    grid: torch.Tensor | np.ndarray,
    values: Sequence[float],
    *,
    dims: Sequence[int] | None = None,
    cell_size: float = 0.9,
) -> Figure:
    """Draw a latent traversal from ``r2ska.latent.traversal_grid``.

    Args:
        grid: Images (D, V, H, W): one row per latent dimension, one column per value.
        values: The V values, shown as column titles.
        dims: The D latent dimensions, shown as row labels; None numbers rows from 0.
        cell_size: Width and height of one image in inches.

    Returns:
        The Figure with D * V axes, already closed in pyplot.

    Raises:
        ValueError: If ``grid`` is not 4-D or does not match ``values`` and ``dims``.
    """
    if isinstance(grid, torch.Tensor):
        grid = grid.detach().cpu().numpy()
    grid = np.asarray(grid)
    if grid.ndim != 4 or grid.shape[1] != len(values):
        raise ValueError(
            f"grid must have shape (D, {len(values)}, H, W) to match values, got {grid.shape}."
        )
    dims = list(range(grid.shape[0])) if dims is None else list(dims)
    if len(dims) != grid.shape[0]:
        raise ValueError(
            f"dims must have one entry per grid row: got {len(dims)} for {grid.shape[0]} rows."
        )

    nrows, ncols = grid.shape[:2]
    fig, axes = _image_axes(nrows, ncols, cell_size)
    for row in range(nrows):
        for column in range(ncols):
            title = f"{values[column]:+.2g}" if row == 0 else None
            _show_image(axes[row, column], grid[row, column], title)
        axes[row, 0].set_ylabel(f"z[{dims[row]}]", fontsize=8)
    return _finish(fig)


def deliverable_figure(
    xy: np.ndarray,
    labels: np.ndarray | torch.Tensor,
    class_names: Sequence[str] | None,
    originals: torch.Tensor | np.ndarray,
    reconstructions: torch.Tensor | np.ndarray,
    interpolation: torch.Tensor | np.ndarray,
    *,
    title: str | None = None,
    n_reconstructions: int = 8,
) -> Figure:
    """Combine a latent map, reconstructions and an interpolation row in one figure.

    The left panel scatters the 2-D latent map coloured by class. On the right,
    originals sit above their reconstructions, and below them the decoded images
    of an interpolation run from left to right.

    Args:
        xy: Projected codes (N, 2), for example from ``r2ska.latent.project_2d``.
        labels: Class of each point (N,).
        class_names: Name of each class index for the legend, or None.
        originals: Images (M, 1, H, W) or (M, H, W).
        reconstructions: Their reconstructions, same shape.
        interpolation: Decoded path (S, 1, H, W), for example from
            ``r2ska.latent.interpolate``.
        title: Optional figure title.
        n_reconstructions: Number of original/reconstruction pairs to show.

    Returns:
        The Figure with 1 + 2 * min(n_reconstructions, M) + S axes, already closed in pyplot.

    Raises:
        ValueError: If the shapes do not fit.
    """
    xy, labels = _check_points(xy, labels)
    top, bottom = _image_pairs(originals, reconstructions)
    path = _as_image_array(interpolation, "interpolation")
    n = min(n_reconstructions, len(top))

    fig = plt.figure(figsize=(12.0, 5.0), layout="constrained")
    outer = fig.add_gridspec(1, 2, width_ratios=[1.0, 1.5])
    right = outer[1].subgridspec(2, 1, height_ratios=[2.0, 1.2])
    pairs = right[0].subgridspec(2, n)
    row = right[1].subgridspec(1, len(path))

    map_ax = fig.add_subplot(outer[0])
    _scatter_classes(map_ax, xy, labels, class_names)
    map_ax.set_title("latent map")

    for column in range(n):
        original_ax = fig.add_subplot(pairs[0, column])
        reconstruction_ax = fig.add_subplot(pairs[1, column])
        _show_image(original_ax, top[column])
        _show_image(reconstruction_ax, bottom[column])
        if column == 0:
            original_ax.set_ylabel("original", fontsize=8)
            reconstruction_ax.set_ylabel("reconstruction", fontsize=8)

    for step in range(len(path)):
        step_ax = fig.add_subplot(row[0, step])
        _show_image(step_ax, path[step])
        if step == 0:
            step_ax.set_ylabel("interpolation", fontsize=8)

    if title is not None:
        fig.suptitle(title)
    return _finish(fig)


def plot_image_rows(
    rows: Mapping[str, torch.Tensor | np.ndarray], *, cell_size: float = 0.9
) -> Figure:
    """Draw labelled rows of images, such as interpolation paths or decoded samples.

    Args:
        rows: Decoded paths (S, 1, H, W) or (S, H, W) by row label, for example
            from ``r2ska.latent.interpolate``; every path needs the same S.
        cell_size: Width and height of one image in inches.

    Returns:
        The Figure with len(rows) * S axes, already closed in pyplot.

    Raises:
        ValueError: If ``rows`` is empty or the paths differ in length.
    """
    if not rows:
        raise ValueError("rows is empty: pass at least one interpolation path by label.")
    paths = {label: _as_image_array(path, f"rows[{label!r}]") for label, path in rows.items()}
    lengths = {len(path) for path in paths.values()}
    if len(lengths) != 1:
        raise ValueError(
            f"Every row needs the same number of images, got {sorted(lengths)}."
        )
    steps = lengths.pop()

    fig, axes = plt.subplots(
        len(paths), steps,
        figsize=(cell_size * steps + 1.2, cell_size * len(paths)),
        squeeze=False,
        layout="constrained",
    )
    for row, (label, path) in enumerate(paths.items()):
        for step in range(steps):
            _show_image(axes[row, step], path[step])
        axes[row, 0].set_ylabel(label, fontsize=8, rotation=0, ha="right", va="center")
    return _finish(fig)
