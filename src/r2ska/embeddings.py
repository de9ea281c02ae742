"""Precomputed chip embeddings: loading and checking GeoParquet files, normalising, weak labels and probes."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.base import ClassifierMixin, clone
from sklearn.metrics import classification_report, get_scorer
from sklearn.model_selection import StratifiedShuffleSplit

if TYPE_CHECKING:
    import geopandas as gpd
    import shapely

CLAY_V0_FILE = "clay_embeddings_v0/03WVN_20220610_20220610_v001.gpq"
"""Registered path of the Clay v0.1 embeddings of Sentinel-2 tile 03WVN (Seward Peninsula, Alaska)."""

CLAY_V0_DIM = 768

LAND_CLASSES = ("water", "coast", "land")
"""Weak label names, from the least to the most land."""

# A chip whose footprint is at most 10 % land counts as water, at least 90 % land as
# land, anything between as coast. The margins absorb the mask's coarse shoreline
# (see land_fraction) so that one misplaced grid point does not flip a label.
WATER_MAX_LAND_FRACTION = 0.1
LAND_MIN_LAND_FRACTION = 0.9


def _geo_module(name: str) -> ModuleType:
    """Import a package of the ``geo`` extra, which the vector-only functions here do not need."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"{name} is missing: install the geo extra with `pip install r2ska[geo]` to read "
            "footprints and compute land fractions."
        ) from error


class EmbeddingSchemaError(ValueError):
    """An embeddings file or array does not have the expected columns, shape, CRS or values."""


@dataclass
class ChipEmbeddings:
    """Embedding vectors of image chips with their footprints.

    Attributes:
        chips: One row per chip with the file's other columns and a ``geometry``
            column of footprint polygons in OGC:CRS84 (longitude, latitude).
        vectors: Embeddings, float32 array (N, D), row ``i`` for ``chips.iloc[i]``.
    """

    chips: gpd.GeoDataFrame
    vectors: np.ndarray

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        """Embedding dimension D."""
        return int(self.vectors.shape[1])


