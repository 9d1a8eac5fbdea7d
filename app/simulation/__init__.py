"""Simulated runs: what our real trainer would report, predicted from real runs of it, in milliseconds.

The model is a Gaussian process (Rasmussen & Williams 2006, ch. 2) fitted to ``data/calibration.json``, the per-epoch
records of real runs of ``app.train`` over a grid spanning the parameter table (``bench/calibrate.py``). It predicts,
from the training knobs and the step count, every quantity that the knobs do not determine by arithmetic:

- the test accuracy (as a logit), the train and test loss (as logs);
- the distribution of per-example gradient norms before clipping, as the logit of its CDF at the inner edges of the
  fixed log-spaced histogram bins; the clip fraction, the norm quantiles and the histogram all follow from that one
  distribution, so the histogram and the clip fraction the page shows always agree with each other and with C.

What it assumes. The inputs are the coordinates in which DP-SGD's update is simple (Abadi et al. 2016; see
``features``): the distance travelled lr*min(C, G)*t, SGD's temperature (step size times the variance of the
sampling and Gaussian noise, over the pull of the clipped gradient), the signal step lr*min(C, G), N and C. A
non-private run is a run with C beyond every measured gradient norm and no noise. Each output is one GP whose kernel is
squared-exponential (one length scale per input) plus linear, on one row per calibrated setting and epoch (the mean
over its seeds, trusted by how well its seeds agree: each row's noise is a floor plus the sampling variance of its
seed mean); the hyperparameters, including the weight of the Gaussian noise in the temperature, minimise the error in
accuracy when each setting is left out (``app.simulation.fit``). Outside the calibrated range the inputs are clamped
to its edges (with a little slack), so the corners of the table behave like the nearest measured corner rather than a
runaway extrapolation. Runs die: they collapse or explode (``dead``), at once under a huge step or after learning for
some epochs under heavy noise. The GP learns from the epochs before a run died; whether and when a run dies is a
separate model, a Weibull time to death in steps behind a gate that says whether the knobs can kill at all
(``TimeToDeath``), from which a simulated run draws its death step.

Everything else is computed, not predicted: epsilon by the accountant with the same q, steps and delta as a real run;
histogram counts from the expected number of examples whose norms an epoch measures; seconds from a linear timing
model fitted to the same runs (per step plus per example, plus evaluation). Seeds: a seeded offset per run and jitter
per epoch, of the typical seed-to-seed spread of the calibration and correlated as real seeds' deviations are (higher
accuracy with lower losses and fewer large gradients; every histogram edge moving together, so a seed's histogram is
as smooth as a real run's), scaled to how much this setting's seeds differ: one more GP output, the log of the seeds'
variance (real seeds agree within 0.3 point at the defaults and differ by 9 points without noise on 500 examples).

How far off it is, measured by leaving each calibrated setting out: ``bench/sim_fidelity.py`` (table in the README).
How far off one run may be, said with the run: ``Simulator.real_run_range``, where a real run of the same settings ends
8 times in 10 (the seeds' spread, the chance of death and the GP's posterior std, scaled by leaving settings out).
Fitting: ``python -m app.simulation.fit`` writes the hyperparameters, the divergence model and the GP's rows to
``data/simulator.json``; loading reads that file and solves the GP's weights (a fraction of a second, once per
process), fitting nothing. No TensorFlow.

The modules: ``features`` (the model's inputs and outputs), ``gp`` (the Gaussian process), ``rows`` (the calibration
runs as the GP's rows), ``time_to_death`` (a gated Weibull fitted to interval-censored deaths), ``divergence`` (which
runs die, when, and what they report then), ``simulator`` (records of a simulated run; ``load`` and ``run``), ``fit``
(the offline fit). The rest of the app uses ``load()`` (its ``real_run_range(params, epochs)`` states where a real run
would end), ``unavailable_reason()`` and ``run(params, report, should_stop)``, the runner contract. Importing the
package reads no file and imports neither TensorFlow nor Flask.
"""

from app.simulation.simulator import load, run, unavailable_reason

__all__ = ["load", "run", "unavailable_reason"]
