"""The inverse of the accountant: the noise multiplier that meets a target epsilon."""

from __future__ import annotations

import math

from app.params import ParamError
from app.privacy.accountant import PrivacyReport, compute_privacy


def calibrate_noise(*, target_epsilon: float, batch_size: int, epochs: int, dataset_size: int, delta: float,
                    noise_range: tuple[float, float], accountant: str = "rdp", sampling: str = "poisson",
                    clipping: str = "flat", microbatches: int = 0, relative_tolerance: float = 1e-4) -> PrivacyReport:
    """The smallest noise multiplier (within ``relative_tolerance``) whose epsilon does not exceed the target.

    Bisects on sigma in log space keeping the invariant epsilon(high) <= target, so the answer never overshoots.

    Args:
        noise_range: the (lowest, highest) noise multiplier to consider, both > 0.

    Returns:
        The :class:`PrivacyReport` of the noise multiplier found (its ``epsilon`` is the one achieved).

    Raises:
        ParamError: on bad arguments, or when the target is out of reach within ``noise_range``.
    """
    if not (target_epsilon > 0 and math.isfinite(target_epsilon)):
        raise ParamError({"target_epsilon": f"must be a finite number > 0, got {target_epsilon!r}"})
    low, high = noise_range

    def report(sigma: float) -> PrivacyReport:
        return compute_privacy(noise_multiplier=sigma, batch_size=batch_size, epochs=epochs,
                               dataset_size=dataset_size, delta=delta, accountant=accountant, sampling=sampling,
                               clipping=clipping, microbatches=microbatches)

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
