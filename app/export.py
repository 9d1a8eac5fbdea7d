"""The take-home script: a run's knobs rendered into a standalone Python file that trains the same model with TF
Privacy (``POST /api/export/script``).

The script's body is ``export_script.py.in`` beside this module: it says in its header which knobs it maps and how
it differs from the playground's trainer (TF Privacy divides by the realised batch, skips empty Poisson batches).
Pure: no Flask, no TensorFlow.
"""

from __future__ import annotations

import pprint
from pathlib import Path

from app.params import EXPORT_FIELDS as FIELDS

TEMPLATE = Path(__file__).with_name("export_script.py.in")
MARKER = "__KNOBS__"
FILENAME = "dpsgd_mnist.py"


def script(knobs: dict) -> str:
    """The script for ``knobs`` (validated values of every name in ``FIELDS``).

    Raises:
        KeyError: a field of ``FIELDS`` is missing.
    """
    text = TEMPLATE.read_text(encoding="utf-8")
    values = {name: knobs[name] for name in FIELDS}
    return text.replace(MARKER, pprint.pformat(values, sort_dicts=False, width=100).replace("\n", "\n" + " " * 8), 1)
