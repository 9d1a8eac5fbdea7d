"""Runs: a bounded job manager for training runs, with snapshots, incremental polling, cancel and eviction.

Runners share one contract: ``run(params, report, should_stop)``. ``report(event)`` appends a record, a dict whose
``type`` is ``"epoch"`` or ``"step"`` (the rest is the record of docs/api.md), or ``"summary"``: parts the runner
adds to the run's summary (the real runner's ``audit``), merged over the summarizer's; ``should_stop()`` is polled
between steps. Runners raise on failure; the manager marks the run ``failed`` with the message and carries on.

Two kinds of lane:

- worker lanes (real training): at most ``workers`` runs at once in background threads, a queue of at most
  ``max_queue`` behind them (beyond it :class:`QueueFull`, which the API turns into 429 with ``Retry-After``);
- paced lanes (simulation): the runner is cheap, so it runs at once in the submitting thread and its records are
  released over ``pacing_seconds`` as time passes. Pacing holds no thread, so paced runs never queue behind each other
  or take a worker a real run needs.

Memory stays flat: finished runs are evicted after ``ttl_seconds`` or beyond ``max_finished``; live paced runs are capped
at ``max_paced``; each run keeps at most ``MAX_STEP_RECORDS`` step records; the ids of evicted runs are remembered,
``EVICTED_IDS_KEPT`` at most, so a client still polling one is told what happened rather than "unknown".

Fairness: a worker lane may cap the runs one client (``owner``, the API's client key) has queued or running at once
(``max_per_owner``), so one tab cannot fill the queue the whole class shares.

Run ids start with this process's ``boot_id``: a client polling a run that an earlier server process started learns
that the server restarted (runs live only in memory) instead of a bare 404.

Two backends keep this contract: :class:`JobManager` here (the default: every run in this process's memory) and
``app.jobs.redis_store.RedisJobManager`` (runs in Redis, real runs on Celery workers). The rules both follow (the
errors and their messages, ids and tokens, the snapshot and progress shapes, release times of paced records, the
summary and advice guards) are the module functions below, and :class:`JobBackend` is the interface the app calls.

Recommendations are live: a snapshot carries the adviser's answer for the epochs visible so far, computed outside the
lock when a new epoch has become visible and cached on the run, so polls between epochs cost nothing.
"""

from __future__ import annotations

import collections
import copy
import secrets
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

Runner = Callable[[dict, Callable[[dict], None], Callable[[], bool]], None]
Summarizer = Callable[[dict, list, list], dict]  # (params, epoch records, step records) -> summary
Adviser = Callable[[dict, list], list]  # (params, epoch records so far) -> recommendations

MAX_STEP_RECORDS = 2000
EVICTED_IDS_KEPT = 10000  # about 0.6 MB of ids: bounded whatever the traffic
TERMINAL = ("succeeded", "failed", "cancelled")


class JobError(Exception):
    """Base of the errors the API maps to a status: each carries ``field`` and ``message``."""

    status = 400

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


class UnknownRun(JobError):
    status = 404


class WrongToken(JobError):
    status = 403


class NotCancellable(JobError):
    status = 409


class QueueFull(JobError):
    status = 429

    def __init__(self, field_name: str, message: str, retry_after: int):
        super().__init__(field_name, message)
        self.retry_after = retry_after


class BackendUnavailable(JobError):
    """The run store cannot be reached (the Redis backend): 503 with ``Retry-After``, never a 500 or a hang."""

    status = 503

    def __init__(self, field_name: str, message: str, retry_after: int = 5):
        super().__init__(field_name, message)
        self.retry_after = retry_after


# --- the contract's rules, shared by both backends ---------------------------------------------------------------

def new_run_id(boot_id: str) -> str:
    """An unguessable run id that starts with ``boot_id`` (96 random bits after it)."""
    return boot_id + secrets.token_hex(12)


def new_token() -> str:
    """A run's cancel token (128 random bits)."""
    return secrets.token_urlsafe(16)


def closed_error() -> QueueFull:
    return QueueFull("mode", "the server is shutting down; try again in a minute", retry_after=60)


def owner_cap_error(mode: str, mine: int, cap: int) -> QueueFull:
    return QueueFull("mode", f"you already have {mine} {mode} run{'s' * (mine > 1)} queued or running (at most {cap} "
                     "per user, so everyone gets a turn); wait for one to finish or cancel it, or use the simulation",
                     retry_after=30)


def queue_full_error(mode: str, max_queue: int) -> QueueFull:
    return QueueFull("mode", f"the {mode} queue is full ({max_queue} runs waiting); try again shortly or use the "
                     "simulation", retry_after=30)


