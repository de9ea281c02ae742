"""Tests for the latent-space tools."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.decomposition import PCA
from torch import nn

from r2ska.latent import (
    encode_dataset,
    interpolate,
    knn_accuracy,
    lerp,
    mean_kl,
    project_2d,
    reconstruction_error,
    slerp,
    traversal_grid,
)
from r2ska import latent
from r2ska.models import ConvAutoencoder, ConvVAE, kl_to_standard_normal


class PixelCodec(nn.Module):
    """Exact toy autoencoder: the code is the first d pixels, decoding writes them back."""

    def __init__(self, latent_dim: int = 3) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.unused = nn.Parameter(torch.zeros(1))  # gives the module a device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(len(x), -1)[:, : self.latent_dim]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        images = torch.zeros(len(z), 784)
        images[:, : self.latent_dim] = z
        return images.reshape(-1, 1, 28, 28)


def _images(n: int = 10, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _seeded_vae(latent_dim: int = 4) -> ConvVAE:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return ConvVAE(latent_dim)


# encode_dataset


@pytest.mark.parametrize("batch_size", [3, 512])
def test_encode_dataset_matches_encode(batch_size):
    model = ConvAutoencoder(5).eval()
    images = _images(10)

    codes = encode_dataset(model, images, batch_size=batch_size)

    assert codes.shape == (10, 5)
    assert codes.dtype == np.float32
    np.testing.assert_allclose(codes, model.encode(images).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_encode_dataset_vae_returns_mean():
    model = _seeded_vae()
    images = _images(6)

    codes = encode_dataset(model, images)
    mu, _ = model.encode_distribution(images)

    np.testing.assert_allclose(codes, mu.detach().numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("training", [True, False])
def test_tools_restore_training_mode(training):
    model = _seeded_vae().train(training)
    images = _images(4)

    encode_dataset(model, images)
    interpolate(model, images[0], images[1], steps=3)
    traversal_grid(model, torch.zeros(4), [0], [0.0])
    reconstruction_error(model, images)
    mean_kl(model, images)

    assert model.training is training
    assert all(module.training is training for module in model.modules())


def test_tools_run_without_gradients():
    model = _seeded_vae()

    codes = torch.from_numpy(encode_dataset(model, _images(2)))
    path = interpolate(model, _images(1)[0], _images(1, seed=1)[0], steps=3)

    assert not codes.requires_grad
    assert not path.requires_grad


def test_uint8_images_raise_type_error():
    with pytest.raises(TypeError, match="to_float_images"):
        encode_dataset(ConvAutoencoder(2), torch.zeros(2, 28, 28, dtype=torch.uint8))


# project_2d


def test_pca_projection_matches_sklearn():
    codes = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)

    projected = project_2d(codes, "pca", seed=0)
    expected = PCA(n_components=2, random_state=0).fit_transform(codes)

    assert projected.shape == (50, 2)
    np.testing.assert_allclose(projected, expected, rtol=1e-5, atol=1e-5)


def test_umap_projection_is_seeded():
    codes = np.random.default_rng(1).normal(size=(40, 5)).astype(np.float32)

    first = project_2d(codes, "umap", seed=3)
    second = project_2d(codes, "umap", seed=3)

    assert first.shape == (40, 2)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, second)


def test_umap_receives_seed_and_neighbours(monkeypatch):
    received = {}

    class FakeUMAP:
        def __init__(self, **kwargs):
            received.update(kwargs)

        def fit_transform(self, codes):
            return codes[:, :2] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    codes = np.arange(24, dtype=np.float32).reshape(6, 4)

    projected = project_2d(codes, "umap", seed=11)

    assert received["n_components"] == 2
    assert received["random_state"] == 11
    assert received["n_neighbors"] == 5  # capped below the 6 points
    np.testing.assert_array_equal(projected, codes[:, :2] * 2)


def test_projection_rejects_unknown_method():
    with pytest.raises(ValueError, match="'tsne'"):
        project_2d(np.zeros((5, 3)), "tsne")


def test_projection_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"\(5,\)"):
        project_2d(np.zeros(5), "pca")


# lerp and slerp


def test_lerp_endpoints_and_midpoint():
    z0 = torch.tensor([0.0, 2.0])
    z1 = torch.tensor([4.0, -2.0])

    path = lerp(z0, z1, 5)

    assert path.shape == (5, 2)
    assert torch.equal(path[0], z0)
    assert torch.equal(path[-1], z1)
    torch.testing.assert_close(path[2], torch.tensor([2.0, 0.0]))


def test_slerp_endpoints():
    z0 = torch.tensor([1.0, 2.0, -0.5])
    z1 = torch.tensor([-0.3, 0.4, 2.0])

    path = slerp(z0, z1, 7)

    assert path.shape == (7, 3)
    torch.testing.assert_close(path[0], z0)
    torch.testing.assert_close(path[-1], z1)


def test_slerp_keeps_unit_vectors_on_sphere():
    generator = torch.Generator().manual_seed(4)
    z0 = F.normalize(torch.randn(16, generator=generator), dim=0)
    z1 = F.normalize(torch.randn(16, generator=generator), dim=0)

    path = slerp(z0, z1, 9)

    torch.testing.assert_close(path.norm(dim=1), torch.ones(9))


def test_slerp_orthogonal_midpoint():
    z0 = torch.tensor([1.0, 0.0])
    z1 = torch.tensor([0.0, 1.0])

    midpoint = slerp(z0, z1, 3)[1]

    torch.testing.assert_close(midpoint, torch.tensor([1.0, 1.0]) / 2**0.5)


@pytest.mark.parametrize(
    ("z0", "z1"),
    [
        ([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]),  # parallel
        ([1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]),  # antiparallel
        ([0.0, 0.0, 0.0], [1.0, 0.0, 0.0]),  # zero vector
        ([1.0, 1e-9, 0.0], [1.0, 0.0, 0.0]),  # nearly parallel
    ],
)
def test_slerp_falls_back_to_lerp(z0, z1):
    z0, z1 = torch.tensor(z0), torch.tensor(z1)

    path = slerp(z0, z1, 5)

    assert torch.isfinite(path).all()
    torch.testing.assert_close(path, lerp(z0, z1, 5))


@pytest.mark.parametrize("function", [lerp, slerp])
@pytest.mark.parametrize("steps", [1, 0, 2.5])
def test_interpolation_rejects_bad_steps(function, steps):
    with pytest.raises(ValueError, match="steps"):
        function(torch.ones(2), torch.zeros(2), steps)


# interpolate and traversal_grid


@pytest.mark.parametrize("method", ["lerp", "slerp"])
def test_interpolate_shape_and_endpoints(method):
    model = ConvAutoencoder(4).eval()
    x0, x1 = _images(2)

    path = interpolate(model, x0, x1, steps=6, method=method)

    assert path.shape == (6, 1, 28, 28)
    torch.testing.assert_close(path[0], model(x0[None])[0].detach(), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(path[-1], model(x1[None])[0].detach(), rtol=1e-4, atol=1e-5)


def test_interpolate_decodes_lerp_of_codes():
    model = PixelCodec(3)
    x0, x1 = _images(2)

    path = interpolate(model, x0, x1, steps=4, method="lerp")

    expected = lerp(model.encode(x0[None])[0], model.encode(x1[None])[0], 4)
    torch.testing.assert_close(path.reshape(4, -1)[:, :3], expected)


def test_interpolate_rejects_unknown_method():
    x0, x1 = _images(2)

    with pytest.raises(ValueError, match="'cubic'"):
        interpolate(ConvAutoencoder(2), x0, x1, method="cubic")


def test_traversal_grid_changes_one_dimension_per_row():
    model = PixelCodec(3)
    z = torch.tensor([0.5, -1.0, 2.0])

    grid = traversal_grid(model, z, dims=[0, 2], values=[-1.0, 0.0, 1.0])

    assert grid.shape == (2, 3, 28, 28)
    codes = grid.reshape(2, 3, 784)[:, :, :3]
    torch.testing.assert_close(codes[0, :, 0], torch.tensor([-0.5, 0.5, 1.5]))
    torch.testing.assert_close(codes[1, :, 2], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(codes[0, :, 1:], z[1:].expand(3, 2))
    torch.testing.assert_close(codes[1, :, :2], z[:2].expand(3, 2))


def test_traversal_grid_absolute_values():
    model = PixelCodec(2)
    z = torch.tensor([[0.5, -1.0]])

    grid = traversal_grid(model, z, dims=[1], values=[-2.0, 3.0], absolute=True)

    codes = grid.reshape(1, 2, 784)[:, :, :2]
    torch.testing.assert_close(codes[0], torch.tensor([[0.5, -2.0], [0.5, 3.0]]))


def test_traversal_grid_zero_offset_is_reconstruction():
    model = ConvVAE(4).eval()
    z = torch.randn(4, generator=torch.Generator().manual_seed(2))

    grid = traversal_grid(model, z, dims=[1, 3], values=[0.0])

    expected = model.decode(z[None])[0, 0].detach()
    torch.testing.assert_close(grid[0, 0], expected)
    torch.testing.assert_close(grid[1, 0], expected)


def test_traversal_grid_rejects_out_of_range_dimension():
    with pytest.raises(ValueError, match="Latent dimension 4"):
        traversal_grid(PixelCodec(4), torch.zeros(4), dims=[4], values=[0.0])


# scores


def test_reconstruction_error_matches_hand_mse():
    model = ConvAutoencoder(3).eval()
    images = _images(7)

    expected = F.mse_loss(model(images), images).item()

    assert reconstruction_error(model, images, batch_size=3) == pytest.approx(expected, rel=1e-5)


def test_reconstruction_error_is_exact_for_perfect_codec():
    images = torch.zeros(3, 1, 28, 28)
    images[:, 0, 0, :2] = 0.7

    assert reconstruction_error(PixelCodec(2), images) == 0.0


def test_reconstruction_error_vae_decodes_mean():
    model = _seeded_vae()
    images = _images(5)

    first = reconstruction_error(model, images)
    second = reconstruction_error(model, images)
    mu, _ = model.encode_distribution(images)
    expected = F.mse_loss(model.decode(mu), images).item()

    assert first == second
    assert first == pytest.approx(expected, rel=1e-5)


def test_knn_accuracy_separable_set_is_perfect():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    train_labels = np.repeat([0, 1, 2], 20)
    test_labels = np.repeat([0, 1, 2], 5)
    train_codes = centres[train_labels] + rng.normal(scale=0.5, size=(60, 2))
    test_codes = centres[test_labels] + rng.normal(scale=0.5, size=(15, 2))

    assert knn_accuracy(train_codes, train_labels, test_codes, test_labels, k=5) == 1.0


def test_knn_accuracy_random_labels_near_chance():
    rng = np.random.default_rng(1)
    train_codes = rng.normal(size=(500, 4))
    test_codes = rng.normal(size=(500, 4))
    train_labels = rng.integers(0, 10, size=500)
    test_labels = rng.integers(0, 10, size=500)

    accuracy = knn_accuracy(train_codes, train_labels, test_codes, test_labels, k=5)

    assert 0.0 <= accuracy < 0.2


def test_knn_accuracy_counts_hand_made_errors():
    train_codes = np.array([[0.0], [1.0], [10.0], [11.0]])
    train_labels = np.array([0, 0, 1, 1])
    test_codes = np.array([[0.5], [10.5], [0.2], [10.2]])
    test_labels = np.array([0, 1, 1, 1])  # the third is labelled against its neighbours

    assert knn_accuracy(train_codes, train_labels, test_codes, test_labels, k=1) == 0.75


def test_knn_accuracy_rejects_too_large_k():
    with pytest.raises(ValueError, match="got 5"):
        knn_accuracy(np.zeros((3, 2)), np.zeros(3), np.zeros((1, 2)), np.zeros(1), k=5)


def test_mean_kl_matches_closed_form():
    model = _seeded_vae()
    images = _images(7)

    mu, logvar = model.encode_distribution(images)
    expected = kl_to_standard_normal(mu, logvar).mean().item()

    assert mean_kl(model, images, batch_size=3) == pytest.approx(expected, rel=1e-5)


def test_mean_kl_rejects_plain_autoencoder():
    with pytest.raises(TypeError, match="ConvAutoencoder"):
        mean_kl(ConvAutoencoder(2), _images(2))


def test_sample_decoded_prior_shapes():
    model = ConvVAE(3)
    first = latent.sample_decoded(model, 5, seed=1)
    again = latent.sample_decoded(model, 5, seed=1)
    assert first.shape == (5, 1, 28, 28)
    assert torch.equal(first, again)


def test_sample_decoded_matches_reference_statistics():
    class Identity(torch.nn.Module):
        latent_dim = 2

        def decode(self, z):
            return z

    reference = np.column_stack([np.full(100, 5.0), np.linspace(-1, 1, 100)])
    samples = latent.sample_decoded(Identity(), 20_000, seed=0, reference_codes=reference)
    assert samples.mean(dim=0)[0].item() == pytest.approx(5.0, abs=0.01)
    assert samples.std(dim=0)[0].item() == pytest.approx(0.0, abs=1e-6)
    assert samples.std(dim=0)[1].item() == pytest.approx(reference[:, 1].std(ddof=1), rel=0.03)


def test_sample_decoded_rejects_bad_reference():
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        latent.sample_decoded(ConvVAE(3), 2, reference_codes=np.zeros((4, 2)))
    with pytest.raises(ValueError, match="positive"):
        latent.sample_decoded(ConvVAE(3), 0)