def read_embeddings(
    path: str | Path,
    *,
    column: str = "embeddings",
    dim: int | None = CLAY_V0_DIM,
) -> ChipEmbeddings:
    """Read a GeoParquet file of chip embeddings and check its schema.

    The footprints are reprojected to OGC:CRS84 when the file has another CRS.

    Args:
        path: A GeoParquet file with a list-of-floats column of embeddings and
            a polygon ``geometry`` column.
        column: Name of the embeddings column (``"embeddings"`` in Clay v0 files).
        dim: Expected embedding dimension, or None to accept any.

    Returns:
        The chips without the embeddings column, and the (N, D) float32 vectors.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        EmbeddingSchemaError: If the column is missing, a vector has the wrong
            length or NaN or infinite values, a geometry is missing or empty, or
            the file declares no CRS.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Embeddings file {path} not found: fetch it with r2ska.data.fetch_file.")
    geopandas = _geo_module("geopandas")
    try:
        table = geopandas.read_parquet(path)
    except ValueError as error:
        # geopandas raises ValueError for Parquet files without GeoParquet metadata.
        raise EmbeddingSchemaError(
            f"{path.name} is not a GeoParquet file with a geometry column ({error}): write the "
            "footprints with geopandas.GeoDataFrame.to_parquet."
        ) from error
    if column not in table.columns:
        raise EmbeddingSchemaError(
            f"{path.name} has no column {column!r} (columns: {', '.join(map(str, table.columns))}): "
            "pass the embeddings column name as column=..."
        )

    vectors = _stack_vectors(table[column], dim, source=path.name)
    chips = table.drop(columns=[column])
    return ChipEmbeddings(chips=_checked_footprints(chips, source=path.name), vectors=vectors)


def load_clay_v0() -> ChipEmbeddings:
    """Fetch and read the 417 Clay v0.1 chip embeddings of Sentinel-2 tile 03WVN (chapter 2).

    The file comes from ``r2ska.data.fetch_file`` (the data mirror or the cache).
    Each 768-d vector embeds one Sentinel-2 chip of 2022-06-10 on the Seward
    Peninsula, Alaska. Licence ODC-BY. Cite the Clay Foundation Model and
    Copernicus Sentinel-2.

    Returns:
        The chips and their (417, 768) float32 vectors.
    """
    from r2ska.data import fetch_file

    return read_embeddings(fetch_file(CLAY_V0_FILE), dim=CLAY_V0_DIM)


def check_vectors(vectors: np.ndarray, dim: int | None = None, *, name: str = "vectors") -> np.ndarray:
    """Check that ``vectors`` is a finite (N, D) array and return it as float32.

    Args:
        vectors: Array-like of shape (N, D).
        dim: Expected D, or None to accept any.
        name: Name used in error messages.

    Returns:
        A C-contiguous float32 array (a copy only when a conversion was needed).

    Raises:
        EmbeddingSchemaError: If the shape is not (N, D) with D == ``dim``, or a
            value is NaN or infinite.
    """
    array = np.ascontiguousarray(vectors, dtype=np.float32)
    if array.ndim != 2:
        raise EmbeddingSchemaError(f"{name} must be a 2-D array (N, D), got shape {array.shape}.")
    if dim is not None and array.shape[1] != dim:
        raise EmbeddingSchemaError(
            f"{name} has dimension {array.shape[1]}, expected {dim}: check that the vectors come "
            "from the same model, or pass dim=None to accept any dimension."
        )
    bad_rows = np.flatnonzero(~np.isfinite(array).all(axis=1))
    if bad_rows.size:
        raise EmbeddingSchemaError(
            f"{name} has NaN or infinite values in {bad_rows.size} rows (first: {bad_rows[:5].tolist()}): "
            "drop or recompute those rows."
        )
    return array


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Scale each row to unit Euclidean length, so that dot products are cosine similarities.

    Args:
        vectors: Finite array (N, D).

    Returns:
        A new float32 array (N, D) whose rows have norm 1.

    Raises:
        EmbeddingSchemaError: If a row is all zeros or the array is not finite (N, D).
    """
    array = check_vectors(vectors)
    norms = np.linalg.norm(array, axis=1, keepdims=True)  # (N, 1)
    zero_rows = np.flatnonzero(norms[:, 0] == 0)
    if zero_rows.size:
        raise EmbeddingSchemaError(
            f"Rows {zero_rows[:5].tolist()} are all zeros and have no direction: drop them before normalising."
        )
    return array / norms


def project_embeddings(vectors: np.ndarray, method: str = "umap", seed: int = 0) -> np.ndarray:
    """Normalise embeddings to unit length and project them to 2-D with PCA or UMAP.

    Args:
        vectors: Embeddings (N, D) with N >= 3.
        method: ``"pca"`` or ``"umap"``, as in ``r2ska.latent.project_2d``.
        seed: Random state of the projection.

    Returns:
        Array (N, 2).
    """
    from r2ska.latent import project_2d

    return project_2d(l2_normalise(vectors), method=method, seed=seed)


def land_fraction(footprints: gpd.GeoSeries | Sequence[shapely.Geometry], grid: int = 12) -> np.ndarray:
    """Estimate the share of each footprint on land with the ``global_land_mask`` package.

    Each footprint's bounding box is sampled on a ``grid`` x ``grid`` lattice,
    and the points that fall inside the polygon are looked up in the land mask
    (GLOBE 1 km elevation data, land where the elevation is defined). The
    mask is about 1 km coarse and ignores lakes and rivers narrower than that,
    tidal flats and sea ice, so fractions near a shoreline are rough.

    Args:
        footprints: Polygons in longitude and latitude degrees (OGC:CRS84).
        grid: Sample points along each side of the bounding box, at least 2.

    Returns:
        Float array (N,) of land fractions in [0, 1].

    Raises:
        ValueError: If ``grid`` < 2 or a footprint contains none of its sample points.
    """
    shapely = _geo_module("shapely")
    globe = _geo_module("global_land_mask.globe")

    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an integer >= 2, got {grid!r}: use for example grid=12.")
    steps = np.linspace(0.0, 1.0, grid)
    fractions = []
    for row, polygon in enumerate(footprints):
        x_min, y_min, x_max, y_max = polygon.bounds
        lon, lat = np.meshgrid(x_min + steps * (x_max - x_min), y_min + steps * (y_max - y_min))
        inside = shapely.contains_xy(polygon, lon.ravel(), lat.ravel())
        if not inside.any():
            raise ValueError(f"Footprint {row} contains none of its {grid}x{grid} sample points: raise grid.")
        fractions.append(globe.is_land(lat.ravel()[inside], lon.ravel()[inside]).mean())
    return np.asarray(fractions, dtype=np.float64)


