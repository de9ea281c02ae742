import pytest
import torch

from r2ska.device import get_device


def test_get_device_automatic_is_available():
    device = get_device()
    assert device.type in {"cuda", "mps", "cpu"}
    torch.zeros(1, device=device)


def test_get_device_prefers_cuda_then_mps(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert get_device().type == "mps"

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert get_device().type == "cuda"


def test_get_device_falls_back_to_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert get_device() == torch.device("cpu")


def test_get_device_rejects_unknown_name():
    with pytest.raises(ValueError, match="'tpu'"):
        get_device("tpu")


def test_get_device_rejects_missing_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="not available"):
        get_device("cuda")
