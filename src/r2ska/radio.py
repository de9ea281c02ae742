"""Radio-galaxy images for the MiraBest homework: preprocessing and a source-weighted autoencoder."""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from r2ska.data.images import to_float_images
from r2ska.training import History, TrainConfig, train_or_load

RADIO_IMAGE_SIZE = 64
"""Side in pixels that :func:`prepare_radio_images` resamples MiraBest's 150x150 images to."""

# Channel widths of the three strided convolutions (64 -> 32 -> 16 -> 8).
_CHANNELS = (16, 32, 64)


def prepare_radio_images(images_uint8: torch.Tensor, size: int = RADIO_IMAGE_SIZE) -> torch.Tensor:
    """Convert uint8 radio images (N, H, W) to float images (N, 1, size, size) in [0, 1].

    Area averaging keeps each output pixel the mean flux of the input pixels it
    covers, so faint extended emission is not lost between samples as with
    nearest-neighbour resampling.

    Args:
        images_uint8: uint8 tensor (N, H, W), for example MiraBest's (N, 150, 150).
        size: Output side in pixels; a multiple of 8 for :class:`RadioAutoencoder`.

    Returns:
        Float32 tensor (N, 1, size, size).

    Raises:
        ValueError: If ``size`` is not a positive integer.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}: try {RADIO_IMAGE_SIZE}.")
    images = to_float_images(images_uint8)  # (N, 1, H, W)
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    return F.interpolate(images, size=(size, size), mode="area")


def standardise(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Shift and scale images to zero mean and unit variance with statistics of a training set.

    This is the usual normalisation for classifiers. Compute ``mean`` and ``std``
    on the training images only, so that no test information leaks in.

    Args:
        images: Float images of any shape.
        mean: Mean pixel value of the training images.
        std: Standard deviation of the training pixels, > 0.

    Returns:
        ``(images - mean) / std``.

    Raises:
        ValueError: If ``std`` is not a positive finite number.
    """
    if not (math.isfinite(std) and std > 0):
        raise ValueError(f"std must be a positive finite number, got {std!r}: compute it with images.std().")
    return (images - mean) / std


def blank_image_mse(images: torch.Tensor) -> float:
    """Compute the per-pixel MSE of predicting an all-zero (blank) image for every input.

    On MiraBest this is about 0.001 per pixel, because most of each image is empty
    sky. An autoencoder whose MSE is not clearly below this has learnt little.

    Args:
        images: Float images in [0, 1].

    Returns:
        The mean of ``images ** 2``.
    """
    return float(images.double().pow(2).mean())


