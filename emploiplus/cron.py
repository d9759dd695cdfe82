"""Periodic jobs, run by `python manage.py rqcron emploiplus.cron` (started by `make run`).

The cron scheduler only enqueues; the `rqworker` processes run the jobs.
"""

from rq import cron

from matching.jobs import refresh_materialized_views

cron.register(refresh_materialized_views, queue_name="notifications", interval=300)