def paced_full_error(mode: str, live: int, pacing_seconds: float) -> QueueFull:
    return QueueFull("mode", f"{live} {mode} runs are already playing; try again in a few seconds",
                     retry_after=max(1, int(pacing_seconds) + 1))


def check_token(given: str | None, expected: str) -> None:
    """Raises WrongToken unless ``given`` is the run's token (compared in constant time, as UTF-8 bytes: a header may
    carry any character, and ``compare_digest`` refuses non-ASCII strings)."""
    if not given or not secrets.compare_digest(str(given).encode("utf-8", "surrogateescape"), expected.encode()):
        raise WrongToken("token", "the X-Run-Token header does not match this run's token")


def not_cancellable(status: str) -> NotCancellable:
    return NotCancellable("status", f"the run is already {status}")


def check_event(event: dict) -> str:
    """The kind of a reported event (``epoch``, ``step`` or ``summary``); raises ValueError for any other."""
    kind = event.get("type")
    if kind not in ("epoch", "step", "summary"):
        raise ValueError(f"runner reported an event of unknown type {kind!r}")
    return kind


def release_times(total: int, seconds: float, start: float) -> list[float]:
    """When each of a paced run's ``total`` records becomes visible: spread evenly over ``seconds`` from ``start``."""
    return [start + seconds * (i + 1) / total for i in range(total)]


def unknown_run(run_id: str, *, boot_id: str, evicted: bool, ttl_seconds: float, max_finished: int,
                restarted: str = "the server restarted; runs live in the server's memory") -> UnknownRun:
    """The 404 for a run the backend does not hold, saying which: evicted, from before a restart (``restarted``
    says what restarted and why that lost it), or unknown."""
    shown = repr(run_id[:40])
    if evicted:
        return UnknownRun("id", f"run {shown} finished and was removed from the server, which keeps finished runs "
                                f"{ttl_seconds / 60:g} minutes and at most {max_finished}; what your page showed of it "
                                "is kept in its history")
    if (len(run_id) == len(boot_id) + 24 and not run_id.startswith(boot_id)
            and all(c in "0123456789abcdef" for c in run_id)):
        return UnknownRun("id", f"run {shown} was started before {restarted}, so its progress since your page's last "
                                "update was lost (what the page showed is kept); start it again")
    return UnknownRun("id", f"no run with id {shown}")


def last_counts(visible: list) -> tuple[int, int]:
    """The step and epoch of the last step and epoch records in ``visible`` (0 for none)."""
    last_step = next((rec for rec in reversed(visible) if rec["type"] == "step"), None)
    last_epoch = next((rec for rec in reversed(visible) if rec["type"] == "epoch"), None)
    return (last_step["step"] if last_step else 0), (last_epoch["epoch"] if last_epoch else 0)


def progress(params: dict, step: int, epoch: int, *, status: str, started: float | None, finished: float | None,
             now: float) -> dict:
    """A snapshot's ``progress``: ``step`` and ``epoch`` are those of the last visible step and epoch records."""
    epochs_total = params.get("epochs", 0)
    steps_total = params.get("steps", 0)
    fraction = step / steps_total if steps_total else (epoch / epochs_total if epochs_total else 0.0)
    if status == "succeeded":
        fraction = 1.0
    elapsed = (min(now, finished) if finished else now) - started if started else 0.0
    eta = elapsed * (1 - fraction) / fraction if 0 < fraction < 1 else None
    return {"epoch": epoch, "epochs": epochs_total, "step": step, "steps": steps_total,
            "fraction": round(min(1.0, fraction), 4), "elapsed_seconds": round(max(0.0, elapsed), 2),
            "eta_seconds": None if eta is None else round(eta, 1)}


def snapshot_of(*, run_id: str, mode: str, status: str, params: dict, queue_position: int, progress: dict,
                new: list, cursor: int, summary: dict | None, error: str | None, extra: dict) -> dict:
    """The snapshot shape of docs/api.md (``new``: the records after the client's cursor; recommendations empty,
    filled by the backend outside its lock)."""
    done = status in TERMINAL
    return {
        "id": run_id,
        "mode": mode,
        "status": status,
        "params": dict(params),
        "queue_position": queue_position,
        "progress": progress,
        "epochs": [_public(rec) for rec in new if rec["type"] == "epoch"],
        "steps": [_public(rec) for rec in new if rec["type"] == "step"],
        "cursor": cursor,
        "summary": copy.deepcopy(summary) if done else None,
        "recommendations": [],
        "error": error,
        **copy.deepcopy(extra),
    }


