"""Benchmark: exact top-10 cosine search over a million 768-d vectors, against faiss and scikit-learn.

Draws seeded standard-normal float32 vectors (1 000 000 x 768, about 3 GB) and a batch
of 256 queries. It then times one search of the whole batch with each of three exact
methods, one after the other on the same machine: ``r2ska.retrieval.CosineIndex`` (NumPy
backend), ``faiss.IndexFlatIP`` on the same unit vectors, and scikit-learn's
``NearestNeighbors(metric="cosine", algorithm="brute")``. Goal: the NumPy backend takes
at most 1.2 times as long as faiss.

Peak memory is about three copies of the vectors (9 GB at the default size): the index
normalises the data in place, faiss keeps its own copy, and scikit-learn makes a
normalised copy while it searches. Run it when the machine is otherwise idle.

Run: ``python benchmarks/retrieval_search.py [--vectors 1000000] [--queries 256]``.
"""

from __future__ import annotations

import argparse
import gc
import time
from pathlib import Path

import numpy as np
from sklearn.neighbors import NearestNeighbors

from r2ska.benchmarking import BenchmarkResult, record_result
from r2ska.retrieval import CosineIndex, faiss_available

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_RATIO = 1.2


def timed(function, *args, **kwargs):  # noqa: ANN001, ANN201 - a thin timing wrapper
    start = time.perf_counter()
    output = function(*args, **kwargs)
    return output, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1_000_000, help="number of stored vectors")
    parser.add_argument("--dim", type=int, default=768, help="vector dimension")
    parser.add_argument("--queries", type=int, default=256, help="queries searched in one batch")
    parser.add_argument("--k", type=int, default=10, help="neighbours per query")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random vectors")
    parser.add_argument("--skip-sklearn", action="store_true", help="leave out the scikit-learn search")
    args = parser.parse_args()
    if not faiss_available():
        raise SystemExit("faiss is not installed: install faiss-cpu to compare against IndexFlatIP.")
    import faiss

    rng = np.random.default_rng(args.seed)
    vectors = rng.standard_normal((args.vectors, args.dim), dtype=np.float32)
    queries = rng.standard_normal((args.queries, args.dim), dtype=np.float32)

    # copy=False normalises the 3 GB array in place instead of holding a second copy.
    index, fit_seconds = timed(CosineIndex(backend="numpy", copy=False).fit, vectors)
    (ours_scores, ours_indices), ours_seconds = timed(index.search, queries, args.k)

    unit_queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(args.dim)
    _, faiss_add_seconds = timed(flat.add, vectors)
    (faiss_scores, faiss_indices), faiss_seconds = timed(flat.search, unit_queries, args.k)
    del flat
    gc.collect()

    details = {
        "vectors": args.vectors,
        "dim": args.dim,
        "queries": args.queries,
        "k": args.k,
        "seed": args.seed,
        "r2ska search seconds": round(ours_seconds, 3),
        "r2ska fit seconds (normalise in place)": round(fit_seconds, 3),
        "faiss IndexFlatIP search seconds": round(faiss_seconds, 3),
        "faiss add seconds": round(faiss_add_seconds, 3),
        "faiss threads": faiss.omp_get_max_threads(),
        "faiss version": faiss.__version__,
        "top-k index agreement with faiss": float(np.mean(ours_indices == faiss_indices)),
        "max score difference with faiss": float(np.max(np.abs(ours_scores - faiss_scores))),
    }

    if not args.skip_sklearn:
        reference = NearestNeighbors(n_neighbors=args.k, metric="cosine", algorithm="brute").fit(vectors)
        (distances, sklearn_indices), sklearn_seconds = timed(reference.kneighbors, queries)
        details["sklearn brute-force search seconds"] = round(sklearn_seconds, 3)
        details["top-k index agreement with sklearn"] = float(np.mean(ours_indices == sklearn_indices))

    ratio = ours_seconds / faiss_seconds
    result = BenchmarkResult(
        name="retrieval_search",
        description=(
            f"Exact top-{args.k} cosine search time of CosineIndex (NumPy) relative to faiss IndexFlatIP, "
            f"{args.queries} queries over {args.vectors:,} x {args.dim} float32 vectors"
        ),
        value=round(ratio, 3),
        unit="x faiss time",
        goal=f"<= {GOAL_RATIO}",
        met=ratio <= GOAL_RATIO,
        details=details,
    )
    print(record_result(result, RESULTS).read_text())


if __name__ == "__main__":
    main()
