"""Tests for the seeded training loop and the checkpoint cache."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

import r2ska.training as training
from r2ska.data import load_image_dataset, to_float_images
from r2ska.models import ConvAutoencoder, ConvVAE
from r2ska.training import History, TrainConfig, cache_key, train_model, train_or_load

TINY = TrainConfig(epochs=2, batch_size=32, lr=3e-3, seed=0)
QUIET = {"device": "cpu", "progress": False}


@pytest.fixture(scope="module")
def mnist_images(mirror_dir: Path) -> torch.Tensor:
    """The first 600 MNIST test images as floats (600, 1, 28, 28), from the data mirror."""
    dataset = load_image_dataset("mnist", "test")
    return to_float_images(dataset.images[:600])


@pytest.fixture()
def synthetic_images() -> torch.Tensor:
    return torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def _seeded(cls: type[nn.Module], latent_dim: int = 4, seed: int = 0) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(latent_dim)


class _CountingAutoencoder(ConvAutoencoder):
    """Autoencoder that records the batch sizes its loss receives while training."""

    def __init__(self, latent_dim: int = 2) -> None:
        super().__init__(latent_dim)
        self.batch_sizes: list[int] = []

    def loss(self, x):
        if self.training:
            self.batch_sizes.append(len(x))
        return super().loss(x)


# TrainConfig


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        ("epochs", 0),
        ("epochs", 1.5),
        ("batch_size", -1),
        ("train_subset", 0),
        ("lr", 0.0),
        ("weight_decay", -1e-4),
    ],
)
def test_config_rejects_invalid_values(field, bad):
    with pytest.raises(ValueError, match=f"TrainConfig.{field}") as info:
        TrainConfig(**{field: bad})
    assert repr(bad) in str(info.value)


def test_config_is_frozen():
    config = TrainConfig()

    with pytest.raises(dataclasses.FrozenInstanceError):
        config.epochs = 3


# train_model


@pytest.mark.parametrize("cls", [ConvAutoencoder, ConvVAE])
def test_training_is_bit_identical_for_same_seed(cls, mnist_images):
    images = mnist_images[:128]
    first = _seeded(cls)
    second = _seeded(cls)

    # Different global random states before each run must not matter, only config.seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(100)
        history_first = train_model(first, images, images[:32], TINY, **QUIET)
        torch.manual_seed(200)
        history_second = train_model(second, images, images[:32], TINY, **QUIET)

    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert history_first.train_loss == history_second.train_loss
    assert history_first.val_loss == history_second.val_loss


def test_training_differs_for_other_seed(mnist_images):
    images = mnist_images[:128]
    first = _seeded(ConvVAE)
    second = _seeded(ConvVAE)

    train_model(first, images, None, TINY, **QUIET)
    train_model(second, images, None, dataclasses.replace(TINY, seed=1), **QUIET)

    assert not torch.equal(first.decoder[0].weight, second.decoder[0].weight)


def test_training_leaves_global_rng_untouched(synthetic_images):
    model = _seeded(ConvVAE)
    before = torch.random.get_rng_state()

    train_model(model, synthetic_images, None, TINY, **QUIET)

    assert torch.equal(torch.random.get_rng_state(), before)


@pytest.mark.parametrize("cls", [ConvAutoencoder, ConvVAE])
def test_loss_decreases_on_mnist_subset(cls, mnist_images):
    model = _seeded(cls, latent_dim=8)
    config = TrainConfig(epochs=3, batch_size=32, lr=3e-3, seed=0)

    history = train_model(model, mnist_images[:512], mnist_images[512:], config, **QUIET)

    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_loss[-1] < history.val_loss[0]


def test_history_has_one_entry_per_epoch(synthetic_images):
    model = _seeded(ConvVAE)
    config = dataclasses.replace(TINY, epochs=3)

    history = train_model(model, synthetic_images, synthetic_images[:8], config, **QUIET)

    assert len(history.train_loss) == 3
    assert len(history.val_loss) == 3
    assert len(history.epoch_seconds) == 3
    assert all(seconds > 0 for seconds in history.epoch_seconds)
    assert set(history.metrics) == {"recon", "kl", "val_recon", "val_kl"}
    assert all(len(values) == 3 for values in history.metrics.values())


def test_vae_train_loss_is_recon_plus_kl(synthetic_images):
    model = _seeded(ConvVAE)

    history = train_model(model, synthetic_images, synthetic_images, TINY, **QUIET)

    for epoch in range(TINY.epochs):
        recon_plus_kl = history.metrics["recon"][epoch] + history.metrics["kl"][epoch]
        assert history.train_loss[epoch] == pytest.approx(recon_plus_kl, rel=1e-5)
        val_recon_plus_kl = history.metrics["val_recon"][epoch] + history.metrics["val_kl"][epoch]
        assert history.val_loss[epoch] == pytest.approx(val_recon_plus_kl, rel=1e-5)


def test_no_validation_gives_empty_val_loss(synthetic_images):
    history = train_model(_seeded(ConvAutoencoder), synthetic_images, None, TINY, **QUIET)

    assert history.val_loss == []
    assert set(history.metrics) == {"mse"}


def test_train_subset_limits_images_per_epoch(synthetic_images):
    model = _CountingAutoencoder()
    config = TrainConfig(epochs=2, batch_size=16, seed=0, train_subset=40)

    train_model(model, synthetic_images, None, config, **QUIET)

    assert model.batch_sizes == [16, 16, 8, 16, 16, 8]


def test_model_left_in_eval_mode(synthetic_images):
    model = _seeded(ConvAutoencoder).train()

    train_model(model, synthetic_images, None, TINY, **QUIET)

    assert not model.training


def test_uint8_images_raise_type_error():
    images = torch.zeros(8, 28, 28, dtype=torch.uint8)

    with pytest.raises(TypeError, match="to_float_images"):
        train_model(ConvAutoencoder(2), images, None, TINY, **QUIET)


def test_progress_bar_is_quiet_when_disabled(synthetic_images, capsys):
    train_model(_seeded(ConvAutoencoder), synthetic_images, None, TINY, **QUIET)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == ""


def test_progress_bar_has_description(synthetic_images, capsys):
    train_model(_seeded(ConvAutoencoder), synthetic_images, None, TINY, device="cpu", progress=True)

    captured = capsys.readouterr()
    assert captured.out == ""
    assert "Training ConvAutoencoder" in captured.err


def test_history_round_trips_through_dict():
    history = History(
        train_loss=[1.0, 0.5], val_loss=[1.2], epoch_seconds=[0.1, 0.2], metrics={"kl": [3.0, 2.0]}
    )

    assert History.from_dict(json.loads(json.dumps(history.to_dict()))) == history


# train_or_load


@pytest.fixture()
def count_training(monkeypatch):
    """Wrap train_model so that a test can count real training runs."""
    calls: list[TrainConfig] = []
    real = training.train_model

    def counting(model, train_images, val_images, config, **kwargs):
        calls.append(config)
        return real(model, train_images, val_images, config, **kwargs)

    monkeypatch.setattr(training, "train_model", counting)
    return calls


def _factory() -> nn.Module:
    return ConvAutoencoder(3)


def test_second_call_loads_from_cache(tmp_path, synthetic_images, count_training):
    arguments = dict(data_id="synthetic", cache_dir=tmp_path, **QUIET)
    validation = synthetic_images[:8]

    first, first_history = train_or_load(_factory, synthetic_images, validation, TINY, **arguments)
    second, second_history = train_or_load(
        _factory, synthetic_images, validation, TINY, **arguments
    )

    assert len(count_training) == 1
    assert second_history == first_history
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert not second.training


def test_checkpoint_files_are_named_by_key(tmp_path, synthetic_images):
    arguments = dict(data_id="synthetic", cache_dir=tmp_path, **QUIET)

    model, history = train_or_load(_factory, synthetic_images, None, TINY, **arguments)
    key = cache_key(model, TINY, "synthetic")

    folder = tmp_path / "checkpoints"
    assert sorted(path.name for path in folder.iterdir()) == [f"{key}.json", f"{key}.pt"]
    summary = json.loads((folder / f"{key}.json").read_text())
    assert summary["key"] == key
    assert summary["data_id"] == "synthetic"
    assert summary["config"]["epochs"] == TINY.epochs
    assert History.from_dict(summary["history"]) == history


def test_changed_config_trains_new_checkpoint(tmp_path, synthetic_images, count_training):
    arguments = dict(data_id="synthetic", cache_dir=tmp_path, **QUIET)

    train_or_load(_factory, synthetic_images, None, TINY, **arguments)
    train_or_load(_factory, synthetic_images, None, dataclasses.replace(TINY, lr=1e-3), **arguments)

    assert len(count_training) == 2
    assert len(list((tmp_path / "checkpoints").glob("*.pt"))) == 2


def test_cache_key_changes_with_each_input():
    model = ConvAutoencoder(3)
    base = cache_key(model, TINY, "mnist")

    variants = [
        cache_key(model, dataclasses.replace(TINY, seed=1), "mnist"),
        cache_key(model, dataclasses.replace(TINY, train_subset=100), "mnist"),
        cache_key(model, TINY, "fashion-mnist"),
        cache_key(ConvAutoencoder(4), TINY, "mnist"),
        cache_key(ConvVAE(3), TINY, "mnist"),
    ]

    assert cache_key(ConvAutoencoder(3), TINY, "mnist") == base
    assert len({base, *variants}) == 1 + len(variants)


def test_cache_key_uses_repr_without_hparams():
    small = nn.Sequential(nn.Linear(2, 3))
    large = nn.Sequential(nn.Linear(2, 4))

    assert cache_key(small, TINY, "x") != cache_key(large, TINY, "x")


def test_corrupt_checkpoint_warns_and_retrains(tmp_path, synthetic_images, count_training):
    arguments = dict(data_id="synthetic", cache_dir=tmp_path, **QUIET)
    model, _ = train_or_load(_factory, synthetic_images, None, TINY, **arguments)
    checkpoint = tmp_path / "checkpoints" / f"{cache_key(model, TINY, 'synthetic')}.pt"
    checkpoint.write_bytes(b"not a checkpoint")

    with pytest.warns(UserWarning, match="could not be loaded"):
        retrained, _ = train_or_load(_factory, synthetic_images, None, TINY, **arguments)

    assert len(count_training) == 2
    for (name, a), b in zip(model.state_dict().items(), retrained.state_dict().values()):
        assert torch.equal(a, b), name
    rewritten = torch.load(checkpoint, weights_only=True)
    assert rewritten["state_dict"].keys() == model.state_dict().keys()


def test_mismatched_checkpoint_retrains_from_seed(tmp_path, synthetic_images, count_training):
    arguments = dict(data_id="synthetic", cache_dir=tmp_path, **QUIET)
    model, _ = train_or_load(_factory, synthetic_images, None, TINY, **arguments)
    checkpoint = tmp_path / "checkpoints" / f"{cache_key(model, TINY, 'synthetic')}.pt"
    saved = torch.load(checkpoint, weights_only=True)
    saved["state_dict"]["unexpected.weight"] = torch.zeros(1)
    torch.save(saved, checkpoint)

    with pytest.warns(UserWarning, match="could not be loaded"):
        retrained, _ = train_or_load(_factory, synthetic_images, None, TINY, **arguments)

    assert len(count_training) == 2
    for (name, a), b in zip(model.state_dict().items(), retrained.state_dict().values()):
        assert torch.equal(a, b), name


def test_instance_is_trained_in_place_then_loaded(tmp_path, synthetic_images, count_training):
    arguments = dict(data_id="synthetic", cache_dir=tmp_path, **QUIET)
    trained = _seeded(ConvAutoencoder, 3)
    fresh = _seeded(ConvAutoencoder, 3, seed=5)

    returned, _ = train_or_load(trained, synthetic_images, None, TINY, **arguments)
    loaded, _ = train_or_load(fresh, synthetic_images, None, TINY, **arguments)

    assert returned is trained
    assert loaded is fresh
    assert len(count_training) == 1
    assert torch.equal(fresh.decoder[0].weight, trained.decoder[0].weight)


def test_default_cache_dir_from_environment(tmp_path, monkeypatch, synthetic_images):
    monkeypatch.setenv("R2SKA_CACHE", str(tmp_path))

    model, _ = train_or_load(_factory, synthetic_images, None, TINY, data_id="synthetic", **QUIET)

    assert (tmp_path / "checkpoints" / f"{cache_key(model, TINY, 'synthetic')}.pt").is_file()


def test_interrupted_write_keeps_old_file(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"old")

    def failing_write(path: Path) -> None:
        path.write_bytes(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        training._write_atomically(target, failing_write)

    assert target.read_bytes() == b"old"
    assert [path.name for path in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_cache_key_tracks_model_source(monkeypatch):
    model = ConvAutoencoder(4)
    config = TrainConfig(epochs=1)
    before = training.cache_key(model, config, "data")

    monkeypatch.setattr(training, "code_fingerprint", lambda model: "edited-source")
    assert training.cache_key(model, config, "data") != before


def test_code_fingerprint_reads_model_module():
    fingerprint = training.code_fingerprint(ConvAutoencoder(4))
    assert len(fingerprint) == 16
    assert fingerprint == training.code_fingerprint(ConvVAE(4))
