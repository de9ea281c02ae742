"""Benchmark: test reconstruction error of the conv autoencoder at latent dimension 16.

Trains ``ConvAutoencoder(16)`` on the full MNIST training set with the settings of
chapter 1: 5 epochs, batch 128, Adam at 3e-3, seed 0. It then measures the mean squared
error per pixel on the 10 000 test images, pixels in [0, 1]. Goal: at most 0.010.

Run: ``python benchmarks/ae_reconstruction.py``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from r2ska import data, latent
from r2ska.benchmarking import BenchmarkResult, record_result
from r2ska.models import ConvAutoencoder
from r2ska.training import TrainConfig, train_model

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_MSE = 0.010


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="training epochs")
    args = parser.parse_args()

    train = data.to_float_images(data.load_image_dataset("mnist", "train").images)
    test = data.to_float_images(data.load_image_dataset("mnist", "test").images)
    config = TrainConfig(epochs=args.epochs, batch_size=128, lr=3e-3, seed=0)

    model = ConvAutoencoder(16)
    start = time.perf_counter()
    history = train_model(model, train, None, config, device="cpu", progress=False)
    seconds = time.perf_counter() - start
    mse = latent.reconstruction_error(model, test)

    result = BenchmarkResult(
        name="ae_reconstruction",
        description="ConvAutoencoder test reconstruction MSE per pixel, latent 16, MNIST",
        value=round(mse, 5),
        unit="MSE per pixel",
        goal=f"<= {GOAL_MSE}",
        met=mse <= GOAL_MSE,
        details={
            "epochs": args.epochs,
            "training seconds (CPU)": round(seconds, 1),
            "final train loss": round(history.train_loss[-1], 5),
        },
    )
    print(record_result(result, RESULTS).read_text())


if __name__ == "__main__":
    main()
