"""Low-rank adaptation (LoRA) of nn.Linear and nn.Conv2d layers, taught in chapter 3."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

# Attribute names of the adapter factors. A state-dict key of an adapter tensor ends
# with one of them, e.g. "features.3.lora_A".
LORA_PARAMETER_NAMES = ("lora_A", "lora_B")


def _check_rank_alpha_dropout(rank: int, alpha: float | None, dropout: float) -> float:
    """Validate the LoRA hyper-parameters and return alpha (rank when None)."""
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise ValueError(
            f"rank must be a positive integer, got {rank!r}: pass for example rank=4."
        )
    if alpha is None:
        alpha = float(rank)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha > 0:
        raise ValueError(
            f"alpha must be a positive number, got {alpha!r}: pass for example "
            "alpha=2 * rank, or None to use alpha = rank (scaling 1)."
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
    return float(alpha)


class _LoRABase(nn.Module):
    """Common state of the LoRA wrappers: the frozen base layer, scaling and merge flag."""

    lora_A: nn.Parameter
    lora_B: nn.Parameter

    def __init__(self, base: nn.Module, rank: int, alpha: float | None, dropout: float) -> None:
        super().__init__()
        self.alpha = _check_rank_alpha_dropout(rank, alpha, dropout)
        self.rank = rank
        # Scaling by alpha / r at a fixed alpha reduces the need to retune the learning
        # rate when r changes (Hu et al. 2021, arXiv:2106.09685).
        self.scaling = self.alpha / rank
        self.base = base
        for parameter in self.base.parameters():
            parameter.requires_grad_(False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False

    def _init_lora(self) -> None:
        # A like nn.Linear's default weight (Kaiming-uniform) and B = 0, so that
        # delta W = B A = 0 and the wrapped layer starts equal to the base layer.
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B)

    def delta_weight(self) -> torch.Tensor:
        """Return the low-rank update (alpha / r) B A, shaped like the base weight."""
        raise NotImplementedError

    def merge(self) -> None:
        """Add the update to the base weight, so inference costs the same as the base layer."""
        if self.merged:
            warnings.warn("LoRA layer is already merged: merge() did nothing.", stacklevel=2)
            return
        with torch.no_grad():
            self.base.weight += self.delta_weight().to(self.base.weight.dtype)
        self.merged = True

    def unmerge(self) -> None:
        """Subtract the update from the base weight again, restoring it up to rounding."""
        if not self.merged:
            warnings.warn("LoRA layer is not merged: unmerge() did nothing.", stacklevel=2)
            return
        with torch.no_grad():
            self.base.weight -= self.delta_weight().to(self.base.weight.dtype)
        self.merged = False

    def extra_repr(self) -> str:
        return f"rank={self.rank}, alpha={self.alpha:g}, merged={self.merged}"


class LoRALinear(_LoRABase):
    """An ``nn.Linear`` with a frozen weight W and a trainable low-rank update.

    The output is ``base(x) + (alpha / r) * B A x`` with A of shape (r, in_features)
    and B of shape (out_features, r). B starts at zero, so the wrapped layer first
    computes exactly what the base layer computes.

    Args:
        base: The layer to adapt. Its parameters are frozen in place.
        rank: Rank r of the update, a positive integer.
        alpha: Scale numerator; the update is multiplied by alpha / r. None
            means alpha = rank.
        dropout: Dropout probability applied to the input of the update only.

    Raises:
        ValueError: If ``rank``, ``alpha`` or ``dropout`` is invalid.
    """

    def __init__(
        self, base: nn.Linear, rank: int, alpha: float | None = None, dropout: float = 0.0
    ) -> None:
        super().__init__(base, rank, alpha, dropout)
        like_weight = {"dtype": base.weight.dtype, "device": base.weight.device}
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, **like_weight))
        self.lora_B = nn.Parameter(torch.empty(base.out_features, rank, **like_weight))
        self._init_lora()

    def delta_weight(self) -> torch.Tensor:
        return self.lora_B @ self.lora_A * self.scaling  # (out, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base(x)  # (..., out)
        if self.merged:
            return result
        update = self.dropout(x) @ self.lora_A.T @ self.lora_B.T  # (..., out)
        return result + update * self.scaling


class LoRAConv2d(_LoRABase):
    """An ``nn.Conv2d`` with a frozen kernel and a trainable low-rank update.

    The update factors the kernel, reshaped to (out, in * kh * kw), as B A with
    A of shape (r, in, kh, kw) and B of shape (out, r, 1, 1). In the forward pass
    A is a convolution with the base layer's kernel size, stride, padding and
    dilation to r channels, and B a 1x1 convolution back to ``out_channels``.

    Args:
        base: The layer to adapt, with ``groups=1`` and numeric padding. Its
            parameters are frozen in place.
        rank: Rank r of the update, a positive integer.
        alpha: Scale numerator; the update is multiplied by alpha / r. None
            means alpha = rank.
        dropout: Dropout probability applied to the input of the update only.

    Raises:
        ValueError: If ``rank``, ``alpha`` or ``dropout`` is invalid, or the base
            layer is grouped or pads with a mode other than zeros.
    """

    def __init__(
        self, base: nn.Conv2d, rank: int, alpha: float | None = None, dropout: float = 0.0
    ) -> None:
        if base.groups != 1 or base.padding_mode != "zeros" or isinstance(base.padding, str):
            raise ValueError(
                f"LoRAConv2d supports Conv2d with groups=1, numeric padding and "
                f"padding_mode='zeros', got groups={base.groups}, padding={base.padding!r}, "
                f"padding_mode={base.padding_mode!r}: leave this layer out of the targets."
            )
        super().__init__(base, rank, alpha, dropout)
        like_weight = {"dtype": base.weight.dtype, "device": base.weight.device}
        kh, kw = base.kernel_size
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_channels, kh, kw, **like_weight))
        self.lora_B = nn.Parameter(torch.empty(base.out_channels, rank, 1, 1, **like_weight))
        self._init_lora()

    def delta_weight(self) -> torch.Tensor:
        out_channels, rank = self.lora_B.shape[:2]
        flat = self.lora_B.view(out_channels, rank) @ self.lora_A.view(rank, -1)  # (out, in*kh*kw)
        return flat.view_as(self.base.weight) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base(x)  # (B, out, H', W')
        if self.merged:
            return result
        conv = self.base
        hidden = F.conv2d(
            self.dropout(x), self.lora_A, stride=conv.stride, padding=conv.padding, dilation=conv.dilation
        )  # (B, r, H', W')
        return result + F.conv2d(hidden, self.lora_B) * self.scaling


def lora_parameter_count(layer: nn.Linear | nn.Conv2d, rank: int) -> int:
    """Count the parameters of a rank-``rank`` update of ``layer``: r (fan_in + fan_out).

    For a Linear layer, fan_in is ``in_features`` and fan_out ``out_features``. For a
    Conv2d layer, fan_in is ``in_channels * kh * kw`` and fan_out is ``out_channels``.

    Raises:
        ValueError: If ``rank`` is invalid or ``layer`` is neither Linear nor Conv2d.
    """
    _check_rank_alpha_dropout(rank, None, 0.0)
    if isinstance(layer, nn.Linear):
        return rank * (layer.in_features + layer.out_features)
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return rank * (layer.in_channels * kh * kw + layer.out_channels)
    raise ValueError(
        f"Expected nn.Linear or nn.Conv2d, got {type(layer).__name__}: pass one of those layers."
    )


def _matches(name: str, target: str) -> bool:
    return name == target or name.endswith("." + target)


def _inside(owner: str, targets: Sequence[str]) -> bool:
    """Tell whether module ``owner`` is one of ``targets`` or nested inside one."""
    parts = owner.split(".")
    prefixes = [".".join(parts[:end]) for end in range(1, len(parts) + 1)]
    return any(_matches(prefix, target) for prefix in prefixes for target in targets)


def add_lora(
    model: nn.Module,
    targets: Sequence[str],
    rank: int,
    alpha: float | None = None,
    dropout: float = 0.0,
) -> nn.Module:
    """Replace the named Linear and Conv2d layers of ``model`` by LoRA wrappers, in place.

    A target matches a module whose name (as in ``model.named_modules()``) equals it
    or ends with ``"." + target``. Only the wrapped layers' own weights are frozen
    here; call :func:`mark_only_lora_trainable` to freeze the rest of the model.

    Args:
        model: The model to adapt.
        targets: Module names such as ``["features.0", "classifier.1"]``.
        rank: Rank r of every update.
        alpha: Scale numerator; each update is multiplied by alpha / r. None
            means alpha = rank.
        dropout: Dropout probability on the input of each update.

    Returns:
        ``model``, with the layers replaced.

    Raises:
        ValueError: If ``rank``, ``alpha`` or ``dropout`` is invalid, ``targets`` is
            empty, a target matches no module, or a matched module is not an
            ``nn.Linear`` or ``nn.Conv2d``.
    """
    _check_rank_alpha_dropout(rank, alpha, dropout)
    if isinstance(targets, str) or not targets:
        raise ValueError(f"targets must be a non-empty list of module names, got {targets!r}.")
    modules = dict(model.named_modules())
    for target in targets:
        names = [name for name in modules if name and _matches(name, target)]
        if not names:
            available = [name for name, m in modules.items() if isinstance(m, (nn.Linear, nn.Conv2d))]
            raise ValueError(
                f"Target {target!r} matches no module of {type(model).__name__}: "
                f"use one of the Linear/Conv2d names {available}."
            )
        for name in names:
            _wrap_module(model, name, modules[name], rank, alpha, dropout)
    return model


def _wrap_module(
    model: nn.Module, name: str, module: nn.Module, rank: int, alpha: float | None, dropout: float
) -> None:
    if isinstance(module, (LoRALinear, LoRAConv2d)):
        raise ValueError(f"Module {name!r} already has a LoRA adapter: target it only once.")
    if isinstance(module, nn.Linear):
        wrapper: nn.Module = LoRALinear(module, rank, alpha, dropout)
    elif isinstance(module, nn.Conv2d):
        wrapper = LoRAConv2d(module, rank, alpha, dropout)
    else:
        raise ValueError(
            f"Target {name!r} is a {type(module).__name__}; LoRA here supports nn.Linear "
            "and nn.Conv2d only: pick a Linear or Conv2d layer."
        )
    parent_name, _, child_name = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child_name, wrapper)


def lora_layers(model: nn.Module) -> Iterator[tuple[str, LoRALinear | LoRAConv2d]]:
    """Yield ``(name, layer)`` for every LoRA wrapper in ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, (LoRALinear, LoRAConv2d)):
            yield name, module


