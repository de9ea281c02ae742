"""Seeded training loop for the autoencoders and a checkpoint cache keyed by configuration."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import hashlib
import inspect
import json
import os
import pickle
import sys
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from r2ska.data import cache_dir as default_cache_dir
from r2ska.data import iterate_batches
from r2ska.device import get_device
from r2ska.progress import show_progress

# This version is part of every cache key. Bump it when the checkpoint layout or
# the training loop changes in a way that makes old checkpoints wrong.
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Every field is part of the checkpoint cache key.

    Attributes:
        epochs: Passes over the training images.
        batch_size: Images per optimiser step.
        lr: Adam learning rate.
        seed: Seed for the weight initialisation done by ``train_or_load``, the
            subset choice, the batch order and the VAE's sampling noise.
        weight_decay: Adam's L2 penalty coefficient.
        train_subset: Number of training images to draw at random (seeded) before
            training, or None to use all of them. Smaller is faster.
    """

    epochs: int = 5
    batch_size: int = 128
    # The models in r2ska.models reached a lower MNIST test loss after 3 to 6
    # epochs at 3e-3 than at 1e-3 or 2e-3 (batch 128, measured on a CPU).
    lr: float = 3e-3
    seed: int = 0
    weight_decay: float = 0.0
    train_subset: int | None = None

    def __post_init__(self) -> None:
        positive_ints = {"epochs": self.epochs, "batch_size": self.batch_size}
        if self.train_subset is not None:
            positive_ints["train_subset"] = self.train_subset
        for name, value in positive_ints.items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive integer, got {value!r}.")
        if not self.lr > 0:
            raise ValueError(f"TrainConfig.lr must be positive, got {self.lr!r}: try 3e-3.")
        if not self.weight_decay >= 0:
            raise ValueError(
                f"TrainConfig.weight_decay must be zero or positive, got {self.weight_decay!r}."
            )


@dataclass
class History:
    """Per-epoch record of a training run.

    Attributes:
        train_loss: Mean training loss of each epoch, in the model's loss units.
        val_loss: Mean validation loss after each epoch, or empty without validation images.
        epoch_seconds: Wall-clock seconds of each epoch, validation included.
        metrics: Per-epoch means of the metrics that ``model.loss`` reports, for
            example ``"kl"``; validation metrics carry a ``"val_"`` prefix.
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Convert to plain lists and dicts, for JSON or a checkpoint."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> History:
        """Rebuild a History from the output of ``to_dict``."""
        return cls(
            train_loss=[float(v) for v in values["train_loss"]],
            val_loss=[float(v) for v in values["val_loss"]],
            epoch_seconds=[float(v) for v in values["epoch_seconds"]],
            metrics={k: [float(v) for v in vs] for k, vs in values["metrics"].items()},
        )


def _check_images(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor) or not images.is_floating_point():
        kind = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise TypeError(
            f"{name} must be a float tensor (N, 1, 28, 28) in [0, 1], got {kind}: "
            "convert uint8 images with r2ska.data.to_float_images."
        )
    if images.ndim < 2 or images.shape[0] == 0:
        raise ValueError(
            f"{name} must hold at least one image (N, 1, 28, 28), "
            f"got shape {tuple(images.shape)}."
        )


@contextlib.contextmanager
def _deterministic_cudnn(device: torch.device) -> Iterator[None]:
    """Select deterministic cuDNN kernels inside the block and restore the flags after it.

    CPU kernels of these layers are already deterministic for a fixed thread count.
    """
    if device.type != "cuda":
        yield
        return
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def _evaluate(
    model: nn.Module, images: torch.Tensor, batch_size: int
) -> tuple[float, dict[str, float]]:
    """Average ``model.loss`` and its metrics over ``images``, weighted by batch size."""
    total_loss = 0.0
    totals: dict[str, float] = {}
    model.eval()
    with torch.no_grad():
        for batch in iterate_batches(images, batch_size, shuffle=False):
            loss, metrics = model.loss(batch)
            total_loss += loss.item() * len(batch)
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value * len(batch)
    n = images.shape[0]
    return total_loss / n, {key: value / n for key, value in totals.items()}


def _append_metrics(history: History, metrics: dict[str, float], prefix: str) -> None:
    for key, value in metrics.items():
        history.metrics.setdefault(prefix + key, []).append(value)


def train_model(
    model: nn.Module,
    train_images: torch.Tensor,
    val_images: torch.Tensor | None,
    config: TrainConfig,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` in place with Adam and return its per-epoch history.

    The model must provide ``loss(x) -> (loss_tensor, metrics)``, as
    ``r2ska.models.ConvAutoencoder`` and ``ConvVAE`` do. Everything random in
    the run (subset, batch order, sampling noise) is drawn from ``config.seed``
    inside a forked random state, so the caller's global random state is left
    as it was. On the CPU two runs from the same initial weights and seed give
    bit-identical weights. On CUDA, deterministic cuDNN kernels are selected for
    the run.

    NOTE: bit-identical results on CUDA and MPS have not been tested.

    Args:
        model: Module to train; it is moved to ``device`` and left in eval mode.
        train_images: Float images (N, 1, 28, 28) in [0, 1].
        val_images: Float images to compute the validation loss on after each
            epoch, or None to skip validation.
        config: Epochs, batch size, learning rate, seed and subset size.
        device: Device to train on; None picks one with ``r2ska.device.get_device``.
        progress: Whether to show a progress bar over the optimiser steps.

    Returns:
        The History of the run.

    Raises:
        TypeError: If the images are not floating-point tensors.
        ValueError: If an image tensor is empty.
    """
    _check_images(train_images, "train_images")
    if val_images is not None:
        _check_images(val_images, "val_images")
    device = get_device() if device is None else torch.device(device)

    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), _deterministic_cudnn(device):
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        return _run_epochs(model, train_images, val_images, config, device, generator, progress)


