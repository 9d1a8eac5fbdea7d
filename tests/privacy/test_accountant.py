"""The accountant: golden values from independent sources, properties, the inverse, and edge cases."""

import math

import dp_accounting
import pytest
from dp_accounting.pld import pld_privacy_accountant
from hypothesis import given, settings
from hypothesis import strategies as st

from app.params import ParamError, noise_search_range
from app.privacy import calibrate_noise, compute_privacy, epsilon_curve, epochs_within_budget, steps_per_epoch

TUTORIAL = dict(dataset_size=60000, batch_size=256, delta=1e-5)


def dp_accounting_rdp(q, sigma, steps, delta):
    """dp_accounting used directly, with its full default order grid: the reference our faster search must match."""
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma)), steps)
    return accountant.get_epsilon(delta)


def test_steps_round_half_up_and_never_zero():
    assert steps_per_epoch(dataset_size=60000, batch_size=256) == 234  # 234.375
    assert steps_per_epoch(dataset_size=250, batch_size=100) == 3  # 2.5 rounds up
    assert steps_per_epoch(dataset_size=100, batch_size=100) == 1


def test_tf_privacy_statement_values():
    # compute_dp_sgd_privacy_statement(60000, 256, 60, 1.1, 1e-5, used_microbatching=False) prints 2.60 (Poisson)
    # and 56.95 (shuffled, once per epoch). TF Privacy counts ceil(60 * 60000 / 256) = 14063 steps, we 60 * 234.
    poisson = compute_privacy(noise_multiplier=1.1, epochs=60, **TUTORIAL)
    shuffle = compute_privacy(noise_multiplier=1.1, epochs=60, sampling="shuffle", **TUTORIAL)
    assert poisson.steps == 14040
    assert poisson.epsilon == pytest.approx(2.60, abs=0.01)
    assert shuffle.epsilon == pytest.approx(56.95, abs=0.005)
    assert "larger" in shuffle.statement and "Poisson" in poisson.statement


def test_opacus_published_rdp_value():
    # Opacus' RDP accountant: sigma 1.5, q 0.04, 2,250 steps, delta 1e-5 -> epsilon about 7.33.
    report = compute_privacy(noise_multiplier=1.5, batch_size=40, dataset_size=1000, epochs=90, delta=1e-5)
    assert (report.sample_rate, report.steps) == (0.04, 2250)
    assert report.epsilon == pytest.approx(7.33, abs=0.01)


@settings(max_examples=60, deadline=None)
@given(dataset_size=st.integers(100, 60000), log2_batch=st.integers(0, 12), epochs=st.integers(1, 100),
       sigma=st.floats(0.3, 30), log_delta=st.floats(-10, -2))