def _is_lora_parameter(name: str) -> bool:
    return name.rpartition(".")[2] in LORA_PARAMETER_NAMES


def mark_only_lora_trainable(model: nn.Module, also_train: Iterable[str] = ()) -> nn.Module:
    """Freeze every parameter except the LoRA factors and the modules named in ``also_train``.

    Args:
        model: A model with LoRA layers from :func:`add_lora`.
        also_train: Module names (matched like :func:`add_lora` targets) whose
            parameters stay trainable, typically the new classification head.

    Returns:
        ``model``.

    Raises:
        ValueError: If ``model`` has no LoRA layers or a name in ``also_train``
            matches no module.
    """
    if next(lora_layers(model), None) is None:
        raise ValueError("The model has no LoRA layers: call add_lora(model, targets, rank) first.")
    also_train = list(also_train)
    module_names = [name for name, _ in model.named_modules() if name]
    for target in also_train:
        if not any(_matches(name, target) for name in module_names):
            raise ValueError(f"also_train name {target!r} matches no module of {type(model).__name__}.")

    for name, parameter in model.named_parameters():
        in_head = _inside(name.rpartition(".")[0], also_train)
        # A LoRA-wrapped module named in also_train keeps its base weight frozen.
        frozen_base = ".base." in f".{name}"
        parameter.requires_grad_(_is_lora_parameter(name) or (in_head and not frozen_base))
    return model


