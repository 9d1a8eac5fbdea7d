"""Clipping variants, one registry: a name -> the rule that turns per-example (or per-microbatch) gradient norms into
scale factors, plus the random sparsification mask and the adaptive clipping norm's update.

Every rule is array-generic: it receives ``ops`` (``numpy`` in the pure tests, ``tensorflow`` inside the compiled
step; both spell ``sqrt``, ``minimum`` and ``maximum`` alike), so the math here is exactly what the step runs and a
test can check it on known values without TensorFlow. A rule takes the per-tensor *squared* norms (one ``[n]`` array
per trainable tensor, in the order of the model's trainable variables) and returns, for each tensor, the ``[n]``
factors its per-example gradients are multiplied by before summing, the ``[n]`` overall norms the records report and
the ``[n]`` boolean "scaled down" flags ``clip_fraction`` counts.

- ``flat`` (Abadi et al. 2016, arXiv:1607.00133): one norm over all tensors, factor ``min(1, C / norm)``. Sensitivity
  C. ``clip_fraction``: norm > C.
- ``per_layer`` (Opacus's ``clipping="per_layer"``; McMahan et al. 2018, "A General Approach to Adding Differential
  Privacy to Iterative Training Procedures", arXiv:1812.06210): each of the L tensors
  clipped to ``C / sqrt(L)``, so the concatenated gradient's norm is at most C: sensitivity C, accounting unchanged.
  ``clip_fraction``: some tensor was clipped.
- ``automatic`` (AUTO-S, Bu et al. 2022, "Automatic Clipping", arXiv:2206.07136): factor ``1 / (norm + gamma)``,
  gamma 0.01, so every scaled gradient has norm below 1: sensitivity 1, the noise std is sigma (C does not enter;
  the learning rate absorbs it). ``clip_fraction``: the factor is below 1, i.e. the gradient was scaled *down*
  (norm > 1 - gamma); the others are scaled up, which flat clipping never does.
- ``adaptive`` (Andrew et al. 2021, "Differentially Private Learning with Adaptive Clipping", arXiv:1905.03871): flat
  clipping at a norm C_t that follows a target quantile of the norms (:class:`AdaptiveClip`). The noise split that
  keeps the total privacy that of sigma is accounting's: ``app.privacy.events.adaptive_noise``.

Random sparsification (Zhu & Blaschko 2021, "Improving Differentially Private SGD via Randomly Sparsified
Gradients", arXiv:2112.00845): :func:`sparsification_mask` drops a uniformly random set of exactly
``round(rate * D)`` of the D gradient coordinates (the same for every example of the step), before clipping, and the
noise on them too; the rate rises linearly to its final value, redrawn ``SPARSIFICATION_REFRESH`` times an epoch
(:func:`sparsification_rate`, as in the authors' code). The mask is drawn from the seed and the step's position only,
never from data, so releasing it reveals nothing: the masked gradient still has sensitivity C and the noisy update
is the Gaussian mechanism on it followed by post-processing, so the accounting is unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

AUTO_S_GAMMA = 0.01  # Bu et al. 2022's stability constant
ADAPTIVE_LEARNING_RATE = 0.2  # eta_C of Andrew et al. 2021's geometric update (their default)
SPARSIFICATION_REFRESH = 2  # mask redrawn this many times an epoch (the clipping study's setting)
_TINY = 1e-30


@dataclass(frozen=True)
class Scaled:
    """What a rule returns: per-tensor factors (``[n]`` each), the overall norms and the scaled-down flags."""

    factors: list
    norms: object
    clipped: object


@dataclass(frozen=True)
class ClippingRule:
    """One clipping variant: ``scale(ops, squared, clip)`` -> :class:`Scaled`; ``sensitivity(clip)`` is the L2
    sensitivity of the summed scaled gradients (the noise std is the noise multiplier times it)."""

    name: str
    scale: Callable
    sensitivity: Callable[[float], float]


def _total_norm(ops, squared: list):
    return ops.sqrt(sum(squared[1:], squared[0]))


def _flat(ops, squared: list, clip) -> Scaled:
    norms = _total_norm(ops, squared)
    factor = ops.minimum(1.0, clip / ops.maximum(norms, _TINY))
    return Scaled([factor] * len(squared), norms, norms > clip)


def _per_layer(ops, squared: list, clip) -> Scaled:
    share = clip / math.sqrt(len(squared))
    tensor_norms = [ops.sqrt(s) for s in squared]
    factors = [ops.minimum(1.0, share / ops.maximum(n, _TINY)) for n in tensor_norms]
    over = [n > share for n in tensor_norms]
    clipped = over[0]
    for flag in over[1:]:
        clipped = ops.logical_or(clipped, flag)
    return Scaled(factors, _total_norm(ops, squared), clipped)


def _automatic(ops, squared: list, clip) -> Scaled:
    norms = _total_norm(ops, squared)
    factor = 1.0 / (norms + AUTO_S_GAMMA)
    return Scaled([factor] * len(squared), norms, factor < 1.0)


CLIPPING: dict[str, ClippingRule] = {rule.name: rule for rule in (
    ClippingRule("flat", _flat, lambda clip: clip),
    ClippingRule("per_layer", _per_layer, lambda clip: clip),
    ClippingRule("automatic", _automatic, lambda clip: 1.0),
    ClippingRule("adaptive", _flat, lambda clip: clip),  # flat at the current C_t
)}


def get_rule(name: str) -> ClippingRule:
    """The rule registered as ``name``.

    Raises:
        ValueError: naming the unknown value and the known ones.
    """
    try:
        return CLIPPING[name]
    except KeyError:
        raise ValueError(f"unknown clipping {name!r}; known: {', '.join(CLIPPING)}") from None


class AdaptiveClip:
    """The clipping norm of adaptive clipping (Andrew et al. 2021, Algorithm 1 with the geometric update).

    After each step the fraction of examples *not* clipped is released with Gaussian noise,
    ``b = (#{norm <= C} + N(0, count_std^2)) / B``, and ``C <- C * exp(-eta (b - target_quantile))``: C shrinks when
    more than the target fraction fit under it and grows when fewer do, so it tracks the target quantile of the norms.

    Args:
        initial: C_0 (the run's ``max_grad_norm``). target_quantile: in (0, 1). batch_size: the expected B.
        count_std: the count's noise std sigma_b (``app.privacy.events.adaptive_noise``). rng: a numpy Generator.
    """

    def __init__(self, *, initial: float, target_quantile: float, batch_size: int, count_std: float,
                 rng: np.random.Generator, learning_rate: float = ADAPTIVE_LEARNING_RATE):
        if not 0 < target_quantile < 1:
            raise ValueError(f"target_quantile must be strictly between 0 and 1, got {target_quantile!r}")
        self.value = float(initial)
        self._target, self._batch, self._std = target_quantile, batch_size, count_std
        self._rng, self._eta = rng, learning_rate

    def update(self, unclipped: int) -> float:
        """Move C after a step where ``unclipped`` examples had norm <= C; returns the new C."""
        fraction = (unclipped + self._rng.normal(0.0, self._std)) / self._batch
        self.value *= math.exp(-self._eta * (fraction - self._target))
        return self.value


def sparsification_rate(*, final_rate: float, period: int, periods: int) -> float:
    """The fraction of coordinates dropped in refresh period ``period`` (0-based) of ``periods``: rising linearly
    from 0 to ``final_rate`` at the last period (Zhu & Blaschko's "gradual cooling")."""
    if periods <= 1:
        return final_rate
    return min(final_rate, max(0.0, final_rate * period / (periods - 1)))


def sparsification_mask(*, sizes: list[int], rate: float, seed: int, period: int) -> list[np.ndarray]:
    """Keep-masks (float32 0/1, one per tensor of ``sizes`` coordinates) dropping exactly ``round(rate * D)`` of the
    D coordinates, uniformly at random. Drawn from ``(seed, period)`` alone: no data enters, which is why the
    accounting is unchanged."""
    total = int(sum(sizes))
    keep = np.ones(total, np.float32)
    dropped = int(round(rate * total))
    if dropped:
        rng = np.random.default_rng([seed, period, 0x5EED])
        keep[rng.permutation(total)[:dropped]] = 0.0
    return np.split(keep, np.cumsum(sizes)[:-1])
