"""Tests for r2ska.data.registry against the real files of the data mirror."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path, PurePosixPath

import pytest

from r2ska.data import (
    DATASET_NAMES,
    REGISTRY,
    RemoteFile,
    UnknownDatasetError,
    UnknownFileError,
    files_for,
    get_file,
)

# Files in the mirror that the registry leaves out on purpose: the raw FITS samples
# and the extracted MiraBest batches (the registry contains their tarball instead).
UNREGISTERED_PREFIXES = ("MiraBest/FITS_sample/", "MiraBest/F_batches/")
UNREGISTERED_FILES = {"clay_embeddings_v0/03WVN_20220610_20220610_v001_metadata.json"}

EXPECTED_COUNTS = {
    "mnist": 4,
    "fashion-mnist": 4,
    "mirabest": 1,
    "clay-v0-embeddings": 1,
    "sen1floods11-sample": 4,
}


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_checksum_list(mirror: Path) -> dict[str, str]:
    """Parse the mirror's SHA256SUMS into {relative path: sha256}."""
    sums = {}
    for line in (mirror / "SHA256SUMS").read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            sums[PurePosixPath(name.strip()).as_posix()] = digest
    return sums


def test_registered_paths_exist_in_mirror(mirror_dir: Path) -> None:
    missing = [path for path in REGISTRY if not (mirror_dir / path).is_file()]
    assert missing == []


@pytest.mark.parametrize("path", sorted(REGISTRY))
def test_registry_sha256_matches_mirror_file(mirror_dir: Path, path: str) -> None:
    assert REGISTRY[path].sha256 == sha256_of(mirror_dir / path)


def test_registry_covers_checksum_list(mirror_dir: Path) -> None:
    listed = read_checksum_list(mirror_dir)
    expected = {
        path
        for path in listed
        if not path.startswith(UNREGISTERED_PREFIXES) and path not in UNREGISTERED_FILES
    }
    assert set(REGISTRY) == expected
    for path, remote in REGISTRY.items():
        assert remote.sha256 == listed[path], path


def test_registry_keys_match_entry_paths() -> None:
    for key, remote in REGISTRY.items():
        assert key == remote.path


@pytest.mark.parametrize("remote", list(REGISTRY.values()), ids=lambda remote: remote.path)
def test_registry_entry_fields(remote: RemoteFile) -> None:
    assert remote.url.startswith(("https://", "http://"))
    assert remote.url.endswith("/" + remote.name)
    assert remote.dataset in DATASET_NAMES
    assert remote.licence.strip()
    assert remote.citation.strip()


def test_registry_upstream_hosts() -> None:
    assert get_file("MNIST/raw/t10k-labels-idx1-ubyte.gz").url == (
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz"
    )
    assert get_file("FashionMNIST/raw/train-images-idx3-ubyte.gz").url == (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz"
    )
    s1 = get_file(
        "sen1floods11_sample/v1.1/data/flood_events/HandLabeled/S1Hand/Spain_7370579_S1Hand.tif"
    )
    assert s1.url.endswith("/sample/S1/Spain_7370579_S1Hand.tif")


def test_fashion_mnist_licence_is_mit() -> None:
    for remote in files_for("fashion-mnist"):
        assert "MIT" in remote.licence
        assert "1708.07747" in remote.citation


@pytest.mark.parametrize("dataset", sorted(EXPECTED_COUNTS))
def test_files_for_counts(dataset: str) -> None:
    files = files_for(dataset)
    assert len(files) == EXPECTED_COUNTS[dataset]
    assert all(remote.dataset == dataset for remote in files)


def test_files_for_unknown_dataset() -> None:
    with pytest.raises(UnknownDatasetError, match="'cifar10'.*mnist") as info:
        files_for("cifar10")
    assert isinstance(info.value, ValueError)


def test_get_file_accepts_dot_prefix() -> None:
    path = "MNIST/raw/train-labels-idx1-ubyte.gz"
    assert get_file("./" + path) is REGISTRY[path]


def test_get_file_unknown_lists_close_paths() -> None:
    with pytest.raises(UnknownFileError) as info:
        get_file("MNIST/raw/train-images-idx3-ubyte")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "'MNIST/raw/train-images-idx3-ubyte'" in message
    assert "MNIST/raw/train-images-idx3-ubyte.gz" in message


def test_get_file_wrong_folder_suggests_by_name() -> None:
    with pytest.raises(UnknownFileError, match="sen1floods11_sample/Sen1Floods11_Metadata"):
        get_file("some/other/folder/Sen1Floods11_Metadata.geojson")


def test_get_file_unrelated_path_names_datasets() -> None:
    with pytest.raises(UnknownFileError, match="files_for"):
        get_file("zzz")


def test_remote_file_is_frozen() -> None:
    remote = next(iter(REGISTRY.values()))
    with pytest.raises(dataclasses.FrozenInstanceError):
        remote.url = "http://127.0.0.1/"  # type: ignore[misc]


@pytest.mark.parametrize("path", ["/abs/file.bin", "../up/file.bin", "", "a\\b.bin"])
def test_remote_file_rejects_bad_path(path: str) -> None:
    with pytest.raises(ValueError, match="relative POSIX path"):
        RemoteFile(path, "http://127.0.0.1/x", "0" * 64, "toy", "", "")


def test_remote_file_rejects_bad_sha256() -> None:
    with pytest.raises(ValueError, match="sha256"):
        RemoteFile("toy/file.bin", "http://127.0.0.1/x", "ABC", "toy", "", "")
