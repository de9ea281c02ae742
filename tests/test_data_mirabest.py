"""Tests for the MiraBest_F loader on the real release in the data mirror."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch

from r2ska.data import (
    MIRABEST_CODES,
    MIRABEST_COUNTS,
    MirrorChecksumWarning,
    UnknownDatasetError,
    UntrustedPickleError,
    load_mirabest,
)
from r2ska.data import mirabest

# Per fine class in the official test batch, as published with the data set.
TEST_BATCH_COUNTS = [42, 6, 1, 24, 1, 54, 1, 24, 2, 2]


@pytest.fixture(scope="module")
def fine_train(mirror_dir: Path) -> mirabest.MiraBestDataset:
    return load_mirabest("train", "fine")


@pytest.fixture(scope="module")
def fine_test(mirror_dir: Path) -> mirabest.MiraBestDataset:
    return load_mirabest("test", "fine")


def test_shapes_and_dtype(fine_train, fine_test):
    assert fine_train.images.shape == (1099, 150, 150)
    assert fine_test.images.shape == (157, 150, 150)
    assert fine_train.images.dtype == torch.uint8
    assert fine_train.class_names == MIRABEST_CODES


def test_class_counts_match_publication(fine_train, fine_test):
    all_labels = torch.cat([fine_train.labels, fine_test.labels])
    assert torch.bincount(all_labels, minlength=10).tolist() == list(MIRABEST_COUNTS)
    assert torch.bincount(fine_test.labels, minlength=10).tolist() == TEST_BATCH_COUNTS


def test_filenames_carry_class_code(fine_train):
    for name, code in zip(fine_train.filenames, fine_train.codes):
        assert name.startswith(code + "_"), name


def test_images_mostly_empty_sky(fine_train):
    zero_fraction = (fine_train.images == 0).double().mean().item()
    assert zero_fraction > 0.95
    assert int(fine_train.images.max()) == 255


@pytest.mark.parametrize(
    ("subset", "fine_to_binary"),
    [
        ("FRFull", {0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 1, 7: 1}),
        ("FRConfident", {0: 0, 1: 0, 2: 0, 5: 1, 6: 1}),
        ("FRUncertain", {3: 0, 4: 0, 7: 1}),
        ("Hybrid", {8: 0, 9: 1}),
    ],
)
def test_binary_subsets(mirror_dir, subset, fine_to_binary):
    for split in ("train", "test"):
        data = load_mirabest(split, subset)
        fine = load_mirabest(split, "fine")
        expected_size = sum(int((fine.labels == k).sum()) for k in fine_to_binary)
        assert len(data) == expected_size
        for fine_label, label in zip(data.fine_labels.tolist(), data.labels.tolist()):
            assert fine_to_binary[fine_label] == label
        assert len(data.filenames) == len(data)


def test_confident_test_set_size(mirror_dir):
    data = load_mirabest("test", "FRConfident")
    assert torch.bincount(data.labels).tolist() == [49, 55]


def test_tarball_gives_same_data(tmp_path, monkeypatch, mirror_dir, fine_test):
    only_tarball = tmp_path / "mirror"
    (only_tarball / "MiraBest").mkdir(parents=True)
    shutil.copy(mirror_dir / mirabest.MIRABEST_TARBALL, only_tarball / mirabest.MIRABEST_TARBALL)
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(only_tarball))
    from_tarball = load_mirabest("test", "fine")
    assert torch.equal(from_tarball.images, fine_test.images)
    assert torch.equal(from_tarball.labels, fine_test.labels)


def test_tampered_mirror_copy_is_not_unpickled(tmp_path, monkeypatch, mirror_dir, fine_test):
    fake = tmp_path / "mirror"
    shutil.copytree(mirror_dir / "MiraBest", fake / "MiraBest")
    tampered = fake / "MiraBest" / "F_batches" / "test_batch"
    data = bytearray(tampered.read_bytes())
    data[-10] ^= 0xFF
    tampered.write_bytes(bytes(data))
    monkeypatch.setenv("R2SKA_DATA_MIRROR", str(fake))
    with pytest.warns(MirrorChecksumWarning, match="test_batch"):
        loaded = load_mirabest("test", "fine")
    assert torch.equal(loaded.images, fine_test.images)


class _Payload:
    """Pickles to a call of exec() that writes a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('ran')",))


def test_unknown_checksum_rejected_before_unpickling(tmp_path):
    marker = tmp_path / "ran.txt"
    payload = pickle.dumps({"data": _Payload(marker)})
    with pytest.raises(UntrustedPickleError, match="test_batch.*sha256"):
        mirabest._unpickle("test_batch", payload)
    assert not marker.exists()


def test_restricted_unpickler_rejects_other_globals(tmp_path):
    import io

    marker = tmp_path / "ran.txt"
    payload = pickle.dumps(_Payload(marker))
    with pytest.raises(pickle.UnpicklingError, match="builtins.exec"):
        mirabest._RestrictedUnpickler(io.BytesIO(payload)).load()
    assert not marker.exists()


@pytest.mark.parametrize(("split", "subset"), [("valid", "FRFull"), ("train", "FR")])
def test_unknown_names_rejected(split, subset):
    with pytest.raises(UnknownDatasetError, match="Unknown MiraBest"):
        load_mirabest(split, subset)
