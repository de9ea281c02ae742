"""Tests for exact cosine search and the retrieval k-NN classifier, against brute force and scikit-learn."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from r2ska.embeddings import EmbeddingSchemaError
from r2ska.retrieval import CosineIndex, RetrievalKNNClassifier, faiss_available

BACKENDS = ["numpy", pytest.param("faiss", marks=pytest.mark.skipif(not faiss_available(), reason="faiss missing"))]


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(300, 16)).astype(np.float32)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(25, 16)).astype(np.float32)


def brute_force(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine top-k in float64 with a full stable sort, ties to the lower index."""
    stored = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = unit_queries.astype(np.float64) @ stored.T.astype(np.float64)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


# Search results


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_matches_brute_force(backend: str, vectors: np.ndarray, queries: np.ndarray) -> None:
    scores, indices = CosineIndex(backend=backend).fit(vectors).search(queries, k=7)
    expected_scores, expected_indices = brute_force(vectors, queries, 7)
    assert indices.shape == (25, 7)
    np.testing.assert_array_equal(indices, expected_indices)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_search_matches_sklearn(backend: str, vectors: np.ndarray, queries: np.ndarray) -> None:
    scores, indices = CosineIndex(backend=backend).fit(vectors).search(queries, k=5)
    reference = NearestNeighbors(n_neighbors=5, metric="cosine", algorithm="brute").fit(vectors)
    distances, expected = reference.kneighbors(queries)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_allclose(scores, 1.0 - distances, atol=1e-5)


def test_single_query_returns_rows(vectors: np.ndarray, queries: np.ndarray) -> None:
    index = CosineIndex(backend="numpy").fit(vectors)
    scores, indices = index.search(queries[3], k=4)
    assert scores.shape == (4,)
    np.testing.assert_array_equal(indices, index.search(queries[3:4], k=4)[1][0])


