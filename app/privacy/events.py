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

Clipping variants and microbatches change the event (``docs/variants.md``):

- ``flat``, ``per_layer`` (each of L tensors clipped to C / sqrt(L), so the whole gradient's norm is at most C) and
  ``automatic`` (each scaled gradient has norm below 1 and the noise std is sigma, not sigma C): the gradient sum has
  sensitivity equal to the noise's unit, so the event is the Gaussian of sigma, unchanged. Random sparsification
  drops a data-independent set of coordinates (and their noise): post-processing, the same event.
- ``microbatches`` M > 0 (TF Privacy's ``num_microbatches``): each microbatch's *mean* gradient is clipped to C, and
  adding or removing one example moves one clipped mean by up to 2C, so the sensitivity doubles: the event is the
  Gaussian of sigma / 2, exactly TF Privacy's ``used_microbatching=True`` in ``compute_dp_sgd_privacy_lib``
  (``noise_multiplier /= 2``).
- ``adaptive`` (Andrew et al. 2021, arXiv:1905.03871, Theorem 1): each step also releases the count of unclipped
  examples with Gaussian noise sigma_b; centred as sum(b_i - 1/2) its sensitivity is 1/2, so it is a Gaussian of
  noise multiplier 2 sigma_b. The event composes both on the same Poisson batch, ``ComposedDpEvent([Gaussian(
  sigma_grad), Gaussian(2 sigma_b)])``, with the gradient noise raised to sigma_grad = (sigma^-2 - (2 sigma_b)^-2)^-1/2
  so the pair is exactly one Gaussian of sigma (two Gaussian queries on the same batch are one query of a vector:
  McMahan et al. 2018, arXiv:1812.06210, Sec. 3; dp_accounting's RDP accountant reduces it the same way). Epsilon is
  therefore the flat run's; the price is paid in gradient noise (at most 15% more with sigma_b = max(B / 20, sigma)).

An epoch is ``unit_count`` repetitions of one ``unit_event`` (a step, or under shuffling the epoch itself), so an
accountant computes the unit once and scales or composes it for the whole per-epoch curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import dp_accounting

SAMPLINGS = ("poisson", "shuffle")
CLIPPINGS = ("flat", "per_layer", "automatic", "adaptive")


def adaptive_noise(*, noise_multiplier: float, batch_size: int) -> tuple[float, float]:
    """Adaptive clipping's noise split: (gradient noise multiplier sigma_grad, count noise std sigma_b).

    sigma_b = max(B / 20, sigma) (B / 20 is Andrew et al.'s recommendation; at least sigma keeps the split possible
    for small batches), and sigma_grad = (sigma^-2 - (2 sigma_b)^-2)^-1/2, so that the two mechanisms together are one
    Gaussian of noise multiplier sigma. Without noise (sigma 0) there is no privacy to split: (0, sigma_b).
    """
    count_std = max(batch_size / 20, noise_multiplier)
    if noise_multiplier == 0:
        return 0.0, count_std
    return (noise_multiplier ** -2 - (2 * count_std) ** -2) ** -0.5, count_std


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


def step_release(*, noise_multiplier: float, batch_size: int, clipping: str = "flat",
                 microbatches: int = 0) -> dp_accounting.DpEvent:
    """What one step releases about its batch, before sampling: the Gaussian of the noised gradient sum (of
    sigma / 2 with microbatches), composed with the noisy clipped count under adaptive clipping."""
    if clipping == "adaptive":
        gradient_sigma, count_std = adaptive_noise(noise_multiplier=noise_multiplier, batch_size=batch_size)
        return dp_accounting.ComposedDpEvent((dp_accounting.GaussianDpEvent(gradient_sigma),  # a tuple: the
                                              dp_accounting.GaussianDpEvent(2 * count_std)))  # caches hash it
    return dp_accounting.GaussianDpEvent(noise_multiplier / 2 if microbatches else noise_multiplier)


def effective_noise_multiplier(event: dp_accounting.DpEvent) -> float:
    """The noise multiplier of the one Gaussian equal to ``event``, a Gaussian or a composition of Gaussians on the
    same data: (sum sigma_i^-2)^-1/2 (McMahan et al. 2018, arXiv:1812.06210, Sec. 3)."""
    if isinstance(event, dp_accounting.GaussianDpEvent):
        return event.noise_multiplier
    if isinstance(event, dp_accounting.ComposedDpEvent):
        sigmas = [effective_noise_multiplier(e) for e in event.events]
        return 0.0 if min(sigmas) == 0 else sum(s ** -2 for s in sigmas) ** -0.5
    raise ValueError(f"not a Gaussian or a composition of Gaussians: {event!r}")


def mechanism(*, noise_multiplier: float, batch_size: int, dataset_size: int, sampling: str, clipping: str = "flat",
              microbatches: int = 0) -> Mechanism:
    """The event of one epoch of DP-SGD with these knobs, under the sampling assumption ``sampling``."""
    release = step_release(noise_multiplier=noise_multiplier, batch_size=batch_size, clipping=clipping,
                           microbatches=microbatches)
    sigma = effective_noise_multiplier(release)
    sample_rate = batch_size / dataset_size
    if sampling == "shuffle":  # one unamplified Gaussian per epoch
        return Mechanism(release, 1, sample_rate, sigma)
    step = dp_accounting.PoissonSampledDpEvent(sample_rate, release)
    return Mechanism(step, steps_per_epoch(dataset_size=dataset_size, batch_size=batch_size), sample_rate, sigma)


def accounting_args(knobs: dict, **change) -> dict:
    """The accountant's arguments for a run's knobs (which carry the sampling its runner uses), ``change`` applied."""
    args = {k: knobs[k] for k in ("noise_multiplier", "batch_size", "epochs", "dataset_size", "delta", "accountant",
                                  "sampling")}
    args.update(clipping=knobs.get("clipping", "flat"), microbatches=knobs.get("microbatches", 0))
    return {**args, **change}
