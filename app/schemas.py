"""The API's shapes as JSON Schema (2020-12, as OpenAPI 3.1 uses it): request bodies built from the knob table, and
the records and answers of docs/api.md.

This is the one machine-readable copy of those shapes: ``GET /api/openapi.json`` (``app.web.openapi``) serves them,
the fuzz tests check every answer against them, and the record tests check real and simulated runs' records against
them. A knob added to ``app.params`` appears in every request schema that takes it without an edit here; a new record
field is one line below (answers may carry more fields than listed: clients ignore the ones they do not know).
"""

from __future__ import annotations

from typing import Iterable

from app import params as P
from app.training.phases import PHASES

_TYPES = {"float": "number", "int": "integer", "bool": "boolean", "choice": "string"}


def nullable(schema: dict) -> dict:
    """``schema`` or null (a value that can be missing: an infinite epsilon, a diverged loss)."""
    return {"anyOf": [schema, {"type": "null"}]}


def knob_schema(knob: P.Knob) -> dict:
    """The JSON Schema of one knob's value: its type, range or choices, default, label and help."""
    schema = {"type": _TYPES[knob.type], "title": knob.label, "description": knob.help, "default": knob.default}
    if knob.type in ("float", "int"):
        schema.update(minimum=knob.min, maximum=knob.max)
    if knob.choices:
        schema["enum"] = list(knob.choices)
    if knob.simulated_as is not None:
        schema["description"] += (f" Real runs only: a simulated run takes {knob.simulated_as!r}, and asking it for "
                                  "another value is a 400.")
    return schema


def request_schema(fields: Iterable[str], title: str) -> dict:
    """A request body taking ``fields`` (each optional, defaulting to the table's default; no other keys)."""
    return {"type": "object", "title": title, "additionalProperties": False,
            "properties": {name: knob_schema(P.KNOB_BY_NAME[name]) for name in fields}}


NUMBER = {"type": "number"}
INTEGER = {"type": "integer", "minimum": 0}
TEXT = {"type": "string"}
FRACTION = {"type": "number", "minimum": 0, "maximum": 1}

EPOCH_RECORD = {
    "type": "object", "title": "Epoch record",
    "required": ["epoch", "train_loss", "test_loss", "test_accuracy", "epsilon", "clip_fraction", "grad_norm",
                 "grad_norm_histogram", "epoch_seconds"],
    "properties": {
        "epoch": {"type": "integer", "minimum": 1},
        "train_loss": nullable(NUMBER),
        "test_loss": nullable(NUMBER),
        "test_accuracy": nullable(FRACTION),
        "epsilon": {**nullable(NUMBER), "description": "after this epoch; null without privacy or noise"},
        "clip_fraction": {**nullable(FRACTION), "description": "share of per-example gradients clipped this epoch"},
        "grad_norm": {"type": "object", "description": "quantiles of per-example gradient norms before clipping",
                      "properties": {q: nullable(NUMBER) for q in ("p10", "p50", "p90")}},
        "grad_norm_histogram": {"type": "object", "required": ["edges", "counts"],
                                "properties": {"edges": {"type": "array", "items": NUMBER},
                                               "counts": {"type": "array", "items": INTEGER}}},
        "epoch_seconds": NUMBER,
        "examples_per_second": nullable(NUMBER),
        "class_accuracy": {"type": "array", "items": nullable(FRACTION), "minItems": 10, "maxItems": 10,
                           "description": "test accuracy of each digit 0-9 (null for a class absent); real runs "
                                          "only, the simulator was not fitted to it"},
        "max_grad_norm": {**NUMBER, "description": "adaptive clipping: the C this epoch's last step used"},
        "sparsification_rate": {**FRACTION, "description": "random sparsification: the rate of this epoch's last "
                                                           "mask"},
        "profile": {"$ref": "#/components/schemas/Profile"},
        "membership_auc": {**FRACTION, "description": "real runs with an audit: the loss attack's AUC after this "
                                                      "epoch, on at most 500 members against 500 unseen examples"},
    },
}

