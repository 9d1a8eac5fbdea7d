"""Pure privacy accounting for DP-SGD: knobs -> one dp_accounting event (``events``) -> epsilon per epoch under RDP or
PLD (``accountant``), its inverse (``calibrate``) and its plain-words statement (``statement``). No Flask, no
TensorFlow; ``python -m app.privacy`` is the command line.
"""

from app.privacy.accountant import (ACCOUNTANTS, PLD_MAX_RDP_EPSILON, PrivacyReport, compute_privacy,
                                    epochs_within_budget, epsilon_curve)
from app.privacy.calibrate import calibrate_noise
from app.privacy.events import CLIPPINGS, SAMPLINGS, accounting_args, adaptive_noise, mechanism, steps_per_epoch
from app.privacy.statement import RUN_CAVEAT, statement

__all__ = ["ACCOUNTANTS", "CLIPPINGS", "adaptive_noise", "PLD_MAX_RDP_EPSILON", "RUN_CAVEAT", "SAMPLINGS", "PrivacyReport", "accounting_args",
           "calibrate_noise", "compute_privacy", "epochs_within_budget", "epsilon_curve", "mechanism", "statement",
           "steps_per_epoch"]
