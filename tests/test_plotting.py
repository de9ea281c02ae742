"""Tests for the matplotlib figure helpers."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from r2ska.plotting import (
    deliverable_figure,
    image_grid,
    plot_history,
    plot_image_rows,
    plot_latent_map,
    plot_reconstructions,
    plot_traversal,
)
from r2ska.training import History


def _images(n: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(n))


def _points(n: int = 30) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, 2)), np.arange(n) % 3


def _image_axes(fig: Figure) -> list:
    return [ax for ax in fig.axes if ax.images]


@pytest.fixture(autouse=True)
def _no_open_figures():
    """Every helper must close its figure in pyplot, so none may stay open."""
    before = plt.get_fignums()
    yield
    assert plt.get_fignums() == before


@pytest.mark.parametrize(
    ("n", "nrows", "expected_axes"), [(8, 2, 8), (7, 2, 8), (5, 1, 5), (1, 3, 3)]
)
def test_image_grid_axes_count(n, nrows, expected_axes):
    fig = image_grid(_images(n), nrows)

    assert isinstance(fig, Figure)
    assert len(fig.axes) == expected_axes
    assert len(_image_axes(fig)) == n


def test_image_grid_accepts_uint8_and_titles():
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8, generator=generator)

    fig = image_grid(images, 1, titles=["a", "b", "c"], suptitle="digits")

    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    drawn = fig.axes[0].images[0].get_array()
    np.testing.assert_allclose(drawn, images[0].numpy() / 255.0)


def test_image_grid_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(4, 3, 28, 28\)"):
        image_grid(torch.zeros(4, 3, 28, 28))


def test_image_grid_rejects_wrong_title_count():
    with pytest.raises(ValueError, match="titles"):
        image_grid(_images(3), titles=["only one"])


@pytest.mark.parametrize(("n", "expected_columns"), [(8, 8), (20, 10)])
def test_plot_reconstructions_axes_count(n, expected_columns):
    originals = _images(10)

    fig = plot_reconstructions(originals, originals.flip(0), n=n)

    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * expected_columns
    assert fig.axes[0].get_ylabel() == "original"


def test_plot_reconstructions_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        plot_reconstructions(_images(4), _images(3))


def test_plot_latent_map_legend_uses_class_names():
    xy, labels = _points()

    fig = plot_latent_map(xy, torch.as_tensor(labels), ["zero", "one", "two"], "PCA of AE codes")

    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_title() == "PCA of AE codes"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["zero", "one", "two"]
    assert sum(len(collection.get_offsets()) for collection in ax.collections) == len(xy)


def test_plot_latent_map_rejects_three_columns():
    with pytest.raises(ValueError, match="project_2d"):
        plot_latent_map(np.zeros((5, 3)), np.zeros(5, dtype=int))


def test_plot_latent_map_rejects_label_count():
    with pytest.raises(ValueError, match="labels"):
        plot_latent_map(np.zeros((5, 2)), np.zeros(4, dtype=int))


def test_plot_history_one_panel_per_run():
    histories = {
        "AE": History(train_loss=[0.05, 0.02, 0.01], val_loss=[0.04, 0.02, 0.012]),
        "VAE": History(train_loss=[180.0, 120.0, 110.0], val_loss=[]),
    }

    fig = plot_history(histories)

    assert isinstance(fig, Figure)
    assert [ax.get_title() for ax in fig.axes] == ["AE", "VAE"]
    assert len(fig.axes[0].get_lines()) == 2
    assert len(fig.axes[1].get_lines()) == 1
    np.testing.assert_array_equal(fig.axes[0].get_lines()[0].get_xdata(), [1, 2, 3])


def test_plot_history_rejects_empty():
    with pytest.raises(ValueError, match="histories is empty"):
        plot_history({})


def test_plot_traversal_axes_and_labels():
    grid = torch.rand(3, 5, 28, 28)
    values = [-2.0, -1.0, 0.0, 1.0, 2.0]

    fig = plot_traversal(grid, values, dims=[0, 4, 7])

    assert isinstance(fig, Figure)
    assert len(fig.axes) == 15
    assert [fig.axes[i].get_ylabel() for i in (0, 5, 10)] == ["z[0]", "z[4]", "z[7]"]
    assert [ax.get_title() for ax in fig.axes[:5]] == ["-2", "-1", "+0", "+1", "+2"]


def test_plot_traversal_rejects_value_count():
    with pytest.raises(ValueError, match="values"):
        plot_traversal(torch.rand(2, 4, 28, 28), [0.0, 1.0])


def test_deliverable_figure_axes_count():
    xy, labels = _points()
    originals = _images(10)

    fig = deliverable_figure(
        xy,
        labels,
        None,
        originals,
        originals,
        _images(7),
        title="VAE, 2 latent dimensions",
        n_reconstructions=6,
    )

    assert isinstance(fig, Figure)
    assert len(fig.axes) == 1 + 2 * 6 + 7
    assert len(_image_axes(fig)) == 2 * 6 + 7
    assert fig.axes[0].get_title() == "latent map"
    assert fig.get_suptitle() == "VAE, 2 latent dimensions"


def test_deliverable_figure_renders(tmp_path):
    xy, labels = _points()

    fig = deliverable_figure(xy, labels, ["a", "b", "c"], _images(4), _images(4), _images(5))
    fig.savefig(tmp_path / "deliverable.png")

    assert (tmp_path / "deliverable.png").stat().st_size > 0


def test_plot_image_rows_axes():
    rows = {"lerp": torch.rand(5, 1, 28, 28), "slerp": torch.rand(5, 28, 28)}
    fig = plot_image_rows(rows)
    assert len(fig.axes) == 10
    assert fig.axes[0].get_ylabel() == "lerp"
    assert fig.axes[5].get_ylabel() == "slerp"


def test_plot_image_rows_rejects_uneven_paths():
    with pytest.raises(ValueError, match="same number of images"):
        plot_image_rows({"a": torch.rand(4, 28, 28), "b": torch.rand(5, 28, 28)})


def test_plot_image_rows_rejects_empty():
    with pytest.raises(ValueError, match="empty"):
        plot_image_rows({})