def test_rdp_matches_dp_accounting_default_grid(dataset_size, log2_batch, epochs, sigma, log_delta):
    batch = min(dataset_size, 2 ** log2_batch)
    delta = 10 ** log_delta
    curve = epsilon_curve(noise_multiplier=sigma, batch_size=batch, epochs=epochs, dataset_size=dataset_size,
                          delta=delta)
    q, per_epoch = batch / dataset_size, steps_per_epoch(dataset_size=dataset_size, batch_size=batch)
    for epoch in {1, (epochs + 1) // 2, epochs}:
        assert curve[epoch - 1] == pytest.approx(dp_accounting_rdp(q, sigma, per_epoch * epoch, delta), rel=1e-9)


@pytest.mark.parametrize("dataset_size, batch, sigma, delta, epochs", [
    (3078, 1, 1.5, 1e-2, 1),  # epsilon 0 at order 1.1 (RDP below -log(1 - delta^2)), far from the usual optimum
    (100, 1, 0.3125, 1e-2, 1),  # optimum below order 2
    (12077, 2048, 18.318, 0.0295, 96),  # early epochs clamp to 0; later optima lie above the first epochs' orders
    (35670, 16, 1.5713, 0.0361, 14),  # epsilon 0 for a while, then positive: the search restarts after a 0
])
def test_rdp_matches_dp_accounting_where_the_optimum_is_an_extreme_order(dataset_size, batch, sigma, delta, epochs):
    curve = epsilon_curve(noise_multiplier=sigma, batch_size=batch, dataset_size=dataset_size, epochs=epochs,
                          delta=delta)
    per_epoch = steps_per_epoch(dataset_size=dataset_size, batch_size=batch)
    for epoch in sorted({1, 2, epochs // 2, epochs} & set(range(1, epochs + 1))):
        reference = dp_accounting_rdp(batch / dataset_size, sigma, per_epoch * epoch, delta)
        assert curve[epoch - 1] == pytest.approx(reference, abs=1e-12, rel=1e-9), epoch


def test_pld_matches_dp_accounting_accountant_and_is_tighter_than_rdp():
    report = compute_privacy(noise_multiplier=1.1, epochs=10, accountant="pld", **TUTORIAL)
    accountant = pld_privacy_accountant.PLDAccountant(value_discretization_interval=1e-3)
    accountant.compose(dp_accounting.PoissonSampledDpEvent(256 / 60000, dp_accounting.GaussianDpEvent(1.1)), 2340)
    assert report.epsilon == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-3)
    assert report.epsilon < compute_privacy(noise_multiplier=1.1, epochs=10, **TUTORIAL).epsilon
    assert "PLD" in report.statement


def test_curve_grows_and_ends_at_epsilon():
    report = compute_privacy(noise_multiplier=1.1, epochs=20, **TUTORIAL)
    assert len(report.epsilon_per_epoch) == 20
    assert report.epsilon_per_epoch[-1] == report.epsilon
    assert all(a < b for a, b in zip(report.epsilon_per_epoch, report.epsilon_per_epoch[1:]))


@settings(max_examples=40, deadline=None)
@given(sigma=st.floats(0.5, 10), batch=st.integers(8, 2048), epochs=st.integers(1, 50))
def test_monotone_in_noise_sample_rate_and_steps(sigma, batch, epochs):
    base = dict(noise_multiplier=sigma, batch_size=batch, epochs=epochs, dataset_size=60000, delta=1e-5)
    eps = compute_privacy(**base).epsilon
    assert compute_privacy(**{**base, "noise_multiplier": sigma * 1.2}).epsilon < eps
    assert compute_privacy(**{**base, "batch_size": batch * 2}).epsilon > eps
    assert compute_privacy(**{**base, "epochs": epochs + 1}).epsilon > eps


@settings(max_examples=25, deadline=None)
@given(target=st.floats(0.3, 20), epochs=st.integers(1, 60), batch=st.sampled_from([64, 256, 1024]))
def test_inverse_never_overshoots_and_is_smallest(target, epochs, batch):
    args = dict(batch_size=batch, epochs=epochs, dataset_size=60000, delta=1e-5)
    try:
        found = calibrate_noise(target_epsilon=target, noise_range=noise_search_range(), **args)
    except ParamError as exc:  # out of reach is a clear answer too, and must be true
        assert compute_privacy(noise_multiplier=50.0, **args).epsilon > target, exc.errors
        return
    assert found.epsilon <= target
    assert compute_privacy(noise_multiplier=found.noise_multiplier, **args).epsilon == found.epsilon
    if found.noise_multiplier > 0.011:  # a hair less noise must exceed the target: it is the smallest
        assert compute_privacy(noise_multiplier=found.noise_multiplier * (1 - 2e-4), **args).epsilon > target


def test_inverse_pld_and_round_trip():
    found = calibrate_noise(target_epsilon=3.0, epochs=60, accountant="pld", noise_range=noise_search_range(), **TUTORIAL)
    assert found.epsilon <= 3.0
    again = compute_privacy(noise_multiplier=found.noise_multiplier, epochs=60, accountant="pld", **TUTORIAL)
    assert again.epsilon == pytest.approx(found.epsilon)
    assert found.noise_multiplier < calibrate_noise(target_epsilon=3.0, epochs=60, noise_range=noise_search_range(),
                                                  **TUTORIAL).noise_multiplier


def test_zero_noise_is_infinite_not_a_crash():
    report = compute_privacy(noise_multiplier=0.0, epochs=3, **TUTORIAL)
    assert math.isinf(report.epsilon) and all(math.isinf(e) for e in report.epsilon_per_epoch)
    assert "no differential privacy guarantee" in report.statement
    assert report.to_dict()["epsilon"] is None and report.to_dict()["epsilon_infinite"] is True


def test_full_batch_and_single_step():
    full = compute_privacy(noise_multiplier=1.0, batch_size=1000, dataset_size=1000, epochs=1, delta=1e-5)
    assert (full.sample_rate, full.steps) == (1.0, 1)
    # q = 1, one step: a plain Gaussian mechanism; dp_accounting gives the same.
    assert full.epsilon == pytest.approx(dp_accounting_rdp(1.0, 1.0, 1, 1e-5), rel=1e-9)


def test_huge_step_counts_stay_fast_and_finite():
    report = compute_privacy(noise_multiplier=1.1, batch_size=1, dataset_size=60000, epochs=100, delta=1e-5)
    assert report.steps == 6_000_000 and math.isfinite(report.epsilon)


@pytest.mark.parametrize("bad, field", [
    (dict(delta=0.0), "delta"), (dict(delta=1.0), "delta"), (dict(delta=-1e-5), "delta"),
    (dict(batch_size=500, dataset_size=100), "batch_size"), (dict(epochs=0), "epochs"),
    (dict(noise_multiplier=-1.0), "noise_multiplier"), (dict(accountant="moments"), "accountant"),
    (dict(sampling="random"), "sampling"),
])
def test_bad_arguments_name_the_field_and_value(bad, field):
    args = dict(noise_multiplier=1.0, batch_size=100, dataset_size=1000, epochs=2, delta=1e-5)
    with pytest.raises(ParamError) as caught:
        compute_privacy(**{**args, **bad})
    assert field in caught.value.errors
    assert repr(bad[field]) in caught.value.errors[field] or str(bad[field]) in caught.value.errors[field]


def test_pld_refuses_meaningless_epsilon_with_a_reason():
    with pytest.raises(ParamError) as caught:
        compute_privacy(noise_multiplier=0.3, batch_size=512, dataset_size=1000, epochs=50, delta=1e-5,
                        accountant="pld")
    assert "rdp" in caught.value.errors["accountant"]


def test_epochs_within_budget():
    curve = epsilon_curve(noise_multiplier=1.1, epochs=30, **TUTORIAL)
    allowed = epochs_within_budget(target_epsilon=1.5, noise_multiplier=1.1, epochs=30, **TUTORIAL)
    assert curve[allowed - 1] <= 1.5 < curve[allowed]


@pytest.mark.parametrize("sigma", [1e-160, 2.2250738585072014e-308, 5e-324])
def test_a_noise_multiplier_whose_square_underflows_is_no_noise_not_a_crash(sigma):
    """schemathesis found these: sigma² is 0 in floating point and dp_accounting divided by it (a 500)."""
    assert epsilon_curve(noise_multiplier=sigma, batch_size=256, epochs=2, dataset_size=60000,
                         delta=1e-5) == (math.inf, math.inf)
