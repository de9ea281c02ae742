"""Switch for the progress bars of r2ska's training loops."""

from __future__ import annotations

import os

PROGRESS_ENV = "R2SKA_PROGRESS"
"""Environment variable that turns every r2ska progress bar off when set to ``0``.

The book build sets it: a bar rendered into a static page would show its first,
empty state forever.
"""


def show_progress(requested: bool) -> bool:
    """Return whether to draw a progress bar that the caller ``requested``."""
    return requested and os.environ.get(PROGRESS_ENV, "1") != "0"
