"""Small greyscale image datasets (MNIST, Fashion-MNIST, offline digits) as uint8 tensors."""

from __future__ import annotations

import gzip
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np
import torch
import torch.nn.functional as F

from r2ska.data.fetch import fetch_file
from r2ska.data.registry import UnknownDatasetError

IMAGE_DATASET_NAMES: tuple[str, ...] = ("mnist", "fashion-mnist", "digits-offline")
"""Names accepted by :func:`load_image_dataset`."""

SPLITS: tuple[str, ...] = ("train", "test")
"""Splits accepted by :func:`load_image_dataset`."""

MNIST_CLASSES: tuple[str, ...] = tuple(str(digit) for digit in range(10))
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)

IDX_IMAGES_MAGIC = 0x00000803
"""idx magic number of a 3-D unsigned-byte array (images)."""
IDX_LABELS_MAGIC = 0x00000801
"""idx magic number of a 1-D unsigned-byte array (labels)."""

_IDX_UNSIGNED_BYTE = 0x08
_IMAGE_SIDE = 28

# Registry folders and idx file-name stems of each split.
_IDX_FOLDERS = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw"}
_IDX_STEMS = {"train": "train", "test": "t10k"}

# The offline digits are upsampled to 20x20 and padded by 4 pixels on each side, because
# MNIST digits are size-normalised to fit a 20x20 box inside the 28x28 image.
_DIGITS_BOX = 20
_DIGITS_PAD = (_IMAGE_SIDE - _DIGITS_BOX) // 2
_DIGITS_MAX_LEVEL = 16
_DIGITS_TEST_FRACTION = 0.2
_DIGITS_SPLIT_SEED = 0


class IdxFormatError(ValueError):
    """Raised when a file is not a valid idx file of the expected kind."""


@dataclass
class ImageDataset:
    """Greyscale images with integer class labels, held in memory as tensors.

    Attributes:
        images: uint8 tensor of shape (N, 28, 28), pixel values 0 (background)
            to 255 (brightest).
        labels: int64 tensor of shape (N,), class indices 0 to
            ``len(class_names) - 1``.
        class_names: Name of each class, indexed by label.
        name: Dataset name as passed to :func:`load_image_dataset`.

    The label schemes, licences and citations of the loaders are:

    * ``"mnist"``: handwritten digits, where label ``k`` is the digit ``k``. 60000
      train and 10000 test images. No licence is stated by the authors (Y. LeCun,
      C. Cortes, C. J. C. Burges), and third-party mirrors label it CC BY-SA 3.0
      or MIT. Cite LeCun, Bottou, Bengio, Haffner (1998), Gradient-based learning
      applied to document recognition, Proc. IEEE 86(11):2278-2324.
    * ``"fashion-mnist"``: Zalando article photos, labels 0-9 are T-shirt/top,
      Trouser, Pullover, Dress, Coat, Sandal, Shirt, Sneaker, Bag, Ankle boot.
      6000 train and 1000 test images per class. MIT, (c) 2017 Zalando SE. Cite
      Xiao, Rasul, Vollgraf (2017), Fashion-MNIST, arXiv:1708.07747.
    * ``"digits-offline"``: an offline stand-in for MNIST, not MNIST itself.
      It is scikit-learn's bundled copy of the test set of the UCI
      "Optical Recognition of Handwritten Digits" data (E. Alpaydin, C. Kaynak,
      1998), where label ``k`` is the digit ``k``. 1437 train and 360 test images.
      scikit-learn's description states no licence, so check the UCI record.
    """

    images: torch.Tensor
    labels: torch.Tensor
    class_names: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 3:
            raise ValueError(
                f"images must be a uint8 tensor of shape (N, H, W), got dtype "
                f"{self.images.dtype} and shape {tuple(self.images.shape)}."
            )
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be an int64 tensor of shape ({self.images.shape[0]},), got "
                f"dtype {self.labels.dtype} and shape {tuple(self.labels.shape)}."
            )
        if len(self.labels) == 0:
            return
        low, high = int(self.labels.min()), int(self.labels.max())
        if low < 0 or high >= len(self.class_names):
            raise ValueError(
                f"labels must lie in 0..{len(self.class_names) - 1} for "
                f"{len(self.class_names)} class names, got {low}..{high}."
            )

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, n: int, seed: int = 0, *, stratified: bool = True) -> ImageDataset:
        """Draw ``n`` examples without replacement, the same ones for the same seed.

        Args:
            n: Number of examples, from 1 to ``len(self)``.
            seed: Seed of the random draw.
            stratified: Keep each class's share of the dataset (rounded by the
                largest-remainder method) instead of drawing uniformly.

        Returns:
            A new dataset with the same class names and name, whose examples keep
            their original order.

        Raises:
            ValueError: If ``n`` is not between 1 and ``len(self)``.
        """
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= len(self):
            raise ValueError(
                f"Subset size must be an integer from 1 to {len(self)} for "
                f"{self.name!r}, got {n!r}."
            )
        generator = torch.Generator().manual_seed(seed)
        if stratified:
            indices = _stratified_indices(self.labels, n, generator)
        else:
            indices = torch.randperm(len(self), generator=generator)[:n]
        indices = indices.sort().values
        return ImageDataset(
            self.images[indices], self.labels[indices], self.class_names, self.name
        )


