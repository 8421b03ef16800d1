"""How every process that runs marts code is set up: Arrow's allocator and threads, glibc's mmap
threshold, botocore's retry policy, and which library notices to silence. Called by the entry
points (the `marts` command, the code location Dagster loads, a Celery worker, the test suite)
before pyarrow is imported: importing the package itself changes nothing."""

import atexit
import ctypes
import ctypes.util
import logging
import os
import pickle
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from marts_project.settings import threads


def _return_large_blocks_to_the_os() -> None:
    """glibc serves allocations under its mmap threshold from heaps it rarely gives back, and
    raises that threshold (up to 32 MB) each time a large block is freed: after a few steps,
    an Arrow column of a few MB lives in a heap that keeps its peak forever. A fixed 128 KB
    threshold (what `MALLOC_MMAP_THRESHOLD_=131072` does, but set here because glibc reads that
    variable only at process start) maps every large block on its own and unmaps it on free.
    Measured, `marts backfill` of 28 days at 50,000 rows/day: peak RSS 776 -> 655 MB, flat
    after the first chunk. No-op off glibc or when an operator set the variable."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(ctypes.c_int(-3), ctypes.c_int(128 * 1024))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return


def set_up() -> None:
    """Set this process up for marts (idempotent; an operator's own settings win)."""
    # Arrow's allocator. Its default (mimalloc) keeps what a run freed and grows from one chunk
    # of a backfill to the next (28 days at 20,000 ad rows a day, chunks of 7 days: peak RSS
    # 1.02 GB against 0.72 GB with the system allocator). The system allocator under our 128 KB
    # mmap threshold (below) maps and unmaps every large buffer, and the kernel zero-fills each
    # page on its first touch: 1.5 million page faults in a 7-day chunk at 100,000 rows a day, a
    # quarter of the CPU as system time. jemalloc reuses freed memory for a second and then
    # returns it: measured on 30 days at 100,000 rows a day with two workers, 58.2/57.0 ->
    # 50.9/53.9 s, system time 24 -> 14 s, peak RSS 0.93-0.99 -> 1.04-1.06 GB. Arrow picks its
    # allocator when pyarrow is imported (checked: set after the import, the pool stays
    # mimalloc), so every entry point calls this before importing it; `pa.set_memory_pool` would
    # only reach pyarrow's Python calls. Linux wheels of pyarrow ship jemalloc.
    os.environ.setdefault(
        "ARROW_DEFAULT_MEMORY_POOL", "jemalloc" if sys.platform == "linux" else "system"
    )
    _return_large_blocks_to_the_os()
    # Every S3 client (s3fs for the landing zone and maintenance, pyiceberg's FileIO) is botocore
    # underneath, and botocore reads its retry policy from here. "standard" retries throttling
    # (SlowDown), 5xx and dropped connections with jittered backoff; the default "legacy" mode gives
    # up after 4 retries and never retries InternalError (found under injected faults). An
    # operator's own setting wins.
    os.environ.setdefault("AWS_RETRY_MODE", "standard")
    os.environ.setdefault("AWS_MAX_ATTEMPTS", "10")
    # Arrow's threads (its pool is sized when pyarrow is imported): MARTS_THREADS, when set,
    # for Arrow as for DuckDB (`resources/duck.py`); read here, a bad value is refused before
    # any work starts.
    if (count := threads()) is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(count))
    # We use single-run backfill policies and partitioned asset checks on purpose (range runs and
    # per-day checks are the design); their beta/preview notices would only bury real warnings.
    warnings.filterwarnings("ignore", message=r".*is currently in (beta|preview)")
    # pyiceberg warns when an overwrite's filter matches no rows: the first write of each day.
    warnings.filterwarnings("ignore", message="Delete operation did not match any records")
    sys.unraisablehook = _interrupts_kept


# What Ctrl-C raises: Python's own, and Dagster's inside a step (a BaseException of its own)
INTERRUPTS = ("KeyboardInterrupt", "DagsterExecutionInterruptedError")


def _interrupts_kept(unraisable: "sys.UnraisableHookArgs") -> None:
    """Ctrl-C that lands in a finalizer (a file's or connection's `__del__`, a weak reference's
    callback) cannot be raised there: Python printed it as an "Exception ignored" traceback and
    the interrupt was lost. It is sent again a moment later, from a thread (a signal raised
    here is handled here), to be raised where it can stop the command; anything else is
    reported as Python does."""
    if any(c.__name__ in INTERRUPTS for c in type(unraisable.exc_value).__mro__):
        again = threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT))
        again.daemon = True
        again.start()
        return
    sys.__unraisablehook__(unraisable)


def start_spawned(initializer: bytes) -> None:
    """A spawned worker process's first act: set up as an entry point is, then call the pickled
    `initializer`. Pickled apart, because unpickling it imports the project's modules, which
    build the definitions on import: set up after that, every library notice the definitions
    raise (58 lines for `marts backfill --workers 2`) reached the operator's terminal.

    Ctrl-C reaches a worker only while it runs a chunk (`interruptible`): raised while it set
    up, it printed a traceback of whatever import it stopped and broke the command's pool, and
    raised while it waited for work, a traceback of the wait; the command decides what stops."""
    signal.signal(signal.SIGINT, lambda *_: _STARTING_INTERRUPTED.append(True))
    set_up()
    pickle.loads(initializer)()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    atexit.register(_leave_without_teardown)  # the last registered: the first to run


_STARTING_INTERRUPTED: list[bool] = []


@contextmanager
def interruptible() -> Iterator[None]:
    """Ctrl-C interrupts this spawned worker inside the block, as it does the command; one that
    came while the worker set up stops the block before it starts."""
    if _STARTING_INTERRUPTED:
        raise KeyboardInterrupt("interrupted while the worker started")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _leave_without_teardown() -> None:
    """A worker's end, as the command's own process ends (`leave`): after an interrupted run
    the teardown printed DuckDB's binding layer's reference-leak report (about 20 lines) on the
    operator's terminal. By then multiprocessing has run its finalizers (its process bootstrap
    does, before the exit handlers), results went through their pipe and writes were committed
    in their run; logging is flushed here."""
    logging.shutdown()
    leave(0)


def leave(status: int) -> None:
    """End this process with `status` once its output is flushed, without Python's teardown:
    freeing every module and object one by one takes 0.5 s to 0.9 s once Dagster, pyiceberg
    and DuckDB are loaded, for a process about to lose them anyway."""
    with suppress(BrokenPipeError):  # e.g. `marts sql ... | head`
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)
