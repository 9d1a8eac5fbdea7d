"""``python -m app.privacy``: epsilon of DP-SGD as the playground's trainer runs it, or the noise for a target epsilon.

A thin shell over the library: arguments are the knob table's (``app.params``), validated by it; bad ones exit with
status 2 and one line naming the argument and the value. No TensorFlow.
"""

from __future__ import annotations

import argparse
import json
import sys

from app.params import CALIBRATE_FIELDS, KNOB_BY_NAME, PRIVACY_FIELDS, ParamError, noise_search_range, validate
from app.privacy import calibrate_noise, compute_privacy


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m app.privacy",
        description="Epsilon of DP-SGD as the playground's trainer runs it, or the noise for a target epsilon.")
    for name in sorted(set(PRIVACY_FIELDS) | set(CALIBRATE_FIELDS)):
        knob = KNOB_BY_NAME[name]
        kind = {"int": int, "float": float}.get(knob.type, str)
        parser.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, choices=knob.choices or None,
                            default=None, help=f"{knob.help} (default {knob.default})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the statement")
    return parser


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: prints the statement (or JSON); bad arguments exit 2 with one line naming them."""
    parser = _parser()
    args = vars(parser.parse_args(argv))
    as_json = args.pop("json")
    given = {k: v for k, v in args.items() if v is not None}
    inverse = "target_epsilon" in given
    if inverse and "noise_multiplier" in given:
        parser.error("give --noise-multiplier or --target-epsilon, not both")
    try:
        clean = validate(given, CALIBRATE_FIELDS if inverse else PRIVACY_FIELDS)
        report = calibrate_noise(**clean, noise_range=noise_search_range()) if inverse else compute_privacy(**clean)
    except ParamError as exc:
        parser.error("; ".join(f"--{k.replace('_', '-')} {v}" for k, v in exc.errors.items()))
    if as_json:
        print(json.dumps(report.to_dict()))
    else:
        prefix = f"noise_multiplier = {report.noise_multiplier:.4f} meets epsilon <= {clean['target_epsilon']:g}.\n" \
            if inverse else ""
        print(prefix + report.statement)
    return 0


if __name__ == "__main__":
    sys.exit(main())
