"""Our RQ queue and worker classes (settings.RQ: QUEUE_CLASS, WORKER_CLASS).

`Queue` (django-rq's DjangoRQ): every job created while a request is being served carries
the request's id in `job.meta["request_id"]` — whatever enqueues it (emploiplus.effects,
django_rq.enqueue, a job enqueueing another job), since every path goes through
`create_job`. `stamp_meta(meta)` is the same for a caller that builds job data itself.

`Worker`:
- binds the job id and the enqueuing request's id to the logs of the job (emploiplus.logs);
- counts each execution in `emploiplus_jobs_total{queue, job, outcome}` (success, retry,
  failure: a failure is final, a retry is an attempt that will run again);
- a job that returned `Retry` and has no retry left is reported to Sentry (an exception that
  is final is reported by the SDK's RQ integration);
- periodic jobs (`meta={"routine": True}`, emploiplus.cron) log at DEBUG, and what they
  returned is logged at DEBUG when it found nothing, at INFO when it recovered something;
- **outlives a Redis outage.** RQ's own loop retries only its dequeue: a Redis error anywhere
  else (watching a job's work-horse, the heartbeat after a job, the suspension check) ends
  the worker ("found an unhandled exception, quitting"), and `python -m emploiplus.processes
  worker` with no queue (make run, small setups) runs one worker that nothing restarts. Here
  those calls log the error and the loop goes on to its dequeue, which waits for Redis with
  backoff. A job whose outcome could not be written stays in the started registry and is
  retried once abandoned (notifications_sweep; jobs are idempotent). A Redis restarted
  without persistence forgot the worker: the first heartbeat after registers it again, so
  `/readyz`, the admin and `queues_health` see it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from django_rq.queues import DjangoRQ
from rq import worker_registration
from rq.queue import Queue as RQQueue
from rq.worker import Worker as RQWorker

from emploiplus import logs, metrics
from emploiplus import sentry as error_reporting

log = logging.getLogger(__name__)

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)


def stamp_meta(meta: dict[str, Any] | None) -> dict[str, Any] | None:
    """`meta` with the current request id (unless it has one), for a job being created."""
    stamp = logs.job_meta()
    if not stamp or (meta and "request_id" in meta):
        return meta
    return {**(meta or {}), **stamp}


def _is_routine(job: Any) -> bool:
    try:
        return bool((job.meta or {}).get("routine"))
    except Exception:  # a job that cannot be deserialized
        return False


class Queue(DjangoRQ):
    def create_job(self, *args: Any, **kwargs: Any):
        kwargs["meta"] = stamp_meta(kwargs.get("meta"))
        return super().create_job(*args, **kwargs)

    @classmethod
    def dequeue_any(cls, *args: Any, **kwargs: Any):
        result = super().dequeue_any(*args, **kwargs)
        # The worker logs the job it dequeued right after this returns: routine jobs at DEBUG.
        logs.routine_var.set(result is not None and _is_routine(result[0]))
        return result


def found_something(report: Any) -> bool:
    """Did a sweep's report say it recovered anything? Non-empty lists, positive counts."""
    if isinstance(report, (list, tuple, set)):
        return bool(report)
    if isinstance(report, dict):
        return any(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in report.values())
    if isinstance(report, int) and not isinstance(report, bool):
        return report > 0
    return False


def _func(job: Any) -> str:
    try:
        return job.func_name
    except Exception:
        return "<undeserializable>"


class Worker(RQWorker):
    def __init__(self, queues: Any, *args: Any, **kwargs: Any) -> None:
        # rqworker-pool builds RQ's plain Queue objects: ours (by name) carry the routine flag.
        if isinstance(queues, (str, RQQueue)):
            queues = [queues]
        names = [q if isinstance(q, str) else q.name for q in queues]
        kwargs["queue_class"] = Queue
        super().__init__(names, *args, **kwargs)

    def execute_job(self, job, queue):
        try:
            return super().execute_job(job, queue)
        except REDIS_ERRORS as exc:
            log.error("worker: Redis failed while job %s ran (%s); it is retried once abandoned", job.id, exc)
        finally:
            logs.routine_var.set(False)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        try:
            super().heartbeat(timeout, pipeline)
            if pipeline is None and not self.connection.hexists(self.key, "birth"):
                self._register_again()
        except REDIS_ERRORS as exc:
            log.error("worker: heartbeat failed (%s); waiting for Redis", exc)

    def _register_again(self) -> None:
        log.warning("worker %s: Redis forgot this worker (restarted?), registering it again", self.name)
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=self.serialize())
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()

    def dequeue_job_and_maintain_ttl(self, timeout: int | None, max_idle_time: int | None = None):
        wait = 1.0
        while True:  # RQ retries the dequeue itself, not the state update before it
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except REDIS_ERRORS as exc:
                log.error("worker: Redis unreachable (%s), retrying in %.0f s", exc, wait)
                time.sleep(wait)
                wait = min(wait * 2, 30.0)

    def check_for_suspension(self, burst: bool) -> None:
        try:
            super().check_for_suspension(burst)
        except REDIS_ERRORS as exc:
            log.error("worker: suspension check failed (%s); waiting for Redis", exc)

    def run_maintenance_tasks(self) -> None:
        try:
            super().run_maintenance_tasks()
        except REDIS_ERRORS as exc:
            log.error("worker: maintenance failed (%s); waiting for Redis", exc)

    def perform_job(self, job, queue, execution) -> bool:
        tokens = logs.bind(request_id=(job.meta or {}).get("request_id"), job_id=job.id)
        logs.routine_var.set(_is_routine(job))
        try:
            return super().perform_job(job, queue, execution)
        finally:
            logs.unbind(tokens)

    def handle_job_success(self, job, queue, started_job_registry, execution):
        super().handle_job_success(job, queue, started_job_registry, execution)
        metrics.job_outcome(queue.name, _func(job), "success")
        if _is_routine(job):
            report = job.return_value()
            if found_something(report):
                log.info("%s recovered: %s", _func(job), report)
            else:
                log.debug("%s: nothing to do (%s)", _func(job), report)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string="", execution=None):
        will_retry = job.should_retry and self._stopped_job_id != job.id
        super().handle_job_failure(
            job, queue, started_job_registry=started_job_registry, exc_string=exc_string, execution=execution
        )
        metrics.job_outcome(queue.name, _func(job), "retry" if will_retry else "failure")

    def handle_job_retry(self, job, queue, retry, started_job_registry, execution):
        exhausted = bool(job.number_of_retries and job.number_of_retries >= retry.max)
        super().handle_job_retry(job, queue, retry, started_job_registry, execution)
        metrics.job_outcome(queue.name, _func(job), "failure" if exhausted else "retry")
        if exhausted:
            error_reporting.capture_message(
                f"RQ job {_func(job)} failed after {retry.max} retries", job_id=job.id, queue=queue.name
            )
