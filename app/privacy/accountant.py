"""Epsilon of a DP-SGD run, epoch by epoch, by composing its mechanism (``app.privacy.events``) under RDP or PLD.

Pure functions over Google's ``dp_accounting`` (the library TF Privacy itself calls); no Flask, no TensorFlow.

Accountants: ``rdp`` (Rényi DP, Mironov 2017, with the conversion of Canonne et al. 2020 that dp_accounting applies)
and ``pld`` (privacy loss distributions, Koskela et al. 2020 / Doroshenko et al. 2022, pessimistic discretisation), both
upper bounds on epsilon. RDP composes additively: the RDP of the mechanism's unit event is computed once per order and
scaled, so the whole per-epoch curve costs one evaluation; PLD composes the unit's distribution epoch by epoch.
"""

from __future__ import annotations

import math
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache

import dp_accounting
from dp_accounting.pld import privacy_loss_distribution as pld_lib
from dp_accounting.rdp import rdp_privacy_accountant as rdp_lib

from app.params import ParamError
from app.privacy.events import (CLIPPINGS, SAMPLINGS, Mechanism, effective_noise_multiplier, mechanism,
                                steps_per_epoch)
from app.privacy.statement import statement
from app.records import finite_or_none

ACCOUNTANTS = ("rdp", "pld")

# PLD cost grows with the width of the privacy-loss support, which grows with epsilon. Above this RDP epsilon the
# guarantee means nothing anyway, so PLD is not computed (it could take seconds and a gigabyte on a shared server).
PLD_MAX_RDP_EPSILON = 50.0
PLD_DISCRETIZATION = 1e-3
_pld_slot = threading.BoundedSemaphore(1)  # one PLD computation at a time: it is the only costly query

# Orders for the RDP search. dp_accounting's default grid costs tens of ms per (q, sigma), mostly at orders that are
# not optimal. We evaluate a coarse subset, then every default order between the coarse neighbours of the optimum:
# the same epsilon as the full default grid (tests check it), at a fraction of the cost.
_DEFAULT_ORDERS = tuple(float(a) for a in rdp_lib.DEFAULT_RDP_ORDERS)
_COARSE_ORDERS = (1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0, 16.0, 20.0, 24.0, 32.0, 48.0, 63.0, 128.0, 256.0,
                  512.0, 1024.0)


@dataclass(frozen=True)
class PrivacyReport:
    """An epsilon with everything needed to state what it means."""

    epsilon: float
    accountant: str
    sampling: str
    delta: float
    noise_multiplier: float
    sample_rate: float
    steps: int
    steps_per_epoch: int
    epochs: int
    dataset_size: int
    batch_size: int
    epsilon_per_epoch: tuple[float, ...]
    statement: str
    clipping: str = "flat"
    microbatches: int = 0

    def to_dict(self) -> dict:
        """JSON-ready: an infinite epsilon becomes ``null`` with ``epsilon_infinite: true``."""
        return {
            "epsilon": finite_or_none(self.epsilon),
            "epsilon_infinite": math.isinf(self.epsilon),
            "accountant": self.accountant,
            "sampling": self.sampling,
            "delta": self.delta,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "steps": self.steps,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "dataset_size": self.dataset_size,
            "batch_size": self.batch_size,
            "epsilon_per_epoch": [finite_or_none(e) for e in self.epsilon_per_epoch],
            "statement": self.statement,
            "clipping": self.clipping,
            "microbatches": self.microbatches,
        }


