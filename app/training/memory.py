"""The process's resident memory over a run: at its start and the highest seen, read from ``/proc/self/status``.

A process's high-water mark (``ru_maxrss``, the profile's ``peak_rss_mb``) only grows, so in a server that has trained
before it says nothing of this run; the difference between the start and the peak of this run does. Sampled where
the runner calls :meth:`RunMemory.sample` (after every step and every evaluation): a peak between two samples is
missed.
"""

from __future__ import annotations

from pathlib import Path

_STATUS = Path("/proc/self/status")


def resident_mb() -> float | None:
    """Resident memory now, in MB (MiB), or None where ``/proc`` is not there."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class RunMemory:
    """Resident memory at construction and the largest :meth:`sample` since."""

    def __init__(self):
        self.start_mb = resident_mb()
        self.peak_mb = self.start_mb

    def sample(self) -> None:
        now = resident_mb()
        if now is not None and (self.peak_mb is None or now > self.peak_mb):
            self.peak_mb = now

    def to_dict(self) -> dict:
        """Rounded figures, each said for what it is."""
        both = self.start_mb is not None and self.peak_mb is not None
        return {"rss_start_mb": _round(self.start_mb), "rss_peak_mb": _round(self.peak_mb),
                "rss_increase_mb": _round(self.peak_mb - self.start_mb) if both else None}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