def _stratified_indices(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    counts = torch.bincount(labels)
    quotas = counts.double() * n / len(labels)
    sizes = quotas.floor().long()

    # Hand the remaining places to the classes with the largest fractional quotas.
    shortfall = n - int(sizes.sum())
    order = torch.argsort(quotas - sizes, descending=True, stable=True)
    sizes[order[:shortfall]] += 1

    chosen = []
    for label, size in enumerate(sizes.tolist()):
        members = torch.nonzero(labels == label).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:size]])
    return torch.cat(chosen)


def load_image_dataset(name: str, split: str = "train") -> ImageDataset:
    """Load one split of a small greyscale image dataset as 28x28 uint8 tensors.

    MNIST and Fashion-MNIST come from their original idx files through
    :func:`r2ska.data.fetch_file` (mirror or download). ``"digits-offline"`` needs
    no files: it is an offline stand-in for MNIST built from scikit-learn's
    8x8 digits (see :func:`load_digits_offline`), and it is only returned when
    asked for by name.

    Args:
        name: One of ``"mnist"``, ``"fashion-mnist"`` or ``"digits-offline"``.
        split: ``"train"`` or ``"test"``.

    Returns:
        The images, labels and class names of that split.

    Raises:
        UnknownDatasetError: If ``name`` is not a known image dataset (a ValueError).
        ValueError: If ``split`` is not ``"train"`` or ``"test"``.
        DataUnavailableError: If a data file can be neither found nor downloaded.
        IdxFormatError: If a data file is not a valid idx file.
    """
    if name not in IMAGE_DATASET_NAMES:
        raise UnknownDatasetError(
            f"Unknown image dataset {name!r}: use one of {', '.join(IMAGE_DATASET_NAMES)}."
        )
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}.")

    if name == "digits-offline":
        return load_digits_offline(split)

    folder, stem = _IDX_FOLDERS[name], _IDX_STEMS[split]
    images_path = fetch_file(f"{folder}/{stem}-images-idx3-ubyte.gz")
    labels_path = fetch_file(f"{folder}/{stem}-labels-idx1-ubyte.gz")
    images = read_idx(images_path, expected_magic=IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, expected_magic=IDX_LABELS_MAGIC)

    if images.shape[1:] != (_IMAGE_SIDE, _IMAGE_SIDE):
        raise IdxFormatError(
            f"{images_path} contains images of shape {tuple(images.shape[1:])}, expected "
            f"({_IMAGE_SIDE}, {_IMAGE_SIDE}): replace it with the original file."
        )
    if len(images) != len(labels):
        raise IdxFormatError(
            f"{images_path} contains {len(images)} images but {labels_path} contains "
            f"{len(labels)} labels: replace them with the original files."
        )
    class_names = MNIST_CLASSES if name == "mnist" else FASHION_MNIST_CLASSES
    return ImageDataset(images, labels.to(torch.int64), class_names, name)


