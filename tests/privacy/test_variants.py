"""Clipping variants and microbatches in the accounting: the event each builds, and its epsilon against TF Privacy's
``compute_dp_sgd_privacy_lib`` and dp_accounting's own accountants composing both of adaptive clipping's mechanisms."""

import math

import dp_accounting
import pytest

from app.params import ParamError
from app.privacy import adaptive_noise, compute_privacy, epsilon_curve, mechanism

KNOBS = dict(noise_multiplier=1.1, batch_size=250, dataset_size=60000, delta=1e-5)  # 240 steps an epoch


def rdp_epsilon(event, delta=1e-5):
    accountant = dp_accounting.rdp.RdpAccountant()
    accountant.compose(event)
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("clipping", ["per_layer", "automatic"])
def test_per_layer_and_automatic_clipping_keep_flat_clippings_event(clipping):
    flat = mechanism(noise_multiplier=1.1, batch_size=250, dataset_size=60000, sampling="poisson")
    assert mechanism(noise_multiplier=1.1, batch_size=250, dataset_size=60000, sampling="poisson",
                     clipping=clipping) == flat
    assert epsilon_curve(**KNOBS, epochs=3, clipping=clipping) == epsilon_curve(**KNOBS, epochs=3)


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
@pytest.mark.parametrize("epochs", [1, 3])
def test_microbatches_match_tf_privacys_used_microbatching(accountant, epochs):
    """TF Privacy halves the noise multiplier when ``used_microbatching`` (sensitivity 2C); same q, same steps."""
    from tensorflow_privacy.privacy.analysis import compute_dp_sgd_privacy_lib as lib

    kind = {"rdp": lib.AccountantType.RDP, "pld": lib.AccountantType.PLD}[accountant]
    theirs = lib._compute_dp_sgd_example_privacy(num_epochs=epochs, noise_multiplier=1.1, example_delta=1e-5,
                                                 used_microbatching=True, poisson_subsampling_probability=250 / 60000,
                                                 accountant_type=kind)
    ours = epsilon_curve(**KNOBS, epochs=epochs, accountant=accountant, microbatches=25)[-1]
    assert ours == pytest.approx(theirs, rel=5e-3 if accountant == "pld" else 1e-9)  # PLD: theirs is finer
    without = lib._compute_dp_sgd_example_privacy(num_epochs=epochs, noise_multiplier=1.1, example_delta=1e-5,
                                                  used_microbatching=False,
                                                  poisson_subsampling_probability=250 / 60000, accountant_type=kind)
    assert epsilon_curve(**KNOBS, epochs=epochs, accountant=accountant)[-1] == pytest.approx(
        without, rel=5e-3 if accountant == "pld" else 1e-9)
    assert ours > 1.5 * without  # microbatching is not free


def test_adaptive_noise_split_is_one_gaussian_of_sigma():
    gradient_sigma, count_std = adaptive_noise(noise_multiplier=1.1, batch_size=256)
    assert count_std == 256 / 20 and gradient_sigma > 1.1
    assert gradient_sigma ** -2 + (2 * count_std) ** -2 == pytest.approx(1.1 ** -2, rel=1e-12)
    small = adaptive_noise(noise_multiplier=1.1, batch_size=8)  # B / 20 = 0.4 < sigma: sigma_b = sigma
    assert small[1] == 1.1 and small[0] == pytest.approx(1.1 / math.sqrt(1 - 1 / 4))  # at most 15% more noise


@pytest.mark.parametrize("batch_size", [250, 8])
def test_adaptive_epsilon_is_dp_accountings_composition_of_both_mechanisms(batch_size):
    """The run releases, per Poisson step, the noisy gradient sum (sensitivity C, noise sigma_grad C) and the noisy
    count (centred sensitivity 1/2, noise sigma_b): composed by dp_accounting's RDP accountant from the two
    mechanisms themselves, epsilon is the flat run's at sigma, and ours equals it."""
    gradient_sigma, count_std = adaptive_noise(noise_multiplier=1.1, batch_size=batch_size)
    q, steps = batch_size / 60000, 3 * round(60000 / batch_size)
    both = dp_accounting.ComposedDpEvent([dp_accounting.GaussianDpEvent(gradient_sigma),
                                          dp_accounting.GaussianDpEvent(count_std / 0.5)])
    composed = rdp_epsilon(dp_accounting.SelfComposedDpEvent(dp_accounting.PoissonSampledDpEvent(q, both), steps))
    flat = rdp_epsilon(dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(1.1)), steps))
    knobs = {**KNOBS, "batch_size": batch_size}
    ours = epsilon_curve(**knobs, epochs=3, clipping="adaptive")[-1]
    assert ours == pytest.approx(composed, rel=1e-9) and composed == pytest.approx(flat, rel=1e-9)
    assert epsilon_curve(**knobs, epochs=3, clipping="adaptive", accountant="pld")[-1] == pytest.approx(
        epsilon_curve(**knobs, epochs=3, accountant="pld")[-1], rel=1e-9)
    # the count is not free: releasing it beside an unraised gradient noise would cost more
    unraised = dp_accounting.ComposedDpEvent([dp_accounting.GaussianDpEvent(1.1),
                                              dp_accounting.GaussianDpEvent(count_std / 0.5)])
    assert rdp_epsilon(dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, unraised), steps)) > flat * (1 + 1e-6)


def test_adaptive_event_holds_both_mechanisms():
    epoch = mechanism(noise_multiplier=1.1, batch_size=256, dataset_size=60000, sampling="poisson",
                      clipping="adaptive")
    gradient_sigma, count_std = adaptive_noise(noise_multiplier=1.1, batch_size=256)
    assert epoch.unit_event.event == dp_accounting.ComposedDpEvent(
        (dp_accounting.GaussianDpEvent(gradient_sigma), dp_accounting.GaussianDpEvent(2 * count_std)))
    assert epoch.noise_multiplier == pytest.approx(1.1, rel=1e-12)


def test_the_statement_says_what_microbatching_costs():
    report = compute_privacy(**KNOBS, epochs=1, microbatches=25)
    assert "sensitivity doubles" in report.statement and "noise multiplier 0.55" in report.statement
    assert report.to_dict()["microbatches"] == 25 and report.to_dict()["clipping"] == "flat"
    assert "both together" in compute_privacy(**KNOBS, epochs=1, clipping="adaptive").statement


@pytest.mark.parametrize("args, field, message", [
    ({"clipping": "ghost"}, "clipping", "got 'ghost'"),
    ({"microbatches": -1}, "microbatches", "got -1"),
    ({"microbatches": 5, "clipping": "adaptive"}, "microbatches", "must be 0 with adaptive"),
])
def test_bad_variants_are_refused_by_field(args, field, message):
    with pytest.raises(ParamError) as caught:
        epsilon_curve(**KNOBS, epochs=1, **args)
    assert message in caught.value.errors[field]
