"""Celery for the Redis backend, in Flask's documented pattern (flask.palletsprojects.com, "Background Tasks with
Celery"): ``celery_init_app(app)`` makes a Celery app whose tasks run inside the Flask app's context, so a task reads
the same config and job manager as the web process that queued it. This module does not import Flask (only
``app/web`` and the factory do): it is handed the app, and a task finds it as its Celery app's ``flask_app``.

Redis is broker and result store (the run's state is kept by ``app.jobs.redis_store``, so tasks ignore their
results). Acknowledged late, one message reserved per worker thread (``worker_prefetch_multiplier`` 1): a queued run
waits in the broker for whichever worker is free, not behind a busy one; a worker killed mid-run leaves its message
unacknowledged, and when Redis re-delivers it (after ``visibility_timeout``) the task finds the run already ended
(the heartbeat check failed it) and does nothing. Importing this module loads Celery but not TensorFlow.
"""

from __future__ import annotations

from celery import Celery, Task, shared_task, signals

TASK = "dpsgd.run"
QUEUE = "dpsgd-real"


def celery_config(redis_url: str) -> dict:
    """The Celery settings for ``REDIS_URL``."""
    return {
        "broker_url": redis_url,
        "result_backend": redis_url,
        "task_ignore_result": True,
        "task_acks_late": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": QUEUE,
        "broker_connection_timeout": 1,
        "broker_connection_retry_on_startup": True,
        # Re-delivery of an unacknowledged message (its worker died): the run it names has ended by then (30 s
        # heartbeat timeout), so re-delivery only has to come eventually; runs longer than this are re-delivered
        # while training, and the second worker finds the run running and leaves it.
        "broker_transport_options": {"visibility_timeout": 600},
        # Redis lost mid-run: the trainer keeps going (its records fail, and the heartbeat check ends the run once
        # Redis is back); the run store decides a run's fate, not the broker connection.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
    }


def celery_init_app(app) -> Celery:
    """A Celery app bound to the Flask app ``app`` (its tasks run in ``app``'s context), kept as
    ``app.extensions["celery"]``."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.flask_app = app
    celery.config_from_object(celery_config(app.config["REDIS_URL"]))
    celery.set_default()
    app.extensions["celery"] = celery
    return celery


ACK_WAKE_SECONDS = 0.1


@signals.worker_ready.connect
def wake_the_event_loop_for_acks(sender=None, **_):
    """A threads-pool worker acknowledges a finished task only when its event loop next wakes, up to seconds later,
    and with one message reserved per thread it takes no next run until then (celery/celery#6941: a queued run
    waited 9 s behind one that took 0.01 s). A no-op timer every 0.1 s wakes the loop: the workaround given there,
    on the event loop's own timer (a process's event loop outlives a worker: a second worker in it, as in the tests,
    runs the first one's loop)."""
    hub = getattr(getattr(sender, "controller", None), "hub", None)
    timer = hub.timer if hub is not None else getattr(sender, "timer", None)
    if timer is not None:
        timer.call_repeatedly(ACK_WAKE_SECONDS, lambda *args, **kwargs: None)


def dispatcher(celery: Celery):
    """``dispatch(run_id, mode)`` for the Redis job manager: one task message per queued run (no retries: Redis was
    just reachable for the queueing, and a refused publish is the caller's 503)."""

    def dispatch(run_id: str, mode: str) -> None:
        celery.tasks[TASK].apply_async(args=[run_id], retry=False)

    return dispatch


@shared_task(name=TASK, bind=True, ignore_result=True, acks_late=True)
def run(task: Task, run_id: str) -> str | None:
    """Train the queued run ``run_id`` in this worker (``RedisJobManager.execute``); returns how it ended."""
    return task.app.flask_app.extensions["jobs"].execute(run_id)
