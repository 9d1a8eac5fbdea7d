"""The files a run leaves in ``DIR/<run name>/``, and reading them back.

- ``summary.json``: the run's status, the knobs it ran with (and how sigma was solved), the params the runner received
  (the accountant's plan), the summary the web shows (accuracy, epsilon with its accountant, delta and sampling, the
  statement; ``audit`` when the run had one), the recommendations and the wall time;
- ``records.json``: the epoch and step records exactly as ``GET /api/runs/<id>`` gives them;
- ``epochs.csv`` and ``steps.csv``: the same records for a spreadsheet, one row each. A nested object becomes one column
  per key (``grad_norm.p50``), a list one JSON cell (``class_accuracy``), null an empty cell; :func:`read_csv` turns
  the rows back into the records;
- ``config.yaml``: the config that makes this run again (one run, every knob resolved, the solved sigma included).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml

from app import records

SUMMARY = "summary.json"
RECORDS = "records.json"
EPOCHS_CSV = "epochs.csv"
STEPS_CSV = "steps.csv"
CONFIG = "config.yaml"


def write_run(directory: Path, result: dict, epochs: list[dict], steps: list[dict], config: dict) -> None:
    """Write a run's files into ``directory`` (created); ``result`` is its summary.json."""
    directory.mkdir(parents=True, exist_ok=True)
    _write_json(directory / SUMMARY, result)
    _write_json(directory / RECORDS, {"epochs": epochs, "steps": steps})
    write_csv(directory / EPOCHS_CSV, epochs)
    write_csv(directory / STEPS_CSV, steps)
    (directory / CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))


def _write_json(path: Path, value) -> None:
    temporary = path.with_suffix(path.suffix + ".part")
    temporary.write_text(json.dumps(records.json_safe(value), indent=2) + "\n")
    temporary.replace(path)  # a run interrupted while writing never leaves half a file under the real name


def _flatten(record: dict) -> dict:
    row = {}
    for key, value in record.items():
        if isinstance(value, dict):
            for inner, item in value.items():
                row[f"{key}.{inner}"] = item
        else:
            row[key] = value
    return row


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(records.json_safe(value))


def write_csv(path: Path, rows: list[dict]) -> None:
    """Records as CSV: columns in order of first appearance, nested objects one column per key."""
    flat = [_flatten(row) for row in rows]
    columns = list(dict.fromkeys(key for row in flat for key in row))
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in flat:
            writer.writerow([_cell(row.get(column)) for column in columns])


def _value(text: str):
    if text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_csv(path: Path) -> list[dict]:
    """The records a CSV of :func:`write_csv` holds. A column a record lacked reads as None; an object whose every
    key is empty reads as that object with None values (the shape every record has: ``grad_norm`` of no norms)."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        columns = next(reader, [])
        out = []
        for cells in reader:
            record: dict = {}
            for column, text in zip(columns, cells):
                outer, dot, inner = column.partition(".")
                if not dot:
                    record[column] = _value(text)
                elif not isinstance(record.get(outer), dict) and record.get(outer) is not None:
                    continue  # this record had a plain value there
                else:
                    record.setdefault(outer, {})
                    if isinstance(record[outer], dict):
                        record[outer][inner] = _value(text)
            out.append(record)
    return out


def read_run(directory: Path) -> dict:
    """A run directory as ``{"dir", "result" (summary.json), "epochs", "steps"}``; records from records.json, or from
    the CSVs when it is missing.

    Raises:
        FileNotFoundError: no summary.json there.
    """
    result = json.loads((directory / SUMMARY).read_text())
    if (directory / RECORDS).exists():
        recorded = json.loads((directory / RECORDS).read_text())
        epochs, steps = recorded["epochs"], recorded["steps"]
    else:
        epochs = read_csv(directory / EPOCHS_CSV) if (directory / EPOCHS_CSV).exists() else []
        steps = read_csv(directory / STEPS_CSV) if (directory / STEPS_CSV).exists() else []
    return {"dir": str(directory), "result": result, "epochs": epochs, "steps": steps}