def summary_or_error(summarize: Summarizer, params: dict, records: list) -> tuple[dict | None, str | None]:
    """``(summary, None)``, or ``(None, message)`` when the summarizer fails (a summary bug must not lose the run)."""
    epochs = [rec for rec in records if rec["type"] == "epoch"]
    steps = [rec for rec in records if rec["type"] == "step"]
    try:
        summary = summarize(params, epochs, steps)
        for rec in records:  # the runner's own parts (the real runner's audit), over the summarizer's
            if rec["type"] == "summary" and summary is not None:
                summary.update(_public(rec))
        return summary, None
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        return None, f"summary failed: {type(exc).__name__}: {exc}"


def advice_or_nothing(advise: Adviser, params: dict, epochs: list) -> list:
    """The adviser's answer, or no recommendations when it fails (an advice bug must not break polling)."""
    try:
        return advise(params, epochs)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        return []


def failure_message(exc: BaseException) -> str:
    """What a failed run says: the exception's type and message."""
    return f"{type(exc).__name__}: {exc}"


class JobBackend:
    """What the app asks of a backend (the API, ``/api/health``, gunicorn's shutdown hook); both keep the contract
    of this module's docstring."""

    boot_id: str

    def submit(self, params: dict, *, extra: dict | None = None, owner: str | None = None) -> dict:
        raise NotImplementedError

    def snapshot(self, run_id: str, since: int | None = None) -> dict:
        raise NotImplementedError

    def cancel(self, run_id: str, token: str | None) -> dict:
        raise NotImplementedError

    def stats(self) -> dict:
        raise NotImplementedError

    def shutdown(self, reason: str) -> list[dict]:
        raise NotImplementedError

    def join(self, timeout: float) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Lane:
    """How a mode runs: ``runner`` in ``workers`` threads behind a queue, or paced (``workers == 0``)."""

    runner: Runner
    workers: int = 0
    max_queue: int = 0
    pacing_seconds: float = 0.0
    max_per_owner: int = 0  # runs one owner may have queued or running at once in this lane (0: no cap)


@dataclass
class Run:
    id: str
    token: str
    mode: str
    params: dict
    created: float
    status: str = "queued"
    records: list = field(default_factory=list)  # (seq, release_time, record) in report order
    error: str | None = None
    started: float | None = None
    finished: float | None = None
    summary: dict | None = None
    advice: tuple = (0, [])  # (epoch records it was computed from, recommendations)
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    step_count: int = 0
    extra: dict = field(default_factory=dict)
    owner: str | None = None  # who started it (the API's client key), for the per-owner cap; never shown


