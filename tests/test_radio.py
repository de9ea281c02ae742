"""Tests for radio-image preprocessing and the source-weighted autoencoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from r2ska.data import load_mirabest
from r2ska.radio import (
    RadioAutoencoder,
    blank_image_mse,
    prepare_radio_images,
    standardise,
    train_radio_autoencoder,
)


def test_prepare_averages_blocks():
    images = torch.randint(0, 256, (3, 128, 128), dtype=torch.uint8)
    prepared = prepare_radio_images(images, size=64)
    expected = images.double().div(255).reshape(3, 64, 2, 64, 2).mean(dim=(2, 4))
    assert prepared.shape == (3, 1, 64, 64)
    assert torch.allclose(prepared[:, 0].double(), expected, atol=1e-6)


def test_prepare_keeps_mirabest_flux(mirror_dir):
    images = load_mirabest("test", "FRFull").images
    prepared = prepare_radio_images(images)
    assert prepared.shape == (153, 1, 64, 64)
    # 150 is not a multiple of 64, so the averaging windows overlap and weigh central
    # pixels a little more. The mean brightness still agrees to within 5 %.
    original_mean = images.double().div(255).mean().item()
    assert prepared.double().mean().item() == pytest.approx(original_mean, rel=0.05)


@pytest.mark.parametrize("size", [0, -8, 2.5, True])
def test_prepare_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size must be a positive integer"):
        prepare_radio_images(torch.zeros(1, 8, 8, dtype=torch.uint8), size=size)


def test_standardise_and_error():
    x = torch.tensor([1.0, 2.0, 3.0])
    assert torch.allclose(standardise(x, 2.0, 0.5), torch.tensor([-2.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="std must be a positive finite number, got 0.0"):
        standardise(x, 0.0, 0.0)


def test_blank_mse_is_mean_square():
    images = torch.tensor([[[[0.0, 0.5], [1.0, 0.0]]]])
    assert blank_image_mse(images) == pytest.approx((0.25 + 1.0) / 4)


def test_autoencoder_shapes_and_output_range():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 64, 64)
    sigmoid = RadioAutoencoder(8, output="sigmoid")
    assert sigmoid.encode(x).shape == (4, 8)
    with torch.no_grad():
        out = sigmoid(x)
    assert out.shape == x.shape
    assert float(out.min()) >= 0
    assert float(out.max()) <= 1
    assert RadioAutoencoder(8, image_size=32)(torch.rand(2, 1, 32, 32)).shape == (2, 1, 32, 32)


def test_source_weighted_loss_matches_formula():
    torch.manual_seed(0)
    model = RadioAutoencoder(4, source_weight=5.0)
    x = torch.rand(2, 1, 64, 64)
    loss, metrics = model.loss(x)
    with torch.no_grad():
        error = (model(x) - x) ** 2
    assert loss.item() == pytest.approx(((1 + 5.0 * x) * error).mean().item(), rel=1e-5)
    assert metrics["mse"] == pytest.approx(error.mean().item(), rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"latent_dim": 0}, "latent_dim"), ({"source_weight": -1.0}, "source_weight"),
     ({"output": "relu"}, "output"), ({"image_size": 60}, "multiple of 8")],
)
def test_autoencoder_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RadioAutoencoder(**kwargs)


def test_training_is_reproducible_and_cached(mirror_dir):
    images = prepare_radio_images(load_mirabest("test", "FRFull").images)
    first, history = train_radio_autoencoder(images, seed=3, epochs=2, data_id="test-radio", progress=False)
    second, cached = train_radio_autoencoder(images, seed=3, epochs=2, data_id="test-radio", progress=False)
    assert cached.train_loss == history.train_loss
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)
    other, _ = train_radio_autoencoder(images, seed=4, epochs=2, data_id="test-radio", progress=False)
    assert not torch.equal(next(iter(other.state_dict().values())), next(iter(first.state_dict().values())))
    assert np.isfinite(history.train_loss).all()
