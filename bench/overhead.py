"""A two-step job, importable so the multiprocess executor can reconstruct it."""

from dagster import in_process_executor, job, multiprocess_executor, op


@op
def first() -> int:
    return 1


@op
def second(value: int) -> int:
    return value + 1


@job(executor_def=in_process_executor)
def in_process_job():
    second(first())


@job(executor_def=multiprocess_executor)
def multiprocess_job():
    second(first())
