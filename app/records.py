"""What every runner's records share: the histogram bins and norm statistics, how step records are thinned, and how
a non-finite number leaves the server (as null).

Real and simulated runs use these same definitions, so the page cannot tell them apart by their shape.
"""

from __future__ import annotations

import math

import numpy as np

STEP_RECORDS_PER_RUN = 400  # per-step records are thinned to about this many, whatever the run's length
RUN_SAMPLING = "poisson"  # how both runners draw batches, so the sampling every epsilon of a run is computed for
NORM_SAMPLE_EVERY = 8  # a non-private run measures per-example norms on at most one step in this many
HISTOGRAM_EDGES = tuple(float(e) for e in np.logspace(-3, 3, 49))  # 8 bins a decade, fixed so runs overlay


def record_interval(total_steps: int) -> int:
    """Every how many steps a run of ``total_steps`` reports a step record (and always at its last step)."""
    return max(1, math.ceil(total_steps / STEP_RECORDS_PER_RUN))


def step_is_recorded(step: int, total_steps: int) -> bool:
    """Whether step ``step`` (1-based) of ``total_steps`` gets a step record."""
    return step % record_interval(total_steps) == 0 or step == total_steps


def norm_measure_interval(params: dict) -> int:
    """A non-private run measures per-example norms every this many steps (and on each epoch's last): the smallest
    multiple of the record interval from ``NORM_SAMPLE_EVERY`` up, so those steps are reported; 1 for a private run."""
    if params["private"]:
        return 1
    interval = record_interval(params["steps_per_epoch"] * params["epochs"])
    return interval * math.ceil(NORM_SAMPLE_EVERY / interval)


def measures_norms(params: dict, step: int) -> bool:
    """Whether step ``step`` (1-based) of a planned run measures per-example gradient norms."""
    return step % norm_measure_interval(params) == 0 or step % params["steps_per_epoch"] == 0


def steps_measuring_norms(params: dict, epoch: int) -> int:
    """How many steps of epoch ``epoch`` (1-based) measure per-example norms (its histogram counts their examples)."""
    every, last = norm_measure_interval(params), epoch * params["steps_per_epoch"]
    multiples = last // every - (last - params["steps_per_epoch"]) // every
    return multiples + (last % every != 0)  # the epoch's last step always measures


def recorded_steps(total_steps: int) -> np.ndarray:
    """Every step of a run of ``total_steps`` that gets a step record, in order."""
    every = record_interval(total_steps)
    return np.unique(np.append(np.arange(every, total_steps + 1, every), total_steps))


def norm_statistics(norms: np.ndarray) -> dict:
    """``grad_norm`` quantiles and a histogram over ``HISTOGRAM_EDGES`` of measured norms (outliers go to the end
    bins)."""
    edges = list(HISTOGRAM_EDGES)
    if norms.size == 0:
        return {"grad_norm": {"p10": None, "p50": None, "p90": None},
                "grad_norm_histogram": {"edges": edges, "counts": [0] * (len(edges) - 1)}}
    p10, p50, p90 = (float(v) for v in np.quantile(norms, [0.1, 0.5, 0.9]))
    counts, _ = np.histogram(np.clip(norms, edges[0], edges[-1]), bins=edges)
    return {"grad_norm": {"p10": p10, "p50": p50, "p90": p90},
            "grad_norm_histogram": {"edges": edges, "counts": counts.tolist()}}


def norm_statistics_from_cdf(cdf: np.ndarray, examples: int) -> dict:
    """The gradient-norm fields of an epoch record, as the trainer reports them, from the norms' distribution.

    Args:
        cdf: the share of norms below each of ``HISTOGRAM_EDGES``, non-decreasing from 0 to 1.
        examples: how many norms the epoch measured.

    Returns:
        ``grad_norm`` (p10, p50 and p90: the CDF inverted, linearly in log-norm within a bin) and
        ``grad_norm_histogram`` (the edges and the counts of ``examples`` norms).
    """
    log_edges = np.log10(HISTOGRAM_EDGES)
    strictly = cdf + np.arange(len(cdf)) * 1e-12  # np.interp needs increasing abscissae
    quantiles = {name: float(10 ** np.interp(q, strictly, log_edges)) for name, q in
                 (("p10", 0.1), ("p50", 0.5), ("p90", 0.9))}
    counts = np.diff(np.round(cdf * examples)).astype(int)
    return {"grad_norm": quantiles,
            "grad_norm_histogram": {"edges": list(HISTOGRAM_EDGES), "counts": counts.tolist()}}


def finite_or_none(value: float | None) -> float | None:
    """A number as JSON can carry it: infinite or NaN becomes None (null)."""
    return float(value) if value is not None and math.isfinite(value) else None


def json_safe(value):
    """``value`` with every non-finite float, however deeply nested, replaced by None, so an answer is strict JSON."""
    if isinstance(value, float):
        return finite_or_none(value)
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
