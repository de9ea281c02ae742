import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from r2ska.comparison import PCA_ROW, compare_models, pca_baseline
from r2ska.models import ConvAutoencoder, ConvVAE


def _images(n: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=generator)


def test_pca_baseline_full_rank_is_exact():
    train = torch.rand(40, 1, 3, 3, generator=torch.Generator().manual_seed(0))
    _, _, _, mse = pca_baseline(train, train, n_components=9)
    assert mse == pytest.approx(0.0, abs=1e-10)


def test_pca_baseline_matches_sklearn():
    train, test = _images(80, 1), _images(20, 2)
    _, train_codes, test_codes, mse = pca_baseline(train, test, n_components=5)

    reference = PCA(n_components=5, random_state=0).fit(train.reshape(80, -1).numpy())
    expected_codes = reference.transform(test.reshape(20, -1).numpy())
    reconstructions = np.clip(reference.inverse_transform(expected_codes), 0, 1)
    assert np.allclose(test_codes, expected_codes, atol=1e-5)
    assert train_codes.shape == (80, 5)
    assert mse == pytest.approx(np.mean((reconstructions - test.reshape(20, -1).numpy()) ** 2))


def test_pca_baseline_error_falls_with_components():
    train, test = _images(100, 3), _images(30, 4)
    errors = [pca_baseline(train, test, n)[3] for n in (2, 10, 50)]
    assert errors[0] > errors[1] > errors[2]


def test_compare_models_table():
    torch.manual_seed(0)
    train, test = _images(30, 5), _images(12, 6)
    train_labels, test_labels = torch.arange(30) % 3, torch.arange(12) % 3
    models = {"autoencoder": ConvAutoencoder(4), "VAE": ConvVAE(4)}

    table = compare_models(models, train, train_labels, test, test_labels, pca_components=4, k=3)

    assert list(table.index) == ["autoencoder", "VAE", PCA_ROW]
    assert list(table.columns) == ["test_mse", "knn_accuracy", "kl_nats"]
    assert np.isnan(table.loc["autoencoder", "kl_nats"])
    assert np.isnan(table.loc[PCA_ROW, "kl_nats"])
    assert table.loc["VAE", "kl_nats"] >= 0
    assert table["test_mse"].between(0, 1).all()
    assert table["knn_accuracy"].between(0, 1).all()


def test_compare_models_rejects_nothing_to_compare():
    images = _images(4, 7)
    with pytest.raises(ValueError, match="Nothing to compare"):
        compare_models({}, images, torch.zeros(4), images, torch.zeros(4))
