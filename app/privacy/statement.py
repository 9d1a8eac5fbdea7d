"""The privacy statement: an epsilon in plain words, with every assumption it rests on."""

from __future__ import annotations

import math

# Appended to the statement of a run: what the guarantee does not cover.
RUN_CAVEAT = (" The per-step loss, clip fraction and gradient-norm statistics shown while training are computed from "
              "the private batches without noise, for teaching; they are not covered by this guarantee.")


def statement(*, epsilon: float, accountant: str, sampling: str, delta: float, noise_multiplier: float,
              sample_rate: float, steps: int, steps_per_epoch: int, epochs: int, dataset_size: int, batch_size: int,
              clipping: str = "flat", microbatches: int = 0, **_unused) -> str:
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
    return f"{run} {guarantee}. {assumption}{_variant(clipping, microbatches, noise_multiplier)}"


def _variant(clipping: str, microbatches: int, noise_multiplier: float) -> str:
    """What a clipping variant or microbatching changes in the analysis (nothing said for flat clipping)."""
    if microbatches:
        return (f" Gradients are clipped per microbatch ({microbatches} microbatches): one example can move its "
                "microbatch's clipped mean by up to 2C, so the sensitivity doubles and the accountant analyses noise "
                f"multiplier {noise_multiplier / 2:g} (TF Privacy's used_microbatching).")
    if clipping == "adaptive":
        return (" The clipping norm adapts (Andrew et al. 2021): each step also releases a noisy count of unclipped "
                "examples, and the gradient noise is raised so that both together are exactly one Gaussian of the "
                "stated noise multiplier; this epsilon covers both.")
    if clipping == "automatic":
        return (" Gradients are normalised (automatic clipping) to norm below 1, and the noise is the noise "
                "multiplier times 1.")
    return ""