PROFILE = {
    "type": "object", "title": "Profile", "description": "the cost of privacy measured in this real run",
    "required": ["batch_size", "repetitions", "private_step_seconds", "public_step_seconds", "private_to_public"],
    "properties": {"batch_size": INTEGER, "repetitions": INTEGER, "private_step_seconds": NUMBER,
                   "public_step_seconds": NUMBER, "private_to_public": nullable(NUMBER),
                   "run_step_seconds": nullable(NUMBER), "train_seconds": NUMBER, "evaluation_seconds": NUMBER,
                   "train_seconds_per_epoch": NUMBER, "evaluation_seconds_per_epoch": NUMBER,
                   "phases": nullable({"type": "object", "description": "median seconds per phase of one private "
                                       "step (app/training/phases.py); null on the materialised path",
                                       "properties": {name: NUMBER for name in PHASES}}),
                   "phases_note": TEXT,
                   "peak_rss_mb": {**NUMBER, "description": "the process's high-water mark, not this run's"},
                   "rss_start_mb": nullable(NUMBER), "rss_peak_mb": nullable(NUMBER),
                   "rss_increase_mb": nullable({**NUMBER, "description": "this run's peak resident memory above "
                                                                          "its start, sampled after every step"}),
                   "variant": {"type": "object"}},
}

STEP_RECORD = {
    "type": "object", "title": "Step record", "required": ["step", "epoch", "loss"],
    "properties": {"step": {"type": "integer", "minimum": 1}, "epoch": {"type": "integer", "minimum": 1},
                   "loss": nullable(NUMBER), "batch_size": INTEGER, "clip_fraction": nullable(FRACTION),
                   "max_grad_norm": {**NUMBER, "description": "adaptive clipping: the C this step used"}},
}

_TPR_AT_FPR = {"type": "object", "required": ["0.01", "0.001"], "properties": {"0.01": FRACTION, "0.001": FRACTION},
               "description": "best TPR among thresholds whose FPR is at most 1% and 0.1%"}
_ATTACK = {"type": "object", "required": ["auc", "advantage", "tpr_at_fpr"],
           "properties": {"auc": FRACTION, "advantage": FRACTION, "tpr_at_fpr": _TPR_AT_FPR}}
AUDIT = {
    "type": "object", "title": "Audit", "description": "real runs with an audit only (docs/audit.md)",
    "properties": {
        "membership": {
            "type": "object", "description": "empirical leakage of this model on this split, not an epsilon bound",
            "required": ["auc", "advantage", "tpr_at_fpr", "roc", "attack", "attacks", "members", "non_members",
                         "statement"],
            "properties": {**_ATTACK["properties"], "attack": TEXT,
                           "roc": {"type": "object", "required": ["fpr", "tpr"],
                                   "properties": {"fpr": {"type": "array", "items": FRACTION},
                                                  "tpr": {"type": "array", "items": FRACTION}}},
                           "attacks": {"type": "object", "additionalProperties": _ATTACK},
                           "members": INTEGER, "non_members": INTEGER, "source": TEXT, "statement": TEXT}},
        "canaries": {
            "type": "object", "description": "the one-run audit (Steinke, Nasr and Jagielski 2023): a lower bound",
            "required": ["count", "guesses", "correct", "epsilon_lower_bound", "confidence", "ceiling", "statement"],
            "properties": {"count": INTEGER, "included": INTEGER, "guesses": INTEGER, "correct": INTEGER,
                           "k_plus": INTEGER, "k_minus": INTEGER, "epsilon_lower_bound": {"type": "number", "minimum": 0},
                           "confidence": FRACTION, "ceiling": {"type": "number", "minimum": 0}, "delta": NUMBER,
                           "tried": {"type": "array", "items": {"type": "object"}}, "statement": TEXT}},
    },
}