def _check(*, noise_multiplier: float, batch_size: int, epochs: int, dataset_size: int, delta: float,
           accountant: str, sampling: str, clipping: str = "flat", microbatches: int = 0) -> None:
    errors = {}
    if not (noise_multiplier >= 0 and math.isfinite(noise_multiplier)):
        errors["noise_multiplier"] = f"must be a finite number >= 0, got {noise_multiplier!r}"
    if not 0 < delta < 1:
        errors["delta"] = f"must be strictly between 0 and 1, got {delta!r}"
    if not (isinstance(epochs, int) and epochs >= 1):
        errors["epochs"] = f"must be a whole number >= 1, got {epochs!r}"
    if not (isinstance(dataset_size, int) and dataset_size >= 1):
        errors["dataset_size"] = f"must be a whole number >= 1, got {dataset_size!r}"
    elif not (isinstance(batch_size, int) and 1 <= batch_size <= dataset_size):
        errors["batch_size"] = f"must be a whole number from 1 to dataset_size ({dataset_size}), got {batch_size!r}"
    if accountant not in ACCOUNTANTS:
        errors["accountant"] = f"must be one of {', '.join(ACCOUNTANTS)}; got {accountant!r}"
    if sampling not in SAMPLINGS:
        errors["sampling"] = f"must be one of {', '.join(SAMPLINGS)}; got {sampling!r}"
    if clipping not in CLIPPINGS:
        errors["clipping"] = f"must be one of {', '.join(CLIPPINGS)}; got {clipping!r}"
    if not (isinstance(microbatches, int) and microbatches >= 0):
        errors["microbatches"] = f"must be a whole number >= 0, got {microbatches!r}"
    elif microbatches and clipping == "adaptive":
        errors["microbatches"] = (f"must be 0 with adaptive clipping (its clipped count is over examples), got "
                                  f"{microbatches!r}")
    if errors:
        raise ParamError(errors)


@lru_cache(maxsize=65536)
def _rdp_at_order(event: dp_accounting.DpEvent, order: float) -> float:
    """RDP of one unit event at one order, cached per order: a slider that moves epochs or delta shifts the orders
    searched, and the ones already computed are reused."""
    accountant = dp_accounting.rdp.RdpAccountant(orders=(order,))
    accountant.compose(event)
    return float(accountant.rdp[0])


def _epsilon_at(order: float, rdp: float, delta: float) -> float:
    return float(rdp_lib.compute_epsilon((order,), (rdp,), delta)[0])


def _rdp_orders_for(event: dp_accounting.DpEvent, step_counts: tuple[int, int], delta: float) -> tuple[float, ...]:
    """Default orders bracketing the optimum for every step count in ``step_counts`` (fewest, most).

    Walks the coarse orders upwards from 2 and stops once epsilon has risen twice in a row for both step counts
    (epsilon is unimodal in the order), so the costly extreme orders (below 2, 512 and up) are evaluated only when the
    optimum is near them.
    """
    start = _COARSE_ORDERS.index(2.0)
    best = {count: (math.inf, start) for count in step_counts}
    rises = {count: 0 for count in step_counts}
    for index in range(start, len(_COARSE_ORDERS)):
        order = _COARSE_ORDERS[index]
        rdp = _rdp_at_order(event, order)
        for count in step_counts:
            eps = _epsilon_at(order, rdp * count, delta)
            if eps < best[count][0]:
                best[count], rises[count] = (eps, index), 0
            else:
                rises[count] += 1
        if all(r >= 2 for r in rises.values()):
            break
    optima = [index for _, index in best.values()]
    high_index = min(len(_COARSE_ORDERS) - 1, max(optima) + 1)
    if any(eps == 0 for eps, _ in best.values()):
        # Epsilon clamped to 0 (large delta) says nothing of where a slightly longer run's optimum lies: keep the top.
        high_index = len(_COARSE_ORDERS) - 1
    # An optimum at the walk's start may lie below it: then every default order under 2 is a candidate too.
    low = 1.0 if min(optima) == start else _COARSE_ORDERS[min(optima) - 1]
    return tuple(a for a in _DEFAULT_ORDERS if low < a <= _COARSE_ORDERS[high_index]) or _DEFAULT_ORDERS


