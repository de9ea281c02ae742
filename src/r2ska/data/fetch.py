"""Checksummed access to data files: local mirror first, then a cached download."""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path, PurePosixPath
from typing import Any

import platformdirs
import pooch
import requests

from r2ska.data.registry import RemoteFile, get_file

MIRROR_ENV = "R2SKA_DATA_MIRROR"
"""Environment variable naming a read-only folder laid out like the data root."""

CACHE_ENV = "R2SKA_CACHE"
"""Environment variable naming the download cache folder."""

_CHUNK_BYTES = 1 << 20


class DataUnavailableError(FileNotFoundError):
    """Raised when a file is neither in the mirror nor downloadable."""


class ChecksumMismatchError(ValueError):
    """Raised when a downloaded file's sha256 differs from the registered one."""


class MirrorNotFoundError(FileNotFoundError):
    """Raised when R2SKA_DATA_MIRROR is set but does not name an existing folder."""


class MirrorChecksumWarning(UserWarning):
    """Warned when a mirror copy fails its checksum and the file is downloaded instead."""


def cache_dir() -> Path:
    """Return the download cache folder.

    Returns:
        The folder named by ``R2SKA_CACHE`` when it is set and not empty, else
        ``platformdirs.user_cache_dir("r2ska")``. The folder may not exist yet.
    """
    value = os.environ.get(CACHE_ENV)
    if value:
        return Path(value).expanduser()
    return Path(platformdirs.user_cache_dir("r2ska"))


def mirror_dir() -> Path | None:
    """Return the local data mirror folder, if one is configured.

    Returns:
        The folder named by ``R2SKA_DATA_MIRROR``, or None when the variable is
        unset or empty.

    Raises:
        MirrorNotFoundError: If the variable is set but names no existing folder.
    """
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise MirrorNotFoundError(
            f"{MIRROR_ENV}={value!r} is not an existing folder: set it to a folder "
            "laid out like the data root (for example MNIST/raw/...), or unset it to "
            "download files into the cache."
        )
    return folder


def fetch_file(path: str | RemoteFile) -> Path:
    """Find or download a data file and return the path of a verified local copy.

    The file comes from the first of these that works:

    1. ``R2SKA_DATA_MIRROR``: the mirror file at the same relative path, used in
       place and never written to. A copy with the wrong checksum is skipped
       with a :class:`MirrorChecksumWarning`.
    2. The cache folder (:func:`cache_dir`), downloading the file with pooch when
       it is missing or its checksum does not match.

    Args:
        path: Registered path such as ``"MNIST/raw/train-images-idx3-ubyte.gz"``,
            or a :class:`RemoteFile`, which need not be registered.

    Returns:
        Path to the verified file.

    Raises:
        UnknownFileError: If ``path`` is a string that is not registered.
        MirrorNotFoundError: If ``R2SKA_DATA_MIRROR`` is set but is not a folder.
        DataUnavailableError: If the file is not in the mirror and the download
            fails (no network, HTTP error).
        ChecksumMismatchError: If the downloaded file has the wrong sha256.
    """
    remote = path if isinstance(path, RemoteFile) else get_file(path)

    mirror = mirror_dir()
    if mirror is not None:
        mirror_copy = _mirror_copy(mirror, remote)
        if mirror_copy is not None:
            return mirror_copy

    return _download(remote, mirror)


def _mirror_copy(mirror: Path, remote: RemoteFile) -> Path | None:
    """Return the mirror's copy of ``remote`` if it exists and matches its sha256."""
    candidate = mirror.joinpath(*PurePosixPath(remote.path).parts)
    if not candidate.is_file():
        return None
    actual = _sha256(candidate)
    if actual == remote.sha256:
        return candidate
    warnings.warn(
        f"Mirror copy {str(candidate)!r} failed its checksum (expected sha256 "
        f"{remote.sha256}, got {actual}), so {remote.path!r} is downloaded into the cache "
        "instead. Replace or delete the mirror copy to silence this warning.",
        MirrorChecksumWarning,
        stacklevel=3,
    )
    return None


def _download(remote: RemoteFile, mirror: Path | None) -> Path:
    """Download ``remote`` into the cache, or reuse a cached copy with the right hash."""
    relative = PurePosixPath(remote.path)
    folder = cache_dir().joinpath(*relative.parent.parts)
    downloader = _HashRecordingDownloader()
    try:
        local = pooch.retrieve(
            remote.url,
            known_hash=f"sha256:{remote.sha256}",
            path=folder,
            fname=relative.name,
            progressbar=False,
            downloader=downloader,
        )
    except requests.RequestException as error:
        raise DataUnavailableError(_unavailable_message(remote, mirror, error)) from error
    except ValueError as error:
        # pooch raises a plain ValueError on a hash mismatch and deletes the download.
        if downloader.sha256 is None or downloader.sha256 == remote.sha256:
            raise
        raise ChecksumMismatchError(
            f"Download of {remote.url} has the wrong checksum: expected sha256 "
            f"{remote.sha256}, got {downloader.sha256}. The download was deleted. "
            "Try again later. If it persists, the upstream file has changed: put a copy "
            f"with the expected checksum at {remote.path!r} in a folder named by {MIRROR_ENV}."
        ) from error
    return Path(local)


def _unavailable_message(remote: RemoteFile, mirror: Path | None, error: Exception) -> str:
    if mirror is None:
        mirror_note = f"{MIRROR_ENV} is not set"
    else:
        mirror_note = f"the mirror {str(mirror)!r} has no valid copy"
    return (
        f"Data file {remote.path!r} of dataset {remote.dataset!r} is not available: "
        f"{mirror_note}, and the download from {remote.url} failed "
        f"({type(error).__name__}: {error}). Fix: connect to the internet and try "
        f"again, or set {MIRROR_ENV} to a folder that holds the file at the relative "
        f"path {remote.path!r}."
    )


class _HashRecordingDownloader:
    """pooch HTTP downloader that keeps the sha256 of what arrived, for error messages."""

    def __init__(self) -> None:
        self._inner = pooch.HTTPDownloader(progressbar=False)
        self.sha256: str | None = None

    def __call__(
        self, url: str, output_file: Any, pooch_instance: Any, check_only: bool = False
    ) -> Any:
        result = self._inner(url, output_file, pooch_instance, check_only=check_only)
        if not check_only and isinstance(output_file, (str, os.PathLike)):
            self.sha256 = _sha256(Path(output_file))
        return result


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as stream:
        while chunk := stream.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
