"""The privacy statement: an epsilon in plain words, with every assumption it rests on."""

from __future__ import annotations

import math

# Appended to the statement of a run: what the guarantee does not cover.
RUN_CAVEAT = (" The per-step loss, clip fraction and gradient-norm statistics shown while training are computed from "
              "the private batches without noise, for teaching; they are not covered by this guarantee.")


def statement(*, epsilon: float, accountant: str, sampling: str, delta: float, noise_multiplier: float,
              sample_rate: float, steps: int, steps_per_epoch: int, epochs: int, dataset_size: int, batch_size: int,
              **_unused) -> str:
    """The privacy statement in plain words: the guarantee and every assumption it rests on."""
    name = {"rdp": "RDP (Rényi DP) accountant", "pld": "PLD (privacy loss distribution) accountant"}[accountant]
    run = (f"DP-SGD on {dataset_size:,} examples with expected batch size {batch_size} "
           f"(sampling rate q = {sample_rate:.4g}), noise multiplier {noise_multiplier:g}, "
           f"{epochs} epoch{'s' if epochs != 1 else ''} of {steps_per_epoch} steps ({steps:,} steps)")
    if math.isinf(epsilon):
        guarantee = "gives no differential privacy guarantee (epsilon is infinite): without noise, clipping alone " \
                    "does not hide any one example"
    else:
        guarantee = (f"satisfies ({epsilon:.3g}, {delta:g})-differential privacy by the {name}, "
                     "for add-or-remove-one-example adjacency, every intermediate model released")
    if sampling == "poisson":
        assumption = ("This assumes Poisson sampling: each example joins each step independently with probability q, "
                      "which is what the playground's trainer does. It is what makes the amplification by "
                      "subsampling valid.")
    else:
        assumption = ("This assumes shuffled batches, each example used once per epoch. No amplification by "
                      "subsampling is proven for that, so each epoch counts as one full Gaussian mechanism; that is "
                      "why this epsilon is much larger than under Poisson sampling.")
    return f"{run} {guarantee}. {assumption}"
