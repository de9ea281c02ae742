"""Interactive demos for the chapters: live ipywidgets views with static HTML fallbacks."""

from r2ska.widgets.retrieval import RetrievalDemo, precompute_neighbours, static_retrieval_html
from r2ska.widgets.traversal import (
    LatentTraversal,
    precompute_traversal,
    static_traversal_html,
    traversal_demo,
    traversal_grid_png,
)

__all__ = [
    "LatentTraversal",
    "RetrievalDemo",
    "precompute_neighbours",
    "precompute_traversal",
    "static_retrieval_html",
    "static_traversal_html",
    "traversal_demo",
    "traversal_grid_png",
]
