"""Tests for the convolutional autoencoder and VAE."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

from r2ska.models import ConvAutoencoder, ConvVAE, kl_to_standard_normal

MODEL_CLASSES = [ConvAutoencoder, ConvVAE]


def _images(batch: int = 4, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, 28, 28, generator=generator)


@pytest.mark.parametrize("cls", MODEL_CLASSES)
@pytest.mark.parametrize("latent_dim", [2, 16])
def test_shapes_encode_decode_forward(cls, latent_dim):
    model = cls(latent_dim)
    x = _images(3)

    z = model.encode(x)
    decoded = model.decode(z)
    reconstructed = model(x)

    assert model.latent_dim == latent_dim
    assert z.shape == (3, latent_dim)
    assert decoded.shape == (3, 1, 28, 28)
    assert reconstructed.shape == (3, 1, 28, 28)


@pytest.mark.parametrize("cls", MODEL_CLASSES)
def test_decoder_output_is_in_unit_interval(cls):
    model = cls(4)
    z = 50 * torch.randn(16, 4, generator=torch.Generator().manual_seed(1))

    decoded = model.decode(z)

    assert decoded.min() >= 0
    assert decoded.max() <= 1


@pytest.mark.parametrize("cls", MODEL_CLASSES)
@pytest.mark.parametrize("bad", [0, -3, 2.5, "16", True, None])
def test_invalid_latent_dim_raises(cls, bad):
    with pytest.raises(ValueError, match="latent_dim must be a positive integer") as info:
        cls(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize("cls", MODEL_CLASSES)
def test_hparams_rebuild_same_architecture(cls):
    model = cls(5)

    rebuilt = cls(**model.hparams)

    assert model.hparams["latent_dim"] == 5
    assert rebuilt.hparams == model.hparams
    assert repr(rebuilt) == repr(model)


@pytest.mark.parametrize("cls", MODEL_CLASSES)
def test_loss_backpropagates_to_every_parameter(cls):
    model = cls(3)

    loss, metrics = model.loss(_images(2))
    loss.backward()

    assert loss.ndim == 0
    assert torch.isfinite(loss)
    assert all(isinstance(value, float) for value in metrics.values())
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name


def test_autoencoder_loss_is_mse_per_pixel():
    model = ConvAutoencoder(4)
    x = _images(3)

    loss, metrics = model.loss(x)
    expected = ((model(x) - x) ** 2).sum() / x.numel()

    torch.testing.assert_close(loss, expected)
    assert metrics == {"mse": pytest.approx(expected.item())}


def test_vae_kl_matches_torch_distributions():
    generator = torch.Generator().manual_seed(2)
    mu = torch.randn(5, 3, generator=generator, dtype=torch.float64)
    logvar = torch.randn(5, 3, generator=generator, dtype=torch.float64)

    posterior = Independent(Normal(mu, torch.exp(0.5 * logvar)), 1)
    zeros = torch.zeros(3, dtype=torch.float64)
    prior = Independent(Normal(zeros, torch.ones_like(zeros)), 1)
    expected = kl_divergence(posterior, prior)  # (5,)

    torch.testing.assert_close(kl_to_standard_normal(mu, logvar), expected)


def test_vae_kl_is_zero_at_prior():
    mu = torch.zeros(2, 4)
    logvar = torch.zeros(2, 4)

    assert torch.equal(kl_to_standard_normal(mu, logvar), torch.zeros(2))


def test_vae_elbo_pieces_match_hand_computation():
    model = ConvVAE(2).double()
    x = torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64).repeat(2, 1, 262)[:, :, :784]
    x = x.reshape(2, 1, 28, 28)

    torch.manual_seed(7)
    loss, metrics = model.loss(x)

    # Same noise: reseed and redo every step by hand.
    torch.manual_seed(7)
    mu, logvar = model.encode_distribution(x)
    eps = torch.randn_like(mu)
    z = mu + eps * torch.exp(0.5 * logvar)
    p = model.decode(z)
    bce_per_image = -(x * torch.log(p) + (1 - x) * torch.log(1 - p)).sum(dim=(1, 2, 3))
    kl_per_image = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(dim=1)

    assert metrics["recon"] == pytest.approx(bce_per_image.mean().item(), rel=1e-9)
    assert metrics["kl"] == pytest.approx(kl_per_image.mean().item(), rel=1e-9)
    assert loss.item() == pytest.approx((bce_per_image + kl_per_image).mean().item(), rel=1e-9)


def test_vae_recon_is_summed_over_pixels():
    model = ConvVAE(2)
    x = _images(4)

    _, metrics = model.loss(x)

    # A per-pixel mean of a BCE near log 2 would be below 1,
    # but the sum over 784 pixels is in the hundreds.
    assert metrics["recon"] > 100


def test_vae_forward_uses_mean_in_eval_mode():
    model = ConvVAE(3).eval()
    x = _images(2)

    first = model(x)
    second = model(x)

    assert torch.equal(first, second)
    assert torch.equal(first, model.decode(model.encode(x)))


def test_vae_forward_samples_in_train_mode():
    model = ConvVAE(3).train()
    x = _images(2)

    torch.manual_seed(0)
    first = model(x)
    torch.manual_seed(1)
    second = model(x)

    assert not torch.equal(first, second)


def test_vae_encode_returns_posterior_mean():
    model = ConvVAE(3)
    x = _images(2)

    mu, logvar = model.encode_distribution(x)

    assert mu.shape == logvar.shape == (2, 3)
    assert torch.equal(model.encode(x), mu)


def test_vae_reparameterize_scales_noise():
    mu = torch.full((20000, 1), 2.0)
    logvar = torch.full((20000, 1), torch.log(torch.tensor(9.0)).item())

    torch.manual_seed(0)
    z = ConvVAE.reparameterize(mu, logvar)

    assert z.mean().item() == pytest.approx(2.0, abs=0.1)
    assert z.std().item() == pytest.approx(3.0, abs=0.1)


def test_bce_with_logits_matches_sigmoid_bce():
    # The VAE computes its likelihood from logits, which must equal the BCE of decode().
    model = ConvVAE(2)
    x = _images(2)
    z = torch.randn(2, 2, generator=torch.Generator().manual_seed(3))

    from_logits = F.binary_cross_entropy_with_logits(model.decode_logits(z), x, reduction="sum")
    from_probabilities = F.binary_cross_entropy(model.decode(z), x, reduction="sum")

    torch.testing.assert_close(from_logits, from_probabilities, rtol=1e-4, atol=1e-3)


def test_vae_beta_weights_kl_term():
    x = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    losses = {}
    for beta in (0.0, 1.0, 4.0):
        torch.manual_seed(0)
        model = ConvVAE(3, beta=beta)
        torch.manual_seed(1)
        loss, metrics = model.loss(x)
        losses[beta] = (loss.item(), metrics)

    for beta, (loss, metrics) in losses.items():
        assert loss == pytest.approx(metrics["recon"] + beta * metrics["kl"], rel=1e-5)
    assert ConvVAE(3, beta=4.0).hparams == {"latent_dim": 3, "beta": 4.0}


@pytest.mark.parametrize("bad", [-1.0, float("nan"), float("inf")])
def test_vae_rejects_invalid_beta(bad):
    with pytest.raises(ValueError, match="beta must be"):
        ConvVAE(3, beta=bad)
