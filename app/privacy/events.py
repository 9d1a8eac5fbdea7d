"""The mechanism as data: a run's knobs -> the dp_accounting ``DpEvent`` that RDP and PLD both compose.

What is analysed (Abadi et al. 2016, arXiv:1607.00133): ``steps`` applications of the Gaussian mechanism with noise
multiplier sigma to a sum of per-example gradients clipped to norm C, under add-or-remove-one adjacency, every
intermediate model released. Steps per epoch are ``max(1, round(N / B))`` (halves round up), exactly what our trainer
runs; TF Privacy's ``compute_dp_sgd_privacy`` uses ``ceil(epochs * N / B)``, less than one step per epoch different.

Sampling assumptions:

- ``poisson``: every example joins every step independently with probability q = B / N (what our trainer does), so
  each step is a Poisson-subsampled Gaussian and enjoys privacy amplification by subsampling.
- ``shuffle``: each example is used once per epoch in shuffled batches. No amplification is proven for that, so, as
  ``compute_dp_sgd_privacy_statement`` does, each epoch counts as one unamplified Gaussian mechanism.

An epoch is ``unit_count`` repetitions of one ``unit_event`` (a step, or under shuffling the epoch itself), so an
accountant computes the unit once and scales or composes it for the whole per-epoch curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dp_accounting

SAMPLINGS = ("poisson", "shuffle")


def steps_per_epoch(*, dataset_size: int, batch_size: int) -> int:
    """Steps in one epoch: ``max(1, round(N / B))``, halves rounded up (our trainer runs exactly this many)."""
    return max(1, math.floor(dataset_size / batch_size + 0.5))


@dataclass(frozen=True)
class Mechanism:
    """One epoch of DP-SGD as an accountant sees it: ``unit_count`` compositions of ``unit_event``."""

    unit_event: dp_accounting.DpEvent
    unit_count: int
    sample_rate: float
    noise_multiplier: float

    def epoch_event(self) -> dp_accounting.DpEvent:
        return dp_accounting.SelfComposedDpEvent(self.unit_event, self.unit_count)

    def run_event(self, epochs: int) -> dp_accounting.DpEvent:
        """The whole run's event: what an independent accountant composes to check ours."""
        return dp_accounting.SelfComposedDpEvent(self.unit_event, self.unit_count * epochs)


def mechanism(*, noise_multiplier: float, batch_size: int, dataset_size: int, sampling: str) -> Mechanism:
    """The event of one epoch of DP-SGD with these knobs, under the sampling assumption ``sampling``."""
    gaussian = dp_accounting.GaussianDpEvent(noise_multiplier)
    sample_rate = batch_size / dataset_size
    if sampling == "shuffle":  # one unamplified Gaussian per epoch
        return Mechanism(gaussian, 1, sample_rate, noise_multiplier)
    step = dp_accounting.PoissonSampledDpEvent(sample_rate, gaussian)
    return Mechanism(step, steps_per_epoch(dataset_size=dataset_size, batch_size=batch_size), sample_rate,
                     noise_multiplier)


def accounting_args(knobs: dict, **change) -> dict:
    """The accountant's arguments for a run's knobs (which carry the sampling its runner uses), ``change`` applied."""
    args = {k: knobs[k] for k in ("noise_multiplier", "batch_size", "epochs", "dataset_size", "delta", "accountant",
                                  "sampling")}
    return {**args, **change}