def test_scores_sorted_descending(vectors: np.ndarray, queries: np.ndarray) -> None:
    scores, _ = CosineIndex(backend="numpy").fit(vectors).search(queries, k=20)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_query_batches_agree(vectors: np.ndarray, queries: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    index = CosineIndex(backend="numpy").fit(vectors)
    whole = index.search(queries, k=3)
    monkeypatch.setattr("r2ska.retrieval._MAX_SCORES_PER_BLOCK", 2 * len(vectors))  # 2 queries a block
    parts = index.search(queries, k=3)
    np.testing.assert_array_equal(parts[1], whole[1])


def test_ties_ordered_by_index() -> None:
    # Rows 1, 3, 4 and 6 point the same way as the query, so they tie at score 1.
    vectors = np.array([[0, 1], [1, 0], [0, 1], [2, 0], [3, 0], [1, 1], [5, 0]], dtype=np.float32)
    index = CosineIndex(backend="numpy").fit(vectors)
    scores, indices = index.search(np.array([1.0, 0.0]), k=3)
    assert indices.tolist() == [1, 3, 4]
    np.testing.assert_allclose(scores, 1.0)
    _, all_indices = index.search(np.array([1.0, 0.0]), k=7)
    assert all_indices.tolist() == [1, 3, 4, 6, 5, 0, 2]


def test_ties_in_large_index() -> None:
    # Entries in {-1, 0, 1} make many vectors point the same way, so scores tie exactly,
    # and 4000 vectors with k=5 take the sampled selection path.
    rng = np.random.default_rng(3)
    vectors = rng.integers(-1, 2, size=(4000, 3)).astype(np.float32)
    vectors[np.all(vectors == 0, axis=1)] = 1.0
    queries = rng.integers(-1, 2, size=(6, 3)).astype(np.float32) + 0.5
    index = CosineIndex(backend="numpy").fit(vectors)
    scores, indices = index.search(queries, k=5)

    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    all_scores = unit_queries @ index.vectors_.T  # the same float32 scores
    expected = np.argsort(-all_scores, axis=1, kind="stable")[:, :5]
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(scores, np.take_along_axis(all_scores, expected, axis=1))


def test_k_equal_to_size(vectors: np.ndarray, queries: np.ndarray) -> None:
    _, indices = CosineIndex(backend="numpy").fit(vectors).search(queries, k=len(vectors))
    assert sorted(indices[0].tolist()) == list(range(len(vectors)))


def test_neighbours_of_leaves_self_out(vectors: np.ndarray) -> None:
    index = CosineIndex(backend="numpy").fit(vectors)
    scores, indices = index.neighbours_of([0, 5, 9], k=4)
    assert indices.shape == (3, 4)
    for row, query in enumerate([0, 5, 9]):
        assert query not in indices[row]
        np.testing.assert_array_equal(indices[row], index.search(vectors[query], k=5)[1][1:])


def test_neighbours_of_with_duplicates() -> None:
    vectors = np.array([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    _, indices = CosineIndex(backend="numpy").fit(vectors).neighbours_of([2], k=2)
    assert indices.tolist() == [[0, 1]]


# Input errors


def test_k_larger_than_index(vectors: np.ndarray, queries: np.ndarray) -> None:
    index = CosineIndex(backend="numpy").fit(vectors)
    with pytest.raises(ValueError, match="k=301 is larger than the index, which contains 300"):
        index.search(queries, k=301)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_invalid_k(k: object, vectors: np.ndarray, queries: np.ndarray) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        CosineIndex(backend="numpy").fit(vectors).search(queries, k=k)


def test_empty_query(vectors: np.ndarray) -> None:
    with pytest.raises(ValueError, match="queries is empty"):
        CosineIndex(backend="numpy").fit(vectors).search(np.zeros((0, 16)), k=3)


def test_mismatched_dimension(vectors: np.ndarray) -> None:
    with pytest.raises(EmbeddingSchemaError, match="dimension 15, but the index contains 16-d"):
        CosineIndex(backend="numpy").fit(vectors).search(np.ones((2, 15)), k=3)


def test_nan_query(vectors: np.ndarray) -> None:
    query = np.ones(16)
    query[4] = np.nan
    with pytest.raises(EmbeddingSchemaError, match="NaN"):
        CosineIndex(backend="numpy").fit(vectors).search(query, k=3)


def test_empty_index() -> None:
    with pytest.raises(EmbeddingSchemaError, match="vectors is empty"):
        CosineIndex(backend="numpy").fit(np.zeros((0, 4)))


def test_unknown_backend(vectors: np.ndarray) -> None:
    with pytest.raises(ValueError, match="Unknown backend 'annoy'"):
        CosineIndex(backend="annoy").fit(vectors)


def test_search_before_fit() -> None:
    with pytest.raises(Exception, match="not fitted"):
        CosineIndex().search(np.ones(3), k=1)


def test_copy_false_normalises_in_place() -> None:
    vectors = np.array([[3.0, 4.0], [0.0, 2.0]], dtype=np.float32)
    index = CosineIndex(backend="numpy", copy=False).fit(vectors)
    assert index.vectors_ is vectors
    np.testing.assert_allclose(vectors, [[0.6, 0.8], [0.0, 1.0]])


def test_copy_true_keeps_input() -> None:
    vectors = np.array([[3.0, 4.0]], dtype=np.float32)
    CosineIndex(backend="numpy").fit(vectors)
    assert vectors.tolist() == [[3.0, 4.0]]


# Save and load


def test_save_load_round_trip(tmp_path: Path, vectors: np.ndarray, queries: np.ndarray) -> None:
    index = CosineIndex(backend="numpy").fit(vectors)
    path = index.save(tmp_path / "index")
    assert path.name == "index.npz"
    loaded = CosineIndex.load(path, backend="numpy")
    np.testing.assert_array_equal(loaded.vectors_, index.vectors_)
    for got, expected in zip(loaded.search(queries, k=5), index.search(queries, k=5)):
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_pickle_round_trip(backend: str, vectors: np.ndarray, queries: np.ndarray) -> None:
    classifier = RetrievalKNNClassifier(n_neighbors=3, backend=backend).fit(vectors, np.arange(300) % 2)
    restored = pickle.loads(pickle.dumps(classifier))
    np.testing.assert_array_equal(restored.predict(queries), classifier.predict(queries))
    assert restored.index_.backend_ == backend


def test_load_rejects_other_file(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3))
    with pytest.raises(EmbeddingSchemaError, match=r"not a saved CosineIndex.*\['weights'\]"):
        CosineIndex.load(path)


def test_load_rejects_nan_vectors(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    broken = np.ones((3, 4), dtype=np.float32)
    broken[1, 2] = np.nan
    np.savez(path, vectors=broken, format_version=np.int64(1))
    with pytest.raises(EmbeddingSchemaError, match=r"NaN or infinite values in 1 rows \(first: \[1\]\)"):
        CosineIndex.load(path)


def test_load_rejects_unnormalised_vectors(tmp_path: Path) -> None:
    path = tmp_path / "scaled.npz"
    np.savez(path, vectors=np.full((3, 4), 2.0, dtype=np.float32), format_version=np.int64(1))
    with pytest.raises(EmbeddingSchemaError, match="unit-length"):
        CosineIndex.load(path)


def test_load_rejects_future_version(tmp_path: Path) -> None:
    path = tmp_path / "future.npz"
    np.savez(path, vectors=np.ones((3, 4), dtype=np.float32), format_version=np.int64(99))
    with pytest.raises(EmbeddingSchemaError, match="format version 99"):
        CosineIndex.load(path)


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="CosineIndex.save"):
        CosineIndex.load(tmp_path / "absent.npz")


# k-NN classifier


@pytest.fixture(scope="module")
def blobs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(3, 10)) * 2.0
    labels = rng.integers(0, 3, size=240)
    features = centres[labels] + rng.normal(size=(240, 10))
    return features.astype(np.float32), np.array(["a", "b", "c"])[labels]


def test_classifier_matches_sklearn(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    features, labels = blobs
    ours = RetrievalKNNClassifier(n_neighbors=5, backend="numpy").fit(features[:200], labels[:200])
    reference = KNeighborsClassifier(n_neighbors=5, metric="cosine", algorithm="brute")
    reference.fit(features[:200], labels[:200])
    np.testing.assert_array_equal(ours.predict(features[200:]), reference.predict(features[200:]))
    np.testing.assert_allclose(ours.predict_proba(features[200:]), reference.predict_proba(features[200:]))


def test_classifier_cross_validates(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    features, labels = blobs
    scores = cross_val_score(RetrievalKNNClassifier(n_neighbors=3, weights="similarity"), features, labels, cv=3)
    assert scores.mean() > 0.8


def test_classifier_vote_tie_break() -> None:
    # The query is closest to a "y" example, then equally close to one "x" and one "y".
    features = np.array([[1.0, 0.2], [1.0, -0.3], [1.0, 0.0]], dtype=np.float32)
    labels = np.array(["x", "y", "y"])
    model = RetrievalKNNClassifier(n_neighbors=2, backend="numpy").fit(features[:2], labels[:2])
    assert model.predict(np.array([[1.0, 0.1]])).tolist() == ["x"]


def test_classifier_rejects_bad_settings(blobs: tuple[np.ndarray, np.ndarray]) -> None:
    features, labels = blobs
    with pytest.raises(ValueError, match="n_neighbors must lie in"):
        RetrievalKNNClassifier(n_neighbors=500).fit(features, labels)
    with pytest.raises(ValueError, match="Unknown weights 'distance'"):
        RetrievalKNNClassifier(weights="distance").fit(features, labels)
    with pytest.raises(ValueError, match="one label per row"):
        RetrievalKNNClassifier().fit(features, labels[:10])
