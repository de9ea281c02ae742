"""Latent-space tools: encoding, 2-D projections, interpolation, traversals and scores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier
from torch import nn

from r2ska.models import kl_to_standard_normal

_PROJECTIONS = ("pca", "umap")
_INTERPOLATIONS = ("lerp", "slerp")

# Below this |sin(angle)| two vectors count as parallel or antiparallel. Near pi
# the division by sin(angle) amplifies the float64 rounding of the angle
# (about 1e-16) by 1 / sin(angle), and near 0 slerp differs from lerp by
# O(angle**2), so 1e-4 keeps both effects below 1e-8 relative.
_PARALLEL_SIN = 1e-4


@contextlib.contextmanager
def _inference(model: nn.Module) -> Iterator[torch.device]:
    """Run the block in eval mode without gradients, then restore the model's mode.

    Yields:
        The device of the model's first parameter (the CPU for a model without any).
    """
    was_training = model.training
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    model.eval()
    try:
        with torch.no_grad():
            yield device
    finally:
        model.train(was_training)


def _as_image_batch(images: torch.Tensor, name: str) -> torch.Tensor:
    """Check that ``images`` is a float tensor and add a batch axis to a single (1, H, W) image."""
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        kind = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(
            f"{name} must be a float tensor (N, 1, 28, 28) in [0, 1], got {kind}: "
            "convert uint8 images with r2ska.data.to_float_images."
        )
    if images.ndim == 3:
        images = images.unsqueeze(0)  # (1, 1, H, W)
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"{name} must have shape (N, 1, 28, 28) with N >= 1, or (1, 28, 28) for one image, "
            f"got {tuple(images.shape)}."
        )
    return images


def encode_dataset(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> np.ndarray:
    """Encode images to latent codes with ``model.encode`` (the posterior mean for a VAE).

    Args:
        model: An autoencoder from ``r2ska.models``.
        images: Float images (N, 1, 28, 28) in [0, 1].
        batch_size: Images per forward pass; lower it if memory runs out.

    Returns:
        Codes as a float32 array (N, latent_dim).
    """
    images = _as_image_batch(images, "images")
    codes = []
    with _inference(model) as device:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            codes.append(model.encode(batch).cpu())  # (B, latent_dim)
    return torch.cat(codes).numpy().astype(np.float32, copy=False)


def project_2d(codes: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """Project latent codes to two dimensions for plotting.

    Args:
        codes: Array (N, d) of latent codes.
        method: ``"pca"`` (scikit-learn PCA, linear and fast) or ``"umap"``
            (umap-learn, nonlinear, keeps local neighbourhoods, slower).
        seed: Random state of the projection. A seeded UMAP runs on one thread.

    Returns:
        Array (N, 2).

    Raises:
        ValueError: If ``method`` is unknown or ``codes`` is not (N, d) with N >= 3.
    """
    if method not in _PROJECTIONS:
        raise ValueError(
            f"Unknown projection method {method!r}: use one of {', '.join(_PROJECTIONS)}."
        )
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 2 or codes.shape[0] < 3:
        raise ValueError(f"codes must be an array (N, d) with N >= 3, got shape {codes.shape}.")

    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(codes)

    # umap imports numba and compiles on first use, so it is imported only when needed.
    import umap

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(15, codes.shape[0] - 1),
        random_state=seed,
        n_jobs=1,
    )
    return reducer.fit_transform(codes)


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be an integer >= 2 to include both endpoints, got {steps!r}.")


def lerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Interpolate linearly from ``z0`` to ``z1``, endpoints included.

    Args:
        z0: Start vector (d,).
        z1: End vector (d,).
        steps: Number of points, at least 2.

    Returns:
        Tensor (steps, d).
    """
    _check_steps(steps)
    t = torch.linspace(0, 1, steps, dtype=z0.dtype, device=z0.device).unsqueeze(1)  # (steps, 1)
    return (1 - t) * z0 + t * z1