def _best_epsilon(event: dp_accounting.DpEvent, orders: tuple[float, ...], count: int, delta: float,
                  start: int | None = None) -> tuple[float, int | None]:
    """The smallest epsilon over ``orders`` after ``count`` unit events, as dp_accounting's full search would find
    it, and the index of the order that gives it.

    Epsilon is unimodal in the order, so a ternary search over the sorted orders evaluates a handful of them (each
    fractional order costs a series evaluation). The optimal order falls as steps grow, so for a longer run of the
    same curve the search walks down from ``start``, the previous count's optimum, instead. dp_accounting also returns
    epsilon 0 at an order whose RDP is below -log(1 - delta^2) (Canonne et al. 2020, Prop. 12); RDP grows with the
    order, so the smallest default order is where that happens first: it is always tried.
    """
    def epsilon(index: int) -> float:
        order = orders[index]
        return _epsilon_at(order, _rdp_at_order(event, order) * count, delta)

    if _zero_possible(event, count, delta) and _epsilon_at(
            _DEFAULT_ORDERS[0], _rdp_at_order(event, _DEFAULT_ORDERS[0]) * count, delta) == 0:
        return 0.0, start
    if start is not None:
        best = start
        while best > 0 and epsilon(best - 1) < epsilon(best):
            best -= 1
        return epsilon(best), best
    low, high = 0, len(orders) - 1
    while high - low > 2:
        left, right = low + (high - low) // 3, high - (high - low) // 3
        if epsilon(left) <= epsilon(right):
            high = right
        else:
            low = left
    best = min(range(low, high + 1), key=epsilon)
    return epsilon(best), best


def _zero_possible(event: dp_accounting.DpEvent, count: int, delta: float) -> bool:
    """Whether dp_accounting's epsilon-0 condition (RDP below -log(1 - delta^2)) can hold at the smallest order.

    Evaluating that fractional order is the costliest step of a query (a slow series when q is large and sigma
    small), so it is skipped when a cheap lower bound already exceeds the threshold: (alpha - 1) * RDP(alpha) is the
    log of a moment-generating function, convex in alpha, so the chord through orders 2 and 3, extended to the left,
    lies below it.
    """
    first = _DEFAULT_ORDERS[0]
    at_2 = _rdp_at_order(event, 2.0)
    at_3 = 2.0 * _rdp_at_order(event, 3.0)
    lower = at_2 - (2.0 - first) * (at_3 - at_2)  # bound on (first - 1) * RDP(first)
    return count * lower / (first - 1.0) < -math.log1p(-delta ** 2)


def _rdp_curve(mechanism_: Mechanism, unit_counts: list[int], delta: float) -> list[float]:
    event = mechanism_.unit_event
    if isinstance(event, dp_accounting.GaussianDpEvent):  # unamplified: every order costs a closed form
        return [float(rdp_lib.compute_epsilon(_DEFAULT_ORDERS, [_rdp_at_order(event, a) * count
                                                                for a in _DEFAULT_ORDERS], delta)[0])
                for count in unit_counts]
    orders = _rdp_orders_for(event, (unit_counts[0], unit_counts[-1]), delta)
    curve, best = [], None
    for count in unit_counts:  # increasing: each count's optimal order is at or below the previous one's
        # ... unless the previous epsilon was clamped to 0, which hides where its optimum was: search afresh.
        start = best if not curve or curve[-1] > 0 else None
        epsilon, best = _best_epsilon(event, orders, count, delta, start=start)
        curve.append(epsilon)
    return curve


def pld_of(event: dp_accounting.DpEvent) -> pld_lib.PrivacyLossDistribution:
    """The privacy loss distribution of ``event``, built by the same library calls as dp_accounting's PLDAccountant
    (so a test can compare them), but returned, so a curve composes one unit's distribution epoch after epoch.

    Raises:
        ValueError: an event this playground never builds.
    """
    if isinstance(event, dp_accounting.SelfComposedDpEvent):
        return pld_of(event.event).self_compose(event.count)
    gaussians = (dp_accounting.GaussianDpEvent, dp_accounting.ComposedDpEvent)  # adaptive: two on the same batch
    if isinstance(event, dp_accounting.PoissonSampledDpEvent) and isinstance(event.event, gaussians):
        return pld_lib.from_gaussian_mechanism(standard_deviation=effective_noise_multiplier(event.event),
                                               sampling_prob=event.sampling_probability,
                                               value_discretization_interval=PLD_DISCRETIZATION)
    if isinstance(event, gaussians):
        return pld_lib.from_gaussian_mechanism(standard_deviation=effective_noise_multiplier(event),
                                               value_discretization_interval=PLD_DISCRETIZATION)
    raise ValueError(f"no PLD for {event!r}")


def _pld_curve(mechanism_: Mechanism, epochs: int, delta: float) -> list[float]:
    """Epsilon after 1..epochs compositions of the mechanism's epoch."""
    unit = pld_of(mechanism_.epoch_event())
    curve, composed = [], unit
    for k in range(epochs):
        if k:
            composed = composed.compose(unit)
        curve.append(float(composed.get_epsilon_for_delta(delta)))
    return curve


