"""Privacy accounting for DP-SGD: epsilon per epoch, its statement, and the inverse (noise for a target epsilon).

Pure functions over Google's ``dp_accounting`` (the library TF Privacy itself calls); no Flask, no TensorFlow.

What is analysed (Abadi et al. 2016, arXiv:1607.00133): ``steps`` applications of the Gaussian mechanism with noise
multiplier sigma to a sum of per-example gradients clipped to norm C, under add-or-remove-one adjacency, releasing every
intermediate model. Steps per epoch are ``max(1, round(N / B))`` (halves round up), exactly what our trainer runs, so
``steps = epochs * round(N / B)``; TF Privacy's ``compute_dp_sgd_privacy`` uses ``ceil(epochs * N / B)``, which differs
by less than one step per epoch.

Sampling assumptions:

- ``poisson``: every example joins every step independently with probability q = B / N (what our trainer does), so
  each step is a Poisson-subsampled Gaussian and enjoys privacy amplification by subsampling.
- ``shuffle``: each example is used once per epoch in shuffled batches. No amplification is proven for that, so, as
  ``compute_dp_sgd_privacy_statement`` does, each epoch counts as one unamplified Gaussian mechanism: a far larger
  epsilon, and the honest one for a pipeline that shuffles.

Accountants: ``rdp`` (Rényi DP, Mironov 2017, with the conversion of Canonne et al. 2020 that dp_accounting applies)
and ``pld`` (privacy loss distributions, Koskela et al. 2020 / Doroshenko et al. 2022, pessimistic discretisation), both
upper bounds on epsilon. RDP composes additively: the per-step RDP is computed once per (q, sigma) and scaled, so the
whole per-epoch curve costs one evaluation.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache

import dp_accounting
import numpy as np
from dp_accounting.pld import privacy_loss_distribution as pld_lib
from dp_accounting.rdp import rdp_privacy_accountant as rdp_lib

from app.params import CALIBRATE_FIELDS, KNOB_BY_NAME, PRIVACY_FIELDS, ParamError, validate

ACCOUNTANTS = ("rdp", "pld")
SAMPLINGS = ("poisson", "shuffle")

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


# Appended to the statement of a run: what the guarantee does not cover.
RUN_CAVEAT = (" The per-step loss, clip fraction and gradient-norm statistics shown while training are computed from "
              "the private batches without noise, for teaching; they are not covered by this guarantee.")


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

    def to_dict(self) -> dict:
        """JSON-ready: an infinite epsilon becomes ``null`` with ``epsilon_infinite: true``."""
        return {
            "epsilon": _finite_or_none(self.epsilon),
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
            "epsilon_per_epoch": [_finite_or_none(e) for e in self.epsilon_per_epoch],
            "statement": self.statement,
        }


def _finite_or_none(x: float) -> float | None:
    return None if math.isinf(x) else float(x)


def steps_per_epoch(*, dataset_size: int, batch_size: int) -> int:
    """Steps in one epoch: ``max(1, round(N / B))``, halves rounded up (our trainer runs exactly this many)."""
    return max(1, math.floor(dataset_size / batch_size + 0.5))


def _check(*, noise_multiplier: float, batch_size: int, epochs: int, dataset_size: int, delta: float,
           accountant: str, sampling: str) -> None:
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
    if errors:
        raise ParamError(errors)


@lru_cache(maxsize=65536)
def _rdp_at_order(sample_rate: float, noise_multiplier: float, order: float) -> float:
    """RDP of one Poisson-subsampled Gaussian step at one order, cached per order: a slider that moves epochs or
    delta shifts the orders searched, and the ones already computed are reused."""
    accountant = dp_accounting.rdp.RdpAccountant(orders=(order,))
    accountant.compose(dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(
        noise_multiplier)))
    return float(accountant.rdp[0])


def _rdp_per_step(sample_rate: float, noise_multiplier: float, orders: tuple[float, ...]) -> np.ndarray:
    return np.array([_rdp_at_order(sample_rate, noise_multiplier, order) for order in orders])


def _epsilon_at(order: float, rdp: float, delta: float) -> float:
    return float(rdp_lib.compute_epsilon((order,), (rdp,), delta)[0])


def _rdp_orders_for(sample_rate: float, noise_multiplier: float, step_counts: tuple[int, int],
                    delta: float) -> tuple[float, ...]:
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
        rdp = _rdp_at_order(sample_rate, noise_multiplier, order)
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


def _best_epsilon(sample_rate: float, noise_multiplier: float, orders: tuple[float, ...], count: int,
                  delta: float, start: int | None = None) -> tuple[float, int | None]:
    """The smallest epsilon over ``orders`` after ``count`` steps, as dp_accounting's full search would find it, and
    the index of the order that gives it.

    Epsilon is unimodal in the order, so a ternary search over the sorted orders evaluates a handful of them (each
    fractional order costs a series evaluation). The optimal order falls as steps grow, so for a longer run of the
    same curve the search walks down from ``start``, the previous count's optimum, instead. dp_accounting also returns
    epsilon 0 at an order whose RDP is below -log(1 - delta^2) (Canonne et al. 2020, Prop. 12); RDP grows with the
    order, so the smallest default order is where that happens first: it is always tried.
    """
    def epsilon(index: int) -> float:
        order = orders[index]
        return _epsilon_at(order, _rdp_at_order(sample_rate, noise_multiplier, order) * count, delta)

    if _zero_possible(sample_rate, noise_multiplier, count, delta) and _epsilon_at(
            _DEFAULT_ORDERS[0], _rdp_at_order(sample_rate, noise_multiplier, _DEFAULT_ORDERS[0]) * count, delta) == 0:
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


def _zero_possible(sample_rate: float, noise_multiplier: float, count: int, delta: float) -> bool:
    """Whether dp_accounting's epsilon-0 condition (RDP below -log(1 - delta^2)) can hold at the smallest order.

    Evaluating that fractional order is the costliest step of a query (a slow series when q is large and sigma
    small), so it is skipped when a cheap lower bound already exceeds the threshold: (alpha - 1) * RDP(alpha) is the
    log of a moment-generating function, convex in alpha, so the chord through orders 2 and 3, extended to the left,
    lies below it.
    """
    first = _DEFAULT_ORDERS[0]
    at_2 = _rdp_at_order(sample_rate, noise_multiplier, 2.0)
    at_3 = 2.0 * _rdp_at_order(sample_rate, noise_multiplier, 3.0)
    lower = at_2 - (2.0 - first) * (at_3 - at_2)  # bound on (first - 1) * RDP(first)
    return count * lower / (first - 1.0) < -math.log1p(-delta ** 2)


def _rdp_curve(*, sample_rate: float, noise_multiplier: float, step_counts: list[int], delta: float,
               sampling: str) -> list[float]:
    if sampling == "shuffle":  # one unamplified Gaussian per epoch: RDP alpha / (2 sigma^2) per epoch
        per_unit = _rdp_per_step(1.0, noise_multiplier, _DEFAULT_ORDERS)
        return [float(rdp_lib.compute_epsilon(_DEFAULT_ORDERS, per_unit * count, delta)[0]) for count in step_counts]
    orders = _rdp_orders_for(sample_rate, noise_multiplier, (step_counts[0], step_counts[-1]), delta)
    curve, best = [], None
    for count in step_counts:  # increasing: each count's optimal order is at or below the previous one's
        # ... unless the previous epsilon was clamped to 0, which hides where its optimum was: search afresh.
        start = best if not curve or curve[-1] > 0 else None
        epsilon, best = _best_epsilon(sample_rate, noise_multiplier, orders, count, delta, start=start)
        curve.append(epsilon)
    return curve


def _pld_curve(*, sample_rate: float, noise_multiplier: float, steps_per_unit: int, units: int,
               delta: float) -> list[float]:
    """Epsilon after 1..units compositions of ``steps_per_unit`` subsampled Gaussians (one unit = one epoch)."""
    one = pld_lib.from_gaussian_mechanism(
        standard_deviation=noise_multiplier, sampling_prob=sample_rate,
        value_discretization_interval=PLD_DISCRETIZATION)
    unit = one.self_compose(steps_per_unit)
    curve, composed = [], unit
    for k in range(units):
        if k:
            composed = composed.compose(unit)
        curve.append(float(composed.get_epsilon_for_delta(delta)))
    return curve


@lru_cache(maxsize=1024)
def epsilon_curve(*, noise_multiplier: float, batch_size: int, epochs: int, dataset_size: int, delta: float,
                  accountant: str = "rdp", sampling: str = "poisson") -> tuple[float, ...]:
    """Epsilon after each epoch 1..epochs (``math.inf`` without noise).

    Raises:
        ParamError: on bad arguments, or for PLD where its RDP epsilon exceeds ``PLD_MAX_RDP_EPSILON``.
    """
    _check(noise_multiplier=noise_multiplier, batch_size=batch_size, epochs=epochs, dataset_size=dataset_size,
           delta=delta, accountant=accountant, sampling=sampling)
    if noise_multiplier == 0:
        return (math.inf,) * epochs
    sample_rate = batch_size / dataset_size
    per_epoch = steps_per_epoch(dataset_size=dataset_size, batch_size=batch_size)
    units = [k * (1 if sampling == "shuffle" else per_epoch) for k in range(1, epochs + 1)]
    rdp_curve = _rdp_curve(sample_rate=sample_rate, noise_multiplier=noise_multiplier, step_counts=units,
                           delta=delta, sampling=sampling)
    if accountant == "rdp":
        return tuple(rdp_curve)
    if rdp_curve[-1] > PLD_MAX_RDP_EPSILON:
        raise ParamError({"accountant": (
            f"pld is not computed when epsilon exceeds {PLD_MAX_RDP_EPSILON:g} (RDP gives {rdp_curve[-1]:.4g} here); "
            "such a guarantee is meaningless, and PLD's cost grows with it. Use rdp, or add noise")})
    pld_rate, pld_unit = (1.0, 1) if sampling == "shuffle" else (sample_rate, per_epoch)
    with _pld_slot:
        return tuple(_pld_curve(sample_rate=pld_rate, noise_multiplier=noise_multiplier, steps_per_unit=pld_unit,
                                units=epochs, delta=delta))


def compute_privacy(*, noise_multiplier: float, batch_size: int, epochs: int, dataset_size: int, delta: float,
                    accountant: str = "rdp", sampling: str = "poisson") -> PrivacyReport:
    """The epsilon of DP-SGD as run by our trainer, with its per-epoch curve and statement.

    Args:
        noise_multiplier: sigma, noise std over clipping norm (0 means no privacy: epsilon is infinite).
        batch_size: expected batch size B. dataset_size: N. epochs: passes over the data.
        delta: in (0, 1). accountant: ``rdp`` or ``pld``. sampling: ``poisson`` or ``shuffle``.

    Returns:
        A :class:`PrivacyReport`.

    Raises:
        ParamError: naming each bad argument and its value.
    """
    curve = epsilon_curve(noise_multiplier=noise_multiplier, batch_size=batch_size, epochs=epochs,
                          dataset_size=dataset_size, delta=delta, accountant=accountant, sampling=sampling)
    per_epoch = steps_per_epoch(dataset_size=dataset_size, batch_size=batch_size)
    fields = dict(epsilon=curve[-1], accountant=accountant, sampling=sampling, delta=delta,
                  noise_multiplier=noise_multiplier, sample_rate=batch_size / dataset_size, steps=per_epoch * epochs,
                  steps_per_epoch=per_epoch, epochs=epochs, dataset_size=dataset_size, batch_size=batch_size,
                  epsilon_per_epoch=curve)
    return PrivacyReport(**fields, statement=statement(**fields))


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


def calibrate_noise(*, target_epsilon: float, batch_size: int, epochs: int, dataset_size: int, delta: float,
                    accountant: str = "rdp", sampling: str = "poisson", relative_tolerance: float = 1e-4
                    ) -> PrivacyReport:
    """The smallest noise multiplier (within ``relative_tolerance``) whose epsilon does not exceed the target.

    Bisects on sigma in log space keeping the invariant epsilon(high) <= target, so the answer never overshoots.

    Returns:
        The :class:`PrivacyReport` of the noise multiplier found (its ``epsilon`` is the one achieved).

    Raises:
        ParamError: on bad arguments, or when the target is out of reach within the table's noise range.
    """
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise ParamError({"target_epsilon": f"must be a finite number > 0, got {target_epsilon!r}"})
    knob = KNOB_BY_NAME["noise_multiplier"]
    low, high = knob.slider_min / 10, knob.max

    def report(sigma: float) -> PrivacyReport:
        return compute_privacy(noise_multiplier=sigma, batch_size=batch_size, epochs=epochs,
                               dataset_size=dataset_size, delta=delta, accountant=accountant, sampling=sampling)

    at_high = report(high)
    if at_high.epsilon > target_epsilon:
        raise ParamError({"target_epsilon": (
            f"{target_epsilon:g} is out of reach: even noise_multiplier {high:g} gives epsilon "
            f"{at_high.epsilon:.4g} here. Use fewer epochs, a smaller batch or a larger dataset")})
    try:
        if report(low).epsilon <= target_epsilon:
            return report(low)
    except ParamError:
        pass  # PLD refuses a meaningless epsilon at tiny noise: that end is above the target
    best = at_high
    while high / low > 1 + relative_tolerance:
        middle = math.sqrt(low * high)
        try:
            candidate = report(middle)
        except ParamError:  # PLD refused: epsilon is huge, so above any target it could meet
            low = middle
            continue
        if candidate.epsilon <= target_epsilon:
            high, best = middle, candidate
        else:
            low = middle
    return best


def epochs_within_budget(*, target_epsilon: float, **privacy_args) -> int:
    """How many epochs (0 .. epochs) keep epsilon within ``target_epsilon``: where a budget-stopped run stops."""
    curve = epsilon_curve(**privacy_args)
    return sum(1 for eps in curve if eps <= target_epsilon)


# --- command line -----------------------------------------------------------------------------------------------

def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.privacy",
        description="Epsilon of DP-SGD as the playground's trainer runs it, or the noise for a target epsilon.")
    for name in sorted(set(PRIVACY_FIELDS) | set(CALIBRATE_FIELDS)):
        knob = KNOB_BY_NAME[name]
        kind = {"int": int, "float": float}.get(knob.type, str)
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, choices=knob.choices or None,
                            default=None, help=f"{knob.help} (default {knob.default})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the statement")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints the statement (or JSON); bad arguments exit 2 with one line naming them."""
    parser = _parser()
    args = vars(parser.parse_args(argv))
    as_json = args.pop("json")
    given = {k: v for k, v in args.items() if v is not None}
    inverse = "target_epsilon" in given
    if inverse and "noise_multiplier" in given:
        parser.error("give --noise-multiplier or --target-epsilon, not both")
    try:
        clean = validate(given, CALIBRATE_FIELDS if inverse else PRIVACY_FIELDS)
        report = calibrate_noise(**clean) if inverse else compute_privacy(**clean)
    except ParamError as exc:
        parser.error("; ".join(f"--{k.replace('_', '-')} {v}" for k, v in exc.errors.items()))
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        prefix = f"noise_multiplier = {report.noise_multiplier:.4f} meets epsilon <= {clean['target_epsilon']:g}.\n" \
            if inverse else ""
        print(prefix + report.statement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
