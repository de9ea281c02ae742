"""Side-by-side test metrics of autoencoders and a PCA baseline with the same code size."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from sklearn.decomposition import PCA
from torch import nn

from r2ska import latent

PCA_ROW = "PCA"


def pca_baseline(
    train_images: torch.Tensor, test_images: torch.Tensor, n_components: int, seed: int = 0
) -> tuple[PCA, np.ndarray, np.ndarray, float]:
    """Fit PCA on flattened training images, the optimal linear autoencoder.

    Args:
        train_images: Float images (N, 1, H, W) in [0, 1] to fit on.
        test_images: Float images (M, 1, H, W) to encode and reconstruct.
        n_components: Number of principal components (the code size).
        seed: Seed of the randomised SVD solver.

    Returns:
        The fitted PCA, the training codes (N, n_components), the test codes
        (M, n_components) and the test reconstruction MSE per pixel.
    """
    train = train_images.reshape(len(train_images), -1).numpy()
    test = test_images.reshape(len(test_images), -1).numpy()
    pca = PCA(n_components=n_components, random_state=seed).fit(train)

    test_codes = pca.transform(test)
    reconstructions = np.clip(pca.inverse_transform(test_codes), 0.0, 1.0)
    mse = float(np.mean((reconstructions - test) ** 2))
    return pca, pca.transform(train), test_codes, mse


def compare_models(
    models: Mapping[str, nn.Module],
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    pca_components: int | None = None,
    k: int = 5,
) -> pd.DataFrame:
    """Tabulate test reconstruction error, k-NN accuracy on codes and KL per model.

    Args:
        models: Trained models from ``r2ska.models`` by display name. A model with
            ``encode_distribution`` (a VAE) also gets its mean KL term.
        train_images: Float images (N, 1, H, W) whose codes fit the k-NN classifier
            (and the PCA baseline).
        train_labels: Labels (N,) of ``train_images``.
        test_images: Float images (M, 1, H, W) to evaluate on.
        test_labels: Labels (M,) of ``test_images``.
        pca_components: Add a PCA baseline row with this many components; None skips it.
        k: Neighbours of the k-NN classifier.

    Returns:
        A table indexed by model name with columns ``test_mse`` (MSE per pixel,
        pixels in [0, 1]), ``knn_accuracy`` (fraction in [0, 1]) and ``kl_nats``
        (nats per image; NaN for models without a KL term).

    Raises:
        ValueError: If ``models`` is empty and no PCA baseline is asked for.
    """
    if not models and pca_components is None:
        raise ValueError("Nothing to compare: pass at least one model or pca_components.")
    train_labels_np = np.asarray(train_labels)
    test_labels_np = np.asarray(test_labels)
    rows: dict[str, dict[str, float]] = {}

    for name, model in models.items():
        train_codes = latent.encode_dataset(model, train_images)
        test_codes = latent.encode_dataset(model, test_images)
        kl = latent.mean_kl(model, test_images) if hasattr(model, "encode_distribution") else np.nan
        rows[name] = {
            "test_mse": latent.reconstruction_error(model, test_images),
            "knn_accuracy": latent.knn_accuracy(
                train_codes, train_labels_np, test_codes, test_labels_np, k=k
            ),
            "kl_nats": kl,
        }

    if pca_components is not None:
        _, train_codes, test_codes, mse = pca_baseline(train_images, test_images, pca_components)
        rows[PCA_ROW] = {
            "test_mse": mse,
            "knn_accuracy": latent.knn_accuracy(
                train_codes, train_labels_np, test_codes, test_labels_np, k=k
            ),
            "kl_nats": np.nan,
        }

    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "model"
    return table