@lru_cache(maxsize=1024)
def epsilon_curve(*, noise_multiplier: float, batch_size: int, epochs: int, dataset_size: int, delta: float,
                  accountant: str = "rdp", sampling: str = "poisson", clipping: str = "flat",
                  microbatches: int = 0) -> tuple[float, ...]:
    """Epsilon after each epoch 1..epochs (``math.inf`` without noise); ``clipping`` and ``microbatches`` as in
    ``app.privacy.events``.

    Raises:
        ParamError: on bad arguments, or for PLD where its RDP epsilon exceeds ``PLD_MAX_RDP_EPSILON``.
    """
    _check(noise_multiplier=noise_multiplier, batch_size=batch_size, epochs=epochs, dataset_size=dataset_size,
           delta=delta, accountant=accountant, sampling=sampling, clipping=clipping, microbatches=microbatches)
    if noise_multiplier ** 2 < sys.float_info.min:  # 0, or so small that sigma² underflows (dp_accounting would
        return (math.inf,) * epochs                  # divide by zero); epsilon there exceeds 1e300 anyway
    epoch = mechanism(noise_multiplier=noise_multiplier, batch_size=batch_size, dataset_size=dataset_size,
                      sampling=sampling, clipping=clipping, microbatches=microbatches)
    rdp_curve = _rdp_curve(epoch, [k * epoch.unit_count for k in range(1, epochs + 1)], delta)
    if accountant == "rdp":
        return tuple(rdp_curve)
    if rdp_curve[-1] > PLD_MAX_RDP_EPSILON:
        raise ParamError({"accountant": (
            f"pld is not computed when epsilon exceeds {PLD_MAX_RDP_EPSILON:g} (RDP gives {rdp_curve[-1]:.4g} here); "
            "such a guarantee is meaningless, and PLD's cost grows with it. Use rdp, or add noise")})
    with _pld_slot:
        return tuple(_pld_curve(epoch, epochs, delta))


def compute_privacy(*, noise_multiplier: float, batch_size: int, epochs: int, dataset_size: int, delta: float,
                    accountant: str = "rdp", sampling: str = "poisson", clipping: str = "flat",
                    microbatches: int = 0) -> PrivacyReport:
    """The epsilon of DP-SGD as run by our trainer, with its per-epoch curve and statement.

    Args:
        noise_multiplier: sigma, noise std over clipping norm (0 means no privacy: epsilon is infinite).
        batch_size: expected batch size B. dataset_size: N. epochs: passes over the data.
        delta: in (0, 1). accountant: ``rdp`` or ``pld``. sampling: ``poisson`` or ``shuffle``.
        clipping: ``flat``, ``per_layer``, ``automatic`` or ``adaptive``. microbatches: 0, or M microbatches (the
            sensitivity doubles).

    Returns:
        A :class:`PrivacyReport`.

    Raises:
        ParamError: naming each bad argument and its value.
    """
    curve = epsilon_curve(noise_multiplier=noise_multiplier, batch_size=batch_size, epochs=epochs,
                          dataset_size=dataset_size, delta=delta, accountant=accountant, sampling=sampling,
                          clipping=clipping, microbatches=microbatches)
    per_epoch = steps_per_epoch(dataset_size=dataset_size, batch_size=batch_size)
    fields = dict(epsilon=curve[-1], accountant=accountant, sampling=sampling, delta=delta,
                  noise_multiplier=noise_multiplier, sample_rate=batch_size / dataset_size, steps=per_epoch * epochs,
                  steps_per_epoch=per_epoch, epochs=epochs, dataset_size=dataset_size, batch_size=batch_size,
                  epsilon_per_epoch=curve, clipping=clipping, microbatches=microbatches)
    return PrivacyReport(**fields, statement=statement(**fields))


def epochs_within_budget(*, target_epsilon: float, **privacy_args) -> int:
    """How many epochs (0 .. epochs) keep epsilon within ``target_epsilon``: where a budget-stopped run stops."""
    curve = epsilon_curve(**privacy_args)
    return sum(1 for eps in curve if eps <= target_epsilon)
