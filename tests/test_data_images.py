"""Tests for r2ska.data.images on real MNIST/Fashion-MNIST and on hand-made idx files."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from r2ska.data import (
    FASHION_MNIST_CLASSES,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    MNIST_CLASSES,
    REGISTRY,
    IdxFormatError,
    ImageDataset,
    iterate_batches,
    load_image_dataset,
    read_idx,
    to_float_images,
)

# Published MNIST label counts per digit 0-9.
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def idx_bytes(array: torch.Tensor, magic: int | None = None) -> bytes:
    """Encode a uint8 tensor as an idx file, optionally with a forced magic number."""
    if magic is None:
        magic = 0x0800 + array.ndim
    header = magic.to_bytes(4, "big")
    header += b"".join(size.to_bytes(4, "big") for size in array.shape)
    return header + array.numpy().tobytes()


def write_gz(path: Path, payload: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload))
    return path


@pytest.fixture(scope="module")
def real_mirror(mirror_dir: Path) -> Iterator[Path]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("R2SKA_DATA_MIRROR", str(mirror_dir))
        yield mirror_dir


@pytest.fixture(scope="module")
def mnist_train(real_mirror: Path) -> ImageDataset:
    return load_image_dataset("mnist", "train")


@pytest.fixture(scope="module")
def mnist_test(real_mirror: Path) -> ImageDataset:
    return load_image_dataset("mnist", "test")


def test_mnist_train_shapes(mnist_train: ImageDataset) -> None:
    assert mnist_train.images.shape == (60000, 28, 28)
    assert mnist_train.images.dtype == torch.uint8
    assert mnist_train.labels.shape == (60000,)
    assert mnist_train.labels.dtype == torch.int64
    assert len(mnist_train) == 60000
    assert mnist_train.name == "mnist"
    assert mnist_train.class_names == tuple("0123456789")


def test_mnist_train_label_counts(mnist_train: ImageDataset) -> None:
    assert torch.bincount(mnist_train.labels).tolist() == MNIST_TRAIN_COUNTS


def test_mnist_train_mean_pixel(mnist_train: ImageDataset) -> None:
    mean = int(mnist_train.images.sum(dtype=torch.int64)) / mnist_train.images.numel()
    assert round(mean, 3) == 33.318


def test_mnist_test_split(mnist_test: ImageDataset) -> None:
    assert mnist_test.images.shape == (10000, 28, 28)
    assert torch.bincount(mnist_test.labels).tolist() == MNIST_TEST_COUNTS


@pytest.mark.parametrize(("split", "per_class"), [("train", 6000), ("test", 1000)])
def test_fashion_mnist_split(real_mirror: Path, split: str, per_class: int) -> None:
    dataset = load_image_dataset("fashion-mnist", split)
    assert dataset.images.shape == (10 * per_class, 28, 28)
    assert dataset.images.dtype == torch.uint8
    assert dataset.labels.dtype == torch.int64
    assert torch.bincount(dataset.labels).tolist() == [per_class] * 10
    assert dataset.class_names == FASHION_MNIST_CLASSES
    assert dataset.class_names[9] == "Ankle boot"
    assert dataset.name == "fashion-mnist"


def test_fashion_mnist_differs_from_mnist(real_mirror: Path, mnist_test: ImageDataset) -> None:
    fashion = load_image_dataset("fashion-mnist", "test")
    assert not torch.equal(fashion.images, mnist_test.images)


@pytest.mark.parametrize("name", ["MNIST", "cifar10", ""])
def test_invalid_dataset_name(name: str) -> None:
    with pytest.raises(ValueError, match="digits-offline") as info:
        load_image_dataset(name)
    assert repr(name) in str(info.value)


@pytest.mark.parametrize("split", ["val", "Train", "all"])
def test_invalid_split(split: str) -> None:
    with pytest.raises(ValueError, match=f"'{split}'.*train, test"):
        load_image_dataset("digits-offline", split)


def test_read_idx_round_trip(tmp_path: Path) -> None:
    array = torch.arange(2 * 3 * 4, dtype=torch.uint8).reshape(2, 3, 4)
    gz_file = write_gz(tmp_path / "tiny-idx3-ubyte.gz", idx_bytes(array))
    raw_file = tmp_path / "tiny-idx3-ubyte"
    raw_file.write_bytes(idx_bytes(array))
    assert torch.equal(read_idx(gz_file, expected_magic=IDX_IMAGES_MAGIC), array)
    assert torch.equal(read_idx(raw_file), array)


def test_read_idx_wrong_magic(tmp_path: Path) -> None:
    labels = write_gz(tmp_path / "labels.gz", idx_bytes(torch.zeros(5, dtype=torch.uint8)))
    with pytest.raises(IdxFormatError, match="0x00000801, expected 0x00000803"):
        read_idx(labels, expected_magic=IDX_IMAGES_MAGIC)


def test_read_idx_truncated_payload(tmp_path: Path) -> None:
    payload = idx_bytes(torch.zeros(4, 28, 28, dtype=torch.uint8))[:-10]
    broken = write_gz(tmp_path / "images.gz", payload)
    with pytest.raises(IdxFormatError, match=r"declares shape \(4, 28, 28\)"):
        read_idx(broken, expected_magic=IDX_IMAGES_MAGIC)


def test_read_idx_not_gzip(tmp_path: Path) -> None:
    broken = tmp_path / "images.gz"
    broken.write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(IdxFormatError, match="not a valid gzip file"):
        read_idx(broken)


def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    compressed = gzip.compress(idx_bytes(torch.ones(3, 28, 28, dtype=torch.uint8)))
    broken = tmp_path / "images.gz"
    broken.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(IdxFormatError, match="images.gz"):
        read_idx(broken)


def test_read_idx_short_header(tmp_path: Path) -> None:
    broken = write_gz(tmp_path / "images.gz", (IDX_IMAGES_MAGIC).to_bytes(4, "big") + b"\0\0")
    with pytest.raises(IdxFormatError, match="ends inside its idx header"):
        read_idx(broken)


def test_read_idx_float_type_rejected(tmp_path: Path) -> None:
    # Type code 0x0D is float32, and only unsigned bytes (0x08) are supported.
    broken = write_gz(tmp_path / "floats.gz", (0x0D01).to_bytes(4, "big") + (0).to_bytes(4, "big"))
    with pytest.raises(IdxFormatError, match="not an unsigned-byte idx"):
        read_idx(broken)


def make_fake_mnist_mirror(
    root: Path, monkeypatch: pytest.MonkeyPatch, images: torch.Tensor, labels: torch.Tensor
) -> None:
    """Write fake MNIST test files into a mirror and register their checksums."""
    files = {
        "MNIST/raw/t10k-images-idx3-ubyte.gz": idx_bytes(images),
        "MNIST/raw/t10k-labels-idx1-ubyte.gz": idx_bytes(labels),
    }
    for path, payload in files.items():
        written = write_gz(root / path, payload)
        digest = hashlib.sha256(written.read_bytes()).hexdigest()
        monkeypatch.setitem(REGISTRY, path, dataclasses.replace(REGISTRY[path], sha256=digest))
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(root))


def test_load_rejects_wrong_image_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.zeros(3, 28, 27, dtype=torch.uint8)
    make_fake_mnist_mirror(tmp_path, monkeypatch, images, torch.zeros(3, dtype=torch.uint8))
    with pytest.raises(IdxFormatError, match=r"shape \(28, 27\), expected \(28, 28\)"):
        load_image_dataset("mnist", "test")


def test_load_rejects_count_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.zeros(3, 28, 28, dtype=torch.uint8)
    make_fake_mnist_mirror(tmp_path, monkeypatch, images, torch.zeros(2, dtype=torch.uint8))
    with pytest.raises(IdxFormatError, match="3 images but .* 2 labels"):
        load_image_dataset("mnist", "test")


def test_load_fake_mnist_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    images = torch.randint(0, 256, (5, 28, 28), dtype=torch.uint8)
    labels = torch.tensor([0, 9, 3, 3, 7], dtype=torch.uint8)
    make_fake_mnist_mirror(tmp_path, monkeypatch, images, labels)
    dataset = load_image_dataset("mnist", "test")
    assert torch.equal(dataset.images, images)
    assert dataset.labels.tolist() == [0, 9, 3, 3, 7]


def test_digits_offline_shapes_and_range() -> None:
    train = load_image_dataset("digits-offline", "train")
    test = load_image_dataset("digits-offline", "test")
    assert train.images.shape == (1437, 28, 28)
    assert test.images.shape == (360, 28, 28)
    assert train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64
    assert int(train.images.max()) == 255
    assert int(train.images.min()) == 0
    assert train.class_names == MNIST_CLASSES
    assert train.name == "digits-offline"


def test_digits_offline_padding_border() -> None:
    images = load_image_dataset("digits-offline", "test").images
    assert int(images[:, :4, :].max()) == 0
    assert int(images[:, -4:, :].max()) == 0
    assert int(images[:, :, :4].max()) == 0
    assert int(images[:, :, -4:].max()) == 0


def test_digits_offline_deterministic_stratified() -> None:
    first = load_image_dataset("digits-offline", "train")
    second = load_image_dataset("digits-offline", "train")
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    test_counts = torch.bincount(load_image_dataset("digits-offline", "test").labels)
    assert int(test_counts.min()) >= 35
    assert int(test_counts.max()) <= 37


def test_subset_stratified_counts(mnist_test: ImageDataset) -> None:
    subset = mnist_test.subset(1000, seed=3)
    quotas = torch.tensor(MNIST_TEST_COUNTS, dtype=torch.float64) * 1000 / 10000
    counts = torch.bincount(subset.labels, minlength=10).to(torch.float64)
    assert len(subset) == 1000
    assert torch.all((counts - quotas).abs() < 1)
    assert subset.class_names == mnist_test.class_names


def test_subset_deterministic(mnist_test: ImageDataset) -> None:
    first = mnist_test.subset(200, seed=7)
    second = mnist_test.subset(200, seed=7)
    other = mnist_test.subset(200, seed=8)
    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)
    assert not torch.equal(first.images, other.images)


def test_subset_random_draw(mnist_test: ImageDataset) -> None:
    subset = mnist_test.subset(50, seed=0, stratified=False)
    assert len(subset) == 50
    assert torch.equal(subset.images, mnist_test.subset(50, seed=0, stratified=False).images)


@pytest.mark.parametrize("size", [0, -1, 10001, 2.5])
def test_subset_invalid_size(mnist_test: ImageDataset, size: object) -> None:
    with pytest.raises(ValueError, match="from 1 to 10000"):
        mnist_test.subset(size)  # type: ignore[arg-type]


def test_image_dataset_rejects_bad_labels() -> None:
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError, match=r"0\.\.9"):
        ImageDataset(images, torch.tensor([0, 10]), MNIST_CLASSES, "toy")
    with pytest.raises(ValueError, match="int64"):
        ImageDataset(images, torch.tensor([0, 1], dtype=torch.int32), MNIST_CLASSES, "toy")


def test_to_float_images() -> None:
    images = torch.tensor([[[0, 255], [51, 102]]], dtype=torch.uint8)
    floats = to_float_images(images)
    assert floats.shape == (1, 1, 2, 2)
    assert floats.dtype == torch.float32
    assert torch.allclose(floats[0, 0], torch.tensor([[0.0, 1.0], [0.2, 0.4]]))


@pytest.mark.parametrize(
    "bad",
    [torch.zeros(2, 28, 28), torch.zeros(2, 1, 28, 28, dtype=torch.uint8)],
    ids=["float32", "4-D"],
)
def test_to_float_images_rejects(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="uint8 tensor of shape"):
        to_float_images(bad)


def test_iterate_batches_in_order() -> None:
    data = torch.arange(10).float()
    batches = list(iterate_batches(data, 4, shuffle=False))
    assert [batch.tolist() for batch in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_iterate_batches_shuffle_covers_all() -> None:
    data = torch.arange(103)
    batches = list(iterate_batches(data, 10, shuffle=True))
    seen = torch.cat(batches)
    assert [len(batch) for batch in batches] == [10] * 10 + [3]
    assert sorted(seen.tolist()) == list(range(103))
    assert seen.tolist() != list(range(103))


def test_iterate_batches_seeded_reproducible() -> None:
    data = torch.arange(50)

    def order(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return torch.cat(list(iterate_batches(data, 8, shuffle=True, generator=generator))).tolist()

    assert order(1) == order(1)
    assert order(1) != order(2)


def test_iterate_batches_labels_stay_paired() -> None:
    images = torch.arange(20).float().reshape(20, 1) * 10
    labels = torch.arange(20)
    for image_batch, label_batch in iterate_batches(images, 6, shuffle=True, labels=labels):
        assert torch.equal(image_batch[:, 0], label_batch.float() * 10)


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_iterate_batches_rejects_batch_size(batch_size: object) -> None:
    # Raised at the call, before any batch is requested.
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        iterate_batches(torch.zeros(4), batch_size, shuffle=False)  # type: ignore[arg-type]


def test_iterate_batches_rejects_label_count() -> None:
    with pytest.raises(ValueError, match="3 labels for 4 images"):
        iterate_batches(torch.zeros(4), 2, shuffle=False, labels=torch.zeros(3))


def test_float_batches_from_real_mnist(mnist_test: ImageDataset) -> None:
    floats = to_float_images(mnist_test.images)
    batch = next(iterate_batches(floats, 256, shuffle=False))
    assert batch.shape == (256, 1, 28, 28)
    assert float(floats.min()) >= 0.0
    assert float(floats.max()) <= 1.0
