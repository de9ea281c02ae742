"""Tests for r2ska.finetune: the small CNN, the shifted domain and the strategies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from r2ska import data
from r2ska.finetune import (
    FitConfig,
    SmallCNN,
    StrategyResult,
    accuracy,
    fit_classifier,
    prepare_model,
    recompute_batchnorm_statistics,
    run_strategy,
    shift_domain,
    summarise_runs,
    train_or_load_base,
)
from r2ska.lora import LoRAConv2d, count_parameters


def _toy_digits(n: int = 64, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose class (0 to 3) sets which quadrant is bright, plus faint noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.rand(n, 1, 28, 28, generator=generator) * 0.1
    for index, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[index, 0, row * 14:(row + 1) * 14, col * 14:(col + 1) * 14] += 0.8
    return images, labels


@pytest.fixture
def toy() -> tuple[torch.Tensor, torch.Tensor]:
    return _toy_digits()


def test_small_cnn_output_shape() -> None:
    model = SmallCNN(channels=(4, 8, 8), hidden=16, num_classes=4)

    logits = model(torch.zeros(3, 1, 28, 28))

    assert logits.shape == (3, 4)


def test_shift_domain_is_seeded_and_in_range(toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, _ = toy

    first = shift_domain(images, seed=3)
    second = shift_domain(images, seed=3)

    assert torch.equal(first, second)
    assert first.shape == images.shape
    assert first.min() >= 0
    assert first.max() <= 1
    assert not torch.allclose(first, images, atol=0.05)


def test_shift_domain_rotates_by_angle() -> None:
    image = torch.zeros(1, 1, 28, 28)
    image[0, 0, 2:6, 12:16] = 1.0  # a block near the top edge

    rotated = shift_domain(image, angle_range=(90.0, 90.0), noise_std=0.0)

    # A quarter turn moves the block from the top edge to a side edge.
    assert rotated[0, 0, :8].sum() < 0.1
    assert rotated[0, 0, 10:18, :8].sum() + rotated[0, 0, 10:18, 20:].sum() > 8


def test_shift_domain_rejects_bad_shape() -> None:
    with pytest.raises(ValueError, match=r"\(N, C, H, W\), got \(28, 28\)"):
        shift_domain(torch.zeros(28, 28))


def test_fit_classifier_learns_toy_task(toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = toy
    torch.manual_seed(0)
    model = SmallCNN(channels=(4, 8, 8), hidden=16, num_classes=4)

    history = fit_classifier(model, images, labels, FitConfig(epochs=6, batch_size=16, lr=1e-2), progress=False)

    assert len(history.train_loss) == 6
    assert history.train_loss[-1] < history.train_loss[0]
    assert accuracy(model, images, labels) > 0.9
    assert history.optimizer_state_bytes > 0


def test_fit_classifier_is_deterministic(toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = toy
    states = []
    for _ in range(2):
        torch.manual_seed(0)
        model = SmallCNN(channels=(4, 8, 8), hidden=16, num_classes=4)
        fit_classifier(model, images, labels, FitConfig(epochs=2, batch_size=16, seed=5), progress=False)
        states.append(model.state_dict())

    for name, tensor in states[0].items():
        assert torch.equal(tensor, states[1][name]), name


def test_adam_state_is_two_moments_per_trainable(toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = toy
    model = prepare_model(SmallCNN(channels=(4, 8, 8), hidden=16, num_classes=4), "head")

    history = fit_classifier(model, images, labels, FitConfig(epochs=1, batch_size=32), progress=False)

    head_parameters = 16 * 4 + 4
    # exp_avg and exp_avg_sq in float32, plus one float32 step counter per tensor.
    assert history.optimizer_state_bytes == 2 * 4 * head_parameters + 2 * 4


def test_frozen_batchnorm_keeps_running_stats(toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = toy
    model = prepare_model(SmallCNN(channels=(4, 8, 8), hidden=16, num_classes=4), "head")
    before = model.bn1.running_mean.clone()

    fit_classifier(model, images, labels, FitConfig(epochs=1), batchnorm="frozen", progress=False)
    frozen_after = model.bn1.running_mean.clone()
    fit_classifier(model, images, labels, FitConfig(epochs=1), batchnorm="update", progress=False)

    assert torch.equal(frozen_after, before)
    assert not torch.equal(model.bn1.running_mean, before)


def test_fit_without_trainable_raises(toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    model = prepare_model(SmallCNN(), "none")

    with pytest.raises(ValueError, match="no trainable parameters"):
        fit_classifier(model, *toy, FitConfig(), progress=False)


def test_invalid_batchnorm_mode_raises(toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    with pytest.raises(ValueError, match="'train'"):
        fit_classifier(SmallCNN(), *toy, FitConfig(), batchnorm="train", progress=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(("field", "value"), [("epochs", 0), ("batch_size", -4), ("lr", 0.0)])
def test_invalid_fit_config_raises(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        FitConfig(**{field: value})


def test_prepare_model_trainable_sets() -> None:
    base = SmallCNN(channels=(4, 8, 8), hidden=16, num_classes=4)

    def trainable(strategy: str) -> set[str]:
        model = prepare_model(base, strategy, rank=2)
        return {name for name, p in model.named_parameters() if p.requires_grad}

    assert trainable("none") == set()
    assert trainable("head") == {"head.weight", "head.bias"}
    assert trainable("full") == {name for name, _ in base.named_parameters()}
    batchnorm_affine = {f"bn{i}.{kind}" for i in (1, 2, 3) for kind in ("weight", "bias")}
    assert trainable("lora") == {"head.weight", "head.bias"} | batchnorm_affine | {
        f"{layer}.{factor}" for layer in ("conv1", "conv2", "conv3", "fc") for factor in ("lora_A", "lora_B")
    }
    assert all(p.requires_grad for p in base.parameters())


def test_prepare_lora_starts_equal_to_base() -> None:
    torch.manual_seed(0)
    base = SmallCNN(channels=(4, 8, 8), hidden=16, num_classes=4).eval()
    inputs = torch.rand(2, 1, 28, 28)

    model = prepare_model(base, "lora", rank=2).eval()

    assert isinstance(model.conv2, LoRAConv2d)
    assert torch.equal(model(inputs), base(inputs))


def test_prepare_unknown_strategy_raises() -> None:
    with pytest.raises(ValueError, match="'prompt'.*none, head, full, lora"):
        prepare_model(SmallCNN(), "prompt")


def test_recompute_batchnorm_statistics(toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, _ = toy
    model = SmallCNN(channels=(4, 8, 8), hidden=16, num_classes=4)

    recompute_batchnorm_statistics(model, images)

    expected_mean = model.conv1(images).mean(dim=(0, 2, 3))
    torch.testing.assert_close(model.bn1.running_mean, expected_mean, rtol=1e-4, atol=1e-5)
    assert not model.training


def test_base_cache_loads_same_weights(tmp_path: Path, toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    config = FitConfig(epochs=1, batch_size=32)
    kwargs = {"channels": (4, 8, 8), "hidden": 16, "num_classes": 4}

    first, history = train_or_load_base(*toy, config, data_id="toy", model_kwargs=kwargs, cache_dir=tmp_path, progress=False)
    second, cached = train_or_load_base(*toy, config, data_id="toy", model_kwargs=kwargs, cache_dir=tmp_path, progress=False)

    assert len(list((tmp_path / "checkpoints").glob("smallcnn-*.pt"))) == 1
    assert cached.train_loss == history.train_loss
    for name, tensor in first.state_dict().items():
        assert torch.equal(tensor, second.state_dict()[name]), name


def test_run_strategy_and_summary(toy: tuple[torch.Tensor, torch.Tensor]) -> None:
    images, labels = toy
    base = SmallCNN(channels=(4, 8, 8), hidden=16, num_classes=4)
    runs: list[StrategyResult] = []
    for seed in (0, 1):
        config = FitConfig(epochs=1, batch_size=32, seed=seed)
        runs.append(run_strategy(base, "lora", (images, labels), (images, labels), config, rank=2, progress=False))
        runs.append(run_strategy(base, "none", (images, labels), (images, labels), config, progress=False))

    summary = summarise_runs(runs).set_index("strategy")

    lora_model = prepare_model(base, "lora", rank=2)
    assert summary.loc["lora", "trainable"] == count_parameters(lora_model).trainable
    assert summary.loc["lora", "seeds"] == 2
    assert summary.loc["none", "trainable"] == 0
    assert summary.loc["none", "optimizer_kib"] == 0
    assert 0 <= summary.loc["lora", "accuracy_mean"] <= 100


def test_base_cnn_learns_real_mnist(mirror_dir: Path, tmp_path: Path) -> None:
    train = data.load_image_dataset("mnist", "train").subset(2000, seed=0)
    test = data.load_image_dataset("mnist", "test").subset(500, seed=0)
    x_train, x_test = data.to_float_images(train.images), data.to_float_images(test.images)

    model, _ = train_or_load_base(
        x_train, train.labels, FitConfig(epochs=2, lr=3e-3), data_id="mnist-2000",
        cache_dir=tmp_path, progress=False,
    )

    assert accuracy(model, x_test, test.labels) > 0.85
    assert accuracy(model, shift_domain(x_test, seed=1), test.labels) < 0.7
