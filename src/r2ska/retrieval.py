"""Exact cosine-similarity search over embeddings, and a k-nearest-neighbour classifier built on it."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from r2ska.embeddings import EmbeddingSchemaError, check_vectors, l2_normalise

_BACKENDS = ("auto", "numpy", "faiss")
_FORMAT_VERSION = 1

# The numpy backend scores at most this many query-by-vector pairs at a time, so
# that the float32 score block stays near 256 MiB however large the index is.
_MAX_SCORES_PER_BLOCK = 64 * 2**20

# The top-k selection first picks a lower bound from every this-many-th score of a row.
_SAMPLE_EVERY = 32


def faiss_available() -> bool:
    """Check whether the optional ``faiss`` package (faiss-cpu) can be imported."""
    return importlib.util.find_spec("faiss") is not None


class CosineIndex(BaseEstimator):
    """Exact top-k search by cosine similarity (chapter 2).

    ``fit`` stores unit-length copies of the vectors. ``search`` scores every
    stored vector against every query, so results are exact. With the numpy
    backend, equal scores are ordered by ascending index, also at the k-th
    place. The faiss backend uses ``faiss.IndexFlatIP`` (exact inner product on
    the normalised vectors). Its scores can differ from numpy's in the last
    float32 bits, and it sorts equal scores by index only among the k results
    that faiss returns.

    Args:
        backend: ``"numpy"``, ``"faiss"`` or ``"auto"`` (faiss when installed).
        copy: If False and the vectors passed to ``fit`` are already a
            C-contiguous float32 array, normalise them in place instead of
            copying, which halves the memory for large indexes.

    Attributes:
        vectors_: Unit-length vectors (N, D), float32.
        n_vectors_: N.
        dim_: D.
        backend_: The backend in use, ``"numpy"`` or ``"faiss"``.
    """

    def __init__(self, backend: str = "auto", copy: bool = True) -> None:
        self.backend = backend
        self.copy = copy

    def fit(self, vectors: np.ndarray, y: None = None) -> CosineIndex:
        """Normalise and store the vectors to search.

        Args:
            vectors: Finite array (N, D) with N >= 1 and no all-zero rows.
            y: Ignored, present for scikit-learn compatibility.

        Returns:
            The fitted index.

        Raises:
            ValueError: If ``backend`` is unknown, or is ``"faiss"`` and faiss
                is not installed.
            EmbeddingSchemaError: If ``vectors`` is empty, not (N, D), not
                finite, or has an all-zero row.
        """
        backend = _resolve_backend(self.backend)
        array = check_vectors(vectors, name="vectors")
        if array.shape[0] == 0:
            raise EmbeddingSchemaError("vectors is empty: an index needs at least one vector.")

        if not self.copy and array is vectors:
            array /= _row_norms(array)
        else:
            array = l2_normalise(array)
        return self._store(array, backend)

    def _store(self, unit_vectors: np.ndarray, backend: str) -> CosineIndex:
        self.vectors_ = unit_vectors
        self.n_vectors_, self.dim_ = unit_vectors.shape
        self.backend_ = backend
        self._faiss_index = _faiss_flat_ip(unit_vectors) if backend == "faiss" else None
        return self

    def __getstate__(self) -> dict:
        # A faiss index cannot be pickled, so it is rebuilt from the vectors on unpickling.
        state = dict(super().__getstate__())  # a copy, because object.__getstate__ returns __dict__ itself
        state.pop("_faiss_index", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if "vectors_" in state:
            self._faiss_index = _faiss_flat_ip(self.vectors_) if self.backend_ == "faiss" else None

    def search(self, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` stored vectors most similar to each query.

        Args:
            queries: One query (D,) or many (Q, D), Q >= 1, with no all-zero rows.
            k: Neighbours per query, 1 <= k <= ``n_vectors_``.

        Returns:
            ``(scores, indices)``, each (Q, k), or (k,) for a single query (D,):
            cosine similarities sorted from the highest, and row indices into
            the fitted vectors.

        Raises:
            ValueError: If ``k`` is out of range or there are no queries.
            EmbeddingSchemaError: If the queries' dimension differs from the
                index's, or a query is not finite or all zeros.
        """
        check_is_fitted(self, "vectors_")
        single = np.ndim(queries) == 1
        query_array = self._checked_queries(np.atleast_2d(queries))
        self._check_k(k)

        if self._faiss_index is not None:
            scores, indices = self._faiss_index.search(query_array, k)
            scores, indices = _sort_rows(scores, indices.astype(np.int64))
        else:
            scores, indices = self._numpy_search(query_array, k)
        return (scores[0], indices[0]) if single else (scores, indices)

    def neighbours_of(self, rows: np.ndarray | list[int], k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Find the ``k`` nearest stored vectors of stored vectors, leaving each one out.

        Args:
            rows: Indices (Q,) of stored vectors to use as queries.
            k: Neighbours per query, 1 <= k < ``n_vectors_``.

        Returns:
            ``(scores, indices)``, each (Q, k), sorted from the highest score.
            A duplicate of a query at another index still counts as a neighbour.

        Raises:
            ValueError: If ``k`` is out of range or a row index is invalid.
        """
        check_is_fitted(self, "vectors_")
        row_array = np.asarray(rows, dtype=np.int64).reshape(-1)
        if row_array.size and (row_array.min() < 0 or row_array.max() >= self.n_vectors_):
            raise ValueError(
                f"rows must lie in [0, {self.n_vectors_}), got {row_array.tolist()[:10]}: "
                "pass row indices of the fitted vectors."
            )
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k < self.n_vectors_:
            raise ValueError(
                f"k must be an integer in [1, {self.n_vectors_ - 1}] when each query leaves itself out, got {k!r}."
            )

        scores, indices = self.search(self.vectors_[row_array], k + 1)
        keep = indices != row_array[:, None]  # (Q, k + 1), one False where the query found itself
        # A query can miss itself when it ties with other vectors past the k+1-th place.
        keep[keep.all(axis=1), -1] = False
        shape = (len(row_array), k)
        return scores[keep].reshape(shape), indices[keep].reshape(shape)

    def save(self, path: str | Path) -> Path:
        """Write the normalised vectors to an ``.npz`` file that ``CosineIndex.load`` reads.

        Args:
            path: Target file. NumPy adds ``.npz`` when the name lacks it.

        Returns:
            The written path.
        """
        check_is_fitted(self, "vectors_")
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        np.savez(path, vectors=self.vectors_, format_version=np.int64(_FORMAT_VERSION))
        return path

    @classmethod
    def load(cls, path: str | Path, backend: str = "auto") -> CosineIndex:
        """Read an index written by ``save``.

        Args:
            path: An ``.npz`` file from ``CosineIndex.save``.
            backend: Backend for the loaded index.

        Returns:
            A fitted index with the same vectors.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            EmbeddingSchemaError: If the file lacks the vectors or has another
                format version, or its vectors are not finite (N, D).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"Index file {path} not found: write one with CosineIndex.save.")
        with np.load(path, allow_pickle=False) as stored:
            if "vectors" not in stored or "format_version" not in stored:
                raise EmbeddingSchemaError(
                    f"{path} is not a saved CosineIndex (it contains {sorted(stored.files)}): "
                    "write it with CosineIndex.save."
                )
            version = int(stored["format_version"])
            if version != _FORMAT_VERSION:
                raise EmbeddingSchemaError(
                    f"{path} has index format version {version}, this r2ska reads version "
                    f"{_FORMAT_VERSION}: rebuild the index and save it again."
                )
            vectors = check_vectors(stored["vectors"], name=f"vectors in {path.name}")
        if vectors.shape[0] == 0 or not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4):
            raise EmbeddingSchemaError(
                f"{path} does not contain unit-length vectors: it was not written by CosineIndex.save, "
                "or it was altered. Rebuild the index with CosineIndex().fit(vectors)."
            )
        # The stored vectors are used as they are, so a loaded index returns the same scores bit for bit.
        index = cls(backend=backend)
        return index._store(vectors, _resolve_backend(backend))

    def _checked_queries(self, queries: np.ndarray) -> np.ndarray:
        if np.shape(queries)[0] == 0:
            raise ValueError("queries is empty: pass at least one query vector of shape (D,) or (Q, D).")
        array = check_vectors(queries, name="queries")
        if array.shape[1] != self.dim_:
            raise EmbeddingSchemaError(
                f"queries have dimension {array.shape[1]}, but the index contains {self.dim_}-d vectors: "
                "embed the queries with the same model as the index."
            )
        return l2_normalise(array)

    def _check_k(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}.")
        if k > self.n_vectors_:
            raise ValueError(
                f"k={k} is larger than the index, which contains {self.n_vectors_} vectors: "
                f"use k <= {self.n_vectors_}."
            )

    def _numpy_search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        block = max(1, _MAX_SCORES_PER_BLOCK // self.n_vectors_)
        all_scores, all_indices = [], []
        for start in range(0, len(queries), block):
            scores = queries[start : start + block] @ self.vectors_.T  # (B, N)
            top_scores, top_indices = _top_k(scores, k)
            all_scores.append(top_scores)
            all_indices.append(top_indices)
        return np.concatenate(all_scores), np.concatenate(all_indices)


def _top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the k highest scores per row, sorted, with ties broken by the lower column index."""
    rows_count, n = scores.shape
    if n <= _SAMPLE_EVERY * k:
        columns = np.broadcast_to(np.arange(n), scores.shape)
        order = np.lexsort((columns, -scores), axis=-1)[:, :k]
        return np.take_along_axis(scores, order, axis=-1), order.astype(np.int64)

    # The k-th largest score of every _SAMPLE_EVERY-th column is at most the row's k-th
    # largest score, so the scores at or above it include the exact top k, ties included.
    # Selecting on a 1/_SAMPLE_EVERY sample and then comparing once is several times
    # faster than np.argpartition over the whole row.
    sample = scores[:, ::_SAMPLE_EVERY]
    bound = np.partition(sample, sample.shape[1] - k, axis=1)[:, -k]  # (B,)
    # NOTE: rows with many scores tied at the bound keep all of them as candidates,
    # which costs memory and time but stays exact.
    rows, columns = np.nonzero(scores >= bound[:, None])  # row-major order
    values = scores[rows, columns]
    order = np.lexsort((columns, -values, rows))
    starts = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=rows_count))[:-1]])  # (B,)
    pick = order[starts[:, None] + np.arange(k)]  # (B, k)
    return values[pick], columns[pick].astype(np.int64)


def _sort_rows(scores: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by descending score, then ascending index."""
    order = np.lexsort((indices, -scores), axis=-1)
    return np.take_along_axis(scores, order, axis=-1), np.take_along_axis(indices, order, axis=-1)


def _row_norms(array: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    zero_rows = np.flatnonzero(norms[:, 0] == 0)
    if zero_rows.size:
        raise EmbeddingSchemaError(
            f"Rows {zero_rows[:5].tolist()} are all zeros and have no direction: drop them before indexing."
        )
    return norms


def _resolve_backend(backend: str) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"Unknown backend {backend!r}: use one of {', '.join(_BACKENDS)}.")
    if backend == "auto":
        return "faiss" if faiss_available() else "numpy"
    if backend == "faiss" and not faiss_available():
        raise ValueError("backend='faiss' needs the faiss-cpu package: install it, or use backend='numpy'.")
    return backend


def _faiss_flat_ip(vectors: np.ndarray):  # noqa: ANN202 - faiss has no type stubs
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


class RetrievalKNNClassifier(ClassifierMixin, BaseEstimator):
    """Classify embeddings by a vote of their most similar labelled examples (chapter 2).

    ``fit`` builds a ``CosineIndex`` of the training vectors. ``predict`` looks
    up each query's ``n_neighbors`` most similar training vectors and returns
    the class with the most votes. A tied vote goes to the tied class with the
    highest summed similarity, then to the class that sorts first.

    Args:
        n_neighbors: Neighbours that vote, at least 1.
        weights: ``"uniform"`` (one vote each) or ``"similarity"`` (each vote
            counts its cosine similarity).
        backend: Search backend, as in ``CosineIndex``.

    Attributes:
        classes_: Sorted class labels seen in ``fit``.
        index_: The ``CosineIndex`` of the training vectors.
    """

    def __init__(self, n_neighbors: int = 5, weights: str = "uniform", backend: str = "auto") -> None:
        self.n_neighbors = n_neighbors
        self.weights = weights
        self.backend = backend

    def fit(self, X: np.ndarray, y: np.ndarray) -> RetrievalKNNClassifier:  # noqa: N803 - scikit-learn names
        """Index the training vectors and remember their labels.

        Args:
            X: Training vectors (N, D).
            y: Labels (N,).

        Returns:
            The fitted classifier.

        Raises:
            ValueError: If ``weights`` is unknown, ``n_neighbors`` is not in
                [1, N], or ``y`` does not have N labels.
        """
        if self.weights not in ("uniform", "similarity"):
            raise ValueError(f"Unknown weights {self.weights!r}: use 'uniform' or 'similarity'.")
        labels = np.asarray(y)
        if labels.ndim != 1 or len(labels) != np.shape(X)[0]:
            raise ValueError(f"y must have one label per row of X ({np.shape(X)[0]}), got shape {labels.shape}.")
        if not 1 <= self.n_neighbors <= len(labels):
            raise ValueError(
                f"n_neighbors must lie in [1, {len(labels)}] (the number of training examples), "
                f"got {self.n_neighbors}."
            )
        self.index_ = CosineIndex(backend=self.backend).fit(X)
        self.classes_, self._codes = np.unique(labels, return_inverse=True)
        self.n_features_in_ = self.index_.dim_
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Return each class's share of the (weighted) votes, shape (Q, n_classes)."""
        votes, _ = self._votes(X)
        totals = votes.sum(axis=1, keepdims=True)
        # Similarity weights can sum to zero or less; those rows fall back to uniform votes.
        return np.divide(votes, totals, out=np.full_like(votes, 1.0 / votes.shape[1]), where=totals > 0)

    def predict(self, X: np.ndarray) -> np.ndarray:  # noqa: N803
        """Return the winning class of each query (Q,)."""
        votes, similarity = self._votes(X)
        top = votes == votes.max(axis=1, keepdims=True)
        tie_break = np.where(top, similarity, -np.inf)
        return self.classes_[np.argmax(tie_break, axis=1)]

    def _votes(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # noqa: N803
        check_is_fitted(self, "index_")
        scores, indices = self.index_.search(np.atleast_2d(X), self.n_neighbors)  # (Q, k) each
        codes = self._codes[indices]
        rows = np.arange(len(codes))[:, None]
        counts = np.zeros((len(codes), len(self.classes_)))
        similarity = np.zeros_like(counts)
        np.add.at(counts, (rows, codes), 1.0)
        np.add.at(similarity, (rows, codes), scores)
        return (similarity if self.weights == "similarity" else counts), similarity
