"""Registry of the course's data files: upstream URL, sha256, licence and citation."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

_SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RemoteFile:
    """One downloadable data file and where it comes from.

    Attributes:
        path: POSIX path relative to the data root, laid out like the course data
            mirror, for example ``"MNIST/raw/train-images-idx3-ubyte.gz"``.
        url: Upstream URL that serves the same bytes.
        sha256: Lower-case hex SHA-256 digest of the file.
        dataset: Name of the dataset the file belongs to, for example ``"mnist"``.
        licence: Licence terms as far as they are known.
        citation: Reference to cite when the file is used.
    """

    path: str
    url: str
    sha256: str
    dataset: str
    licence: str
    citation: str

    def __post_init__(self) -> None:
        pure = PurePosixPath(self.path)
        if not self.path or pure.is_absolute() or ".." in pure.parts or "\\" in self.path:
            raise ValueError(
                f"Invalid RemoteFile path {self.path!r}: use a relative POSIX path "
                "such as 'MNIST/raw/train-images-idx3-ubyte.gz'."
            )
        if not _SHA256_PATTERN.fullmatch(self.sha256):
            raise ValueError(
                f"Invalid sha256 {self.sha256!r} for {self.path!r}: use the 64-character "
                "lower-case hex digest that `sha256sum` prints."
            )

    @property
    def name(self) -> str:
        """File name, the last component of ``path``."""
        return PurePosixPath(self.path).name


class UnknownFileError(KeyError):
    """Raised when a path is not in ``REGISTRY``. The message lists similar known paths."""

    def __str__(self) -> str:
        # KeyError's default __str__ shows the repr of its argument, which would
        # quote the whole message; show the message itself.
        return str(self.args[0]) if self.args else ""


class UnknownDatasetError(ValueError):
    """Raised when a dataset name is not one of the known names."""


_MNIST_LICENCE = (
    "No licence stated by the authors (Y. LeCun, C. Cortes, C. J. C. Burges). "
    "Third-party mirrors label it CC BY-SA 3.0 or MIT."
)
_MNIST_CITATION = (
    "LeCun, Y., Bottou, L., Bengio, Y., Haffner, P. (1998). Gradient-based learning "
    "applied to document recognition. Proc. IEEE 86(11):2278-2324."
)
_FASHION_LICENCE = "MIT, (c) 2017 Zalando SE."
_FASHION_CITATION = (
    "Xiao, H., Rasul, K., Vollgraf, R. (2017). Fashion-MNIST: a Novel Image Dataset "
    "for Benchmarking Machine Learning Algorithms. arXiv:1708.07747."
)
_MIRABEST_LICENCE = (
    "Check the dataset's Zenodo record (DOI 10.5281/zenodo.4288837) for its licence. "
    "The underlying FIRST images are granted for scholarly, educational and private "
    "non-commercial use (c) 1994 University of California."
)
_MIRABEST_CITATION = (
    "Porter, F. A. M., Scaife, A. M. M. (2023). MiraBest: a data set of morphologically "
    "classified radio galaxies for machine learning. RAS Techniques and Instruments "
    "(arXiv:2305.11108). Miraghaei, H., Best, P. N. (2017). MNRAS 466, 4346. "
    "Becker, R. H., White, R. L., Helfand, D. J. (1995). ApJ 450, 559 (FIRST)."
)
_CLAY_LICENCE = "ODC-BY."
_CLAY_CITATION = (
    "Clay Foundation Model v0.1 (https://madewithclay.org/). Source imagery: "
    "Copernicus Sentinel-2."
)
_SEN1FLOODS11_LICENCE = (
    "The upstream repository has no LICENSE file. Third parties describe Sen1Floods11 "
    "v1.1 as CC BY 4.0. Derived from Copernicus Sentinel data (free and open)."
)
_SEN1FLOODS11_CITATION = (
    "Bonafilia, D., Tellman, B., Anderson, T., Issenberg, E. (2020). Sen1Floods11: a "
    "georeferenced dataset to train and test deep learning flood algorithms for "
    "Sentinel-1. CVPR Workshops, pp. 210-211."
)

# torchvision's MNIST mirror, because the original site http://yann.lecun.com/exdb/mnist/
# is often unavailable.
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
# Download location given in the Fashion-MNIST README.
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# URL used by the official MiraBest_F loader class.
_MIRABEST_URL = "http://www.jb.man.ac.uk/research/MiraBest/MiraBest_F/"
_CLAY_URL = (
    "https://raw.githubusercontent.com/cloudnativegeo/geo-embeddings-survey/"
    "2c13e22376b652de6203eec0fc132d22e24195b5/data/clay/"
)
# The one sample chip in the Sen1Floods11 repository. The full dataset is in the public
# bucket gs://sen1floods11/v1.1/, under the folder layout of the local paths.
_SEN1FLOODS11_URL = (
    "https://raw.githubusercontent.com/cloudtostreet/Sen1Floods11/"
    "b9e460dabe70230111a3c3d36cd0c5ce03606ee9/"
)
_SEN1FLOODS11_HANDLABELED = "sen1floods11_sample/v1.1/data/flood_events/HandLabeled/"

_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}


def _build_registry() -> dict[str, RemoteFile]:
    files = [
        RemoteFile(f"MNIST/raw/{name}", _MNIST_URL + name, digest, "mnist",
                   _MNIST_LICENCE, _MNIST_CITATION)
        for name, digest in _MNIST_SHA256.items()
    ]
    files += [
        RemoteFile(f"FashionMNIST/raw/{name}", _FASHION_URL + name, digest,
                   "fashion-mnist", _FASHION_LICENCE, _FASHION_CITATION)
        for name, digest in _FASHION_SHA256.items()
    ]
    files.append(RemoteFile(
        "MiraBest/MiraBest_F_batches.tar.gz",
        _MIRABEST_URL + "MiraBest_F_batches.tar.gz",
        "5ad6b8fbe982e4f7ae52d3f88dd2e6cb03de0c4f7c00b00b92608c6e78a5243b",
        "mirabest", _MIRABEST_LICENCE, _MIRABEST_CITATION,
    ))
    files.append(RemoteFile(
        "clay_embeddings_v0/03WVN_20220610_20220610_v001.gpq",
        _CLAY_URL + "03WVN_20220610_20220610_v001.gpq",
        "cf8a19e2eb9753d9547742017bc26f40db5bf7364636a14b5869f07421296f9a",
        "clay-v0-embeddings", _CLAY_LICENCE, _CLAY_CITATION,
    ))

    # (path under the sample folder, path in the upstream repository, sha256)
    sen1floods11 = [
        (_SEN1FLOODS11_HANDLABELED + "S2Hand/Spain_7370579_S2Hand.tif",
         "sample/S2/Spain_7370579_S2Hand.tif",
         "16e997e6a7159fa11160faf00591da763eb37ac82faf806f7fe733991944a048"),
        (_SEN1FLOODS11_HANDLABELED + "S1Hand/Spain_7370579_S1Hand.tif",
         "sample/S1/Spain_7370579_S1Hand.tif",
         "6c24bf791372da5e93450195eac8d676a7ef917884dfb479dafe4a565543b19a"),
        (_SEN1FLOODS11_HANDLABELED + "LabelHand/Spain_7370579_LabelHand.tif",
         "sample/Labels/Spain_7370579_LabelHand.tif",
         "b81224e01540b262faffd82cb42762c3c77df2ba084a5fb82d49bae421dd12d4"),
        ("sen1floods11_sample/Sen1Floods11_Metadata.geojson",
         "Sen1Floods11_Metadata.geojson",
         "29790ad85135d03ebc73af1e582907901e43c3aa411b6f571a8a32ac7f1db536"),
    ]
    files += [
        RemoteFile(path, _SEN1FLOODS11_URL + upstream, digest, "sen1floods11-sample",
                   _SEN1FLOODS11_LICENCE, _SEN1FLOODS11_CITATION)
        for path, upstream, digest in sen1floods11
    ]
    return {remote.path: remote for remote in files}


REGISTRY: dict[str, RemoteFile] = _build_registry()
"""Every registered data file, keyed by its path relative to the data root."""

DATASET_NAMES: tuple[str, ...] = (
    "mnist",
    "fashion-mnist",
    "mirabest",
    "clay-v0-embeddings",
    "sen1floods11-sample",
)
"""Names accepted by :func:`files_for`, in registry order."""


def get_file(path: str) -> RemoteFile:
    """Look up a registered file by its path relative to the data root.

    Args:
        path: POSIX path such as ``"MNIST/raw/train-images-idx3-ubyte.gz"``. A
            leading ``"./"`` is ignored.

    Returns:
        The registry entry for that path.

    Raises:
        UnknownFileError: If the path is not registered. The message lists the
            registered paths that are spelled most like it.
    """
    key = PurePosixPath(path).as_posix() if path else path
    if key in REGISTRY:
        return REGISTRY[key]

    close = difflib.get_close_matches(key, REGISTRY, n=5, cutoff=0.6)
    if not close:
        # Match on the file name alone, for a correct name under the wrong folder.
        file_name = PurePosixPath(key).name
        close = [known for known, remote in REGISTRY.items() if remote.name == file_name]
    if close:
        hint = "Did you mean one of: " + ", ".join(repr(known) for known in close) + "?"
    else:
        hint = f"Use files_for(dataset) with a dataset in {DATASET_NAMES} to list paths."
    raise UnknownFileError(f"Unknown data file {path!r}: it is not in the registry. {hint}")


def files_for(dataset: str) -> list[RemoteFile]:
    """List the registered files of one dataset.

    Args:
        dataset: One of ``DATASET_NAMES``, for example ``"mnist"``.

    Returns:
        The dataset's files in registry order.

    Raises:
        UnknownDatasetError: If ``dataset`` is not a known name.
    """
    if dataset not in DATASET_NAMES:
        raise UnknownDatasetError(
            f"Unknown dataset {dataset!r}: use one of {', '.join(DATASET_NAMES)}."
        )
    return [remote for remote in REGISTRY.values() if remote.dataset == dataset]