def slerp(z0: torch.Tensor, z1: torch.Tensor, steps: int) -> torch.Tensor:
    """Interpolate along the great circle from ``z0`` to ``z1`` (spherical interpolation).

    For unit vectors every point stays on the unit sphere. For other vectors the
    formula still runs from ``z0`` to ``z1`` and bends the path outwards, which
    keeps samples of a standard normal prior away from the low-density origin.
    When the vectors are nearly parallel or antiparallel, or one is zero, the
    angle is ill-defined and this falls back to ``lerp``.

    Args:
        z0: Start vector (d,).
        z1: End vector (d,).
        steps: Number of points, at least 2.

    Returns:
        Tensor (steps, d).
    """
    _check_steps(steps)
    # The angle is computed in float64 as 2 * atan2(|u - v|, |u + v|) of the unit
    # vectors, which stays accurate near 0 and pi, where arccos(u . v) loses
    # about half the digits.
    a, b = z0.double(), z1.double()
    if a.norm() == 0 or b.norm() == 0:
        return lerp(z0, z1, steps)
    u, v = a / a.norm(), b / b.norm()
    angle = 2 * torch.atan2((u - v).norm(), (u + v).norm())
    sin_angle = torch.sin(angle)
    if sin_angle.abs() < _PARALLEL_SIN:
        return lerp(z0, z1, steps)

    t = torch.linspace(0, 1, steps, dtype=torch.float64, device=z0.device)
    t = t.unsqueeze(1)  # (steps, 1)
    w0 = torch.sin((1 - t) * angle) / sin_angle
    w1 = torch.sin(t * angle) / sin_angle
    return (w0 * a + w1 * b).to(z0.dtype)


def interpolate(
    model: nn.Module,
    x0: torch.Tensor,
    x1: torch.Tensor,
    steps: int = 8,
    method: str = "slerp",
) -> torch.Tensor:
    """Decode a path between the codes of two images.

    Args:
        model: An autoencoder from ``r2ska.models``.
        x0: Start image (1, 28, 28) or (1, 1, 28, 28), float in [0, 1].
        x1: End image, same shape as ``x0``.
        steps: Number of decoded images, endpoints included.
        method: ``"slerp"`` or ``"lerp"``.

    Returns:
        Decoded images (steps, 1, 28, 28) on the CPU.

    Raises:
        ValueError: If ``method`` is unknown.
    """
    if method not in _INTERPOLATIONS:
        raise ValueError(
            f"Unknown interpolation method {method!r}: "
            f"use one of {', '.join(_INTERPOLATIONS)}."
        )
    pair = torch.cat([_as_image_batch(x0, "x0"), _as_image_batch(x1, "x1")])  # (2, 1, 28, 28)
    path_fn = slerp if method == "slerp" else lerp

    with _inference(model) as device:
        z0, z1 = model.encode(pair.to(device))  # (latent_dim,) each
        path = path_fn(z0, z1, steps)  # (steps, latent_dim)
        return model.decode(path).cpu()


def traversal_grid(
    model: nn.Module,
    z: torch.Tensor,
    dims: Sequence[int],
    values: Sequence[float],
    *,
    absolute: bool = False,
) -> torch.Tensor:
    """Decode a grid that changes one latent dimension at a time around ``z``.

    Args:
        model: An autoencoder from ``r2ska.models``.
        z: Latent vector (latent_dim,) or (1, latent_dim), for example a code
            from ``encode_dataset``.
        dims: Latent dimensions to vary, one grid row each.
        values: Offsets added to ``z[dim]``, one grid column each; with
            ``absolute=True`` they replace ``z[dim]`` instead.
        absolute: Whether ``values`` are absolute coordinates rather than offsets.

    Returns:
        Decoded images (len(dims), len(values), 28, 28) on the CPU.

    Raises:
        ValueError: If a dimension is out of range or ``dims``/``values`` is empty.
    """
    z = torch.as_tensor(z, dtype=torch.float32).reshape(-1)  # (latent_dim,)
    if len(dims) == 0 or len(values) == 0:
        raise ValueError(
            f"dims and values must be non-empty, got dims={list(dims)}, values={list(values)}."
        )
    for dim in dims:
        if not 0 <= dim < len(z):
            raise ValueError(
                f"Latent dimension {dim} is out of range for a code of size {len(z)}: "
                f"use 0..{len(z) - 1}."
            )

    shift = torch.as_tensor(values, dtype=torch.float32).cpu()  # (V,)
    codes = z.repeat(len(dims), len(values), 1)  # (D, V, latent_dim)
    for row, dim in enumerate(dims):
        codes[row, :, dim] = shift if absolute else z[dim] + shift

    with _inference(model) as device:
        decoded = model.decode(codes.reshape(-1, len(z)).to(device)).cpu()  # (D * V, 1, 28, 28)
    return decoded.reshape(len(dims), len(values), *decoded.shape[-2:])


