"""Headless experiments: a YAML config of runs (and sweeps) run through the web's own runners, and a comparison report.

``config`` parses and validates a config against the parameter table (``app.params``: the API's messages), expands
sweeps and solves the noise multiplier for a target epsilon as the page's solve does; ``runner`` hands each run to the
job manager with the modes of ``app.jobs.runners`` (the web's runners, plan and summary: no second training loop) and
writes ``DIR/<run>/``; ``files`` owns the files a run leaves (summary, records as JSON and CSV, the config it ran);
``report`` turns run directories into ``report.md`` and PNG plots. ``python -m app.experiment`` is the command line.
Importing this package loads neither TensorFlow nor matplotlib.
"""
