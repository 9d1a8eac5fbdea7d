"""The simulated runner: what our real trainer would report, predicted by a model fitted to real runs of it.

The rest of the app uses three names: ``load()`` (the fitted simulator, built once per process; its
``real_run_range(params, epochs)`` states where a real run would end), ``unavailable_reason()`` and
``run(params, report, should_stop)``, the runner contract. Importing the package reads no file and imports neither
TensorFlow nor Flask.
"""

from app.simulation.simulator import load, run, unavailable_reason

__all__ = ["load", "run", "unavailable_reason"]
