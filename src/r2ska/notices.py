"""Visible notices that chapters show about the data they run on."""

from __future__ import annotations

import html

from IPython.display import HTML

_OFFLINE_STAND_INS = {
    "digits-offline": (
        "This page ran on scikit-learn's built-in digits (1797 images of 8×8 pixels, "
        "upsampled to 28×28), an offline stand-in chosen in the settings cell, not on "
        "MNIST. Numbers and figures differ from those of the published chapter."
    ),
}


def dataset_notice(dataset: str) -> HTML | None:
    """Build a warning box when a chapter runs on offline stand-in data.

    The box uses the theme's admonition classes, so it looks the same in Jupyter and
    on the built site. Real datasets need no notice.

    Args:
        dataset: The dataset name chosen in the chapter's settings cell.

    Returns:
        An HTML warning box to display, or None for a real dataset.
    """
    text = _OFFLINE_STAND_INS.get(dataset)
    if text is None:
        return None
    return HTML(
        '<div class="admonition warning r2ska-offline-notice">'
        '<p class="admonition-title">Offline stand-in data</p>'
        f"<p>{html.escape(text)}</p></div>"
    )