SUMMARY = {
    "type": "object", "title": "Summary",
    "required": ["final_test_accuracy", "final_epsilon", "accountant", "delta", "sampling", "statement", "seconds",
                 "epochs_completed", "private", "simulated"],
    "properties": {
        "final_test_accuracy": nullable(FRACTION), "final_epsilon": nullable(NUMBER),
        "epsilon_infinite": {"type": "boolean"}, "accountant": nullable(TEXT), "delta": nullable(NUMBER),
        "sampling": nullable(TEXT), "statement": TEXT, "seconds": NUMBER, "epochs_completed": INTEGER,
        "private": {"type": "boolean"}, "simulated": {"type": "boolean"},
        "model": nullable({"enum": list(P.KNOB_BY_NAME["model"].choices)}), "momentum": nullable(NUMBER),
        "real_run_range": {**nullable({"type": "array", "items": NUMBER, "minItems": 2, "maxItems": 2}),
                           "description": "simulated runs: where a real run of these settings ends 8 times in 10"},
        "profile": nullable({"$ref": "#/components/schemas/Profile"}),
        "collapse_chance": {**nullable(FRACTION),
                            "description": "simulated runs: the chance a run of these settings has diverged by then"},
        "audit": {"$ref": "#/components/schemas/Audit"},
    },
}

RECOMMENDATION = {
    "type": "object", "title": "Recommendation", "required": ["id", "severity", "title", "detail"],
    "properties": {"id": TEXT, "severity": {"enum": ["warning", "tip"]}, "title": TEXT, "detail": TEXT,
                   "change": {"type": "object"}, "role": TEXT},
}

RUN_STATUS = {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]}

PROGRESS = {
    "type": "object", "required": ["epoch", "epochs", "step", "steps", "fraction", "elapsed_seconds", "eta_seconds"],
    "properties": {"epoch": INTEGER, "epochs": INTEGER, "step": INTEGER, "steps": INTEGER, "fraction": FRACTION,
                   "elapsed_seconds": NUMBER, "eta_seconds": nullable(NUMBER)},
}

RUN_SNAPSHOT = {
    "type": "object", "title": "Run",
    "required": ["id", "mode", "status", "params", "queue_position", "progress", "epochs", "steps", "cursor",
                 "summary", "recommendations", "error"],
    "properties": {
        "id": TEXT, "mode": {"enum": list(P.KNOB_BY_NAME["mode"].choices)}, "status": RUN_STATUS,
        "params": {"type": "object", "description": "the knobs and the plan: sampling, sample_rate, steps_per_epoch, "
                                                    "steps, epsilon_curve"},
        "queue_position": INTEGER, "progress": PROGRESS,
        "epochs": {"type": "array", "items": {"$ref": "#/components/schemas/EpochRecord"}},
        "steps": {"type": "array", "items": {"$ref": "#/components/schemas/StepRecord"}},
        "cursor": INTEGER,
        "summary": nullable({"$ref": "#/components/schemas/Summary"}),
        "recommendations": {"type": "array", "items": {"$ref": "#/components/schemas/Recommendation"}},
        "error": {**nullable(TEXT), "description": "why the run failed, or why the server cancelled it"},
        "budget": {"type": "object", "properties": {"target_epsilon": NUMBER, "requested_epochs": INTEGER,
                                                    "epochs_within_budget": INTEGER, "stops_early": {"type": "boolean"}}},
    },
}

RUN_STARTED = {
    "type": "object", "title": "Run started", "required": ["id", "token", "status", "queue_position"],
    "properties": {"id": TEXT, "token": {**TEXT, "description": "send it as X-Run-Token to cancel"},
                   "status": RUN_STATUS, "queue_position": INTEGER},
}

PRIVACY_REPORT = {
    "type": "object", "title": "Privacy report",
    "required": ["epsilon", "epsilon_infinite", "accountant", "sampling", "delta", "sample_rate", "steps",
                 "epsilon_per_epoch", "statement"],
    "properties": {
        "epsilon": nullable(NUMBER), "epsilon_infinite": {"type": "boolean"}, "accountant": TEXT, "sampling": TEXT,
        "delta": NUMBER, "noise_multiplier": NUMBER, "sample_rate": NUMBER, "steps": INTEGER,
        "steps_per_epoch": INTEGER, "epochs": INTEGER, "dataset_size": INTEGER, "batch_size": INTEGER,
        "epsilon_per_epoch": {"type": "array", "items": nullable(NUMBER)}, "statement": TEXT,
        "clipping": TEXT, "microbatches": INTEGER,
        "target_epsilon": {**NUMBER, "description": "calibration answers: the budget that was asked for"},
    },
}

