"""The cluster deployment: Dagster on PostgreSQL, concurrent runs, steps on Celery workers."""