def land_cover_labels(
    fractions: np.ndarray,
    water_max: float = WATER_MAX_LAND_FRACTION,
    land_min: float = LAND_MIN_LAND_FRACTION,
) -> np.ndarray:
    """Bin land fractions into the weak labels ``"water"``, ``"coast"`` and ``"land"``.

    A fraction <= ``water_max`` is water, >= ``land_min`` is land, and anything
    between is coast. These labels come from a static land mask, not from the
    image, so they are wrong where the image disagrees with the mask. Lakes and
    rivers narrower than the mask's grid count as land, and tides, sea ice or
    cloud over the sea do not change the label.

    Args:
        fractions: Land fractions in [0, 1], as from ``land_fraction``.
        water_max: Largest land fraction that counts as water.
        land_min: Smallest land fraction that counts as land.

    Returns:
        String array (N,) of labels from ``LAND_CLASSES``.

    Raises:
        ValueError: If the thresholds are not 0 <= water_max < land_min <= 1,
            or a fraction lies outside [0, 1].
    """
    if not 0.0 <= water_max < land_min <= 1.0:
        raise ValueError(
            f"Thresholds must satisfy 0 <= water_max < land_min <= 1, got water_max={water_max}, "
            f"land_min={land_min}."
        )
    values = np.asarray(fractions, dtype=np.float64)
    if values.size and not (np.all(values >= 0.0) and np.all(values <= 1.0)):
        raise ValueError(
            f"Land fractions must lie in [0, 1], got values from {values.min()} to {values.max()}: "
            "compute them with land_fraction."
        )
    labels = np.full(values.shape, LAND_CLASSES[1], dtype=object)
    labels[values <= water_max] = LAND_CLASSES[0]
    labels[values >= land_min] = LAND_CLASSES[2]
    return labels.astype(str)


def label_efficiency(
    estimators: Mapping[str, ClassifierMixin],
    features: np.ndarray,
    labels: np.ndarray,
    train_sizes: Sequence[int],
    *,
    n_repeats: int = 5,
    test_size: float = 0.3,
    scoring: str = "accuracy",
    seed: int = 0,
) -> pd.DataFrame:
    """Measure a test score against the number of labelled training examples.

    One stratified split holds out ``test_size`` of the data. For each size and
    repeat, a stratified random subset of that many training examples (with at
    least one example of each class) fits a fresh clone of every estimator,
    which is then scored on the held-out set.

    Args:
        estimators: Unfitted scikit-learn classifiers by display name.
        features: Array (N, D).
        labels: Array (N,) of class labels.
        train_sizes: Numbers of labelled examples to try. Each must be at least
            the number of classes and at most the training split's size.
        n_repeats: Random subsets per size.
        test_size: Share of the data held out for scoring.
        scoring: A scikit-learn scorer name, such as ``"accuracy"`` or
            ``"balanced_accuracy"`` (the mean recall over classes, which a
            majority-class guess cannot inflate on imbalanced data).
        seed: Seed of the split and of the subsets.

    Returns:
        A table with columns ``model``, ``train_size``, ``repeat`` and ``score``.

    Raises:
        ValueError: If a train size is out of range or ``scoring`` is unknown.
    """
    scorer = get_scorer(scoring)
    labels = np.asarray(labels)
    split = StratifiedShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
    train_index, test_index = next(split.split(features, labels))
    n_classes = len(np.unique(labels))
    rows = []

    for size in train_sizes:
        if not n_classes <= size <= len(train_index):
            raise ValueError(
                f"train size {size} must lie in [{n_classes}, {len(train_index)}] (the number of classes "
                f"and the training split's size): drop it from train_sizes."
            )
        for repeat in range(n_repeats):
            subset = _stratified_subset(labels[train_index], size, seed=seed + 1000 * repeat + size)
            chosen = train_index[subset]
            for name, estimator in estimators.items():
                model = clone(estimator).fit(features[chosen], labels[chosen])
                score = float(scorer(model, features[test_index], labels[test_index]))
                rows.append({"model": name, "train_size": int(size), "repeat": repeat, "score": score})
    return pd.DataFrame(rows)