def _run_epochs(
    model: nn.Module,
    train_images: torch.Tensor,
    val_images: torch.Tensor | None,
    config: TrainConfig,
    device: torch.device,
    generator: torch.Generator,
    progress: bool,
) -> History:
    # Subset choice and batch order use a CPU generator, so they match across devices.
    if config.train_subset is not None and config.train_subset < len(train_images):
        chosen = torch.randperm(len(train_images), generator=generator)[: config.train_subset]
        train_images = train_images[chosen]
    train_images = train_images.to(device)
    val_images = None if val_images is None else val_images.to(device)

    model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    history = History()
    steps_per_epoch = -(-len(train_images) // config.batch_size)
    bar = tqdm(
        total=config.epochs * steps_per_epoch,
        desc=f"Training {type(model).__name__}",
        unit="step",
        disable=not show_progress(progress),
    )

    with bar:
        for epoch in range(config.epochs):
            start = time.perf_counter()
            model.train()
            total_loss = 0.0
            totals: dict[str, float] = {}

            batches = iterate_batches(
                train_images, config.batch_size, shuffle=True, generator=generator
            )
            for batch in batches:
                loss, metrics = model.loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()

                total_loss += loss.item() * len(batch)
                for key, value in metrics.items():
                    totals[key] = totals.get(key, 0.0) + value * len(batch)
                bar.update(1)

            n = len(train_images)
            history.train_loss.append(total_loss / n)
            _append_metrics(history, {key: value / n for key, value in totals.items()}, "")
            postfix = {"epoch": epoch + 1, "train_loss": f"{total_loss / n:.4g}"}

            if val_images is not None:
                val_loss, val_metrics = _evaluate(model, val_images, config.batch_size)
                history.val_loss.append(val_loss)
                _append_metrics(history, val_metrics, "val_")
                postfix["val_loss"] = f"{val_loss:.4g}"

            history.epoch_seconds.append(time.perf_counter() - start)
            bar.set_postfix(postfix)

    model.eval()
    return history


def _model_description(model: nn.Module) -> dict:
    """Describe the model for the cache key: class and constructor arguments, else its repr."""
    cls = type(model)
    description: dict = {"class": f"{cls.__module__}.{cls.__qualname__}"}
    hparams = getattr(model, "hparams", None)
    if isinstance(hparams, dict):
        description["hparams"] = hparams
    else:
        description["repr"] = repr(model)
    return description


def code_fingerprint(model: nn.Module) -> str:
    """Hash the source files of the model's module and of this training loop.

    A checkpoint trained by older code must not be loaded after the architecture,
    the loss or the loop changed, so their source text enters the cache key.
    Classes without a source file (defined in a notebook cell) contribute their
    qualified name only.
    """
    digest = hashlib.sha256()
    for module_name in (type(model).__module__, __name__):
        module = sys.modules.get(module_name)
        try:
            source_file = inspect.getsourcefile(module) if module is not None else None
        except TypeError:
            source_file = None
        if source_file is None:
            digest.update(module_name.encode("utf-8"))
        else:
            digest.update(Path(source_file).read_bytes())
    return digest.hexdigest()[:16]


def cache_key(model: nn.Module, config: TrainConfig, data_id: str) -> str:
    """Hash the configuration of a training run into a checkpoint file name.

    Args:
        model: The model to train. Its class, its ``hparams`` (or its repr when it
            has none) and :func:`code_fingerprint` enter the key, but its current
            weights do not.
        config: The training settings; every field enters the key.
        data_id: A name for the training and validation data, for example
            ``"mnist-train/mnist-test"``; change it whenever the data change.

    Returns:
        The first 16 hex digits of a SHA-256 over the sorted JSON description.
    """
    description = {
        "format": _CACHE_FORMAT,
        "model": _model_description(model),
        "code": code_fingerprint(model),
        "config": dataclasses.asdict(config),
        "data_id": data_id,
    }
    text = json.dumps(description, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename it over ``path``.

    A reader therefore sees either the old file or the complete new one.
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temporary))
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _load_checkpoint(path: Path, model: nn.Module, device: torch.device) -> History | None:
    """Load weights into ``model`` and return the stored history, or None if loading fails."""
    # load_state_dict copies matching tensors before it raises on a mismatch,
    # so keep the initial weights to retrain from.
    initial_state = copy.deepcopy(model.state_dict())
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
        history = History.from_dict(checkpoint["history"])
        model.load_state_dict(checkpoint["state_dict"])
        return history
    except (
        RuntimeError,
        EOFError,
        OSError,
        KeyError,
        TypeError,
        ValueError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
    ) as error:
        warnings.warn(
            f"Checkpoint {path} could not be loaded ({type(error).__name__}: {error}); "
            "training again and overwriting it.",
            stacklevel=3,
        )
        model.load_state_dict(initial_state)
        return None


