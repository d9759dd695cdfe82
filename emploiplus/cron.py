"""Periodic jobs, run by `python manage.py rqcron emploiplus.cron` (started by `make run`).

The cron scheduler only enqueues; the `rqworker` processes run the jobs. Every job here is
routine (`meta={"routine": True}`): the workers log its runs at DEBUG, and at INFO only what
a sweep recovered (emploiplus.workers).
"""

from rq import cron

from matching.jobs import refresh_materialized_views, sweep_embeddings, sweep_pending_jobs
from notifications.jobs import notifications_sweep
from webhooks.jobs import sweep_events

ROUTINE = {"routine": True}

cron.register(refresh_materialized_views, queue_name="notifications", interval=300, meta=ROUTINE)
# Lost webhook deliveries: active jobs still `pending` after MATCHING_SWEEP_AFTER_SECONDS
# (default 120 s), or `queued` for 15 minutes (dead worker), go through the pipeline.
cron.register(sweep_pending_jobs, queue_name="notifications", interval=60, meta=ROUTINE)
# Notification deliveries: abandoned RQ jobs (killed workers) and lost fan-outs.
cron.register(notifications_sweep, queue_name="notifications", interval=60, meta=ROUTINE)
# Stored webhook events whose processing job was lost (Redis down or emptied, dead worker).
cron.register(sweep_events, queue_name="notifications", interval=60, meta=ROUTINE)
# Embeddings (issue 15) whose job was lost or whose row was written behind the services' back.
cron.register(sweep_embeddings, queue_name="notifications", interval=300, meta=ROUTINE)
