"""Knobs -> one dp_accounting event: the event is what both accountants compose, and dp_accounting's own accountants,
given the same event, agree with ours."""

import dp_accounting
import pytest
from dp_accounting.pld import pld_privacy_accountant

from app.privacy import accounting_args, epsilon_curve, mechanism
from app.privacy.accountant import PLD_DISCRETIZATION, pld_of


def test_poisson_epochs_are_subsampled_gaussian_steps():
    epoch = mechanism(noise_multiplier=1.1, batch_size=256, dataset_size=60000, sampling="poisson")
    assert epoch.unit_event == dp_accounting.PoissonSampledDpEvent(256 / 60000, dp_accounting.GaussianDpEvent(1.1))
    assert epoch.unit_count == 234 and epoch.run_event(3).count == 702


def test_a_shuffled_epoch_is_one_unamplified_gaussian():
    epoch = mechanism(noise_multiplier=1.1, batch_size=256, dataset_size=60000, sampling="shuffle")
    assert epoch.unit_event == dp_accounting.GaussianDpEvent(1.1) and epoch.unit_count == 1


@pytest.mark.parametrize("sampling", ["poisson", "shuffle"])
def test_our_curves_are_dp_accountings_accountants_on_the_same_event(sampling):
    knobs = dict(noise_multiplier=1.3, batch_size=500, dataset_size=10000, delta=1e-5, sampling=sampling)
    epoch = mechanism(**{k: knobs[k] for k in ("noise_multiplier", "batch_size", "dataset_size", "sampling")})
    rdp = dp_accounting.rdp.RdpAccountant()
    rdp.compose(epoch.run_event(4))
    assert epsilon_curve(**knobs, epochs=4)[-1] == pytest.approx(rdp.get_epsilon(1e-5), rel=1e-9)
    if sampling == "poisson":  # PLD refuses the shuffled epsilon here (RDP over 50)
        pld = pld_privacy_accountant.PLDAccountant(value_discretization_interval=PLD_DISCRETIZATION)
        pld.compose(epoch.run_event(4))
        assert epsilon_curve(**knobs, epochs=4, accountant="pld")[-1] == pytest.approx(pld.get_epsilon(1e-5),
                                                                                      rel=1e-6)


def test_pld_of_refuses_an_event_it_was_never_built_for():
    with pytest.raises(ValueError, match="no PLD for"):
        pld_of(dp_accounting.LaplaceDpEvent(1.0))


def test_accounting_args_pick_the_accountants_knobs_from_a_run():
    run = {"noise_multiplier": 1.0, "batch_size": 8, "epochs": 2, "dataset_size": 80, "delta": 1e-5,
           "accountant": "pld", "sampling": "poisson", "learning_rate": 0.1, "seed": 3}
    assert accounting_args(run, epochs=1) == {"noise_multiplier": 1.0, "batch_size": 8, "epochs": 1,
                                              "dataset_size": 80, "delta": 1e-5, "accountant": "pld",
                                              "sampling": "poisson", "clipping": "flat", "microbatches": 0}
    variant = {**run, "clipping": "adaptive", "target_quantile": 0.3, "microbatches": 0, "sparsification": 0.9}
    assert accounting_args(variant)["clipping"] == "adaptive" and "sparsification" not in accounting_args(variant)
