"""Benchmark: training throughput of r2ska's in-memory batches vs a DataLoader loop.

Both loops train the same ConvAutoencoder with the same batch size, optimiser and
number of steps on real MNIST. The r2ska loop slices batches from one float tensor held
in memory. The usual loop reads torchvision's MNIST dataset through a DataLoader that
turns every image into a PIL image and then a tensor (``ToTensor``). Goal: at least 5x
faster on the CPU.

Run: ``python benchmarks/train_throughput.py`` (needs the MNIST files: set
R2SKA_DATA_MIRROR or have network access).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from r2ska import data
from r2ska.benchmarking import BenchmarkResult, record_result
from r2ska.models import ConvAutoencoder

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_SPEEDUP = 5.0


def _train_steps(batches, steps: int, seed: int) -> float:
    """Train a fresh model for ``steps`` batches and return the seconds it took."""
    torch.manual_seed(seed)
    model = ConvAutoencoder(16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    start = time.perf_counter()
    for step, batch in enumerate(batches):
        if step == steps:
            break
        loss, _ = model.loss(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return time.perf_counter() - start


def _torchvision_mnist(root: Path) -> datasets.MNIST:
    """Lay out the verified MNIST files the way torchvision expects and open them."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for remote in data.files_for("mnist"):
        shutil.copy(data.fetch_file(remote), raw / remote.name)
    # download=True only checks the md5 of the files copied above and unpacks them.
    return datasets.MNIST(root, train=True, download=True, transform=transforms.ToTensor())


def _data_seconds(batches, steps: int) -> float:
    """Return the seconds needed only to produce ``steps`` batches, without training."""
    start = time.perf_counter()
    for step, _ in enumerate(batches):
        if step + 1 == steps:
            break
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="optimiser steps per loop")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each loop")
    args = parser.parse_args()

    images = data.to_float_images(data.load_image_dataset("mnist", "train").images)

    def ours():
        generator = torch.Generator().manual_seed(0)
        return data.iterate_batches(images, args.batch_size, shuffle=True, generator=generator)

    with tempfile.TemporaryDirectory() as folder:
        mnist = _torchvision_mnist(Path(folder))
        loader = DataLoader(mnist, batch_size=args.batch_size, shuffle=True, num_workers=0)

        def usual():
            return (batch for batch, _ in loader)

        # Alternate the two loops and keep the median, so that a busy moment of the
        # machine does not favour either. The first round is a warm-up and is dropped.
        timings = {"ours": [], "usual": [], "ours data": [], "usual data": []}
        for _ in range(args.repeats + 1):
            timings["ours"].append(_train_steps(ours(), args.steps, seed=0))
            timings["usual"].append(_train_steps(usual(), args.steps, seed=0))
            timings["ours data"].append(_data_seconds(ours(), args.steps))
            timings["usual data"].append(_data_seconds(usual(), args.steps))
    seconds = {name: statistics.median(values[1:]) for name, values in timings.items()}

    images_seen = args.steps * args.batch_size
    speedup = seconds["usual"] / seconds["ours"]
    result = BenchmarkResult(
        name="train_throughput",
        description="Training throughput, in-memory tensor batches vs DataLoader + ToTensor "
        "(ConvAutoencoder, latent 16, MNIST)",
        value=round(speedup, 2),
        unit="x faster",
        goal=f">= {GOAL_SPEEDUP:g}x",
        met=speedup >= GOAL_SPEEDUP,
        details={
            "steps": args.steps,
            "batch_size": args.batch_size,
            "timed runs (median)": args.repeats,
            "r2ska training images/s": round(images_seen / seconds["ours"]),
            "DataLoader training images/s": round(images_seen / seconds["usual"]),
            "r2ska batching alone, images/s": round(images_seen / seconds["ours data"]),
            "DataLoader batching alone, images/s": round(images_seen / seconds["usual data"]),
            "batching alone, speed-up": round(seconds["usual data"] / seconds["ours data"], 1),
            "DataLoader workers": 0,
        },
    )
    print(record_result(result, RESULTS).read_text())


if __name__ == "__main__":
    main()
