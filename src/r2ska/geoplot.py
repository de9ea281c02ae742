"""Matplotlib figures for chip footprints, embedding maps and label-efficiency curves (chapter 2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

if TYPE_CHECKING:
    import geopandas as gpd

# Colours of the weak land-cover labels; other labels get tab10 colours in sorted order.
CLASS_COLOURS = {"water": "#3182bd", "coast": "#fd8d3c", "land": "#31a354"}


def class_colours(labels: Sequence[str] | np.ndarray) -> dict[str, str]:
    """Map each distinct label to a colour: water, coast and land first, then the rest sorted."""
    known = list(CLASS_COLOURS)
    names = sorted(
        {str(label) for label in labels},
        key=lambda name: (known.index(name) if name in known else len(known), name),
    )
    palette = plt.get_cmap("tab10")
    others = (name for name in names if name not in CLASS_COLOURS)
    colours = {name: CLASS_COLOURS[name] for name in names if name in CLASS_COLOURS}
    colours.update({name: palette(index % palette.N) for index, name in enumerate(others)})
    return colours


def footprint_maps(
    footprints: gpd.GeoSeries,
    panels: Mapping[str, Sequence[str] | np.ndarray],
    *,
    panel_size: float = 4.0,
) -> Figure:
    """Draw chip footprints once per panel, each chip filled by its class in that panel.

    Args:
        footprints: Chip polygons in longitude and latitude degrees (OGC:CRS84).
        panels: Panel title mapped to one class label per footprint, for
            example ``{"Weak label": labels, "Predicted": predictions}``.
        panel_size: Height of each panel in inches.

    Returns:
        The Figure, already closed in pyplot.

    Raises:
        ValueError: If a panel does not have one label per footprint.
    """
    all_labels = np.concatenate([np.asarray(values, dtype=str) for values in panels.values()])
    colours = class_colours(all_labels)
    x_min, y_min, x_max, y_max = footprints.total_bounds
    # Degrees of longitude shrink by cos(latitude); the aspect keeps shapes true near the centre.
    aspect = 1.0 / np.cos(np.radians((y_min + y_max) / 2.0))
    width = panel_size * (x_max - x_min) / ((y_max - y_min) * aspect)

    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels) + 1.5, panel_size), layout="constrained")
    for ax, (title, values) in zip(np.atleast_1d(axes), panels.items()):
        labels = np.asarray(values, dtype=str)
        if labels.shape != (len(footprints),):
            raise ValueError(
                f"Panel {title!r} has {labels.size} labels, expected one per footprint ({len(footprints)})."
            )
        footprints.plot(ax=ax, color=[colours[label] for label in labels], edgecolor="white", linewidth=0.3)
        ax.set_aspect(aspect)
        ax.set_title(title)
        # geopandas labels the axes with the CRS's axis names, which are long; these are shorter.
        ax.set_xlabel("longitude (°)")
        ax.set_ylabel("latitude (°)")
    handles = [Patch(color=colour, label=name) for name, colour in colours.items()]
    fig.legend(handles=handles, loc="outside right center", frameon=False)
    plt.close(fig)
    return fig


def embedding_scatter(
    xy: np.ndarray,
    labels: Sequence[str] | np.ndarray,
    title: str = "",
    ax: Axes | None = None,
) -> Figure:
    """Scatter 2-D projections of embeddings, one colour per class.

    Args:
        xy: Points (N, 2), for example from ``r2ska.embeddings.project_embeddings``.
        labels: Class label of each point (N,).
        title: Axes title.
        ax: Axes to draw on; a new 4.5-inch figure when None.

    Returns:
        The Figure, already closed in pyplot.

    Raises:
        ValueError: If ``xy`` is not (N, 2) or ``labels`` does not match it.
    """
    points = np.asarray(xy)
    names = np.asarray(labels, dtype=str)
    if points.ndim != 2 or points.shape[1] != 2 or names.shape != (len(points),):
        raise ValueError(f"xy must be (N, 2) with one label per point, got {points.shape} and {names.shape} labels.")
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.5, 4.5), layout="constrained")
    else:
        fig = ax.figure
    for name, colour in class_colours(names).items():
        chosen = names == name
        label = f"{name} ({chosen.sum()})"
        ax.scatter(points[chosen, 0], points[chosen, 1], s=10, alpha=0.8, color=colour, label=label)
    ax.legend(fontsize=8, frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title)
    plt.close(fig)
    return fig


def plot_label_efficiency(
    table: pd.DataFrame,
    baseline: float | None = None,
    *,
    score_name: str = "test accuracy",
    title: str = "",
) -> Figure:
    """Plot the mean test score (with the standard deviation over repeats) against the number of labelled examples.

    Args:
        table: Output of ``r2ska.embeddings.label_efficiency``.
        baseline: Score of the majority-class guess, drawn as a dashed line.
        score_name: Label of the vertical axis.
        title: Axes title.

    Returns:
        The Figure, already closed in pyplot.
    """
    summary = table.groupby(["model", "train_size"])["score"].agg(["mean", "std"]).reset_index()
    fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
    for model, rows in summary.groupby("model", sort=False):
        ax.errorbar(rows["train_size"], rows["mean"], yerr=rows["std"].fillna(0.0), marker="o", capsize=3, label=model)
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="majority class")
    ax.set_xscale("log")
    ax.set_xlabel("labelled training examples")
    ax.set_ylabel(score_name)
    ax.set_title(title)
    ax.legend(fontsize=8, frameon=False)
    plt.close(fig)
    return fig
