"""How a headless run shows its progress: a tqdm bar per run on a terminal, one plain line per epoch otherwise (logs,
CI, a pipe), both on stderr so stdout carries only the results."""

from __future__ import annotations

import os
import sys
from typing import TextIO


def _epoch_text(record: dict) -> str:
    parts = [f"epoch {record['epoch']}"]
    if record.get("test_accuracy") is not None:
        parts.append(f"test accuracy {record['test_accuracy']:.4f}")
    if record.get("epsilon") is not None:
        parts.append(f"epsilon {record['epsilon']:.4g}")
    if record.get("epoch_seconds") is not None:
        parts.append(f"{record['epoch_seconds']:.1f} s")
    return ", ".join(parts)


class Lines:
    """Plain lines: one when a run starts, one per epoch, one when it ends."""

    def __init__(self, stream: TextIO):
        self.stream = stream

    def start(self, name: str, index: int, total: int, params: dict) -> None:
        sigma = f", noise_multiplier {params['noise_multiplier']:.4g}" if params["private"] else ", non-private"
        epochs = params["epochs"]
        self.say(f"[{index}/{total}] {name}: {params['mode']}, {epochs} epoch{'s' * (epochs != 1)} of "
                 f"{params['steps_per_epoch']} steps{sigma}")

    def update(self, name: str, progress: dict, new_epochs: list[dict]) -> None:
        for record in new_epochs:
            self.say(f"  {name}: {_epoch_text(record)}")

    def end(self, name: str, line: str) -> None:
        self.say(f"  {name}: {line}")

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class Bars(Lines):
    """A tqdm bar per run over its steps, its postfix the last epoch's accuracy and epsilon."""

    def __init__(self, stream: TextIO):
        super().__init__(stream)
        self.bar = None

    def start(self, name: str, index: int, total: int, params: dict) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=params["steps"], desc=f"[{index}/{total}] {name}", unit="step", file=self.stream,
                        dynamic_ncols=True, leave=True)

    def update(self, name: str, progress: dict, new_epochs: list[dict]) -> None:
        if self.bar is None:
            return
        self.bar.update(max(0, progress["step"] - self.bar.n))
        if new_epochs:
            self.bar.set_postfix_str(_epoch_text(new_epochs[-1]), refresh=False)
        self.bar.refresh()

    def end(self, name: str, line: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        super().end(name, line)

    def say(self, text: str) -> None:
        if self.bar is None:
            super().say(text)
        else:  # above the bar, which tqdm redraws below
            self.bar.write(text, file=self.stream)


def for_stream(stream: TextIO = sys.stderr) -> Lines:
    """Bars on a terminal, plain lines elsewhere (and on a terminal of no width, where a bar would be blank)."""
    if not stream.isatty():
        return Lines(stream)
    try:
        width = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        width = 80
    return Bars(stream) if width > 0 else Lines(stream)
