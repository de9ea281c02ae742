"""MiraBest_F radio galaxies: checksummed, restricted loading of the pickled batches."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath

import numpy as np
import torch

from r2ska.data.fetch import MirrorChecksumWarning, fetch_file, mirror_dir
from r2ska.data.images import ImageDataset
from r2ska.data.registry import UnknownDatasetError

MIRABEST_TARBALL = "MiraBest/MiraBest_F_batches.tar.gz"
"""Registry path of the official MiraBest_F release."""

MIRABEST_CODES: tuple[str, ...] = (
    "100", "102", "104", "110", "112", "200", "201", "210", "300", "310",
)
"""Three-digit class code of each fine label 0-9; see :class:`MiraBestDataset`."""

MIRABEST_COUNTS: tuple[int, ...] = (339, 49, 9, 191, 3, 432, 4, 195, 19, 15)
"""Images per fine class over all 1256 images, as published with the data set."""

MIRABEST_SUBSETS: tuple[str, ...] = ("fine", "FRFull", "FRConfident", "FRUncertain", "Hybrid")
"""Label schemes accepted by :func:`load_mirabest`."""

# Fine label -> binary label of each standard subset; fine labels not listed are dropped.
# These are the subsets MBFRFull, MBFRConfident, MBFRUncertain and MBHybrid of the
# MiraBest loader that accompanies Porter & Scaife (2023).
_SUBSET_MAPS: dict[str, dict[int, int]] = {
    "FRFull": {0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 1, 6: 1, 7: 1},
    "FRConfident": {0: 0, 1: 0, 2: 0, 5: 1, 6: 1},
    "FRUncertain": {3: 0, 4: 0, 7: 1},
    "Hybrid": {8: 0, 9: 1},
}
_SUBSET_CLASS_NAMES: dict[str, tuple[str, ...]] = {
    "FRFull": ("FRI", "FRII"),
    "FRConfident": ("FRI", "FRII"),
    "FRUncertain": ("FRI", "FRII"),
    "Hybrid": ("confident hybrid", "uncertain hybrid"),
}

# sha256 of each member of the release tarball (folder F_batches/). Every file is
# checked against this table before it is unpickled, because unpickling runs code.
_BATCH_SHA256: dict[str, str] = {
    "data_batch_1": "cfbab80dcff511f45f99efc9478a5769eab61759ae2144abc2bbbb3dbaa5089b",
    "data_batch_2": "45752ef5411eaf00ca11976e6de1df53ffe5554114da3353c53ab14dcca423ec",
    "data_batch_3": "8f52676edf8d2566e052770c326d5c1ff77e9ad333b99adbe793f945b4b94ef7",
    "data_batch_4": "072edea475df5f46f707527058ef0122374c7bbaeff16f41282fdf5ddf7a59fa",
    "data_batch_5": "56a1a791d8f1e1693c9eeb40ebc2de6fc3a1489d630acb7307f0bd0bb7d3f9ab",
    "data_batch_6": "1a848ef6936d8c6ff673fcca463dc9903eb3d808a5cfdc74486445fbe3cf74ca",
    "data_batch_7": "e2e18d9e12d0effa734d73630a2f9a4e4886c75ea0eab9697013cda14877a493",
    "test_batch": "b4d6f9413c38a7f81ac8fa0d957f87908516432e541e57a150e0beb738921624",
    "batches.meta": "e9c050b37f18f8ddde41780d020f1a7f808d2c51b736fa6e50f07c6287dce497",
}
_SPLIT_BATCHES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 8)),
    "test": ("test_batch",),
}
_IMAGE_SIDE = 150

# The only globals the batches reference (checked with pickletools): numpy arrays and
# scalars. Anything else in a pickle is rejected even when its checksum is known.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class UntrustedPickleError(ValueError):
    """Raised instead of unpickling a file whose sha256 is not the published one."""


@dataclass
class MiraBestDataset(ImageDataset):
    """MiraBest_F radio galaxies: FIRST 1.4 GHz images with FR morphology labels.

    The release has 1256 images of 150x150 pixels (1.8 arcsec per pixel), in 7
    training batches of 157 images and the official test batch of 157. Every
    batch has the same class balance. Pixel values are uint8 after the release's
    min-max scaling, so most pixels are exactly 0 (empty sky).
    ``r2ska.radio.prepare_radio_images`` scales them to [0, 1] and resamples them
    for the course's models, and ``r2ska.radio.standardise`` gives zero mean and
    unit variance with training-set statistics.

    Fine classes are three-digit codes, indexed 0-9 as in :data:`MIRABEST_CODES`:

    * first digit: 1 = Fanaroff-Riley class I (FRI), 2 = FRII, 3 = hybrid;
    * second digit: 0 = confident, 1 = uncertain classification;
    * third digit: 0 = standard, 1 = double-double, 2 = wide-angle tail,
      4 = head-tail morphology.

    Counts over all 1256 images (fine labels 0-9): 339, 49, 9, 191, 3, 432, 4,
    195, 19, 15. The binary subsets of :func:`load_mirabest` are ``"FRFull"``
    (FRI 100-112 vs FRII 200-210), ``"FRConfident"`` (100-104 vs 200-201),
    ``"FRUncertain"`` (110-112 vs 210) and ``"Hybrid"`` (300 vs 310). Each subset
    drops the other classes.

    Licence: see the data set's Zenodo record (DOI 10.5281/zenodo.4288837). The
    FIRST images may be reproduced for scholarly, educational and private
    non-commercial use. Cite Porter & Scaife (2023), RAS Techniques and
    Instruments (arXiv:2305.11108); Miraghaei & Best (2017), MNRAS 466, 4346;
    Becker, White & Helfand (1995), ApJ 450, 559.

    Attributes:
        images: uint8 tensor (N, 150, 150).
        labels: int64 tensor (N,) of the subset's labels (fine labels for ``"fine"``).
        class_names: Name of each label.
        name: ``"mirabest-<subset>"``.
        fine_labels: int64 tensor (N,) of fine labels 0-9.
        filenames: Source file name of each image; it encodes the class code,
            RA and Dec in degrees, redshift and angular size in arcsec.
    """

    fine_labels: torch.Tensor = None  # type: ignore[assignment]
    filenames: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fine_labels is None or self.fine_labels.shape != self.labels.shape:
            raise ValueError(
                f"fine_labels must be an int64 tensor of shape {tuple(self.labels.shape)}."
            )
        if len(self.filenames) != len(self.labels):
            raise ValueError(
                f"Expected {len(self.labels)} filenames, got {len(self.filenames)}."
            )

    @property
    def codes(self) -> list[str]:
        """Three-digit class code of each image, for example ``"100"``."""
        return [MIRABEST_CODES[label] for label in self.fine_labels.tolist()]


def load_mirabest(split: str = "train", subset: str = "FRFull") -> MiraBestDataset:
    """Load MiraBest_F images with the labels of one standard subset.

    Each batch file is read from ``R2SKA_DATA_MIRROR/MiraBest/F_batches/`` when
    the mirror has it, else from the release tarball, which is fetched like every
    registered file. Its sha256 is checked before it is unpickled, and the
    unpickler only accepts the numpy types the release uses.

    Args:
        split: ``"train"`` (the 7 training batches, 1099 images before subsetting)
            or ``"test"`` (the official test batch, 157 images).
        subset: One of :data:`MIRABEST_SUBSETS`.

    Returns:
        The images in batch order with subset labels and fine labels.

    Raises:
        UnknownDatasetError: If ``split`` or ``subset`` is not a known name.
        UntrustedPickleError: If a batch file does not have the published sha256.
        DataUnavailableError: If neither the mirror nor a download provides the data.
    """
    if split not in _SPLIT_BATCHES:
        raise UnknownDatasetError(
            f"Unknown MiraBest split {split!r}: use 'train' or 'test'."
        )
    if subset not in MIRABEST_SUBSETS:
        raise UnknownDatasetError(
            f"Unknown MiraBest subset {subset!r}: use one of {MIRABEST_SUBSETS}."
        )

    images, fine, filenames = [], [], []
    for batch_name in _SPLIT_BATCHES[split]:
        batch = _unpickle(batch_name, _read_member(batch_name))
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, _IMAGE_SIDE, _IMAGE_SIDE))
        fine.extend(int(label) for label in batch["labels"])
        filenames.extend(PurePosixPath(str(name)).name for name in batch["filenames"])
    fine_labels = torch.tensor(fine, dtype=torch.int64)
    all_images = torch.from_numpy(np.concatenate(images))

    if subset == "fine":
        return MiraBestDataset(all_images, fine_labels, MIRABEST_CODES, "mirabest-fine",
                               fine_labels=fine_labels, filenames=tuple(filenames))
    mapping = _SUBSET_MAPS[subset]
    keep = torch.tensor([label in mapping for label in fine], dtype=torch.bool)
    labels = torch.tensor([mapping[label] for label in fine if label in mapping], dtype=torch.int64)
    return MiraBestDataset(
        all_images[keep], labels, _SUBSET_CLASS_NAMES[subset], f"mirabest-{subset}",
        fine_labels=fine_labels[keep],
        filenames=tuple(name for name, k in zip(filenames, keep.tolist()) if k),
    )


def _read_member(name: str) -> bytes:
    """Return the bytes of one F_batches file, from the mirror's extracted copy or the tarball."""
    mirror = mirror_dir()
    if mirror is not None:
        extracted = mirror / "MiraBest" / "F_batches" / name
        if extracted.is_file():
            data = extracted.read_bytes()
            if hashlib.sha256(data).hexdigest() == _BATCH_SHA256[name]:
                return data
            warnings.warn(
                f"Mirror copy {str(extracted)!r} failed its checksum, so it is read from "
                f"{MIRABEST_TARBALL!r} instead. Replace or delete the mirror copy to "
                "silence this warning.",
                MirrorChecksumWarning,
                stacklevel=4,
            )

    with tarfile.open(fetch_file(MIRABEST_TARBALL), "r:gz") as archive:
        member = archive.extractfile(f"F_batches/{name}")
        if member is None:
            raise UntrustedPickleError(
                f"F_batches/{name} in {MIRABEST_TARBALL!r} is not a regular file: "
                "delete the cached tarball so that it is downloaded again."
            )
        return member.read()


def _unpickle(name: str, data: bytes) -> dict:
    """Unpickle one verified batch with an unpickler restricted to numpy types."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != _BATCH_SHA256[name]:
        raise UntrustedPickleError(
            f"MiraBest file {name!r} has sha256 {actual}, expected {_BATCH_SHA256[name]}; "
            "it was not unpickled, because unpickling runs code. Delete the file (mirror "
            "or cache copy) so that the official release is fetched again."
        )
    return _RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(
                f"Global {module}.{name} is not allowed in a MiraBest batch."
            )
        # numpy 2 renamed numpy.core to numpy._core; pickles from numpy 1 name the old module.
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)