def train_or_load(
    model: nn.Module | Callable[[], nn.Module],
    train_images: torch.Tensor,
    val_images: torch.Tensor | None,
    config: TrainConfig,
    *,
    data_id: str,
    cache_dir: Path | str | None = None,
    device: torch.device | str | None = None,
    progress: bool = True,
) -> tuple[nn.Module, History]:
    """Load a cached checkpoint for this configuration if present, else train and save one.

    The checkpoint is ``<cache_dir>/checkpoints/<key>.pt`` with the history in
    ``<key>.json`` beside it, where the key comes from ``cache_key``. Both are
    written atomically, so an interrupted run leaves no half-written file. A
    checkpoint that cannot be read triggers a warning and a fresh training run.

    Args:
        model: A model instance, or a factory that builds one. A factory is
            called under ``torch.manual_seed(config.seed)``, so the initial
            weights follow from the seed. An instance's initial weights are not
            part of the key, so two differently initialised instances of the
            same class share a checkpoint.
        train_images: Float images (N, 1, 28, 28) in [0, 1].
        val_images: Float validation images, or None.
        config: Training settings.
        data_id: Name of the data, part of the key; see ``cache_key``.
        cache_dir: Cache root; None uses ``r2ska.data.cache_dir()``, which is
            ``$R2SKA_CACHE`` or else the per-user cache folder.
        device: Device for training and for the returned model; None picks one
            with ``r2ska.device.get_device``.
        progress: Whether to show a progress bar while training.

    Returns:
        The trained model in eval mode, and its History (the stored one on a cache hit).
    """
    if not isinstance(model, nn.Module):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            model = model()
    device = get_device() if device is None else torch.device(device)
    folder = (default_cache_dir() if cache_dir is None else Path(cache_dir)) / "checkpoints"
    key = cache_key(model, config, data_id)
    checkpoint_path = folder / f"{key}.pt"

    if checkpoint_path.exists():
        model.to(device)
        history = _load_checkpoint(checkpoint_path, model, device)
        if history is not None:
            model.eval()
            return model, history

    history = train_model(model, train_images, val_images, config, device=device, progress=progress)
    _save_checkpoint(checkpoint_path, model, history, config, data_id)
    return model, history


def _save_checkpoint(
    path: Path, model: nn.Module, history: History, config: TrainConfig, data_id: str
) -> None:
    """Write the weights and history to ``path`` and a readable summary to the .json beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "state_dict": {name: tensor.cpu() for name, tensor in model.state_dict().items()},
        "history": history.to_dict(),
    }
    _write_atomically(path, lambda temporary: torch.save(checkpoint, temporary))

    summary = {
        "key": path.stem,
        "model": _model_description(model),
        "code": code_fingerprint(model),
        "config": dataclasses.asdict(config),
        "data_id": data_id,
        "history": history.to_dict(),
    }
    _write_atomically(
        path.with_suffix(".json"),
        lambda temporary: temporary.write_text(json.dumps(summary, indent=2), encoding="utf-8"),
    )
