"""Runs in Redis: the job contract of ``app.jobs.manager`` when one process is not enough (``REDIS_URL`` set).

Every run's state, records and token live in Redis, so any web process answers any poll and a web process restarting
loses nothing; real runs are trained by Celery workers (``app.jobs.celery_app``, ``make worker``), which may run on
other machines; simulated runs are computed in the web process that receives them and stored the same way.

Keys (all under ``PREFIX``): ``boot`` (this store's boot id: a Redis that lost its data gets a new one, so a poll of an
older run says so), ``run:<id>`` (a hash: token, mode, params, status, times, summary, error, cached advice),
``rec:<id>`` (its records, JSON, in report order: a record's cursor is its position), ``queue:<mode>`` (queued ids,
oldest first), ``owner:<mode>:<owner>`` (one client's queued and running ids), ``running`` (ids a worker trains, for
the heartbeat check), ``paced`` and ``finished`` (sorted by when they finish; ``finished`` holds
``<sequence>:<id>``, so ties keep the order runs ended in, ``seq`` counting), ``evicted`` (ids removed, the newest
``EVICTED_IDS_KEPT``), ``runs`` (every id held).

Every change that has a rule (the queue bound, the per-owner cap, the cap on paced runs, eviction, the transitions
queued -> running -> ended, cancel) is one Lua script (``app.jobs.redis_scripts``), so it is atomic across processes
as the embedded manager's lock is across threads.

Faults:

- a worker killed mid-run stops beating (every ``heartbeat_seconds``); a running run silent for
  ``heartbeat_timeout`` is marked ``failed`` with that reason when anything next looks (a poll, a submit, the health
  check). It is not re-run: a half-trained model cannot resume, and a run that killed its worker would kill the next.
  Celery's late acknowledgement re-delivers its message, which then finds the run ended and does nothing;
- Redis unreachable (down, restarting, a partition): every call raises :class:`BackendUnavailable` (the API's 503
  with ``Retry-After``) within the 1 s connect / 2 s operation timeouts, never a 500 or a hang.

Time is each process's wall clock (``time.time``): machines running web processes and workers keep it in sync (NTP);
the heartbeat timeout tolerates seconds of skew.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import traceback
from typing import Callable, Mapping

import redis

from app.jobs import redis_scripts
from app.jobs.manager import (EVICTED_IDS_KEPT, MAX_STEP_RECORDS, TERMINAL, Adviser, BackendUnavailable, JobBackend,
                              Lane, Summarizer, advice_or_nothing, check_event, check_token, failure_message,
                              last_counts, new_run_id, new_token, not_cancellable, owner_cap_error, paced_full_error,
                              progress, queue_full_error, release_times, snapshot_of, summary_or_error, unknown_run)

PREFIX = "dpsgd:"
CONNECT_TIMEOUT = 1.0  # seconds to open a connection to Redis
OPERATION_TIMEOUT = 2.0  # seconds one command may take
RETRY_AFTER = 5  # what a 503 tells the client to wait
STALE_REASON = ("the worker training this run (or the web process computing a simulated one) stopped sending "
                "heartbeats for {timeout:g} s (killed, or its machine lost), so the run was marked failed; it is not "
                "restarted: start it again")
RESTARTED = "the run store (Redis) restarted without its data; runs live there"

Dispatch = Callable[[str, str], None]  # (run id, mode): hand a queued run to a worker


class RedisJobManager(JobBackend):
    """The job contract on Redis. In a web process ``dispatch`` hands queued runs to Celery; a worker process calls
    :meth:`execute` for each run Celery gives it.

    Args:
        lanes: as for :class:`~app.jobs.manager.JobManager`; a worker lane's runs are dispatched (its ``workers``
            count is the embedded backend's and is ignored here: the Celery workers are the workers), a paced lane's
            are computed in the submitting process.
        url: ``REDIS_URL``.
        dispatch: called with (run id, mode) after a worker-lane run is queued.
        heartbeat_seconds, heartbeat_timeout: how often a worker beats, how long a silent running run may stay so.
    """

    def __init__(self, lanes: Mapping[str, Lane], *, url: str, dispatch: Dispatch | None = None,
                 summarize: Summarizer | None = None, advise: Adviser | None = None, ttl_seconds: float = 3600,
                 max_finished: int = 200, max_paced: int = 500, heartbeat_seconds: float = 2.0,
                 heartbeat_timeout: float = 30.0, clock: Callable[[], float] = time.time, prefix: str = PREFIX):
        self._lanes = dict(lanes)
        self._dispatch = dispatch or (lambda run_id, mode: None)
        self._summarize = summarize or (lambda params, epochs, steps: None)
        self._advise = advise or (lambda params, epochs: [])
        self._ttl = ttl_seconds
        self._max_finished = max_finished
        self._max_paced = max_paced
        self._heartbeat = heartbeat_seconds
        self._timeout = heartbeat_timeout
        self._clock = clock
        self._prefix = prefix
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT,
                                           socket_timeout=OPERATION_TIMEOUT, decode_responses=True)
        kwargs = self._redis.connection_pool.connection_kwargs
        self._where = kwargs.get("path") or f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"
        self._scripts = {name: self._redis.register_script(getattr(redis_scripts, name.upper()))
                         for name in ("submit", "finish_paced", "start", "record", "beat", "finish", "cancel", "reap")}
        self._executing: set[str] = set()  # runs this process trains (a worker)
        self._executing_lock = threading.Lock()

    # --- the contract -------------------------------------------------------------------------------------------

    @property
    def boot_id(self) -> str:
        """The store's boot id (made on first use; a Redis that lost its data makes a new one)."""
        with self._guard():
            self._redis.set(self._key("boot"), self._new_boot_id(), nx=True)
            return self._redis.get(self._key("boot"))

    def submit(self, params: dict, *, extra: dict | None = None, owner: str | None = None) -> dict:
        """As :meth:`JobManager.submit`; a worker-lane run is queued in Redis and handed to Celery.

        Raises:
            QueueFull: the queue, the owner's cap or the cap on playing paced runs is full.
            BackendUnavailable: Redis cannot be reached.
        """
        mode = params["mode"]
        lane = self._lanes[mode]
        token, now = new_token(), self._clock()
        with self._guard():
            answer = self._run("submit", self._new_boot_id(), new_run_id(""), token, mode,
                               json.dumps(params), json.dumps(extra or {}), owner or "", now,
                               "worker" if lane.workers else "paced", lane.max_queue, lane.max_per_owner,
                               self._max_paced, self._ttl, self._max_finished, EVICTED_IDS_KEPT, self._timeout,
                               self._stale_reason())
        kind = answer[0]
        if kind == "owner_full":
            raise owner_cap_error(mode, int(answer[1]), lane.max_per_owner)
        if kind == "queue_full":
            raise queue_full_error(mode, lane.max_queue)
        if kind == "paced_full":
            raise paced_full_error(mode, int(answer[1]), lane.pacing_seconds)
        run_id, position = answer[1], int(answer[2])
        if lane.workers:
            try:
                self._dispatch(run_id, mode)
            except Exception as exc:  # noqa: BLE001 - the broker refused: the run must not wait forever
                traceback.print_exc()
                with contextlib.suppress(redis.RedisError):
                    self._run("finish", run_id, self._clock(), "failed", "", "no worker queue could take the run: "
                              + failure_message(exc))
                raise self._unavailable(exc) from None
            return {"id": run_id, "token": token, "status": "queued", "queue_position": position}
        self._play(run_id, params, lane)
        with self._guard():
            status = self._status(self._redis.hmget(self._key("run", run_id), "status", "finished"), self._clock())
        return {"id": run_id, "token": token, "status": status, "queue_position": 0}

    def snapshot(self, run_id: str, since: int | None = None) -> dict:
        """As :meth:`JobManager.snapshot`.

        Raises:
            UnknownRun: no such run (evicted, from before the store restarted, or never).
            BackendUnavailable: Redis cannot be reached.
        """
        with self._guard():
            now = self._clock()
            run, new, total = self._read(run_id, since or 0)
            if run["status"] == "running" and now - float(run.get("heartbeat") or 0) > self._timeout:
                self._run("reap", now, self._timeout, self._stale_reason())
                run, new, total = self._read(run_id, since or 0)
            return self._snapshot(run_id, run, new, total, since, now)

    def cancel(self, run_id: str, token: str | None) -> dict:
        """As :meth:`JobManager.cancel`: a queued or paced run ends at once, a running one within a training step.

        Raises:
            UnknownRun, WrongToken, NotCancellable, BackendUnavailable.
        """
        with self._guard():
            for attempt in range(20):  # the run changed between the read and the script: read it again
                now = self._clock()
                run, records, _ = self._read(run_id, 0)
                check_token(token, run["token"])
                status = self._status((run["status"], run.get("finished")), now)
                if status in TERMINAL:
                    raise not_cancellable(status)
                kept, summary, error = [], None, None
                if status == "queued" or run["status"] in TERMINAL:  # queued, or paced and still releasing
                    if run["status"] in TERMINAL:
                        kept = [rec for at, rec in zip(self._release(run, len(records)), records) if at <= now]
                    summary, error = summary_or_error(self._summarize, json.loads(run["params"]), kept)
                if self._run("cancel", run_id, now, run["status"], len(kept),
                             json.dumps(summary) if summary is not None else "", error or ""):
                    return self.snapshot(run_id)
                time.sleep(0.05 * attempt)  # a paced run being computed, or a worker starting it
        raise self._unavailable(RuntimeError("the run kept changing while it was being cancelled"))

    def stats(self) -> dict:
        """Counts by status and queue lengths, for ``/api/health`` (after failing runs whose worker went silent)."""
        with self._guard():
            now = self._clock()
            self._run("reap", now, self._timeout, self._stale_reason())
            ids = list(self._redis.smembers(self._key("runs")))
            pipe = self._redis.pipeline(transaction=False)
            for run_id in ids:
                pipe.hmget(self._key("run", run_id), "status", "finished")
            for mode in self._worker_modes():
                pipe.llen(self._key("queue", mode))
            answers = pipe.execute()
            counts: dict[str, int] = {}
            for fields in answers[:len(ids)]:
                if fields[0] is not None:
                    status = self._status(fields, now)
                    counts[status] = counts.get(status, 0) + 1
            return {"runs": counts, "queued": dict(zip(self._worker_modes(), answers[len(ids):]))}

    def shutdown(self, reason: str) -> list[dict]:
        """Cancel the runs this process trains (a worker shutting down), marked with ``reason``. Runs elsewhere carry
        on: a web process going away loses nothing, since its runs live in Redis and train on workers.

        Returns:
            ``{id, mode, status}`` of each run it cancelled (``status``: what it was before).
        """
        with self._executing_lock:
            mine = sorted(self._executing)
        cancelled = []
        for run_id in mine:
            with contextlib.suppress(redis.RedisError):
                self._redis.hset(self._key("run", run_id), mapping={"cancel": "1", "cancel_reason": reason})
                cancelled.append({"id": run_id, "mode": self._redis.hget(self._key("run", run_id), "mode"),
                                  "status": "running"})
        return cancelled

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the runs this process trains to end; True if they did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._executing_lock:
                if not self._executing:
                    return True
            time.sleep(0.05)
        with self._executing_lock:
            return not self._executing

    def close(self) -> None:
        """Stop the runs this process trains (tests) and drop the connections."""
        self.shutdown("the worker was stopped")
        self.join(10)
        self._redis.close()

    # --- a worker's side ----------------------------------------------------------------------------------------

    def execute(self, run_id: str) -> str | None:
        """Train a queued run here (a Celery task calls this): beat while it runs, write its records as it reports
        them, stop within a step of a cancel, end it with its summary or failure. A run that is no longer queued
        (cancelled, or a message re-delivered after its worker died) is left alone.

        Returns:
            The status it ended with, or None if it was not this worker's to run.
        """
        worker = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        with self._guard():
            if not self._run("start", run_id, self._clock(), worker):
                return None
            run = self._redis.hgetall(self._key("run", run_id))
        params, lane = json.loads(run["params"]), self._lanes[run["mode"]]
        key = self._key("run", run_id)
        with self._executing_lock:
            self._executing.add(run_id)
        stopped = threading.Event()

        def beat():
            while not stopped.wait(self._heartbeat):
                try:
                    self._run("beat", run_id, self._clock())
                except redis.RedisError:  # Redis away for a moment: the next beat tries again
                    pass

        def report(event: dict) -> None:
            kind = check_event(event)
            self._run("record", run_id, json.dumps(event), kind, event.get(kind, 0), MAX_STEP_RECORDS)

        def should_stop() -> bool:
            cancel, status = self._redis.hmget(key, "cancel", "status")
            return cancel == "1" or status != "running"

        beating = threading.Thread(target=beat, name=f"heartbeat-{run_id[:8]}", daemon=True)
        beating.start()
        try:
            try:
                lane.runner(params, report, should_stop)
            except Exception as exc:  # noqa: BLE001 - every failure becomes the run's message
                traceback.print_exc()
                return self._run("finish", run_id, self._clock(), "failed", "", failure_message(exc))
            records = [json.loads(r) for r in self._redis.lrange(self._key("rec", run_id), 0, -1)]
            summary, error = summary_or_error(self._summarize, params, records)
            return self._run("finish", run_id, self._clock(), "ok",
                             json.dumps(summary) if summary is not None else "", error or "")
        except redis.RedisError:  # Redis lost mid-run: the heartbeat check ends the run once Redis is back
            traceback.print_exc()
            return None
        finally:
            stopped.set()
            with self._executing_lock:
                self._executing.discard(run_id)

    # --- inside -------------------------------------------------------------------------------------------------

    def _play(self, run_id: str, params: dict, lane: Lane) -> None:
        """Compute a paced run here and store it, its records released over the lane's pacing."""
        records, steps = [], 0

        def report(event: dict) -> None:
            nonlocal steps
            if check_event(event) == "step":
                if steps >= MAX_STEP_RECORDS:
                    return
                steps += 1
            records.append(dict(event))

        status, error, pacing = "succeeded", "", lane.pacing_seconds
        try:
            lane.runner(json.loads(json.dumps(params)), report, lambda: False)
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc()
            status, error, pacing = "failed", failure_message(exc), 0.0
        now = self._clock()
        summary = None
        if status == "succeeded":
            summary, error = summary_or_error(self._summarize, params, records)
            error = error or ""
        end = release_times(len(records), pacing, now)[-1] if records else now
        with self._guard():
            self._run("finish_paced", run_id, now, end, now, pacing, status,
                      json.dumps(summary) if summary is not None else "", error,
                      *(json.dumps(rec) for rec in records))

    def _read(self, run_id: str, since: int) -> tuple[dict, list, int]:
        """The run's hash, its records from position ``since`` on and how many it has; UnknownRun if not held."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(self._key("run", run_id))
        pipe.lrange(self._key("rec", run_id), since, -1)
        pipe.llen(self._key("rec", run_id))
        run, new, total = pipe.execute()
        if not run:
            evicted = self._redis.zscore(self._key("evicted"), run_id) is not None
            raise unknown_run(run_id, boot_id=self.boot_id, evicted=evicted, ttl_seconds=self._ttl,
                              max_finished=self._max_finished, restarted=RESTARTED)
        return run, [json.loads(r) for r in new], total

    def _snapshot(self, run_id: str, run: dict, new: list, total: int, since: int | None, now: float) -> dict:
        status = self._status((run["status"], run.get("finished")), now)
        params = json.loads(run["params"])
        started = float(run["started"]) if run.get("started") else None
        finished = float(run["finished"]) if run.get("finished") else None
        if run.get("paced") == "1":  # few records, all read: visible are those released by now
            everything = [json.loads(r) for r in self._redis.lrange(self._key("rec", run_id), 0, -1)]
            visible = [rec for at, rec in zip(self._release(run, len(everything)), everything) if at <= now]
            new = visible[since or 0:]
            step, epoch = last_counts(visible)
            cursor, epochs_visible = len(visible), sum(rec["type"] == "epoch" for rec in visible)
        else:  # a worker's run: every record is visible once written, and the hash keeps the counts
            step, epoch = int(run.get("last_step") or 0), int(run.get("last_epoch") or 0)
            cursor, epochs_visible = total, int(run.get("epochs") or 0)
            visible = None
        position = 0
        if status == "queued":
            found = self._redis.lpos(self._key("queue", run["mode"]), run_id)
            position = 0 if found is None else found + 1
        snap = snapshot_of(run_id=run_id, mode=run["mode"], status=status, params=params, queue_position=position,
                           progress=progress(params, step, epoch, status=status, started=started,
                                             finished=finished, now=now),
                           new=new, cursor=cursor, summary=json.loads(run["summary"]) if run.get("summary") else None,
                           error=run.get("error") or None, extra=json.loads(run.get("extra") or "{}"))
        seen = int(run.get("advice_n") or 0)
        if epochs_visible == seen:
            snap["recommendations"] = json.loads(run.get("advice") or "[]")
            return snap
        if visible is None:
            visible = [json.loads(r) for r in self._redis.lrange(self._key("rec", run_id), 0, -1)]
        advice = advice_or_nothing(self._advise, params, [rec for rec in visible if rec["type"] == "epoch"])
        self._redis.hset(self._key("run", run_id), mapping={"advice_n": epochs_visible, "advice": json.dumps(advice)})
        snap["recommendations"] = advice
        return snap

    @staticmethod
    def _release(run: dict, total: int) -> list[float]:
        if not run.get("pace_start"):
            return [float("inf")] * total
        return release_times(total, float(run["pace_seconds"]), float(run["pace_start"]))

    @staticmethod
    def _status(fields, now: float) -> str:
        status, finished = fields[0], fields[1]
        if status in TERMINAL and finished is not None and float(finished) > now:
            return "running"  # a paced run still releasing its records
        return status

    @staticmethod
    def _new_boot_id() -> str:
        """A boot id for a store that has none (8 hex digits, as the embedded manager's): fresh each time, so a
        Redis that lost its data never gets its old one back."""
        return new_run_id("")[:8]

    def _worker_modes(self) -> list[str]:
        return [mode for mode, lane in self._lanes.items() if lane.workers]

    def _stale_reason(self) -> str:
        return STALE_REASON.format(timeout=self._timeout)

    def _key(self, *parts: str) -> str:
        return self._prefix + ":".join(parts)

    def _run(self, script: str, *args):
        return self._scripts[script](args=[self._prefix, *args])

    def _unavailable(self, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable("backend", f"the run store (Redis at {self._where}) cannot be reached "
                                  f"({type(exc).__name__}); runs are kept there, so try again in a few seconds",
                                  retry_after=RETRY_AFTER)

    @contextlib.contextmanager
    def _guard(self):
        """Redis unreachable, timing out or still loading its data: BackendUnavailable (503), never a 500."""
        try:
            yield
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._unavailable(exc) from None