@dataclass(frozen=True)
class ParameterCount:
    """Trainable and total parameter counts of a model."""

    trainable: int
    total: int

    @property
    def fraction(self) -> float:
        """Trainable share of all parameters, in [0, 1]."""
        return self.trainable / self.total if self.total else 0.0


def count_parameters(model: nn.Module) -> ParameterCount:
    """Count the trainable and total parameters of ``model`` (LoRA factors included)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return ParameterCount(trainable=trainable, total=total)


def merge_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRA update into its base weight; returns ``model``."""
    for _, layer in lora_layers(model):
        layer.merge()
    return model


def unmerge_lora(model: nn.Module) -> nn.Module:
    """Undo :func:`merge_lora` on every LoRA layer; returns ``model``."""
    for _, layer in lora_layers(model):
        layer.unmerge()
    return model


def lora_state_dict(model: nn.Module, also_save: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Return the LoRA factors (and the parameters of the modules in ``also_save``).

    Args:
        model: A model with LoRA layers.
        also_save: Module names whose parameters and buffers are saved too, such
            as a trained head.

    Returns:
        A state dict holding only those tensors, detached copies on the CPU.
    """
    also_save = list(also_save)
    adapter = {}
    for name, tensor in model.state_dict().items():
        if _is_lora_parameter(name) or _inside(name.rpartition(".")[0], also_save):
            adapter[name] = tensor.detach().cpu().clone()
    return adapter


def save_lora(model: nn.Module, path: Path | str, also_save: Iterable[str] = ()) -> Path:
    """Save only the adapter weights of ``model`` to ``path`` with ``torch.save``.

    Raises:
        ValueError: If the model has no LoRA layers.
        RuntimeError: If any LoRA layer is merged, because its base weight then
            contains the update and the file would not match a fresh base model.
    """
    layers = list(lora_layers(model))
    if not layers:
        raise ValueError("The model has no LoRA layers: nothing to save.")
    merged = [name for name, layer in layers if layer.merged]
    if merged:
        raise RuntimeError(f"LoRA layers {merged} are merged: call unmerge_lora(model) before saving.")
    path = Path(path)
    torch.save(lora_state_dict(model, also_save), path)
    return path


def load_lora(model: nn.Module, path: Path | str) -> nn.Module:
    """Load adapter weights saved by :func:`save_lora` into a model with the same LoRA layers.

    Raises:
        KeyError: If the file contains a tensor the model does not have, or the model
            has a LoRA factor the file lacks. The message lists the names.
    """
    adapter = torch.load(Path(path), map_location="cpu", weights_only=True)
    own = model.state_dict()
    unexpected = sorted(set(adapter) - set(own))
    missing = sorted(name for name in own if _is_lora_parameter(name) and name not in adapter)
    if unexpected or missing:
        raise KeyError(
            f"Adapter file {path} does not fit the model: unexpected {unexpected}, missing "
            f"{missing}. Call add_lora with the same targets and rank before loading."
        )
    model.load_state_dict(adapter, strict=False)
    return model
