"""Tests for reading and checking chip embeddings, weak land labels, label efficiency and their figures."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

from r2ska import embeddings, geoplot
from r2ska.embeddings import EmbeddingSchemaError

DIM = 8


def chip_frame(n: int = 4, dim: int = DIM, crs: str | None = "OGC:CRS84") -> gpd.GeoDataFrame:
    rng = np.random.default_rng(0)
    vectors = [rng.normal(size=dim).astype(np.float32) for _ in range(n)]
    boxes = [shapely.box(-166.0 + 0.1 * i, 65.0, -165.9 + 0.1 * i, 65.1) for i in range(n)]
    return gpd.GeoDataFrame({"index": np.arange(n), "embeddings": vectors}, geometry=boxes, crs=crs)


def write(frame: gpd.GeoDataFrame, folder: Path, name: str = "chips.gpq") -> Path:
    path = folder / name
    frame.to_parquet(path)
    return path


# read_embeddings on files the tests write


def test_read_valid_file(tmp_path: Path) -> None:
    frame = chip_frame()
    loaded = embeddings.read_embeddings(write(frame, tmp_path), dim=DIM)
    assert loaded.vectors.shape == (4, DIM)
    assert loaded.vectors.dtype == np.float32
    assert loaded.dim == DIM
    assert len(loaded) == 4
    assert "embeddings" not in loaded.chips.columns
    assert loaded.chips.crs.equals("OGC:CRS84")
    np.testing.assert_array_equal(loaded.vectors[2], frame["embeddings"].iloc[2])


def test_read_reprojects_to_crs84(tmp_path: Path) -> None:
    frame = chip_frame().to_crs("EPSG:3338")  # Alaska Albers, in metres
    loaded = embeddings.read_embeddings(write(frame, tmp_path), dim=DIM)
    assert loaded.chips.crs.equals("OGC:CRS84")
    assert loaded.chips.total_bounds[0] == pytest.approx(-166.0, abs=1e-6)


def test_read_rejects_wrong_dimension(tmp_path: Path) -> None:
    path = write(chip_frame(dim=5), tmp_path)
    with pytest.raises(EmbeddingSchemaError, match="length 5.*expected 8"):
        embeddings.read_embeddings(path, dim=DIM)


def test_read_rejects_mixed_lengths(tmp_path: Path) -> None:
    frame = chip_frame()
    frame.at[1, "embeddings"] = np.ones(DIM - 1, dtype=np.float32)
    with pytest.raises(EmbeddingSchemaError, match="row 1"):
        embeddings.read_embeddings(write(frame, tmp_path), dim=None)


def test_read_rejects_nan(tmp_path: Path) -> None:
    frame = chip_frame()
    broken = frame.at[3, "embeddings"].copy()
    broken[0] = np.nan
    frame.at[3, "embeddings"] = broken
    with pytest.raises(EmbeddingSchemaError, match=r"NaN.*\[3\]"):
        embeddings.read_embeddings(write(frame, tmp_path), dim=DIM)


def test_read_rejects_missing_crs(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingSchemaError, match="no CRS"):
        embeddings.read_embeddings(write(chip_frame(crs=None), tmp_path), dim=DIM)


def test_read_rejects_empty_geometry(tmp_path: Path) -> None:
    frame = chip_frame()
    frame.loc[2, "geometry"] = shapely.Polygon()
    with pytest.raises(EmbeddingSchemaError, match=r"rows \[2\]"):
        embeddings.read_embeddings(write(frame, tmp_path), dim=DIM)


def test_read_rejects_plain_parquet(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    pd.DataFrame({"embeddings": list(np.ones((2, DIM), dtype=np.float32))}).to_parquet(path)
    with pytest.raises(EmbeddingSchemaError, match="not a GeoParquet file"):
        embeddings.read_embeddings(path, dim=DIM)


def test_read_rejects_missing_column(tmp_path: Path) -> None:
    path = write(chip_frame().rename(columns={"embeddings": "embedding"}), tmp_path)
    with pytest.raises(EmbeddingSchemaError, match="no column 'embeddings'"):
        embeddings.read_embeddings(path, dim=DIM)
    assert embeddings.read_embeddings(path, column="embedding", dim=DIM).vectors.shape == (4, DIM)


def test_read_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="fetch_file"):
        embeddings.read_embeddings(tmp_path / "absent.gpq")


# Real Clay v0 embeddings from the data mirror


@pytest.fixture(scope="module")
def clay(mirror_dir: Path) -> embeddings.ChipEmbeddings:
    return embeddings.load_clay_v0()


def test_clay_v0_schema(clay: embeddings.ChipEmbeddings) -> None:
    assert clay.vectors.shape == (417, 768)
    assert clay.chips.crs.equals("OGC:CRS84")
    lon_min, lat_min, lon_max, lat_max = clay.chips.total_bounds
    assert -167.2 < lon_min < lon_max < -164.8
    assert 64.8 < lat_min < lat_max < 65.9


def test_clay_v0_labels_cover_all_classes(clay: embeddings.ChipEmbeddings) -> None:
    labels = embeddings.land_cover_labels(embeddings.land_fraction(clay.chips.geometry, grid=6))
    counts = pd.Series(labels).value_counts()
    assert set(counts.index) == set(embeddings.LAND_CLASSES)
    assert counts["land"] > counts["water"] > 0


# Vectors and normalisation


def test_check_vectors_dimension() -> None:
    with pytest.raises(EmbeddingSchemaError, match="dimension 3, expected 4"):
        embeddings.check_vectors(np.ones((2, 3)), dim=4)


def test_check_vectors_shape() -> None:
    with pytest.raises(EmbeddingSchemaError, match=r"2-D array \(N, D\), got shape \(3,\)"):
        embeddings.check_vectors(np.ones(3))


def test_l2_normalise_unit_rows() -> None:
    vectors = np.array([[3.0, 4.0], [0.0, -2.0]])
    normalised = embeddings.l2_normalise(vectors)
    np.testing.assert_allclose(normalised, [[0.6, 0.8], [0.0, -1.0]], rtol=1e-6)
    assert normalised.dtype == np.float32


def test_l2_normalise_rejects_zero_row() -> None:
    with pytest.raises(EmbeddingSchemaError, match=r"Rows \[1\] are all zeros"):
        embeddings.l2_normalise(np.array([[1.0, 0.0], [0.0, 0.0]]))


def test_project_embeddings_pca_shape() -> None:
    vectors = np.random.default_rng(0).normal(size=(20, DIM))
    assert embeddings.project_embeddings(vectors, method="pca").shape == (20, 2)


# Weak labels


def test_land_fraction_known_places() -> None:
    inland = shapely.box(-100.0, 40.0, -99.5, 40.5)  # Kansas
    ocean = shapely.box(-150.0, 0.0, -149.5, 0.5)  # central Pacific
    half = shapely.box(-150.0, 0.0, -99.5, 40.5)  # spans both, mostly ocean
    fractions = embeddings.land_fraction([inland, ocean, half], grid=8)
    assert fractions[0] == 1.0
    assert fractions[1] == 0.0
    assert 0.0 < fractions[2] < 1.0


def test_land_fraction_rejects_small_grid() -> None:
    with pytest.raises(ValueError, match="grid must be an integer >= 2"):
        embeddings.land_fraction([shapely.box(0, 0, 1, 1)], grid=1)


def test_land_cover_labels_thresholds() -> None:
    labels = embeddings.land_cover_labels([0.0, 0.1, 0.11, 0.5, 0.89, 0.9, 1.0])
    assert labels.tolist() == ["water", "water", "coast", "coast", "coast", "land", "land"]


def test_land_cover_labels_rejects_bad_thresholds() -> None:
    with pytest.raises(ValueError, match="water_max < land_min"):
        embeddings.land_cover_labels([0.5], water_max=0.6, land_min=0.4)


def test_land_cover_labels_rejects_bad_fraction() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        embeddings.land_cover_labels([1.5])


# Label efficiency


def test_label_efficiency_table() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b"], 30)
    features = rng.normal(size=(60, 3)) + (labels == "b")[:, None] * 4.0
    table = embeddings.label_efficiency(
        {"logistic": LogisticRegression(), "majority": DummyClassifier()},
        features,
        labels,
        train_sizes=[2, 10],
        n_repeats=2,
    )
    assert len(table) == 2 * 2 * 2
    assert set(table.columns) == {"model", "train_size", "repeat", "score"}
    mean = table.groupby("model")["score"].mean()
    assert mean["logistic"] > 0.9
    assert mean["majority"] == pytest.approx(0.5)


def test_label_efficiency_balanced_scoring() -> None:
    labels = np.array(["a"] * 45 + ["b"] * 15)
    table = embeddings.label_efficiency(
        {"majority": DummyClassifier()}, np.zeros((60, 2)), labels, train_sizes=[10], scoring="balanced_accuracy"
    )
    assert table["score"].tolist() == pytest.approx([0.5] * 5)


def test_label_efficiency_rejects_too_few() -> None:
    labels = np.repeat(["a", "b", "c"], 10)
    with pytest.raises(ValueError, match="train size 2 must lie in"):
        embeddings.label_efficiency({"m": DummyClassifier()}, np.zeros((30, 2)), labels, train_sizes=[2])


# Figures for chapter 2 (r2ska.geoplot)


def test_class_colours_order() -> None:
    colours = geoplot.class_colours(["land", "cloud", "water", "coast", "land"])
    assert list(colours) == ["water", "coast", "land", "cloud"]
    assert colours["water"] == geoplot.CLASS_COLOURS["water"]


def test_footprint_maps_panels() -> None:
    footprints = chip_frame().geometry
    figure = geoplot.footprint_maps(footprints, {"label": ["water", "land"] * 2, "predicted": ["land"] * 4})
    assert [ax.get_title() for ax in figure.axes] == ["label", "predicted"]
    assert figure.axes[0].get_ylabel() == "latitude (°)"


def test_footprint_maps_rejects_short_panel() -> None:
    with pytest.raises(ValueError, match="Panel 'label' has 3 labels, expected one per footprint"):
        geoplot.footprint_maps(chip_frame().geometry, {"label": ["land"] * 3})


def test_embedding_scatter_legend() -> None:
    figure = geoplot.embedding_scatter(np.zeros((3, 2)), ["land", "water", "land"], title="map")
    legend = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert legend == ["water (1)", "land (2)"]


def test_embedding_scatter_rejects_shape() -> None:
    with pytest.raises(ValueError, match="one label per point"):
        geoplot.embedding_scatter(np.zeros((3, 3)), ["land"] * 3)


def test_plot_label_efficiency_lines() -> None:
    table = pd.DataFrame(
        {"model": ["a", "a", "b", "b"], "train_size": [5, 10, 5, 10], "repeat": 0, "score": [0.5, 0.6, 0.7, 0.8]}
    )
    figure = geoplot.plot_label_efficiency(table, baseline=0.3, score_name="balanced accuracy")
    ax = figure.axes[0]
    assert ax.get_ylabel() == "balanced accuracy"
    assert [text.get_text() for text in ax.get_legend().get_texts()] == ["majority class", "a", "b"]


def test_score_predictions_matches_sklearn():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

    labels = np.array(["water", "land", "land", "coast", "land", "water"])
    predicted = np.array(["water", "land", "coast", "coast", "land", "land"])
    table = embeddings.score_predictions(labels, {"probe": predicted}, embeddings.LAND_CLASSES)

    assert table.loc["probe", "accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert table.loc["probe", "balanced accuracy"] == pytest.approx(
        balanced_accuracy_score(labels, predicted)
    )
    assert table.loc["probe", "macro F1"] == pytest.approx(f1_score(labels, predicted, average="macro"))
    assert table.loc["probe", "F1 coast"] == pytest.approx(
        f1_score(labels, predicted, labels=["coast"], average="macro")
    )


def test_score_predictions_class_never_predicted():
    labels = np.array(["water", "land", "coast"])
    table = embeddings.score_predictions(labels, {"all land": np.array(["land"] * 3)}, embeddings.LAND_CLASSES)
    assert table.loc["all land", "F1 water"] == 0.0


def test_median_pairwise_cosine_closed_form():
    vectors = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 3.0]])
    # Pairs: (1,2) -> 0, (1,3) -> cos 45 deg, (2,3) -> cos 45 deg.
    assert embeddings.median_pairwise_cosine(vectors) == pytest.approx(np.sqrt(0.5))