def read_idx(path: str | Path, expected_magic: int | None = None) -> torch.Tensor:
    """Read an unsigned-byte idx file, gzip-compressed when its name ends in ``.gz``.

    An idx file starts with a big-endian magic number (two zero bytes, a type
    code, the number of dimensions), then one big-endian uint32 per dimension,
    then the values in row-major order.

    Args:
        path: The idx file.
        expected_magic: Required magic number, for example ``IDX_IMAGES_MAGIC``.
            None accepts any unsigned-byte idx file.

    Returns:
        A uint8 tensor with the shape given in the header.

    Raises:
        IdxFormatError: If the file is not valid gzip, has another magic number,
            or contains more or fewer values than its header declares.
    """
    path = Path(path)
    fix = "replace it with the original file (delete a cached copy to download it again)"
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                data = stream.read()
        else:
            data = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise IdxFormatError(f"{path} is not a valid gzip file ({error}): {fix}.") from error

    if len(data) < 4:
        raise IdxFormatError(f"{path} is too short for an idx header ({len(data)} bytes): {fix}.")
    magic = int.from_bytes(data[:4], "big")
    zero, type_code, ndim = int.from_bytes(data[:2], "big"), data[2], data[3]
    if expected_magic is not None and magic != expected_magic:
        raise IdxFormatError(
            f"{path} has idx magic number 0x{magic:08x}, expected 0x{expected_magic:08x}: {fix}."
        )
    if zero != 0 or type_code != _IDX_UNSIGNED_BYTE or ndim == 0:
        raise IdxFormatError(
            f"{path} has magic number 0x{magic:08x}, which is not an unsigned-byte idx "
            f"array (0x000008NN with NN >= 1 dimensions): {fix}."
        )

    header_bytes = 4 + 4 * ndim
    if len(data) < header_bytes:
        raise IdxFormatError(f"{path} ends inside its idx header ({len(data)} bytes): {fix}.")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    declared = math.prod(shape)
    if len(data) - header_bytes != declared:
        raise IdxFormatError(
            f"{path} contains {len(data) - header_bytes} bytes of values but its header "
            f"declares shape {shape} ({declared} values): {fix}."
        )
    if declared == 0:
        return torch.empty(shape, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8, offset=header_bytes).reshape(shape)


