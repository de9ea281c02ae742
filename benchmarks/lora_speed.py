"""Benchmark: LoRA inference latency after merging, and LoRA against full fine-tuning cost.

Uses the chapter 3 classifier (``r2ska.finetune.SmallCNN``) with LoRA of rank 4 on its
three convolutions and hidden layer, the head and batch-norm layers trained in full, on random 1x28x28 inputs
(speed does not depend on the pixel values). Three results:

- ``lora_merged_latency``: inference time of the merged LoRA model over the base model's,
  batch 256. Goal: 1.00 within timing noise (at most 5 % apart).
- ``lora_train_step``: time of one Adam training step with LoRA over full fine-tuning,
  batch 64. Reported, no goal: the frozen weights still take part in the backward pass.
- ``lora_train_memory``: bytes of parameters, gradients and Adam state with LoRA over
  full fine-tuning (activations not counted). Goal: at most 0.5.

Timings interleave the two models round by round and keep the median, which makes them
robust to other processes sharing the CPU.

Run: ``python benchmarks/lora_speed.py``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from r2ska.benchmarking import BenchmarkResult, record_result
from r2ska.finetune import LORA_ALSO_TRAIN, LORA_TARGETS, SmallCNN, optimizer_state_bytes, prepare_model
from r2ska.lora import count_parameters, merge_lora

RESULTS = Path(__file__).resolve().parent / "results"
LATENCY_TOLERANCE = 0.05
MEMORY_GOAL = 0.5


def interleaved_medians(tasks: dict[str, Callable[[], None]], rounds: int, warmup: int = 3) -> dict[str, float]:
    """Time each task once per round, alternating between tasks, and return the median seconds."""
    for task in tasks.values():
        for _ in range(warmup):
            task()
    times: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(rounds):
        for name, task in tasks.items():
            start = time.perf_counter()
            task()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def training_state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Count the bytes of all parameters, of the trainable ones' gradients and of the optimiser state."""
    parameters = sum(p.numel() * p.element_size() for p in model.parameters())
    gradients = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    state = optimizer_state_bytes(optimizer)
    return {"parameters": parameters, "gradients": gradients, "adam_state": state,
            "total": parameters + gradients + state}


def make_step(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[Callable[[], None], torch.optim.Optimizer]:
    """Build one Adam training step over the trainable parameters of ``model``."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    images, labels = batch

    def step() -> None:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    return step, optimizer


def measure_latency(base: nn.Module, rank: int, batch_size: int, rounds: int) -> BenchmarkResult:
    merged = prepare_model(base, "lora", rank=rank)
    with torch.no_grad():
        for name in LORA_TARGETS:
            merged.get_submodule(name).lora_B.normal_(std=0.01)  # a non-zero update, as after training
    merge_lora(merged.eval())
    unmerged = prepare_model(base, "lora", rank=rank).eval()
    images = torch.rand(batch_size, 1, 28, 28)  # (B, 1, 28, 28)

    def infer(model: nn.Module) -> Callable[[], None]:
        return lambda: model(images)

    with torch.inference_mode():
        medians = interleaved_medians(
            {"base": infer(base), "merged": infer(merged), "unmerged": infer(unmerged)}, rounds
        )
    ratio = medians["merged"] / medians["base"]
    return BenchmarkResult(
        name="lora_merged_latency",
        description=f"Inference time of SmallCNN with merged rank-{rank} LoRA over the base model, batch {batch_size}, CPU",
        value=round(ratio, 3),
        unit="x",
        goal=f"1.00 ± {LATENCY_TOLERANCE:.2f}",
        met=abs(ratio - 1.0) <= LATENCY_TOLERANCE,
        details={
            "base ms per batch": round(1000 * medians["base"], 2),
            "merged ms per batch": round(1000 * medians["merged"], 2),
            "unmerged LoRA ms per batch": round(1000 * medians["unmerged"], 2),
            "unmerged over base": round(medians["unmerged"] / medians["base"], 3),
            "rounds (median kept)": rounds,
        },
    )


def measure_training(base: nn.Module, rank: int, batch_size: int, rounds: int) -> list[BenchmarkResult]:
    generator = torch.Generator().manual_seed(0)
    batch = (torch.rand(batch_size, 1, 28, 28, generator=generator),
             torch.randint(0, 10, (batch_size,), generator=generator))
    models = {"full": prepare_model(base, "full"), "lora": prepare_model(base, "lora", rank=rank)}
    steps, optimizers = {}, {}
    for name, model in models.items():
        steps[name], optimizers[name] = make_step(model, batch)

    medians = interleaved_medians(steps, rounds)  # the warm-up steps create the Adam state
    memory = {name: training_state_bytes(models[name], optimizers[name]) for name in models}
    trainable = {name: count_parameters(model).trainable for name, model in models.items()}
    step_ratio = medians["lora"] / medians["full"]
    memory_ratio = memory["lora"]["total"] / memory["full"]["total"]
    setup = f"SmallCNN, LoRA rank {rank} on {', '.join(LORA_TARGETS)} plus {', '.join(LORA_ALSO_TRAIN)}"

    step_result = BenchmarkResult(
        name="lora_train_step",
        description=f"Adam step time with LoRA over full fine-tuning, batch {batch_size}, CPU ({setup})",
        value=round(step_ratio, 3),
        unit="x",
        goal="reported (no goal)",
        met=True,
        details={
            "full ms per step": round(1000 * medians["full"], 2),
            "LoRA ms per step": round(1000 * medians["lora"], 2),
            "rounds (median kept)": rounds,
        },
    )
    memory_result = BenchmarkResult(
        name="lora_train_memory",
        description=f"Parameter + gradient + Adam state bytes with LoRA over full fine-tuning ({setup})",
        value=round(memory_ratio, 3),
        unit="x",
        goal=f"<= {MEMORY_GOAL}",
        met=memory_ratio <= MEMORY_GOAL,
        details={
            "full bytes": memory["full"],
            "LoRA bytes": memory["lora"],
            "full trainable parameters": trainable["full"],
            "LoRA trainable parameters": trainable["lora"],
            "note": "activation memory not counted",
        },
    )
    return [step_result, memory_result]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rank", type=int, default=4, help="LoRA rank")
    parser.add_argument("--rounds", type=int, default=50, help="timed rounds per model")
    parser.add_argument("--infer-batch", type=int, default=256, help="images per inference batch")
    parser.add_argument("--train-batch", type=int, default=64, help="images per training step")
    args = parser.parse_args()

    torch.manual_seed(0)
    base = SmallCNN().eval()
    results = [measure_latency(copy.deepcopy(base), args.rank, args.infer_batch, args.rounds)]
    results += measure_training(base, args.rank, args.train_batch, args.rounds)
    for result in results:
        print(record_result(result, RESULTS).read_text())


if __name__ == "__main__":
    main()