PARAMS_ANSWER = {
    "type": "object", "title": "Parameter table", "required": ["params", "modes", "run_sampling", "fields"],
    "properties": {
        "params": {"type": "array", "items": {"type": "object", "required": ["name", "type", "default", "label",
                                                                             "help"]}},
        "modes": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["available", "reason"],
            "properties": {"available": {"type": "boolean"}, "reason": nullable(TEXT), "label": TEXT}}},
        "run_sampling": TEXT,
        "pld_max_rdp_epsilon": {**NUMBER, "description": "PLD is refused where RDP's epsilon exceeds this"},
        "fields": {"type": "object", "additionalProperties": {"type": "array", "items": TEXT}},
    },
}

SUGGEST_REQUEST = {**request_schema(P.RUN_FIELDS, "Suggestion request"), "description": (
    "A run request's knobs (the budget is `target_epsilon`) plus `max_seconds`; private must be true.")}
SUGGEST_REQUEST["properties"] = {**SUGGEST_REQUEST["properties"], "max_seconds": nullable({
    "type": "number", "minimum": 1, "maximum": 86400,
    "description": "keep only runs the simulator's timing model expects to take at most this long"})}

SUGGESTIONS = {
    "type": "object", "title": "Suggestions", "required": ["candidates", "searched"],
    "properties": {
        "candidates": {"type": "array", "description": "best first", "items": {
            "type": "object", "required": ["params", "predicted_accuracy", "real_run_range", "epsilon", "seconds"],
            "properties": {
                "params": {"type": "object", "description": "every run field: send them as a run request"},
                "predicted_accuracy": {**FRACTION, "description": "the simulator's mean final test accuracy"},
                "real_run_range": {"type": "array", "items": FRACTION, "minItems": 2, "maxItems": 2,
                                   "description": "where a real run of these settings ends 8 times in 10"},
                "epsilon": {**NUMBER, "description": "by the request's accountant, delta and Poisson sampling"},
                "seconds": {**NUMBER, "description": "run time by the simulator's timing model"}}}},
        "searched": {**INTEGER, "description": "candidates scored"},
        "complete": {"type": "boolean", "description": "false when the time budget ended the search early"},
        "target_epsilon": NUMBER, "accountant": TEXT, "delta": NUMBER, "sampling": TEXT,
    },
}

HEALTH = {
    "type": "object", "title": "Health", "required": ["status", "jobs"],
    "properties": {"status": {"const": "ok"},
                   "jobs": {"type": "object", "properties": {
                       "runs": {"type": "object", "additionalProperties": INTEGER},
                       "queued": {"type": "object", "additionalProperties": INTEGER}}}},
}

ERRORS = {
    "type": "object", "title": "Errors", "required": ["errors"],
    "properties": {"errors": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string",
                                                                                            "minLength": 1},
                              "description": "each bad field (or `body`, `request`, `mode`, `id`, `token`) and a "
                                             "message naming the value received"}},
}

# Component name -> schema, as /api/openapi.json lists them.
COMPONENTS = {
    "PrivacyRequest": request_schema(P.PRIVACY_FIELDS, "Privacy request"),
    "CalibrateRequest": request_schema(P.CALIBRATE_FIELDS, "Calibration request"),
    "RunRequest": request_schema(P.RUN_FIELDS, "Run request"),
    "SuggestRequest": SUGGEST_REQUEST, "Suggestions": SUGGESTIONS,
    "ExportRequest": request_schema(P.EXPORT_FIELDS, "Export request"),
    "PrivacyReport": PRIVACY_REPORT, "ParamsAnswer": PARAMS_ANSWER, "Health": HEALTH,
    "RunStarted": RUN_STARTED, "Run": RUN_SNAPSHOT, "EpochRecord": EPOCH_RECORD, "StepRecord": STEP_RECORD,
    "Summary": SUMMARY, "Profile": PROFILE, "Audit": AUDIT, "Recommendation": RECOMMENDATION, "Errors": ERRORS,
}
