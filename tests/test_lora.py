"""Tests for r2ska.lora: the LoRA wrappers, their helpers and equivalence with peft."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from r2ska.lora import (
    LoRAConv2d,
    LoRALinear,
    add_lora,
    count_parameters,
    load_lora,
    lora_layers,
    lora_parameter_count,
    lora_state_dict,
    mark_only_lora_trainable,
    merge_lora,
    save_lora,
    unmerge_lora,
)


class TinyNet(nn.Module):
    """A conv layer, a hidden linear layer and a head, on 1x8x8 inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1)
        self.norm = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 8 * 8, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.norm(self.conv(x))).flatten(1)
        return self.head(torch.relu(self.fc(x)))


def _randomise_b(model: nn.Module, seed: int = 0) -> None:
    """Give every B factor random values, so the update is not zero."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, layer in lora_layers(model):
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.1)


@pytest.fixture
def inputs() -> torch.Tensor:
    return torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def base_model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet().eval()


def test_zero_init_output_equals_base(base_model: TinyNet, inputs: torch.Tensor) -> None:
    expected = base_model(inputs)
    adapted = add_lora(copy.deepcopy(base_model), ["conv", "fc", "head"], rank=2, alpha=4)

    assert torch.equal(adapted(inputs), expected)


def test_merged_output_equals_unmerged(base_model: TinyNet, inputs: torch.Tensor) -> None:
    model = add_lora(base_model, ["conv", "fc"], rank=3, alpha=6)
    _randomise_b(model)
    unmerged = model(inputs)

    merge_lora(model)

    assert all(layer.merged for _, layer in lora_layers(model))
    torch.testing.assert_close(model(inputs), unmerged, rtol=1e-5, atol=1e-5)


def test_merge_unmerge_restores_base_weights(base_model: TinyNet) -> None:
    original = {name: p.detach().clone() for name, p in base_model.named_parameters()}
    model = add_lora(base_model, ["conv", "fc"], rank=2)
    _randomise_b(model)

    merge_lora(model)
    assert not torch.allclose(model.conv.base.weight, original["conv.weight"])
    unmerge_lora(model)

    torch.testing.assert_close(model.conv.base.weight, original["conv.weight"], rtol=0, atol=1e-6)
    torch.testing.assert_close(model.fc.base.weight, original["fc.weight"], rtol=0, atol=1e-6)


def test_merge_twice_warns_and_keeps_weight(base_model: TinyNet) -> None:
    model = add_lora(base_model, ["fc"], rank=2)
    _randomise_b(model)
    model.fc.merge()
    merged_weight = model.fc.base.weight.detach().clone()

    with pytest.warns(UserWarning, match="already merged"):
        model.fc.merge()

    assert torch.equal(model.fc.base.weight, merged_weight)


def test_only_lora_parameters_get_gradients(base_model: TinyNet, inputs: torch.Tensor) -> None:
    model = mark_only_lora_trainable(add_lora(base_model, ["conv", "fc"], rank=2))
    _randomise_b(model)

    model(inputs).square().sum().backward()

    for name, parameter in model.named_parameters():
        is_lora = name.endswith(("lora_A", "lora_B"))
        assert parameter.requires_grad == is_lora, name
        if is_lora:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name


def test_also_train_keeps_head_trainable(base_model: TinyNet) -> None:
    model = mark_only_lora_trainable(add_lora(base_model, ["conv"], rank=2), also_train=["head"])

    trainable = {name for name, p in model.named_parameters() if p.requires_grad}

    assert trainable == {"conv.lora_A", "conv.lora_B", "head.weight", "head.bias"}


def test_parameter_count_linear_closed_form() -> None:
    layer = nn.Linear(20, 7)
    wrapped = LoRALinear(layer, rank=3)

    counts = count_parameters(wrapped)

    assert counts.trainable == 3 * (20 + 7)
    assert counts.trainable == lora_parameter_count(layer, 3)
    assert counts.total == 20 * 7 + 7 + 3 * (20 + 7)


def test_parameter_count_conv_closed_form() -> None:
    layer = nn.Conv2d(6, 10, kernel_size=(3, 5))
    wrapped = LoRAConv2d(layer, rank=4)

    counts = count_parameters(wrapped)

    assert counts.trainable == 4 * (6 * 3 * 5 + 10)
    assert counts.trainable == lora_parameter_count(layer, 4)
    assert counts.fraction == pytest.approx(counts.trainable / (6 * 10 * 15 + 10 + counts.trainable))


def test_conv_delta_matches_forward_update(inputs: torch.Tensor) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 4, kernel_size=3, stride=2, padding=1, dilation=1)
    wrapped = LoRAConv2d(copy.deepcopy(conv), rank=2, alpha=3)
    _randomise_b(wrapped)
    reference = nn.Conv2d(1, 4, kernel_size=3, stride=2, padding=1)
    with torch.no_grad():
        reference.weight.copy_(conv.weight + wrapped.delta_weight())
        reference.bias.copy_(conv.bias)

    torch.testing.assert_close(wrapped(inputs), reference(inputs), rtol=1e-5, atol=1e-5)


def test_save_load_round_trip(tmp_path, base_model: TinyNet, inputs: torch.Tensor) -> None:
    trained = add_lora(copy.deepcopy(base_model), ["conv", "fc"], rank=2)
    _randomise_b(trained)
    path = save_lora(trained, tmp_path / "adapter.pt", also_save=["head"])

    saved = torch.load(path, weights_only=True)
    fresh = add_lora(copy.deepcopy(base_model), ["conv", "fc"], rank=2)
    load_lora(fresh, path)

    assert set(saved) == {"conv.lora_A", "conv.lora_B", "fc.lora_A", "fc.lora_B", "head.weight", "head.bias"}
    assert torch.equal(fresh(inputs), trained(inputs))


def test_load_into_wrong_targets_raises(tmp_path, base_model: TinyNet) -> None:
    path = save_lora(add_lora(copy.deepcopy(base_model), ["conv"], rank=2), tmp_path / "a.pt")
    other = add_lora(copy.deepcopy(base_model), ["fc"], rank=2)

    with pytest.raises(KeyError, match="conv.lora_A"):
        load_lora(other, path)


def test_save_merged_model_raises(tmp_path, base_model: TinyNet) -> None:
    model = merge_lora(add_lora(base_model, ["fc"], rank=2))

    with pytest.raises(RuntimeError, match="unmerge_lora"):
        save_lora(model, tmp_path / "a.pt")


def test_state_dict_holds_only_factors(base_model: TinyNet) -> None:
    model = add_lora(base_model, ["fc"], rank=2)

    assert set(lora_state_dict(model)) == {"fc.lora_A", "fc.lora_B"}


@pytest.mark.parametrize("rank", [0, -1, 2.5, True, "4"])
def test_invalid_rank_raises(base_model: TinyNet, rank: object) -> None:
    with pytest.raises(ValueError, match=f"rank must be a positive integer, got {rank!r}"):
        add_lora(base_model, ["fc"], rank=rank)  # type: ignore[arg-type]


@pytest.mark.parametrize("alpha", [0, -2.0, float("nan"), "8"])
def test_invalid_alpha_raises(alpha: object) -> None:
    with pytest.raises(ValueError, match="alpha must be a positive number"):
        LoRALinear(nn.Linear(3, 2), rank=2, alpha=alpha)  # type: ignore[arg-type]


def test_invalid_dropout_raises() -> None:
    with pytest.raises(ValueError, match="dropout must be in"):
        LoRALinear(nn.Linear(3, 2), rank=2, dropout=1.0)


def test_unknown_target_raises(base_model: TinyNet) -> None:
    with pytest.raises(ValueError, match="'decoder' matches no module.*'fc'"):
        add_lora(base_model, ["decoder"], rank=2)


def test_unsupported_target_type_raises(base_model: TinyNet) -> None:
    with pytest.raises(ValueError, match="'norm' is a BatchNorm2d"):
        add_lora(base_model, ["norm"], rank=2)


def test_grouped_conv_raises() -> None:
    with pytest.raises(ValueError, match="groups=2"):
        LoRAConv2d(nn.Conv2d(4, 4, 3, groups=2), rank=2)


def test_mark_without_lora_raises(base_model: TinyNet) -> None:
    with pytest.raises(ValueError, match="no LoRA layers"):
        mark_only_lora_trainable(base_model)


def test_dropout_active_only_in_training(inputs: torch.Tensor) -> None:
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(8, 4), rank=2, dropout=0.5)
    with torch.no_grad():
        layer.lora_B.fill_(1.0)
    x = inputs.flatten(1)[:, :8]

    layer.train()
    torch.manual_seed(1)
    first = layer(x)
    torch.manual_seed(2)
    second = layer(x)
    layer.eval()

    assert not torch.equal(first, second)
    assert torch.equal(layer(x), layer(x))


# Equivalence with peft: same base weights and the same A and B must give the same output.



def _peft_model(model: nn.Module, targets: list[str], rank: int, alpha: float) -> nn.Module:
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=rank, lora_alpha=alpha, target_modules=targets, lora_dropout=0.0)
    return peft.get_peft_model(model, config)


def _copy_factors_into_peft(ours: nn.Module, theirs: nn.Module, name: str) -> None:
    layer = ours.get_submodule(name)
    peft_layer = theirs.base_model.model.get_submodule(name)
    with torch.no_grad():
        peft_layer.lora_A["default"].weight.copy_(layer.lora_A)
        peft_layer.lora_B["default"].weight.copy_(layer.lora_B)


@pytest.mark.parametrize("target", ["fc", "conv"])
def test_matches_peft_lora(base_model: TinyNet, inputs: torch.Tensor, target: str) -> None:
    ours = add_lora(copy.deepcopy(base_model), [target], rank=3, alpha=5)
    _randomise_b(ours)
    theirs = _peft_model(copy.deepcopy(base_model), [target], rank=3, alpha=5).eval()
    _copy_factors_into_peft(ours, theirs, target)

    torch.testing.assert_close(ours(inputs), theirs(inputs), rtol=1e-5, atol=1e-5)
    assert count_parameters(mark_only_lora_trainable(ours)).trainable == sum(
        p.numel() for n, p in theirs.named_parameters() if "lora_" in n
    )


def test_merged_matches_peft_merge(base_model: TinyNet, inputs: torch.Tensor) -> None:
    ours = add_lora(copy.deepcopy(base_model), ["conv", "fc"], rank=2, alpha=4)
    _randomise_b(ours)
    theirs = _peft_model(copy.deepcopy(base_model), ["conv", "fc"], rank=2, alpha=4).eval()
    for name in ("conv", "fc"):
        _copy_factors_into_peft(ours, theirs, name)

    merged_theirs = theirs.merge_and_unload()
    merge_lora(ours)

    torch.testing.assert_close(ours.conv.base.weight, merged_theirs.conv.weight, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(ours(inputs), merged_theirs(inputs), rtol=1e-5, atol=1e-5)