class JobManager(JobBackend):
    """The embedded backend: owns every run in this process; all state changes happen under one lock, and snapshots are copies taken under it."""

    def __init__(self, lanes: Mapping[str, Lane], *, summarize: Summarizer | None = None,
                 advise: Adviser | None = None, ttl_seconds: float = 3600, max_finished: int = 200,
                 max_paced: int = 500, clock: Callable[[], float] = time.monotonic):
        self._lanes = dict(lanes)
        self._summarize = summarize or (lambda params, epochs, steps: None)
        self._advise = advise or (lambda params, epochs: [])
        self._ttl = ttl_seconds
        self._max_finished = max_finished
        self._max_paced = max_paced
        self._clock = clock
        self._lock = threading.Lock()
        self._runs: "collections.OrderedDict[str, Run]" = collections.OrderedDict()
        self._queues = {mode: collections.deque() for mode, lane in self._lanes.items() if lane.workers}
        self._wakeup = threading.Condition(self._lock)
        self._closed = False
        self.boot_id = secrets.token_hex(4)
        self._evicted: "collections.OrderedDict[str, None]" = collections.OrderedDict()
        self._threads = []
        for mode, lane in self._lanes.items():
            for i in range(lane.workers):
                thread = threading.Thread(target=self._work, args=(mode,), name=f"{mode}-worker-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    # --- public -------------------------------------------------------------------------------------------------

    def submit(self, params: dict, *, extra: dict | None = None, owner: str | None = None) -> dict:
        """Start or queue a run of ``params["mode"]``; returns ``{id, token, status, queue_position}``.

        Args:
            params: the run's params (``mode`` picks the lane).
            extra: fields added to every snapshot of the run.
            owner: who starts it, for the lane's ``max_per_owner`` cap.

        Raises:
            QueueFull: the mode's queue (or the cap on live paced runs, or the owner's cap) is full.
        """
        mode = params["mode"]
        lane = self._lanes[mode]
        now = self._clock()
        run = Run(id=new_run_id(self.boot_id), token=new_token(), mode=mode,
                  params=dict(params), created=now, extra=dict(extra or {}), owner=owner)
        with self._lock:
            if self._closed:
                raise closed_error()
            self._evict(now)
            if lane.workers:
                queue = self._queues[mode]
                if owner is not None and lane.max_per_owner:
                    mine = sum(1 for r in self._runs.values()
                               if r.owner == owner and r.mode == mode and r.status in ("queued", "running"))
                    if mine >= lane.max_per_owner:
                        raise owner_cap_error(mode, mine, lane.max_per_owner)
                if len(queue) >= lane.max_queue:
                    raise queue_full_error(mode, lane.max_queue)
                queue.append(run)
                self._runs[run.id] = run
                self._wakeup.notify_all()
            else:
                live = sum(1 for r in self._runs.values() if r.mode == mode and not self._done(r, now))
                if live >= self._max_paced:
                    raise paced_full_error(mode, live, lane.pacing_seconds)
                self._runs[run.id] = run
        if not lane.workers:
            self._execute(run, lane)
        with self._lock:
            return {"id": run.id, "token": run.token, "status": self._status(run, self._clock()),
                    "queue_position": self._queue_position(run)}

    def snapshot(self, run_id: str, since: int | None = None) -> dict:
        """A copy of the run's state; with ``since``, only records after that cursor.

        Raises:
            UnknownRun: no such run (or evicted).
        """
        with self._lock:
            run = self._get(run_id)
            snap = self._snapshot(run, since, self._clock())
        return self._with_advice(run, snap)

    def cancel(self, run_id: str, token: str | None) -> dict:
        """Stop a queued or running run (a running one stops within one training step).

        Raises:
            UnknownRun, WrongToken, NotCancellable.
        """
        with self._lock:
            run = self._get(run_id)
            check_token(token, run.token)
            now = self._clock()
            status = self._status(run, now)
            if status in TERMINAL:
                raise not_cancellable(status)
            run.cancel_requested.set()
            if status == "queued":
                self._queues[run.mode].remove(run)
                self._end(run, "cancelled", now)
            elif not self._lanes[run.mode].workers:  # paced: freeze what has been released
                run.records = [r for r in run.records if r[1] <= now]
                self._end(run, "cancelled", now)
            snap = self._snapshot(run, None, now)
        return self._with_advice(run, snap)

    def stats(self) -> dict:
        """Counts by status and queue lengths, for ``/api/health``."""
        with self._lock:
            now = self._clock()
            counts = collections.Counter(self._status(r, now) for r in self._runs.values())
            return {"runs": dict(counts), "queued": {m: len(q) for m, q in self._queues.items()}}

    def close(self) -> None:
        """Stop the workers after their current run (used by tests)."""
        with self._lock:
            self._closed = True
            for run in self._runs.values():
                run.cancel_requested.set()
            self._wakeup.notify_all()
        for thread in self._threads:
            thread.join(timeout=10)

    def shutdown(self, reason: str) -> list[dict]:
        """Cancel every queued, running or still-releasing run, marked with ``reason``, and stop taking runs; a
        running one stops within one training step (:meth:`join` waits for that).

        Returns:
            ``{id, mode, status}`` of each run it cancelled, ``status`` being what it was before.
        """
        cancelled = []
        with self._lock:
            now = self._clock()
            self._closed = True
            for run in self._runs.values():
                status = self._status(run, now)
                if status in TERMINAL:
                    continue
                run.cancel_requested.set()
                if status == "queued":
                    self._queues[run.mode].remove(run)
                elif not self._lanes[run.mode].workers:
                    run.records = [r for r in run.records if r[1] <= now]
                self._end(run, "cancelled", now)
                run.error = reason
                cancelled.append({"id": run.id, "mode": run.mode, "status": status})
            self._wakeup.notify_all()
        return cancelled

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in all for the worker threads to end (after :meth:`shutdown`); True if
        they did."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    # --- running ------------------------------------------------------------------------------------------------

    def _work(self, mode: str) -> None:
        lane = self._lanes[mode]
        while True:
            with self._lock:
                while not self._queues[mode] and not self._closed:
                    self._wakeup.wait()
                if self._closed:
                    return
                run = self._queues[mode].popleft()
            self._execute(run, lane)

    def _execute(self, run: Run, lane: Lane) -> None:
        with self._lock:
            run.status, run.started = "running", self._clock()
        paced = not lane.workers
        try:
            lane.runner(copy.deepcopy(run.params), lambda event: self._record(run, event, paced),
                        run.cancel_requested.is_set)
        except Exception as exc:  # noqa: BLE001 - every failure becomes the run's message, never the server's
            traceback.print_exc()
            with self._lock:
                if run.status in TERMINAL:  # already ended (the server shutting down): keep that reason
                    return
                run.error = failure_message(exc)
                self._end(run, "failed", self._clock())
            return
        with self._lock:
            now = self._clock()
            if run.status in TERMINAL:
                return
            if paced:
                self._release_over(run, lane.pacing_seconds, now)
            status = "cancelled" if run.cancel_requested.is_set() and not paced else "succeeded"
            self._end(run, status, now if not paced else None)

    def _record(self, run: Run, event: dict, paced: bool) -> None:
        kind = check_event(event)
        with self._lock:
            if run.status in TERMINAL and not paced:  # ended under it (the server shutting down): keep it as it was
                return
            if kind == "step":
                if run.step_count >= MAX_STEP_RECORDS:
                    return
                run.step_count += 1
            run.records.append((len(run.records) + 1, 0.0 if paced else self._clock(), dict(event)))

    def _release_over(self, run: Run, seconds: float, start: float) -> None:
        """Spread the release times of a paced run's records evenly over ``seconds``."""
        times = release_times(len(run.records), seconds, start)
        run.records = [(seq, at, rec) for at, (seq, _, rec) in zip(times, run.records)]

    def _end(self, run: Run, status: str, now: float | None) -> None:
        """Mark a run finished (``now`` None for a paced run: it finishes when its last record is released)."""
        run.status = status
        run.finished = now if now is not None else (run.records[-1][1] if run.records else self._clock())
        if status in ("succeeded", "cancelled"):
            run.summary, error = summary_or_error(self._summarize, run.params, [rec for _, _, rec in run.records])
            run.error = error or run.error

    # --- reading ------------------------------------------------------------------------------------------------

    def _get(self, run_id: str) -> Run:
        run = self._runs.get(run_id)
        if run is not None:
            return run
        raise unknown_run(run_id, boot_id=self.boot_id, evicted=run_id in self._evicted, ttl_seconds=self._ttl,
                          max_finished=self._max_finished)

    @staticmethod
    def _done(run: Run, now: float) -> bool:
        return run.status in TERMINAL and run.finished is not None and run.finished <= now

    def _status(self, run: Run, now: float) -> str:
        if run.status in TERMINAL and run.finished is not None and run.finished > now:
            return "running"  # a paced run still releasing its records
        return run.status

    def _queue_position(self, run: Run) -> int:
        queue = self._queues.get(run.mode)
        if run.status != "queued" or queue is None:
            return 0
        return 1 + next((i for i, r in enumerate(queue) if r is run), 0)

    def _snapshot(self, run: Run, since: int | None, now: float) -> dict:
        status = self._status(run, now)
        visible = [(seq, rec) for seq, released, rec in run.records if released <= now]
        return snapshot_of(
            run_id=run.id, mode=run.mode, status=status, params=run.params,
            queue_position=self._queue_position(run),
            progress=progress(run.params, *last_counts([rec for _, rec in visible]), status=status,
                              started=run.started, finished=run.finished, now=now),
            new=[rec for seq, rec in visible if since is None or seq > since],
            cursor=visible[-1][0] if visible else 0, summary=run.summary, error=run.error, extra=run.extra)

    def _with_advice(self, run: Run, snap: dict) -> dict:
        """Put the recommendations for the epochs visible in ``snap`` into it, computing them once per new epoch."""
        with self._lock:
            now = self._clock()
            epochs = [rec for _, released, rec in run.records if rec["type"] == "epoch" and released <= now]
            seen, advice = run.advice
        if len(epochs) != seen:
            advice = advice_or_nothing(self._advise, run.params, epochs)
            with self._lock:
                run.advice = (len(epochs), advice)
        snap["recommendations"] = copy.deepcopy(advice)
        return snap

    def _evict(self, now: float) -> None:
        finished = [r for r in self._runs.values() if self._done(r, now)]
        expired = {r.id for r in finished if now - r.finished > self._ttl}
        overflow = len(finished) - len(expired) - self._max_finished
        if overflow > 0:
            survivors = sorted((r for r in finished if r.id not in expired), key=lambda r: r.finished)
            expired.update(r.id for r in survivors[:overflow])
        for run_id in expired:
            del self._runs[run_id]
            self._evicted[run_id] = None
        while len(self._evicted) > EVICTED_IDS_KEPT:
            self._evicted.popitem(last=False)


def _public(record: dict) -> dict:
    return {k: copy.deepcopy(v) for k, v in record.items() if k != "type"}