def score_predictions(
    labels: np.ndarray, predictions: Mapping[str, np.ndarray], classes: Sequence[str]
) -> pd.DataFrame:
    """Tabulate accuracy, balanced accuracy, macro F1 and per-class F1 per classifier.

    Args:
        labels: True labels (N,).
        predictions: Predicted labels (N,) by classifier name.
        classes: The class labels to report an F1 score for, in column order.

    Returns:
        One row per classifier. Balanced accuracy is the mean per-class recall; a
        class that is never predicted scores 0, not an error.
    """
    rows = {}
    for name, predicted in predictions.items():
        report = classification_report(labels, predicted, output_dict=True, zero_division=0)
        rows[name] = {
            "accuracy": report["accuracy"],
            "balanced accuracy": report["macro avg"]["recall"],
            "macro F1": report["macro avg"]["f1-score"],
            **{f"F1 {label}": report[str(label)]["f1-score"] for label in classes},
        }
    return pd.DataFrame(rows).T


def median_pairwise_cosine(vectors: np.ndarray) -> float:
    """Compute the median cosine similarity over all pairs of distinct rows of ``vectors`` (N, d)."""
    unit = l2_normalise(vectors)
    similarities = unit @ unit.T  # (N, N)
    return float(np.median(similarities[np.triu_indices_from(similarities, k=1)]))


def _stratified_subset(labels: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Pick ``size`` positions with one of each class first, the rest at random."""
    rng = np.random.default_rng(seed)
    firsts = [rng.choice(np.flatnonzero(labels == value)) for value in np.unique(labels)]
    rest = np.setdiff1d(np.arange(len(labels)), firsts)
    extra = rng.choice(rest, size=size - len(firsts), replace=False)
    return np.concatenate([firsts, extra]).astype(int)


def _stack_vectors(values: pd.Series, dim: int | None, source: str) -> np.ndarray:
    """Stack a column of per-row lists into (N, D) float32, checking lengths and values."""
    missing = np.flatnonzero(values.isna().to_numpy())
    if missing.size:
        raise EmbeddingSchemaError(f"{source}: rows {missing[:5].tolist()} have no embedding.")
    lengths = np.array([len(value) for value in values])
    expected = dim
    if expected is None:
        expected = int(lengths[0]) if lengths.size else 0
    wrong = np.flatnonzero(lengths != expected)
    if wrong.size:
        raise EmbeddingSchemaError(
            f"{source}: {wrong.size} embeddings have length {lengths[wrong[0]]} (first at row {wrong[0]}), "
            f"expected {expected}: pass dim=... for another model, or fix the file."
        )
    if not lengths.size:
        return np.zeros((0, expected), dtype=np.float32)
    return check_vectors(np.stack(values.to_numpy()), expected, name=f"{source} embeddings")


def _checked_footprints(chips: gpd.GeoDataFrame, source: str) -> gpd.GeoDataFrame:
    """Check the chips' footprints and return them in OGC:CRS84."""
    if chips.crs is None:
        raise EmbeddingSchemaError(
            f"{source} declares no CRS for its geometry: set one when writing it, for example "
            "gdf.set_crs('OGC:CRS84').to_parquet(path)."
        )
    geometry = chips.geometry
    bad = np.flatnonzero((geometry.isna() | geometry.is_empty).to_numpy())
    if bad.size:
        raise EmbeddingSchemaError(
            f"{source}: rows {bad[:5].tolist()} have a missing or empty geometry: drop them or fix the file."
        )
    if not chips.crs.equals("OGC:CRS84"):
        chips = chips.to_crs("OGC:CRS84")
    return chips.reset_index(drop=True)
