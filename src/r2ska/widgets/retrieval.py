"""Retrieval demo: pick a query chip and see its most similar chips on the footprint map, live or static."""

from __future__ import annotations

import hashlib
import html
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import ipywidgets
import numpy as np

from r2ska.retrieval import CosineIndex
from r2ska.widgets.traversal import _package_text

if TYPE_CHECKING:
    import shapely

DEFAULT_MAP_WIDTH = 520

# Fill colours of the weak land-cover labels, and of any other label in turn.
LABEL_COLOURS = {"water": "#9ecae1", "coast": "#fdd49e", "land": "#a1d99b"}
_OTHER_COLOURS = ("#d9d9d9", "#bcbddc", "#fcbba1", "#c7e9c0", "#fde0ef")
_NO_LABEL_COLOUR = "#eeeeee"


def precompute_neighbours(vectors: np.ndarray, k: int = 5, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Find every vector's ``k`` most similar other vectors by cosine similarity.

    Args:
        vectors: Embeddings (N, D) with N > k.
        k: Neighbours per vector.
        backend: Search backend of ``r2ska.retrieval.CosineIndex``.

    Returns:
        ``(scores, indices)``, each (N, k), sorted from the most similar.
    """
    index = CosineIndex(backend=backend).fit(vectors)
    return index.neighbours_of(np.arange(index.n_vectors_), k)


def footprint_paths(footprints: Sequence[shapely.Geometry], width: int = DEFAULT_MAP_WIDTH) -> tuple[list[str], int]:
    """Convert longitude-latitude footprints to SVG path data on a ``width``-pixel-wide map.

    Longitudes are scaled by the cosine of the mean latitude, so shapes keep
    their proportions near that latitude.

    Args:
        footprints: Polygons or multipolygons in OGC:CRS84 degrees.
        width: Map width in pixels.

    Returns:
        One SVG ``d`` attribute per footprint, and the map height in pixels.

    Raises:
        ValueError: If there are no footprints or one is empty.
    """
    shapes = list(footprints)
    if not shapes or any(shape is None or shape.is_empty for shape in shapes):
        raise ValueError("footprints must be a non-empty sequence of non-empty polygons.")
    bounds = np.array([shape.bounds for shape in shapes])  # (N, 4): x_min, y_min, x_max, y_max
    x_min, y_min = bounds[:, :2].min(axis=0)
    x_max, y_max = bounds[:, 2:].max(axis=0)
    x_scale = np.cos(np.radians((y_min + y_max) / 2.0))
    pixels_per_degree = (width - 2) / max((x_max - x_min) * x_scale, 1e-12)
    height = int(np.ceil((y_max - y_min) * pixels_per_degree)) + 2

    def to_path(shape: shapely.Geometry) -> str:
        parts = []
        polygons = shape.geoms if hasattr(shape, "geoms") else [shape]
        for polygon in polygons:
            for ring in [polygon.exterior, *polygon.interiors]:
                xy = np.asarray(ring.coords)[:, :2]
                x = 1 + (xy[:, 0] - x_min) * x_scale * pixels_per_degree
                y = 1 + (y_max - xy[:, 1]) * pixels_per_degree  # north up
                points = " L".join(f"{a:.1f},{b:.1f}" for a, b in zip(x, y))
                parts.append(f"M{points}Z")
        return "".join(parts)

    return [to_path(shape) for shape in shapes], height


def static_retrieval_html(
    footprints: Sequence[shapely.Geometry],
    scores: np.ndarray,
    indices: np.ndarray,
    *,
    names: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    title: str | None = None,
    start: int = 0,
    width: int = DEFAULT_MAP_WIDTH,
) -> str:
    """Write a self-contained HTML fragment that shows precomputed neighbours of any chosen chip.

    The fragment contains an SVG map of the footprints, a ``<select>`` of query
    chips, a table of the query's neighbours with their cosine similarities,
    the neighbours as JSON and an inline script (the package file
    ``retrieval.js``). Choosing a chip in the list or clicking its footprint
    makes it the query. The fragment loads nothing from the network. Its root
    id is a hash of the content, so rebuilds write the same HTML.

    Args:
        footprints: N polygons in OGC:CRS84 degrees.
        scores: Similarities (N, k) of each chip's neighbours, from
            ``precompute_neighbours``.
        indices: Neighbour indices (N, k) into ``footprints``.
        names: Chip names shown in the list and the table; default ``"chip i"``.
        labels: Optional class label of each chip, which sets its fill colour.
        title: Optional heading.
        start: Index of the chip shown first.
        width: Map width in pixels.

    Returns:
        The HTML fragment.

    Raises:
        ValueError: If the shapes of ``scores``, ``indices``, ``names`` or
            ``labels`` do not match the footprints, or ``start`` is out of range.
    """
    chip_names, label_list = _check_demo_inputs(footprints, scores, indices, names, labels, start)
    paths, height = footprint_paths(footprints, width)
    payload = {
        "names": chip_names,
        "labels": label_list,
        "neighbours": np.asarray(indices).astype(int).tolist(),
        "scores": [[f"{value:.4f}" for value in row] for row in np.asarray(scores)],
    }
    payload_json = json.dumps(payload, separators=(",", ":"))
    digest = hashlib.sha256(f"{title!r}\n{width}\n{start}\n{paths}\n{payload_json}".encode()).hexdigest()

    options = "".join(
        f'<option value="{row}"{" selected" if row == start else ""}>{html.escape(name)}</option>'
        for row, name in enumerate(chip_names)
    )
    # Names could contain "</script>", which would end the JSON block early.
    safe_json = payload_json.replace("<", "\\u003c")
    heading = f'<p class="r2ska-retrieval-title">{html.escape(title)}</p>' if title else ""
    lines = [
        f'<div class="r2ska-retrieval" id="r2ska-retrieval-{digest[:12]}">',
        f"<style>\n{_package_text('retrieval.css')}</style>",
        heading,
        f'<label>Query chip <select autocomplete="off">{options}</select></label>',
        '<div class="r2ska-retrieval-body">',
        map_svg(paths, height, width, label_list, start, indices[start]),
        neighbour_table(chip_names, label_list, start, indices[start], scores[start]),
        "</div>",
        f'<script type="application/json" class="r2ska-retrieval-data">{safe_json}</script>',
        f"<script>\n{_package_text('retrieval.js')}</script>",
        "</div>",
    ]
    # No blank lines, so that Markdown renderers keep the fragment in one HTML block.
    return "\n".join(line for line in lines if line.strip())


def map_svg(
    paths: Sequence[str],
    height: int,
    width: int,
    labels: Sequence[str] | None,
    query: int,
    neighbours: Sequence[int],
) -> str:
    """Draw the footprint map with the query and its neighbours outlined, as SVG markup."""
    colours = _label_colours(labels)
    neighbour_set = {int(index) for index in neighbours}
    shapes = []
    for row, path in enumerate(paths):
        role = ""
        if row == query:
            role = "r2ska-query"
        elif row in neighbour_set:
            role = "r2ska-neighbour"
        fill = colours[labels[row]] if labels is not None else _NO_LABEL_COLOUR
        shapes.append(f'<path data-chip="{row}" class="{role}" fill="{fill}" d="{path}"/>')
    # Outlined chips are drawn last so that their thick borders are not hidden by later chips.
    shapes.sort(key=lambda shape: 'class=""' not in shape)
    legend = "".join(
        f'<span><i style="background:{colour}"></i>{html.escape(name)}</span>' for name, colour in colours.items()
    )
    return (
        f'<div class="r2ska-retrieval-map"><svg viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="Chip footprints">{"".join(shapes)}</svg>'
        f'<div class="r2ska-retrieval-legend">{legend}'
        '<span><i class="r2ska-query-key"></i>query</span>'
        '<span><i class="r2ska-neighbour-key"></i>neighbour</span></div></div>'
    )


def neighbour_table(
    names: Sequence[str],
    labels: Sequence[str] | None,
    query: int,
    neighbours: Sequence[int],
    scores: Sequence[float],
) -> str:
    """List the query's neighbours with rank, name, label and cosine similarity, as an HTML table."""
    label_header = "<th>Label</th>" if labels is not None else ""
    query_label = f" ({html.escape(labels[query])})" if labels is not None else ""
    rows = []
    for rank, (index, score) in enumerate(zip(neighbours, scores), start=1):
        label_cell = f"<td>{html.escape(labels[index])}</td>" if labels is not None else ""
        name_cell = f"<td>{html.escape(names[index])}</td>"
        rows.append(f"<tr><td>{rank}</td>{name_cell}{label_cell}<td>{float(score):.4f}</td></tr>")
    return (
        '<table class="r2ska-retrieval-table">'
        f'<caption>Neighbours of <span class="r2ska-retrieval-query">{html.escape(names[query])}</span>'
        f'<span class="r2ska-retrieval-query-label">{query_label}</span></caption>'
        f"<thead><tr><th>#</th><th>Chip</th>{label_header}<th>Cosine</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


class RetrievalDemo(ipywidgets.VBox):
    """Choose a query chip and see its most similar chips by cosine similarity (chapter 2).

    In a Jupyter kernel, a dropdown picks the query and the map and table
    update from Python. The constructor precomputes every chip's ``k``
    neighbours, and the display bundle carries, next to the live widget view,
    a ``text/html`` entry from ``static_retrieval_html`` that shows them on a
    static page without a kernel.

    Attributes:
        scores: Similarities (N, k) of each chip's neighbours.
        indices: Neighbour indices (N, k).
        static_html: The static HTML version of the demo.
        query: The ``Dropdown`` that selects the query chip.
        view: The ``HTML`` widget with the map and the table.
    """

    def __init__(
        self,
        footprints: Sequence[shapely.Geometry],
        vectors: np.ndarray,
        *,
        k: int = 5,
        names: Sequence[str] | None = None,
        labels: Sequence[str] | None = None,
        title: str | None = None,
        start: int = 0,
        width: int = DEFAULT_MAP_WIDTH,
        backend: str = "auto",
    ) -> None:
        """Search every chip's neighbours and build the controls.

        Args:
            footprints: N polygons in OGC:CRS84 degrees.
            vectors: Embeddings (N, D), row ``i`` for footprint ``i``.
            k: Neighbours shown per query, 1 <= k < N.
            names: Chip names; default ``"chip i"``.
            labels: Optional class label per chip, which sets its fill colour.
            title: Optional heading.
            start: Index of the first query chip.
            width: Map width in pixels.
            backend: Search backend of ``r2ska.retrieval.CosineIndex``.

        Raises:
            ValueError: If the inputs' lengths differ, ``k`` or ``start`` is out of range.
        """
        super().__init__()
        self._footprints = list(footprints)
        if len(self._footprints) != np.shape(vectors)[0]:
            raise ValueError(
                f"Got {len(self._footprints)} footprints but {np.shape(vectors)[0]} vectors: pass one vector per chip."
            )
        self.scores, self.indices = precompute_neighbours(vectors, k, backend)
        self._names, self._labels = _check_demo_inputs(
            self._footprints, self.scores, self.indices, names, labels, start
        )
        self._paths, self._height = footprint_paths(self._footprints, width)
        self._width = width
        self.static_html = static_retrieval_html(
            self._footprints, self.scores, self.indices, names=self._names, labels=self._labels,
            title=title, start=start, width=width,
        )

        self.query = ipywidgets.Dropdown(
            options=[(name, row) for row, name in enumerate(self._names)], value=start, description="Query chip"
        )
        self.view = ipywidgets.HTML(self._render(start))
        self.query.observe(self._on_query_change, names="value")
        style = ipywidgets.HTML(f"<style>{_package_text('retrieval.css')}</style>")
        heading = [ipywidgets.HTML(f"<b>{html.escape(title)}</b>")] if title else []
        self.children = [style, *heading, self.query, self.view]

    def _render(self, query: int) -> str:
        neighbours, scores = self.indices[query], self.scores[query]
        return (
            '<div class="r2ska-retrieval"><div class="r2ska-retrieval-body">'
            + map_svg(self._paths, self._height, self._width, self._labels, query, neighbours)
            + neighbour_table(self._names, self._labels, query, neighbours, scores)
            + "</div></div>"
        )

    def _on_query_change(self, change: dict[str, Any]) -> None:
        self.view.value = self._render(int(change["new"]))

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """Add the static HTML version next to the live widget view."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        bundle["text/plain"] = f"RetrievalDemo({len(self._names)} chips, k={self.indices.shape[1]})"
        bundle["text/html"] = self.static_html
        return bundle


def _check_demo_inputs(
    footprints: Sequence[shapely.Geometry],
    scores: np.ndarray,
    indices: np.ndarray,
    names: Sequence[str] | None,
    labels: Sequence[str] | None,
    start: int,
) -> tuple[list[str], list[str] | None]:
    """Check that every per-chip input has one row per footprint; return names and labels as lists."""
    count = len(footprints)
    score_array, index_array = np.asarray(scores), np.asarray(indices)
    if index_array.ndim != 2 or index_array.shape[0] != count or score_array.shape != index_array.shape:
        raise ValueError(
            f"scores and indices must both have shape ({count}, k), one row per footprint, got "
            f"{score_array.shape} and {index_array.shape}: use precompute_neighbours(vectors, k)."
        )
    if index_array.size and (index_array.min() < 0 or index_array.max() >= count):
        raise ValueError(
            f"indices must lie in [0, {count}), got values from {index_array.min()} to "
            f"{index_array.max()}: use the indices from precompute_neighbours."
        )
    chip_names = [str(name) for name in names] if names is not None else [f"chip {row}" for row in range(count)]
    label_list = [str(label) for label in labels] if labels is not None else None
    for field_name, values in (("names", chip_names), ("labels", label_list)):
        if values is not None and len(values) != count:
            raise ValueError(f"{field_name} has {len(values)} entries, expected one per footprint ({count}).")
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)) or not 0 <= start < count:
        raise ValueError(f"start must be a chip index in [0, {count}), got {start!r}.")
    return chip_names, label_list


def _label_colours(labels: Sequence[str] | None) -> dict[str, str]:
    if labels is None:
        return {}
    colours, others = {}, iter(_OTHER_COLOURS * (len(set(labels)) // len(_OTHER_COLOURS) + 1))
    known = list(LABEL_COLOURS)
    for label in sorted(set(labels), key=lambda name: (known.index(name) if name in known else len(known), name)):
        colours[label] = LABEL_COLOURS.get(label) or next(others)
    return colours