class RadioAutoencoder(nn.Module):
    """Convolutional autoencoder for 64x64 radio images, with a source-weighted MSE.

    The encoder has three strided 3x3 convolutions (64 -> 32 -> 16 -> 8 pixels) and
    a linear bottleneck; the decoder mirrors it with transposed convolutions.

    Radio images are mostly blank sky, so an all-blank reconstruction already has a
    small per-pixel MSE (see :func:`blank_image_mse`). With a sigmoid output and a
    plain MSE, training pushes every output towards 0, the sigmoid saturates and
    its gradient vanishes, so the model can stay blank. The default linear output
    has no saturating end. ``source_weight`` multiplies the squared error of each
    pixel by ``1 + source_weight * x``, where ``x`` is the target brightness in
    [0, 1], so errors on the galaxy count up to ``1 + source_weight`` times more
    than errors on empty sky.

    Args:
        latent_dim: Size of the code vector.
        source_weight: Extra weight of bright pixels in the loss; 0 gives the plain MSE.
        output: ``"linear"`` (default) or ``"sigmoid"``, the decoder's last activation.
        image_size: Side of the input images, a multiple of 8.

    Raises:
        ValueError: If an argument is out of range.
    """

    def __init__(
        self,
        latent_dim: int = 32,
        source_weight: float = 0.0,
        output: str = "linear",
        image_size: int = RADIO_IMAGE_SIZE,
    ) -> None:
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer, got {latent_dim!r}.")
        if not (math.isfinite(source_weight) and source_weight >= 0):
            raise ValueError(f"source_weight must be a finite number >= 0, got {source_weight!r}.")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8 or image_size % 8:
            raise ValueError(f"image_size must be a positive multiple of 8, got {image_size!r}: try 64.")
        self.latent_dim = latent_dim
        self.source_weight = float(source_weight)
        self.image_size = image_size
        if output not in ("linear", "sigmoid"):
            raise ValueError(f"output must be 'linear' or 'sigmoid', got {output!r}.")
        self.output = output

        c1, c2, c3 = _CHANNELS
        side = image_size // 8
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 3, stride=2, padding=1), nn.SiLU(),  # (B, c1, S/2, S/2)
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.SiLU(),  # (B, c2, S/4, S/4)
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.SiLU(),  # (B, c3, S/8, S/8)
            nn.Flatten(),
            nn.Linear(c3 * side * side, latent_dim),  # (B, latent_dim)
        )
        # Kernel 4, stride 2, padding 1 doubles the side exactly at each step.
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, c3 * side * side), nn.SiLU(),
            nn.Unflatten(1, (c3, side, side)),
            nn.ConvTranspose2d(c3, c2, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(c2, c1, 4, stride=2, padding=1), nn.SiLU(),
            nn.ConvTranspose2d(c1, 1, 4, stride=2, padding=1),  # (B, 1, S, S) logits
        )

    @property
    def hparams(self) -> dict[str, float]:
        """Constructor arguments, which the checkpoint cache uses as part of its key."""
        return {"latent_dim": self.latent_dim, "source_weight": self.source_weight,
                "output": self.output, "image_size": self.image_size}

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Map images (B, 1, S, S) in [0, 1] to codes (B, latent_dim)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Map codes (B, latent_dim) to images (B, 1, S, S), in [0, 1] with a sigmoid output."""
        logits = self.decoder(z)
        return logits if self.output == "linear" else torch.sigmoid(logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Reconstruct images (B, 1, S, S) through the bottleneck."""
        return self.decode(self.encode(x))

    def loss(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """Compute the source-weighted squared error per pixel.

        Args:
            x: Images (B, 1, S, S) with pixel values in [0, 1].

        Returns:
            The scalar loss, and ``{"mse": plain per-pixel MSE}`` for logging.
        """
        squared_error = (self(x) - x).pow(2)
        weights = 1.0 + self.source_weight * x
        loss = (weights * squared_error).mean()
        return loss, {"mse": squared_error.mean().item()}


RADIO_TRAIN_CONFIG = TrainConfig(epochs=30, batch_size=64, lr=1e-3)
"""Training settings of the homework's radio autoencoder. On 2 CPU cores (torch 2.14.1)
30 epochs over the 1069 FRFull training images took about 20 s."""


def train_radio_autoencoder(
    train_images: torch.Tensor,
    *,
    seed: int = 0,
    latent_dim: int = 32,
    source_weight: float = 10.0,
    output: str = "linear",
    epochs: int = RADIO_TRAIN_CONFIG.epochs,
    data_id: str = "mirabest-FRFull-train",
    progress: bool = True,
) -> tuple[RadioAutoencoder, History]:
    """Train a :class:`RadioAutoencoder` reproducibly, or load it from the checkpoint cache.

    The same arguments give the same weights on a CPU, and a second call loads the
    cached checkpoint, so the retrieval exercise can reuse the autoencoder exercise's
    model.

    Args:
        train_images: Float images (N, 1, 64, 64) from :func:`prepare_radio_images`.
        seed: Seed of the initial weights and the batch order.
        latent_dim: Size of the code vector.
        source_weight: Extra loss weight of bright pixels; see :class:`RadioAutoencoder`.
        output: ``"linear"`` or ``"sigmoid"`` decoder output.
        epochs: Passes over the training images.
        data_id: Name of the training data, part of the checkpoint key. Change it
            when you train on other images.
        progress: Whether to show a progress bar.

    Returns:
        The trained model in eval mode on the CPU, and its History.
    """
    config = dataclasses.replace(RADIO_TRAIN_CONFIG, epochs=epochs, seed=seed)
    image_size = int(train_images.shape[-1])
    model, history = train_or_load(
        lambda: RadioAutoencoder(latent_dim, source_weight, output, image_size),
        train_images, None, config, data_id=data_id, device="cpu", progress=progress,
    )
    return model, history