def load_digits_offline(split: str = "train") -> ImageDataset:
    """Build an offline stand-in for MNIST from scikit-learn's 8x8 digits.

    This is not MNIST: it is scikit-learn's bundled ``load_digits`` data (1797
    digits, 8x8 pixels, 16 grey levels), so it works without network or data
    files. Each image is scaled from 0..16 to 0..255, upsampled bilinearly to
    20x20 and padded by 4 pixels to 28x28, like MNIST's 20x20 digit box. The
    split is a fixed stratified 80/20 split (seed 0): 1437 train and 360 test
    images. The upsampled images are blurrier than MNIST's.

    Args:
        split: ``"train"`` or ``"test"``.

    Returns:
        The split as an :class:`ImageDataset` named ``"digits-offline"``.

    Raises:
        ValueError: If ``split`` is not ``"train"`` or ``"test"``.
    """
    # Imported here so that importing r2ska.data does not load scikit-learn.
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {', '.join(SPLITS)}.")

    digits = load_digits()
    levels = torch.from_numpy(digits.images).to(torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    upsampled = F.interpolate(
        levels / _DIGITS_MAX_LEVEL, size=(_DIGITS_BOX, _DIGITS_BOX), mode="bilinear",
        align_corners=False,
    )
    pixels = (upsampled * 255).round().clamp(0, 255).to(torch.uint8)  # (N, 1, 20, 20)
    images = F.pad(pixels, (_DIGITS_PAD,) * 4).squeeze(1)  # (N, 28, 28)
    labels = torch.from_numpy(digits.target).to(torch.int64)

    train_indices, test_indices = train_test_split(
        np.arange(len(labels)),
        test_size=_DIGITS_TEST_FRACTION,
        stratify=digits.target,
        random_state=_DIGITS_SPLIT_SEED,
    )
    chosen = torch.from_numpy(np.sort(train_indices if split == "train" else test_indices))
    return ImageDataset(images[chosen], labels[chosen], MNIST_CLASSES, "digits-offline")


def to_float_images(images_uint8: torch.Tensor) -> torch.Tensor:
    """Convert uint8 images to the float input that the course's models take.

    Args:
        images_uint8: uint8 tensor of shape (N, H, W).

    Returns:
        float32 tensor of shape (N, 1, H, W) with values in [0, 1] (pixel / 255).

    Raises:
        ValueError: If the input is not a 3-D uint8 tensor.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.ndim != 3:
        raise ValueError(
            f"Expected a uint8 tensor of shape (N, H, W), got dtype {images_uint8.dtype} "
            f"and shape {tuple(images_uint8.shape)}: pass ImageDataset.images."
        )
    return images_uint8.to(torch.float32).div_(255).unsqueeze(1)


@overload
def iterate_batches(
    images: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    labels: None = None,
) -> Iterator[torch.Tensor]: ...


@overload
def iterate_batches(
    images: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    labels: torch.Tensor,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...


def iterate_batches(
    images: torch.Tensor,
    batch_size: int,
    *,
    shuffle: bool,
    generator: torch.Generator | None = None,
    labels: torch.Tensor | None = None,
) -> Iterator[torch.Tensor] | Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield mini-batches by slicing whole tensors along the first dimension.

    Slicing one in-memory tensor avoids the per-item overhead of a
    ``Dataset``/``DataLoader`` pair, which dominates small-model training on a CPU.
    Every example appears in exactly one batch per pass, and the last batch is
    smaller when ``batch_size`` does not divide the number of examples.

    Args:
        images: Tensor of shape (N, ...), usually from :func:`to_float_images`.
        batch_size: Examples per batch, at least 1.
        shuffle: Visit the examples in a random order instead of in order.
        generator: Random generator for the order, for a reproducible shuffle.
        labels: Optional tensor of shape (N,), sliced with the same indices.

    Yields:
        ``images[batch]``, or ``(images[batch], labels[batch])`` when ``labels``
        is given.

    Raises:
        ValueError: If ``batch_size`` is not a positive integer or ``labels``
            does not have one entry per image.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if labels is not None and len(labels) != len(images):
        raise ValueError(
            f"labels must have one entry per image: got {len(labels)} labels for "
            f"{len(images)} images."
        )
    # Validated before the first batch is requested, because a generator body
    # would only run on the first next().
    return _batches(images, batch_size, shuffle, generator, labels)


def _batches(
    images: torch.Tensor,
    batch_size: int,
    shuffle: bool,
    generator: torch.Generator | None,
    labels: torch.Tensor | None,
) -> Iterator[torch.Tensor] | Iterator[tuple[torch.Tensor, torch.Tensor]]:
    count = len(images)
    order = None
    if shuffle:
        device = generator.device if generator is not None else torch.device("cpu")
        # CPU indices can index tensors on any device.
        order = torch.randperm(count, generator=generator, device=device).cpu()
    for start in range(0, count, batch_size):
        if order is None:
            batch: slice | torch.Tensor = slice(start, start + batch_size)
        else:
            batch = order[start : start + batch_size]
        if labels is None:
            yield images[batch]
        else:
            yield images[batch], labels[batch]