def reconstruction_error(model: nn.Module, images: torch.Tensor, batch_size: int = 512) -> float:
    """Compute the mean squared error per pixel of ``decode(encode(x))``.

    For a VAE this decodes the posterior mean, without sampling.

    Args:
        model: An autoencoder from ``r2ska.models``.
        images: Float images (N, 1, 28, 28) in [0, 1].
        batch_size: Images per forward pass.

    Returns:
        The MSE averaged over all pixels of all images, in squared pixel units.
    """
    images = _as_image_batch(images, "images")
    total = 0.0
    with _inference(model) as device:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(device)
            recon = model.decode(model.encode(batch))
            total += torch.sum((recon - batch) ** 2).item()
    return total / images.numel()


def knn_accuracy(
    train_codes: np.ndarray,
    train_labels: np.ndarray,
    test_codes: np.ndarray,
    test_labels: np.ndarray,
    k: int = 5,
) -> float:
    """Score how well labels can be read off the codes with a k-nearest-neighbour classifier.

    Args:
        train_codes: Codes (N, d) to fit scikit-learn's KNeighborsClassifier on.
        train_labels: Labels (N,).
        test_codes: Codes (M, d) to classify.
        test_labels: True labels (M,).
        k: Number of neighbours (Euclidean distance, uniform vote).

    Returns:
        Fraction of test codes classified correctly, in [0, 1].

    Raises:
        ValueError: If ``k`` exceeds the number of training codes.
    """
    train_codes = np.asarray(train_codes)
    if not 1 <= k <= len(train_codes):
        raise ValueError(
            f"k must be between 1 and the number of training codes ({len(train_codes)}), "
            f"got {k}."
        )
    classifier = KNeighborsClassifier(n_neighbors=k)
    classifier.fit(train_codes, np.asarray(train_labels))
    return float(classifier.score(np.asarray(test_codes), np.asarray(test_labels)))


def mean_kl(vae: nn.Module, images: torch.Tensor, batch_size: int = 512) -> float:
    """Compute the mean KL(q(z|x) || N(0, I)) of a VAE over ``images``, in nats per image.

    Args:
        vae: A model with ``encode_distribution``, such as ``r2ska.models.ConvVAE``.
        images: Float images (N, 1, 28, 28) in [0, 1].
        batch_size: Images per forward pass.

    Returns:
        The KL divergence averaged over images (summed over latent dimensions).

    Raises:
        TypeError: If the model has no ``encode_distribution`` method.
    """
    if not hasattr(vae, "encode_distribution"):
        raise TypeError(
            "mean_kl needs a VAE with encode_distribution(x) -> (mu, logvar), "
            f"got {type(vae).__name__}: pass a ConvVAE."
        )
    images = _as_image_batch(images, "images")
    total = 0.0
    with _inference(vae) as device:
        for start in range(0, len(images), batch_size):
            mu, logvar = vae.encode_distribution(images[start : start + batch_size].to(device))
            total += kl_to_standard_normal(mu, logvar).sum().item()
    return total / len(images)


def sample_decoded(
    model: nn.Module, n: int, *, seed: int = 0, reference_codes: np.ndarray | None = None
) -> torch.Tensor:
    """Decode random codes, to see which parts of the latent space the decoder fills.

    A VAE's codes follow its N(0, I) prior, so ``reference_codes=None`` samples
    that prior. A plain autoencoder has no prior: pass its codes of real images
    and the samples come from a diagonal Gaussian with their mean and standard
    deviation per dimension, the fairest simple choice.

    Args:
        model: A model from ``r2ska.models``.
        n: Number of samples.
        seed: Seed of the random codes.
        reference_codes: Codes (N, d) to match, or None for N(0, I).

    Returns:
        Decoded images (n, 1, 28, 28) on the CPU.

    Raises:
        ValueError: If ``n`` is not positive or ``reference_codes`` does not
            have ``model.latent_dim`` columns.
    """
    if n < 1:
        raise ValueError(f"n must be a positive number of samples, got {n}.")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, model.latent_dim, generator=generator)  # (n, d)

    if reference_codes is not None:
        reference = torch.as_tensor(np.asarray(reference_codes), dtype=torch.float32)
        if reference.ndim != 2 or reference.shape[1] != model.latent_dim:
            raise ValueError(
                f"reference_codes must have shape (N, {model.latent_dim}), "
                f"got {tuple(reference.shape)}: pass codes from encode_dataset."
            )
        noise = reference.mean(dim=0) + noise * reference.std(dim=0)

    with _inference(model) as device:
        return model.decode(noise.to(device)).cpu()
