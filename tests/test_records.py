"""What real and simulated records share: step thinning, which steps measure norms, norm statistics, null for inf."""

import math

import numpy as np
import pytest

from app import records


@pytest.mark.parametrize("total", [1, 7, 400, 401, 1000, 23437])
def test_thinned_steps_are_the_recorded_ones_and_include_the_last(total):
    chosen = records.recorded_steps(total)
    assert list(chosen) == [s for s in range(1, total + 1) if records.step_is_recorded(s, total)]
    assert chosen[-1] == total and len(chosen) <= records.STEP_RECORDS_PER_RUN + 1


@pytest.mark.parametrize("private, per_epoch, epochs", [(True, 5, 3), (False, 10, 2), (False, 235, 4), (False, 3, 50)])
def test_steps_measuring_norms_counts_the_steps_that_measure(private, per_epoch, epochs):
    params = {"private": private, "steps_per_epoch": per_epoch, "epochs": epochs}
    for epoch in range(1, epochs + 1):
        steps = range((epoch - 1) * per_epoch + 1, epoch * per_epoch + 1)
        assert records.steps_measuring_norms(params, epoch) == sum(records.measures_norms(params, s) for s in steps)
        assert records.measures_norms(params, epoch * per_epoch)  # every epoch's last step measures
    total = per_epoch * epochs
    measured = [s for s in range(1, total + 1) if records.measures_norms(params, s) and s % per_epoch]
    assert all(records.step_is_recorded(s, total) for s in measured)  # a measured step is reported


def test_norm_statistics_of_measured_norms():
    norms = np.array([1e-5, 0.5, 1.0, 2.0, 5e4])
    stats = records.norm_statistics(norms)
    assert stats["grad_norm"]["p50"] == 1.0
    counts = stats["grad_norm_histogram"]["counts"]
    assert sum(counts) == 5 and counts[0] == 1 and counts[-1] == 1  # outliers land in the end bins
    assert stats["grad_norm_histogram"]["edges"] == list(records.HISTOGRAM_EDGES)
    empty = records.norm_statistics(np.zeros(0))
    assert empty["grad_norm"]["p10"] is None and sum(empty["grad_norm_histogram"]["counts"]) == 0


def test_non_finite_numbers_leave_as_null():
    assert records.finite_or_none(math.inf) is None and records.finite_or_none(math.nan) is None
    assert records.finite_or_none(None) is None and records.finite_or_none(2) == 2.0
    nested = {"a": [1.0, math.inf, {"b": -math.inf}], "c": (math.nan, "text")}
    assert records.json_safe(nested) == {"a": [1.0, None, {"b": None}], "c": [None, "text"]}
