"""Choice of the torch device that chapters and helpers run on."""

from __future__ import annotations

import torch

_KNOWN_DEVICES = ("cuda", "mps", "cpu")


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the fastest available device: CUDA, then Apple MPS, then the CPU.

    Args:
        prefer: Force one of ``"cuda"``, ``"mps"`` or ``"cpu"`` instead of the
            automatic choice, for example to compare speeds.

    Returns:
        The chosen device.

    Raises:
        ValueError: If ``prefer`` is not a known device name, or names a device
            that this machine does not have.
    """
    if prefer is not None:
        if prefer not in _KNOWN_DEVICES:
            raise ValueError(
                f"Unknown device {prefer!r}: use one of {', '.join(_KNOWN_DEVICES)}, "
                "or None to choose automatically."
            )
        if not _is_available(prefer):
            raise ValueError(
                f"Device {prefer!r} is not available on this machine: "
                "pass None to choose automatically."
            )
        return torch.device(prefer)

    for name in _KNOWN_DEVICES:
        if _is_available(name):
            return torch.device(name)
    raise AssertionError("unreachable: the CPU is always available")


def _is_available(name: str) -> bool:
    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available()
    return True
